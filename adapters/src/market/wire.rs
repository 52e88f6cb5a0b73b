//! Wire helpers every marketplace client uses: readers for the loosely typed JSON the
//! marketplaces answer with, the classification of answers that carry no vendor envelope, the
//! signed form, and the request clock.

use serde_json::Value;

use super::MarketError;
use crate::http::RawResponse;

/// A string field that may come as a JSON string or number (marketplace ids are longs).
pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integer field (fen, counts) that may come as a number or a numeric string.
pub(crate) fn int(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The elements of an array field; empty when the field is absent or not an array.
pub(crate) fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

pub(crate) fn need<T>(v: Option<T>, what: &str) -> Result<T, MarketError> {
    v.ok_or_else(|| MarketError::invalid_response(format!("missing {what}")))
}

/// An answer whose body is not a JSON object: rate limited (429), a server failure (5xx), or
/// unreadable (the outcome of the call is unknown).
pub(crate) fn unreadable(resp: &RawResponse) -> MarketError {
    server_error(resp).unwrap_or_else(|| {
        MarketError::invalid_response(format!("HTTP {} {:?}", resp.status, resp.snippet()))
    })
}

/// A 429 (rate limited) or 5xx (transient) status, whatever the body says.
pub(crate) fn server_error(resp: &RawResponse) -> Option<MarketError> {
    match resp.status {
        429 => Some(MarketError::RateLimited),
        s if s >= 500 => Some(MarketError::Transient(format!(
            "HTTP {s}: {}",
            resp.snippet()
        ))),
        _ => None,
    }
}

/// Any other status that is not a success, once the vendor's envelope said nothing.
pub(crate) fn status_error(resp: &RawResponse) -> Option<MarketError> {
    server_error(resp).or_else(|| {
        (!resp.is_success()).then(|| MarketError::Rejected {
            code: format!("HTTP_{}", resp.status),
            message: resp.snippet(),
        })
    })
}

/// A request form with its signature appended under `key`: `sign` signs every param before it.
pub(crate) fn sign_form(
    mut form: Vec<(&'static str, String)>,
    key: &'static str,
    sign: impl FnOnce(Pairs<'_>) -> String,
) -> Vec<(&'static str, String)> {
    let signature = sign(Pairs(&form));
    form.push((key, signature));
    form
}

/// A form's params as the signing functions take them.
pub(crate) struct Pairs<'a>(&'a [(&'static str, String)]);

impl<'a> IntoIterator for Pairs<'a> {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (&'static str, String)>,
        fn(&'a (&'static str, String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

/// Milliseconds since the Unix epoch: the timestamp a signed request carries.
pub(crate) use procure_domain::clock::now_ms;
