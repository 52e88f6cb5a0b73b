//! The outbox's dead letters as operators see them: kind, subject, signal, attempts, last
//! error and times; never the payload, which may carry personal data or payment details.

use procure_store::outbox::DeadLetter;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct DeadLetterView {
    pub id: i64,
    pub kind: String,
    /// The order, parcel or price monitor the work is for.
    pub subject_id: String,
    /// The signal's name, for signals.
    pub signal: Option<String>,
    pub attempts: i64,
    pub last_error: String,
    pub created_at_ms: i64,
    pub dead_at_ms: i64,
    /// Given up by an operator (such rows leave the list).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub discarded: bool,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        let DeadLetter {
            id,
            kind,
            subject_id,
            signal,
            attempts,
            last_error,
            created_at_ms,
            dead_at_ms,
            discarded,
        } = d;
        DeadLetterView {
            id,
            kind,
            subject_id,
            signal,
            attempts,
            last_error,
            created_at_ms,
            dead_at_ms,
            discarded,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeadList {
    /// Dead letters awaiting an operator (all of them, whatever `limit` lists).
    pub dead_count: i64,
    /// Live work not delivered yet.
    pub pending_count: i64,
    pub dead: Vec<DeadLetterView>,
}

/// What a retry or a discard did.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub id: i64,
    /// `pending` after a retry, `discarded` after a discard.
    pub status: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::{Value, json};

    fn dead(discarded: bool) -> DeadLetter {
        DeadLetter {
            id: 42,
            kind: "signal".into(),
            subject_id: "ord_1".into(),
            signal: Some("payment_succeeded".into()),
            attempts: 25,
            last_error: "workflow execution already completed".into(),
            created_at_ms: 1_700_000_000_000,
            dead_at_ms: 1_700_000_600_000,
            discarded,
        }
    }

    fn dead_json() -> Value {
        json!({
            "id": 42,
            "kind": "signal",
            "subject_id": "ord_1",
            "signal": "payment_succeeded",
            "attempts": 25,
            "last_error": "workflow execution already completed",
            "created_at_ms": 1_700_000_000_000i64,
            "dead_at_ms": 1_700_000_600_000i64,
        })
    }

    #[test]
    fn a_dead_letter_view_is_the_row_on_the_wire() {
        // The row still serializes (the store's tests check it carries no payload): the view
        // says the same.
        let d = dead(false);
        assert_eq!(serde_json::to_value(&d).unwrap(), dead_json());
        assert_wire(&DeadLetterView::from(d), dead_json());
        // Only a discarded one says so.
        let d = dead(true);
        let mut want = dead_json();
        want["discarded"] = json!(true);
        assert_eq!(serde_json::to_value(&d).unwrap(), want);
        assert_wire(&DeadLetterView::from(d), want);
        assert_wire(
            &DeadList {
                dead_count: 1,
                pending_count: 3,
                dead: vec![dead(false).into()],
            },
            json!({"dead_count": 1, "pending_count": 3, "dead": [dead_json()]}),
        );
    }
}
