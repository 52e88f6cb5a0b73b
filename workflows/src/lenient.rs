//! Signal inputs that cannot fail a workflow task. A signal's payload is decoded before its
//! handler runs, and a decode error fails the workflow task, again on every retry: one mistyped
//! signal from the Web UI or the CLI would wedge the order. Each signal therefore takes
//! `Lenient<T>`, which accepts any JSON value and keeps what did not fit `T` as a readable
//! error for the order's timeline. (Operator decisions are Updates with validators instead,
//! which refuse bad input before it enters history.)

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

/// Longest excerpt of a refused payload kept on the timeline.
const EXCERPT_CHARS: usize = 120;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lenient<T> {
    Valid(T),
    /// The payload did not fit: why, and an excerpt of what was sent.
    Invalid {
        error: String,
        excerpt: String,
    },
}

impl<T> Lenient<T> {
    /// What was wrong, in words for the timeline (`what` names the signal).
    pub fn refusal(&self, what: &str) -> Option<String> {
        match self {
            Lenient::Valid(_) => None,
            Lenient::Invalid { error, excerpt } => Some(format!(
                "signal {what} ignored: its input {excerpt} does not fit ({error})"
            )),
        }
    }

    /// A value that decoded but breaks a rule (`check`) is refused like one that did not fit.
    pub fn checked<E: std::fmt::Display>(self, check: impl FnOnce(&T) -> Result<(), E>) -> Self
    where
        T: Serialize,
    {
        match self {
            Lenient::Valid(t) => match check(&t) {
                Ok(()) => Lenient::Valid(t),
                Err(e) => Lenient::Invalid {
                    error: e.to_string(),
                    excerpt: serde_json::to_string(&t).unwrap_or_default(),
                },
            },
            invalid => invalid,
        }
    }

    pub fn valid(self) -> Option<T> {
        match self {
            Lenient::Valid(t) => Some(t),
            Lenient::Invalid { .. } => None,
        }
    }
}

impl<T> From<T> for Lenient<T> {
    fn from(t: T) -> Self {
        Lenient::Valid(t)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Any JSON value decodes; only then is it fitted to `T`.
        let v = serde_json::Value::deserialize(d)?;
        Ok(match T::deserialize(&v) {
            Ok(t) => Lenient::Valid(t),
            Err(e) => {
                let text = v.to_string();
                let mut excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
                if text.chars().count() > EXCERPT_CHARS {
                    excerpt.push('…');
                }
                Lenient::Invalid {
                    error: e.to_string(),
                    excerpt,
                }
            }
        })
    }
}

/// Senders (the outbox dispatcher, tests) send the plain value.
impl<T: Serialize> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Lenient::Valid(t) => t.serialize(s),
            Lenient::Invalid { excerpt, .. } => s.serialize_str(excerpt),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::RetryProcurement;

    fn decode<T: DeserializeOwned>(json: &str) -> Lenient<T> {
        serde_json::from_str(json).expect("any JSON decodes")
    }

    #[test]
    fn fitting_input_is_valid_and_anything_else_is_kept_as_a_refusal() {
        assert_eq!(
            decode::<RetryProcurement>(r#"{"max_unit_fen": 1200}"#),
            Lenient::Valid(RetryProcurement {
                max_unit_fen: Some(1200),
                ..Default::default()
            })
        );
        for bad in [
            r#"{"max_unit_fen": "1200"}"#,
            "42",
            "null",
            "[]",
            r#"{"max_unit_fen": 1e30}"#,
            r#"{"offer_id": 7}"#,
        ] {
            let got = decode::<RetryProcurement>(bad);
            let why = got.refusal("retry_procurement").expect(bad);
            assert!(why.starts_with("signal retry_procurement ignored"), "{why}");
        }
        let long = format!("\"{}\"", "x".repeat(500));
        let Lenient::Invalid { excerpt, .. } = decode::<u32>(&long) else {
            panic!("a string is no number")
        };
        assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1);
    }

    #[test]
    fn a_reason_must_be_a_string() {
        assert_eq!(decode::<String>("\"late\""), Lenient::Valid("late".into()));
        assert!(decode::<String>("5").refusal("cancel_order").is_some());
    }
}
