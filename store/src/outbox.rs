//! The outbox: work for Temporal (start a workflow, deliver a signal, sync or trigger a
//! schedule) committed in the same transaction as the change that causes it, and handed over by
//! the API's dispatcher. Each row is one [`OutboxMessage`]: its serde tag is the row's `kind`
//! and its content the row's `payload`, so the code that enqueues and the dispatcher share one
//! type, and the rows written before the type existed read back unchanged.
//!
//! A row that does not decode (an unknown kind or signal, a payload of the wrong shape) can
//! never be delivered: it goes to the dead-letter list at once, with the reason, for an
//! operator; its values are never quoted in the reason.

use crate::db::{Result, Store, StoreError, placeholders};
use procure_domain::clock::now_ms;
use procure_workflows::{
    contract::{ChargePaid, PurchaserResult},
    order::{PaymentSucceeded, StorageChoice, WarehouseInbound},
    parcel::{ParcelPacked, TrackingUpdate},
};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use std::time::Duration;

/// Outbox kinds as stored (the serde tags of [`OutboxMessage`]).
pub const START_ORDER: &str = "start";
pub const SIGNAL_ORDER: &str = "signal";
/// Parcel workflows: the outbox's subject column then holds the parcel id.
pub const START_PARCEL: &str = "start_parcel";
pub const SIGNAL_PARCEL: &str = "signal_parcel";
/// Price monitors: bring a monitor's schedule in line with its row; run it now.
pub const SYNC_SCHEDULE: &str = "sync_schedule";
pub const TRIGGER_SCHEDULE: &str = "trigger_schedule";
/// Create the order's payment intent (the payments lane: no Temporal involved).
pub const CREATE_PAYMENT: &str = "create_payment";

/// The dispatcher's lanes: each has its own loop, so the payment provider never waits behind
/// the engine's backlog and the engine never waits behind the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Workflow starts and signals, schedules: handed to Temporal.
    Engine,
    /// Payment intents: handed to the payment provider.
    Payments,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Engine, Lane::Payments];

    /// The lane a stored kind travels in.
    pub fn of(kind: &str) -> Lane {
        if kind == CREATE_PAYMENT {
            Lane::Payments
        } else {
            Lane::Engine
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Engine => "engine",
            Lane::Payments => "payments",
        }
    }

    /// The rows of this lane (a condition on `kind`).
    fn filter(self) -> &'static str {
        match self {
            Lane::Engine => "kind <> 'create_payment'",
            Lane::Payments => "kind = 'create_payment'",
        }
    }
}

/// One unit of work for Temporal. The subject (order, parcel or monitor id) is stored beside it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum OutboxMessage {
    /// Start the order's workflow.
    #[serde(rename = "start")]
    StartOrder {},
    /// Signal the order's workflow.
    #[serde(rename = "signal")]
    SignalOrder(OrderSignal),
    /// Start the parcel's workflow for these orders.
    #[serde(rename = "start_parcel")]
    StartParcel { order_ids: Vec<String> },
    /// Signal the parcel's workflow.
    #[serde(rename = "signal_parcel")]
    SignalParcel(ParcelSignal),
    /// Make the monitor's schedule reflect its row at `version`.
    #[serde(rename = "sync_schedule")]
    SyncSchedule { version: i64 },
    /// Run the monitor's schedule now.
    #[serde(rename = "trigger_schedule")]
    TriggerSchedule {},
    /// Make the order payable: create its payment intent at the provider.
    #[serde(rename = "create_payment")]
    CreatePayment {},
}

/// A signal to an order workflow: its name and its argument.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", content = "args", rename_all = "snake_case")]
pub enum OrderSignal {
    PaymentSucceeded(PaymentSucceeded),
    WarehouseInbound(WarehouseInbound),
    PurchaserCompleted(PurchaserResult),
    /// A price change's supplement was paid (its charge id is the price change id).
    SupplementPaid(ChargePaid),
    StorageChoice(StorageChoice),
    ChargePaid(ChargePaid),
    /// With the reason.
    CancelOrder(String),
}

/// A signal to a parcel workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "signal", content = "args", rename_all = "snake_case")]
pub enum ParcelSignal {
    ParcelPacked(ParcelPacked),
    ChargePaid(ChargePaid),
    TrackingUpdate(TrackingUpdate),
}

