//! `steady` (P1, P3): the full flow at a fixed rate, driven by a separate driver process that
//! reacts to the read model. Reports orders/s, order → first purchase, and from the Temporal
//! histories of the completed orders (each order's workflow and its parcel's) the history
//! events, workflow tasks, activities (ActivityTaskScheduled) and local activities
//! (MarkerRecorded) per order. Then capacity for P1: `capacity_orders` orders placed at once
//! and driven to Completed on the same server, against as many bare workflows given the
//! activity counts just read (`procure_workflows::bench::BareWorkflow`, on a worker of its own
//! with the production worker's tuning).

use super::{
    BenchConfig, DriverPlan, DriverProcess,
    driver::Plan,
    latency::Samples,
    results::{HistoryCounts, SteadyResult},
    system::Launched,
};
use futures_util::StreamExt;
use procure_store::milestones::Milestones;
use procure_workflows::bench::{BareInput, BareWorkflow};
use std::time::{Duration, Instant};
use temporalio_client::{
    Client, WorkflowExecutionInfo, WorkflowFetchHistoryOptions, WorkflowGetResultOptions,
    WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::enums::v1::EventType;

pub async fn run(cfg: &BenchConfig) -> anyhow::Result<SteadyResult> {
    let (mut result, run) = cfg
        .measured("steady", Vec::new(), async |system| {
            measure(cfg, system).await
        })
        .await?;
    result.run = run;
    Ok(result)
}

/// Orders driven to Completed by a driver process; returns its report and the milestones of
/// the orders it placed.
async fn drive(
    cfg: &BenchConfig,
    system: &Launched,
    name: &str,
    plan: DriverPlan,
) -> anyhow::Result<(super::driver::DriverReport, Vec<Milestones>)> {
    let store = system.store().await?;
    let since = procure_domain::clock::now_ms();
    let placing = Duration::from_secs_f64(plan.seconds.max(0.0));
    let expected = plan.burst + (plan.rate * plan.seconds).round() as usize;
    let started = Instant::now();
    let mut driver = DriverProcess::start(cfg, system, name, plan)?;
    let mut last_progress = Instant::now();
    while started.elapsed() < cfg.deadline && driver.running() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let m = store.milestones(since).await?;
        let finished = m.iter().filter(|o| finished(o)).count();
        if last_progress.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "bench steady ({name}): {:.0} s: {} placed, {} completed",
                started.elapsed().as_secs_f64(),
                m.len(),
                m.iter().filter(|o| o.completed_ms.is_some()).count()
            );
            last_progress = Instant::now();
        }
        if started.elapsed() > placing && m.len() >= expected && finished == m.len() {
            break;
        }
    }
    let report = driver.finish().await?;
    let m = store.milestones(since).await?;
    store.close().await;
    Ok((report, m))
}

fn finished(o: &Milestones) -> bool {
    o.completed_ms.is_some()
        || matches!(
            o.state.as_str(),
            "Cancelled" | "Failed" | "Refunded" | "Expired" | "NeedsOperator"
        )
}

/// Completed orders per second: completed ÷ (first accepted → last completed).
fn throughput(m: &[Milestones]) -> (usize, f64) {
    let done: Vec<&Milestones> = m.iter().filter(|o| o.completed_ms.is_some()).collect();
    let first = m.iter().map(|o| o.accepted_ms).min().unwrap_or(0);
    let last = done
        .iter()
        .filter_map(|o| o.completed_ms)
        .max()
        .unwrap_or(first);
    let secs = (last - first) as f64 / 1000.0;
    (done.len(), super::ratio(done.len() as f64, secs))
}

