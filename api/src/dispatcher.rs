//! The outbox dispatcher: hands committed work (workflow starts, signals) to Temporal, retrying
//! with backoff while Temporal is unreachable. Starts are idempotent (the workflow id is derived
//! from the order id, a duplicate start counts as done) and each signal carries its outbox id as
//! request id, so the server drops a redelivery; running several dispatchers is therefore safe.
//!
//! Every delivery failure is classified here, once ([`classify`]): permanent (the workflow is
//! not found or has finished, an undecodable payload, an unknown kind or signal) puts the row
//! on the dead-letter list at once with its reason; transient (Temporal unreachable, timeouts,
//! anything else) is retried with backoff, at most `max_attempts` times, then the row goes dead
//! too. Dead rows are never picked again until an operator retries them
//! (`/api/v1/admin/outbox/dead`).

use crate::{OrderTimings, temporal::TemporalLink};
use futures_util::{StreamExt, stream};
use procure_activities::prices::{SYNC_SCHEDULE, TRIGGER_SCHEDULE};
use procure_activities::store::{OutboxItem, Store};
use procure_activities::warehouse::{SIGNAL_PARCEL, START_PARCEL};
use procure_workflows::{
    OrderWorkflow, ParcelWorkflow,
    contract::{ChargePaid, PurchaserResult, SupplementPaid},
    order::{OrderInput, PaymentSucceeded, StorageChoice, WarehouseInbound},
    order_workflow_id,
    parcel::{ParcelInput, ParcelPacked, TrackingUpdate},
    parcel_workflow_id,
};
use std::{future::Future, sync::Arc, time::Duration};
use temporalio_client::{
    Client, WorkflowSignalOptions, WorkflowStartOptions,
    errors::{WorkflowInteractionError, WorkflowStartError},
    schedules::ScheduleError,
    tonic::{Code, Status},
};
use tokio::sync::Notify;

pub struct Dispatcher {
    pub store: Store,
    pub temporal: Arc<TemporalLink>,
    pub notify: Arc<Notify>,
    pub task_queue: String,
    pub timings: OrderTimings,
    /// Deliveries of one row before a transient failure makes it dead (the setting
    /// `outbox.max_attempts`, [`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
}

const BATCH: i64 = 200;
const CONCURRENCY: usize = 32;

/// Attempts per row by default. With [`retry_delay`] (0.2 s doubling to a 30 s ceiling) the
/// delays before attempt 150 add up to 0.2 × (2⁸ − 1) = 51 s for the first eight, then
/// 141 × 30 s = 4,230 s: 71 minutes of backoff alone (each attempt's own time comes on top), so
/// an outage of Temporal of about an hour is ridden out ([`patience`]).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 150;

/// The wait after a row's `attempts`-th failed delivery (0-based): 0.2 s, doubling, at most 30 s.
pub fn retry_delay(attempts: i64) -> Duration {
    Duration::from_millis(200 * 2u64.pow(attempts.clamp(0, 8) as u32)).min(Duration::from_secs(30))
}

/// The least time a row keeps being retried before it goes dead: the sum of the waits between
/// `max_attempts` attempts.
pub fn patience(max_attempts: u32) -> Duration {
    (0..i64::from(max_attempts.saturating_sub(1)))
        .map(retry_delay)
        .sum()
}

/// How a delivery failed, decided once for every kind of outbox work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No retry can succeed: the row goes dead at once with this reason.
    Permanent(String),
    /// Worth retrying with backoff, up to the attempt bound.
    Transient(String),
}

/// A failure the dispatcher itself knows to be permanent (an unknown kind or signal, an
/// undecodable payload). Its text is what the operator reads.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

/// Decode a payload, or fail permanently naming what was wrong but not the values: serde's
/// message quotes the offending input, which may be personal data, so quoted text is elided.
fn decode<T: serde::de::DeserializeOwned>(what: &str, v: serde_json::Value) -> anyhow::Result<T> {
    serde_json::from_value(v).map_err(|e| {
        anyhow::Error::new(Permanent(format!(
            "undecodable {what} payload: {}",
            redact_quoted(&e.to_string())
        )))
    })
}

