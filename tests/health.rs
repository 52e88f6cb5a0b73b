//! Liveness and readiness of the API, against the real components: a Temporal dev server, a
//! SQLite file and a PostgreSQL database. Readiness fails, naming the check, when Temporal does
//! not answer or the database is gone, and recovers by itself when Temporal is reachable.

mod common;
mod support;

use common::TestDb;
use procure_adapters::{EcbConfig, EcbFx, TrackingConfig};
use procure_api::{ApiConfig, AppState};
use procure_domain::seal::Sealer;
use procure_store::Store;
use procure_temporal::{EncryptionCodec, TemporalLink};
use serde_json::Value;
use std::sync::Arc;
use support::{fast, spawn_app};

async fn get(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("API answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON"))
}

/// An API on `db_url` whose Temporal link points at `temporal` (nothing in the way: the API
/// itself is up whatever its dependencies do).
async fn api(db_url: &str, temporal: Option<String>) -> String {
    procure::system::install_crypto_provider();
    let store = Store::connect(db_url).await.unwrap();
    let fx = EcbFx::new(EcbConfig::default()).unwrap();
    let mut state = AppState::new(
        store,
        Arc::new(fx),
        Arc::new(TrackingConfig::default()),
        ApiConfig::default(),
        Sealer::development(),
        EncryptionCodec::development(),
    );
    if let Some(address) = temporal {
        state = state.with_temporal(Arc::new(TemporalLink::new(
            address,
            "default",
            EncryptionCodec::development(),
        )));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(procure_api::serve(listener, state, std::future::pending()));
    url
}

/// A loopback port nothing listens on.
async fn dead_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

#[tokio::test]
async fn a_running_system_is_live_and_ready() {
    let app = spawn_app(fast()).await;
    let base = &app.system.api_url;
    for path in ["/health", "/health/live"] {
        let (status, body) = get(&format!("{base}{path}")).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("ok")),
            "{path}"
        );
    }
    let (status, body) = get(&format!("{base}/health/ready")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["temporal"]["status"], "ok", "{body}");
}

#[tokio::test]
async fn unreachable_temporal_makes_the_api_unready_but_alive() {
    let db = TestDb::sqlite().await;
    let base = api(&db.url, Some(dead_address().await)).await;
    let (status, body) = get(&format!("{base}/health/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["database"]["status"], "ok");
    assert_eq!(body["temporal"]["status"], "failed");
    assert!(
        body["temporal"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    // Still alive: an orchestrator must not restart it for a dependency's outage.
    assert_eq!(get(&format!("{base}/health/live")).await.0, 200);
    // Without a Temporal link (tests, tools) the check is not configured, not failed.
    let base = api(&db.url, None).await;
    let (status, body) = get(&format!("{base}/health/ready")).await;
    assert_eq!(
        (status, &body["temporal"]["status"]),
        (200, &Value::from("not_configured"))
    );
    db.drop_db().await;
}

#[tokio::test]
async fn a_database_that_is_gone_makes_the_api_unready() {
    let db = TestDb::postgres().await;
    let base = api(&db.url, None).await;
    assert_eq!(get(&format!("{base}/health/ready")).await.0, 200);
    let url = db.url.clone();
    // The database disappears under the running API (its connections are terminated).
    db.drop_db().await;
    let (status, body) = get(&format!("{base}/health/ready")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"]["status"], "failed", "{body}");
    let error = body["database"]["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty() && !error.contains(&url),
        "says what failed, not where: {error}"
    );
}
