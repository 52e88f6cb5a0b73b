//! The email channel as the API shows it: a customer's contact (to the customer themself and
//! staff; the address is theirs to see, nowhere else) and, for admins, the deliveries with their
//! attempts (never an address: the customer id says whose).

use procure_store::email::{Contact, EmailAttemptRow, EmailDelivery};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ContactView {
    pub customer_id: String,
    pub email: String,
    /// Whether customer notifications are emailed.
    pub email_notifications: bool,
    /// The templates' language (`en`).
    pub locale: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl ContactView {
    /// The contact with its address opened from the seal.
    pub fn new(c: Contact, email: String) -> Self {
        let Contact {
            customer_id,
            email_sealed: _,
            email_notifications,
            locale,
            created_at_ms,
            updated_at_ms,
        } = c;
        ContactView {
            customer_id,
            email,
            email_notifications,
            locale,
            created_at_ms,
            updated_at_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EmailAttemptView {
    pub attempt: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    /// `sent`, `failed` or `skipped`.
    pub outcome: String,
    /// The server's answer or what went wrong, without the address.
    pub error: Option<String>,
}

impl From<EmailAttemptRow> for EmailAttemptView {
    fn from(a: EmailAttemptRow) -> Self {
        let EmailAttemptRow {
            attempt,
            started_at_ms,
            duration_ms,
            outcome,
            error,
        } = a;
        EmailAttemptView {
            attempt,
            started_at_ms,
            duration_ms,
            outcome,
            error,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EmailDeliveryView {
    pub id: i64,
    /// The event (`evt_…`, as in the feed) and its type.
    pub event_id: String,
    pub event_type: String,
    pub customer_id: String,
    /// `pending`, `sent`, `failed` (attempts spent) or `skipped` (no contact, or notifications
    /// off).
    pub status: String,
    pub attempts: i64,
    /// When a pending one is tried next.
    pub next_attempt_at_ms: Option<i64>,
    pub last_error: Option<String>,
    pub sent_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub attempt_log: Vec<EmailAttemptView>,
}

impl EmailDeliveryView {
    pub fn new(d: EmailDelivery, attempts: Vec<EmailAttemptRow>) -> Self {
        let EmailDelivery {
            id,
            event_id,
            customer_id,
            event_type,
            status,
            attempts: n,
            next_attempt_at_ms,
            last_error,
            sent_at_ms,
            created_at_ms,
            updated_at_ms,
        } = d;
        EmailDeliveryView {
            id,
            event_id: super::events::event_id(event_id),
            event_type,
            next_attempt_at_ms: (status == procure_store::email::PENDING)
                .then_some(next_attempt_at_ms),
            customer_id,
            status,
            attempts: n,
            last_error,
            sent_at_ms,
            created_at_ms,
            updated_at_ms,
            attempt_log: attempts.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EmailDeliveryList {
    pub deliveries: Vec<EmailDeliveryView>,
    /// Pass as `before` for the next (older) page; `None`: this was the last.
    pub next_before: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::json;

    #[test]
    fn a_contact_shows_its_address_and_never_the_seal() {
        let c = Contact {
            customer_id: "cust-1".into(),
            email_sealed: "k1:sealed".into(),
            email_notifications: true,
            locale: "en".into(),
            created_at_ms: 100,
            updated_at_ms: 200,
        };
        assert_wire(
            &ContactView::new(c, "ana@shop.example".into()),
            json!({
                "customer_id": "cust-1", "email": "ana@shop.example", "email_notifications": true,
                "locale": "en", "created_at_ms": 100, "updated_at_ms": 200
            }),
        );
    }

    #[test]
    fn a_delivery_shows_its_attempts_and_no_address() {
        let d = EmailDelivery {
            id: 7,
            event_id: 42,
            customer_id: "cust-1".into(),
            event_type: "charge.due".into(),
            status: "failed".into(),
            attempts: 2,
            next_attempt_at_ms: 5_000,
            last_error: Some("127.0.0.1:2525: permanent error (554): no".into()),
            sent_at_ms: None,
            created_at_ms: 1_000,
            updated_at_ms: 5_000,
        };
        let a = |n, outcome: &str| EmailAttemptRow {
            attempt: n,
            started_at_ms: 1_000 * n,
            duration_ms: 3,
            outcome: outcome.into(),
            error: Some("no".into()),
        };
        assert_wire(
            &EmailDeliveryList {
                deliveries: vec![EmailDeliveryView::new(
                    d,
                    vec![a(1, "failed"), a(2, "failed")],
                )],
                next_before: Some(7),
            },
            json!({
                "deliveries": [{
                    "id": 7, "event_id": "evt_42", "event_type": "charge.due", "customer_id": "cust-1",
                    "status": "failed", "attempts": 2, "next_attempt_at_ms": null,
                    "last_error": "127.0.0.1:2525: permanent error (554): no", "sent_at_ms": null,
                    "created_at_ms": 1000, "updated_at_ms": 5000,
                    "attempt_log": [
                        {"attempt": 1, "started_at_ms": 1000, "duration_ms": 3, "outcome": "failed", "error": "no"},
                        {"attempt": 2, "started_at_ms": 2000, "duration_ms": 3, "outcome": "failed", "error": "no"}
                    ]
                }],
                "next_before": 7
            }),
        );
    }
}
