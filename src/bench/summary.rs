//! `bench/results/summary.md`, built from every phase file present (phases may have run
//! separately, at different times: each figure says when and on what it was measured).

use super::results::{self, BurstResult, IntakeResult, MemoryResult, RunInfo, SteadyResult};
use std::{fmt::Write, path::Path};

#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub intake: Option<IntakeResult>,
    pub burst: Option<BurstResult>,
    pub steady: Option<SteadyResult>,
    pub memory: Option<MemoryResult>,
    pub products: Option<super::products::ProductsResult>,
}

impl Inputs {
    pub fn read(dir: &Path) -> anyhow::Result<Inputs> {
        Ok(Inputs {
            intake: results::read(dir, "intake")?,
            burst: results::read(dir, "burst")?,
            steady: results::read(dir, "steady")?,
            memory: results::read(dir, "memory")?,
            products: results::read(dir, "products")?,
        })
    }
}

/// Met, missed, or only reported.
fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "reported",
    }
}

fn when(r: &RunInfo) -> String {
    format!(
        "{}, {} build, {}, {} cores, load {:.1} → {:.1}",
        r.started_at.get(..10).unwrap_or(&r.started_at),
        r.build,
        r.database,
        r.cores,
        r.load_before,
        r.load_after
    )
}

/// The intake step that best answers P2: the highest accepted rate among the steps that kept
/// P99 within 50 ms, else the highest accepted rate.
pub fn best_intake(r: &IntakeResult) -> Option<&results::IntakeStep> {
    let by_rate = |a: &&results::IntakeStep, b: &&results::IntakeStep| {
        a.accepted_per_s.total_cmp(&b.accepted_per_s)
    };
    r.steps
        .iter()
        .filter(|s| s.latency.p99_ms <= 50.0 && s.errors.is_empty())
        .max_by(by_rate)
        .or_else(|| r.steps.iter().max_by(by_rate))
}