const ORDER_SIGNALS: &[&str] = &[
    "payment_succeeded",
    "warehouse_inbound",
    "purchaser_completed",
    "supplement_paid",
    "storage_choice",
    "charge_paid",
    "cancel_order",
];
const PARCEL_SIGNALS: &[&str] = &["parcel_packed", "charge_paid", "tracking_update"];

impl OutboxMessage {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboxMessage::StartOrder {} => START_ORDER,
            OutboxMessage::SignalOrder(_) => SIGNAL_ORDER,
            OutboxMessage::StartParcel { .. } => START_PARCEL,
            OutboxMessage::SignalParcel(_) => SIGNAL_PARCEL,
            OutboxMessage::SyncSchedule { .. } => SYNC_SCHEDULE,
            OutboxMessage::TriggerSchedule {} => TRIGGER_SCHEDULE,
            OutboxMessage::CreatePayment {} => CREATE_PAYMENT,
        }
    }

    /// Whether this starts something (a workflow, a schedule) that later work of the same
    /// subject needs: starts are handed over before signals.
    pub fn is_start(&self) -> bool {
        matches!(
            self,
            OutboxMessage::StartOrder {}
                | OutboxMessage::StartParcel { .. }
                | OutboxMessage::SyncSchedule { .. }
        )
    }

    /// The kind of work that must be delivered before this one for the same subject: a
    /// signal's workflow start, a trigger's schedule.
    pub fn predecessor(&self) -> Option<&'static str> {
        predecessor(self.kind())
    }

    /// The stored form: (kind, payload).
    pub fn to_row(&self) -> (&'static str, String) {
        let payload = match serde_json::to_value(self) {
            Ok(mut v) => v["payload"].take(),
            Err(_) => serde_json::Value::Null,
        };
        (self.kind(), payload.to_string())
    }

    /// Read a stored row back; the error is the reason an operator reads (no values quoted).
    pub fn from_row(kind: &str, payload: &str) -> Result<OutboxMessage, String> {
        let payload: serde_json::Value = serde_json::from_str(payload).map_err(|e| {
            format!(
                "undecodable {kind} payload: {}",
                redact_quoted(&e.to_string())
            )
        })?;
        let signal = payload["signal"].as_str().map(str::to_owned);
        let wire = serde_json::json!({"kind": kind, "payload": payload});
        serde_json::from_value(wire).map_err(|e| {
            let known: Option<&[&str]> = match kind {
                SIGNAL_ORDER => Some(ORDER_SIGNALS),
                SIGNAL_PARCEL => Some(PARCEL_SIGNALS),
                START_ORDER | START_PARCEL | SYNC_SCHEDULE | TRIGGER_SCHEDULE | CREATE_PAYMENT => {
                    None
                }
                other => return format!("unknown outbox kind {other:?}"),
            };
            match (known, signal) {
                (Some(names), Some(name)) if !names.contains(&name.as_str()) => {
                    if kind == SIGNAL_PARCEL {
                        format!("unknown parcel signal {name:?}")
                    } else {
                        format!("unknown signal {name:?}")
                    }
                }
                (Some(_), None) => format!("{kind} payload names no signal"),
                (_, name) => format!(
                    "undecodable {} payload: {}",
                    name.as_deref().unwrap_or(kind),
                    redact_quoted(&e.to_string())
                ),
            }
        })
    }
}

/// The kind of work that must be delivered before work of `kind` for the same subject.
pub fn predecessor(kind: &str) -> Option<&'static str> {
    match kind {
        SIGNAL_ORDER => Some(START_ORDER),
        SIGNAL_PARCEL => Some(START_PARCEL),
        TRIGGER_SCHEDULE => Some(SYNC_SCHEDULE),
        _ => None,
    }
}

/// `invalid type: string "Jane", expected u32` → `invalid type: string "…", expected u32`:
/// serde quotes the offending input, which may be personal data.
pub fn redact_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut inside = false;
    for c in s.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// Work the dispatcher must hand to Temporal.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxItem {
    pub id: i64,
    /// The order, parcel or price monitor the work is for.
    pub subject: String,
    pub message: OutboxMessage,
    pub attempts: i64,
    /// The W3C `traceparent` of the request that queued the work, when it was traced.
    pub trace_parent: Option<String>,
}

impl OutboxItem {
    pub fn kind(&self) -> &'static str {
        self.message.kind()
    }
}

/// An outbox row that will not be delivered without an operator: a permanent failure, or
/// transient failures past the attempt bound. Carries no payload (personal data and payment
/// details stay in the store); a signal is named, not shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
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
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub discarded: bool,
}

