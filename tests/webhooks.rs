//! Webhook delivery of the event log on a real system (dev server, SQLite file, sandbox, API,
//! worker), to receivers this test runs on loopback. Every request a receiver gets is checked
//! against the Standard Webhooks scheme by the receiver's own HMAC-SHA256 (the `hmac` and
//! `sha2` crates here; procure signs through the specification's library), so signer and
//! verifier are two implementations.
//!
//! - A full order (placed, paid through the sandbox, bought, scanned in, parcelled, delivered):
//!   the receiver stops for a while and comes back, deliveries resume in order per subject and
//!   none is lost; the feed and the webhooks carry the same events, byte for byte; a replay
//!   sends them all again.
//! - A receiver answering 500 and one that hangs do not hold up a healthy one; the failing one
//!   is disabled with its reason after `disable_after`, and enabled again it gets everything.
//! - A secret rotation: during the overlap every delivery is signed by both secrets, after it
//!   by the new one only.
//! - The admin API: roles, the secret shown once, bad input.
//! - Notifications: a price change and the cancellation that follows reach the customer.
//!
//! `cargo test --test webhooks -- --nocapture` prints, per receiver, the events sent,
//! delivered, retried and replayed.

mod support;

use axum::{body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use procure::{demo::Script, system::SystemConfig};
use procure_api::auth::Role;
use procure_domain::OrderState;
use serde_json::{Value, json};
use sha2::Sha256;
use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use support::*;

// ----- a receiver with its own verifier -------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    timestamp: i64,
    body: Value,
    /// The body as it arrived.
    raw: Vec<u8>,
    /// The signature entries of `webhook-signature`, in order.
    signatures: Vec<String>,
    /// For each entry, the index of the known secret it verified with (`None`: none did).
    verified_by: Vec<Option<usize>>,
    /// What the receiver answered.
    answered: u16,
}

#[derive(Default)]
struct Inbox {
    secrets: Vec<String>,
    got: Vec<Got>,
}

