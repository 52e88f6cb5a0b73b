//! The event log: the business events of the catalogue (`procure_domain::events`), appended in
//! the transaction of the change that causes them, read as a feed by cursor.
//!
//! Invariants kept here, not in callers:
//! - An event commits with its change or not at all: [`append`] writes into the caller's
//!   transaction, and is the last thing that transaction does (on PostgreSQL it takes the log's
//!   lock, held until the commit).
//! - The global cursor (`id`) increases in commit order, so a reader that has seen id `n` never
//!   later finds an event below `n`: SQLite has one writer at a time; on PostgreSQL every append
//!   holds a transaction-level advisory lock ([`LOG_LOCK`]), so ids are taken, and become
//!   visible, one transaction after the other.
//! - Each subject's events are numbered 1, 2, 3, … without gaps (`seq`).
//! - A business event written twice (an activity retried after a timeout) is stored once: its
//!   `dedupe_key` is unique.

use crate::db::{Backend, Result, Store, StoreError, corrupt, json, parse};
use procure_domain::{
    clock::now_ms,
    events::{EventPayload, EventType, SubjectKind},
};
use sqlx::{Any, Transaction};

/// The advisory-lock key the PostgreSQL appends share ("PROCURE1" in ASCII).
pub const LOG_LOCK: i64 = 0x5052_4f43_5552_4531;

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    /// `order:ord_…`, `parcel:pcl_…`, `customer:…`.
    pub subject: String,
    pub customer_id: String,
    pub order_id: Option<String>,
    pub parcel_id: Option<String>,
    /// The payload, as JSON.
    pub data: String,
    /// Unique per business event: a second append with the same key stores nothing.
    pub dedupe_key: Option<String>,
}

impl NewEvent {
    fn of<P: EventPayload>(subject: String, customer_id: &str, payload: &P) -> NewEvent {
        NewEvent {
            kind: P::TYPE,
            subject,
            customer_id: customer_id.to_owned(),
            order_id: None,
            parcel_id: None,
            data: serde_json::to_string(payload).expect("a payload serializes"),
            dedupe_key: None,
        }
    }

    /// An event about an order.
    pub fn order<P: EventPayload>(order_id: &str, customer_id: &str, payload: &P) -> NewEvent {
        NewEvent {
            order_id: Some(order_id.to_owned()),
            ..NewEvent::of(SubjectKind::Order.key(order_id), customer_id, payload)
        }
    }

    /// An event about a parcel.
    pub fn parcel<P: EventPayload>(parcel_id: &str, customer_id: &str, payload: &P) -> NewEvent {
        NewEvent {
            parcel_id: Some(parcel_id.to_owned()),
            ..NewEvent::of(SubjectKind::Parcel.key(parcel_id), customer_id, payload)
        }
    }

    /// A message to a customer about several orders.
    pub fn customer<P: EventPayload>(customer_id: &str, payload: &P) -> NewEvent {
        NewEvent::of(SubjectKind::Customer.key(customer_id), customer_id, payload)
    }

    /// The key that makes a second append of the same business event a no-op.
    pub fn dedupe(mut self, key: impl Into<String>) -> NewEvent {
        self.dedupe_key = Some(key.into());
        self
    }
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The global cursor.
    pub id: i64,
    pub kind: EventType,
    pub version: u32,
    pub subject: String,
    /// The event's number among its subject's.
    pub seq: i64,
    pub customer_id: String,
    pub order_id: Option<String>,
    pub parcel_id: Option<String>,
    pub data: serde_json::Value,
    pub occurred_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    #[sqlx(rename = "type")]
    kind: String,
    version: i64,
    subject: String,
    seq: i64,
    customer_id: String,
    order_id: Option<String>,
    parcel_id: Option<String>,
    data: String,
    occurred_at_ms: i64,
}

impl TryFrom<EventRow> for StoredEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<StoredEvent> {
        Ok(StoredEvent {
            kind: parse(&r.kind)?,
            version: u32::try_from(r.version).map_err(corrupt)?,
            data: json(&r.data)?,
            id: r.id,
            subject: r.subject,
            seq: r.seq,
            customer_id: r.customer_id,
            order_id: r.order_id,
            parcel_id: r.parcel_id,
            occurred_at_ms: r.occurred_at_ms,
        })
    }
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, type, version, subject, seq, customer_id, order_id, parcel_id, data, occurred_at_ms";