async fn measure(cfg: &BenchConfig, system: &Launched) -> anyhow::Result<SteadyResult> {
    eprintln!(
        "bench steady: {}/s for {} s, full flow, driver process reacting to lists",
        cfg.steady_rate, cfg.steady_seconds
    );
    let (report, m) = drive(
        cfg,
        system,
        "steady-driver",
        DriverPlan {
            plan: Plan::Full,
            burst: 0,
            rate: cfg.steady_rate,
            seconds: cfg.steady_seconds as f64,
        },
    )
    .await?;
    let (completed, orders_per_s) = throughput(&m);
    let mut to_buy = Samples::new();
    let mut to_complete = Samples::new();
    for o in &m {
        if let Some(b) = o.first_purchase_ms {
            to_buy.push_ms((b - o.accepted_ms) as f64);
        }
        if let Some(c) = o.completed_ms {
            to_complete.push_ms((c - o.accepted_ms) as f64);
        }
    }
    let client = system.temporal_client().await?;
    let mut ids: Vec<String> = Vec::new();
    for o in m.iter().filter(|o| o.completed_ms.is_some()) {
        ids.push(procure_workflows::order_workflow_id(&o.order_id));
        if let Some(p) = report
            .orders
            .iter()
            .find(|p| p.id == o.order_id)
            .and_then(|p| p.parcel_id.as_deref())
        {
            ids.push(procure_workflows::parcel_workflow_id(p));
        }
    }
    let history = count_histories(&client, &ids, completed).await;
    eprintln!(
        "bench steady: {completed}/{} completed, {orders_per_s:.1}/s; per order {:.1} events, {:.1} workflow tasks, {:.1} activities, {:.1} local activities",
        m.len(),
        history.events_per_order,
        history.workflow_tasks_per_order,
        history.activities_per_order,
        history.local_activities_per_order
    );
    let mut result = SteadyResult {
        rate_per_s: cfg.steady_rate,
        seconds: cfg.steady_seconds as f64,
        placed: m.len(),
        completed,
        orders_per_s,
        order_to_purchase: to_buy.percentiles(),
        order_to_complete: to_complete.percentiles(),
        history,
        capacity_orders: cfg.capacity_orders,
        driver_requests_per_s: super::ratio(
            (report.list_requests + report.action_requests) as f64,
            report.seconds,
        ),
        ..SteadyResult::default()
    };
    if cfg.capacity_orders == 0 {
        return Ok(result);
    }
    eprintln!(
        "bench steady: capacity: {} orders at once to Completed",
        cfg.capacity_orders
    );
    let (_, cm) = drive(
        cfg,
        system,
        "capacity-driver",
        DriverPlan {
            plan: Plan::Full,
            burst: cfg.capacity_orders,
            rate: 0.0,
            seconds: 0.0,
        },
    )
    .await?;
    let (capacity_completed, capacity_per_s) = throughput(&cm);
    result.capacity_completed = capacity_completed;
    result.capacity_orders_per_s = capacity_per_s;
    let input = BareInput {
        activities: result.history.activities_per_order.round() as u32,
        local_activities: result.history.local_activities_per_order.round() as u32,
    };
    eprintln!(
        "bench steady: {capacity_completed} orders in {:.1}/s; baseline: {} bare workflows ({} activities, {} local)",
        capacity_per_s, cfg.capacity_orders, input.activities, input.local_activities
    );
    let (ok, per_s, ids) = baseline(&client, system, input, cfg.capacity_orders).await?;
    result.baseline_activities = input.activities;
    result.baseline_local_activities = input.local_activities;
    result.baseline_workflows = ok;
    result.baseline_per_s = per_s;
    let sample: Vec<String> = ids.into_iter().take(50).collect();
    let n = sample.len();
    result.baseline_history = count_histories(&client, &sample, n).await;
    result.ratio = super::ratio(capacity_per_s, per_s);
    eprintln!(
        "bench steady: baseline {per_s:.1}/s, ratio {:.2}",
        result.ratio
    );
    Ok(result)
}

