//! `memory` (P4): the worker process's resident set (VmRSS from /proc) against orders in
//! flight. The driver process places orders and never pays, so each workflow waits for its
//! payment; at each level (1,000, then 5,000 in all) the bench waits until every order's
//! workflow is running and the worker has gone quiet (its sticky cache and RSS stop moving),
//! then samples. KB per order is (RSS − the idle worker's RSS) ÷ orders in flight. The sticky
//! cache holds at most `worker.max_cached_workflows`; beyond it workflows are evicted and
//! replayed on their next task, so RSS past that level measures the cache, not the orders.

use super::{
    BenchConfig, DriverPlan, DriverProcess,
    driver::Plan,
    results::{MemoryLevel, MemoryResult},
    system::Launched,
};
use std::time::{Duration, Instant};

pub async fn run(cfg: &BenchConfig) -> anyhow::Result<MemoryResult> {
    let mut env = Vec::new();
    if let Some(n) = cfg.memory_cache {
        env.push((
            "PROCURE_WORKER__MAX_CACHED_WORKFLOWS".to_owned(),
            n.to_string(),
        ));
    }
    let cache = match cfg.memory_cache {
        Some(n) => n,
        None => {
            crate::settings::Settings::load(&crate::settings::Sources::from_process_env())?
                .worker
                .max_cached_workflows
        }
    };
    let (mut result, run) = cfg
        .measured("memory", env, async |system| {
            measure(cfg, system, cache).await
        })
        .await?;
    result.run = run;
    Ok(result)
}

async fn sticky_cache(system: &Launched) -> Option<f64> {
    match system.worker_gauge("temporal_sticky_cache_size").await {
        Some(v) => Some(v),
        None => system.worker_gauge("sticky_cache_size").await,
    }
}

/// Sample RSS every 2 s until two samples in a row are within 1 % (at most `within`).
async fn settled_rss_kb(system: &Launched, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    let mut last = system.worker_rss_kb().unwrap_or(0);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = system.worker_rss_kb().unwrap_or(0);
        let close = (now as f64 - last as f64).abs() <= last as f64 * 0.01;
        if close || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

async fn measure(
    cfg: &BenchConfig,
    system: &Launched,
    cache: usize,
) -> anyhow::Result<MemoryResult> {
    let idle_kb = settled_rss_kb(system, Duration::from_secs(20)).await;
    eprintln!(
        "bench memory: idle worker {:.0} MB (sticky cache up to {cache} workflows)",
        idle_kb as f64 / 1024.0
    );
    let store = system.store().await?;
    let client = system.temporal_client().await?;
    let mut levels = Vec::new();
    let mut placed = 0usize;
    for &level in &cfg.memory_levels {
        if level <= placed {
            continue;
        }
        let driver = DriverProcess::start(
            cfg,
            system,
            &format!("memory-driver-{level}"),
            DriverPlan {
                plan: Plan::Place,
                burst: level - placed,
                rate: 0.0,
                seconds: 0.0,
            },
        )?;
        // Closing its input stops it once the orders are placed (it waits for them).
        let report = driver.finish().await?;
        placed += report.orders.len();
        let started = Instant::now();
        let mut waiting: usize;
        loop {
            let running = client
                .count_workflows(
                    "WorkflowType = 'OrderWorkflow' AND ExecutionStatus = 'Running'",
                    temporalio_client::WorkflowCountOptions::default(),
                )
                .await
                .map(|c| c.count())
                .unwrap_or(0);
            waiting = store
                .count_by_state()
                .await?
                .into_iter()
                .filter(|(s, _)| *s == procure_domain::OrderState::PendingPayment)
                .map(|(_, n)| n as usize)
                .sum();
            let cached = sticky_cache(system).await.unwrap_or(0.0) as usize;
            let cache_full = cached + 5 >= placed.min(cache);
            if running >= placed && waiting >= placed && cache_full {
                break;
            }
            if started.elapsed() > cfg.deadline {
                eprintln!(
                    "bench memory: {placed} placed, {running} running, {waiting} waiting, cache {cached} when the deadline passed; sampling anyway"
                );
                break;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let rss_kb = settled_rss_kb(system, Duration::from_secs(60)).await;
        let sticky = sticky_cache(system).await;
        let l = MemoryLevel {
            in_flight: placed,
            waiting,
            rss_mb: rss_kb as f64 / 1024.0,
            kb_per_order: super::ratio(rss_kb.saturating_sub(idle_kb) as f64, placed as f64),
            sticky_cache: sticky,
        };
        eprintln!(
            "bench memory: {placed} in flight → worker {:.0} MB, {:.0} KB per order, sticky cache {:?}",
            l.rss_mb, l.kb_per_order, l.sticky_cache
        );
        levels.push(l);
    }
    store.close().await;
    Ok(MemoryResult {
        waiting_state: "PendingPayment (placed, never paid)".into(),
        max_cached_workflows: cache,
        idle_rss_mb: idle_kb as f64 / 1024.0,
        levels,
        ..MemoryResult::default()
    })
}
