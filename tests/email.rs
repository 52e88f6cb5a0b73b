//! The email channel on a real system (dev server, SQLite file, sandbox, API, worker), sending
//! to an SMTP catcher this test runs on loopback (`support::smtp`, no external binary).
//!
//! - Storage: a stored order's reminder, its expiry and the storage-extension charge each reach
//!   the customer as one email (one per event, by `Message-ID`) with the items, the amounts
//!   formatted from minor units, the deadline in UTC and the storefront's link; a customer
//!   without a contact gets none (the delivery is recorded as skipped). The contact API checks
//!   the address (a 422 naming `email` without repeating it), seals it and serves it only to
//!   its customer and staff.
//! - A price change and the cancellation after it: the catcher is stopped before the
//!   cancellation (connection refused, the attempt recorded) and started again; the message is
//!   delivered once.
//! - A catcher refusing every message (554) leaves the delivery `failed` after the bounded
//!   attempts, listed for admins.
//!
//! In every test the address appears neither in the process's logs (captured at debug level)
//! nor in any event payload. `cargo test --test email -- --nocapture` prints each email caught.

mod support;

use procure_api::{OrderTimings, auth::Role};
use procure_domain::{Money, OrderState, email::utc};
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};
use support::{
    smtp::{Caught, SmtpCatcher, SmtpMode},
    *,
};

const ACTION: &str = "https://shop.example/orders/{order_id}";

// ----- the process's logs, captured ----------------------------------------------------------

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

/// Every log line of this test process so far (debug level, the sandbox's excluded: it is the
/// outside world).
fn logs() -> String {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    let captured = LOGS.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,procure_sandbox=off,h2=info,hyper=info,hyper_util=info,tower=info,sqlx=info,temporalio_sdk_core=info,temporalio_client=info",
            ))
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .try_init();
        captured
    });
    String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned()
}

// ----- the system -----------------------------------------------------------------------------

