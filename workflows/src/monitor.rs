//! `PriceMonitorWorkflow`: one run of a price monitor, started by the monitor's Temporal
//! Schedule (`price-monitor-{id}`). It reads which offers to price, prices them on the three
//! platforms at once (each platform in batches, paced by its adapter), and records the run in
//! one step: snapshots with landed cost, alerts, the offers procurement ranks, and the listing
//! price quotes use. A run is short and self-contained: its workflow and run ids key the
//! recording, so a retried recording is a no-op.

#![allow(clippy::unused_unit)]

use procure_domain::{
    monitor::{OfferRef, Seen},
    order::Platform,
};
use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration, time::UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult,
    activities::ActivityError, workflows::join_all,
};

/// Schedule id of a monitor; each run's workflow id is this plus the scheduled time.
pub fn monitor_schedule_id(monitor_id: &str) -> String {
    format!("price-monitor-{monitor_id}")
}

/// Offers priced per activity: small enough that a failed batch costs little, large enough
/// that a big monitor's history stays short.
pub const OBSERVE_BATCH: usize = 25;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceMonitorInput {
    pub monitor_id: String,
}

/// One offer of one product a monitor watches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedOffer {
    pub sku: String,
    pub offer: OfferRef,
}

/// What a run prices; `None` from `monitor_plan` when the monitor was deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorPlan {
    pub monitor_id: String,
    pub offers: Vec<WatchedOffer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObserveBatch {
    pub monitor_id: String,
    pub platform: Platform,
    pub offers: Vec<WatchedOffer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Observed {
    Seen(Seen),
    /// The platform could not be asked (rate limit, outage, bad credentials) even after the
    /// adapter's retries: nothing is concluded about the offer.
    Failed {
        reason: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    pub sku: String,
    pub offer: OfferRef,
    pub observed_at_ms: i64,
    pub outcome: Observed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRun {
    pub monitor_id: String,
    /// `{workflow id}/{run id}` of the run: recording the same run twice changes nothing.
    pub run_key: String,
    pub observations: Vec<Observation>,
}

/// What a run found, as the workflow returns it (visible in the Temporal UI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub monitor_id: String,
    pub run_key: String,
    pub offers: u32,
    pub listed: u32,
    pub gone: u32,
    pub failed: u32,
    pub price_changes: u32,
    /// One line per alert, e.g. "S1 1688:6001: price_up 17.80 → 26.70 CNY (+50.00 %)".
    pub alerts: Vec<String>,
    /// One line per product whose quoted channel or price changed (quotes follow the channel
    /// procurement tries first), or that no channel can supply any more.
    pub ranking: Vec<String>,
    /// Why nothing was priced (the monitor was deleted), if so.
    #[serde(default)]
    pub skipped: Option<String>,
}

/// Marker types of the price-monitor activities.
pub mod monitor_defs {
    pub use super::monitor_activities::{MonitorPlan, ObserveOffers, RecordPrices};
}

/// Declarations of the price-monitor activities; bodies are never called.
pub struct MonitorActivities;

#[activity_definitions]
impl MonitorActivities {
    /// The offers of the monitor's products; `None` when the monitor no longer exists.
    #[activity(name = "monitor_plan")]
    pub fn monitor_plan(monitor_id: String) -> Result<Option<MonitorPlan>, ActivityError> {
        unimplemented!()
    }

    /// Price a batch of one platform's offers (read-only).
    #[activity(name = "observe_offers")]
    pub fn observe_offers(batch: ObserveBatch) -> Result<Vec<Observation>, ActivityError> {
        unimplemented!()
    }

    /// Store the run: snapshots, alerts, offers and listing prices, in one transaction.
    #[activity(name = "record_prices")]
    pub fn record_prices(run: RecordRun) -> Result<RunSummary, ActivityError> {
        unimplemented!()
    }
}

/// Database steps: a few attempts, so a run always ends; the next scheduled run starts afresh.
fn store_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .backoff_coefficient(2.0)
                .maximum_interval(Duration::from_secs(20))
                .maximum_attempts(5)
                .build(),
        )
        .build()
}

/// A batch paces its calls and each call retries inside the adapter; three tries at the batch.
fn observe_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(180))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(2))
                .backoff_coefficient(2.0)
                .maximum_attempts(3)
                .build(),
        )
        .build()
}

#[workflow]
pub struct PriceMonitorWorkflow {
    input: PriceMonitorInput,
}

#[workflow_methods]
impl PriceMonitorWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: PriceMonitorInput) -> Self {
        PriceMonitorWorkflow { input }
    }

    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<RunSummary> {
        let monitor_id = ctx.state(|s| s.input.monitor_id.clone());
        // A schedule names its runs by the scheduled second, so two runs triggered within one
        // second share a workflow id: the run id tells them apart.
        let run_key = format!("{}/{}", ctx.workflow_id(), ctx.run_id());
        let plan = ctx
            .execute_activity(
                MonitorActivities::monitor_plan,
                monitor_id.clone(),
                store_opts(),
            )
            .await?;
        let Some(plan) = plan else {
            return Ok(RunSummary {
                monitor_id,
                run_key,
                skipped: Some("the monitor was deleted".into()),
                ..Default::default()
            });
        };
        let mut by_platform: BTreeMap<Platform, Vec<WatchedOffer>> = BTreeMap::new();
        for w in plan.offers {
            by_platform.entry(w.offer.platform).or_default().push(w);
        }
        let now = workflow_ms(ctx);
        let shared: &WorkflowContext<Self> = ctx;
        // Platforms in parallel, each platform's batches one after another (its adapter paces
        // the calls, so parallel batches of one platform would only queue).
        let lanes = by_platform.into_iter().map(|(platform, offers)| {
            let monitor_id = monitor_id.clone();
            async move {
                let mut seen = Vec::with_capacity(offers.len());
                for batch in offers.chunks(OBSERVE_BATCH) {
                    let result = shared
                        .execute_activity(
                            MonitorActivities::observe_offers,
                            ObserveBatch {
                                monitor_id: monitor_id.clone(),
                                platform,
                                offers: batch.to_vec(),
                            },
                            observe_opts(),
                        )
                        .await;
                    match result {
                        Ok(obs) => seen.extend(obs),
                        Err(e) => seen.extend(batch.iter().map(|w| Observation {
                            sku: w.sku.clone(),
                            offer: w.offer.clone(),
                            observed_at_ms: now,
                            outcome: Observed::Failed {
                                reason: format!("{platform:?} batch failed: {e}"),
                            },
                        })),
                    }
                }
                seen
            }
        });
        let observations: Vec<Observation> = join_all(lanes).await.into_iter().flatten().collect();
        let summary = ctx
            .execute_activity(
                MonitorActivities::record_prices,
                RecordRun {
                    monitor_id,
                    run_key,
                    observations,
                },
                store_opts(),
            )
            .await?;
        Ok(summary)
    }
}

fn workflow_ms(ctx: &WorkflowContext<PriceMonitorWorkflow>) -> i64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