/// The counts of `ids`' histories, divided by `per` (orders).
async fn count_histories(client: &Client, ids: &[String], per: usize) -> HistoryCounts {
    let counted: Vec<Option<[u64; 4]>> = futures_util::stream::iter(ids.iter().cloned())
        .map(|id| {
            let client = client.clone();
            async move { history_counts(&client, &id).await.ok() }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut sum = [0u64; 4];
    let mut histories = 0;
    for c in counted.into_iter().flatten() {
        histories += 1;
        for (s, v) in sum.iter_mut().zip(c) {
            *s += v;
        }
    }
    let per = per.max(1) as f64;
    HistoryCounts {
        histories,
        events_per_order: sum[0] as f64 / per,
        workflow_tasks_per_order: sum[1] as f64 / per,
        activities_per_order: sum[2] as f64 / per,
        local_activities_per_order: sum[3] as f64 / per,
    }
}

/// Events, WorkflowTaskCompleted, ActivityTaskScheduled and MarkerRecorded in a history.
async fn history_counts(client: &Client, workflow_id: &str) -> anyhow::Result<[u64; 4]> {
    let events = WorkflowExecutionInfo::builder()
        .namespace("default")
        .workflow_id(workflow_id)
        .build()
        .bind_untyped(client.clone())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await?;
    Ok(count_events(events.iter().map(|e| e.event_type())))
}

/// Events, workflow tasks completed, activities scheduled and markers (local activities).
pub fn count_events(types: impl Iterator<Item = EventType>) -> [u64; 4] {
    let mut c = [0u64; 4];
    for t in types {
        c[0] += 1;
        match t {
            EventType::WorkflowTaskCompleted => c[1] += 1,
            EventType::ActivityTaskScheduled => c[2] += 1,
            EventType::MarkerRecorded => c[3] += 1,
            _ => {}
        }
    }
    c
}

/// Run `k` bare workflows at once on a worker of their own; how many completed, per second,
/// and their ids.
async fn baseline(
    client: &Client,
    system: &Launched,
    input: BareInput,
    k: usize,
) -> anyhow::Result<(usize, f64, Vec<String>)> {
    let queue = format!("{}-baseline", system.task_queue);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = procure_worker::run_bench_baseline(client.clone(), queue.clone(), async move {
        let _ = stopped.await;
    });
    let ids: Vec<String> = (0..k).map(|i| format!("bench-{run_id}-{i}")).collect();
    let runs = async {
        let start = Instant::now();
        let mut handles = Vec::new();
        for id in &ids {
            let client = client.clone();
            let opts = WorkflowStartOptions::new(queue.clone(), id.clone()).build();
            handles.push(tokio::spawn(async move {
                let h = client
                    .start_workflow(BareWorkflow::run, input, opts)
                    .await?;
                h.get_result(WorkflowGetResultOptions::default()).await?;
                anyhow::Ok(())
            }));
        }
        let mut ok = 0;
        for h in handles {
            if matches!(h.await, Ok(Ok(()))) {
                ok += 1;
            }
        }
        let elapsed = start.elapsed();
        let _ = stop.send(());
        (ok, elapsed)
    };
    let (worked, (ok, elapsed)) = tokio::join!(worker, runs);
    worked?;
    Ok((ok, super::ratio(ok as f64, elapsed.as_secs_f64()), ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tasks_activities_and_markers() {
        let types = [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::MarkerRecorded,
            EventType::ActivityTaskScheduled,
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskCompleted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskCompleted,
            EventType::MarkerRecorded,
            EventType::WorkflowExecutionCompleted,
        ];
        assert_eq!(count_events(types.into_iter()), [13, 2, 1, 2]);
    }

    fn m(accepted: i64, completed: Option<i64>) -> Milestones {
        Milestones {
            order_id: format!("o{accepted}"),
            state: if completed.is_some() {
                "Completed"
            } else {
                "Packing"
            }
            .into(),
            accepted_ms: accepted,
            payable_ms: None,
            paid_ms: None,
            first_purchase_ms: None,
            completed_ms: completed,
        }
    }

    #[test]
    fn throughput_runs_from_the_first_acceptance_to_the_last_completion() {
        let orders = [m(0, Some(4_000)), m(1_000, Some(10_000)), m(2_000, None)];
        assert_eq!(throughput(&orders), (2, 0.2));
        assert!(!finished(&orders[2]));
        assert_eq!(throughput(&[]), (0, 0.0));
    }
}