pub fn render(i: &Inputs) -> String {
    let mut md = String::from(
        "# procure bench: summary\n\n\
         Built by `procure bench` from the phase files beside this one (each phase starts a fresh \
         system: Temporal dev server on a WAL SQLite file, `procure sandbox`, `procure api`, \
         `procure worker` as separate processes on loopback). Figures are reported against the \
         targets of issue 15; the bench never fails on them.\n\n\
         | # | figure | target | measured | verdict | command |\n|---|---|---|---|---|---|\n",
    );
    let row = |md: &mut String, cells: [&str; 6]| {
        let _ = writeln!(md, "| {} |", cells.join(" | "));
    };
    let none = "not run";
    match &i.steady {
        Some(s) if s.baseline_per_s > 0.0 => row(
            &mut md,
            [
                "P1",
                "full-flow orders/s ÷ bare-workflow/s (same server, run, activity count)",
                "≥ 0.8",
                &format!(
                    "{:.2} ({:.1} ÷ {:.1}/s, {} orders)",
                    s.ratio, s.capacity_orders_per_s, s.baseline_per_s, s.capacity_orders
                ),
                verdict(Some(s.ratio >= 0.8)),
                "`procure bench steady`",
            ],
        ),
        _ => row(
            &mut md,
            [
                "P1",
                "full-flow ÷ bare-workflow throughput",
                "≥ 0.8",
                none,
                "—",
                "`procure bench steady`",
            ],
        ),
    }
    match i
        .intake
        .as_ref()
        .and_then(|r| best_intake(r).map(|s| (r, s)))
    {
        Some((r, s)) => row(
            &mut md,
            [
                "P2",
                &format!(
                    "intake, accepted orders/s over {:.0} s offered, engine working",
                    super::ratio(s.sent as f64, s.target_per_s).round()
                ),
                "≥ 2,000/s at P99 ≤ 50 ms",
                &format!(
                    "{:.0}/s at P99 {:.1} ms (offered {:.0}/s, {})",
                    s.accepted_per_s, s.latency.p99_ms, s.target_per_s, r.run.database
                ),
                verdict(Some(s.accepted_per_s >= 1980.0 && s.latency.p99_ms <= 50.0)),
                "`procure bench intake`",
            ],
        ),
        None => row(
            &mut md,
            [
                "P2",
                "intake, accepted orders/s",
                "≥ 2,000/s at P99 ≤ 50 ms",
                none,
                "—",
                "`procure bench intake`",
            ],
        ),
    }
    match &i.steady {
        Some(s) => row(
            &mut md,
            [
                "P3",
                &format!("order → first purchase at {}/s steady", s.rate_per_s),
                "p99 ≤ 2 s",
                &format!(
                    "p50 {:.0} ms, p99 {:.0} ms ({} orders)",
                    s.order_to_purchase.p50_ms,
                    s.order_to_purchase.p99_ms,
                    s.order_to_purchase.count
                ),
                verdict(Some(
                    s.order_to_purchase.count > 0 && s.order_to_purchase.p99_ms <= 2000.0,
                )),
                "`procure bench steady`",
            ],
        ),
        None => row(
            &mut md,
            [
                "P3",
                "order → first purchase",
                "p99 ≤ 2 s",
                none,
                "—",
                "`procure bench steady`",
            ],
        ),
    }
    match &i.memory {
        Some(m) => {
            let at = |n: usize| {
                m.levels
                    .iter()
                    .find(|l| l.in_flight >= n && l.in_flight < n + n / 10 + 1)
            };
            let measured = m
                .levels
                .iter()
                .map(|l| format!("{:.0} MB at {}", l.rss_mb, l.in_flight))
                .collect::<Vec<_>>()
                .join(", ");
            row(
                &mut md,
                [
                    "P4",
                    "worker RSS with 1,000 / 5,000 orders in flight",
                    "≤ 150 MB at 1,000",
                    &format!(
                        "{measured} (idle {:.0} MB, cache ≤ {})",
                        m.idle_rss_mb, m.max_cached_workflows
                    ),
                    verdict(at(1000).map(|l| l.rss_mb <= 150.0)),
                    "`procure bench memory`",
                ],
            );
        }
        None => row(
            &mut md,
            [
                "P4",
                "worker RSS in flight",
                "≤ 150 MB at 1,000",
                none,
                "—",
                "`procure bench memory`",
            ],
        ),
    }
    match &i.burst {
        Some(b) => {
            row(
                &mut md,
                [
                    "P5",
                    &format!("{}-order burst: accepted → payable intent", b.burst_orders),
                    "P99 ≤ 1 s",
                    &format!(
                        "P50 {:.0} ms, P99 {:.0} ms ({} orders, from the {})",
                        b.accepted_to_payable.p50_ms,
                        b.accepted_to_payable.p99_ms,
                        b.accepted_to_payable.count,
                        b.payable_source
                    ),
                    verdict(Some(
                        b.accepted_to_payable.count > 0 && b.accepted_to_payable.p99_ms <= 1000.0,
                    )),
                    "`procure bench burst`",
                ],
            );
            row(
                &mut md,
                [
                    "P6",
                    "same burst: paid → first purchase, new orders arriving",
                    "p99 reported; paid never behind unpaid",
                    &format!(
                        "burst p50 {:.1} s, p99 {:.1} s; arriving meanwhile {}; {}",
                        b.paid_to_purchase.p50_ms / 1000.0,
                        b.paid_to_purchase.p99_ms / 1000.0,
                        if b.trickle_paid_to_purchase.count == 0 {
                            format!("none of {} bought by the end", b.trickle_orders)
                        } else {
                            format!(
                                "p50 {:.1} s, p99 {:.1} s",
                                b.trickle_paid_to_purchase.p50_ms / 1000.0,
                                b.trickle_paid_to_purchase.p99_ms / 1000.0
                            )
                        },
                        if b.not_purchased == 0 {
                            format!("drained in {:.0} s", b.drain_seconds)
                        } else {
                            format!(
                                "{} of {} still unbought after {:.0} s",
                                b.not_purchased, b.burst_orders, b.drain_seconds
                            )
                        }
                    ),
                    verdict(None),
                    "`procure bench burst`",
                ],
            );
        }
        None => {
            row(
                &mut md,
                [
                    "P5",
                    "burst: accepted → payable",
                    "P99 ≤ 1 s",
                    none,
                    "—",
                    "`procure bench burst`",
                ],
            );
            row(
                &mut md,
                [
                    "P6",
                    "burst: paid → purchase",
                    "p99 reported",
                    none,
                    "—",
                    "`procure bench burst`",
                ],
            );
        }
    }

    match &i.products {
        Some(p) => {
            row(
                &mut md,
                [
                    "R1",
                    &format!(
                        "cached product reads, wrk {} threads × {} connections, {} products",
                        p.cached.threads, p.cached.connections, p.cached.distinct_products
                    ),
                    "≥ 30,000 req/s at P99 ≤ 5 ms",
                    &format!(
                        "{:.0} req/s at P99 {:.2} ms (P50 {:.2} ms, {} errors)",
                        p.cached.requests_per_s, p.cached.p99_ms, p.cached.p50_ms, p.cached.errors
                    ),
                    verdict(Some(
                        p.cached.requests_per_s >= 30_000.0
                            && p.cached.p99_ms <= 5.0
                            && p.cached.errors == 0,
                    )),
                    "`procure bench products`",
                ],
            );
            row(
                &mut md,
                [
                    "R2",
                    "cold product reads (cache off: every read from the store)",
                    "reported",
                    &format!(
                        "{:.0} req/s at P99 {:.2} ms ({})",
                        p.cold.requests_per_s, p.cold.p99_ms, p.run.database
                    ),
                    verdict(None),
                    "`procure bench products`",
                ],
            );
            if let Some(shared) = &p.shared {
                row(
                    &mut md,
                    [
                        "R2b",
                        "shared-level reads (a replica with its in-process cache off, answered from Redis)",
                        "reported",
                        &format!(
                            "{:.0} req/s at P99 {:.2} ms ({} errors)",
                            shared.requests_per_s, shared.p99_ms, shared.errors
                        ),
                        verdict(None),
                        "`procure bench products`",
                    ],
                );
            }
            row(
                &mut md,
                [
                    "R3",
                    &format!(
                        "imports against the sandbox, {} at once",
                        p.import_concurrency
                    ),
                    "reported",
                    &format!(
                        "{:.1}/s ({} products in {:.1} s, {} failed)",
                        p.imports_per_s, p.imports, p.import_seconds, p.import_failures
                    ),
                    verdict(None),
                    "`procure bench products`",
                ],
            );
        }
        None => row(
            &mut md,
            [
                "R1",
                "cached product reads",
                "≥ 30,000 req/s at P99 ≤ 5 ms",
                none,
                "—",
                "`procure bench products`",
            ],
        ),
    }

    if let Some(r) = &i.intake {
        let _ = write!(
            md,
            "\n## intake\n\n{}; open loop, {} connections at most, latency from each request's \
             intended send time; {}.\n\n\
             | offered/s | accepted/s | P50 | P90 | P99 | P99.9 | max | errors | outbox backlog at end | workflows started by then |\n\
             |---|---|---|---|---|---|---|---|---|---|\n",
            when(&r.run),
            r.connections,
            r.stock_note
        );
        for s in &r.steps {
            let errors = if s.errors.is_empty() {
                "0".to_owned()
            } else {
                s.errors
                    .iter()
                    .map(|(k, v)| format!("{v} × {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "| {:.0} | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.0} ms | {errors} | {} | {} |",
                s.target_per_s,
                s.accepted_per_s,
                s.latency.p50_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.p999_ms,
                s.latency.max_ms,
                s.outbox_backlog_at_end,
                s.dispatched_at_end
            );
        }
    }
    if let Some(b) = &i.burst {
        let p = |x: &super::latency::Percentiles| {
            format!(
                "{:.0} ms / {:.0} ms / {:.0} ms (n = {})",
                x.p50_ms, x.p99_ms, x.max_ms, x.count
            )
        };
        let _ = write!(
            md,
            "\n## burst\n\n{}; {} orders accepted in {:.1} s, then {}/s ({} orders) while they \
             drained; the driver process pays each order when a list shows its intent.\n\n\
             | figure | P50 / P99 / max |\n|---|---|\n\
             | accepted → payable | {} |\n\
             | paid → first purchase (burst) | {} |\n\
             | paid → first purchase (arriving during the drain) | {} |\n\
             | accepted → first purchase (burst) | {} |\n\n\
             Drain: {:.0} s from the first acceptance to the last burst order's first purchase; \
             {} bought, {} not.\n",
            when(&b.run),
            b.burst_orders,
            b.accept_seconds,
            b.trickle_per_s,
            b.trickle_orders,
            p(&b.accepted_to_payable),
            p(&b.paid_to_purchase),
            p(&b.trickle_paid_to_purchase),
            p(&b.accepted_to_purchase),
            b.drain_seconds,
            b.purchased,
            b.not_purchased
        );
        if let Some(plot) = &b.plot {
            let _ = writeln!(md, "\n![latency over the burst]({plot})");
        }
    }
    if let Some(s) = &i.steady {
        let _ = write!(
            md,
            "\n## steady\n\n{}; {}/s for {:.0} s from a separate driver process (lists by state, \
             {:.1} requests/s).\n\n\
             | figure | value |\n|---|---|\n\
             | placed / completed | {} / {} |\n\
             | completed orders/s | {:.2} |\n\
             | order → first purchase p50 / p99 | {:.0} ms / {:.0} ms |\n\
             | order → completed p50 / p99 | {:.1} s / {:.1} s |\n\
             | history events per order (order + parcel) | {:.1} |\n\
             | workflow tasks per order | {:.1} |\n\
             | activities / local activities per order | {:.1} / {:.1} |\n\
             | capacity: orders at once → completed/s | {} → {:.2}/s |\n\
             | baseline: bare workflows ({} activities, {} local) | {} → {:.2}/s ({:.1} events, {:.1} tasks each) |\n\
             | ratio | {:.2} |\n",
            when(&s.run),
            s.rate_per_s,
            s.seconds,
            s.driver_requests_per_s,
            s.placed,
            s.completed,
            s.orders_per_s,
            s.order_to_purchase.p50_ms,
            s.order_to_purchase.p99_ms,
            s.order_to_complete.p50_ms / 1000.0,
            s.order_to_complete.p99_ms / 1000.0,
            s.history.events_per_order,
            s.history.workflow_tasks_per_order,
            s.history.activities_per_order,
            s.history.local_activities_per_order,
            s.capacity_orders,
            s.capacity_orders_per_s,
            s.baseline_activities,
            s.baseline_local_activities,
            s.baseline_workflows,
            s.baseline_per_s,
            s.baseline_history.events_per_order,
            s.baseline_history.workflow_tasks_per_order,
            s.ratio
        );
    }
    if let Some(m) = &i.memory {
        let _ = write!(
            md,
            "\n## memory\n\n{}; orders wait in {}; sticky cache up to {} workflows \
             (`worker.max_cached_workflows`); idle worker {:.0} MB.\n\n\
             | in flight | waiting | worker RSS | KB per order above idle | sticky cache |\n|---|---|---|---|---|\n",
            when(&m.run),
            m.waiting_state,
            m.max_cached_workflows,
            m.idle_rss_mb
        );
        for l in &m.levels {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} MB | {:.0} | {} |",
                l.in_flight,
                l.waiting,
                l.rss_mb,
                l.kb_per_order,
                l.sticky_cache.map_or("?".to_owned(), |c| format!("{c:.0}"))
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{
        latency::Percentiles,
        results::{IntakeStep, MemoryLevel},
    };

    fn pct(p50: f64, p99: f64) -> Percentiles {
        Percentiles {
            count: 100,
            p50_ms: p50,
            p90_ms: p99,
            p99_ms: p99,
            p999_ms: p99,
            max_ms: p99,
            mean_ms: p50,
        }
    }

    #[test]
    fn nothing_run_says_so_for_every_target() {
        let md = render(&Inputs::default());
        for p in ["P1", "P2", "P3", "P4", "P5", "P6"] {
            let line = md
                .lines()
                .find(|l| l.starts_with(&format!("| {p} |")))
                .unwrap();
            assert!(line.contains("not run"), "{line}");
        }
        assert!(!md.contains("## intake"));
    }

    #[test]
    fn figures_and_verdicts_come_from_the_phase_files() {
        let intake = IntakeResult {
            connections: 256,
            steps: vec![
                IntakeStep {
                    target_per_s: 1000.0,
                    accepted_per_s: 1000.0,
                    latency: pct(3.0, 20.0),
                    ..IntakeStep::default()
                },
                IntakeStep {
                    target_per_s: 2000.0,
                    accepted_per_s: 1500.0,
                    latency: pct(300.0, 900.0),
                    errors: [("timeout".to_owned(), 4)].into(),
                    ..IntakeStep::default()
                },
            ],
            ..IntakeResult::default()
        };
        assert_eq!(best_intake(&intake).unwrap().target_per_s, 1000.0);
        let memory = MemoryResult {
            max_cached_workflows: 2000,
            idle_rss_mb: 40.0,
            levels: vec![
                MemoryLevel {
                    in_flight: 1000,
                    rss_mb: 120.0,
                    ..MemoryLevel::default()
                },
                MemoryLevel {
                    in_flight: 5000,
                    rss_mb: 300.0,
                    ..MemoryLevel::default()
                },
            ],
            ..MemoryResult::default()
        };
        let burst = BurstResult {
            burst_orders: 5000,
            accepted_to_payable: pct(200.0, 1500.0),
            payable_source: "store".into(),
            plot: Some("burst.png".into()),
            ..BurstResult::default()
        };
        let md = render(&Inputs {
            intake: Some(intake),
            burst: Some(burst),
            steady: None,
            memory: Some(memory),
            products: None,
        });
        let line = |p: &str| {
            md.lines()
                .find(|l| l.starts_with(&format!("| {p} |")))
                .unwrap()
                .to_owned()
        };
        assert!(
            line("P2").contains("1000/s at P99 20.0 ms"),
            "{}",
            line("P2")
        );
        assert!(line("P2").contains("missed"));
        assert!(
            line("P4").contains("120 MB at 1000, 300 MB at 5000"),
            "{}",
            line("P4")
        );
        assert!(line("P4").contains("| met |"));
        assert!(line("P5").contains("P99 1500 ms"), "{}", line("P5"));
        assert!(line("P5").contains("missed"));
        assert!(line("P6").contains("reported"));
        assert!(line("P1").contains("not run"));
        assert!(md.contains("4 × timeout"));
        assert!(md.contains("![latency over the burst](burst.png)"));
        assert!(md.contains("## memory"));
        assert!(!md.contains("## steady"));
    }
}