#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    kind: String,
    order_id: String,
    payload: String,
    attempts: i64,
    trace_parent: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DeadRow {
    id: i64,
    kind: String,
    order_id: String,
    payload: String,
    attempts: i64,
    last_error: Option<String>,
    created_at_ms: i64,
    dead_at_ms: Option<i64>,
    discarded_at_ms: Option<i64>,
}

impl From<DeadRow> for DeadLetter {
    fn from(r: DeadRow) -> DeadLetter {
        // Only a signal's name leaves the store, and only when it looks like one.
        let signal = serde_json::from_str::<serde_json::Value>(&r.payload)
            .ok()
            .and_then(|v| v["signal"].as_str().map(str::to_owned))
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
        DeadLetter {
            id: r.id,
            kind: r.kind,
            subject_id: r.order_id,
            signal,
            attempts: r.attempts,
            last_error: r.last_error.unwrap_or_default(),
            created_at_ms: r.created_at_ms,
            dead_at_ms: r.dead_at_ms.unwrap_or_default(),
            discarded: r.discarded_at_ms.is_some(),
        }
    }
}

const DEAD_COLUMNS: &str = "id, kind, order_id, payload, attempts, last_error, created_at_ms, dead_at_ms, \
     discarded_at_ms";

/// Queue `message` for `subject` inside the caller's transaction.
pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    subject: &str,
    message: &OutboxMessage,
) -> Result<()> {
    enqueue_traced(tx, subject, message, None).await
}

