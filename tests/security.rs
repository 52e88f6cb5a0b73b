//! Secrets stay secret on a real Temporal dev server: every payload Temporal stores is
//! encrypted (no order id, customer address or buyer-account credential in clear text in a
//! workflow history read straight from the Temporal API), operators read payloads in clear
//! through the codec endpoint, and nobody else can.

mod support;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use procure::demo::Script;
use procure_api::auth::{Role, TokenKey};
use procure_domain::OrderState;
use serde_json::{Value, json};
use support::*;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowExecutionInfo,
    WorkflowFetchHistoryOptions,
};

/// A client with the default (plain JSON) converter: it sees payloads as Temporal stores them.
async fn raw_client() -> Client {
    let conn = Connection::connect(
        ConnectionOptions::new(Url::parse(&format!("http://{}", temporal_address())).unwrap())
            .identity("raw-reader".to_owned())
            .build(),
    )
    .await
    .unwrap();
    Client::new(conn, ClientOptions::new("default".to_owned()).build()).unwrap()
}

/// Every payload of a history (an object with `metadata` and base64 `data`), in order.
fn payload_objects(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if m.get("data").is_some_and(Value::is_string) && m.contains_key("metadata") {
                    out.push(v);
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// A payload's `encoding` metadata, decoded.
fn encoding(p: &Value) -> String {
    p["metadata"]["encoding"]
        .as_str()
        .and_then(|e| B64.decode(e).ok())
        .map(|e| String::from_utf8_lossy(&e).into_owned())
        .unwrap_or_default()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn histories_hold_no_clear_text_and_only_operators_decode_them() {
    let app = spawn_app(fast()).await;
    let token = "demo1688-token-secret-a";
    app.system
        .store
        .add_account(
            &procure_store::accounts::NewAccount {
                id: "1688-sec".into(),
                platform: procure_domain::order::Platform::Alibaba1688,
                label: "buyer sec".into(),
                weight: 1,
                daily_cap: 100,
                per_minute: 100,
                access_token: token.into(),
            },
            &procure_domain::seal::Sealer::development(),
        )
        .await
        .unwrap();
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, _) = place(&app, idx).await;
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );

    let history = WorkflowExecutionInfo::builder()
        .namespace("default")
        .workflow_id(procure_workflows::order_workflow_id(&id))
        .build()
        .bind_untyped(raw_client().await)
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .unwrap();
    let json: Value = serde_json::from_slice(&history).unwrap();
    // Every payload's encoding and base64-decoded data.
    let found: Vec<(String, Vec<u8>)> = payload_objects(&json)
        .into_iter()
        .map(|p| {
            let data = B64.decode(p["data"].as_str().unwrap()).unwrap_or_default();
            (encoding(p), data)
        })
        .collect();
    let encrypted = found
        .iter()
        .filter(|(e, _)| e == procure_temporal::codec::ENCODING)
        .count();
    assert!(
        encrypted >= 20,
        "only {encrypted} encrypted payloads of {}",
        found.len()
    );
    // The demo customer's address, the account credential, even the order id: nowhere in
    // clear text, neither in the history nor inside any payload.
    for secret in [
        "1 Example Street",
        "Springfield",
        "+10000000000",
        token,
        id.as_str(),
    ] {
        for (encoding, data) in &found {
            assert!(
                !contains(data, secret),
                "{secret:?} in clear text in a {encoding} payload"
            );
        }
    }
    for secret in ["1 Example Street", "Springfield", token] {
        assert!(!contains(&history, secret), "{secret:?} in the history");
    }
    // What stays plain is Temporal's own bookkeeping (search attributes such as the order
    // state, patch markers): no value of ours, which all carry an order id or an amount.
    for (encoding, data) in &found {
        if encoding != procure_temporal::codec::ENCODING {
            assert!(
                !contains(data, "order_id") && !contains(data, "minor"),
                "unencrypted {encoding} payload of ours: {}",
                String::from_utf8_lossy(data)
            );
        }
    }

    // The codec endpoint: operators decode, everyone else is refused.
    // Encrypted payloads, in the codec protocol's JSON shape.
    let sample: Vec<Value> = payload_objects(&json)
        .into_iter()
        .filter(|p| encoding(p) == procure_temporal::codec::ENCODING)
        .take(5)
        .map(|p| json!({"metadata": p["metadata"], "data": p["data"]}))
        .collect();
    let keys = TokenKey::development();
    let now = procure_domain::clock::now_ms() / 1000;
    let operator = keys.issue("op", Role::Operator, None, now, 300);
    let customer = keys.issue("c", Role::Customer, Some("cust-0"), now, 300);
    let warehouse = keys.issue("w", Role::Warehouse, None, now, 300);
    let url = format!("{}/api/codec/decode", app.system.api_url);
    let http = reqwest::Client::new();
    let body = json!({"payloads": sample});
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(http.post(&url).json(&body).send().await.unwrap()),
        401
    );
    for refused in [&customer, &warehouse] {
        let r = http
            .post(&url)
            .bearer_auth(refused)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 403);
    }
    let forged = format!("{}x", &operator[..operator.len() - 1]);
    assert_eq!(
        status(
            http.post(&url)
                .bearer_auth(&forged)
                .json(&body)
                .send()
                .await
                .unwrap()
        ),
        401
    );
    let decoded: Value = http
        .post(&url)
        .bearer_auth(&operator)
        .header("Origin", "http://127.0.0.1:8233")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clear: Vec<String> = decoded["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| String::from_utf8(B64.decode(p["data"].as_str().unwrap()).unwrap()).unwrap())
        .collect();
    assert_eq!(clear.len(), sample.len());
    assert!(
        clear.iter().any(|c| c.contains(&id)),
        "decoded payloads name the order: {clear:?}"
    );
    // The UI's form: the token in the path.
    let via_path = http
        .post(format!(
            "{}/api/codec/t/{operator}/decode",
            app.system.api_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(status(via_path), 200);
    let bad_path = http
        .post(format!(
            "{}/api/codec/t/{customer}/decode",
            app.system.api_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(status(bad_path), 403);
    app.system.stop().await.unwrap();
}

/// Signed webhooks: a stale delivery and a replay of an accepted one are refused; a provider's
/// redelivery (re-signed) of an event already handled is acknowledged without effect.
#[tokio::test]
async fn signed_webhooks_refuse_stale_deliveries_and_replays() {
    use procure_domain::signing;
    let app = spawn_app(fast()).await;
    let http = reqwest::Client::new();
    let api = &app.system.api_url;
    let now = procure_domain::clock::now_ms() / 1000;
    let secret = "whsec_procure_demo";
    let event = br#"{"id":"evt_replay","type":"payment_intent.succeeded","data":{"object":{"id":"pi_unknown","amount_received":100,"currency":"usd"}}}"#;
    let pay = |t: i64| {
        http.post(format!("{api}/api/v1/webhooks/payments"))
            .header(
                "Stripe-Signature",
                signing::stripe_signature_header(secret, t, event),
            )
            .body(event.to_vec())
    };
    let code = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(code(pay(now - 400).send().await.unwrap()), 401, "stale");
    assert_eq!(
        code(pay(now + 400).send().await.unwrap()),
        401,
        "from the future"
    );
    assert_eq!(code(pay(now).send().await.unwrap()), 200);
    let replay = pay(now).send().await.unwrap();
    assert_eq!(replay.status(), 409, "the same signed delivery again");
    let e: Value = replay.json().await.unwrap();
    assert_eq!(e["error"]["code"], "webhook_replayed");
    // The provider's own redelivery is re-signed at another second: accepted, and (the event
    // being known) without effect.
    assert_eq!(code(pay(now - 1).send().await.unwrap()), 200);

    let track = |body: &str| {
        http.post(format!("{api}/api/v1/webhooks/tracking"))
            .header(
                "sign",
                signing::track17_signature(body.as_bytes(), "demo17token"),
            )
            .body(body.to_owned())
    };
    let fresh = format!(
        r#"{{"event":"TRACKING_UPDATED","data":{{"number":"SXREPLAY","track_info":{{"latest_status":{{"status":"InTransit"}},"tracking":{{"providers":[{{"events":[{{"time_iso":"{}","description":"Departed"}}]}}]}}}}}}}}"#,
        rfc3339(now - 3_600)
    );
    assert_eq!(code(track(&fresh).send().await.unwrap()), 200);
    assert_eq!(
        code(track(&fresh).send().await.unwrap()),
        409,
        "replayed push"
    );
    let stale = fresh.replace(&rfc3339(now - 3_600), &rfc3339(now - 40 * 86_400));
    assert_eq!(code(track(&stale).send().await.unwrap()), 401, "stale push");
    let forged = http
        .post(format!("{api}/api/v1/webhooks/tracking"))
        .header("sign", "00")
        .body(fresh.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(code(forged), 401);
    app.system.stop().await.unwrap();
}

/// `2026-11-22T10:00:00Z` for seconds since the epoch.
fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Hostile input gets a clear 4xx with a structured body, and nothing is created.
#[tokio::test]
async fn hostile_input_meets_explicit_limits() {
    let app = spawn_app(fast()).await;
    let http = reqwest::Client::new();
    let api = &app.system.api_url;
    let customer = app.driver.token(Role::Customer, Some("cust-h"));
    let sku = app.driver.catalogue().await.unwrap()[0]["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let quote = |body: Value| {
        http.post(format!("{api}/api/v1/quotes"))
            .bearer_auth(&customer)
            .json(&body)
    };
    let check = |status: u16, code: &'static str| {
        move |r: (u16, Value)| {
            assert_eq!(r.0, status, "{}", r.1);
            assert_eq!(r.1["error"]["code"], code, "{}", r.1);
            r.1
        }
    };
    async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    let fields = |v: &Value| -> Vec<String> {
        v["error"]["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f["field"].as_str().unwrap().to_owned())
            .collect()
    };

    // Body size, content type, malformed JSON, unknown fields.
    let huge = json!({"items": [{"sku": "x".repeat(70 * 1024), "quantity": 1}], "destination_country": "US", "currency": "USD"});
    check(413, "body_too_large")(answer(quote(huge)).await);
    check(415, "unsupported_media_type")(
        answer(
            http.post(format!("{api}/api/v1/quotes"))
                .bearer_auth(&customer)
                .header("content-type", "text/plain")
                .body("{}"),
        )
        .await,
    );
    check(400, "malformed_json")(
        answer(
            http.post(format!("{api}/api/v1/quotes"))
                .bearer_auth(&customer)
                .header("content-type", "application/json")
                .body(r#"{"items": ["#),
        )
        .await,
    );
    check(400, "invalid_body")(
        answer(quote(
            json!({"items": [], "destination_country": "US", "currency": "USD", "admin": true}),
        ))
        .await,
    );
    // Counts, ranges, lengths, currencies and countries.
    let many: Vec<Value> = (0..51)
        .map(|i| json!({"sku": format!("S{i}"), "quantity": 1}))
        .collect();
    let v = check(422, "validation_failed")(
        answer(quote(
            json!({"items": many, "destination_country": "US", "currency": "USD"}),
        ))
        .await,
    );
    assert_eq!(fields(&v), ["items"]);
    let v = check(422, "validation_failed")(
        answer(quote(json!({"items": [{"sku": sku, "quantity": 1000}, {"sku": "y".repeat(65), "quantity": 0}],
                            "destination_country": "XX", "currency": "BTC"})))
        .await,
    );
    assert_eq!(
        fields(&v),
        [
            "items[0].quantity",
            "items[1].sku",
            "items[1].quantity",
            "destination_country",
            "currency"
        ]
    );
    check(400, "invalid_body")(answer(quote(json!({"items": [{"sku": sku, "quantity": -1}], "destination_country": "US", "currency": "USD"}))).await);

    // Orders: string lengths and characters; a reused Idempotency-Key with another body.
    let q = answer(quote(json!({"items": [{"sku": sku, "quantity": 1}], "destination_country": "US", "currency": "USD"}))).await.1;
    let order = |body: Value, key: &str| {
        http.post(format!("{api}/api/v1/orders"))
            .bearer_auth(&customer)
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let address = json!({"name": "N".repeat(101), "line1": "", "city": "C", "postal_code": "1".repeat(21), "country": "us", "phone": "9".repeat(31)});
    let v = check(422, "validation_failed")(
        answer(order(json!({"quote_id": q["quote_id"], "customer_id": "cust-h", "shipping_address": address}), "k-h1")).await,
    );
    assert_eq!(
        fields(&v),
        [
            "shipping_address.name",
            "shipping_address.line1",
            "shipping_address.postal_code",
            "shipping_address.phone",
            "shipping_address.country"
        ]
    );
    let good = json!({"quote_id": q["quote_id"], "customer_id": "cust-h", "shipping_address":
        {"name": "N", "line1": "L", "city": "C", "postal_code": "1", "country": "US"}});
    check(400, "invalid_idempotency_key")(answer(order(good.clone(), &"k".repeat(256))).await);
    assert_eq!(answer(order(good.clone(), "k-h2")).await.0, 201);
    let mut other = good.clone();
    other["shipping_address"]["name"] = json!("Someone Else");
    check(409, "idempotency_key_reused")(answer(order(other, "k-h2")).await);

    // Exactly one order came of all that.
    let listed = answer(
        http.get(format!("{api}/api/v1/orders"))
            .bearer_auth(&customer),
    )
    .await;
    assert_eq!(
        listed.1["orders"].as_array().unwrap().len(),
        1,
        "{}",
        listed.1
    );
    app.system.stop().await.unwrap();
}
