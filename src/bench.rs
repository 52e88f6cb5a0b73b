//! `procure bench`: K orders through the full workflow against the sandbox, then K bare
//! workflows with the same number of (no-op) activities on the same server, so the ratio shows
//! what our own code costs on top of the engine. The bare workflows run on a worker of their
//! own (`procure_worker::run_bench_baseline`), on a task queue beside the production one: the
//! production worker never registers them.

use crate::demo::{Driver, Script};
use procure_domain::OrderState;
use procure_workflows::bench::{BareInput, BareWorkflow};
use serde::Serialize;
use std::time::{Duration, Instant};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

#[derive(Debug, Serialize)]
pub struct BenchResult {
    pub orders: usize,
    pub completed: usize,
    pub orders_per_s: f64,
    pub baseline_workflows: usize,
    pub baseline_per_s: f64,
    pub ratio: f64,
    pub order_to_purchase_p50_ms: i64,
    pub order_to_purchase_p99_ms: i64,
    pub activities_per_order: u32,
    pub local_activities_per_order: u32,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Activities an order runs on the happy path with one line, shipped alone in its parcel:
/// the order's (load, reserve, create payment, candidates, purchase, storage deadline) and its
/// parcel's (settle, book, three status records, ≥1 tracking poll), plus the order's timeline
/// events recorded by local activities.
pub const ORDER_ACTIVITIES: u32 = 12;
pub const ORDER_LOCAL_ACTIVITIES: u32 = 12;

/// Run the bench against the system serving `task_queue` (the baseline's worker serves
/// `<task_queue>-baseline` while the bench runs).
pub async fn run(
    driver: &Driver,
    client: &Client,
    task_queue: &str,
    k: usize,
) -> anyhow::Result<BenchResult> {
    let catalogue = driver.catalogue().await?;
    eprintln!("bench: placing {k} orders…");
    let start = Instant::now();
    let mut placed = Vec::with_capacity(k);
    let mut handles = Vec::new();
    for i in 0..k {
        let (d, c) = (driver.clone(), catalogue.clone());
        handles.push(tokio::spawn(async move { d.place_demo_order(i, &c).await }));
    }
    for h in handles {
        let o = h.await??;
        placed.push((
            o["id"].as_str().unwrap_or_default().to_owned(),
            Instant::now(),
        ));
    }
    let mut last_report = Instant::now();
    let mut completed_so_far = 0usize;
    let outcomes = driver
        .drive(
            placed,
            Script::HappyPath,
            Duration::from_secs(600),
            |_, state, _, _| {
                if state == OrderState::Completed {
                    completed_so_far += 1;
                }
                if last_report.elapsed() > Duration::from_secs(2) {
                    eprintln!(
                        "bench: {completed_so_far}/{k} orders completed after {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                    last_report = Instant::now();
                }
            },
        )
        .await?;
    let orders_elapsed = start.elapsed();
    let completed = outcomes
        .iter()
        .filter(|o| o.state == OrderState::Completed)
        .count();
    let mut lat: Vec<i64> = outcomes.iter().filter_map(|o| o.to_purchase_ms).collect();
    lat.sort_unstable();
    eprintln!(
        "bench: {completed}/{k} orders completed in {:.1} s; running {k} bare workflows…",
        orders_elapsed.as_secs_f64()
    );

    let input = BareInput {
        activities: ORDER_ACTIVITIES,
        local_activities: ORDER_LOCAL_ACTIVITIES,
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let baseline_queue = format!("{task_queue}-baseline");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let baseline_worker =
        procure_worker::run_bench_baseline(client.clone(), baseline_queue.clone(), async move {
            let _ = stopped.await;
        });
    let baseline = async {
        let result = baseline_runs(client, &baseline_queue, &run_id, input, k).await;
        let _ = stop.send(());
        result
    };
    let (worked, ran) = tokio::join!(baseline_worker, baseline);
    worked?;
    let (baseline_ok, base_elapsed) = ran?;
    let orders_per_s = completed as f64 / orders_elapsed.as_secs_f64();
    let baseline_per_s = baseline_ok as f64 / base_elapsed.as_secs_f64();
    Ok(BenchResult {
        orders: k,
        completed,
        orders_per_s,
        baseline_workflows: baseline_ok,
        baseline_per_s,
        ratio: if baseline_per_s > 0.0 {
            orders_per_s / baseline_per_s
        } else {
            0.0
        },
        order_to_purchase_p50_ms: percentile(&lat, 0.50),
        order_to_purchase_p99_ms: percentile(&lat, 0.99),
        activities_per_order: ORDER_ACTIVITIES,
        local_activities_per_order: ORDER_LOCAL_ACTIVITIES,
    })
}

/// Start `k` bare workflows on `task_queue` and wait for them: how many completed, and in what
/// time.
async fn baseline_runs(
    client: &Client,
    task_queue: &str,
    run_id: &str,
    input: BareInput,
    k: usize,
) -> anyhow::Result<(usize, Duration)> {
    let bstart = Instant::now();
    let mut handles = Vec::new();
    for i in 0..k {
        let client = client.clone();
        let opts =
            WorkflowStartOptions::new(task_queue.to_owned(), format!("bench-{run_id}-{i}")).build();
        handles.push(tokio::spawn(async move {
            let h = client
                .start_workflow(BareWorkflow::run, input, opts)
                .await?;
            h.get_result(WorkflowGetResultOptions::default()).await?;
            anyhow::Ok(())
        }));
    }
    let mut baseline_ok = 0;
    for h in handles {
        if h.await?.is_ok() {
            baseline_ok += 1;
        }
    }
    Ok((baseline_ok, bstart.elapsed()))
}
