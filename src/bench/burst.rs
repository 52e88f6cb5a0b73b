//! `burst` (P5, P6): `burst_orders` orders placed at once by the driver process, which pays
//! each as soon as a list shows its payment intent and keeps placing new orders (the trickle)
//! while the burst drains. From the store: accepted → payable (the intent stored), the
//! driver's payment → the first purchase recorded, and accepted → first purchase; the drain
//! ends when every burst order has its first purchase (or the deadline passes).

use super::{
    BenchConfig, DriverPlan, DriverProcess,
    driver::Plan,
    latency::Samples,
    results::{BurstPoint, BurstResult},
};
use procure_store::milestones::Milestones;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

pub async fn run(cfg: &BenchConfig) -> anyhow::Result<BurstResult> {
    let (mut result, run) = cfg
        .measured("burst", Vec::new(), async |system| {
            measure(cfg, system).await
        })
        .await?;
    result.run = run;
    Ok(result)
}

async fn measure(
    cfg: &BenchConfig,
    system: &super::system::Launched,
) -> anyhow::Result<BurstResult> {
    let store = system.store().await?;
    let since = procure_domain::clock::now_ms();
    let started = Instant::now();
    eprintln!(
        "bench burst: {} orders at once, then {}/s while they drain",
        cfg.burst_orders, cfg.burst_trickle_per_s
    );
    let mut driver = DriverProcess::start(
        cfg,
        system,
        "burst-driver",
        DriverPlan {
            plan: Plan::Pay,
            burst: cfg.burst_orders,
            rate: cfg.burst_trickle_per_s,
            seconds: cfg.deadline.as_secs_f64(),
        },
    )?;
    let mut last_progress = Instant::now();
    let mut drained = false;
    while started.elapsed() < cfg.deadline && driver.running() {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let m = store.milestones(since).await?;
        let burst = &m[..m.len().min(cfg.burst_orders)];
        let bought = burst
            .iter()
            .filter(|o| o.first_purchase_ms.is_some())
            .count();
        let payable = m.iter().filter(|o| o.payable_ms.is_some()).count();
        if last_progress.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "bench burst: {:.0} s: {} accepted, {payable} payable, {bought}/{} of the burst bought",
                started.elapsed().as_secs_f64(),
                m.len(),
                cfg.burst_orders
            );
            last_progress = Instant::now();
        }
        if burst.len() == cfg.burst_orders && burst.iter().all(done) {
            drained = true;
            break;
        }
    }
    if !drained {
        eprintln!("bench burst: the burst had not drained when the deadline passed");
    }
    let report = driver.finish().await?;
    let milestones = store.milestones(since).await?;
    store.close().await;
    let mut r = figures(cfg, &report, &milestones);
    r.trickle_per_s = cfg.burst_trickle_per_s;
    r.accept_seconds = report.burst_accept_seconds;
    let png = cfg.out_dir.join("burst.png");
    match super::plot::burst(&png, &r) {
        Ok(()) => r.plot = Some("burst.png".into()),
        Err(e) => eprintln!("bench burst: no plot ({e:#})"),
    }
    eprintln!(
        "bench burst: payable P99 {:.0} ms, paid → purchase P99 {:.0} ms, drained in {:.0} s",
        r.accepted_to_payable.p99_ms, r.paid_to_purchase.p99_ms, r.drain_seconds
    );
    Ok(r)
}

/// Bought, or stopped for good without a purchase.
fn done(o: &Milestones) -> bool {
    o.first_purchase_ms.is_some()
        || matches!(
            o.state.as_str(),
            "Cancelled" | "Failed" | "Refunded" | "Expired" | "NeedsOperator"
        )
}

/// The burst's figures from what the driver did and the store's milestones.
pub fn figures(
    cfg: &BenchConfig,
    report: &super::driver::DriverReport,
    milestones: &[Milestones],
) -> BurstResult {
    let placed: HashMap<&str, &super::driver::Placed> =
        report.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let t0 = milestones.first().map_or(0, |m| m.accepted_ms);
    let (mut payable, mut paid_buy, mut trickle_buy, mut accepted_buy) = (
        Samples::new(),
        Samples::new(),
        Samples::new(),
        Samples::new(),
    );
    let mut from_store = 0usize;
    let mut points = Vec::new();
    let mut last_burst_purchase = t0;
    let (mut purchased, mut not_purchased) = (0, 0);
    for m in milestones {
        let p = placed.get(m.order_id.as_str());
        let in_burst = p.is_some_and(|p| p.in_burst);
        let payable_at = match m.payable_ms {
            Some(at) => {
                from_store += 1;
                Some(at)
            }
            None => p.and_then(|p| p.payable_seen_ms),
        };
        let to_payable = payable_at.map(|at| (at - m.accepted_ms) as f64);
        if let Some(ms) = to_payable {
            payable.push_ms(ms);
        }
        let paid = p.and_then(|p| p.paid_ms);
        let after_paid = match (paid, m.first_purchase_ms) {
            (Some(paid), Some(bought)) => Some((bought - paid) as f64),
            _ => None,
        };
        if let Some(ms) = after_paid {
            if in_burst {
                paid_buy.push_ms(ms);
            } else {
                trickle_buy.push_ms(ms);
            }
        }
        if in_burst {
            match m.first_purchase_ms {
                Some(bought) => {
                    purchased += 1;
                    accepted_buy.push_ms((bought - m.accepted_ms) as f64);
                    last_burst_purchase = last_burst_purchase.max(bought);
                }
                None => not_purchased += 1,
            }
        }
        points.push(BurstPoint {
            accepted_s: (m.accepted_ms - t0) as f64 / 1000.0,
            payable_ms: to_payable,
            purchase_after_paid_ms: after_paid,
            in_burst,
        });
    }
    BurstResult {
        burst_orders: cfg.burst_orders,
        trickle_orders: report.orders.iter().filter(|o| !o.in_burst).count(),
        accepted_to_payable: payable.percentiles(),
        payable_source: if from_store > 0 { "store" } else { "driver" }.into(),
        paid_to_purchase: paid_buy.percentiles(),
        trickle_paid_to_purchase: trickle_buy.percentiles(),
        accepted_to_purchase: accepted_buy.percentiles(),
        drain_seconds: (last_burst_purchase - t0) as f64 / 1000.0,
        purchased,
        not_purchased,
        points,
        ..BurstResult::default()
    }
}
