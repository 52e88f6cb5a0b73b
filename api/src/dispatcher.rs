//! The outbox dispatcher: hands committed work to Temporal (workflow starts, signals,
//! schedules) and to the payment provider (an accepted order's payment intent), retrying
//! with backoff while either is unreachable. The two go in separate lanes
//! ([`procure_store::outbox::Lane`]), each with its own loop, so an order is payable the moment
//! it is accepted however long the engine's backlog, and a slow provider never holds up a
//! workflow start. Starts are idempotent (the workflow id is derived
//! from the order id, a duplicate start counts as done) and each signal carries its outbox id as
//! request id, so the server drops a redelivery; running several dispatchers is therefore safe.
//!
//! Each row is a typed `procure_store::outbox::OutboxMessage`; a row that does not decode (an
//! unknown kind or signal, a payload of the wrong shape) never reaches this module: the store
//! dead-letters it with its reason as it reads it. Every delivery failure is classified here,
//! once ([`classify`]): permanent (the workflow is not found or has finished, a payload that
//! cannot be encoded) puts the row on the dead-letter list at once with its reason; transient (Temporal unreachable, timeouts,
//! anything else) is retried with backoff, at most `max_attempts` times, then the row goes dead
//! too. Dead rows are never picked again until an operator retries them
//! (`/api/v1/admin/outbox/dead`).

use crate::OrderTimings;
use futures_util::{StreamExt, stream};
use procure_domain::{Money, OrderState, ports::PaymentIntents};
use procure_store::{
    Store,
    orders::{IntentRecord, IntentToRecord, OrderRecord},
    outbox::{Lane, OrderSignal, OutboxItem, OutboxMessage, ParcelSignal},
};
use procure_temporal::TemporalLink;
use procure_workflows::{
    OrderWorkflow, ParcelWorkflow, order::OrderInput, order_workflow_id, parcel::ParcelInput,
    parcel_workflow_id, priority,
};
use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};
use temporalio_client::{
    Client, NamespacedClient, WorkflowSignalOptions, WorkflowStartOptions,
    errors::{WorkflowInteractionError, WorkflowStartError},
    schedules::ScheduleError,
    tonic::{Code, Status},
};
use tokio::sync::Notify;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub struct Dispatcher {
    pub store: Store,
    pub temporal: Arc<TemporalLink>,
    pub notify: Arc<Notify>,
    pub task_queue: String,
    pub timings: OrderTimings,
    /// Deliveries of one row before a transient failure makes it dead (the setting
    /// `outbox.max_attempts`, [`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// Opens accepted orders' payment intents (the payments lane). Without it the lane marks
    /// its rows done and each order's workflow creates its intent in its first step.
    pub payments: Option<Arc<dyn PaymentIntents>>,
}

const BATCH: i64 = 200;
const CONCURRENCY: usize = 32;
/// Intents opened at once: provider calls are independent and short.
const PAYMENT_CONCURRENCY: usize = 64;

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

/// A failure the dispatcher itself knows to be permanent. Its text is what the operator reads.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Permanent(pub String);

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

