//! `procure chaos`: nothing lost, nothing doubled while the system is broken on purpose.
//!
//! Bounded and on loopback only. The outside world (the sandbox, with faults switched on) runs
//! in this process; the API and two workers run as separate `procure` processes against a
//! file-backed Temporal dev server and one SQLite file. While N orders go through, a worker is
//! killed with SIGKILL at random intervals and started again, the API is killed and restarted,
//! and the Temporal dev server is stopped and restarted once. Meanwhile the people around the
//! system act as real ones do ([`Actions`]): operators send malformed and valid Updates and
//! malformed signals with the stock `temporal` CLI, a "provider" sends correctly signed
//! webhooks with wrong amounts and replays a real delivery, and customers cancel at random
//! stages. At the end every invariant is checked and printed:
//!
//! - every order placed is in the read-model, in a terminal state or parked for an operator;
//! - at most one marketplace purchase per order line, exactly one for a completed order;
//! - charges minus refunds equal what the orders owe, per currency and per order;
//! - stock: what is available plus what is reserved equals what there was;
//! - every malformed operator action was refused; every forged payment parked its order
//!   until it was paid for real;
//! - no order workflow is in a workflow-task-failure loop;
//! - no outbox row retried past its bound (dead letters are reported by reason).

use crate::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
    system::wait_http_ok,
};
use anyhow::Context;
use procure_api::auth::Role;
use procure_domain::OrderState;
use procure_domain::clock::now_ms;
use procure_store::Store;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::process::{Child, Command};

#[derive(Clone, Debug)]
pub struct ChaosConfig {
    pub orders: usize,
    pub seed: u64,
    /// The `procure` binary to run the API and the workers with.
    pub procure_bin: PathBuf,
    pub dir: PathBuf,
    /// Gap between two worker kills, drawn uniformly from this range.
    pub kill_every: (Duration, Duration),
    /// Everything must be settled by then.
    pub deadline: Duration,
    pub actions: Actions,
}

/// What operators, the payment provider and customers do during a run (all bounded).
#[derive(Clone, Debug)]
pub struct Actions {
    /// Orders an operator sends malformed Updates and signals (and one valid action) to.
    pub operator_orders: usize,
    /// Orders that get a correctly signed webhook with a wrong amount, then a replay.
    pub forged_payments: usize,
    /// Orders the customer asks to cancel.
    pub customer_cancels: usize,
    /// Operators and customers act at a random moment this long after the orders are placed.
    pub act_within: Duration,
}

impl Default for Actions {
    fn default() -> Self {
        Actions {
            operator_orders: 3,
            forged_payments: 3,
            customer_cancels: 3,
            act_within: Duration::from_secs(15),
        }
    }
}

/// The provider's webhook signing secret in the sandbox and the demo configuration.
const WEBHOOK_SECRET: &str = "whsec_procure_demo";

/// Malformed operator inputs: every one must be refused.
const MALFORMED: [&str; 4] = [r#"{"max_unit_fen": "abc"}"#, "42", "null", "[]"];

#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    pub orders: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub worker_kills: usize,
    pub api_restarts: usize,
    pub temporal_restarts: usize,
    pub faults: Vec<String>,
    pub elapsed: Duration,
    /// Malformed operator Updates sent, and refused (all should be).
    pub malformed_sent: usize,
    pub malformed_refused: usize,
    /// Of those, refused only because the workflow had already completed.
    pub malformed_late: usize,
    /// Malformed signals sent with the CLI (the workflow notes and ignores them).
    pub malformed_signals: usize,
    /// Well-formed operator Updates sent, and accepted (the rest refused: not waiting for it).
    pub valid_sent: usize,
    pub valid_accepted: usize,
    /// Why operator Updates were refused (the CLI's message), with counts.
    pub refusals: BTreeMap<String, usize>,
    /// Forged payment webhooks sent, and orders seen parked by one.
    pub forged_sent: usize,
    pub forged_parked: usize,
    /// Replays of a real payment delivery sent.
    pub replays_sent: usize,
    /// Customer cancellations, granted and refused (with the state the order was in).
    pub cancels_granted: usize,
    pub cancels_refused: usize,
    pub cancel_detail: BTreeMap<String, usize>,
    /// (invariant, held, detail)
    pub checks: Vec<(String, bool, String)>,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|(_, held, _)| *held)
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "| figure | value |\n|---|---|\n| orders | {} |\n| outcomes | {} |\n| worker SIGKILLs (restarted) | {} |\n| API restarts | {} |\n| Temporal dev server restarts | {} |\n| sandbox faults | {} |\n| malformed operator updates sent / refused (of which after the order ended) | {} / {} ({}) |\n| malformed signals sent | {} |\n| valid operator updates sent / accepted | {} / {} |\n| operator refusals | {} |\n| forged payments sent / parked | {} / {} |\n| replayed deliveries | {} |\n| customer cancellations granted / refused | {} / {} ({}) |\n| elapsed | {:.0} s |\n\n| invariant | held | detail |\n|---|---|---|\n",
            self.orders,
            self.outcomes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.worker_kills,
            self.api_restarts,
            self.temporal_restarts,
            self.faults.join("; "),
            self.malformed_sent,
            self.malformed_refused,
            self.malformed_late,
            self.malformed_signals,
            self.valid_sent,
            self.valid_accepted,
            self.refusals
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect::<Vec<_>>()
                .join("; "),
            self.forged_sent,
            self.forged_parked,
            self.replays_sent,
            self.cancels_granted,
            self.cancels_refused,
            self.cancel_detail
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.elapsed.as_secs_f64()
        );
        for (name, held, detail) in &self.checks {
            s.push_str(&format!(
                "| {name} | {} | {detail} |\n",
                if *held { "yes" } else { "**NO**" }
            ));
        }
        s
    }
}

