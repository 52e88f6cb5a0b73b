//! `intake` (P2): open-loop load on `POST /api/v1/orders` at each target rate, a fresh system
//! per rate so one step's engine backlog does not weigh on the next, the dispatcher and worker
//! working in the same run. Each request has its own `Idempotency-Key`; its latency runs from
//! the moment the schedule said to send it (coordinated omission corrected: a request that
//! waited for a free connection counts the wait). At most `connections` requests are in flight.

use super::{
    BenchConfig,
    latency::{Samples, corrected, intended_send},
    results::{IntakeResult, IntakeStep, RunInfo},
    system::Launched,
};
use procure_api::auth::Role;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

pub async fn run(cfg: &BenchConfig) -> anyhow::Result<IntakeResult> {
    let mut run = cfg.run_info("intake");
    let mut steps = Vec::new();
    for &rate in &cfg.intake_rates {
        eprintln!(
            "bench intake: {rate} orders/s for {} s ({} connections) — starting a fresh system",
            cfg.intake_seconds, cfg.intake_connections
        );
        let system = cfg.launch("intake", Vec::new()).await?;
        let step = step(cfg, &system, rate as f64).await;
        system.stop().await?;
        let step = step?;
        eprintln!(
            "bench intake: {rate}/s offered → {:.0} accepted/s, P50 {:.1} ms, P99 {:.1} ms, max {:.0} ms, {} errors",
            step.accepted_per_s,
            step.latency.p50_ms,
            step.latency.p99_ms,
            step.latency.max_ms,
            step.errors.values().sum::<u64>()
        );
        steps.push(step);
    }
    finish(&mut run);
    Ok(IntakeResult {
        run,
        connections: cfg.intake_connections,
        stock_note: format!(
            "every sandbox product and offer raised to {} units before the API seeds its listings",
            super::system::BENCH_STOCK
        ),
        steps,
    })
}

pub(super) fn finish(run: &mut RunInfo) {
    run.load_after = super::results::load_average();
}

struct Recorded {
    latency: Samples,
    accepted: u64,
    errors: BTreeMap<String, u64>,
    last_answer: Duration,
}

async fn step(cfg: &BenchConfig, system: &Launched, rate: f64) -> anyhow::Result<IntakeStep> {
    let driver = system.driver();
    let catalogue = driver.catalogue_full().await?;
    let skus = super::driver::skus_bought_by_api(&catalogue);
    let quotes = super::driver::quote_pool(&driver, &skus).await?;
    // Bodies and tokens made once: the generator's own work per request stays small.
    let requests: Arc<Vec<(String, Vec<u8>)>> = Arc::new(
        quotes
            .iter()
            .map(|q| {
                let token = driver.token(Role::Customer, Some(&q.customer));
                let body = serde_json::to_vec(&super::driver::order_body(q)).unwrap_or_default();
                (token, body)
            })
            .collect(),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(cfg.intake_connections)
        .build()?;
    let url = format!("{}/api/v1/orders", system.api_url);
    let sem = Arc::new(tokio::sync::Semaphore::new(cfg.intake_connections));
    let rec = Arc::new(Mutex::new(Recorded {
        latency: Samples::new(),
        accepted: 0,
        errors: BTreeMap::new(),
        last_answer: Duration::ZERO,
    }));
    let total = (rate * cfg.intake_seconds as f64).round() as u64;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let start = tokio::time::Instant::now();
    let mut handles = Vec::with_capacity(total as usize);
    let mut next_progress = Duration::from_secs(10);
    for i in 0..total {
        let due = intended_send(i, rate);
        tokio::time::sleep_until(start + due).await;
        if due >= next_progress {
            let r = rec.lock().unwrap();
            eprintln!(
                "bench intake: {rate}/s: {:.0} s, {} accepted, {} errors",
                due.as_secs_f64(),
                r.accepted,
                r.errors.values().sum::<u64>()
            );
            next_progress += Duration::from_secs(10);
        }
        let (http, url, sem, rec, requests) = (
            http.clone(),
            url.clone(),
            sem.clone(),
            rec.clone(),
            requests.clone(),
        );
        let key = format!("intake-{run_id}-{i}");
        handles.push(tokio::spawn(async move {
            let Ok(_permit) = sem.acquire_owned().await else {
                return;
            };
            let (token, body) = &requests[i as usize % requests.len()];
            let resp = http
                .post(&url)
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let outcome = match resp {
                Ok(r) => {
                    let status = r.status();
                    // Read the body: the order is accepted when its answer has arrived.
                    let _ = r.bytes().await;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(status.as_u16().to_string())
                    }
                }
                Err(e) if e.is_timeout() => Err("timeout".to_owned()),
                Err(e) if e.is_connect() => Err("connect".to_owned()),
                Err(_) => Err("transport".to_owned()),
            };
            let answered = start.elapsed();
            let mut r = rec.lock().unwrap();
            r.last_answer = r.last_answer.max(answered);
            match outcome {
                Ok(()) => {
                    r.accepted += 1;
                    r.latency.push(corrected(due, answered));
                }
                Err(why) => *r.errors.entry(why).or_default() += 1,
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let mut r = std::mem::replace(
        &mut *rec.lock().unwrap(),
        Recorded {
            latency: Samples::new(),
            accepted: 0,
            errors: BTreeMap::new(),
            last_answer: Duration::ZERO,
        },
    );
    let seconds = r.last_answer.as_secs_f64().max(cfg.intake_seconds as f64);
    let store = system.store().await?;
    let levels = store.levels(procure_domain::clock::now_ms()).await?;
    store.close().await;
    let started = match system.temporal_client().await {
        Ok(c) => c
            .count_workflows(
                "WorkflowType = 'OrderWorkflow'",
                temporalio_client::WorkflowCountOptions::default(),
            )
            .await
            .map(|c| c.count() as i64)
            .unwrap_or(-1),
        Err(_) => -1,
    };
    Ok(IntakeStep {
        target_per_s: rate,
        seconds,
        sent: total,
        accepted_per_s: r.accepted as f64 / seconds,
        accepted: r.accepted,
        errors: r.errors,
        latency: r.latency.percentiles(),
        outbox_backlog_at_end: levels.outbox_backlog,
        dispatched_at_end: started,
    })
}
