//! Metrics, read back the way an operator reads them: a real Prometheus (Debian package
//! `prometheus`, installed by `scripts/bootstrap.sh`) scrapes the metrics port of a running
//! system (a Temporal dev server, SQLite, the API, the worker and the sandbox), and every
//! series family is queried through Prometheus' HTTP API after a few orders, a refused
//! webhook and a price-monitor run.

mod support;

use procure::demo::Script;
use procure_domain::{OrderState, order::Platform, seal::Sealer};
use procure_store::accounts::NewAccount;
use serde_json::{Value, json};
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};
use support::*;

/// A Prometheus of the test's own, scraping `target` every second; killed on drop.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &Path, target: &str) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: procure\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = procure::devserver::free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect(
                "prometheus must be installed (scripts/bootstrap.sh, Debian package prometheus)",
            );
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The result vector of an instant query.
    async fn query(&self, promql: &str) -> Vec<Value> {
        let Ok(r) = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await
        else {
            return Vec::new();
        };
        let v: Value = r.json().await.unwrap_or_default();
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The query's single value, once `ok` holds for it, within `within`.
    async fn wait_for(&self, promql: &str, ok: impl Fn(f64) -> bool, within: Duration) -> f64 {
        let deadline = Instant::now() + within;
        loop {
            let result = self.query(promql).await;
            let value = result
                .first()
                .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse::<f64>().ok()));
            if let Some(v) = value
                && ok(v)
            {
                println!("{promql} = {v}");
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never had {promql} as expected (last: {result:?})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn prometheus_scrapes_every_series_family_from_a_running_system() {
    let app = spawn_app_configured(fast(), |cfg| {
        cfg.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let metrics_url = app.system.metrics_url.clone().expect("a metrics port");
    let sealer = Sealer::development();
    for (id, daily_cap) in [("1688-metrics-a", 100), ("1688-metrics-capped", 0)] {
        app.system
            .store
            .add_account(
                &NewAccount {
                    id: id.into(),
                    platform: Platform::Alibaba1688,
                    label: id.into(),
                    weight: 1,
                    daily_cap,
                    per_minute: 100,
                    // A buyer account the sandbox authorised under the app's token.
                    access_token: format!("demo1688-token-{id}").as_str().into(),
                },
                &sealer,
            )
            .await
            .unwrap();
    }

    let idx = sku_cheapest_on(&app, "1688").await;
    let mut product = Value::Null;
    for _ in 0..2 {
        let (id, p) = place(&app, idx).await;
        product = p;
        assert_eq!(
            drive_one(&app, &id, Script::HappyPath).await,
            OrderState::Completed
        );
    }
    // A payment webhook with a forged signature is refused and counted.
    let forged = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/payments", app.system.api_url))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let monitor = app
        .driver
        .api_post(
            "/api/v1/price-monitors",
            &json!({"name": "metrics", "cron": "0 3 * * *", "destination_country": "US",
                    "products": [{"sku": product["sku"]}]}),
        )
        .await
        .unwrap();
    app.driver
        .run_monitor(
            monitor["monitor_id"].as_str().unwrap(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();

    // The port itself: text exposition with our series and the SDK core's, and health.
    let text = reqwest::get(format!("{metrics_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for family in [
        "procure_orders",
        "procure_purchase_attempts_total",
        "temporal_",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "{family} missing"
        );
    }
    println!("procure's series on the metrics port (buckets left out):");
    for line in text
        .lines()
        .filter(|l| l.starts_with("procure_") && !l.contains("_bucket"))
    {
        println!("  {line}");
    }
    let ready = reqwest::get(format!("{metrics_url}/health/ready"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);

    let dir = std::env::temp_dir().join(format!(
        "procure-prometheus-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let target = metrics_url.trim_start_matches("http://");
    let prom = Prometheus::start(&dir, target);
    let within = Duration::from_secs(60);
    let at_least = |n: f64| move |v: f64| v >= n;
    let exactly = |n: f64| move |v: f64| v == n;

    prom.wait_for(r#"up{job="procure"}"#, exactly(1.0), within)
        .await;
    // Orders by state: both completed; no other state holds an order.
    prom.wait_for(r#"procure_orders{state="Completed"}"#, exactly(2.0), within)
        .await;
    prom.wait_for(
        r#"sum(procure_orders) - sum(procure_orders{state="Completed"})"#,
        exactly(0.0),
        within,
    )
    .await;
    // Order → purchase latency: one observation per purchased line.
    prom.wait_for(
        r#"procure_order_to_purchase_seconds_count{platform="1688"}"#,
        at_least(2.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"histogram_quantile(0.99, sum by (le) (procure_order_to_purchase_seconds_bucket))"#,
        |v| v > 0.0,
        within,
    )
    .await;
    prom.wait_for(
        r#"procure_purchase_attempts_total{platform="1688",outcome="purchased"}"#,
        at_least(2.0),
        within,
    )
    .await;
    // Adapter calls by vendor and operation: 1688's order calls and the payment provider's.
    prom.wait_for(
        r#"sum(procure_adapter_call_seconds_count{vendor="1688",outcome="ok"})"#,
        at_least(4.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"count(count by (operation) (procure_adapter_call_seconds_count{vendor="1688"}))"#,
        at_least(3.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"sum(procure_adapter_call_seconds_count{vendor="payments"})"#,
        at_least(2.0),
        within,
    )
    .await;
    // The outbox: drained, nothing dead.
    prom.wait_for("procure_outbox_backlog", exactly(0.0), within)
        .await;
    prom.wait_for("procure_outbox_oldest_age_seconds", exactly(0.0), within)
        .await;
    prom.wait_for("procure_outbox_dead_letters", exactly(0.0), within)
        .await;
    // Webhooks: the two customer payments handled, the forged one refused.
    prom.wait_for(
        r#"procure_webhook_deliveries_total{source="stripe",outcome="handled"}"#,
        at_least(2.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"procure_webhook_deliveries_total{source="stripe",outcome="rejected"}"#,
        exactly(1.0),
        within,
    )
    .await;
    // The buyer-account pool: one account usable, one at its daily cap of 0.
    prom.wait_for(
        r#"procure_buyer_accounts{platform="1688",status="active"}"#,
        exactly(1.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"procure_buyer_accounts{platform="1688",status="at_cap"}"#,
        exactly(1.0),
        within,
    )
    .await;
    // Price monitors: the run and its alert count.
    prom.wait_for(
        r#"procure_price_monitor_runs_total{outcome="recorded"}"#,
        at_least(1.0),
        within,
    )
    .await;
    prom.wait_for("procure_price_monitor_alerts_total", at_least(0.0), within)
        .await;
    // The SDK core's own series, from the worker that ran the orders.
    prom.wait_for(
        r#"sum(temporal_workflow_completed_total)"#,
        at_least(2.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"sum(temporal_activity_execution_latency_seconds_count)"#,
        at_least(5.0),
        within,
    )
    .await;
    prom.wait_for(
        r#"count(temporal_worker_task_slots_available)"#,
        at_least(1.0),
        within,
    )
    .await;

    drop(prom);
    app.system.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