struct Procs {
    cfg: ChaosConfig,
    env: Vec<(&'static str, String)>,
    api: Option<Child>,
    workers: Vec<Child>,
}

impl Procs {
    fn spawn(&self, args: &[&str], log: &str) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.cfg.dir.join(log))?;
        let mut cmd = Command::new(&self.cfg.procure_bin);
        cmd.args(args)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.spawn().context("starting a procure process")
    }

    fn start_api(&mut self, seed: bool) -> anyhow::Result<()> {
        let args: &[&str] = if seed {
            &["api", "--seed-sandbox-catalogue"]
        } else {
            &["api"]
        };
        self.api = Some(self.spawn(args, "api.log")?);
        Ok(())
    }

    fn start_worker(&mut self) -> anyhow::Result<()> {
        let w = self.spawn(&["worker"], "worker.log")?;
        self.workers.push(w);
        Ok(())
    }
}

pub async fn run(cfg: ChaosConfig) -> anyhow::Result<ChaosReport> {
    crate::system::install_crypto_provider();
    let started = Instant::now();
    std::fs::create_dir_all(&cfg.dir)?;
    let mut report = ChaosReport {
        orders: cfg.orders,
        ..Default::default()
    };
    let temporal_opts = DevServerOptions {
        db_file: Some(cfg.dir.join("temporal.db")),
        port: Some(free_port()),
        ui_port: None,
        ui: false,
        namespace: "default".into(),
        search_attributes: vec![(
            procure_workflows::ORDER_STATE_ATTRIBUTE.into(),
            "Keyword".into(),
        )],
        log_file: Some(cfg.dir.join("temporal.log")),
        ui_codec_endpoint: None,
    };
    let mut temporal = DevServer::start(temporal_opts.clone()).await?;
    println!("chaos: Temporal dev server at {}", temporal.address());

    // The outside world, in this process, with faults switched on.
    let api_port = free_port();
    let api_url = format!("http://127.0.0.1:{api_port}");
    // Payment deliveries pass through a recorder here, so one can be replayed later.
    let deliveries = Deliveries::default();
    let relay_url = deliveries
        .serve(format!("{api_url}/api/v1/webhooks/payments"))
        .await?;
    let sb_cfg = procure_sandbox::SandboxConfig {
        payments_webhook_url: Some(relay_url),
        tracking_webhook_url: Some(format!("{api_url}/api/v1/webhooks/tracking")),
        tracking_step_ms: 300,
        ..Default::default()
    };
    let sandbox = procure_sandbox::Sandbox::new(sb_cfg);
    let sb_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sandbox_url = format!("http://{}", sb_listener.local_addr()?);
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(procure_sandbox::serve(
        sb_listener,
        sandbox.clone(),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));

    let db_url = format!("sqlite://{}", cfg.dir.join("procure.db").display());
    let env = vec![
        ("PROCURE_DATABASE_URL", db_url.clone()),
        ("PROCURE_TEMPORAL_ADDRESS", temporal.address()),
        ("PROCURE_TASK_QUEUE", format!("chaos-{}", cfg.seed)),
        ("PROCURE_EXTERNAL_URL", sandbox_url.clone()),
        // The sandbox's demo credentials, the development keys and the demo warehouse.
        ("PROCURE_DEVELOPMENT", "true".into()),
        ("PROCURE_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("PROCURE_TRACKING_POLL_S", "2".into()),
        ("PROCURE_PAYMENT_TIMEOUT_S", "3600".into()),
        ("PROCURE_PURCHASER_DEADLINE_S", "3600".into()),
        ("RUST_LOG", "warn".into()),
    ];
    let mut procs = Procs {
        cfg: cfg.clone(),
        env,
        api: None,
        workers: Vec::new(),
    };
    procs.start_api(true)?;
    wait_http_ok(&format!("{api_url}/health"), Duration::from_secs(30)).await?;
    procs.start_worker()?;
    procs.start_worker()?;

    let driver = Driver::new(api_url.clone(), sandbox_url.clone());
    let faults = [
        json!({"platform": "1688", "api": "*", "kind": "error", "rate": 0.1}),
        json!({"platform": "1688", "api": "*", "kind": "latency", "rate": 0.2, "latency_ms": 300}),
        json!({"platform": "1688", "api": "*", "kind": "rate_limit", "rate": 1.0, "count": 5}),
        json!({"platform": "1688", "api": "alibaba.trade.createCrossOrder", "kind": "timeout_after_commit", "rate": 1.0, "latency_ms": 12000, "count": 2}),
        json!({"platform": "taobao", "api": "/purchase/order/create", "kind": "timeout_after_commit", "rate": 1.0, "latency_ms": 12000, "count": 2}),
    ];
    for f in &faults {
        driver.add_fault(f.clone()).await?;
        report.faults.push(format!(
            "{} {} {}",
            f["platform"].as_str().unwrap_or_default(),
            f["kind"].as_str().unwrap_or_default(),
            f.get("count")
                .map(|c| format!("×{c}"))
                .or_else(|| f.get("rate").map(|r| format!("{r}")))
                .unwrap_or_default()
        ));
    }

    // What there was, before any order.
    let store = Store::connect(&db_url).await?;
    let stock_before: HashMap<String, i64> = store
        .listings()
        .await?
        .into_iter()
        .map(|l| (l.sku, l.available))
        .collect();

    let catalogue = driver.catalogue().await?;
    let mut placed = Vec::with_capacity(cfg.orders);
    for i in 0..cfg.orders {
        let o = driver.place_demo_order(i, &catalogue).await?;
        placed.push((
            o["id"].as_str().context("order id")?.to_owned(),
            Instant::now(),
        ));
    }
    println!(
        "chaos: {} orders placed; breaking things while they run …",
        placed.len()
    );

    // The chaos: kill workers at random, restart the API once and Temporal once.
    let kills = Arc::new(AtomicUsize::new(0));
    let last_restart_ms = Arc::new(AtomicI64::new(now_ms()));
    let temporal_address = temporal.address();
    let chaos = {
        let (stop, kills, last_restart_ms) = (stop.clone(), kills.clone(), last_restart_ms.clone());
        let mut rng = fastrand::Rng::with_seed(cfg.seed);
        let (lo, hi) = (
            cfg.kill_every.0.as_millis() as u64,
            cfg.kill_every
                .1
                .as_millis()
                .max(cfg.kill_every.0.as_millis() + 1) as u64,
        );
        let api_health = format!("{api_url}/health");
        async move {
            let mut api_restarts = 0;
            let mut temporal_restarts = 0;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(rng.u64(lo..hi))).await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let n = kills.fetch_add(1, Ordering::SeqCst) + 1;
                let victim = rng.usize(0..procs.workers.len());
                let mut w = procs.workers.remove(victim);
                let _ = w.start_kill();
                let _ = w.wait().await;
                println!("chaos: SIGKILL worker ({n}), starting another");
                procs.start_worker()?;
                if n == 2 && api_restarts == 0 {
                    if let Some(mut api) = procs.api.take() {
                        let _ = api.start_kill();
                        let _ = api.wait().await;
                    }
                    println!("chaos: API killed, restarting");
                    procs.start_api(false)?;
                    wait_http_ok(&api_health, Duration::from_secs(30)).await?;
                    api_restarts += 1;
                }
                if n == 4 && temporal_restarts == 0 {
                    println!("chaos: stopping the Temporal dev server");
                    temporal.stop().await?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    temporal = DevServer::start(temporal_opts.clone()).await?;
                    println!("chaos: Temporal dev server back at {}", temporal.address());
                    temporal_restarts += 1;
                }
                last_restart_ms.store(now_ms(), Ordering::SeqCst);
            }
            anyhow::Ok((procs, temporal, api_restarts, temporal_restarts))
        }
    };
    let chaos = tokio::spawn(chaos);

    // Who does what: disjoint sets of orders, chosen by the seed.
    let mut rng = fastrand::Rng::with_seed(cfg.seed ^ 0x5eed_ac75);
    let mut pick: Vec<usize> = (0..placed.len()).collect();
    rng.shuffle(&mut pick);
    let mut take = |n: usize| -> Vec<String> {
        let n = n.min(pick.len());
        pick.drain(..n).map(|i| placed[i].0.clone()).collect()
    };
    let forged = take(cfg.actions.forged_payments);
    let cancelled = take(cfg.actions.customer_cancels);
    let operated = take(cfg.actions.operator_orders);
    let out = Arc::new(Throttle::default());
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let act_ms = cfg.actions.act_within.as_millis().max(1) as u64;
    let actor = Actor {
        driver: driver.clone(),
        temporal: temporal_address.clone(),
        deliveries: deliveries.clone(),
        out: out.clone(),
        tally: tally.clone(),
        deadline: Instant::now() + cfg.deadline,
    };
    let mut acts = Vec::new();
    for (i, id) in operated.iter().enumerate() {
        let delay = Duration::from_millis(rng.u64(0..act_ms));
        acts.push(tokio::spawn(actor.clone().operate(id.clone(), i, delay)));
    }
    for (i, id) in cancelled.iter().enumerate() {
        let delay = Duration::from_millis(rng.u64(0..act_ms));
        acts.push(tokio::spawn(actor.clone().customer_cancel(
            id.clone(),
            i,
            delay,
        )));
    }
    let rest: Vec<(String, Instant)> = placed
        .iter()
        .filter(|(id, _)| !forged.contains(id))
        .cloned()
        .collect();
    let forged_placed: Vec<(String, Instant)> = placed
        .iter()
        .filter(|(id, _)| forged.contains(id))
        .cloned()
        .collect();
    // Forged orders are driven once paid for real (the driver counts a parked order as done).
    let forged_run = {
        let (actor, driver, deadline) = (actor.clone(), driver.clone(), cfg.deadline);
        async move {
            let mut firsts = Vec::new();
            for (i, (id, _)) in forged_placed.iter().enumerate() {
                firsts.push(tokio::spawn(actor.clone().forge(id.clone(), i)));
            }
            for f in firsts {
                f.await??;
            }
            driver
                .drive(forged_placed, Script::Chaos, deadline, |_, _, _, _| {})
                .await
        }
    };
    let (outcomes, forged_outcomes) = tokio::join!(
        driver.drive(rest, Script::Chaos, cfg.deadline, |_, _, _, _| {}),
        forged_run
    );
    let mut outcomes = outcomes?;
    outcomes.extend(forged_outcomes?);
    for a in acts {
        a.await??;
    }
    stop.store(true, Ordering::SeqCst);
    let (mut procs, temporal, api_restarts, temporal_restarts) = chaos.await??;
    report.worker_kills = kills.load(Ordering::SeqCst);
    report.api_restarts = api_restarts;
    report.temporal_restarts = temporal_restarts;
    for o in &outcomes {
        *report
            .outcomes
            .entry(o.state.as_str().to_owned())
            .or_default() += 1;
    }

    {
        let t = tally.lock().expect("tally");
        report.malformed_sent = t.malformed_sent;
        report.malformed_refused = t.malformed_refused;
        report.malformed_late = t.malformed_late;
        report.malformed_signals = t.malformed_signals;
        report.valid_sent = t.valid_sent;
        report.valid_accepted = t.valid_accepted;
        report.refusals = t.refusals.clone();
        report.forged_sent = t.forged_sent;
        report.forged_parked = t.forged_parked;
        report.replays_sent = t.replays_sent;
        report.cancels_granted = t.cancels_granted;
        report.cancels_refused = t.cancels_refused;
        report.cancel_detail = t.cancel_detail.clone();
        report.checks.push(verdict(
            "every malformed operator action refused",
            &t.malformed_accepted,
            t.malformed_sent,
        ));
        report.checks.push(verdict(
            "a forged payment parks its order until paid for real",
            &t.forged_through,
            t.forged_sent,
        ));
    }
    check(&mut report, &driver, &store, &placed, &stock_before).await?;
    check_task_failures(
        &mut report,
        &temporal_address,
        &placed,
        last_restart_ms.load(Ordering::SeqCst) + RESTART_SETTLES_MS,
    )
    .await?;
    check_outbox(&mut report, &driver, &store).await?;
    report.elapsed = started.elapsed();

    for w in procs.workers.iter_mut() {
        let _ = w.start_kill();
    }
    if let Some(api) = procs.api.as_mut() {
        let _ = api.start_kill();
    }
    let _ = stop_tx.send(true);
    temporal.stop().await?;
    store.close().await;
    Ok(report)
}

