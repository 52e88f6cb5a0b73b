//! The worker: registers the workflows and activities on a task queue and runs until told to
//! stop. It holds no logic of its own. `run` is the production worker; `run_bench_baseline`
//! serves only `procure bench`'s bare baseline, on a task queue of its own, so the production
//! worker never registers bench code.

mod spans;

use procure_activities::{
    monitor::MonitorActivitiesImpl,
    order::{NoopActivitiesImpl, OrderActivitiesImpl},
};
use procure_workflows::{OrderWorkflow, ParcelWorkflow, PriceMonitorWorkflow, bench::BareWorkflow};
use std::{future::Future, sync::Arc, time::Duration};
use temporalio_client::Client;
use temporalio_common::telemetry::{TelemetryOptions, metrics::CoreMeter};
use temporalio_sdk::{
    Runtime, Worker, WorkerOptions,
    runtime::{
        PollerBehavior, RuntimeOptions,
        worker_tuner::{FixedSizeSlotSupplier, TunerHolder},
    },
};

/// How one worker process takes work. The defaults suit one worker on a small machine; what to
/// change at scale is in docs/production.md ("Worker tuning").
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerSettings {
    pub task_queue: String,
    /// Workflows kept in memory between tasks (the sticky cache). Each costs memory; a miss
    /// costs a history replay.
    pub max_cached_workflows: usize,
    /// Workflow tasks processed at once.
    pub max_concurrent_workflow_tasks: usize,
    /// Activities run at once (marketplace, payment, carrier calls: mostly waiting on I/O).
    pub max_concurrent_activities: usize,
    pub max_concurrent_local_activities: usize,
    /// Concurrent long polls for workflow tasks and for activity tasks.
    pub workflow_task_pollers: usize,
    pub activity_task_pollers: usize,
    /// Activities per second the server dispatches on the task queue, across every worker on
    /// it (set by the server from the last poller's value); `None`: unlimited.
    pub task_queue_activities_per_second: Option<f64>,
    /// After a stop signal: how long running activities may finish before they are cancelled.
    pub graceful_shutdown: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            task_queue: procure_workflows::TASK_QUEUE.to_owned(),
            max_cached_workflows: 2_000,
            max_concurrent_workflow_tasks: 100,
            max_concurrent_activities: 100,
            max_concurrent_local_activities: 100,
            workflow_task_pollers: 5,
            activity_task_pollers: 5,
            task_queue_activities_per_second: None,
            graceful_shutdown: Duration::from_secs(30),
        }
    }
}

impl WorkerSettings {
    /// The SDK's worker options for these settings, before registration.
    fn options(
        &self,
    ) -> temporalio_sdk::WorkerOptionsBuilder<impl temporalio_sdk::worker_options_builder::State>
    {
        let tuner = TunerHolder::builder()
            .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
                self.max_concurrent_workflow_tasks,
            ))
            .activity_task_slot_supplier(FixedSizeSlotSupplier::new(self.max_concurrent_activities))
            .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
                self.max_concurrent_local_activities,
            ))
            .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
            .build();
        WorkerOptions::new(self.task_queue.clone())
            .max_cached_workflows(self.max_cached_workflows)
            .tuner(tuner)
            .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(
                self.workflow_task_pollers,
            ))
            .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(
                self.activity_task_pollers,
            ))
            .maybe_max_task_queue_activities_per_second(self.task_queue_activities_per_second)
            .graceful_shutdown_period(self.graceful_shutdown)
    }
}

/// The SDK runtime, recording the core's metrics (task latencies, slots, polls, cache) into
/// `metrics` when given.
fn runtime(metrics: Option<Arc<dyn CoreMeter>>) -> anyhow::Result<Runtime> {
    let telemetry = TelemetryOptions::builder().maybe_metrics(metrics).build();
    let options = RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Runtime::from_current_tokio(options)?)
}

/// Run the production worker (orders, parcels, price monitors) until `shutdown` resolves, then
/// drain in-flight tasks. The SDK core's metrics go to `metrics` when given.
pub async fn run(
    client: Client,
    activities: OrderActivitiesImpl,
    monitor: MonitorActivitiesImpl,
    settings: WorkerSettings,
    metrics: Option<Arc<dyn CoreMeter>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = runtime(metrics)?;
    let fulfilment = activities.fulfilment();
    let options = settings
        .options()
        .register_workflow::<OrderWorkflow>()?
        .register_workflow::<ParcelWorkflow>()?
        .register_workflow::<PriceMonitorWorkflow>()?
        .register_activities(activities)
        .register_activities(fulfilment)
        .register_activities(monitor)
        .worker_plugin(spans::plugin())
        .build();
    serve(&runtime, client, options, &settings.task_queue, shutdown).await
}

/// Run the worker of `procure bench`'s baseline (the bare workflow and its no-op activity) on
/// `task_queue` until `shutdown` resolves, tuned as a production worker is by default (same
/// cache, slots and pollers), so the two differ only in the work they do.
pub async fn run_bench_baseline(
    client: Client,
    task_queue: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = runtime(None)?;
    let settings = WorkerSettings {
        task_queue: task_queue.clone(),
        ..WorkerSettings::default()
    };
    let options = settings
        .options()
        .register_workflow::<BareWorkflow>()?
        .register_activities(NoopActivitiesImpl)
        .build();
    serve(&runtime, client, options, &task_queue, shutdown).await
}

async fn serve(
    runtime: &Runtime,
    client: Client,
    options: WorkerOptions,
    task_queue: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut worker = Worker::new(runtime, client, options)?;
    let stop = worker.shutdown_handle();
    tokio::spawn(async move {
        shutdown.await;
        stop();
    });
    tracing::info!(%task_queue, "worker running");
    worker.run().await?;
    tracing::info!(%task_queue, "worker stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_reach_the_sdk_worker_options() {
        let settings = WorkerSettings {
            task_queue: "q".into(),
            max_cached_workflows: 7,
            max_concurrent_workflow_tasks: 3,
            max_concurrent_activities: 4,
            max_concurrent_local_activities: 5,
            workflow_task_pollers: 6,
            activity_task_pollers: 2,
            task_queue_activities_per_second: Some(1.5),
            graceful_shutdown: Duration::from_secs(9),
        };
        let o = settings
            .options()
            .register_activities(NoopActivitiesImpl)
            .build();
        assert_eq!(o.task_queue, "q");
        assert_eq!(o.max_cached_workflows, 7);
        assert!(matches!(
            o.workflow_task_poller_behavior,
            Some(PollerBehavior::SimpleMaximum(6))
        ));
        assert!(matches!(
            o.activity_task_poller_behavior,
            Some(PollerBehavior::SimpleMaximum(2))
        ));
        assert_eq!(o.max_task_queue_activities_per_second, Some(1.5));
        assert_eq!(o.graceful_shutdown_period, Some(Duration::from_secs(9)));
        let slots = format!("{:?}", o.tuner);
        for n in ["num_slots: 3", "num_slots: 4", "num_slots: 5"] {
            assert!(slots.contains(n), "{n}: {slots}");
        }
        let unlimited = WorkerSettings::default()
            .options()
            .register_activities(NoopActivitiesImpl)
            .build();
        assert_eq!(unlimited.max_task_queue_activities_per_second, None);
    }
}
