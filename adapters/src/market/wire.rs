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

/// A vendor amount in yuan, held as fen. It deserializes from a JSON number (`6.15`) or a
/// decimal string (`"6.15"`) by reading the literal text of the answer, never an `f64`, and goes
/// through [`procure_domain::money::parse_major`]: more decimals than a fen, a sign or a
/// non-number is an error naming the field, never a silent round. Deserialize the answer's text
/// with [`typed`] (a [`Value`] has already turned numbers into floats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Yuan(pub(crate) i64);

/// A vendor amount already in fen (an integer), as a JSON number or a numeric string. A
/// fractional value (`4400.5`) is an error: fen have no fraction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Fen(pub(crate) i64);

/// One JSON scalar as it was written: a string's content, or a bare literal (a number's digits
/// as sent, never through an `f64`).
enum Literal {
    Quoted(String),
    Bare(String),
}

fn literal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Literal, D::Error> {
    use serde::de::Error;
    let raw: Box<serde_json::value::RawValue> = serde::Deserialize::deserialize(d)?;
    let lit = raw.get().trim();
    if lit.starts_with('"') {
        serde_json::from_str::<String>(lit)
            .map(Literal::Quoted)
            .map_err(D::Error::custom)
    } else {
        Ok(Literal::Bare(lit.to_owned()))
    }
}

/// The literal text of an amount: a number's digits as sent, or a string's content.
fn scalar_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match literal(d)? {
        Literal::Quoted(s) => Ok(s),
        Literal::Bare(lit) if lit.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => Ok(lit),
        Literal::Bare(lit) => Err(serde::de::Error::custom(format!(
            "expected an amount (a number or a decimal string), found {}",
            lit.chars().take(32).collect::<String>()
        ))),
    }
}

/// A marketplace id (a Long the vendor may send as a JSON number, possibly beyond an `f64`'s
/// precision, or as a string), kept as its literal digits or the string.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct IdText(pub(crate) String);

impl<'de> serde::Deserialize<'de> for IdText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match literal(d)? {
            Literal::Quoted(s) => Ok(IdText(s)),
            Literal::Bare(lit) if !lit.is_empty() && lit.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(IdText(lit))
            }
            Literal::Bare(lit) => Err(serde::de::Error::custom(format!(
                "expected an id (an integer or a string), found {}",
                lit.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Yuan {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = scalar_text(d)?;
        procure_domain::money::parse_major(&text, 2)
            .map(Yuan)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Fen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = scalar_text(d)?;
        procure_domain::money::parse_major(&text, 0)
            .map(Fen)
            .map_err(serde::de::Error::custom)
    }
}

/// Deserialize a vendor answer's text into its typed shape; a mismatch is an unreadable answer
/// naming the call and the field's path (`result.baseInfo.totalAmount: amount "6.155" is finer
/// than the minor unit …`).
pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    body: &str,
    what: &str,
) -> Result<T, MarketError> {
    let mut de = serde_json::Deserializer::from_str(body);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| MarketError::invalid_response(format!("{what}: {}: {}", e.path(), e.inner())))
}

#[cfg(test)]
mod amount_tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Priced {
        price: Yuan,
        #[serde(default)]
        fen: Option<Fen>,
    }

    fn price(json: &str) -> Result<i64, String> {
        typed::<Priced>(json, "test")
            .map(|p| p.price.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn yuan_numbers_and_strings_are_the_same_fen() {
        assert_eq!(price(r#"{"price":6.15}"#), Ok(615));
        assert_eq!(price(r#"{"price":"6.15"}"#), Ok(615));
        assert_eq!(price(r#"{"price":18}"#), Ok(1800));
        assert_eq!(price(r#"{"price":0.29}"#), Ok(29));
        assert_eq!(price(r#"{"price": 1.15 }"#), Ok(115));
    }

    #[test]
    fn yuan_refuses_what_it_would_round() {
        for (json, says) in [
            (r#"{"price":6.155}"#, "finer than the minor unit"),
            // As an f64 this is exactly 6.15: only the literal text shows the extra digit.
            (
                r#"{"price":6.1500000000000001}"#,
                "finer than the minor unit",
            ),
            (r#"{"price":-1}"#, "negative"),
            (r#"{"price":"abc"}"#, "invalid decimal"),
            (r#"{"price":6.15e0}"#, "invalid decimal"),
            (r#"{"price":null}"#, "expected an amount"),
            (r#"{"price":true}"#, "expected an amount"),
            (r#"{"price":[6.15]}"#, "expected an amount"),
        ] {
            let err = price(json).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
            assert!(
                err.contains("test: price:"),
                "{json}: names the call and field: {err}"
            );
        }
    }

    #[test]
    fn fen_is_an_integer_however_it_is_sent() {
        let fen = |json: &str| typed::<Priced>(json, "t").map(|p| p.fen.map(|f| f.0));
        assert_eq!(fen(r#"{"price":1,"fen":4400}"#).unwrap(), Some(4400));
        assert_eq!(fen(r#"{"price":1,"fen":"4400"}"#).unwrap(), Some(4400));
        assert!(fen(r#"{"price":1,"fen":4400.5}"#).is_err());
        assert!(fen(r#"{"price":1,"fen":-5}"#).is_err());
    }

    #[test]
    fn ids_keep_their_literal_digits_or_string() {
        #[derive(serde::Deserialize)]
        struct Ids {
            id: IdText,
        }
        let id = |json: &str| typed::<Ids>(json, "t").map(|i| i.id.0);
        // Beyond an f64's 2^53: the digits as sent.
        assert_eq!(
            id(r#"{"id":128403042259997715}"#).unwrap(),
            "128403042259997715"
        );
        assert_eq!(id(r#"{"id":"tb-42"}"#).unwrap(), "tb-42");
        for bad in [
            r#"{"id":1.5}"#,
            r#"{"id":-3}"#,
            r#"{"id":null}"#,
            r#"{"id":true}"#,
        ] {
            let err = id(bad).unwrap_err().to_string();
            assert!(err.contains("t: id: expected an id"), "{bad}: {err}");
        }
    }
}
