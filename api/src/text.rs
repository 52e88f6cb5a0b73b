//! Free text in request bodies: every string a person sends (names, address lines, labels,
//! reasons, references, URLs) is held to `procure_domain::text::check_line`, the one rule the
//! API and the workflow validators share, and a refusal names the field by its path in the body
//! (`shipping_address.name`, `products[2].sku`, `photo_urls[0]`).
//!
//! Handlers call [`lines`] on the body they decoded, before their own field checks, so a field
//! added to a request later is covered without anyone remembering to. Secrets serialize as
//! `[redacted]` and are not seen here; a handler checks those itself with [`line`], whose
//! message names the character and its position, never the content.

use crate::error::FieldError;
use procure_domain::text::check_line;
use serde::Serialize;
use serde_json::Value;

/// One field: pushes a refusal naming `field` when `value` is not a single printable line.
pub(crate) fn line(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if let Err(e) = check_line(value) {
        errors.push(FieldError {
            field: field.to_owned(),
            message: e.to_string(),
        });
    }
}

/// Every string of a decoded request body, each refusal named by its path.
pub(crate) fn lines(body: &impl Serialize) -> Vec<FieldError> {
    let mut errors = Vec::new();
    // Request bodies are plain data; one that cannot serialize has no strings to check.
    if let Ok(v) = serde_json::to_value(body) {
        walk(&v, String::new(), &mut errors);
    }
    errors
}

fn walk(v: &Value, path: String, errors: &mut Vec<FieldError>) {
    match v {
        Value::String(s) => line(errors, &path, s),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(fields) => {
            for (k, item) in fields {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                // A map's keys are typed too (none of our bodies has one today).
                line(errors, &at, k);
                walk(item, at, errors);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_offending_string_by_its_path() {
        let body = json!({
            "name": "ok",
            "shipping_address": {"name": "Eve\u{202e}gpj", "line1": "fine"},
            "products": [{"sku": "a"}, {"sku": "b\0"}],
            "photo_urls": ["http://x/\r\n"],
            "n": 3
        });
        let mut fields: Vec<(String, String)> = lines(&body)
            .into_iter()
            .map(|f| (f.field, f.message))
            .collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                (
                    "photo_urls[0]".to_owned(),
                    "must not contain a line break (U+000D at character 10)".to_owned()
                ),
                (
                    "products[1].sku".to_owned(),
                    "must not contain a NUL character (U+0000 at character 2)".to_owned()
                ),
                (
                    "shipping_address.name".to_owned(),
                    "must not contain a bidirectional control (U+202E at character 4)".to_owned()
                ),
            ]
        );
        assert!(lines(&json!({"a": ["Zoë", "北京"], "b": null})).is_empty());
    }
}
