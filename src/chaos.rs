//! `procure chaos`: nothing lost, nothing doubled while the system is broken on purpose.
//!
//! Bounded and on loopback only. The outside world (the sandbox, with faults switched on) runs
//! in this process; the API and two workers run as separate `procure` processes against a
//! file-backed Temporal dev server and one SQLite file. While N orders go through, a worker is
//! killed with SIGKILL at random intervals and started again, the API is killed and restarted,
//! and the Temporal dev server is stopped and restarted once. At the end every invariant is
//! checked and printed:
//!
//! - every order placed is in the read-model, in a terminal state or parked for an operator;
//! - at most one marketplace purchase per order line, exactly one for a completed order;
//! - charges minus refunds equal what each order owes;
//! - stock: what is available plus what is reserved equals what there was.

use crate::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
    system::wait_http_ok,
};
use anyhow::Context;
use procure_activities::store::Store;
use procure_domain::OrderState;
use serde_json::{Value, json};
use sqlx::Row;
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
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
}

#[derive(Clone, Debug, Default)]
pub struct ChaosReport {
    pub orders: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub worker_kills: usize,
    pub api_restarts: usize,
    pub temporal_restarts: usize,
    pub faults: Vec<String>,
    pub elapsed: Duration,
    /// (invariant, held, detail)
    pub checks: Vec<(String, bool, String)>,
}

impl ChaosReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|(_, held, _)| *held)
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "| figure | value |\n|---|---|\n| orders | {} |\n| outcomes | {} |\n| worker SIGKILLs (restarted) | {} |\n| API restarts | {} |\n| Temporal dev server restarts | {} |\n| sandbox faults | {} |\n| elapsed | {:.0} s |\n\n| invariant | held | detail |\n|---|---|---|\n",
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
    let sb_cfg = procure_sandbox::SandboxConfig {
        payments_webhook_url: Some(format!("{api_url}/api/v1/webhooks/payments")),
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
    let chaos = {
        let (stop, kills) = (stop.clone(), kills.clone());
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
            }
            anyhow::Ok((procs, temporal, api_restarts, temporal_restarts))
        }
    };
    let chaos = tokio::spawn(chaos);
    let outcomes = driver
        .drive(placed.clone(), Script::Chaos, cfg.deadline, |_, _, _, _| {})
        .await?;
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

    check(&mut report, &driver, &store, &placed, &stock_before).await?;
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
        let settlement = match o["warehouse"]["parcel_id"].as_str() {
            Some(pid) => match driver.parcel(pid).await {
                Ok(p) => settlement_of(&p, id),
                Err(e) => {
                    money.push(format!("{id}: parcel {pid} unreadable: {e}"));
                    0
                }
            },
            None => 0,
        };
        *owed_by_currency.entry(currency).or_default() += owed(&o, state, settlement);
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

    // Stock: available now + units still reserved = what there was.
    let mut stock = Vec::new();
    let reserved: HashMap<String, i64> = sqlx::query(
        "SELECT sku, CAST(SUM(quantity) AS BIGINT) AS n FROM reservations WHERE released_at_ms IS NULL GROUP BY sku",
    )
    .fetch_all(store.pool())
    .await?
    .iter()
    .map(|r| Ok((r.try_get::<String, _>("sku")?, r.try_get::<i64, _>("n")?)))
    .collect::<anyhow::Result<_>>()?;
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
