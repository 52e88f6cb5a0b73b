//! The production shape: sandbox, API and two workers as separate `procure` processes,
//! configured only through `PROCURE_…` environment variables, sharing a real Temporal dev
//! server and one SQLite file. An order placed through the API completes, bought once.

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
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not answer in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn separate_api_and_two_worker_processes_complete_an_order() {
    procure::system::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("procure-proc-{}", uuid::Uuid::new_v4().simple()));
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
    let api_url = format!("http://127.0.0.1:{api_port}");
    let env = vec![
        (
            "PROCURE_DATABASE_URL",
            format!("sqlite://{}", dir.join("app.db").display()),
        ),
        ("PROCURE_TEMPORAL_ADDRESS", temporal.address()),
        (
            "PROCURE_TASK_QUEUE",
            format!("proc-{}", uuid::Uuid::new_v4().simple()),
        ),
        ("PROCURE_EXTERNAL_URL", sandbox_url.clone()),
        ("PROCURE_TRACKING_POLL_S", "1".into()),
        ("PROCURE_API_ADDR", format!("127.0.0.1:{api_port}")),
    ];
    let _sandbox = procure(&["sandbox", "--port", &sandbox_port.to_string()], &env);
    wait_http_ok(&format!("{sandbox_url}/_sandbox/health")).await;
    let _api = procure(&["api", "--seed-sandbox-catalogue"], &env);
    wait_http_ok(&format!("{api_url}/health")).await;
    let _w1 = procure(&["worker"], &env);
    let _w2 = procure(&["worker"], &env);
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{sandbox_url}/_sandbox/webhooks"))
        .json(&serde_json::json!({"payments": format!("{api_url}/api/v1/webhooks/payments")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let driver = Driver::new(api_url, sandbox_url);
    let catalogue = driver.catalogue().await.unwrap();
    let mut placed = Vec::new();
    for i in 0..4 {
        let o = driver.place_demo_order(i, &catalogue).await.unwrap();
        placed.push((o["id"].as_str().unwrap().to_owned(), Instant::now()));
    }
    let outcomes = driver
        .drive(
            placed.clone(),
            Script::HappyPath,
            Duration::from_secs(120),
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
            .filter(|e| e.kind == "purchase" && e.reference.starts_with(&format!("{id}-L1-")))
            .count();
        assert_eq!(bought, 1, "{id} bought exactly once across two workers");
    }
    assert_eq!(ledger.iter().filter(|e| e.kind == "charge").count(), 4);
    temporal.stop().await.unwrap();
}