impl Dispatcher {
    /// Run both lanes until `shutdown`. One wake-up (the API's notify) wakes both: each lane
    /// holds its own permit, so a wake-up during a pass is never lost.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        use futures_util::FutureExt as _;
        let shutdown = shutdown.shared();
        let wakes = [Notify::new(), Notify::new()];
        let fan_out = async {
            loop {
                self.notify.notified().await;
                wakes.iter().for_each(Notify::notify_one);
            }
        };
        let lanes = futures_util::future::join(
            self.run_lane(Lane::Engine, &wakes[0], shutdown.clone()),
            self.run_lane(Lane::Payments, &wakes[1], shutdown.clone()),
        );
        tokio::select! {
            _ = lanes => {}
            _ = fan_out => {}
        }
    }

    async fn run_lane(&self, lane: Lane, wake: &Notify, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut idle_backoff = Duration::from_millis(100);
        loop {
            let worked = match self.pass_in(lane).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(
                        lane = lane.as_str(),
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
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle_backoff) => {}
            }
            idle_backoff = (idle_backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// One pass over the due items of every lane; returns how many were handed over.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let mut done = 0;
        for lane in [Lane::Payments, Lane::Engine] {
            done += self.pass_in(lane).await?;
        }
        Ok(done)
    }

    /// One pass over `lane`'s due items; returns how many were handed over.
    pub async fn pass_in(&self, lane: Lane) -> anyhow::Result<usize> {
        let items = self.store.outbox_due_in(lane, BATCH).await?;
        if items.is_empty() {
            return Ok(0);
        }
        match lane {
            Lane::Payments => self.payments_pass(items).await,
            Lane::Engine => self.engine_pass(items).await,
        }
    }

    async fn engine_pass(&self, items: Vec<OutboxItem>) -> anyhow::Result<usize> {
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
        let (starts, signals): (Vec<_>, Vec<_>) =
            items.into_iter().partition(|i| i.message.is_start());
        let mut done = 0;
        for batch in [starts, signals] {
            let results = stream::iter(batch)
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
            done += self.settle(results).await?;
        }
        Ok(done)
    }

    /// Record a pass's outcomes: the delivered rows in one statement, each failure on its own.
    async fn settle(
        &self,
        results: Vec<(OutboxItem, anyhow::Result<()>)>,
    ) -> anyhow::Result<usize> {
        let mut delivered = Vec::with_capacity(results.len());
        for (item, r) in results {
            match r {
                Ok(()) => delivered.push(item.id),
                Err(e) => {
                    let mut failure = classify(&e);
                    // "Not found" while the workflow's own start is still queued (it failed
                    // transiently this pass) means "not yet", not "never".
                    if let (Failure::Permanent(why), Some(first)) =
                        (&failure, item.message.predecessor())
                        && self
                            .store
                            .outbox_waits_on(item.id, &item.subject, first)
                            .await?
                    {
                        failure = Failure::Transient(format!("waiting for its {first}: {why}"));
                    }
                    self.failed(&item, failure).await?;
                }
            }
        }
        self.store.outbox_done_all(&delivered).await?;
        Ok(delivered.len())
    }

    /// Make a pass's accepted orders payable: read the orders in one query, create each intent
    /// at the provider under the order's charge key (the workflow's own step would find the
    /// same one), record every intent in one transaction, then mark the rows done. Batching
    /// the writes keeps the lane to a few transactions per pass, so in a burst it does not
    /// queue for the database's writer behind the intake (one transaction per intent did).
    /// An order whose payment was closed meanwhile (cancelled or expired) gets no intent: one
    /// created in the race is cancelled at once, so nobody can pay an order that no longer
    /// wants it.
    async fn payments_pass(&self, items: Vec<OutboxItem>) -> anyhow::Result<usize> {
        let Some(port) = &self.payments else {
            let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
            self.store.outbox_done_all(&ids).await?;
            return Ok(ids.len());
        };
        let ids: Vec<&str> = items.iter().map(|i| i.subject.as_str()).collect();
        let orders: HashMap<String, OrderRecord> = self
            .store
            .orders_by_id(&ids)
            .await?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect();
        let opened: Vec<(OutboxItem, anyhow::Result<Option<Opened>>)> = stream::iter(items)
            .map(|item| {
                let order = orders.get(&item.subject);
                async move {
                    let r = open_intent(port.as_ref(), &item, order)
                        .instrument(delivery_span(&item))
                        .await;
                    (item, r)
                }
            })
            .buffer_unordered(PAYMENT_CONCURRENCY)
            .collect()
            .await;
        let to_record: Vec<IntentToRecord<'_>> = opened
            .iter()
            .filter_map(|(_, r)| match r {
                Ok(Some(o)) => Some(IntentToRecord {
                    order_id: &o.order_id,
                    intent_id: &o.intent,
                    amount: o.amount,
                }),
                _ => None,
            })
            .collect();
        let mut outcomes = self
            .store
            .record_payment_intents(&to_record)
            .await?
            .into_iter();
        let mut results = Vec::with_capacity(opened.len());
        for (item, r) in opened {
            let r = match r {
                Ok(Some(o)) => {
                    let outcome = outcomes.next().unwrap_or(IntentRecord::Recorded);
                    settle_intent(port.as_ref(), &o, outcome)
                        .instrument(delivery_span(&item))
                        .await
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            results.push((item, r));
        }
        self.settle(results).await
    }

    /// Record a failed delivery: dead at once when permanent, else retried later within the
    /// bound.
    async fn failed(&self, item: &OutboxItem, failure: Failure) -> anyhow::Result<()> {
        let attempt = item.attempts + 1;
        match failure {
            Failure::Permanent(why) => {
                tracing::error!(outbox_id = item.id, subject = %item.subject, kind = %item.kind(), attempt, reason = %why, "outbox delivery failed permanently; dead-lettered");
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
                    tracing::error!(outbox_id = item.id, subject = %item.subject, kind = %item.kind(), attempt, reason = %why, "outbox delivery still failing after its last attempt; dead-lettered");
                } else {
                    tracing::warn!(outbox_id = item.id, subject = %item.subject, kind = %item.kind(), attempt, error = %why, "outbox delivery failed; will retry");
                }
            }
        }
        Ok(())
    }

    /// Hand one row to Temporal inside its delivery span ([`delivery_span`]).
    async fn deliver(&self, client: &Client, item: &OutboxItem) -> anyhow::Result<()> {
        self.deliver_now(client, item)
            .instrument(delivery_span(item))
            .await
    }

    async fn deliver_now(&self, client: &Client, item: &OutboxItem) -> anyhow::Result<()> {
        let subject = item.subject.as_str();
        let signal_opts = || {
            WorkflowSignalOptions::builder()
                .request_id(format!("outbox-{}", item.id))
                .build()
        };
        match &item.message {
            OutboxMessage::StartOrder {} => {
                let input = OrderInput {
                    order_id: subject.to_owned(),
                    payment_timeout_secs: self.timings.payment_timeout.as_secs().max(1),
                    inbound_timeout_secs: self.timings.inbound_timeout.as_secs().max(1),
                    tracking_poll_secs: self.timings.tracking_poll.as_secs().max(1),
                    purchaser_deadline_secs: self.timings.purchaser_deadline.as_secs().max(1),
                    price_change_deadline_secs: self.timings.price_change_deadline.as_secs().max(1),
                    storage_reminder_secs: self.timings.storage_reminder.as_secs(),
                    storage_grace_secs: self.timings.storage_grace.as_secs().max(1),
                    seller_ship_poll_secs: self.timings.seller_ship_poll.as_secs().max(1),
                    seller_ship_deadline_secs: self.timings.seller_ship_deadline.as_secs().max(1),
                };
                // A new order's setup goes after paid orders' work in a backlog.
                let opts =
                    WorkflowStartOptions::new(self.task_queue.clone(), order_workflow_id(subject))
                        .priority(priority::key(priority::SETUP))
                        .build();
                match client.start_workflow(OrderWorkflow::run, input, opts).await {
                    Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {
                        tracing::info!(order_id = %subject, "order workflow started");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            OutboxMessage::SignalOrder(signal) => {
                let handle =
                    client.get_workflow_handle::<OrderWorkflow>(order_workflow_id(subject));
                let opts = signal_opts();
                match signal.clone() {
                    OrderSignal::PaymentSucceeded(p) => {
                        raise_to_paid(client, subject).await;
                        handle
                            .signal(OrderWorkflow::payment_succeeded, p.into(), opts)
                            .await?
                    }
                    OrderSignal::WarehouseInbound(s) => {
                        handle
                            .signal(OrderWorkflow::warehouse_inbound, s.into(), opts)
                            .await?
                    }
                    OrderSignal::PurchaserCompleted(r) => {
                        handle
                            .signal(OrderWorkflow::purchaser_completed, r.into(), opts)
                            .await?
                    }
                    OrderSignal::SupplementPaid(p) => {
                        handle
                            .signal(OrderWorkflow::supplement_paid, p.into(), opts)
                            .await?
                    }
                    OrderSignal::StorageChoice(c) => {
                        handle
                            .signal(OrderWorkflow::storage_choice, c.into(), opts)
                            .await?
                    }
                    OrderSignal::ChargePaid(p) => {
                        handle
                            .signal(OrderWorkflow::charge_paid, p.into(), opts)
                            .await?
                    }
                    OrderSignal::CancelOrder(reason) => {
                        handle
                            .signal(OrderWorkflow::cancel_order, reason.into(), opts)
                            .await?
                    }
                }
                Ok(())
            }
            OutboxMessage::StartParcel { order_ids } => {
                let input = ParcelInput {
                    parcel_id: subject.to_owned(),
                    order_ids: order_ids.clone(),
                    payment_timeout_secs: self.timings.payment_timeout.as_secs().max(1),
                    tracking_poll_secs: self.timings.tracking_poll.as_secs().max(1),
                    polls_per_run: self.timings.parcel_polls_per_run.max(1),
                    resume: None,
                };
                let opts =
                    WorkflowStartOptions::new(self.task_queue.clone(), parcel_workflow_id(subject))
                        .build();
                match client
                    .start_workflow(ParcelWorkflow::run, input, opts)
                    .await
                {
                    Ok(_) | Err(WorkflowStartError::AlreadyStarted { .. }) => {
                        tracing::info!(parcel_id = %subject, "parcel workflow started");
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                }
            }
            OutboxMessage::SignalParcel(signal) => {
                let handle =
                    client.get_workflow_handle::<ParcelWorkflow>(parcel_workflow_id(subject));
                let opts = signal_opts();
                match signal.clone() {
                    ParcelSignal::ParcelPacked(p) => {
                        handle
                            .signal(ParcelWorkflow::parcel_packed, p.into(), opts)
                            .await?
                    }
                    ParcelSignal::ChargePaid(p) => {
                        handle
                            .signal(ParcelWorkflow::charge_paid, p.into(), opts)
                            .await?
                    }
                    ParcelSignal::TrackingUpdate(u) => {
                        handle
                            .signal(ParcelWorkflow::tracking_update, u.into(), opts)
                            .await?
                    }
                }
                Ok(())
            }
            OutboxMessage::SyncSchedule { .. } => {
                let r =
                    crate::schedules::sync(client, &self.store, &self.task_queue, subject).await;
                if let Err(e) = &r {
                    self.store
                        .mark_schedule_error(subject, &format!("{e:#}"))
                        .await?;
                }
                r
            }
            OutboxMessage::TriggerSchedule {} => {
                crate::schedules::trigger(client, &self.store, subject).await
            }
            OutboxMessage::CreatePayment {} => Err(Permanent(
                "a payment row reached the engine lane (it belongs to the payments lane)".into(),
            )
            .into()),
        }
    }
}

/// An order holding the customer's money: its workflow tasks go before new orders' setup from
/// now on (`procure_workflows::priority`). Raised before the payment's signal, so the task the
/// signal makes is already served first. A failure only costs the order its place in a backlog:
/// it is logged, and the signal is delivered anyway.
/// An intent the provider opened for an order, still to be recorded.
struct Opened {
    order_id: String,
    intent: String,
    amount: Money,
}

/// Open `item`'s order's intent at the provider, or answer `None` when the order needs none
/// (it holds one already, or ended before it was ever payable).
async fn open_intent(
    port: &dyn PaymentIntents,
    item: &OutboxItem,
    order: Option<&OrderRecord>,
) -> anyhow::Result<Option<Opened>> {
    let Some(order) = order else {
        return Err(Permanent("no such order".into()).into());
    };
    if order.payment_intent_id.is_some() {
        return Ok(None);
    }
    let open = matches!(
        order.state,
        OrderState::Created | OrderState::PendingPayment
    );
    if !open && item.attempts == 0 {
        // Ended before it was ever payable, and no earlier attempt created an intent.
        return Ok(None);
    }
    let intent = port
        .open_intent(&order.id, order.total)
        .await
        .map_err(port_failure)?;
    Ok(Some(Opened {
        order_id: order.id.clone(),
        intent,
        amount: order.total,
    }))
}

/// Act on what recording an opened intent found: cancel it when the order holds another or
/// closed its payment meanwhile.
async fn settle_intent(
    port: &dyn PaymentIntents,
    opened: &Opened,
    outcome: IntentRecord,
) -> anyhow::Result<()> {
    let Opened {
        order_id,
        intent,
        amount,
    } = opened;
    match outcome {
        IntentRecord::Recorded => {
            tracing::info!(%order_id, %intent, %amount, "order payable: payment intent created");
        }
        IntentRecord::Held(held) if held == *intent => {}
        IntentRecord::Held(held) => {
            tracing::error!(%order_id, %intent, %held, "the provider answered another intent for the order's charge key; cancelling it");
            port.cancel_intent(intent).await.map_err(port_failure)?;
        }
        IntentRecord::Closed => {
            tracing::info!(%order_id, %intent, "order closed its payment meanwhile; cancelling the new intent");
            port.cancel_intent(intent).await.map_err(port_failure)?;
        }
    }
    Ok(())
}

fn port_failure(e: procure_domain::ports::PortError) -> anyhow::Error {
    if e.retryable {
        anyhow::anyhow!("payment provider: {e}")
    } else {
        Permanent(format!("payment provider refused the intent: {e}")).into()
    }
}

async fn raise_to_paid(client: &Client, order_id: &str) {
    use temporalio_common::protos::temporal::api::{
        common::v1::{Priority, WorkflowExecution},
        workflow::v1::WorkflowExecutionOptions,
        workflowservice::v1::UpdateWorkflowExecutionOptionsRequest,
    };
    let request = UpdateWorkflowExecutionOptionsRequest {
        namespace: client.namespace(),
        workflow_execution: Some(WorkflowExecution {
            workflow_id: order_workflow_id(order_id),
            run_id: String::new(),
        }),
        workflow_execution_options: Some(WorkflowExecutionOptions {
            priority: Some(Priority {
                priority_key: priority::PAID as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_wkt_types::FieldMask {
            paths: vec!["priority".into()],
        }),
        identity: String::new(),
    };
    if let Err(s) = client
        .connection()
        .workflow_service()
        .update_workflow_execution_options(temporalio_client::tonic::Request::new(request))
        .await
    {
        if s.code() == Code::NotFound {
            // Not started yet (its start is behind in a burst): the signal waits for it and
            // raises it again on its next attempt.
            tracing::debug!(%order_id, "paid order's workflow not started yet; raised on the signal's next attempt");
        } else {
            tracing::warn!(%order_id, code = ?s.code(), error = %s.message(), "could not raise the paid order's priority; it keeps its place");
        }
    }
}

/// The span one delivery runs in: what it is for (`order_id` / `parcel_id` / `monitor_id`, the
/// `workflow_id`, the outbox row) and, when the process traces, the trace of the request that
/// queued it, so the Temporal SDK's plugin starts (or signals) the workflow in that trace.
fn delivery_span(item: &OutboxItem) -> tracing::Span {
    let subject = item.subject.as_str();
    let kind = item.kind();
    let span = match &item.message {
        OutboxMessage::StartOrder {}
        | OutboxMessage::SignalOrder(_)
        | OutboxMessage::CreatePayment {} => tracing::info_span!(
            "outbox delivery",
            otel.name = tracing::field::Empty,
            outbox_id = item.id,
            kind,
            order_id = subject,
            workflow_id = %order_workflow_id(subject),
        ),
        OutboxMessage::StartParcel { .. } | OutboxMessage::SignalParcel(_) => tracing::info_span!(
            "outbox delivery",
            otel.name = tracing::field::Empty,
            outbox_id = item.id,
            kind,
            parcel_id = subject,
            workflow_id = %parcel_workflow_id(subject),
        ),
        OutboxMessage::SyncSchedule { .. } | OutboxMessage::TriggerSchedule {} => {
            tracing::info_span!(
                "outbox delivery",
                otel.name = tracing::field::Empty,
                outbox_id = item.id,
                kind,
                monitor_id = subject,
            )
        }
    };
    if procure_temporal::traces_with_opentelemetry() {
        crate::trace::name_for_traces(&span, &format!("outbox {kind}"), None);
        if let Some(parent) = item.trace_parent.as_deref() {
            let _ = span.set_parent(crate::trace::context_of(parent));
        }
    }
    span
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

    /// What the dispatcher knows to be permanent stays so; what a row's decoding says is
    /// tested with the message type (`procure_store::outbox`).
    #[test]
    fn known_permanent_failures_are_permanent() {
        let unknown = anyhow::Error::new(Permanent("unknown signal \"x\"".into()));
        assert_eq!(permanent(classify(&unknown)), "unknown signal \"x\"");
        let e = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        assert_eq!(
            permanent(classify(&anyhow::Error::new(e))),
            "undecodable payload"
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
}