/// As [`enqueue`], with the W3C `traceparent` of the request the work belongs to: the
/// dispatcher hands it to Temporal in the same trace.
pub(crate) async fn enqueue_traced(
    tx: &mut Transaction<'_, Any>,
    subject: &str,
    message: &OutboxMessage,
    trace_parent: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    let (kind, payload) = message.to_row();
    sqlx::query("INSERT INTO outbox (kind, order_id, payload, created_at_ms, next_attempt_at_ms, trace_parent) VALUES ($1,$2,$3,$4,$4,$5)")
        .bind(kind)
        .bind(subject)
        .bind(payload)
        .bind(now)
        .bind(trace_parent.filter(|t| is_trace_parent(t)))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A W3C `traceparent` as it is stored: `00-<32 hex>-<16 hex>-<2 hex>`, nothing else (the
/// column never holds anything a caller typed).
pub fn is_trace_parent(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let hex = |p: &str, n: usize| {
        p.len() == n
            && p.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// Outbox errors are kept to a readable length.
fn clip_error(e: &str) -> String {
    e.chars().take(500).collect()
}

impl Store {
    /// Queue work for Temporal outside another transaction (e.g. a signal from a webhook).
    pub async fn enqueue(&self, subject: &str, message: &OutboxMessage) -> Result<()> {
        self.enqueue_traced(subject, message, None).await
    }

    /// As [`Store::enqueue`], in the trace of `trace_parent` (a W3C `traceparent`; anything
    /// else is not stored).
    pub async fn enqueue_traced(
        &self,
        subject: &str,
        message: &OutboxMessage,
        trace_parent: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        enqueue_traced(&mut tx, subject, message, trace_parent).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Live work of every lane whose next attempt is due ([`Store::outbox_due_in`]).
    pub async fn outbox_due(&self, limit: i64) -> Result<Vec<OutboxItem>> {
        let mut due = self.outbox_due_in(Lane::Payments, limit).await?;
        due.extend(self.outbox_due_in(Lane::Engine, limit).await?);
        Ok(due)
    }

    /// Live work of `lane` whose next attempt is due: neither dispatched nor dead. A row that
    /// does not decode is dead-lettered with its reason here, never handed out.
    pub async fn outbox_due_in(&self, lane: Lane, limit: i64) -> Result<Vec<OutboxItem>> {
        let rows: Vec<DueRow> = sqlx::query_as(&format!(
            "SELECT id, kind, order_id, payload, attempts, trace_parent FROM outbox \
             WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL AND next_attempt_at_ms <= $1 \
             AND {} ORDER BY id LIMIT $2",
            lane.filter()
        ))
        .bind(now_ms())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut due = Vec::with_capacity(rows.len());
        for r in rows {
            match OutboxMessage::from_row(&r.kind, &r.payload) {
                Ok(message) => due.push(OutboxItem {
                    id: r.id,
                    subject: r.order_id,
                    message,
                    attempts: r.attempts,
                    trace_parent: r.trace_parent,
                }),
                Err(why) => self.outbox_mark_dead(r.id, &why).await?,
            }
        }
        Ok(due)
    }

    pub async fn outbox_done(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE outbox SET dispatched_at_ms = $1, last_error = NULL WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Mark many rows delivered in one statement (a dispatcher pass's successes).
    pub async fn outbox_done_all(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(500) {
            let list = placeholders(2, chunk.len());
            let sql = format!(
                "UPDATE outbox SET dispatched_at_ms = $1, last_error = NULL WHERE id IN ({list})"
            );
            let mut q = sqlx::query(&sql).bind(now_ms());
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// A transient failure: count the attempt and try again after `delay`, unless this was
    /// attempt `max_attempts`, when the row goes dead instead. Returns true when it went dead.
    pub async fn outbox_retry_later(
        &self,
        id: i64,
        error: &str,
        delay: Duration,
        max_attempts: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let dead: Option<(Option<i64>,)> = sqlx::query_as(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at_ms = $2, \
             dead_at_ms = CASE WHEN attempts + 1 >= $3 THEN $4 ELSE NULL END \
             WHERE id = $5 AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL RETURNING dead_at_ms",
        )
        .bind(clip_error(error))
        .bind(now + delay.as_millis() as i64)
        .bind(max_attempts)
        .bind(now)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(matches!(dead, Some((Some(_),))))
    }

    /// A permanent failure: the row goes dead at once with its reason (the attempt counts).
    pub async fn outbox_mark_dead(&self, id: i64, reason: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, dead_at_ms = $2 \
             WHERE id = $3 AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .bind(clip_error(reason))
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether live work of `kind` for the same subject was queued before row `id` and is not
    /// delivered yet (a signal whose workflow's start is still on its way).
    pub async fn outbox_waits_on(&self, id: i64, subject: &str, kind: &str) -> Result<bool> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) AS n FROM outbox WHERE order_id = $1 AND kind = $2 AND id < $3 \
             AND dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .bind(subject)
        .bind(kind)
        .bind(id)
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }

    /// Dead letters awaiting an operator, oldest first.
    pub async fn outbox_dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        let rows: Vec<DeadRow> = sqlx::query_as(&format!(
            "SELECT {DEAD_COLUMNS} FROM outbox WHERE dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL \
             ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    /// How many dead letters await an operator.
    pub async fn outbox_dead_count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) AS n FROM outbox WHERE dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    /// One row as a dead letter (also once discarded); `NotFound` when there is no such row,
    /// `StateConflict` naming its state when it is not dead.
    pub async fn outbox_dead_letter(&self, id: i64) -> Result<DeadLetter> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            dead: DeadRow,
            dispatched_at_ms: Option<i64>,
        }
        let row: Row = sqlx::query_as(&format!(
            "SELECT {DEAD_COLUMNS}, dispatched_at_ms FROM outbox WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        if row.dead.dead_at_ms.is_none() {
            let state = if row.dispatched_at_ms.is_some() {
                "delivered"
            } else {
                "pending delivery"
            };
            return Err(StoreError::StateConflict(format!(
                "outbox row {id} is not dead: it is {state}"
            )));
        }
        Ok(row.dead.into())
    }

    /// An operator sends a dead letter again: back to pending, due now, attempts from zero.
    pub async fn outbox_retry_dead(&self, id: i64) -> Result<()> {
        let n = sqlx::query(
            "UPDATE outbox SET dead_at_ms = NULL, attempts = 0, next_attempt_at_ms = $1 \
             WHERE id = $2 AND dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(self.not_a_dead_letter(id).await);
        }
        Ok(())
    }

    /// An operator gives a dead letter up: it leaves the list and is never delivered. Discarding
    /// a discarded row again changes nothing.
    pub async fn outbox_discard_dead(&self, id: i64, by: &str) -> Result<()> {
        let n = sqlx::query(
            "UPDATE outbox SET discarded_at_ms = $1, discarded_by = $2 \
             WHERE id = $3 AND dead_at_ms IS NOT NULL AND discarded_at_ms IS NULL",
        )
        .bind(now_ms())
        .bind(by)
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 && !self.outbox_dead_letter(id).await?.discarded {
            return Err(self.not_a_dead_letter(id).await);
        }
        Ok(())
    }

    /// Why row `id` cannot be retried or discarded.
    async fn not_a_dead_letter(&self, id: i64) -> StoreError {
        match self.outbox_dead_letter(id).await {
            Ok(d) if d.discarded => {
                StoreError::StateConflict(format!("outbox row {id} was discarded"))
            }
            Ok(_) => StoreError::StateConflict(format!("outbox row {id} changed meanwhile")),
            Err(e) => e,
        }
    }

    /// Live work not delivered yet (dead letters not included).
    pub async fn outbox_pending(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) AS n FROM outbox WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procure_domain::{Currency, Money};

    #[test]
    fn rows_written_before_the_type_read_back() {
        for (kind, payload, want) in [
            ("start", "{}", OutboxMessage::StartOrder {}),
            (
                "signal",
                r#"{"signal":"cancel_order","args":"customer declined price change c1"}"#,
                OutboxMessage::SignalOrder(OrderSignal::CancelOrder(
                    "customer declined price change c1".into(),
                )),
            ),
            (
                "signal",
                r#"{"signal":"payment_succeeded","args":{"intent_id":"pi_1","amount":{"minor":1234,"currency":"USD"}}}"#,
                OutboxMessage::SignalOrder(OrderSignal::PaymentSucceeded(PaymentSucceeded {
                    intent_id: "pi_1".into(),
                    amount: Money::new(1234, Currency::USD),
                })),
            ),
            (
                "start_parcel",
                r#"{"order_ids":["o1","o2"]}"#,
                OutboxMessage::StartParcel {
                    order_ids: vec!["o1".into(), "o2".into()],
                },
            ),
            (
                "sync_schedule",
                r#"{"version":3}"#,
                OutboxMessage::SyncSchedule { version: 3 },
            ),
            ("trigger_schedule", "{}", OutboxMessage::TriggerSchedule {}),
        ] {
            let got = OutboxMessage::from_row(kind, payload).unwrap();
            assert_eq!(got, want, "{kind} {payload}");
            assert_eq!(got.kind(), kind);
            let (k, p) = got.to_row();
            assert_eq!(k, kind);
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&p).unwrap(),
                serde_json::from_str::<serde_json::Value>(payload).unwrap()
            );
        }
    }

    #[test]
    fn a_row_that_does_not_decode_names_why_without_its_values() {
        let why = OutboxMessage::from_row(
            "signal",
            r#"{"signal":"cancel_order","args":{"name":"Jane Doe, 1 Main St"}}"#,
        )
        .unwrap_err();
        assert!(why.starts_with("undecodable cancel_order payload"), "{why}");
        assert!(!why.contains("Jane"), "the value is elided: {why}");
        let why = OutboxMessage::from_row("signal", r#"{"signal":"payment_succeeded","args":{}}"#)
            .unwrap_err();
        assert!(why.contains("missing field"), "{why}");
        assert_eq!(
            OutboxMessage::from_row("signal", r#"{"signal":"x","args":1}"#).unwrap_err(),
            "unknown signal \"x\""
        );
        assert_eq!(
            OutboxMessage::from_row("signal_parcel", r#"{"signal":"x"}"#).unwrap_err(),
            "unknown parcel signal \"x\""
        );
        assert_eq!(
            OutboxMessage::from_row("teleport", "{}").unwrap_err(),
            "unknown outbox kind \"teleport\""
        );
        assert!(
            OutboxMessage::from_row("start", "not json")
                .unwrap_err()
                .starts_with("undecodable start payload")
        );
    }

    #[test]
    fn quoted_values_are_elided() {
        assert_eq!(
            redact_quoted(r#"invalid type: string "secret", expected u32"#),
            r#"invalid type: string "…", expected u32"#
        );
        assert_eq!(redact_quoted(r#"open "quote"#), r#"open "…"#);
        assert_eq!(
            redact_quoted("missing field `amount`"),
            "missing field `amount`"
        );
    }

    #[test]
    fn only_a_w3c_traceparent_is_stored() {
        assert!(is_trace_parent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "'; DROP TABLE outbox; --",
        ] {
            assert!(!is_trace_parent(bad), "{bad}");
        }
    }

    #[test]
    fn a_signal_waits_for_its_own_start() {
        assert_eq!(predecessor("signal"), Some("start"));
        assert_eq!(predecessor(SIGNAL_PARCEL), Some(START_PARCEL));
        assert_eq!(predecessor(TRIGGER_SCHEDULE), Some(SYNC_SCHEDULE));
        assert_eq!(predecessor("start"), None);
    }
}