/// `invalid type: string "Jane", expected u32` → `invalid type: string "…", expected u32`.
fn redact_quoted(s: &str) -> String {
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

/// Classify a gRPC status from Temporal. A missing or finished workflow (or schedule) cannot
/// take the work; a refused request will be refused again; the rest may pass later.
fn classify_status(s: &Status) -> Failure {
    let what = format!("{:?}: {}", s.code(), s.message());
    match s.code() {
        // "workflow execution already completed", "workflow not found for ID: …". A missing
        // namespace is a configuration fault the operator fixes; it stays transient.
        Code::NotFound if !s.message().to_ascii_lowercase().contains("namespace") => {
            Failure::Permanent(what)
        }
        Code::InvalidArgument | Code::Unimplemented => Failure::Permanent(what),
        _ => Failure::Transient(what),
    }
}

/// The one classification of delivery failures (see the module docs).
pub fn classify(e: &anyhow::Error) -> Failure {
    for cause in e.chain() {
        if let Some(p) = cause.downcast_ref::<Permanent>() {
            return Failure::Permanent(p.0.clone());
        }
        if cause.downcast_ref::<serde_json::Error>().is_some() {
            return Failure::Permanent("undecodable payload".into());
        }
        if let Some(w) = cause.downcast_ref::<WorkflowInteractionError>() {
            return match w {
                WorkflowInteractionError::NotFound(s) | WorkflowInteractionError::Rpc(s) => {
                    classify_status(s)
                }
                WorkflowInteractionError::PayloadConversion(p) => {
                    Failure::Permanent(format!("payload cannot be encoded: {p}"))
                }
                other => Failure::Transient(other.to_string()),
            };
        }
        if let Some(w) = cause.downcast_ref::<WorkflowStartError>() {
            return match w {
                WorkflowStartError::Rpc(s) => classify_status(s),
                WorkflowStartError::PayloadConversion(p) => {
                    Failure::Permanent(format!("input cannot be encoded: {p}"))
                }
                other => Failure::Transient(other.to_string()),
            };
        }
        if let Some(ScheduleError::Rpc(s)) = cause.downcast_ref::<ScheduleError>() {
            return classify_status(s);
        }
        if let Some(s) = cause.downcast_ref::<Status>() {
            return classify_status(s);
        }
    }
    Failure::Transient(format!("{e:#}"))
}

/// The kind of outbox work that must be delivered before `kind` for the same subject: a
/// signal's workflow start, a trigger's schedule.
fn predecessor(kind: &str) -> Option<&'static str> {
    match kind {
        "signal" => Some("start"),
        SIGNAL_PARCEL => Some(START_PARCEL),
        TRIGGER_SCHEDULE => Some(SYNC_SCHEDULE),
        _ => None,
    }
}