async fn check(
    report: &mut ChaosReport,
    driver: &Driver,
    store: &Store,
    placed: &[(String, Instant)],
    stock_before: &HashMap<String, i64>,
) -> anyhow::Result<()> {
    let ledger = driver.ledger().await?;
    let mut missing = Vec::new();
    let mut unsettled = Vec::new();
    let mut doubled = Vec::new();
    let mut unbought = Vec::new();
    let mut money = Vec::new();
    let mut per_order = Vec::new();
    let mut owed_by_currency: BTreeMap<String, i64> = BTreeMap::new();
    for (id, _) in placed {
        let o = match driver.order(id).await {
            Ok(o) => o,
            Err(_) => {
                missing.push(id.clone());
                continue;
            }
        };
        let state: OrderState = o["state"]
            .as_str()
            .unwrap_or("")
            .parse()
            .unwrap_or(OrderState::Created);
        if !(state.is_terminal() || state == OrderState::NeedsOperator) {
            unsettled.push(format!("{id} {}", state.as_str()));
        }
        // Purchases: our idempotent external ids carry the order id.
        let lines = o["lines"].as_array().map_or(1, Vec::len);
        let purchases = ledger
            .iter()
            .filter(|e| e.kind == "purchase" && e.reference.contains(id.as_str()))
            .count();
        if purchases > lines {
            doubled.push(format!("{id}: {purchases} purchases for {lines} line(s)"));
        }
        if state == OrderState::Completed && purchases != lines {
            unbought.push(format!("{id}: {purchases} purchases for {lines} line(s)"));
        }
        // Money: what the order owes, in its currency (compared with the ledger below).
        let currency = o["total"]["currency"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let parcel_id = o["warehouse"]["parcel_id"].as_str().map(str::to_owned);
        let settlement = match parcel_id.as_deref() {
            Some(pid) => match driver.parcel(pid).await {
                Ok(p) => settlement_of(&p, id),
                Err(e) => {
                    money.push(format!("{id}: parcel {pid} unreadable: {e}"));
                    0
                }
            },
            None => 0,
        };
        let owes = owed(&o, state, settlement) - refunded_shares(&o, state);
        *owed_by_currency.entry(currency.clone()).or_default() += owes;
        // The same per order: what the provider charged it minus what it refunded it
        // (charges carry the order id, refunds `<order id>-refund…`, a parcel's own money
        // carries the parcel's id and the driver ships each order alone).
        let mine = |r: &str| {
            r == id
                || r.starts_with(&format!("{id}-"))
                || parcel_id.as_deref().is_some_and(|p| r.contains(p))
        };
        let net: i64 = ledger
            .iter()
            .filter(|e| mine(&e.reference) && e.currency.eq_ignore_ascii_case(&currency))
            .map(|e| match e.kind.as_str() {
                "charge" => e.amount_minor,
                "refund" => -e.amount_minor,
                _ => 0,
            })
            .sum();
        if net != owes {
            per_order.push(format!(
                "{id} {}: charged − refunded {net} ≠ owed {owes} {currency}",
                state.as_str()
            ));
        }
    }
    let mut moved: BTreeMap<String, i64> = BTreeMap::new();
    for e in &ledger {
        let sign = match e.kind.as_str() {
            "charge" => 1,
            "refund" => -1,
            _ => continue,
        };
        *moved.entry(e.currency.to_ascii_uppercase()).or_default() += sign * e.amount_minor;
    }
    for (currency, owed) in &owed_by_currency {
        let net = moved.get(currency).copied().unwrap_or_default();
        if net != *owed {
            money.push(format!(
                "{currency}: charged − refunded {net} ≠ owed {owed}"
            ));
        }
    }
    let n = placed.len();
    report
        .checks
        .push(verdict("every order is in the read-model", &missing, n));
    report.checks.push(verdict(
        "every order terminal or parked for an operator",
        &unsettled,
        n,
    ));
    report.checks.push(verdict(
        "at most one marketplace purchase per line",
        &doubled,
        n,
    ));
    report.checks.push(verdict(
        "a completed order bought each line exactly once",
        &unbought,
        n,
    ));
    report.checks.push(verdict(
        "charges − refunds = what the orders owe (per currency)",
        &money,
        owed_by_currency.len(),
    ));
    report.checks.push(verdict(
        "per order: charged − refunded = what the policy owes for its end state",
        &per_order,
        n,
    ));

    // Stock: available now + units still reserved = what there was.
    let mut stock = Vec::new();
    let reserved: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT sku, CAST(SUM(quantity) AS BIGINT) AS n FROM reservations WHERE released_at_ms IS NULL GROUP BY sku",
    )
    .fetch_all(store.pool())
    .await?
    .into_iter()
    .collect();
    for l in store.listings().await? {
        let before = stock_before.get(&l.sku).copied().unwrap_or_default();
        let held = reserved.get(&l.sku).copied().unwrap_or_default();
        if l.available + held != before {
            stock.push(format!(
                "{}: {} available + {held} reserved ≠ {before}",
                l.sku, l.available
            ));
        }
    }
    report.checks.push(verdict(
        "stock: available + reserved = what there was",
        &stock,
        stock_before.len(),
    ));
    Ok(())
}