async fn app_with_email(
    catcher: &SmtpCatcher,
    max_attempts: u32,
    timings: OrderTimings,
) -> TestApp {
    logs();
    let url = catcher.url();
    spawn_app_configured(timings, move |cfg| {
        let e = &mut cfg.settings.email;
        e.smtp_url = Some(url);
        e.from = Some("Procure Shop <orders@shop.example>".into());
        e.tls = "none".into();
        e.action_url_base = Some(ACTION.into());
        e.max_attempts = max_attempts;
        e.first_retry_ms = 200;
        e.max_retry_interval_ms = 1_000;
        e.poll_interval_ms = 100;
        e.send_timeout_ms = 5_000;
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
        "PUT" => http.put(url),
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

fn customer(app: &TestApp, id: &str) -> String {
    app.driver.token(Role::Customer, Some(id))
}

/// The customer sets their contact; answers the contact as served.
async fn set_contact(app: &TestApp, id: &str, email: &str) -> Value {
    let (status, body) = call(
        app,
        "PUT",
        &format!("/api/v1/customers/{id}/contact"),
        Some(&customer(app, id)),
        Some(json!({"email": email, "email_notifications": true, "locale": "en"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The admin's list of email deliveries of `status`.
async fn deliveries(app: &TestApp, status: &str) -> Vec<Value> {
    let (code, body) = call(
        app,
        "GET",
        &format!("/api/v1/admin/email-deliveries?status={status}"),
        Some(&app.driver.token(Role::Admin, None)),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// The customer's notification events, oldest first.
async fn notifications(
    app: &TestApp,
    customer_id: &str,
) -> Vec<procure_store::events::StoredEvent> {
    app.system
        .store
        .customer_notifications(customer_id, 0, 500)
        .await
        .unwrap()
        .events
}

/// The email of event `id` (by its `Message-ID`), once it is there; exactly one.
async fn email_of(catcher: &SmtpCatcher, event_id: i64) -> Caught {
    let want = format!("<evt_{event_id}@shop.example>");
    let found = eventually(
        Duration::from_secs(60),
        &format!("the email of event {event_id}"),
        || {
            let got: Vec<Caught> = catcher
                .messages()
                .into_iter()
                .filter(|m| m.header("message-id").as_deref() == Some(want.as_str()))
                .collect();
            async move { (!got.is_empty()).then_some(got) }
        },
    )
    .await;
    assert_eq!(found.len(), 1, "one email per event: {found:?}");
    found.into_iter().next().unwrap()
}

fn money(v: &Value) -> Money {
    serde_json::from_value(v.clone()).unwrap()
}

fn show(label: &str, m: &Caught) {
    let body = m.body();
    let head: Vec<&str> = body.lines().take(12).collect();
    println!(
        "\n--- {label}: to {:?}\nSubject: {}\n{}\n",
        m.rcpt_to,
        m.subject(),
        head.join("\n")
    );
}

/// The address is in no event payload and in no log line.
async fn assert_private(app: &TestApp, address: &str) {
    let page = app
        .system
        .store
        .events_after(procure_store::events::Reader::All, 0, 500, None)
        .await
        .unwrap();
    assert!(!page.events.is_empty());
    for e in &page.events {
        assert!(
            !e.data
                .to_string()
                .to_ascii_lowercase()
                .contains(&address.to_ascii_lowercase()),
            "the address is in event {}: {}",
            e.id,
            e.data
        );
    }
    let logs = logs();
    assert!(
        logs.contains("customer contact set"),
        "the logs were captured"
    );
    assert!(!logs.contains(address), "the address is in the logs");
}

// ----- order moves (as tests/fulfilment.rs makes them) ----------------------------------------

async fn order_for(app: &TestApp, idx: usize, customer_id: &str) -> String {
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[idx]["sku"].as_str().unwrap();
    let quote: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/quotes", app.system.api_url))
        .bearer_auth(app.driver.token(Role::Operator, None))
        .json(
            &json!({"items": [{"sku": sku, "quantity": 1}], "destination_country": "GB",
            "currency": "GBP", "guaranteed": false}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = app
        .driver
        .place_order(
            quote["quote_id"].as_str().expect("quote"),
            customer_id,
            "GB",
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
        .unwrap();
    order["id"].as_str().unwrap().to_owned()
}

async fn into_warehouse(app: &TestApp, id: &str) -> Value {
    wait_state(app, id, OrderState::InboundTransit).await;
    app.driver.scan_in(id).await.unwrap();
    wait_state(app, id, OrderState::InWarehouse).await
}

// ----- the tests ------------------------------------------------------------------------------

#[tokio::test]
async fn storage_messages_and_the_extension_charge_are_emailed_to_the_customer_only() {
    let catcher = SmtpCatcher::start(SmtpMode::Accept).await;
    let app = app_with_email(
        &catcher,
        5,
        OrderTimings {
            storage_free: Duration::from_secs(4),
            storage_reminder: Duration::from_secs(3),
            storage_grace: Duration::from_secs(30),
            ..fast()
        },
    )
    .await;
    let address = "Ana.Store+orders@Mail.Example.com";
    let stored = "Ana.Store+orders@mail.example.com";

    // The contact: checked, private to its customer and staff, sealed at rest.
    let path = "/api/v1/customers/cust-mail/contact";
    let (status, body) = call(
        &app,
        "PUT",
        path,
        Some(&customer(&app, "cust-mail")),
        Some(json!({"email": "ana at mail.example.com", "email_notifications": true})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "email", "{body}");
    assert!(
        !body.to_string().contains("ana at"),
        "the refusal repeats no address: {body}"
    );
    let (status, _) = call(
        &app,
        "PUT",
        path,
        Some(&customer(&app, "cust-other")),
        Some(json!({"email": address, "email_notifications": true})),
    )
    .await;
    assert_eq!(status, 403, "a customer sets only their own contact");
    let (status, _) = call(&app, "GET", path, Some(&customer(&app, "cust-mail")), None).await;
    assert_eq!(status, 404, "no contact yet");
    let set = set_contact(&app, "cust-mail", address).await;
    assert_eq!(set["email"], stored, "the domain is lower-cased");
    assert_eq!(set["email_notifications"], true);
    assert_eq!(set["locale"], "en");
    let (status, got) = call(
        &app,
        "GET",
        path,
        Some(&app.driver.token(Role::Operator, None)),
        None,
    )
    .await;
    assert_eq!((status, &got["email"]), (200, &json!(stored)));
    let (status, _) = call(&app, "GET", path, Some(&customer(&app, "cust-other")), None).await;
    assert_eq!(status, 403);
    let row = app.system.store.contact("cust-mail").await.unwrap();
    assert!(
        !row.email_sealed
            .to_ascii_lowercase()
            .contains("mail.example"),
        "sealed at rest"
    );

    // Two customers' goods run out of free storage; only one gave a contact.
    let idx = sku_cheapest_on(&app, "1688").await;
    let sku = app.driver.catalogue().await.unwrap()[idx]["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let keep = order_for(&app, idx, "cust-mail").await;
    let other = order_for(&app, idx, "cust-nomail").await;
    into_warehouse(&app, &keep).await;
    into_warehouse(&app, &other).await;
    wait_state(&app, &keep, OrderState::AwaitingCustomer).await;
    assert_eq!(
        app.driver
            .storage_choice(&keep, json!({"choice": "extend", "days": 30}))
            .await
            .unwrap(),
        202
    );
    let due = eventually(
        Duration::from_secs(60),
        "the storage charge's event",
        || {
            let app = &app;
            async move {
                notifications(app, "cust-mail")
                    .await
                    .into_iter()
                    .find(|e| e.kind == procure_domain::events::EventType::ChargeDue)
            }
        },
    )
    .await;

    // Every notification of the customer is one email to their address.
    let events = notifications(&app, "cust-mail").await;
    let mut seen = Vec::new();
    for e in &events {
        let m = email_of(&catcher, e.id).await;
        assert_eq!(m.rcpt_to, [stored], "{}", e.kind);
        assert_eq!(m.mail_from, "orders@shop.example");
        assert!(m.header("from").unwrap().contains("orders@shop.example"));
        seen.push((e.kind, m));
    }
    let reminder_event = events
        .iter()
        .find(|e| e.kind == procure_domain::events::EventType::StorageReminder)
        .expect("a reminder");
    let (_, reminder) = seen
        .iter()
        .find(|(k, _)| *k == procure_domain::events::EventType::StorageReminder)
        .unwrap();
    let goods = &reminder_event.data["orders"][0];
    let until = goods["free_storage_until_ms"].as_i64().unwrap();
    assert_eq!(
        reminder.subject(),
        format!(
            "Free storage ends {} for your stored goods",
            utc(reminder_event.data["first_deadline_ms"].as_i64().unwrap())
        )
    );
    let text = reminder.body();
    for want in [
        format!("Order {keep}"),
        format!("- line 1: {sku} x 1"),
        format!("Free storage until: {}", utc(until)),
        format!(
            "Extension: {} per day",
            money(&goods["extension_fee_per_day"])
        ),
        format!("Open your order: https://shop.example/orders/{keep}"),
    ] {
        assert!(text.contains(&want), "{want:?} in the reminder:\n{text}");
    }
    show("storage.reminder", reminder);

    let (_, charge) = seen
        .iter()
        .find(|(k, _)| *k == procure_domain::events::EventType::ChargeDue)
        .unwrap();
    let amount = money(&due.data["amount"]);
    assert_eq!(
        charge.subject(),
        format!("Payment due: {amount} for the storage extension")
    );
    let text = charge.body();
    for want in [
        format!("a payment of {amount} is due for the storage extension"),
        format!("Orders: {keep}"),
        format!("Charge: {}", due.data["charge_id"].as_str().unwrap()),
        format!(
            "Payment: {}",
            due.data["payment_intent_id"].as_str().unwrap()
        ),
        format!("Open your order: https://shop.example/orders/{keep}"),
    ] {
        assert!(text.contains(&want), "{want:?} in the charge:\n{text}");
    }
    show("charge.due", charge);
    if let Some((_, expiring)) = seen
        .iter()
        .find(|(k, _)| *k == procure_domain::events::EventType::StorageExpiring)
    {
        assert!(expiring.subject().contains(&keep));
        show("storage.expiring", expiring);
    }

    // The customer without a contact: their reminder is recorded as skipped, and nothing
    // was ever sent to anyone but the customer who asked.
    let theirs = eventually(
        Duration::from_secs(60),
        "the other customer's reminder",
        || {
            let app = &app;
            async move {
                notifications(app, "cust-nomail")
                    .await
                    .into_iter()
                    .find(|e| e.kind == procure_domain::events::EventType::StorageReminder)
            }
        },
    )
    .await;
    let skipped = eventually(Duration::from_secs(30), "the skipped delivery", || {
        let app = &app;
        let id = format!("evt_{}", theirs.id);
        async move {
            deliveries(app, "skipped")
                .await
                .into_iter()
                .find(|d| d["event_id"] == json!(id))
        }
    })
    .await;
    assert_eq!(skipped["customer_id"], "cust-nomail");
    assert_eq!(skipped["attempts"], 0, "not tried");
    assert_eq!(skipped["last_error"], "the customer has no contact");
    assert!(
        catcher.messages().iter().all(|m| m.rcpt_to == [stored]),
        "only the customer with a contact got email"
    );
    assert_private(&app, stored).await;

    // Removed, the contact is gone.
    let (status, _) = call(
        &app,
        "DELETE",
        path,
        Some(&customer(&app, "cust-mail")),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, "GET", path, Some(&customer(&app, "cust-mail")), None).await;
    assert_eq!(status, 404);
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_price_change_and_the_cancellation_are_emailed_and_a_stopped_server_delays_only() {
    let catcher = SmtpCatcher::start(SmtpMode::Accept).await;
    let app = app_with_email(&catcher, 50, fast()).await;
    // The demo customer `order_facing_a_price_rise` orders for.
    let idx = sku_cheapest_on(&app, "1688").await;
    let customer_id = format!("cust-{}", idx % 7);
    let address = format!("{customer_id}.buyer@shop-customer.example");
    set_contact(&app, &customer_id, &address).await;

    let (id, order, _) = order_facing_a_price_rise(&app).await;
    assert_eq!(order["customer_id"], json!(customer_id));
    let change = &order["price_changes"][0];
    let event = eventually(Duration::from_secs(30), "the price change event", || {
        let (app, c) = (&app, customer_id.clone());
        async move { notifications(app, &c).await.into_iter().next() }
    })
    .await;
    assert_eq!(
        event.kind,
        procure_domain::events::EventType::PriceChangeAwaitingDecision
    );
    let m = email_of(&catcher, event.id).await;
    assert_eq!(m.rcpt_to, [address.as_str()]);
    let d = &event.data;
    let supplement = money(&d["supplement"]);
    let deadline = utc(d["decide_by_ms"].as_i64().unwrap());
    assert_eq!(
        m.subject(),
        format!("Price change on order {id}: accept {supplement} or decline by {deadline}")
    );
    let text = m.body();
    for want in [
        format!(
            "- line 1: {} x {}",
            d["sku"].as_str().unwrap(),
            d["quantity"]
        ),
        format!("Unit price paid: {}", money(&d["paid_unit_price"])),
        format!("Unit price now:  {}", money(&d["new_unit_price"])),
        format!("To accept, pay:  {supplement}"),
        format!("Decide by {deadline}"),
        format!("Price change: {}", change["id"].as_str().unwrap()),
        format!(
            "Payment to accept: {}",
            change["intent_id"].as_str().unwrap()
        ),
        format!("Open your order: https://shop.example/orders/{id}"),
    ] {
        assert!(
            text.contains(&want),
            "{want:?} in the price change:\n{text}"
        );
    }
    assert_eq!(supplement, money(&change["amount"]));
    show("price_change.awaiting_decision", &m);

    // The server goes away; the customer declines; the cancellation's attempts fail.
    catcher.stop().await;
    let (status, _) = app
        .driver
        .answer_price_change(&id, change["id"].as_str().unwrap(), "decline")
        .await
        .unwrap();
    assert_eq!(status, 202);
    wait_state(&app, &id, OrderState::Refunded).await;
    let cancelled = eventually(Duration::from_secs(30), "the cancellation event", || {
        let (app, c) = (&app, customer_id.clone());
        async move {
            notifications(app, &c)
                .await
                .into_iter()
                .find(|e| e.kind == procure_domain::events::EventType::OrderCancelled)
        }
    })
    .await;
    let evt = format!("evt_{}", cancelled.id);
    let failing = eventually(Duration::from_secs(30), "a refused attempt", || {
        let (app, evt) = (&app, evt.clone());
        async move {
            deliveries(app, "pending")
                .await
                .into_iter()
                .find(|d| d["event_id"] == json!(evt) && d["attempts"].as_i64() >= Some(1))
        }
    })
    .await;
    let error = failing["last_error"].as_str().unwrap();
    assert!(!error.contains(&address), "{error}");
    assert_eq!(failing["attempt_log"][0]["outcome"], "failed", "{failing}");
    println!("while the server was down: {error}");

    // Back: the message goes out, once.
    catcher.restart().await;
    let m = email_of(&catcher, cancelled.id).await;
    let sent = eventually(Duration::from_secs(30), "the delivery sent", || {
        let (app, evt) = (&app, evt.clone());
        async move {
            deliveries(app, "sent")
                .await
                .into_iter()
                .find(|d| d["event_id"] == json!(evt))
        }
    })
    .await;
    assert!(sent["attempts"].as_i64().unwrap() >= 2, "{sent}");
    assert_eq!(
        catcher
            .messages()
            .iter()
            .filter(|c| c.header("message-id") == Some(format!("<{evt}@shop.example>")))
            .count(),
        1,
        "delivered once"
    );
    let c = &cancelled.data;
    assert_eq!(
        m.subject(),
        format!("Order {id} was cancelled and refunded")
    );
    let text = m.body();
    for want in [
        format!("Reason: {}", c["reason"].as_str().unwrap()),
        format!("- line 1: {} x ", c["items"][0]["sku"].as_str().unwrap()),
        format!("Order total: {}", money(&c["total"])),
        format!("Refunded:    {}", money(&c["refunded"])),
        format!("Open your order: https://shop.example/orders/{id}"),
    ] {
        assert!(
            text.contains(&want),
            "{want:?} in the cancellation:\n{text}"
        );
    }
    show("order.cancelled", &m);
    assert_private(&app, &address).await;
    app.system.stop().await.unwrap();
}

/// A server answering "try again later" (451) to every message is asked `max_attempts` times,
/// then the delivery is `failed`, and so is one refusing our credentials (535: fixed by an
/// operator, not by the message); one refusing the message for good (554) is asked once.
/// Either way the order is untouched and admins see the failure.
#[tokio::test]
async fn a_deferring_server_is_retried_within_the_bound_and_a_refusing_one_asked_once() {
    for (mode, code, attempts) in [
        (SmtpMode::Defer, "451", 3),
        (SmtpMode::Unauthorised, "535", 3),
        (SmtpMode::Refuse, "554", 1),
    ] {
        let catcher = SmtpCatcher::start(mode).await;
        let app = app_with_email(&catcher, 3, fast()).await;
        let idx = sku_cheapest_on(&app, "1688").await;
        let customer_id = format!("cust-{}", idx % 7);
        let address = format!("{customer_id}.refused@shop-customer.example");
        set_contact(&app, &customer_id, &address).await;
        let (id, _, _) = order_facing_a_price_rise(&app).await;
        let failed = eventually(Duration::from_secs(60), "the failed delivery", || {
            let app = &app;
            async move { deliveries(app, "failed").await.into_iter().next() }
        })
        .await;
        assert_eq!(failed["event_type"], "price_change.awaiting_decision");
        assert_eq!(failed["customer_id"], json!(customer_id));
        assert_eq!(failed["attempts"], attempts, "{code}: {failed}");
        let log = failed["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), attempts, "every attempt recorded: {failed}");
        for a in log {
            assert_eq!(a["outcome"], "failed");
            assert!(a["error"].as_str().unwrap().contains(code), "{a}");
        }
        assert_eq!(
            catcher.refused(),
            attempts,
            "{code}: every attempt reached the server, and no more"
        );
        assert!(catcher.messages().is_empty());
        // The order itself is untouched: email is a side channel.
        let order = app.driver.order(&id).await.unwrap();
        assert_eq!(order["state"], "AwaitingCustomer");
        let (code_seen, body) = call(
            &app,
            "GET",
            "/api/v1/admin/email-deliveries?status=failed",
            Some(&app.driver.token(Role::Operator, None)),
            None,
        )
        .await;
        assert_eq!(code_seen, 403, "admins only: {body}");
        println!(
            "{code}: given up after {attempts}: {}",
            failed["last_error"]
        );
        assert_private(&app, &address).await;
        app.system.stop().await.unwrap();
    }
}
