//! Price monitors end to end on a real Temporal dev server: a monitor created through the API
//! becomes a Temporal Schedule (as the `temporal` CLI lists it), its runs price every offer
//! through the real adapters against the sandbox, write snapshots and alerts, and move the
//! channel procurement buys from; pausing stops the schedule's runs; deleting removes it; bad
//! input is refused without leaving anything behind.

mod support;

use procure::demo::Script;
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// The stock `temporal` CLI against the test binary's dev server; its stdout.
fn temporal_cli(args: &[&str]) -> String {
    procure::devserver::temporal_cli(&temporal_address(), args).unwrap()
}

fn schedule_listed(schedule_id: &str) -> bool {
    temporal_cli(&["schedule", "list"]).contains(schedule_id)
}

/// `temporal schedule describe` as JSON.
fn describe_schedule(schedule_id: &str) -> Value {
    serde_json::from_str(&temporal_cli(&[
        "schedule",
        "describe",
        "--schedule-id",
        schedule_id,
        "--output",
        "json",
    ]))
    .unwrap()
}

/// Poll `check` every 200 ms until it yields a value, failing the test after `within`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn operator(app: &TestApp) -> String {
    app.driver.token(procure_api::auth::Role::Operator, None)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", app.system.api_url))
        .bearer_auth(operator(app))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", app.system.api_url))
        .bearer_auth(operator(app))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn catalogue(app: &TestApp) -> Value {
    reqwest::get(format!("{}/_sandbox/catalogue", app.system.sandbox_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The sandbox's offers of one sku: (platform, offer id, price in fen).
fn offers_of(catalogue: &Value, sku: &str) -> Vec<(String, String, i64)> {
    catalogue["offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["sku"] == sku)
        .map(|o| {
            (
                o["platform"].as_str().unwrap().to_owned(),
                o["offer_id"].as_str().unwrap().to_owned(),
                o["price_fen"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Change an offer in the sandbox, then run the monitor; the run's summary.
async fn change_then_run(app: &TestApp, offer_id: &str, change: Value, monitor_id: &str) -> Value {
    app.driver.set_product(offer_id, change).await.unwrap();
    app.driver
        .run_monitor(monitor_id, Duration::from_secs(60))
        .await
        .unwrap()
}

async fn monitor(app: &TestApp, id: &str) -> Value {
    let (status, m) = get(app, &format!("/api/v1/price-monitors/{id}")).await;
    assert_eq!(status, 200, "{m}");
    m
}

async fn runs(app: &TestApp, id: &str) -> Vec<Value> {
    monitor(app, id).await["recent_runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn monitor_schedule_prices_every_channel_and_procurement_follows_the_new_cheapest() {
    let app = spawn_app(fast()).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let cat = catalogue(&app).await;
    let sku = cat["products"][idx]["sku"].as_str().unwrap().to_owned();
    let offers = offers_of(&cat, &sku);
    assert_eq!(offers.len(), 3, "{sku} is offered on all three platforms");
    let p1688 = offers.iter().find(|o| o.0 == "1688").unwrap().2;
    let taobao = offers.iter().find(|o| o.0 == "taobao").unwrap().clone();

    // Created through the API: daily at 03:00, so only our triggers run it during the test.
    let (status, created) = post(
        &app,
        "/api/v1/price-monitors",
        &json!({"name": "e2e watch", "cron": "0 3 * * *", "threshold_bps": 1000,
                "destination_country": "US", "products": [{"sku": sku}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["monitor_id"].as_str().unwrap().to_owned();
    let schedule_id = created["schedule"]["schedule_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(schedule_id, format!("price-monitor-{id}"));
    assert_eq!(created["next_runs_ms"].as_array().unwrap().len(), 5);

    // It appears as a Temporal Schedule, with the cron, the overlap policy and catch-up window.
    eventually(
        "schedule listed by the temporal CLI",
        Duration::from_secs(30),
        || async { schedule_listed(&schedule_id).then_some(()) },
    )
    .await;
    eventually("monitor in sync", Duration::from_secs(30), || async {
        (monitor(&app, &id).await["schedule"]["in_sync"] == true).then_some(())
    })
    .await;
    let described = describe_schedule(&schedule_id).to_string();
    assert!(
        described.contains("SCHEDULE_OVERLAP_POLICY_SKIP") || described.contains("Skip"),
        "{described}"
    );
    assert!(described.contains("PriceMonitorWorkflow"), "{described}");
    assert!(
        described.contains("86400s") || described.contains("catchupWindow"),
        "{described}"
    );

    // A triggered run prices all three offers through the adapters and writes snapshots.
    let run = app
        .driver
        .run_monitor(&id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(run["offers"], 3, "{run}");
    assert_eq!(run["listed"], 3, "{run}");
    assert_eq!(run["failed"], 0, "{run}");
    let (status, prices) = get(&app, &format!("/api/v1/products/{sku}/prices")).await;
    assert_eq!(status, 200, "{prices}");
    for (platform, offer_id, price) in &offers {
        let o = prices["offers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["offer_id"] == offer_id.as_str())
            .unwrap_or_else(|| panic!("{offer_id} in {prices}"));
        assert_eq!(o["platform"], platform.as_str());
        let history = o["history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "{o}");
        // Pinduoduo is priced at its group-buy price, which the catalogue lists as its price.
        assert_eq!(history[0]["price_fen"], *price, "{o}");
        let landed = &history[0]["landed"];
        assert!(landed["cost_fen"].as_i64().unwrap() > *price, "{landed}");
        assert_eq!(landed["cost"]["currency"], "USD");
        assert_eq!(landed["destination_country"], "US");
    }
    assert_eq!(prices["quoted_platform"], "1688");
    assert_eq!(prices["quoted_price_fen"], p1688);

    // Taobao drops to 60 % of the 1688 price; the next run notices, alerts, and re-ranks.
    let new_price = p1688 * 6 / 10;
    let run = change_then_run(&app, &taobao.1, json!({"price_fen": new_price}), &id).await;
    assert_eq!(run["price_changes"], 1, "{run}");
    let alerts: Vec<&str> = run["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{run}");
    assert!(
        alerts[0].contains(&taobao.1) && alerts[0].contains("price_down"),
        "{alerts:?}"
    );
    assert!(
        run["ranking"][0]
            .as_str()
            .unwrap()
            .contains("quoted from taobao"),
        "{run}"
    );
    // The run's history replays against today's workflow code (and is recorded for the
    // replay suite with PROCURE_RECORD_HISTORIES=monitor_run.json).
    let client = test_client("e2e").await;
    let (workflow_id, _) = run["run_key"].as_str().unwrap().rsplit_once('/').unwrap();
    replays_and_records(&client, workflow_id, "monitor_run").await;

    let (_, prices) = get(&app, &format!("/api/v1/products/{sku}/prices")).await;
    assert_eq!(prices["quoted_platform"], "taobao");
    assert_eq!(prices["quoted_price_fen"], new_price);
    let tb = prices["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["offer_id"] == taobao.1.as_str())
        .unwrap();
    let history: Vec<i64> = tb["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["price_fen"].as_i64().unwrap())
        .collect();
    assert_eq!(history, vec![new_price, taobao.2], "newest first");
    assert_eq!(prices["alerts"][0]["alert"]["kind"], "price_down");
    let (_, by_monitor) = get(&app, &format!("/api/v1/price-alerts?monitor_id={id}")).await;
    assert_eq!(by_monitor["alerts"].as_array().unwrap().len(), 1);

    // The next order for the product is quoted at, and bought from, the new cheapest channel.
    let quote = app
        .driver
        .quote(&[(sku.clone(), 1)], "US", "USD")
        .await
        .unwrap();
    assert_eq!(quote["items"][0]["platform"], "taobao", "{quote}");
    assert_eq!(
        quote["items"][0]["unit_price"]["minor"], new_price,
        "{quote}"
    );
    let (order_id, _) = place(&app, idx).await;
    assert_eq!(
        drive_one(&app, &order_id, Script::HappyPath).await,
        OrderState::Completed
    );
    let order = app.driver.order(&order_id).await.unwrap();
    assert!(
        reasons(&order).iter().any(|r| r.contains("taobao order")),
        "{:?}",
        reasons(&order)
    );
    // This test's sandbox saw exactly one purchase: on Taobao.
    let ledger = app.driver.ledger().await.unwrap();
    let purchases: Vec<&str> = ledger
        .iter()
        .filter(|e| e.kind == "purchase")
        .map(|e| e.platform.as_str())
        .collect();
    assert_eq!(purchases, vec!["taobao"]);

    // The Taobao listing is withdrawn: the next run alerts, and quotes fall back to 1688.
    let run = change_then_run(&app, &taobao.1, json!({"removed": true}), &id).await;
    assert_eq!(
        (run["listed"].as_u64(), run["gone"].as_u64()),
        (Some(2), Some(1)),
        "{run}"
    );
    assert!(
        run["alerts"][0].as_str().unwrap().ends_with("disappeared"),
        "{run}"
    );
    let (_, prices) = get(&app, &format!("/api/v1/products/{sku}/prices")).await;
    assert_eq!(prices["quoted_platform"], "1688", "{prices}");
    let tb = prices["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["offer_id"] == taobao.1.as_str())
        .unwrap();
    assert_eq!(tb["current"]["active"], false);
    assert_eq!(tb["history"][0]["listed"], false);
}

#[tokio::test]
async fn pausing_stops_scheduled_runs_and_deleting_removes_the_schedule() {
    let app = spawn_app(fast()).await;
    let cat = catalogue(&app).await;
    let sku = cat["products"][0]["sku"].as_str().unwrap().to_owned();
    // Every 2 seconds (seven fields: second … year); the test system allows 1 s periods.
    let (status, created) = post(
        &app,
        "/api/v1/price-monitors",
        &json!({"name": "fast", "cron": "*/2 * * * * * *", "destination_country": "DE",
                "products": [{"sku": sku}]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["monitor_id"].as_str().unwrap().to_owned();
    let schedule_id = created["schedule"]["schedule_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The schedule runs by itself.
    eventually("two scheduled runs", Duration::from_secs(45), || async {
        (runs(&app, &id).await.len() >= 2).then_some(())
    })
    .await;

    let (status, paused) = post(
        &app,
        &format!("/api/v1/price-monitors/{id}/pause"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["next_runs_ms"].as_array().unwrap().len(), 0);
    eventually(
        "schedule paused in Temporal",
        Duration::from_secs(30),
        || async {
            let d = describe_schedule(&schedule_id);
            (d.to_string().contains("\"paused\":true")).then_some(())
        },
    )
    .await;
    // Every run Temporal started has been recorded (a run in flight at the pause finishes).
    let actions = |d: &Value| {
        d["info"]["actionCount"]
            .as_str()
            .map(|s| s.parse::<usize>().unwrap())
            .or_else(|| d["info"]["actionCount"].as_u64().map(|n| n as usize))
            .unwrap_or(0)
    };
    let started = actions(&describe_schedule(&schedule_id));
    assert!(started >= 2);
    eventually(
        "runs in flight recorded",
        Duration::from_secs(30),
        || async { (runs(&app, &id).await.len() >= started.min(10)).then_some(()) },
    )
    .await;
    let recorded = runs(&app, &id).await.len();
    // Observe three periods: a running schedule would start at least one run in that time.
    let window = Instant::now() + Duration::from_secs(7);
    while Instant::now() < window {
        assert_eq!(
            actions(&describe_schedule(&schedule_id)),
            started,
            "no run while paused"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(runs(&app, &id).await.len(), recorded);

    // Resumed, it runs again.
    let (status, _) = post(
        &app,
        &format!("/api/v1/price-monitors/{id}/resume"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    eventually("a run after resuming", Duration::from_secs(45), || async {
        (actions(&describe_schedule(&schedule_id)) > started).then_some(())
    })
    .await;

    // Deleted, the schedule goes and the monitor is gone from the API.
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/v1/price-monitors/{id}", app.system.api_url))
        .bearer_auth(operator(&app))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("schedule deleted", Duration::from_secs(30), || async {
        (!schedule_listed(&schedule_id)).then_some(())
    })
    .await;
    let (status, _) = get(&app, &format!("/api/v1/price-monitors/{id}")).await;
    assert_eq!(status, 404);
    let (_, list) = get(&app, "/api/v1/price-monitors").await;
    assert!(list["monitors"].as_array().unwrap().is_empty(), "{list}");
    let (status, _) = post(
        &app,
        &format!("/api/v1/price-monitors/{id}/resume"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404, "a deleted monitor cannot come back");
}

#[tokio::test]
async fn bad_monitors_are_refused_with_clear_errors_and_leave_nothing_behind() {
    let app = spawn_app(fast()).await;
    let cat = catalogue(&app).await;
    let sku = cat["products"][0]["sku"].as_str().unwrap().to_owned();
    let body = |cron: &str| json!({"name": "bad", "cron": cron, "destination_country": "US", "products": [{"sku": sku}]});
    for (cron, says) in [
        ("61 * * * *", "invalid cron expression"),
        ("* * * *", "expected five fields"),
        ("0 0 * * * *", "seven"),
        ("0 0 30 2 *", "never fires"),
        ("@fortnightly", "unknown shorthand"),
        ("* * * * 9", "day of week 9"),
        ("", "empty"),
    ] {
        let (status, e) = post(&app, "/api/v1/price-monitors", &body(cron)).await;
        assert_eq!(status, 400, "{cron:?}: {e}");
        assert_eq!(e["error"]["code"], "invalid_cron", "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{cron:?}: {message}");
    }
    // Other invalid fields: 422 with the field named; unknown fields and bad JSON: 400.
    for (patch, field) in [
        (json!({"destination_country": "XX"}), "destination_country"),
        (json!({"threshold_bps": 100_001}), "threshold_bps"),
        (json!({"name": ""}), "name"),
        (json!({"products": []}), "products"),
        (
            json!({"products": [{"sku": sku}, {"sku": sku}]}),
            "products[1].sku",
        ),
        (
            json!({"products": [{"sku": sku, "offers": [{"platform": "amazon", "offer_id": "x"}]}]}),
            "products[0].offers[0].platform",
        ),
        (json!({"products": [{"sku": "NO-SUCH-SKU"}]}), "products"),
    ] {
        let mut b = body("*/5 * * * *");
        for (k, v) in patch.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (status, e) = post(&app, "/api/v1/price-monitors", &b).await;
        assert_eq!(status, 422, "{patch}: {e}");
        let fields: Vec<&str> = e["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{patch}: {e}");
    }
    let mut unknown = body("*/5 * * * *");
    unknown["colour"] = json!("blue");
    let (status, e) = post(&app, "/api/v1/price-monitors", &unknown).await;
    assert_eq!(status, 400, "{e}");
    // Another product's offer cannot be claimed.
    let other = cat["products"][1]["offer_id"].as_str().unwrap();
    let mut taken = body("*/5 * * * *");
    taken["products"][0]["offers"] = json!([{"platform": "1688", "offer_id": other}]);
    let (status, e) = post(&app, "/api/v1/price-monitors", &taken).await;
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["code"], "offer_taken");

    // Nothing was stored, nothing queued for Temporal, unknown ids are 404.
    let (_, list) = get(&app, "/api/v1/price-monitors").await;
    assert!(list["monitors"].as_array().unwrap().is_empty(), "{list}");
    assert_eq!(app.system.store.outbox_pending().await.unwrap(), 0);
    for path in [
        "/api/v1/price-monitors/pm_nope",
        "/api/v1/products/NO-SUCH-SKU/prices",
    ] {
        let (status, _) = get(&app, path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = post(&app, "/api/v1/price-monitors/pm_nope/run", &json!({})).await;
    assert_eq!(status, 404);
}