impl Dispatcher {
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut idle_backoff = Duration::from_millis(100);
        loop {
            let worked = match self.pass().await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "outbox dispatch pass failed; will retry"
                    );
                    false
                }
            };
            if worked {
                idle_backoff = Duration::from_millis(100);
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(idle_backoff) => {}
            }
            idle_backoff = (idle_backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One pass over due items; returns how many were handed over.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let items = self.store.outbox_due(BATCH).await?;
        if items.is_empty() {
            return Ok(0);
        }
        let client = match self.temporal.client().await {
            Ok(c) => c,
            Err(e) => {
                // Temporal unreachable: a transient failure of every due row, so an outage
                // counts against each row's bound like any other.
                let e = e.context("Temporal unreachable");
                for item in &items {
                    self.failed(item, Failure::Transient(format!("{e:#}")))
                        .await?;
                }
                return Ok(0);
            }
        };
        // Starts before signals, so a signal never races its own workflow's start (and a
        // schedule exists before it is triggered).
        let (starts, signals): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|i| i.kind == "start" || i.kind == START_PARCEL || i.kind == SYNC_SCHEDULE);
        let mut done = 0;
        for batch in [starts, signals] {
            let results: Vec<(OutboxItem, anyhow::Result<()>)> = stream::iter(batch)
                .map(|item| {
                    let client = client.clone();
                    async move {
                        let r = self.deliver(&client, &item).await;
                        (item, r)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            for (item, r) in results {
                match r {
                    Ok(()) => {
                        self.store.outbox_done(item.id).await?;
                        done += 1;
                    }
                    Err(e) => {
                        let mut failure = classify(&e);
                        // "Not found" while the workflow's own start is still queued (it failed
                        // transiently this pass) means "not yet", not "never".
                        if let (Failure::Permanent(why), Some(first)) =
                            (&failure, predecessor(&item.kind))
                            && self
                                .store
                                .outbox_waits_on(item.id, &item.order_id, first)
                                .await?
                        {
                            failure = Failure::Transient(format!("waiting for its {first}: {why}"));
                        }
                        self.failed(&item, failure).await?;
                    }
                }
            }
        }
        Ok(done)
    }

    /// Record a failed delivery: dead at once when permanent, else retried later within the
    /// bound.
    async fn failed(&self, item: &OutboxItem, failure: Failure) -> anyhow::Result<()> {
        let attempt = item.attempts + 1;
        match failure {
            Failure::Permanent(why) => {
                tracing::error!(outbox_id = item.id, subject = %item.order_id, kind = %item.kind, attempt, reason = %why, "outbox delivery failed permanently; dead-lettered");
                self.store.outbox_mark_dead(item.id, &why).await?;
            }
            Failure::Transient(why) => {
                let dead = self
                    .store
                    .outbox_retry_later(
                        item.id,
                        &why,
                        retry_delay(item.attempts),
                        i64::from(self.max_attempts.max(1)),
                    )
                    .await?;
                if dead {
                    tracing::error!(outbox_id = item.id, subject = %item.order_id, kind = %item.kind, attempt, reason = %why, "outbox delivery still failing after its last attempt; dead-lettered");
                } else {
                    tracing::warn!(outbox_id = item.id, subject = %item.order_id, kind = %item.kind, attempt, error = %why, "outbox delivery failed; will retry");
                }
            }
        }
        Ok(())
    }

    async fn deliver(&self, client: &Client, item: &OutboxItem) -> anyhow::Result<()> {
        let wf_id = order_workflow_id(&item.order_id);
        match item.kind.as_str() {
            "start" => {
                let input = OrderInput {
                    order_id: item.order_id.clone(),
                    payment_timeout_secs: self.timings.payment_timeout.as_secs().max(1),
                    inbound_timeout_secs: self.timings.inbound_timeout.as_secs().max(1),
                    tracking_poll_secs: self.timings.tracking_poll.as_secs().max(1),
                    purchaser_deadline_secs: self.timings.purchaser_deadline.as_secs().max(1),
                    price_change_deadline_secs: self.timings.price_change_deadline.as_secs().max(1),
                    storage_reminder_secs: self.timings.storage_reminder.as_secs(),
                    storage_grace_secs: self.timings.storage_grace.as_secs().max(1),
                };
                let opts = WorkflowStartOptions::new(self.task_queue.clone(), wf_id).build();
                match client.start_workflow(OrderWorkflow::run, input, opts).await {
                    Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {
                        tracing::info!(order_id = %item.order_id, "order workflow started");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            "signal" => {
                let name = item.payload["signal"].as_str().unwrap_or_default();
                let args = item.payload["args"].clone();
                let handle = client.get_workflow_handle::<OrderWorkflow>(wf_id);
                let opts = WorkflowSignalOptions::builder()
                    .request_id(format!("outbox-{}", item.id))
                    .build();
                match name {
                    "payment_succeeded" => {
                        let p: PaymentSucceeded = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::payment_succeeded, p.into(), opts)
                            .await?;
                    }
                    "warehouse_inbound" => {
                        let s: WarehouseInbound = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::warehouse_inbound, s.into(), opts)
                            .await?;
                    }
                    "purchaser_completed" => {
                        let r: PurchaserResult = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::purchaser_completed, r.into(), opts)
                            .await?;
                    }
                    "supplement_paid" => {
                        let p: SupplementPaid = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::supplement_paid, p.into(), opts)
                            .await?;
                    }
                    "storage_choice" => {
                        let c: StorageChoice = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::storage_choice, c.into(), opts)
                            .await?;
                    }
                    "charge_paid" => {
                        let p: ChargePaid = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::charge_paid, p.into(), opts)
                            .await?;
                    }
                    "cancel_order" => {
                        let reason: String = decode(name, args)?;
                        handle
                            .signal(OrderWorkflow::cancel_order, reason.into(), opts)
                            .await?;
                    }
                    other => {
                        return Err(Permanent(format!("unknown signal {other:?}")).into());
                    }
                }
                Ok(())
            }
            START_PARCEL => {
                let order_ids: Vec<String> =
                    decode(START_PARCEL, item.payload["order_ids"].clone())?;
                let input = ParcelInput {
                    parcel_id: item.order_id.clone(),
                    order_ids,
                    payment_timeout_secs: self.timings.payment_timeout.as_secs().max(1),
                    tracking_poll_secs: self.timings.tracking_poll.as_secs().max(1),
                    polls_per_run: self.timings.parcel_polls_per_run.max(1),
                    resume: None,
                };
                let opts = WorkflowStartOptions::new(
                    self.task_queue.clone(),
                    parcel_workflow_id(&item.order_id),
                )
                .build();
                match client
                    .start_workflow(ParcelWorkflow::run, input, opts)
                    .await
                {
                    Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {
                        tracing::info!(parcel_id = %item.order_id, "parcel workflow started");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            SIGNAL_PARCEL => {
                let name = item.payload["signal"].as_str().unwrap_or_default();
                let args = item.payload["args"].clone();
                let handle = client
                    .get_workflow_handle::<ParcelWorkflow>(parcel_workflow_id(&item.order_id));
                let opts = WorkflowSignalOptions::builder()
                    .request_id(format!("outbox-{}", item.id))
                    .build();
                match name {
                    "parcel_packed" => {
                        let p: ParcelPacked = decode(name, args)?;
                        handle
                            .signal(ParcelWorkflow::parcel_packed, p.into(), opts)
                            .await?;
                    }
                    "charge_paid" => {
                        let p: ChargePaid = decode(name, args)?;
                        handle
                            .signal(ParcelWorkflow::charge_paid, p.into(), opts)
                            .await?;
                    }
                    "tracking_update" => {
                        let u: TrackingUpdate = decode(name, args)?;
                        handle
                            .signal(ParcelWorkflow::tracking_update, u.into(), opts)
                            .await?;
                    }
                    other => {
                        return Err(Permanent(format!("unknown parcel signal {other:?}")).into());
                    }
                }
                Ok(())
            }
            SYNC_SCHEDULE => {
                let r =
                    crate::schedules::sync(client, &self.store, &self.task_queue, &item.order_id)
                        .await;
                if let Err(e) = &r {
                    self.store
                        .mark_schedule_error(&item.order_id, &format!("{e:#}"))
                        .await?;
                }
                r
            }
            TRIGGER_SCHEDULE => {
                crate::schedules::trigger(client, &self.store, &item.order_id).await
            }
            other => Err(Permanent(format!("unknown outbox kind {other:?}")).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permanent(f: Failure) -> String {
        match f {
            Failure::Permanent(why) => why,
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn a_finished_or_missing_workflow_is_permanent() {
        for (status, text) in [
            (
                Status::not_found("workflow execution already completed"),
                "already completed",
            ),
            (
                Status::not_found("workflow not found for ID: order-x"),
                "not found",
            ),
        ] {
            let e = anyhow::Error::new(WorkflowInteractionError::NotFound(status));
            let why = permanent(classify(&e));
            assert!(why.contains(text), "{why}");
            assert!(why.starts_with("NotFound"), "{why}");
        }
        let started = anyhow::Error::new(WorkflowStartError::Rpc(Status::invalid_argument(
            "bad input",
        )));
        permanent(classify(&started));
    }

    #[test]
    fn an_unreachable_or_slow_temporal_is_transient() {
        for status in [
            Status::unavailable("connection refused"),
            Status::deadline_exceeded("timeout"),
            Status::resource_exhausted("busy"),
            Status::internal("oops"),
            // A missing namespace is configuration the operator fixes; the work stays.
            Status::not_found("Namespace default is not found."),
        ] {
            let e = anyhow::Error::new(WorkflowInteractionError::Rpc(status.clone()));
            assert!(matches!(classify(&e), Failure::Transient(_)), "{status:?}");
        }
        let connect = anyhow::anyhow!("tcp connect error").context("Temporal unreachable");
        assert!(
            matches!(classify(&connect), Failure::Transient(why) if why.contains("Temporal unreachable"))
        );
    }

    #[test]
    fn undecodable_payloads_and_unknown_work_are_permanent_without_their_values() {
        let e =
            decode::<u32>("cancel_order", serde_json::json!("Jane Doe, 1 Main St")).unwrap_err();
        let why = permanent(classify(&e));
        assert!(why.starts_with("undecodable cancel_order payload"), "{why}");
        assert!(!why.contains("Jane"), "the value is elided: {why}");
        let e = decode::<PaymentSucceeded>("payment_succeeded", serde_json::json!({})).unwrap_err();
        assert!(permanent(classify(&e)).contains("missing field"));
        let unknown = anyhow::Error::new(Permanent("unknown signal \"x\"".into()));
        assert_eq!(permanent(classify(&unknown)), "unknown signal \"x\"");
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
    fn the_default_bound_rides_out_an_hour_of_outage() {
        assert_eq!(retry_delay(0), Duration::from_millis(200));
        assert_eq!(retry_delay(7), Duration::from_millis(25_600));
        assert_eq!(retry_delay(8), Duration::from_secs(30));
        assert_eq!(retry_delay(1_000), Duration::from_secs(30));
        assert_eq!(patience(1), Duration::ZERO);
        assert_eq!(patience(9), Duration::from_millis(51_000));
        let p = patience(DEFAULT_MAX_ATTEMPTS);
        assert_eq!(p, Duration::from_millis(51_000 + 141 * 30_000));
        assert!(p >= Duration::from_secs(3_600), "{p:?}");
    }

    #[test]
    fn a_signal_waits_for_its_own_start() {
        assert_eq!(predecessor("signal"), Some("start"));
        assert_eq!(predecessor(SIGNAL_PARCEL), Some(START_PARCEL));
        assert_eq!(predecessor(TRIGGER_SCHEDULE), Some(SYNC_SCHEDULE));
        assert_eq!(predecessor("start"), None);
    }
}
