//! The outbox dispatcher: hands committed work (workflow starts, signals) to Temporal, retrying
//! with backoff while Temporal is unreachable. Starts are idempotent (the workflow id is derived
//! from the order id, a duplicate start counts as done) and each signal carries its outbox id as
//! request id, so the server drops a redelivery; running several dispatchers is therefore safe.

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
    Client, WorkflowSignalOptions, WorkflowStartOptions, errors::WorkflowStartError,
};
use tokio::sync::Notify;

pub struct Dispatcher {
    pub store: Store,
    pub temporal: Arc<TemporalLink>,
    pub notify: Arc<Notify>,
    pub task_queue: String,
    pub timings: OrderTimings,
}

const BATCH: i64 = 200;
const CONCURRENCY: usize = 32;

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
        let client = self.temporal.client().await?;
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
                        let delay =
                            Duration::from_millis(200 * 2u64.pow(item.attempts.clamp(0, 8) as u32))
                                .min(Duration::from_secs(30));
                        tracing::warn!(order_id = %item.order_id, kind = %item.kind, attempt = item.attempts + 1, error = format!("{e:#}"), "outbox delivery failed");
                        self.store
                            .outbox_retry_later(item.id, &format!("{e:#}"), delay)
                            .await?;
                    }
                }
            }
        }
        Ok(done)
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
                        let p: PaymentSucceeded = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::payment_succeeded, p.into(), opts)
                            .await?;
                    }
                    "warehouse_inbound" => {
                        let s: WarehouseInbound = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::warehouse_inbound, s.into(), opts)
                            .await?;
                    }
                    "purchaser_completed" => {
                        let r: PurchaserResult = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::purchaser_completed, r.into(), opts)
                            .await?;
                    }
                    "supplement_paid" => {
                        let p: SupplementPaid = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::supplement_paid, p.into(), opts)
                            .await?;
                    }
                    "storage_choice" => {
                        let c: StorageChoice = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::storage_choice, c.into(), opts)
                            .await?;
                    }
                    "charge_paid" => {
                        let p: ChargePaid = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::charge_paid, p.into(), opts)
                            .await?;
                    }
                    "cancel_order" => {
                        let reason: String = serde_json::from_value(args)?;
                        handle
                            .signal(OrderWorkflow::cancel_order, reason.into(), opts)
                            .await?;
                    }
                    other => anyhow::bail!("unknown signal {other:?} in outbox"),
                }
                Ok(())
            }
            START_PARCEL => {
                let order_ids: Vec<String> =
                    serde_json::from_value(item.payload["order_ids"].clone())?;
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
                        let p: ParcelPacked = serde_json::from_value(args)?;
                        handle
                            .signal(ParcelWorkflow::parcel_packed, p.into(), opts)
                            .await?;
                    }
                    "charge_paid" => {
                        let p: ChargePaid = serde_json::from_value(args)?;
                        handle
                            .signal(ParcelWorkflow::charge_paid, p.into(), opts)
                            .await?;
                    }
                    "tracking_update" => {
                        let u: TrackingUpdate = serde_json::from_value(args)?;
                        handle
                            .signal(ParcelWorkflow::tracking_update, u.into(), opts)
                            .await?;
                    }
                    other => anyhow::bail!("unknown parcel signal {other:?} in outbox"),
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
            other => anyhow::bail!("unknown outbox kind {other:?}"),
        }
    }
}
