//! The event log as the storefront reads it: the one envelope of `docs/events.md`, the same in
//! the pull feed (`GET /api/v1/events`), a customer's notifications and every webhook delivery
//! (whose body is this view, serialized once).

use procure_domain::events::EventType;
use procure_store::events::{EventPage, StoredEvent};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventView {
    /// `evt_<cursor>`: the `webhook-id` of its deliveries.
    pub id: String,
    pub cursor: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub version: u32,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    pub subject: String,
    pub sequence: i64,
    pub customer_id: String,
    pub order_id: Option<String>,
    pub parcel_id: Option<String>,
    pub data: serde_json::Value,
}

/// The `webhook-id` of an event.
pub fn event_id(cursor: i64) -> String {
    format!("evt_{cursor}")
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl From<StoredEvent> for EventView {
    fn from(e: StoredEvent) -> Self {
        let StoredEvent {
            id,
            kind,
            version,
            subject,
            seq,
            customer_id,
            order_id,
            parcel_id,
            data,
            occurred_at_ms,
        } = e;
        EventView {
            id: event_id(id),
            cursor: id.to_string(),
            kind,
            version,
            timestamp: rfc3339(occurred_at_ms),
            subject,
            sequence: seq,
            customer_id,
            order_id,
            parcel_id,
            data,
        }
    }
}

/// A page of the feed.
#[derive(Clone, Debug, Serialize)]
pub struct EventList {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page (the last event's cursor, or the `after` given).
    pub next_cursor: String,
    /// More events are there already: ask again at once.
    pub has_more: bool,
}

impl From<EventPage> for EventList {
    fn from(p: EventPage) -> Self {
        EventList {
            events: p.events.into_iter().map(Into::into).collect(),
            next_cursor: p.next_cursor.to_string(),
            has_more: p.has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::json;

    #[test]
    fn the_envelope_is_pinned() {
        let e = StoredEvent {
            id: 42,
            kind: EventType::OrderPaid,
            version: 1,
            subject: "order:ord_1".into(),
            seq: 3,
            customer_id: "cust-1".into(),
            order_id: Some("ord_1".into()),
            parcel_id: None,
            data: json!({"order_id": "ord_1"}),
            occurred_at_ms: 1_764_584_102_123,
        };
        assert_wire(
            &EventView::from(e),
            json!({
                "id": "evt_42", "cursor": "42", "type": "order.paid", "version": 1,
                "timestamp": "2025-12-01T10:15:02.123Z", "subject": "order:ord_1", "sequence": 3,
                "customer_id": "cust-1", "order_id": "ord_1", "parcel_id": null,
                "data": {"order_id": "ord_1"}
            }),
        );
    }
}
