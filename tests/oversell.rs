//! No overselling through the public API: 1,000 orders placed at once for a product with 100
//! units leave exactly 100 orders with their reservations and 900 clean `409 out_of_stock`
//! answers, on a fresh SQLite file and on a fresh PostgreSQL database. The API runs against
//! the real store and the project's sandbox (for exchange rates); Temporal is not needed, the
//! accepted orders wait in the outbox.

mod common;

use common::TestDb;
use futures_util::{StreamExt, stream};
use procure_adapters::{EcbConfig, EcbFx, TrackingConfig};
use procure_api::{ApiConfig, AppState, auth::Role};
use procure_domain::seal::Sealer;
use procure_store::Store;
use procure_temporal::EncryptionCodec;
use serde_json::{Value, json};
use sqlx::Row;
use std::collections::BTreeMap;

const UNITS: i64 = 100;
const ORDERS: usize = 1_000;

async fn oversell(db_url: &str) {
    procure::system::install_crypto_provider();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let sb_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sandbox_url = format!("http://{}", sb_listener.local_addr().unwrap());
    let sandbox = procure_sandbox::Sandbox::new(Default::default());
    tokio::spawn(procure_sandbox::serve(
        sb_listener,
        sandbox.clone(),
        stopped(),
    ));

    let store = Store::connect(db_url).await.unwrap();
    procure::system::seed_catalogue(&store, &sandbox)
        .await
        .unwrap();
    let mut listing = store.listings().await.unwrap().remove(0);
    listing.available = UNITS;
    store.upsert_listing(&listing).await.unwrap();

    let fx = EcbFx::new(EcbConfig {
        base_url: sandbox_url.clone(),
        ..Default::default()
    })
    .unwrap();
    let config = ApiConfig::default();
    let now = procure_domain::clock::now_ms() / 1000;
    let token = config
        .tokens
        .issue("oversell", Role::Admin, None, now, 3_600);
    let state = AppState::new(
        store.clone(),
        std::sync::Arc::new(fx),
        std::sync::Arc::new(TrackingConfig::default()),
        config,
        Sealer::development(),
        EncryptionCodec::development(),
    );
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", api_listener.local_addr().unwrap());
    tokio::spawn(procure_api::serve(api_listener, state, stopped()));
    let http = reqwest::Client::new();

    // A named shipping line is quoted on that line; a line that does not exist is refused
    // naming the field, before anything is priced.
    let named = |line: &'static str| {
        http.post(format!("{api}/api/v1/quotes"))
            .bearer_auth(&token)
            .json(&json!({"items": [{"sku": listing.sku, "quantity": 1}],
                          "destination_country": "US", "currency": "USD", "shipping_line": line}))
            .send()
    };
    let r = named("SANDBOX-EXP").await.unwrap();
    assert_eq!(r.status(), 201);
    let q: Value = r.json().await.unwrap();
    assert_eq!(q["shipping_line"], "SANDBOX-EXP", "{q}");
    let r = named("NO-SUCH-LINE").await.unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["fields"][0]["field"], "shipping_line", "{e}");

    // One quote per order while the stock is there (quotes check availability too).
    let quotes: Vec<String> = stream::iter(0..ORDERS)
        .map(|_| {
            let (http, api, sku, token) = (
                http.clone(),
                api.clone(),
                listing.sku.clone(),
                token.clone(),
            );
            async move {
                let q: Value = http
                    .post(format!("{api}/api/v1/quotes"))
                    .bearer_auth(&token)
                    .json(&json!({"items": [{"sku": sku, "quantity": 1}],
                                  "destination_country": "US", "currency": "USD"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                q["quote_id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{q}"))
                    .to_owned()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;

    // All 1,000 orders at once.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(ORDERS));
    let tasks: Vec<_> = quotes
        .into_iter()
        .enumerate()
        .map(|(i, quote_id)| {
            let (http, api, start, token) =
                (http.clone(), api.clone(), start.clone(), token.clone());
            tokio::spawn(async move {
                start.wait().await;
                let r = http
                    .post(format!("{api}/api/v1/orders"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("oversell-{i}"))
                    .json(
                        &json!({"quote_id": quote_id, "customer_id": format!("cust-{}", i % 50),
                        "shipping_address": {"name": "A", "line1": "1 Street", "city": "Town",
                                             "postal_code": "1", "country": "US"}}),
                    )
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (
                    status,
                    body["error"]["code"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect();
    let mut outcomes: BTreeMap<(u16, String), usize> = BTreeMap::new();
    for t in tasks {
        *outcomes.entry(t.await.unwrap()).or_default() += 1;
    }
    let expected = BTreeMap::from([
        ((201, String::new()), UNITS as usize),
        ((409, "out_of_stock".to_owned()), ORDERS - UNITS as usize),
    ]);
    assert_eq!(
        outcomes, expected,
        "exactly {UNITS} accepted, the rest refused cleanly"
    );

    // The store agrees: 100 orders, 100 units reserved, none left, one workflow start each.
    assert_eq!(store.listing(&listing.sku).await.unwrap().available, 0);
    let count = |sql: &'static str| {
        let store = store.clone();
        async move {
            let row = sqlx::query(sql).fetch_one(store.pool()).await.unwrap();
            row.try_get::<i64, _>("n").unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) AS n FROM orders").await, UNITS);
    assert_eq!(
        count("SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS n FROM reservations").await,
        UNITS
    );
    assert_eq!(
        count("SELECT COUNT(*) AS n FROM outbox WHERE kind = 'start'").await,
        UNITS
    );
    let _ = stop_tx.send(true);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_orders_for_a_hundred_units_on_sqlite() {
    let db = TestDb::sqlite().await;
    oversell(&db.url).await;
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_orders_for_a_hundred_units_on_postgres() {
    let db = TestDb::postgres().await;
    oversell(&db.url).await;
    db.drop_db().await;
}
