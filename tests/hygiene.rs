//! What people type, what restarts do and what the warehouse scans, end to end on a real
//! Temporal dev server:
//! - every forbidden character (NUL, CR, LF, ESC, BEL, U+202E) in every name and address field
//!   is refused with a 422 naming the field, and nothing is created; other free-text fields the
//!   same; the router's own 404 and 405 carry the structured error body;
//! - a restart (seeding the catalogue again) keeps available + reserved per listing;
//! - a scan for an order nothing has been bought for lands in the warehouse exceptions and the
//!   order does not move; after the purchase the same scan is applied;
//! - the Web UI decodes through a relay whose URL holds no credential, with a decode-only codec
//!   token that is renewed; an expired codec token is refused.

mod support;

use procure::{
    devserver::{CodecRelay, DevServer, DevServerOptions},
    system::{System, SystemConfig},
};
use procure_api::{OrderTimings, auth::Role};
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// Each character the rule refuses, named for the failure message.
const FORBIDDEN: [(&str, char); 6] = [
    ("NUL", '\0'),
    ("CR", '\r'),
    ("LF", '\n'),
    ("ESC", '\u{1b}'),
    ("BEL", '\u{7}'),
    ("RLO", '\u{202e}'),
];

fn field_names(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| f["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A 422 `validation_failed` naming `field` with the text rule's message.
async fn assert_refused(r: reqwest::Response, field: &str, what: &str) {
    assert_eq!(r.status(), 422, "{what}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed", "{what}: {body}");
    let named = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["field"] == field)
        .unwrap_or_else(|| panic!("{what}: {field} not named in {body}"));
    assert!(
        named["message"]
            .as_str()
            .unwrap()
            .starts_with("must not contain"),
        "{what}: {named}"
    );
}

#[tokio::test]
async fn control_and_bidi_characters_are_refused_naming_the_field_and_create_nothing() {
    let app = spawn_app(fast()).await;
    let http = reqwest::Client::new();
    let api = app.system.api_url.clone();
    let operator = app.driver.token(Role::Operator, None);
    let admin = app.driver.token(Role::Admin, None);
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[0]["sku"].as_str().unwrap().to_owned();
    let before = available(&app, &sku).await;
    let quote = app
        .driver
        .quote(&[(sku.clone(), 1)], "US", "USD")
        .await
        .unwrap();
    let address = json!({"name": "Zoë Müller", "line1": "1 Main St", "line2": "Apt 2",
        "city": "Springfield", "postal_code": "12345", "country": "US", "phone": "+1 555 0100"});

    let mut refusals = 0;
    for field in [
        "name",
        "line1",
        "line2",
        "city",
        "postal_code",
        "country",
        "phone",
    ] {
        for (what, c) in FORBIDDEN {
            let mut a = address.clone();
            let clean = a[field].as_str().unwrap().to_owned();
            // In the middle of the text: a check of the ends alone would miss it.
            let (head, tail) = clean.split_at(1);
            a[field] = json!(format!("{head}{c}{tail}"));
            let r = http
                .post(format!("{api}/api/v1/orders"))
                .bearer_auth(&operator)
                .header("Idempotency-Key", format!("hostile-{field}-{what}"))
                .json(
                    &json!({"quote_id": quote["quote_id"], "customer_id": "cust-hostile",
                    "shipping_address": a}),
                )
                .send()
                .await
                .unwrap();
            assert_refused(
                r,
                &format!("shipping_address.{field}"),
                &format!("{what} in {field}"),
            )
            .await;
            refusals += 1;
        }
    }
    assert_eq!(refusals, 42);
    // Nothing was created: no order, no reservation, no workflow start queued, and each key is
    // still free (a clean body under one of them is a new order).
    let listed = app
        .driver
        .api_get("/api/v1/orders?customer_id=cust-hostile")
        .await
        .unwrap();
    assert_eq!(listed["orders"], json!([]), "{listed}");
    assert_eq!(available(&app, &sku).await, before);
    assert_eq!(app.system.store.outbox_pending().await.unwrap(), 0);
    let clean = http
        .post(format!("{api}/api/v1/orders"))
        .bearer_auth(&operator)
        .header("Idempotency-Key", "hostile-name-NUL")
        .json(
            &json!({"quote_id": quote["quote_id"], "customer_id": "cust-hostile",
            "shipping_address": address}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        clean.status(),
        201,
        "ordinary text in any script is accepted"
    );

    // Every other body the API takes: the same rule, the field named by its path.
    let cases: Vec<(&str, &str, &str, Value)> = vec![
        (
            "/api/v1/quotes",
            "items[0].sku",
            operator.as_str(),
            json!({"items": [{"sku": format!("{sku}\0"), "quantity": 1}], "destination_country": "US", "currency": "USD"}),
        ),
        (
            "/api/v1/price-monitors",
            "name",
            operator.as_str(),
            json!({"name": "prices \u{202e}ffo", "cron": "@hourly", "destination_country": "US", "products": [{"sku": sku}]}),
        ),
        (
            "/api/v1/admin/accounts",
            "label",
            admin.as_str(),
            json!({"id": "acc-hostile", "platform": "1688", "label": "main\r\naccount", "weight": 1,
                "daily_cap": 1, "per_minute": 1, "access_token": "t"}),
        ),
        (
            "/api/v1/admin/accounts",
            "access_token",
            admin.as_str(),
            json!({"id": "acc-hostile", "platform": "1688", "label": "main", "weight": 1,
                "daily_cap": 1, "per_minute": 1, "access_token": "tok\u{1b}en"}),
        ),
        (
            "/api/v1/purchaser/tasks/pt_none/complete",
            "marketplace_order_id",
            operator.as_str(),
            json!({"marketplace_order_id": "PDD\u{7}1", "amount_paid_fen": 100}),
        ),
        (
            "/api/v1/warehouse/inbound",
            "reference",
            operator.as_str(),
            json!({"reference": "abc\u{1b}[2J", "weight_g": 100, "l_mm": 1, "w_mm": 1, "h_mm": 1}),
        ),
        (
            "/api/v1/warehouse/inbound",
            "photo_urls[1]",
            operator.as_str(),
            json!({"reference": "abc", "weight_g": 100, "l_mm": 1, "w_mm": 1, "h_mm": 1,
                "photo_urls": ["https://x/1.jpg", "https://x/2.jpg\nSet-Cookie: a=b"]}),
        ),
        (
            "/api/v1/parcels",
            "shipping_line",
            operator.as_str(),
            json!({"customer_id": "cust-hostile", "order_ids": ["ord_x"], "shipping_line": "air\0"}),
        ),
    ];
    for (path, field, token, body) in cases {
        let r = http
            .post(format!("{api}{path}"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_refused(r, field, &format!("{path} {field}")).await;
    }
    assert!(
        app.driver.api_get("/api/v1/price-monitors").await.unwrap()["monitors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| !m["name"].as_str().unwrap().contains('\u{202e}')),
        "no monitor created"
    );
    assert!(
        app.system.store.account("acc-hostile").await.is_err(),
        "no account created"
    );
    let exceptions = app
        .driver
        .api_get("/api/v1/warehouse/exceptions?status=all")
        .await
        .unwrap();
    assert_eq!(exceptions["exceptions"], json!([]), "no scan recorded");

    // The router's own answers: the same error body as every other error.
    let r = http
        .get(format!("{api}/api/v1/no-such-thing"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert!(body["error"]["message"].is_string());
    let r = http
        .delete(format!("{api}/api/v1/quotes"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let allow = r.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("POST"), "Allow: {allow}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(
        field_names(&body).is_empty() && body["error"]["message"].is_string(),
        "{body}"
    );
    app.system.stop().await.unwrap();
}

/// Available and held (reserved, not released) units per listing.
async fn stock(store: &procure_store::Store) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    for l in store.listings().await.unwrap() {
        let held: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM reservations \
             WHERE sku = $1 AND released_at_ms IS NULL",
        )
        .bind(&l.sku)
        .fetch_one(store.pool())
        .await
        .unwrap();
        out.push((l.sku, l.available, held));
    }
    out
}

/// Restart the whole system on its database with orders holding reservations: the catalogue is
/// seeded again on start, and no listing gets its held units back as available.
#[tokio::test]
async fn a_restart_keeps_the_stock_that_open_orders_hold() {
    let dir =
        std::env::temp_dir().join(format!("procure-restart-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        temporal_address(),
    );
    cfg.task_queue = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    cfg.timings = fast();
    let system = System::start(cfg.clone()).await.unwrap();
    let app = TestApp {
        driver: procure::demo::Driver::new(system.api_url.clone(), system.sandbox_url.clone()),
        system,
    };
    let catalogue = app.driver.catalogue().await.unwrap();
    let (a, sku_a) = place(&app, 0).await;
    let (b, _) = place(&app, 1).await;
    let (c, _) = place(&app, 0).await;
    for id in [&a, &b, &c] {
        wait_state(&app, id, OrderState::PendingPayment).await;
    }
    let sku_a = sku_a["sku"].as_str().unwrap().to_owned();
    let before = stock(&app.system.store).await;
    let held_a = before.iter().find(|s| s.0 == sku_a).unwrap().2;
    assert_eq!(held_a, 2, "two orders hold a unit of {sku_a}: {before:?}");
    // A price the catalogue will overwrite on the next start, so the test sees seeding run.
    let mut listing = app.system.store.listing(&sku_a).await.unwrap();
    let catalogue_price = listing.price_fen;
    listing.price_fen = 1;
    app.system.store.upsert_listing(&listing).await.unwrap();
    app.system.stop().await.unwrap();

    let system = System::start(cfg).await.unwrap();
    assert_eq!(
        system.store.listing(&sku_a).await.unwrap().price_fen,
        catalogue_price,
        "the restart seeded the catalogue again"
    );
    let after = stock(&system.store).await;
    assert_eq!(after.len(), catalogue.len());
    for (sku, available, held) in &before {
        let (_, a2, h2) = after.iter().find(|s| &s.0 == sku).unwrap();
        assert_eq!(
            (a2 + h2, *h2),
            (available + held, *held),
            "{sku}: available + reserved after the restart"
        );
    }
    assert_eq!(after, before);
    system.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A measured inbound scan of an order by its id, as the warehouse sends it.
async fn scan(app: &TestApp, order_id: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/warehouse/inbound", app.system.api_url))
        .bearer_auth(app.driver.token(Role::Warehouse, None))
        .json(
            &json!({"order_id": order_id, "weight_g": 900, "l_mm": 300, "w_mm": 200, "h_mm": 100}),
        )
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Inbound-scan signals ever queued for the order's workflow.
async fn inbound_signals(app: &TestApp, order_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE order_id = $1 AND payload LIKE '%warehouse_inbound%'",
    )
    .bind(order_id)
    .fetch_one(app.system.store.pool())
    .await
    .unwrap()
}

/// The open exception recorded for `label`.
async fn exception_for(app: &TestApp, label: &str) -> Value {
    let list = app
        .driver
        .api_get("/api/v1/warehouse/exceptions")
        .await
        .unwrap();
    list["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reference"] == label)
        .cloned()
        .unwrap_or_else(|| panic!("no exception for {label}: {list}"))
}

#[tokio::test]
async fn goods_scanned_in_before_they_were_bought_are_an_exception_and_move_nothing() {
    // The purchaser task stays open long enough for the scan to come first.
    let app = spawn_app(OrderTimings {
        purchaser_deadline: Duration::from_secs(600),
        ..fast()
    })
    .await;

    // Not even paid.
    let (unpaid, _) = place(&app, 0).await;
    wait_state(&app, &unpaid, OrderState::PendingPayment).await;
    let (status, body) = scan(&app, &unpaid).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("exception")));
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("PendingPayment") && reason.contains("nothing has been bought"),
        "{reason}"
    );
    let ex = exception_for(&app, &unpaid).await;
    assert_eq!(ex["reason"], reason);
    assert_eq!(ex["id"], body["exception_id"]);

    // Paid, and a purchaser is still buying it (Pinduoduo's assisted channel).
    let idx = sku_cheapest_on(&app, "pinduoduo").await;
    let (id, _) = place(&app, idx).await;
    wait_state(&app, &id, OrderState::Procuring).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let task = loop {
        let open = app.driver.purchaser_tasks("open").await.unwrap();
        if let Some(t) = open.into_iter().find(|t| t["order_id"] == id.as_str()) {
            break t;
        }
        assert!(Instant::now() < deadline, "no purchaser task for {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (status, body) = scan(&app, &id).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("exception")));
    assert!(
        body["reason"].as_str().unwrap().contains("is Procuring"),
        "{body}"
    );
    assert_eq!(exception_for(&app, &id).await["reason"], body["reason"]);
    // Resolving that exception to the order is refused while nothing is bought.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/warehouse/exceptions/{}/resolve",
            app.system.api_url, body["exception_id"]
        ))
        .bearer_auth(app.driver.token(Role::Warehouse, None))
        .json(&json!({"order_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "order_not_purchased"
    );

    // The order did not move: no stored goods, no signal queued, still waiting for its
    // purchase; neither did the unpaid one.
    for order in [&id, &unpaid] {
        assert!(app.system.store.warehouse_item(order).await.is_err());
        assert_eq!(
            inbound_signals(&app, order).await,
            0,
            "{order} was signalled"
        );
    }
    let o = app.driver.order(&id).await.unwrap();
    assert_eq!(o["state"], "Procuring", "{o}");
    assert_eq!(
        app.driver.order(&unpaid).await.unwrap()["state"],
        "PendingPayment"
    );

    // Bought: the same scan is applied and the order goes on to the warehouse.
    let done = app
        .driver
        .complete_task(task["id"].as_str().unwrap(), "PDD-HYGIENE-1", 100)
        .await
        .unwrap();
    assert_eq!(done, 200);
    wait_state(&app, &id, OrderState::InboundTransit).await;
    let (status, body) = scan(&app, &id).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (202, Some("received")),
        "{body}"
    );
    assert_eq!(inbound_signals(&app, &id).await, 1);
    wait_state(&app, &id, OrderState::InWarehouse).await;
    app.system.stop().await.unwrap();
}

/// Encrypted payloads as the Web UI sends them to its codec endpoint.
fn encrypted_sample() -> (Value, String) {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    let codec = procure_temporal::codec::EncryptionCodec::development();
    let clear = r#"{"order_id":"ord_codec_sample"}"#;
    let p = codec.encode_one(
        &temporalio_common::protos::temporal::api::common::v1::Payload {
            metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
            data: clear.as_bytes().to_vec(),
            ..Default::default()
        },
    );
    let payload = json!({
        "metadata": p.metadata.iter().map(|(k, v)| (k.clone(), json!(B64.encode(v)))).collect::<serde_json::Map<_, _>>(),
        "data": B64.encode(&p.data),
    });
    (json!({"payloads": [payload]}), clear.to_owned())
}

fn decoded_data(body: &Value) -> String {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    String::from_utf8(
        B64.decode(body["payloads"][0]["data"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_web_ui_decodes_with_a_short_lived_codec_token_it_never_sees() {
    let keys = procure_api::auth::TokenKey::development();
    let now = procure_domain::clock::now_ms() / 1000;
    // The API alone (no worker needed to decode), then a relay in front of it, then the stock
    // Web UI of a real dev server configured with the relay.
    let dir = std::env::temp_dir().join(format!("procure-codec-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("app.db").display()),
        temporal_address(),
    );
    cfg.run_worker = false;
    let ui_port = procure::devserver::free_port();
    cfg.ui_origins = vec![format!("http://127.0.0.1:{ui_port}")];
    let system = System::start(cfg).await.unwrap();
    let api = system.api_url.clone();
    let (body, clear) = encrypted_sample();
    let http = reqwest::Client::new();
    let decode = |token: String| {
        http.post(format!("{api}/api/codec/decode"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    // The codec token decodes, by header and in the path; it may not encode; an expired one is
    // refused; every other endpoint refuses it (the role matrix, tests/roles.rs).
    let codec = keys.issue("ui", Role::Codec, None, now, procure_api::auth::CODEC_TTL_S);
    let r = decode(codec.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(decoded_data(&r.json().await.unwrap()), clear);
    let r = http
        .post(format!("{api}/api/codec/t/{codec}/decode"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{api}/api/codec/encode"))
        .bearer_auth(&codec)
        .json(&json!({"payloads": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a codec token does not encode");
    let expired = keys.issue("ui", Role::Codec, None, now - 2 * 3_600, 3_600);
    let r = decode(expired.clone()).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["message"],
        "token expired"
    );

    // The relay: its first token is already expired, so only a renewal makes it decode.
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let relay = {
        let (keys, issued) = (keys.clone(), issued.clone());
        CodecRelay::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            &api,
            vec![format!("http://127.0.0.1:{ui_port}")],
            move || {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let now = procure_domain::clock::now_ms() / 1000;
                // The first token is long expired; every renewal is fresh.
                let at = if n == 0 { now - 7_200 } else { now };
                keys.issue("procure-dev-ui", Role::Codec, None, at, 3_600)
            },
            Duration::from_secs(3_600),
        )
        .await
        .unwrap()
    };
    assert!(!relay.url().contains("eyJ"), "no token in the relay's URL");
    let origin = format!("http://127.0.0.1:{ui_port}");
    let via_relay = || {
        http.post(format!("{}/decode", relay.url()))
            .header("Origin", &origin)
            .header("X-Namespace", "default")
            .json(&body)
            .send()
    };
    assert_eq!(via_relay().await.unwrap().status(), 401);
    relay.renew();
    let r = via_relay().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"].to_str().unwrap(),
        origin,
        "the browser may read it"
    );
    assert_eq!(decoded_data(&r.json().await.unwrap()), clear);
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{}/decode", relay.url()))
        .header("Origin", &origin)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "preflight {}", r.status());
    assert!(r.headers().contains_key("access-control-allow-methods"));
    // What an operator types into the UI's signal or update dialog comes back unencrypted
    // (the codec token may not encode; plain payloads pass the workers' codec).
    let typed = json!({"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "eyJyZWFzb24iOiJ4In0="}]});
    let r = http
        .post(format!("{}/encode", relay.url()))
        .header("Origin", &origin)
        .json(&typed)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"].to_str().unwrap(),
        origin
    );
    assert_eq!(r.json::<Value>().await.unwrap(), typed);
    let r = http
        .post(format!("{}/decode", relay.url()))
        .header("Origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers().contains_key("access-control-allow-origin"),
        "no other origin may read it"
    );
    let r = http
        .post(format!("{}/api/v1/orders", relay.url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the relay answers the codec protocol only");
    relay.stop().await;

    // The renewal loop replaces the token by itself.
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let relay = {
        let (keys, issued) = (keys.clone(), issued.clone());
        CodecRelay::start(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            &api,
            vec![format!("http://127.0.0.1:{ui_port}")],
            move || {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let now = procure_domain::clock::now_ms() / 1000;
                let at = if n == 0 { now - 7_200 } else { now };
                keys.issue("procure-dev-ui", Role::Codec, None, at, 3_600)
            },
            Duration::from_millis(200),
        )
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = http
            .post(format!("{}/decode", relay.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        if s == 200 {
            break;
        }
        assert_eq!(s, 401);
        assert!(
            Instant::now() < deadline,
            "the relay never renewed its token"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(issued.load(std::sync::atomic::Ordering::SeqCst) >= 2);

    // The stock Web UI of `temporal server start-dev`, configured as `procure dev` does: its
    // settings name the relay, and no token is on the server's command line.
    let server = DevServer::start(DevServerOptions {
        db_file: None,
        port: None,
        ui_port: Some(ui_port),
        ui: true,
        namespace: "default".into(),
        search_attributes: vec![],
        log_file: Some(dir.join("temporal-ui.log")),
        ui_codec_endpoint: Some(relay.url().to_owned()),
    })
    .await
    .unwrap();
    let ui = server.ui_url().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let settings: Value = loop {
        if let Ok(r) = http.get(format!("{ui}/api/v1/settings")).send().await
            && r.status().is_success()
            && let Ok(v) = r.json::<Value>().await
        {
            break v;
        }
        assert!(Instant::now() < deadline, "the UI at {ui} never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(settings["Codec"]["Endpoint"], relay.url(), "{settings}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains(relay.url()), "{cmdline}");
    assert!(
        !cmdline.contains("eyJ"),
        "a token on the command line: {cmdline}"
    );
    server.stop().await.unwrap();
    relay.stop().await;
    system.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Workflow code reads time only through its SDK context (so a replay sees the instant the
/// first run saw): no file of `workflows/src` calls the wall-clock helper or `SystemTime`.
#[test]
fn workflow_code_never_reads_the_wall_clock() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 3, "sanity: the workflow sources were found");
    let banned = [
        "clock::now_ms",
        "SystemTime",
        "Instant::now",
        "chrono::Utc::now",
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for b in banned {
                assert!(
                    !code.contains(b),
                    "{}:{}: workflow code calls {b}: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