/// Append `events` in `tx`, in order; answers how many were new (a repeated dedupe key is not).
/// Call it last in the transaction: on PostgreSQL it takes the log's lock until the commit, and
/// a transaction that takes other locks after it could deadlock with one waiting for the log.
pub async fn append(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    events: &[NewEvent],
) -> Result<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    if backend == Backend::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(LOG_LOCK)
            .execute(&mut **tx)
            .await?;
    }
    let now = now_ms();
    let mut new = 0;
    for e in events {
        new += sqlx::query(
            "INSERT INTO events (type, version, subject, seq, customer_id, order_id, parcel_id, data, dedupe_key, occurred_at_ms) \
             SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5, $6, $7, $8, $9 FROM events WHERE subject = $3 \
             ON CONFLICT DO NOTHING",
        )
        .bind(e.kind.as_str())
        .bind(i64::from(e.kind.version()))
        .bind(&e.subject)
        .bind(&e.customer_id)
        .bind(&e.order_id)
        .bind(&e.parcel_id)
        .bind(&e.data)
        .bind(&e.dedupe_key)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected() as usize;
    }
    Ok(new)
}

/// Who reads the feed: a customer sees their own events, staff all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader<'a> {
    All,
    Customer(&'a str),
}

/// A page of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// Pass as `after` for the next page: the last event's cursor, or `after` itself.
    pub next_cursor: i64,
    /// More events were already there beyond this page.
    pub has_more: bool,
}

impl Store {
    /// Append events in a transaction of their own (for changes that are nothing but the
    /// event, such as a message to a customer). Answers how many were new.
    pub async fn append_events(&self, events: &[NewEvent]) -> Result<usize> {
        let mut tx = self.pool().begin().await?;
        let n = append(&mut tx, self.backend(), events).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Events after cursor `after`, oldest first, at most `limit`; only `types` when given.
    pub async fn events_after(
        &self,
        reader: Reader<'_>,
        after: i64,
        limit: i64,
        types: Option<&[EventType]>,
    ) -> Result<EventPage> {
        let customer = match reader {
            Reader::All => "",
            Reader::Customer(c) => c,
        };
        let type_filter = match types {
            None => String::new(),
            Some(ts) => format!(
                " AND type IN ({})",
                ts.iter()
                    .map(|t| format!("'{}'", t.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id > $1 AND ($2 = '' OR customer_id = $2){type_filter} \
             ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(customer)
        .bind(limit + 1)
        .fetch_all(self.pool())
        .await?;
        let has_more = rows.len() as i64 > limit;
        let events: Vec<StoredEvent> = rows
            .into_iter()
            .take(limit.max(0) as usize)
            .map(StoredEvent::try_from)
            .collect::<Result<_>>()?;
        let next_cursor = events.last().map_or(after, |e| e.id);
        Ok(EventPage {
            events,
            next_cursor,
            has_more,
        })
    }

    /// A customer's notifications (the catalogue's customer-message types), oldest first.
    pub async fn customer_notifications(
        &self,
        customer_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<EventPage> {
        let types: Vec<EventType> = EventType::ALL
            .iter()
            .copied()
            .filter(|t| t.notifies_customer())
            .collect();
        self.events_after(Reader::Customer(customer_id), after, limit, Some(&types))
            .await
    }

    /// One event by its cursor.
    pub async fn event(&self, id: i64) -> Result<StoredEvent> {
        let row: EventRow =
            sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = $1"))
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// A subject's events in order (`order:ord_…`).
    pub async fn subject_events(&self, subject: &str) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE subject = $1 ORDER BY seq"
        ))
        .bind(subject)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(StoredEvent::try_from).collect()
    }

    /// The newest cursor (0 for an empty log).
    pub async fn last_event_id(&self) -> Result<i64> {
        let (id,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events")
                .fetch_one(self.pool())
                .await?;
        Ok(id)
    }
}
