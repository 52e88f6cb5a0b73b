//! The worker: registers the workflows and activities on a task queue and runs until told to
//! stop. It holds no logic of its own. `run` is the production worker; `run_bench_baseline`
//! serves only `procure bench`'s bare baseline, on a task queue of its own, so the production
//! worker never registers bench code.

use procure_activities::{
    monitor::MonitorActivitiesImpl,
    order::{NoopActivitiesImpl, OrderActivitiesImpl},
};
use procure_workflows::{OrderWorkflow, ParcelWorkflow, PriceMonitorWorkflow, bench::BareWorkflow};
use std::future::Future;
use temporalio_client::Client;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub task_queue: String,
    pub max_cached_workflows: usize,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            task_queue: procure_workflows::TASK_QUEUE.to_owned(),
            max_cached_workflows: 2_000,
        }
    }
}

/// Run the production worker (orders, parcels, price monitors) until `shutdown` resolves, then
/// drain in-flight tasks.
pub async fn run(
    client: Client,
    activities: OrderActivitiesImpl,
    monitor: MonitorActivitiesImpl,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let fulfilment = activities.fulfilment();
    let options = WorkerOptions::new(settings.task_queue.clone())
        .max_cached_workflows(settings.max_cached_workflows)
        .register_workflow::<OrderWorkflow>()?
        .register_workflow::<ParcelWorkflow>()?
        .register_workflow::<PriceMonitorWorkflow>()?
        .register_activities(activities)
        .register_activities(fulfilment)
        .register_activities(monitor)
        .build();
    serve(&runtime, client, options, &settings.task_queue, shutdown).await
}

/// Run the worker of `procure bench`'s baseline (the bare workflow and its no-op activity) on
/// `task_queue` until `shutdown` resolves.
pub async fn run_bench_baseline(
    client: Client,
    task_queue: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let options = WorkerOptions::new(task_queue.clone())
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
