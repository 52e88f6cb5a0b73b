//! The production shape: sandbox, API and two workers as separate `procure` processes,
//! configured only through `PROCURE_…` environment variables, sharing a real Temporal dev
//! server and one SQLite file. 200 orders over a pool of three buyer accounts complete, each
//! bought once, with every account inside its daily cap and per-minute rate.

use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
};
use procure_domain::OrderState;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

fn procure(args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procure"));
    cmd.args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("procure binary starts")
}

async fn wait_http_ok(url: &str) {
    procure::system::wait_http_ok(url, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test]
async fn separate_api_and_two_worker_processes_complete_an_order() {
    let Shape {
        temporal,
        sandbox_port,
        sandbox_url,
        api_url,
        env,
    } = Shape::start("proc").await;
    let sandbox = procure(&["sandbox", "--port", &sandbox_port.to_string()], &env);
    wait_http_ok(&format!("{sandbox_url}/_sandbox/health")).await;
    // Each process has a metrics port of its own (`PROCURE_METRICS_ADDR`).
    let metrics = [free_port(), free_port(), free_port()].map(|p| format!("127.0.0.1:{p}"));
    let with_metrics = |addr: &str| {
        let mut env = env.clone();
        env.push(("PROCURE_METRICS_ADDR", addr.to_owned()));
        env
    };
    let api = procure(
        &["api", "--seed-sandbox-catalogue"],
        &with_metrics(&metrics[0]),
    );
    wait_http_ok(&format!("{api_url}/health/live")).await;
    let w1 = procure(&["worker"], &with_metrics(&metrics[1]));
    let w2 = procure(&["worker"], &with_metrics(&metrics[2]));
    for addr in &metrics {
        procure::system::wait_http_ok(
            &format!("http://{addr}/health/ready"),
            Duration::from_secs(30),
        )
        .await
        .expect("every process's metrics port answers ready");
    }
    procure::system::wait_http_ok(&format!("{api_url}/health/ready"), Duration::from_secs(30))
        .await
        .expect("the API is ready: its database and Temporal answer");
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{sandbox_url}/_sandbox/webhooks"))
        .json(&serde_json::json!({"payments": format!("{api_url}/api/v1/webhooks/payments")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // A pool of three 1688 buyer accounts, added through the admin API (tokens are write-only).
    let pool = [
        ("acc-a", 3, 90, 40),
        ("acc-b", 2, 70, 30),
        ("acc-c", 1, 50, 20),
    ];
    let admin = Driver::new(api_url.clone(), sandbox_url.clone())
        .token(procure_api::auth::Role::Admin, None);
    for (id, weight, cap, rate) in pool {
        let r = http
            .post(format!("{api_url}/api/v1/admin/accounts"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"id": id, "platform": "1688", "label": format!("buyer {id}"), "weight": weight,
                "daily_cap": cap, "per_minute": rate, "access_token": format!("demo1688-token-{id}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("demo1688-token"),
            "credentials are write-only: {body}"
        );
    }
    let bad = http
        .post(format!("{api_url}/api/v1/admin/accounts"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"id": "x", "platform": "1688", "label": "x", "weight": 0, "daily_cap": 1, "per_minute": 1, "access_token": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let driver = Driver::new(api_url.clone(), sandbox_url.clone());
    let on_1688 = skus_cheapest_on_1688(&sandbox_url).await;
    let n: usize = std::env::var("PROCURE_POOL_TEST_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut placed = Vec::new();
    for i in 0..n {
        let quote = driver
            .quote(&[(on_1688[i % on_1688.len()].clone(), 1)], "US", "USD")
            .await
            .unwrap();
        let o = driver
            .place_order(
                quote["quote_id"].as_str().unwrap(),
                &format!("c{}", i % 9),
                "US",
                &format!("pool-{i}"),
            )
            .await
            .unwrap();
        placed.push((o["id"].as_str().unwrap().to_owned(), Instant::now()));
    }
    let outcomes = driver
        .drive(
            placed.clone(),
            Script::HappyPath,
            Duration::from_secs(600),
            |_, _, _, _| {},
        )
        .await
        .unwrap();
    for o in &outcomes {
        assert_eq!(o.state, OrderState::Completed, "{}", o.order_id);
    }
    let ledger = driver.ledger().await.unwrap();
    for (id, _) in &placed {
        let bought = ledger
            .iter()
            .filter(|e| e.kind == "purchase" && e.reference.contains(id.as_str()))
            .count();
        assert_eq!(bought, 1, "{id} bought exactly once across two workers");
    }
    // One charge per order (its parcel's shipping settlement is charged to the parcel).
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == "charge" && placed.iter().any(|(id, _)| e.reference == *id))
            .count(),
        n
    );

    // Every account stayed within its daily cap and its per-minute rate, across both workers.
    let store = procure_store::Store::connect(&env[0].1).await.unwrap();
    let mut pooled = 0;
    for (id, _, cap, rate) in pool {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT bucket, used FROM account_budget WHERE account_id = $1")
                .bind(id)
                .fetch_all(store.pool())
                .await
                .unwrap();
        for (bucket, used) in &rows {
            let limit = if bucket.starts_with("d:") { cap } else { rate };
            assert!(*used <= limit, "{id} {bucket}: {used} > {limit}");
        }
        let acc = store.account(id).await.unwrap();
        assert!(acc.successes <= cap);
        pooled += acc.successes;
        eprintln!(
            "{id}: {} purchases (cap {cap}/day, {rate}/min), buckets {rows:?}",
            acc.successes
        );
    }
    let on_1688_purchases = ledger
        .iter()
        .filter(|e| e.kind == "purchase" && e.platform == "1688")
        .count() as i64;
    assert_eq!(
        pooled, on_1688_purchases,
        "every 1688 purchase went through a pool account"
    );
    assert!(pooled > 0);

    // Metrics: each purchase is counted once, by the worker that made it; the SDK core's series
    // come from the workers; the store's levels only from the API (not once per worker).
    let scrape = |addr: String| async move {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let value = |text: &str, series: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let api_text = scrape(metrics[0].clone()).await;
    let workers_text = [
        scrape(metrics[1].clone()).await,
        scrape(metrics[2].clone()).await,
    ];
    let purchased: f64 = workers_text
        .iter()
        .map(|t| {
            value(
                t,
                r#"procure_purchase_attempts_total{outcome="purchased",platform="1688"}"#,
            )
        })
        .sum();
    assert_eq!(
        purchased, on_1688_purchases as f64,
        "purchases counted once"
    );
    assert_eq!(
        value(&api_text, r#"procure_orders{state="Completed"}"#),
        n as f64
    );
    // The API talks to Temporal only as a client: the SDK's request metrics, no worker series.
    assert!(
        value(&api_text, "temporal_request_total") >= n as f64,
        "the dispatcher's requests (a start per order) are counted"
    );
    assert!(
        !api_text.contains("temporal_worker_task_slots_available"),
        "the API runs no worker"
    );
    for t in &workers_text {
        assert!(
            value(t, "temporal_worker_task_slots_available") > 0.0,
            "a worker exports the SDK core's series"
        );
        assert!(
            !t.contains("procure_orders"),
            "levels come from the API only"
        );
    }
    eprintln!(
        "metrics: {purchased} purchases counted across the workers' ports, {} Completed on the API's",
        value(&api_text, r#"procure_orders{state="Completed"}"#)
    );

    // SIGTERM, as an orchestrator sends it, stops every process cleanly (exit 0), workers
    // first, then the API, then the sandbox.
    for (name, child) in [
        ("worker 1", w1),
        ("worker 2", w2),
        ("api", api),
        ("sandbox", sandbox),
    ] {
        assert_eq!(
            terminate(name, child).await,
            Some(0),
            "{name} exits cleanly on SIGTERM"
        );
    }
    temporal.stop().await.unwrap();
}

/// A system in the production shape, before any process starts: a Temporal dev server of its
/// own, free ports for the sandbox and the API, and the `PROCURE_…` environment every process
/// of it shares (a SQLite file, a task queue of its own, the sandbox as the outside world).
struct Shape {
    temporal: DevServer,
    sandbox_port: u16,
    sandbox_url: String,
    api_url: String,
    env: Vec<(&'static str, String)>,
}

impl Shape {
    async fn start(name: &str) -> Shape {
        procure::system::install_crypto_provider();
        let dir =
            std::env::temp_dir().join(format!("procure-{name}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let temporal = DevServer::start(DevServerOptions {
            db_file: None,
            port: None,
            ui_port: None,
            ui: false,
            namespace: "default".into(),
            search_attributes: vec![("OrderState".into(), "Keyword".into())],
            log_file: Some(dir.join("temporal.log")),
            ui_codec_endpoint: None,
        })
        .await
        .unwrap();
        let (sandbox_port, api_port) = (free_port(), free_port());
        let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
        let env = vec![
            (
                "PROCURE_DATABASE_URL",
                format!("sqlite://{}", dir.join("app.db").display()),
            ),
            ("PROCURE_TEMPORAL_ADDRESS", temporal.address()),
            (
                "PROCURE_TASK_QUEUE",
                format!("{name}-{}", uuid::Uuid::new_v4().simple()),
            ),
            ("PROCURE_EXTERNAL_URL", sandbox_url.clone()),
            // The sandbox's demo credentials, the development keys and the demo warehouse
            // (without it each process refuses to start: `missing_secret_is_a_start_error`).
            ("PROCURE_DEVELOPMENT", "true".into()),
            ("PROCURE_TRACKING_POLL_S", "1".into()),
            ("PROCURE_API_ADDR", format!("127.0.0.1:{api_port}")),
        ];
        Shape {
            temporal,
            sandbox_port,
            sandbox_url,
            api_url: format!("http://127.0.0.1:{api_port}"),
            env,
        }
    }
}

/// The sandbox catalogue's skus whose cheapest offer is on 1688.
async fn skus_cheapest_on_1688(sandbox_url: &str) -> Vec<String> {
    let v: serde_json::Value = reqwest::get(format!("{sandbox_url}/_sandbox/catalogue"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let offers = v["offers"].as_array().unwrap();
    v["products"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            let best = offers
                .iter()
                .filter(|o| o["sku"] == p["sku"])
                .min_by_key(|o| o["price_fen"].as_i64().unwrap())
                .unwrap();
            best["platform"] == "1688"
        })
        .map(|p| p["sku"].as_str().unwrap().to_owned())
        .collect()
}

/// Send SIGTERM to `child` and wait (bounded) for its exit code.
async fn terminate(name: &str, mut child: Child) -> Option<i32> {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "SIGTERM to {name}");
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} still running 60 s after SIGTERM"))
        .expect("wait");
    status.code()
}

/// Run `procure ARGS` to its end with only `env` among the `PROCURE_…` variables; its exit
/// status and what it printed to stderr.
async fn procure_exits(args: &[&str], env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_procure"));
    cmd.args(args)
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("PROCURE_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("a refused start ends at once")
        .expect("procure binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Closed by default: outside development a process whose secrets are missing, or a worker
/// that would have sellers ship to the demo warehouse, does not start, and says which key (and
/// variable) it misses.
#[tokio::test]
async fn missing_secret_is_a_start_error() {
    // Every secret of the API but its token-signing key.
    let keys = format!("k1:{}", "ab".repeat(32));
    let api_env = [
        ("PROCURE_DATA_KEYS", keys.as_str()),
        ("PROCURE_PAYLOAD_KEYS", keys.as_str()),
        ("PROCURE_STRIPE_API_KEY", "sk_live_x"),
        ("PROCURE_STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ("PROCURE_17TRACK_TOKEN", "t"),
    ];
    let (status, stderr) = procure_exits(&["api"], &api_env).await;
    assert!(
        !status.success(),
        "procure api started without its JWT secret"
    );
    assert!(
        stderr.contains("api.jwt_secret") && stderr.contains("PROCURE_JWT_SECRET"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("PROCURE_DATA_KEYS"),
        "only what is missing: {stderr}"
    );

    let (status, stderr) = procure_exits(&["worker"], &[]).await;
    assert!(!status.success(), "procure worker started unconfigured");
    for named in [
        "alibaba.app_secret",
        "PROCURE_1688_APP_SECRET",
        "taobao.app_key",
        "carrier.api_key",
        "keys.payload",
        "warehouse.address",
    ] {
        assert!(stderr.contains(named), "{named} in: {stderr}");
    }

    // The same process in development mode gets past the settings, to the database (which
    // cannot open here, so it stops at once).
    let (status, stderr) = procure_exits(
        &["api"],
        &[
            ("PROCURE_DEVELOPMENT", "true"),
            (
                "PROCURE_DATABASE_URL",
                "sqlite:///nonexistent-procure-dir/app.db",
            ),
        ],
    )
    .await;
    assert!(!status.success());
    assert!(
        !stderr.contains("missing settings") && stderr.contains("opening the database"),
        "{stderr}"
    );
}

/// SIGTERM to a worker in the middle of a purchase: the worker stops polling, lets the running
/// purchase activity finish within its graceful period (`worker.graceful_shutdown_s`) and
/// exits 0; a new worker carries the order on. The supplier was bought from once, and no
/// attempt was counted as a supplier failure.
#[tokio::test]
async fn a_worker_stopped_mid_purchase_finishes_it_and_nothing_is_done_twice() {
    let Shape {
        temporal,
        sandbox_port,
        sandbox_url,
        api_url,
        mut env,
    } = Shape::start("term").await;
    let graceful_s = 20;
    env.push((
        "PROCURE_WORKER__GRACEFUL_SHUTDOWN_S",
        graceful_s.to_string(),
    ));
    let sandbox = procure(&["sandbox", "--port", &sandbox_port.to_string()], &env);
    wait_http_ok(&format!("{sandbox_url}/_sandbox/health")).await;
    let api = procure(&["api", "--seed-sandbox-catalogue"], &env);
    wait_http_ok(&format!("{api_url}/health/ready")).await;
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{sandbox_url}/_sandbox/webhooks"))
        .json(&serde_json::json!({"payments": format!("{api_url}/api/v1/webhooks/payments")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let w1 = procure(&["worker"], &env);

    // 1688's order creation answers after 4 s, once: the purchase is in flight when the
    // worker is told to stop.
    let latency_ms = 4_000;
    let r = http
        .post(format!("{sandbox_url}/_sandbox/faults"))
        .json(
            &serde_json::json!({"platform": "1688", "api": "alibaba.trade.createCrossOrder",
            "kind": "latency", "latency_ms": latency_ms, "count": 1}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());

    let driver = Driver::new(api_url.clone(), sandbox_url.clone());
    let sku = skus_cheapest_on_1688(&sandbox_url).await.swap_remove(0);
    let quote = driver.quote(&[(sku, 1)], "US", "USD").await.unwrap();
    let order = driver
        .place_order(quote["quote_id"].as_str().unwrap(), "c1", "US", "term-1")
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    // The customer pays, the warehouse scans, the parcel ships: all while the worker changes.
    let drive = {
        let (driver, id) = (driver.clone(), id.clone());
        tokio::spawn(async move {
            driver
                .drive(
                    vec![(id, Instant::now())],
                    Script::HappyPath,
                    Duration::from_secs(180),
                    |_, _, _, _| {},
                )
                .await
        })
    };

    // The fault is spent once createCrossOrder has arrived: the activity is now waiting on it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let faults: serde_json::Value = reqwest::get(format!("{sandbox_url}/_sandbox/faults"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if faults["faults"].as_array().is_some_and(|f| f.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the purchase never reached 1688");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    let code = terminate("worker 1", w1).await;
    let took = stopping.elapsed();
    assert_eq!(code, Some(0), "the worker exits cleanly on SIGTERM");
    assert!(
        took >= Duration::from_secs(2),
        "the worker waited for the running purchase ({took:?})"
    );
    assert!(
        took < Duration::from_secs(graceful_s + 10),
        "the worker exited within its graceful period ({took:?})"
    );
    // The purchase finished before the worker left: the supplier holds the paid order.
    let ledger = driver.ledger().await.unwrap();
    let bought: Vec<_> = ledger
        .iter()
        .filter(|e| e.kind == "purchase" && e.reference.contains(id.as_str()))
        .collect();
    assert_eq!(
        bought.len(),
        1,
        "bought while the worker drained: {bought:?}"
    );
    eprintln!(
        "worker 1 stopped {:.1} s after SIGTERM (graceful period {graceful_s} s, purchase in flight {} s)",
        took.as_secs_f64(),
        latency_ms / 1000
    );

    let w2 = procure(&["worker"], &env);
    let outcome = drive.await.unwrap().unwrap();
    assert_eq!(outcome[0].state, OrderState::Completed, "{}", id);
    let ledger = driver.ledger().await.unwrap();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.kind == "purchase" && e.reference.contains(id.as_str()))
            .count(),
        1,
        "bought exactly once across the two workers"
    );
    let detail = driver.order(&id).await.unwrap();
    let timeline = detail["timeline"].to_string();
    assert!(
        !timeline.contains("next supplier"),
        "no attempt failed: {timeline}"
    );
    let store = procure_store::Store::connect(&env[0].1).await.unwrap();
    let failures: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(attempts - successes), 0) FROM offers WHERE platform = '1688'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(failures, 0, "no supplier failure was recorded");
    for (name, child) in [("worker 2", w2), ("api", api), ("sandbox", sandbox)] {
        assert_eq!(
            terminate(name, child).await,
            Some(0),
            "{name} exits cleanly"
        );
    }
    temporal.stop().await.unwrap();
}