fn verdict(name: &str, failures: &[String], of: usize) -> (String, bool, String) {
    let detail = if failures.is_empty() {
        format!("{of} of {of}")
    } else {
        format!(
            "{} of {of} failed: {}",
            failures.len(),
            failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    (name.to_owned(), failures.is_empty(), detail)
}

/// What packing settled for one order of a parcel: a paid supplementary charge (+) or a
/// refund (−); nothing when absorbed or not settled.
pub fn settlement_of(parcel: &Value, order_id: &str) -> i64 {
    parcel["settlements"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["order_id"] == order_id)
        .map(|s| {
            let amount = s["amount"]["minor"].as_i64().unwrap_or_default();
            match s["outcome"].as_str() {
                Some("charge") => amount,
                Some("refund") => -amount,
                _ => 0,
            }
        })
        .unwrap_or_default()
}

/// What the customer paid on top of an order for accepted price changes (minor units).
pub fn paid_supplements(o: &Value) -> i64 {
    o["price_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "paid")
        .map(|c| c["amount"]["minor"].as_i64().unwrap_or_default())
        .sum()
}

/// The shares of lines cancelled on their own while the rest of the order went on (the
/// workflow notes "line N: refunded its share 12.34 USD (re_…)"): the order owes its kept
/// lines only. Nothing for an order that owes nothing anyway.
fn refunded_shares(o: &Value, state: OrderState) -> i64 {
    if owed(o, state, 0) == 0 {
        return 0;
    }
    o["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .flat_map(|r| r.split("; "))
        .filter_map(|r| r.split_once("refunded its share ").map(|(_, t)| t))
        .filter_map(|t| t.split_whitespace().next())
        .filter_map(|amount| amount.replace('.', "").parse::<i64>().ok())
        .sum()
}

/// What an order owes in the end, in minor units of its currency: nothing when refunded,
/// cancelled, expired or failed; otherwise its total, the price changes it paid for and its
/// parcel's settlement (an order parked for an operator keeps its payment until one acts).
fn owed(o: &Value, state: OrderState, settlement: i64) -> i64 {
    let total = o["total"]["minor"].as_i64().unwrap_or_default();
    let supplements = paid_supplements(o);
    match state {
        OrderState::Refunded
        | OrderState::Cancelled
        | OrderState::PaymentExpired
        | OrderState::Failed
        | OrderState::Created
        | OrderState::PendingPayment => 0,
        _ => total + supplements + settlement,
    }
}

// ----- operators, the provider and customers -------------------------------------------

/// How long after the last worker kill or restart a workflow task may still fail because of
/// it (a task started on a killed worker, a sticky queue gone); later failures are a loop.
const RESTART_SETTLES_MS: i64 = 15_000;

/// One line per kind of event at most per second; the rest are counted into the next line.
#[derive(Default)]
struct Throttle(std::sync::Mutex<HashMap<&'static str, (Option<Instant>, usize)>>);

impl Throttle {
    fn say(&self, kind: &'static str, msg: String) {
        let mut m = self.0.lock().expect("throttle");
        let (last, quiet) = m.entry(kind).or_default();
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            *quiet += 1;
            return;
        }
        let more = if *quiet > 0 {
            format!(" (+{quiet} more since)")
        } else {
            String::new()
        };
        println!("chaos: {kind}: {msg}{more}");
        *last = Some(Instant::now());
        *quiet = 0;
    }
}

/// What the actors did.
#[derive(Default)]
struct Tally {
    malformed_sent: usize,
    malformed_refused: usize,
    malformed_accepted: Vec<String>,
    malformed_late: usize,
    malformed_signals: usize,
    valid_sent: usize,
    valid_accepted: usize,
    refusals: BTreeMap<String, usize>,
    forged_sent: usize,
    forged_parked: usize,
    forged_through: Vec<String>,
    replays_sent: usize,
    cancels_granted: usize,
    cancels_refused: usize,
    cancel_detail: BTreeMap<String, usize>,
}

/// The payment provider's deliveries to the API pass through here and are kept (body only;
/// the signature is made again for a replay, as the provider does when it retries).
#[derive(Clone, Default)]
struct Deliveries(Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl Deliveries {
    /// Listen on loopback and forward every delivery to `target`; returns the relay's URL.
    async fn serve(&self, target: String) -> anyhow::Result<String> {
        use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode};
        async fn relay(
            State((kept, target, http)): State<(Deliveries, String, reqwest::Client)>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            kept.0.lock().expect("deliveries").push(body.to_vec());
            let mut req = http.post(&target).body(body);
            for name in ["stripe-signature", "content-type"] {
                if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
                    req = req.header(name, v);
                }
            }
            match req.send().await {
                Ok(r) => {
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
                }
                Err(_) => StatusCode::BAD_GATEWAY,
            }
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let app = axum::Router::new()
            .route("/relay", axum::routing::post(relay))
            .with_state((self.clone(), target, http));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/relay", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(url)
    }

    /// The delivery the provider made for `intent`, if it made one.
    fn for_intent(&self, intent: &str) -> Option<Vec<u8>> {
        self.0
            .lock()
            .expect("deliveries")
            .iter()
            .find(|b| {
                serde_json::from_slice::<Value>(b)
                    .is_ok_and(|e| e["data"]["object"]["id"] == intent)
            })
            .cloned()
    }
}

/// The CLI's message without the command line it quotes, short.
fn gist(msg: &str) -> String {
    let m = msg.rsplit("Error:").next().unwrap_or(msg).trim();
    m.chars()
        .take(90)
        .collect::<String>()
        .replace(['|', '\n'], " ")
}

/// A CLI call's end: done (stdout) or refused (the CLI's message); Err is worth retrying.
type CliEnd = Result<String, String>;

#[derive(Clone)]
struct Actor {
    driver: Driver,
    temporal: String,
    deliveries: Deliveries,
    out: Arc<Throttle>,
    tally: Arc<std::sync::Mutex<Tally>>,
    deadline: Instant,
}

impl Actor {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().expect("tally")
    }

    /// The stock `temporal` CLI, retried while the server is away or the workflow not
    /// started yet; a non-zero exit for any other reason is a refusal.
    async fn cli(&self, args: Vec<String>) -> anyhow::Result<CliEnd> {
        loop {
            let (addr, a) = (self.temporal.clone(), args.clone());
            let r = tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                crate::devserver::temporal_cli(&addr, &a)
            })
            .await?;
            match r {
                Ok(out) => return Ok(Ok(out)),
                Err(e) => {
                    let msg = format!("{e:#}");
                    let lower = msg.to_ascii_lowercase();
                    // The update ran and answered, in the workers' encrypted encoding, which
                    // the stock CLI (no codec) cannot show: done, not refused.
                    if lower.contains("binary/encrypted") {
                        return Ok(Ok("(an answer the CLI cannot decode: encrypted)".into()));
                    }
                    let transient = [
                        "connection refused",
                        "unavailable",
                        "deadline exceeded",
                        "not found",
                        "transport",
                        "connection reset",
                        "eof",
                    ]
                    .iter()
                    .any(|t| lower.contains(t));
                    if !transient {
                        return Ok(Err(msg));
                    }
                    if Instant::now() > self.deadline {
                        anyhow::bail!("temporal CLI still failing at the deadline: {msg}");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn update(&self, wid: &str, name: &str, input: &str) -> anyhow::Result<CliEnd> {
        self.cli(
            [
                "workflow", "update", "execute", "-w", wid, "--name", name, "--input", input,
            ]
            .map(str::to_owned)
            .to_vec(),
        )
        .await
    }

    /// An operator at work on one order: malformed Updates (each must be refused), a
    /// malformed signal (noted and ignored), then well-formed ones.
    async fn operate(self, id: String, i: usize, delay: Duration) -> anyhow::Result<()> {
        tokio::time::sleep(delay).await;
        let wid = procure_workflows::order_workflow_id(&id);
        for (k, input) in MALFORMED.iter().enumerate() {
            let name = ["retry_procurement", "cancel_order"][(i + k) % 2];
            let end = self.update(&wid, name, input).await?;
            let mut t = self.tally();
            t.malformed_sent += 1;
            match end {
                Err(why) => {
                    t.malformed_refused += 1;
                    if why.contains("already completed") {
                        t.malformed_late += 1;
                    }
                    *t.refusals
                        .entry(format!("{name}: {}", gist(&why)))
                        .or_default() += 1;
                }
                Ok(out) => t
                    .malformed_accepted
                    .push(format!("{id} {name} {input}: {}", out.trim())),
            }
            drop(t);
            self.out
                .say("operator", format!("malformed {name} {input} to {id}"));
        }
        let signal = self
            .cli(
                [
                    "workflow",
                    "signal",
                    "-w",
                    &wid,
                    "--name",
                    "cancel_order",
                    "--input",
                    "5",
                ]
                .map(str::to_owned)
                .to_vec(),
            )
            .await?;
        if signal.is_ok() {
            self.tally().malformed_signals += 1;
            self.out.say(
                "operator",
                format!("malformed signal cancel_order 5 to {id}"),
            );
        }
        let mut valid = vec![("retry_step", "{}".to_owned())];
        if i == 0 {
            valid.push((
                "cancel_order",
                json!({"reason": "chaos: an operator cancels", "requested_by": "operator:chaos"})
                    .to_string(),
            ));
        }
        for (name, input) in valid {
            let end = self.update(&wid, name, &input).await?;
            let mut t = self.tally();
            t.valid_sent += 1;
            match &end {
                Ok(_) => t.valid_accepted += 1,
                Err(why) => {
                    *t.refusals
                        .entry(format!("{name}: {}", gist(why)))
                        .or_default() += 1
                }
            }
            drop(t);
            self.out.say(
                "operator",
                format!(
                    "{name} to {id}: {}",
                    if end.is_ok() { "accepted" } else { "refused" }
                ),
            );
        }
        Ok(())
    }

    /// The customer asks to cancel, whatever stage the order has reached.
    async fn customer_cancel(self, id: String, i: usize, delay: Duration) -> anyhow::Result<()> {
        tokio::time::sleep(delay).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        loop {
            if Instant::now() > self.deadline {
                anyhow::bail!("customer cancellation of {id} unanswered at the deadline");
            }
            let Ok(o) = self.driver.order(&id).await else {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            };
            let stage = o["state"].as_str().unwrap_or("?").to_owned();
            let token = self.driver.token(Role::Customer, o["customer_id"].as_str());
            let resp = http
                .post(format!("{}/api/v1/orders/{id}/cancel", self.driver.api))
                .bearer_auth(token)
                .json(&json!({"reason": format!("chaos: customer {i} changed their mind")}))
                .send()
                .await;
            let status = resp.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
            let outcome = match status {
                200 => "granted",
                409 => "refused",
                _ => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut t = self.tally();
            if status == 200 {
                t.cancels_granted += 1;
            } else {
                t.cancels_refused += 1;
            }
            *t.cancel_detail
                .entry(format!("{outcome} in {stage}"))
                .or_default() += 1;
            drop(t);
            self.out
                .say("customer", format!("cancel {id} in {stage}: {outcome}"));
            return Ok(());
        }
    }

    /// Poll an order until `done` says so (or the deadline passes).
    async fn wait_order(&self, id: &str, done: impl Fn(&Value) -> bool) -> Option<Value> {
        while Instant::now() < self.deadline {
            if let Ok(o) = self.driver.order(id).await
                && done(&o)
            {
                return Some(o);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Send a correctly signed payment event to the API until it answers (not 5xx).
    async fn webhook(&self, body: &[u8]) -> anyhow::Result<u16> {
        let http = reqwest::Client::new();
        loop {
            let now = now_ms() / 1000;
            let r = http
                .post(format!("{}/api/v1/webhooks/payments", self.driver.api))
                .header(
                    "Stripe-Signature",
                    procure_domain::signing::stripe_signature_header(WEBHOOK_SECRET, now, body),
                )
                .body(body.to_vec())
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() < 500 => return Ok(r.status().as_u16()),
                _ if Instant::now() > self.deadline => anyhow::bail!("payment webhook unanswered"),
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// A signed webhook that lies about the amount (0, one minor unit, another currency):
    /// the order must park until the customer really pays; then the real delivery is replayed.
    async fn forge(self, id: String, i: usize) -> anyhow::Result<()> {
        let Some(o) = self
            .wait_order(&id, |o| {
                o["state"] == "PendingPayment" && o["payment_intent_id"].is_string()
            })
            .await
        else {
            anyhow::bail!("order {id} never waited for payment");
        };
        let intent = o["payment_intent_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let amount = o["total"]["minor"].as_i64().unwrap_or_default();
        let currency = o["total"]["currency"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let (lie_amount, lie_currency) = match i % 3 {
            0 => (0, currency.clone()),
            1 => (1, currency.clone()),
            _ => (
                amount,
                if currency == "jpy" { "usd" } else { "jpy" }.to_owned(),
            ),
        };
        let event = json!({
            "id": format!("evt_forged_{}", uuid::Uuid::new_v4().simple()),
            "object": "event",
            "type": "payment_intent.succeeded",
            "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded",
                                "amount": lie_amount, "amount_received": lie_amount,
                                "currency": lie_currency}}
        });
        let status = self.webhook(&serde_json::to_vec(&event)?).await?;
        self.tally().forged_sent += 1;
        self.out.say(
            "provider",
            format!("forged {lie_amount} {lie_currency} for {id}: HTTP {status}"),
        );
        let parked = self
            .wait_order(&id, |o| {
                let past_payment = !matches!(
                    o["state"].as_str(),
                    Some("PendingPayment" | "NeedsOperator" | "Created")
                );
                past_payment
                    || (o["state"] == "NeedsOperator"
                        && o["timeline"].as_array().is_some_and(|t| {
                            t.iter().any(|e| {
                                e["reason"]
                                    .as_str()
                                    .is_some_and(|r| r.contains("payment not verified"))
                            })
                        }))
            })
            .await;
        match parked {
            Some(o) if o["state"] == "NeedsOperator" => self.tally().forged_parked += 1,
            Some(o) => self.tally().forged_through.push(format!(
                "{id}: went on to {} on a forged payment",
                o["state"].as_str().unwrap_or("?")
            )),
            None => self
                .tally()
                .forged_through
                .push(format!("{id}: never parked")),
        }
        // The customer pays for real; the order goes on.
        while self.driver.pay(&intent).await.is_err() {
            if Instant::now() > self.deadline {
                anyhow::bail!("could not pay {id}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.wait_order(&id, |o| {
            !matches!(
                o["state"].as_str(),
                Some("PendingPayment" | "NeedsOperator" | "Created")
            )
        })
        .await;
        self.out
            .say("provider", format!("{id} paid for real and going on"));
        // The provider delivers the real event again (twice): nothing may move twice.
        let mut real = None;
        while real.is_none() && Instant::now() < self.deadline {
            real = self.deliveries.for_intent(&intent);
            if real.is_none() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if let Some(body) = real {
            for _ in 0..2 {
                let status = self.webhook(&body).await?;
                self.tally().replays_sent += 1;
                self.out.say(
                    "provider",
                    format!("replayed {id}'s delivery: HTTP {status}"),
                );
            }
        }
        Ok(())
    }
}

// ----- the new invariants ----------------------------------------------------------------

/// No order workflow in a workflow-task-failure loop: its last workflow task did not fail,
/// and no task failed after the last restart settled (`settled_ms`). Failures with cause
/// `UnhandledCommand` (new events arrived while a task completed) are ordinary and counted
/// apart.
async fn check_task_failures(
    report: &mut ChaosReport,
    temporal: &str,
    placed: &[(String, Instant)],
    settled_ms: i64,
) -> anyhow::Result<()> {
    let mut looping = Vec::new();
    let (mut failed, mut late, mut unhandled) = (0usize, 0usize, 0usize);
    let mut seen_tasks = 0usize;
    for (id, _) in placed {
        let wid = procure_workflows::order_workflow_id(id);
        let addr = temporal.to_owned();
        let out = tokio::task::spawn_blocking(move || {
            crate::devserver::temporal_cli(
                &addr,
                &["workflow", "show", "-w", &wid, "--output", "json"],
            )
        })
        .await?;
        let history: Value = match out.map(|s| serde_json::from_str(&s)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                looping.push(format!("{id}: history unreadable: {e}"));
                continue;
            }
            Err(e) => {
                looping.push(format!("{id}: no history: {e:#}"));
                continue;
            }
        };
        let mut last_task = "";
        let mut tasks = 0usize;
        for e in history["events"].as_array().into_iter().flatten() {
            let kind = event_kind(e);
            if !kind.starts_with("workflowtask") || kind == "workflowtaskscheduled" {
                continue;
            }
            if kind == "workflowtaskstarted" {
                continue;
            }
            tasks += 1;
            last_task = if kind == "workflowtaskfailed" {
                "failed"
            } else {
                "ok"
            };
            if kind != "workflowtaskfailed" {
                continue;
            }
            let cause = e["workflowTaskFailedEventAttributes"]["cause"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .replace('_', "");
            if cause.contains("unhandledcommand") {
                unhandled += 1;
                continue;
            }
            failed += 1;
            let at = e["eventTime"].as_str().and_then(rfc3339_ms).unwrap_or(0);
            if at > settled_ms {
                late += 1;
                looping.push(format!(
                    "{id}: workflow task failed after the last restart settled ({cause})"
                ));
            }
        }
        if last_task == "failed" {
            looping.push(format!("{id}: its last workflow task failed"));
        }
        if tasks == 0 {
            looping.push(format!(
                "{id}: no workflow task in its history (unreadable?)"
            ));
        }
        seen_tasks += tasks;
    }
    let (name, held, detail) = verdict(
        "no workflow in a workflow-task-failure loop",
        &looping,
        placed.len(),
    );
    report.checks.push((
        name,
        held,
        format!(
            "{detail}; {seen_tasks} workflow tasks ended, WorkflowTaskFailed: {failed} \
             (after the last restart settled: {late}), UnhandledCommand: {unhandled}"
        ),
    ));
    Ok(())
}

/// `EVENT_TYPE_WORKFLOW_TASK_FAILED` or `WorkflowTaskFailed` → `workflowtaskfailed`.
fn event_kind(e: &Value) -> String {
    e["eventType"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("EVENT_TYPE_")
        .replace('_', "")
        .to_ascii_lowercase()
}

/// `2026-12-01T10:20:30.123456789Z` → Unix milliseconds (UTC only, as Temporal writes).
fn rfc3339_ms(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let frac: String = s
        .get(19..)
        .unwrap_or_default()
        .trim_start_matches('.')
        .chars()
        .take_while(char::is_ascii_digit)
        .chain("000".chars())
        .take(3)
        .collect();
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + sec * 1000 + frac.parse::<i64>().ok()?)
}

/// No outbox row retried past its bound: every pending row's attempts ≤ the bound, and the
/// dead letters (`GET /api/v1/admin/outbox/dead`) are reported by reason.
async fn check_outbox(
    report: &mut ChaosReport,
    driver: &Driver,
    store: &Store,
) -> anyhow::Result<()> {
    let bound = i64::from(procure_api::dispatcher::DEFAULT_MAX_ATTEMPTS);
    let mut past = Vec::new();
    let rows: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT id, kind, attempts FROM outbox WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
    )
    .fetch_all(store.pool())
    .await?;
    let mut max_pending = 0;
    for &(id, ref kind, attempts) in &rows {
        max_pending = max_pending.max(attempts);
        if attempts > bound {
            past.push(format!(
                "pending row {id} ({kind}) at {attempts} attempts > {bound}"
            ));
        }
    }
    let dead = driver
        .api_get("/api/v1/admin/outbox/dead?limit=1000")
        .await?;
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for d in dead["dead"].as_array().into_iter().flatten() {
        let attempts = d["attempts"].as_i64().unwrap_or_default();
        let subject = d["subject_id"].as_str().unwrap_or_default();
        if attempts > bound {
            past.push(format!(
                "dead row {} at {attempts} attempts > {bound}",
                d["id"]
            ));
        }
        let to = match driver.order(subject).await {
            Ok(o) => {
                let st = o["state"].as_str().unwrap_or("?").to_owned();
                let ended = st.parse::<OrderState>().is_ok_and(|s| s.is_terminal());
                format!("{} order ({st})", if ended { "an ended" } else { "a LIVE" })
            }
            Err(_) => "not an order".to_owned(),
        };
        let what = match d["signal"].as_str() {
            Some(sig) => format!("signal {sig}"),
            None => d["kind"].as_str().unwrap_or("?").to_owned(),
        };
        *by_reason.entry(format!("{what} to {to}")).or_default() += 1;
    }
    let (name, held, detail) = verdict(
        "no outbox row retried past its bound",
        &past,
        rows.len() + dead["dead"].as_array().map_or(0, Vec::len),
    );
    report.checks.push((
        name,
        held,
        format!(
            "{detail}; bound {bound}, pending {} (most attempts {max_pending}), dead {}{}",
            rows.len(),
            dead["dead_count"].as_i64().unwrap_or_default(),
            if by_reason.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    by_reason
                        .iter()
                        .map(|(k, v)| format!("{k} ×{v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    ));
    Ok(())
}
