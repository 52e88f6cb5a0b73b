//! Secrets stay out of the logs: a full run (pooled buyer account, order paid through a signed
//! webhook, bought, stored, parcelled, tracked to the door, a price monitor run, an operator
//! decoding payloads) is logged at debug level into memory, and no credential, key, token or
//! personal detail appears in it. The sandbox (the outside world) logs elsewhere.

mod support;

use procure::{components::External, demo::Script};
use procure_api::auth::Role;
use procure_domain::OrderState;
use serde_json::json;
use std::sync::{Arc, Mutex};
use support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_full_run_logs_no_secret() {
    let captured = Captured::default();
    let sink = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,procure_sandbox=off,h2=info,hyper=info,hyper_util=info,tower=info,sqlx=info,temporalio_sdk_core=info,temporalio_client=info",
        ))
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();

    let app = spawn_app(fast()).await;
    // A buyer account the sandbox authorised under the app's token, so the run buys through it.
    let account_token = "demo1688-token-acct7f3a9c";
    app.system
        .store
        .add_account(
            &procure_store::accounts::NewAccount {
                id: "1688-logs".into(),
                platform: procure_domain::order::Platform::Alibaba1688,
                label: "buyer logs".into(),
                weight: 1,
                daily_cap: 100,
                per_minute: 100,
                access_token: account_token.into(),
            },
            &procure_domain::seal::Sealer::development(),
        )
        .await
        .unwrap();
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, product) = place(&app, idx).await;
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    assert_eq!(
        app.system
            .store
            .account("1688-logs")
            .await
            .unwrap()
            .successes,
        1,
        "the order was bought through the pooled account, whose token must not be logged"
    );
    let monitor = app
        .driver
        .api_post(
            "/api/v1/price-monitors",
            &json!({"name": "logs", "cron": "0 3 * * *", "destination_country": "US",
                    "products": [{"sku": product["sku"]}]}),
        )
        .await
        .unwrap();
    app.driver
        .run_monitor(
            monitor["monitor_id"].as_str().unwrap(),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let operator = app.driver.token(Role::Operator, None);
    let decoded = reqwest::Client::new()
        .post(format!("{}/api/codec/decode", app.system.api_url))
        .bearer_auth(&operator)
        .json(&json!({"payloads": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(decoded.status(), 200);
    app.system.stop().await.unwrap();

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains(&id) && logs.contains("price monitor run recorded"),
        "the run was logged ({} bytes)",
        logs.len()
    );
    let ext = External::at("http://127.0.0.1:1");
    let mut secrets: Vec<(&str, String)> = vec![
        (
            "1688 app secret",
            ext.alibaba.app_secret.expose().to_owned(),
        ),
        (
            "1688 access token",
            ext.alibaba.access_token.expose().to_owned(),
        ),
        (
            "Taobao app secret",
            ext.taobao.app_secret.expose().to_owned(),
        ),
        (
            "Taobao access token",
            ext.taobao.access_token.expose().to_owned(),
        ),
        (
            "PDD client secret",
            ext.pdd.client_secret.expose().to_owned(),
        ),
        ("payments API key", ext.payments.api_key.expose().to_owned()),
        (
            "payments webhook secret",
            ext.payments.webhook_secret.expose().to_owned(),
        ),
        ("17TRACK token", ext.tracking.token.expose().to_owned()),
        ("carrier API key", ext.carrier.api_key.expose().to_owned()),
        ("pooled account credential", account_token.to_owned()),
        // The development keys (data at rest, payloads, tokens).
        (
            "AES key",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".to_owned(),
        ),
        (
            "token signing key",
            "procure-development-jwt-secret".to_owned(),
        ),
        // Any bearer token (every JWT starts with this header).
        (
            "bearer token",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9".to_owned(),
        ),
        ("operator token", operator.clone()),
        // The customer's address and phone.
        ("address", "1 Example Street".to_owned()),
        ("phone", "+10000000000".to_owned()),
    ];
    secrets.retain(|(_, v)| !v.is_empty());
    let leaked: Vec<String> = secrets
        .iter()
        .filter(|(_, v)| logs.contains(v.as_str()))
        .map(|(what, v)| {
            let line = logs.lines().find(|l| l.contains(v.as_str())).unwrap_or("");
            format!("{what}: {line}")
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "secrets in the logs:\n{}",
        leaked.join("\n")
    );
    println!(
        "{} bytes, {} lines of debug logs checked for {} secret values: none found",
        logs.len(),
        logs.lines().count(),
        secrets.len()
    );
}
