//! Webhook endpoints as an admin sees them: URL, event types, state, why it was disabled, its
//! deliveries by status; never a secret, except the new one in the answer that created or
//! rotated it ([`SecretView`]), once.

use crate::views::events::{event_id, rfc3339};
use procure_domain::{Secret, events::EventType};
use procure_store::subscriptions::{Attempt, DeliveryCounts, Endpoint};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct DeliveryCountsView {
    pub pending: i64,
    pub delivered: i64,
    /// Given up after the retry window; `replay` sends them again.
    pub failed: i64,
}

impl From<DeliveryCounts> for DeliveryCountsView {
    fn from(c: DeliveryCounts) -> Self {
        let DeliveryCounts {
            pending,
            delivered,
            failed,
        } = c;
        DeliveryCountsView {
            pending,
            delivered,
            failed,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EndpointView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub enabled: bool,
    /// Why it is disabled (by an admin, or after failing for days), when it is.
    pub disabled_reason: Option<String>,
    pub disabled_at_ms: Option<i64>,
    /// Since when every attempt failed (no success since).
    pub failing_since_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
    /// Until when the secret before the last rotation still signs beside the current one.
    pub previous_secret_until_ms: Option<i64>,
    pub deliveries: DeliveryCountsView,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl EndpointView {
    pub fn new(e: Endpoint, counts: DeliveryCounts, now_ms: i64) -> Self {
        let Endpoint {
            id,
            url,
            description,
            event_types,
            secret_sealed: _,
            previous_secret_sealed: _,
            previous_secret_until_ms,
            enabled,
            disabled_reason,
            disabled_at_ms,
            failing_since_ms,
            last_success_at_ms,
            fanout_cursor: _,
            created_at_ms,
            updated_at_ms,
        } = e;
        EndpointView {
            id,
            url,
            description,
            event_types,
            enabled,
            disabled_reason,
            disabled_at_ms,
            failing_since_ms,
            last_success_at_ms,
            previous_secret_until_ms: previous_secret_until_ms.filter(|u| *u > now_ms),
            deliveries: counts.into(),
            created_at_ms,
            updated_at_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// The answer that shows a secret: creating an endpoint, rotating its secret. The only time
/// the secret leaves the store.
#[derive(Clone, Debug, Serialize)]
pub struct SecretView {
    #[serde(flatten)]
    pub endpoint: EndpointView,
    /// `whsec_…`: keep it now, it is not shown again.
    pub secret: ShownSecret,
}

/// A secret serialized in clear, on purpose (a [`Secret`] serializes redacted).
#[derive(Clone, Debug)]
pub struct ShownSecret(pub Secret);

impl Serialize for ShownSecret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    pub id: i64,
    /// The event (`webhook-id`) and its type.
    pub event_id: String,
    pub event_type: String,
    /// 1 for the first attempt of a delivery (or of its replay).
    pub attempt: i64,
    pub replay: bool,
    pub started_at: String,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// `delivered` or `failed`.
    pub outcome: String,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        let Attempt {
            id,
            event_id: event,
            event_type,
            attempt,
            replay,
            started_at_ms,
            duration_ms,
            status_code,
            error,
            outcome,
        } = a;
        AttemptView {
            id,
            event_id: event_id(event),
            event_type,
            attempt,
            replay: replay != 0,
            started_at: rfc3339(started_at_ms),
            started_at_ms,
            duration_ms,
            status_code,
            error,
            outcome,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AttemptList {
    pub attempts: Vec<AttemptView>,
    /// Pass as `before` for the next (older) page; absent on the last.
    pub next_before: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplayView {
    /// Events queued for delivery again.
    pub queued: usize,
    pub since: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::json;

    fn endpoint() -> Endpoint {
        Endpoint {
            id: "we_1".into(),
            url: "https://shop.example/hooks".into(),
            description: "shop".into(),
            event_types: vec![EventType::OrderPaid],
            secret_sealed: "v1:dev:00:11".into(),
            previous_secret_sealed: Some("v1:dev:22:33".into()),
            previous_secret_until_ms: Some(2_000),
            enabled: false,
            disabled_reason: Some("disabled by an admin".into()),
            disabled_at_ms: Some(1_500),
            failing_since_ms: None,
            last_success_at_ms: Some(1_000),
            fanout_cursor: 7,
            created_at_ms: 100,
            updated_at_ms: 1_500,
        }
    }

    #[test]
    fn an_endpoint_shows_no_secret_and_the_created_one_shows_it_once() {
        let counts = DeliveryCounts {
            pending: 1,
            delivered: 2,
            failed: 0,
        };
        let view = EndpointView::new(endpoint(), counts, 1_000);
        let expected = json!({
            "id": "we_1", "url": "https://shop.example/hooks", "description": "shop",
            "event_types": ["order.paid"], "enabled": false,
            "disabled_reason": "disabled by an admin", "disabled_at_ms": 1500,
            "failing_since_ms": null, "last_success_at_ms": 1000, "previous_secret_until_ms": 2000,
            "deliveries": {"pending": 1, "delivered": 2, "failed": 0},
            "created_at_ms": 100, "updated_at_ms": 1500
        });
        assert_wire(&view, expected.clone());
        let mut with_secret = expected;
        with_secret["secret"] = json!("whsec_abc");
        assert_wire(
            &SecretView {
                endpoint: view,
                secret: ShownSecret(Secret::new("whsec_abc")),
            },
            with_secret,
        );
        // The overlap is over: no previous secret to speak of.
        let later = EndpointView::new(endpoint(), counts, 2_000);
        assert_eq!(later.previous_secret_until_ms, None);
    }
}