struct ReceiverState {
    mode: Mutex<Mode>,
    inbox: Mutex<Inbox>,
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` by the specification, computed
/// here with RustCrypto's HMAC, not procure's signer.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("base64 secret");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Which known secret verifies a `v1,…` entry (constant time, through `verify_slice`).
fn verify_entry(
    secrets: &[String],
    id: &str,
    timestamp: &str,
    body: &[u8],
    entry: &str,
) -> Option<usize> {
    let sig = B64.decode(entry.strip_prefix("v1,")?).ok()?;
    secrets.iter().position(|s| {
        let key = B64.decode(s.strip_prefix("whsec_").unwrap()).unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

async fn hook(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let mode = *state.mode.lock().unwrap();
    let answered = {
        let mut inbox = state.inbox.lock().unwrap();
        let signatures: Vec<String> = signature.split(' ').map(str::to_owned).collect();
        let verified_by: Vec<Option<usize>> = signatures
            .iter()
            .map(|e| verify_entry(&inbox.secrets, &id, &timestamp, &body, e))
            .collect();
        // Cross-check the verifier itself once per request: the first entry recomputed.
        if let Some(Some(i)) = verified_by.first() {
            let want = expected_signature(&inbox.secrets[*i], &id, &timestamp, &body);
            assert_eq!(
                B64.decode(signatures[0].strip_prefix("v1,").unwrap())
                    .unwrap(),
                want
            );
        }
        let ts: i64 = timestamp.parse().unwrap_or(0);
        let fresh = (procure_domain::clock::now_ms() / 1000 - ts).abs() <= 300;
        let signed = verified_by.iter().any(Option::is_some) && fresh;
        let answered = match (mode, signed) {
            (_, false) => 401,
            (Mode::Ok, true) => 200,
            (Mode::Fail, true) => 500,
            (Mode::Hang, true) => 0,
        };
        inbox.got.push(Got {
            id: id.clone(),
            timestamp: ts,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body.to_vec(),
            signatures,
            verified_by,
            answered,
        });
        answered
    };
    if answered == 0 {
        std::future::pending::<()>().await;
    }
    StatusCode::from_u16(answered).unwrap()
}

struct Receiver {
    name: &'static str,
    state: Arc<ReceiverState>,
    addr: SocketAddr,
    stop: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Receiver {
    async fn start(name: &'static str, mode: Mode) -> Receiver {
        let state = Arc::new(ReceiverState {
            mode: Mutex::new(mode),
            inbox: Mutex::new(Inbox::default()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver {
            name,
            state,
            addr,
            stop: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(self.state.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.stop = Some((tx, task));
    }

    /// Stop listening (connections are refused until [`Receiver::restart`]).
    async fn stop(&mut self) {
        let (tx, task) = self.stop.take().expect("running");
        let _ = tx.send(());
        task.await.unwrap();
    }

    /// Listen again on the same port.
    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    fn know_secrets(&self, secrets: &[&str]) {
        self.state.inbox.lock().unwrap().secrets = secrets.iter().map(|s| s.to_string()).collect();
    }

    fn got(&self) -> Vec<Got> {
        self.state.inbox.lock().unwrap().got.clone()
    }

    /// The first 2xx delivery of each event, in the order they arrived.
    fn delivered(&self) -> Vec<Got> {
        let mut seen = std::collections::HashSet::new();
        self.got()
            .into_iter()
            .filter(|g| g.answered == 200 && seen.insert(g.id.clone()))
            .collect()
    }

    /// Every request was signed per the scheme by a secret it knows, every entry of every
    /// signature header included.
    fn assert_every_signature_verified(&self) {
        for g in self.got() {
            assert!(!g.signatures.is_empty(), "{}: unsigned {}", self.name, g.id);
            for (entry, by) in g.signatures.iter().zip(&g.verified_by) {
                assert!(
                    by.is_some(),
                    "{}: {} has a signature no secret verifies: {entry}",
                    self.name,
                    g.id
                );
            }
        }
    }
}

// ----- the system and its API -----------------------------------------------------------------

/// Retries in tens of milliseconds instead of seconds; the production defaults are in
/// procure.example.toml (`[webhooks]`).
fn quick_webhooks(cfg: &mut SystemConfig, request_timeout_ms: u64, disable_after_s: u64) {
    let w = &mut cfg.settings.webhooks;
    w.poll_interval_ms = 50;
    w.request_timeout_ms = request_timeout_ms;
    w.first_retry_ms = 100;
    w.max_retry_interval_ms = 500;
    w.retry_for_s = 600;
    w.disable_after_s = disable_after_s;
    w.concurrency_per_endpoint = 2;
}

async fn app_with(request_timeout_ms: u64, disable_after_s: u64) -> TestApp {
    spawn_app_configured(fast(), |cfg| {
        quick_webhooks(cfg, request_timeout_ms, disable_after_s)
    })
    .await
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.system.api_url);
    let mut req = match method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        "PATCH" => http.patch(url),
        "DELETE" => http.delete(url),
        other => panic!("{other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn admin(app: &TestApp) -> String {
    app.driver.token(Role::Admin, None)
}

/// Subscribe `url` to `types`; answers the endpoint's id and its secret.
async fn subscribe(app: &TestApp, url: &str, types: Value) -> (String, String) {
    let (status, body) = call(
        app,
        "POST",
        "/api/v1/webhook-endpoints",
        Some(&admin(app)),
        Some(json!({"url": url, "event_types": types, "description": "test receiver"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

/// The whole feed, paged by cursor, as the API serves it to `token`.
async fn feed(app: &TestApp, token: &str) -> Vec<Value> {
    let (mut after, mut all) = ("0".to_owned(), Vec::new());
    loop {
        let (status, page) = call(
            app,
            "GET",
            &format!("/api/v1/events?after={after}&limit=7"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        after = page["next_cursor"].as_str().unwrap().to_owned();
        if !page["has_more"].as_bool().unwrap() {
            return all;
        }
    }
}

async fn endpoint(app: &TestApp, id: &str) -> Value {
    let (status, body) = call(
        app,
        "GET",
        &format!("/api/v1/webhook-endpoints/{id}"),
        Some(&admin(app)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Each subject's events arrived (first 2xx receipt) in their sequence: increasing, and for an
/// endpoint of every type (`complete`) 1, 2, 3, … without a gap.
fn assert_in_order_per_subject(r: &Receiver, complete: bool) {
    let mut per: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for g in r.delivered() {
        per.entry(g.body["subject"].as_str().unwrap().to_owned())
            .or_default()
            .push(g.body["sequence"].as_i64().unwrap());
    }
    for (subject, seqs) in per {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{}: {subject} out of order: {seqs:?}",
            r.name
        );
        if complete {
            let want: Vec<i64> = (1..=seqs.len() as i64).collect();
            assert_eq!(seqs, want, "{}: {subject} has a gap", r.name);
        }
    }
}

/// What the test prints per receiver: its own count of what arrived and procure's attempts.
async fn report(app: &TestApp, r: &Receiver, endpoint_id: &str) -> String {
    let got = r.got();
    let c = app.system.store.attempt_counts(endpoint_id).await.unwrap();
    let unique: std::collections::HashSet<&str> = got.iter().map(|g| g.id.as_str()).collect();
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        r.name,
        c.sent,
        c.delivered,
        c.failed,
        c.retried,
        c.replayed,
        got.len(),
        unique.len()
    )
}

const REPORT_HEAD: &str = "| receiver | sent (attempts) | delivered (2xx) | failed | retried | replayed | requests received | distinct events received |\n|---|---|---|---|---|---|---|---|";

// ----- the tests ------------------------------------------------------------------------------

#[tokio::test]
async fn a_full_order_reaches_the_webhook_in_order_through_an_outage_and_matches_the_feed() {
    let app = app_with(1_000, 600).await;
    let mut rx = Receiver::start("storefront", Mode::Ok).await;
    let (endpoint_id, secret) = subscribe(&app, &rx.url(), json!(["*"])).await;
    rx.know_secrets(&[&secret]);

    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, _) = place(&app, idx).await;
    let store = app.system.store.clone();
    // While the order goes through: once two events are in, the receiver goes away until
    // procure has failed to deliver to it a few times, then comes back.
    let outage = async {
        eventually(Duration::from_secs(60), "the first deliveries", || {
            let n = rx.delivered().len();
            async move { (n >= 2).then_some(()) }
        })
        .await;
        rx.stop().await;
        let during = rx.got().len();
        eventually(
            Duration::from_secs(60),
            "failed attempts during the outage",
            || {
                let store = store.clone();
                let endpoint_id = endpoint_id.clone();
                async move {
                    let c = store.attempt_counts(&endpoint_id).await.unwrap();
                    (c.failed >= 3).then_some(())
                }
            },
        )
        .await;
        assert_eq!(rx.got().len(), during, "nothing arrives while it is down");
        rx.restart().await;
    };
    let (state, ()) = tokio::join!(drive_one(&app, &id, Script::HappyPath), outage);
    assert_eq!(state, OrderState::Completed);

    let admin_token = admin(&app);
    let customer = app.driver.order(&id).await.unwrap()["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Everything committed is delivered: the feed's last event too.
    let all = eventually(Duration::from_secs(60), "every event delivered", || {
        let (app, rx, token) = (&app, &rx, admin_token.clone());
        async move {
            let all = feed(app, &token).await;
            (rx.delivered().len() == all.len()).then_some(all)
        }
    })
    .await;
    let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for want in [
        "order.accepted",
        "order.payable",
        "order.paid",
        "order.purchased",
        "order.in_warehouse",
        "parcel.packed",
        "parcel.shipped",
        "parcel.delivered",
        "order.completed",
    ] {
        assert!(types.contains(&want), "{want} missing from {types:?}");
    }
    // The feed and the webhooks carry the same events: same ids, same bodies.
    let delivered: HashMap<String, Value> = rx
        .delivered()
        .into_iter()
        .map(|g| (g.id.clone(), g.body))
        .collect();
    for e in &all {
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            delivered.get(id),
            Some(e),
            "{id}: the webhook's body is the feed's event"
        );
    }
    assert_in_order_per_subject(&rx, true);
    rx.assert_every_signature_verified();
    // The customer's feed is the same events; another customer's is empty.
    let own = feed(&app, &app.driver.token(Role::Customer, Some(&customer))).await;
    assert_eq!(own, all);
    assert!(
        feed(
            &app,
            &app.driver.token(Role::Customer, Some("cust-stranger"))
        )
        .await
        .is_empty()
    );

    // A replay sends everything again, in order, with the same ids.
    let (status, replay) = call(
        &app,
        "POST",
        &format!("/api/v1/webhook-endpoints/{endpoint_id}/replay?since=1970-01-01T00:00:00Z"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(status, 202, "{replay}");
    assert_eq!(replay["queued"].as_u64().unwrap() as usize, all.len());
    eventually(Duration::from_secs(60), "the replay delivered", || {
        let (store, endpoint_id, n) = (store.clone(), endpoint_id.clone(), all.len() as i64);
        async move {
            let c = store.delivery_counts(&endpoint_id).await.unwrap();
            (c.delivered == n && c.pending == 0).then_some(())
        }
    })
    .await;
    let replayed: Vec<Got> = rx.got().into_iter().filter(|g| g.answered == 200).collect();
    for e in &all {
        let n = replayed.iter().filter(|g| g.body["id"] == e["id"]).count();
        assert!(n >= 2, "{} delivered {n} times", e["id"]);
    }
    rx.assert_every_signature_verified();
    let (status, attempts) = call(
        &app,
        "GET",
        &format!("/api/v1/webhook-endpoints/{endpoint_id}/attempts?limit=500"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let attempts = attempts["attempts"].as_array().unwrap();
    assert!(
        attempts
            .iter()
            .any(|a| a["replay"] == true && a["outcome"] == "delivered")
    );
    assert!(
        attempts.iter().any(|a| a["outcome"] == "failed"
            && a["status_code"].is_null()
            && a["error"].as_str().unwrap().contains("connect")),
        "the outage is listed"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["duration_ms"].as_i64().unwrap() >= 0)
    );

    let counts = app.system.store.attempt_counts(&endpoint_id).await.unwrap();
    assert!(
        counts.retried >= 3 && counts.replayed >= all.len() as i64,
        "{counts:?}"
    );
    println!(
        "\nA full order through a receiver outage, then a replay ({} events):\n\n{REPORT_HEAD}\n{}\n",
        all.len(),
        report(&app, &rx, &endpoint_id).await
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_failing_or_hanging_endpoint_does_not_hold_up_a_healthy_one() {
    // Requests time out after 3 s; an endpoint failing for 4 s is disabled.
    let app = app_with(3_000, 4).await;
    let healthy = Receiver::start("healthy", Mode::Ok).await;
    let failing = Receiver::start("answers 500", Mode::Fail).await;
    let hanging = Receiver::start("hangs", Mode::Hang).await;
    let types = json!(["order.accepted", "order.payable"]);
    let mut ids = Vec::new();
    for r in [&healthy, &failing, &hanging] {
        let (id, secret) = subscribe(&app, &r.url(), types.clone()).await;
        r.know_secrets(&[&secret]);
        ids.push(id);
    }
    const ORDERS: usize = 6;
    let started = Instant::now();
    for i in 0..ORDERS {
        place(&app, i).await;
    }
    let admin_token = admin(&app);
    let wanted = eventually(
        Duration::from_secs(30),
        "the healthy receiver has every event",
        || {
            let (app, healthy, token) = (&app, &healthy, admin_token.clone());
            async move {
                let all = feed(app, &token).await;
                (all.len() == 2 * ORDERS && healthy.delivered().len() == all.len()).then_some(all)
            }
        },
    )
    .await;
    let took = started.elapsed();
    // The hanging endpoint has 2 slots and 3 s per request: 12 events through it would take
    // 18 s if it held up the others.
    assert!(
        took < Duration::from_secs(12),
        "the healthy endpoint took {took:?}"
    );
    assert!(failing.delivered().is_empty() && hanging.delivered().is_empty());
    let c = app.system.store.attempt_counts(&ids[1]).await.unwrap();
    assert!(
        c.failed >= 1 && c.delivered == 0,
        "the failing one was tried meanwhile: {c:?}"
    );
    assert!(
        !hanging.got().is_empty(),
        "the hanging one was tried meanwhile"
    );
    assert_in_order_per_subject(&healthy, false);
    healthy.assert_every_signature_verified();

    // Failing for longer than `disable_after`: disabled, with the reason, visible.
    let disabled = eventually(
        Duration::from_secs(30),
        "the failing endpoint disabled",
        || {
            let (app, id) = (&app, ids[1].clone());
            async move {
                let e = endpoint(app, &id).await;
                (e["enabled"] == false).then_some(e)
            }
        },
    )
    .await;
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(
        reason.contains("every delivery failed") && reason.contains("HTTP 500"),
        "{reason}"
    );
    assert!(disabled["failing_since_ms"].as_i64().is_some());
    let (_, attempts) = call(
        &app,
        "GET",
        &format!("/api/v1/webhook-endpoints/{}/attempts", ids[1]),
        Some(&admin_token),
        None,
    )
    .await;
    let first = &attempts["attempts"].as_array().unwrap()[0];
    assert_eq!(
        (first["status_code"].as_i64(), first["error"].as_str()),
        (Some(500), Some("HTTP 500"))
    );
    let (_, attempts) = call(
        &app,
        "GET",
        &format!("/api/v1/webhook-endpoints/{}/attempts", ids[2]),
        Some(&admin_token),
        None,
    )
    .await;
    let first = &attempts["attempts"].as_array().unwrap()[0];
    assert_eq!(first["error"], "timed out after 3000 ms", "{first}");
    assert!(first["duration_ms"].as_i64().unwrap() >= 2_900);

    // Fixed and enabled again: everything it missed arrives, in order.
    failing.set_mode(Mode::Ok);
    let (status, body) = call(
        &app,
        "PATCH",
        &format!("/api/v1/webhook-endpoints/{}", ids[1]),
        Some(&admin_token),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        (status, &body["enabled"], &body["disabled_reason"]),
        (200, &json!(true), &Value::Null),
        "{body}"
    );
    eventually(
        Duration::from_secs(30),
        "the re-enabled endpoint caught up",
        || {
            let (n, want) = (failing.delivered().len(), wanted.len());
            async move { (n == want).then_some(()) }
        },
    )
    .await;
    assert_in_order_per_subject(&failing, false);
    failing.assert_every_signature_verified();
    hanging.assert_every_signature_verified();
    let mut table = format!(
        "\nIsolation: a healthy, a failing (500, then fixed) and a hanging receiver; the healthy one had all {} events after {took:?}:\n\n{REPORT_HEAD}\n",
        wanted.len()
    );
    for (r, id) in [&healthy, &failing, &hanging].into_iter().zip(&ids) {
        table.push_str(&report(&app, r, id).await);
        table.push('\n');
    }
    println!("{table}");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn during_a_rotations_overlap_both_secrets_sign_and_after_it_only_the_new_one() {
    let app = app_with(1_000, 600).await;
    let rx = Receiver::start("rotating", Mode::Ok).await;
    let (endpoint_id, old) =
        subscribe(&app, &rx.url(), json!(["order.accepted", "order.payable"])).await;
    rx.know_secrets(&[&old]);
    place(&app, 0).await;
    eventually(
        Duration::from_secs(30),
        "signed by the first secret",
        || {
            let n = rx.delivered().len();
            async move { (n == 2).then_some(()) }
        },
    )
    .await;
    assert!(rx.got().iter().all(|g| g.verified_by == [Some(0)]));

    let (status, rotated) = call(
        &app,
        "POST",
        &format!("/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret"),
        Some(&admin(&app)),
        Some(json!({"overlap_s": 4})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let until = rotated["previous_secret_until_ms"].as_i64().unwrap();
    rx.know_secrets(&[&old, &new]);
    place(&app, 1).await;
    eventually(Duration::from_secs(30), "deliveries in the overlap", || {
        let n = rx.delivered().len();
        async move { (n == 4).then_some(()) }
    })
    .await;
    // Past the overlap (a condition on the clock, not a sleep for the system).
    eventually(
        Duration::from_secs(10),
        "the overlap to end",
        || async move { (procure_domain::clock::now_ms() > until + 1_000).then_some(()) },
    )
    .await;
    place(&app, 2).await;
    eventually(
        Duration::from_secs(30),
        "deliveries after the overlap",
        || {
            let n = rx.delivered().len();
            async move { (n == 6).then_some(()) }
        },
    )
    .await;
    let (mut both, mut only_new) = (0, 0);
    for g in rx.got().iter().skip(2) {
        if g.timestamp * 1000 < until - 1_000 {
            // New first, then the old one: each verifies with its own secret.
            assert_eq!(g.verified_by, [Some(1), Some(0)], "{} in the overlap", g.id);
            both += 1;
        } else if g.timestamp * 1000 > until {
            assert_eq!(g.verified_by, [Some(1)], "{} after the overlap", g.id);
            only_new += 1;
        }
    }
    assert!(
        both >= 2 && only_new >= 2,
        "overlap {both}, after {only_new}"
    );
    rx.assert_every_signature_verified();
    // The old secret alone no longer verifies what is sent now.
    let last = rx.got().last().unwrap().clone();
    assert_eq!(
        verify_entry(
            std::slice::from_ref(&old),
            &last.id,
            &last.timestamp.to_string(),
            &last.raw,
            &last.signatures[0]
        ),
        None
    );
    println!(
        "\nRotation ({both} deliveries signed by both secrets, {only_new} by the new one only):\n\n{REPORT_HEAD}\n{}\n",
        report(&app, &rx, &endpoint_id).await
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn the_subscription_api_is_admin_only_shows_the_secret_once_and_refuses_bad_input() {
    let app = app_with(1_000, 600).await;
    let admin_token = admin(&app);
    let body = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["order.paid"]});
    for role in [
        Role::Customer,
        Role::Operator,
        Role::Warehouse,
        Role::Purchaser,
        Role::Codec,
    ] {
        let token = app
            .driver
            .token(role, (role == Role::Customer).then_some("cust-1"));
        for (method, path) in [
            ("POST", "/api/v1/webhook-endpoints"),
            ("GET", "/api/v1/webhook-endpoints"),
        ] {
            let (status, _) = call(&app, method, path, Some(&token), Some(body.clone())).await;
            assert_eq!(status, 403, "{role:?} {method} {path}");
        }
    }
    assert_eq!(
        call(&app, "GET", "/api/v1/webhook-endpoints", None, None)
            .await
            .0,
        401
    );

    // The secret: in the creation's answer only.
    let (status, created) = call(
        &app,
        "POST",
        "/api/v1/webhook-endpoints",
        Some(&admin_token),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && B64.decode(&secret[6..]).unwrap().len() == 32);
    let id = created["id"].as_str().unwrap();
    for path in [
        "/api/v1/webhook-endpoints".to_owned(),
        format!("/api/v1/webhook-endpoints/{id}"),
    ] {
        let (_, v) = call(&app, "GET", &path, Some(&admin_token), None).await;
        let text = v.to_string();
        assert!(
            !text.contains("whsec_") && !text.contains(&secret[6..]),
            "{path}: {text}"
        );
        assert!(!text.contains("sealed"), "{path}: {text}");
    }
    let stored = app.system.store.webhook_endpoint(id).await.unwrap();
    assert!(
        !stored.secret_sealed.contains(&secret[6..]),
        "sealed at rest"
    );

    // Bad input: each refused with its reason.
    for (bad, field) in [
        (
            json!({"url": "ftp://shop.example/h", "event_types": ["order.paid"]}),
            "url",
        ),
        (
            json!({"url": "https://u:p@shop.example/h", "event_types": ["order.paid"]}),
            "url",
        ),
        (
            json!({"url": "https://shop.example/h", "event_types": ["order.exploded"]}),
            "event_types[0]",
        ),
        (
            json!({"url": "https://shop.example/h", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "https://shop.example/h\n", "event_types": ["order.paid"]}),
            "url",
        ),
    ] {
        let (status, v) = call(
            &app,
            "POST",
            "/api/v1/webhook-endpoints",
            Some(&admin_token),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {v}");
        assert!(
            v["error"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["field"] == field),
            "{bad}: {v}"
        );
    }
    let (status, v) = call(
        &app,
        "POST",
        "/api/v1/webhook-endpoints",
        Some(&admin_token),
        Some(json!({"url": "https://a.example", "event_types": ["*"], "secret": "mine"})),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );
    let (status, v) = call(
        &app,
        "POST",
        &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
        Some(&admin_token),
        Some(json!({"overlap_s": 9_999_999})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    for (path, code) in [
        (
            format!("/api/v1/webhook-endpoints/{id}/replay"),
            "invalid_since",
        ),
        (
            format!("/api/v1/webhook-endpoints/{id}/replay?since=yesterday"),
            "invalid_since",
        ),
    ] {
        let (status, v) = call(&app, "POST", &path, Some(&admin_token), None).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{path}: {v}"
        );
    }
    for (query, code) in [
        ("after=abc", "invalid_cursor"),
        ("after=-1", "invalid_cursor"),
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("type=order.exploded", "invalid_type"),
    ] {
        let (status, v) = call(
            &app,
            "GET",
            &format!("/api/v1/events?{query}"),
            Some(&admin_token),
            None,
        )
        .await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {v}"
        );
    }
    let (status, v) = call(
        &app,
        "GET",
        &format!("/api/v1/webhook-endpoints/{id}/attempts?limit=x"),
        Some(&admin_token),
        None,
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_limit"))
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/v1/webhook-endpoints/we_none",
            Some(&admin_token),
            None
        )
        .await
        .0,
        404
    );
    // The feed and notifications: staff and the customer themself.
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/v1/events",
            Some(&app.driver.token(Role::Warehouse, None)),
            None
        )
        .await
        .0,
        403
    );
    let own = app.driver.token(Role::Customer, Some("cust-1"));
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/v1/customers/cust-1/notifications",
            Some(&own),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/v1/customers/cust-2/notifications",
            Some(&own),
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &app,
            "GET",
            "/api/v1/customers/cust-2/notifications",
            Some(&app.driver.token(Role::Operator, None)),
            None
        )
        .await
        .0,
        200
    );

    // PATCH and DELETE.
    let (status, v) = call(
        &app,
        "PATCH",
        &format!("/api/v1/webhook-endpoints/{id}"),
        Some(&admin_token),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (status, v["disabled_reason"].as_str()),
        (200, Some("disabled by an admin")),
        "{v}"
    );
    assert_eq!(
        call(
            &app,
            "DELETE",
            &format!("/api/v1/webhook-endpoints/{id}"),
            Some(&admin_token),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        call(
            &app,
            "GET",
            &format!("/api/v1/webhook-endpoints/{id}"),
            Some(&admin_token),
            None
        )
        .await
        .0,
        404
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_price_change_and_the_cancellation_after_it_reach_the_customer() {
    let app = app_with(1_000, 600).await;
    let rx = Receiver::start("notifications", Mode::Ok).await;
    let (endpoint_id, secret) = subscribe(
        &app,
        &rx.url(),
        json!([
            "price_change.awaiting_decision",
            "order.cancelled",
            "refund.issued"
        ]),
    )
    .await;
    rx.know_secrets(&[&secret]);
    let (id, order, _) = order_facing_a_price_rise(&app).await;
    let customer = order["customer_id"].as_str().unwrap().to_owned();
    let change = &order["price_changes"][0];
    let path = format!("/api/v1/customers/{customer}/notifications");
    let own = app.driver.token(Role::Customer, Some(&customer));
    let notes = eventually(
        Duration::from_secs(30),
        "the price change notification",
        || {
            let (app, path, own) = (&app, path.clone(), own.clone());
            async move {
                let (_, v) = call(app, "GET", &path, Some(&own), None).await;
                let events = v["events"].as_array().cloned().unwrap_or_default();
                (!events.is_empty()).then_some(events)
            }
        },
    )
    .await;
    let pc = &notes[0];
    assert_eq!(pc["type"], "price_change.awaiting_decision");
    assert_eq!(pc["data"]["price_change_id"], change["id"]);
    assert_eq!(pc["data"]["payment_intent_id"], change["intent_id"]);
    assert_eq!(pc["data"]["supplement"], change["amount"]);
    assert_eq!(pc["data"]["decide_by_ms"], change["due_at_ms"]);
    assert_eq!(pc["data"]["sku"], order["lines"][0]["sku"]);

    let (status, _) = app
        .driver
        .answer_price_change(&id, change["id"].as_str().unwrap(), "decline")
        .await
        .unwrap();
    assert_eq!(status, 202);
    wait_state(&app, &id, OrderState::Refunded).await;
    let notes = eventually(
        Duration::from_secs(30),
        "the cancellation notification",
        || {
            let (app, path, own) = (&app, path.clone(), own.clone());
            async move {
                let (_, v) = call(app, "GET", &path, Some(&own), None).await;
                let events = v["events"].as_array().cloned().unwrap_or_default();
                (events.len() == 2).then_some(events)
            }
        },
    )
    .await;
    let cancelled = &notes[1];
    assert_eq!(cancelled["type"], "order.cancelled");
    assert_eq!(cancelled["data"]["state"], "Refunded");
    assert_eq!(
        cancelled["data"]["refunded"], order["total"],
        "refunded in full"
    );
    assert!(
        cancelled["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    eventually(Duration::from_secs(30), "the webhook has them too", || {
        let n = rx.delivered().len();
        async move { (n == 3).then_some(()) }
    })
    .await;
    let types: Vec<Value> = rx
        .delivered()
        .iter()
        .map(|g| g.body["type"].clone())
        .collect();
    assert_eq!(
        types,
        [
            json!("price_change.awaiting_decision"),
            json!("refund.issued"),
            json!("order.cancelled")
        ]
    );
    assert_in_order_per_subject(&rx, false);
    rx.assert_every_signature_verified();
    println!(
        "\nNotifications (price change, refund, cancellation):\n\n{REPORT_HEAD}\n{}\n",
        report(&app, &rx, &endpoint_id).await
    );
    app.system.stop().await.unwrap();
}
