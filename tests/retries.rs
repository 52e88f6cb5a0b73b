//! Nothing retries forever out of sight. The outbox, on the real dev server: a signal for an
//! order whose workflow has finished is dead-lettered at its first attempt with the server's
//! reason (not retried every few seconds), operators see it at `/api/v1/admin/outbox/dead` and
//! retry or discard it; a transient failure (Temporal unreachable) stops at the attempt bound
//! and a retried dead letter is delivered once Temporal answers. Adapters, against the
//! sandbox's Stripe: the refunds and lookups Stripe refuses for good (`amount_too_large`,
//! `charge_already_refunded`, an unknown intent) are non-retryable typed failures; rate limits
//! and server errors stay retryable. The dispatcher's payments lane opens each accepted order's
//! intent once, and cancels at the provider one opened as the order closed its payment.

mod support;

use procure::demo::Script;
use procure_adapters::{HttpConfig, Payments, PaymentsConfig, adapter_err};
use procure_api::{
    auth::Role,
    dispatcher::{DEFAULT_MAX_ATTEMPTS, Dispatcher, patience},
};
use procure_domain::OrderState;
use procure_domain::{Currency, Money};
use procure_store::{
    Store,
    outbox::{OrderSignal, OutboxMessage},
};
use procure_temporal::TemporalLink;
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use support::*;
use temporalio_sdk::activities::ActivityError;

async fn call(app: &TestApp, method: &str, path: &str, role: Role) -> (u16, Value) {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", app.system.api_url);
    let req = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    let customer = (role == Role::Customer).then_some("cust-0");
    let resp = req
        .bearer_auth(app.driver.token(role, customer))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signal_for_a_finished_workflow_is_dead_lettered_and_operators_retry_or_discard_it() {
    let app = spawn_app(fast()).await;
    let (id, _) = place(&app, 0).await;
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    eventually(Duration::from_secs(30), "the outbox to drain", || async {
        (app.system.store.outbox_pending().await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(app.system.store.outbox_dead_count().await.unwrap(), 0);

    // A late operator action for the finished order, queued like any other.
    let reason = "late cancel from a customer called Jane Roe";
    app.system
        .store
        .enqueue(
            &id,
            &OutboxMessage::SignalOrder(OrderSignal::CancelOrder(reason.into())),
        )
        .await
        .unwrap();
    let list = eventually(Duration::from_secs(30), "the dead letter", || async {
        let (status, list) = call(&app, "GET", "/api/v1/admin/outbox/dead", Role::Operator).await;
        assert_eq!(status, 200, "{list}");
        (list["dead_count"] == 1).then_some(list)
    })
    .await;
    let dead = &list["dead"][0];
    assert_eq!(dead["kind"], "signal");
    assert_eq!(dead["subject_id"], id.as_str());
    assert_eq!(dead["signal"], "cancel_order");
    assert_eq!(dead["attempts"], 1, "dead at its first attempt: {dead}");
    let last_error = dead["last_error"].as_str().unwrap();
    assert!(
        last_error.contains("already completed"),
        "the server's reason: {last_error}"
    );
    assert!(
        !list.to_string().contains("Jane"),
        "no payload in the list: {list}"
    );
    assert_eq!(list["pending_count"], 0);
    let row = dead["id"].as_i64().unwrap();
    assert!(app.system.store.outbox_due(100).await.unwrap().is_empty());

    // Roles: operators (and admins) only; ids that name nothing are structured 404s.
    for role in [Role::Customer, Role::Warehouse, Role::Purchaser] {
        let (status, body) = call(&app, "GET", "/api/v1/admin/outbox/dead", role).await;
        assert_eq!(status, 403, "{role:?}: {body}");
    }
    for path in [
        "/api/v1/admin/outbox/dead/999999/retry",
        "/api/v1/admin/outbox/dead/abc/discard",
        "/api/v1/admin/outbox/dead/-1/retry",
    ] {
        let (status, body) = call(&app, "POST", path, Role::Operator).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    let (status, body) = call(
        &app,
        "GET",
        "/api/v1/admin/outbox/dead?limit=0",
        Role::Admin,
    )
    .await;
    assert_eq!(status, 422, "{body}");

    // Retry: back to pending with attempts from zero; the server refuses it again, so it is
    // dead again after exactly one more attempt.
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/outbox/dead/{row}/retry"),
        Role::Operator,
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("pending")),
        "{body}"
    );
    let again = eventually(
        Duration::from_secs(30),
        "the retried row to fail",
        || async {
            let d = app.system.store.outbox_dead_letter(row).await.ok()?;
            (d.dead_at_ms > 0).then_some(d)
        },
    )
    .await;
    assert_eq!(again.attempts, 1, "attempts were reset: {again:?}");

    // Discard: off the list for good; a second discard changes nothing; no retry after it.
    let path = format!("/api/v1/admin/outbox/dead/{row}/discard");
    for _ in 0..2 {
        let (status, body) = call(&app, "POST", &path, Role::Operator).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("discarded")),
            "{body}"
        );
    }
    let (_, list) = call(&app, "GET", "/api/v1/admin/outbox/dead", Role::Operator).await;
    assert_eq!(
        (
            list["dead_count"].as_i64(),
            list["dead"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (status, body) = call(
        &app,
        "POST",
        &format!("/api/v1/admin/outbox/dead/{row}/retry"),
        Role::Operator,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_dead")),
        "{body}"
    );
    assert_eq!(app.system.store.outbox_pending().await.unwrap(), 0);
    // The order itself is untouched by the late signal.
    assert_eq!(app.driver.order(&id).await.unwrap()["state"], "Completed");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_transient_failure_stops_at_the_bound_and_a_retried_dead_letter_is_delivered() {
    // The default bound rides out an hour of Temporal being away.
    assert!(patience(DEFAULT_MAX_ATTEMPTS) >= Duration::from_secs(3600));

    let dir =
        std::env::temp_dir().join(format!("procure-outbox-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("app.db").display()))
        .await
        .unwrap();
    // Nothing listens here: every delivery is "Temporal unreachable".
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let task_queue = format!("outbox-{}", uuid::Uuid::new_v4().simple());
    let dispatcher = |address: String| Dispatcher {
        store: store.clone(),
        temporal: Arc::new(TemporalLink::new(
            address,
            "default",
            procure_temporal::EncryptionCodec::development(),
        )),
        notify: Default::default(),
        task_queue: task_queue.clone(),
        timings: fast(),
        max_attempts: 3,
        payments: None,
    };
    let order_id = format!("outbox-{}", uuid::Uuid::new_v4().simple());
    store
        .enqueue(&order_id, &OutboxMessage::StartOrder {})
        .await
        .unwrap();
    let row = store.outbox_due(10).await.unwrap()[0].id;

    let down = dispatcher(closed);
    let dead = eventually(Duration::from_secs(60), "the bound", || async {
        assert_eq!(down.pass().await.unwrap(), 0);
        store
            .outbox_dead_letter(row)
            .await
            .ok()
            .filter(|d| d.dead_at_ms > 0)
    })
    .await;
    assert_eq!(dead.attempts, 3, "{dead:?}");
    assert!(dead.last_error.contains("Temporal unreachable"), "{dead:?}");
    // Dead rows are never picked again.
    for _ in 0..3 {
        assert_eq!(down.pass().await.unwrap(), 0);
    }
    assert_eq!(store.outbox_dead_letter(row).await.unwrap().attempts, 3);
    assert_eq!(store.outbox_pending().await.unwrap(), 0);
    assert_eq!(store.outbox_dead_count().await.unwrap(), 1);

    // Temporal is back (the dev server): the operator's retry is delivered.
    store.outbox_retry_dead(row).await.unwrap();
    let up = dispatcher(temporal_address());
    eventually(Duration::from_secs(30), "the delivery", || async {
        up.pass().await.unwrap();
        (store.outbox_pending().await.unwrap() == 0).then_some(())
    })
    .await;
    assert_eq!(store.outbox_dead_count().await.unwrap(), 0);
    let client = test_client("outbox-test").await;
    // The workflow exists now; nothing serves its task queue, so end it here.
    let handle = client.get_workflow_handle::<procure_workflows::OrderWorkflow>(
        procure_workflows::order_workflow_id(&order_id),
    );
    handle.describe(Default::default()).await.unwrap();
    handle.terminate(Default::default()).await.unwrap();
    store.close().await;
}

/// (non-retryable, type name, message) of an activity failure.
fn failure(e: ActivityError) -> (bool, String, String) {
    match e {
        ActivityError::Application(f) => (
            f.is_non_retryable(),
            f.type_name().unwrap_or_default().to_owned(),
            f.source_error().to_string(),
        ),
        other => panic!("not an application failure: {other:?}"),
    }
}

#[tokio::test]
async fn refunds_stripe_refuses_for_good_are_not_retried() {
    procure::system::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = procure_sandbox::Sandbox::new(Default::default());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(procure_sandbox::serve(listener, sandbox, async move {
        let _ = stopped.await;
    }));
    let payments = Payments::new(PaymentsConfig {
        base_url: base_url.clone(),
        // One attempt per call: what the classifier sees is the sandbox's first answer.
        http: HttpConfig {
            max_attempts: 1,
            ..HttpConfig::default()
        },
        ..PaymentsConfig::default()
    })
    .unwrap();
    let eur = |minor| Money::new(minor, Currency::EUR);
    let intent = payments
        .create_intent("retries-charge", eur(1_000), "ord-retries")
        .await
        .unwrap();
    let confirmed = support::confirm_intent(
        &base_url,
        PaymentsConfig::default().api_key.expose(),
        &intent.id,
    )
    .await;
    assert_eq!(confirmed["status"], "succeeded");

    let expect = |e, non_retryable: bool, type_name: &str, says: &str| {
        let (nr, t, msg) = failure(adapter_err(e));
        assert_eq!((nr, t.as_str()), (non_retryable, type_name), "{msg}");
        assert!(msg.contains(says), "{msg}");
    };
    // Cancelling an intent that was paid meanwhile: 400 payment_intent_unexpected_state, the one
    // 400 worth another attempt (which reads the intent again and refunds instead).
    let e = payments.cancel_intent(&intent.id).await.unwrap_err();
    expect(
        e,
        false,
        "PaymentStateChanged",
        "payment_intent_unexpected_state",
    );
    // More than was paid: 400 amount_too_large.
    let e = payments
        .refund("retries-refund-1", &intent.id, eur(2_000))
        .await
        .unwrap_err();
    expect(e, true, "PaymentRejected", "amount_too_large");
    // All of it, then again: 400 charge_already_refunded.
    payments
        .refund("retries-refund-2", &intent.id, eur(1_000))
        .await
        .unwrap();
    let e = payments
        .refund("retries-refund-3", &intent.id, eur(1))
        .await
        .unwrap_err();
    expect(e, true, "PaymentRejected", "charge_already_refunded");
    // A settlement naming an intent Stripe does not know: resource_missing, as a parameter
    // and by path.
    let e = payments
        .refund("retries-refund-4", "pi_unknown", eur(100))
        .await
        .unwrap_err();
    expect(e, true, "NotFound", "resource_missing");
    let e = payments.get_intent("pi_unknown").await.unwrap_err();
    expect(e, true, "NotFound", "resource_missing");

    // Rate limits and server errors pass with time.
    let http = reqwest::Client::new();
    for (kind, type_name) in [("rate_limit", "RateLimited"), ("error", "Unavailable")] {
        let r = http
            .post(format!("{base_url}/_sandbox/faults"))
            .json(&json!({"platform": "stripe", "api": "*", "kind": kind, "count": 1}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{kind}: {}", r.status());
        let e = payments.get_intent(&intent.id).await.unwrap_err();
        expect(e, false, type_name, "");
    }
    // The faults are spent: the same call succeeds.
    payments.get_intent(&intent.id).await.unwrap();
}

/// The dispatcher's payments lane against the sandbox's Stripe: an accepted order becomes
/// payable once (a second pass opens nothing more), and an intent opened just as the order
/// closes its payment (the workflow cancelled or expired it meanwhile) is cancelled at the
/// provider instead of recorded, so nobody can pay it.
#[tokio::test]
async fn the_payments_lane_opens_each_intent_once_and_cancels_one_opened_as_the_order_closed() {
    use procure_domain::ports::{PaymentIntents, PortFuture};
    use procure_store::{orders::NewOrder, outbox::Lane};

    /// The provider, with the order's payment closed between opening the intent and
    /// recording it: the race, made certain.
    struct ClosesMeanwhile {
        inner: Payments,
        store: Store,
        opened: std::sync::Mutex<Vec<String>>,
    }
    impl PaymentIntents for ClosesMeanwhile {
        fn open_intent<'a>(&'a self, order_id: &'a str, amount: Money) -> PortFuture<'a, String> {
            Box::pin(async move {
                let id = self.inner.open_intent(order_id, amount).await?;
                self.opened.lock().unwrap().push(id.clone());
                if order_id.ends_with("-closing") {
                    self.store.close_payment(order_id).await.unwrap();
                }
                Ok(id)
            })
        }
        fn cancel_intent<'a>(&'a self, intent_id: &'a str) -> PortFuture<'a, ()> {
            PaymentIntents::cancel_intent(&self.inner, intent_id)
        }
    }

    procure::system::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(procure_sandbox::serve(
        listener,
        procure_sandbox::Sandbox::new(Default::default()),
        async move {
            let _ = stopped.await;
        },
    ));
    let payments = || {
        Payments::new(PaymentsConfig {
            base_url: base_url.clone(),
            ..PaymentsConfig::default()
        })
        .unwrap()
    };
    let dir = std::env::temp_dir().join(format!("procure-lane-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.join("app.db").display()))
        .await
        .unwrap();
    let total = Money::new(1_000, Currency::EUR);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (open, closing) = (format!("o-{run}-open"), format!("o-{run}-closing"));
    for id in [&open, &closing] {
        let order = NewOrder {
            id: id.clone(),
            customer_id: "cust-1".into(),
            quote_id: "q-1".into(),
            total,
            lines: vec![],
            shipping_address: json!({"country": "DE"}),
            destination_country: "DE".into(),
        };
        store.create_order(&order, id, "h").await.unwrap();
    }
    let port = Arc::new(ClosesMeanwhile {
        inner: payments(),
        store: store.clone(),
        opened: Default::default(),
    });
    let dispatcher = Dispatcher {
        store: store.clone(),
        // The engine lane is not run here.
        temporal: Arc::new(TemporalLink::new(
            "127.0.0.1:1".to_owned(),
            "default",
            procure_temporal::EncryptionCodec::development(),
        )),
        notify: Default::default(),
        task_queue: "unused".into(),
        timings: fast(),
        max_attempts: 3,
        payments: Some(port.clone()),
    };
    assert_eq!(dispatcher.pass_in(Lane::Payments).await.unwrap(), 2);
    assert_eq!(
        dispatcher.pass_in(Lane::Payments).await.unwrap(),
        0,
        "done once"
    );
    assert!(
        store
            .outbox_due_in(Lane::Payments, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.outbox_pending().await.unwrap(),
        2,
        "the two starts wait"
    );

    let opened = port.opened.lock().unwrap().clone();
    assert_eq!(opened.len(), 2, "one intent per order: {opened:?}");
    let (held, _, status) = store.payment_intent(&open).await.unwrap().unwrap();
    assert!(opened.contains(&held));
    assert_eq!(status, "requires_payment_method");
    assert_eq!(
        store
            .order(&open)
            .await
            .unwrap()
            .payment_intent_id
            .as_deref(),
        Some(held.as_str())
    );
    // The workflow's own step asks the provider under the same charge key: the same intent.
    assert_eq!(
        payments()
            .create_intent(&procure_domain::order::charge_key(&open), total, &open)
            .await
            .unwrap()
            .id,
        held
    );

    assert!(store.payment_intent(&closing).await.unwrap().is_none());
    assert!(
        store
            .order(&closing)
            .await
            .unwrap()
            .payment_intent_id
            .is_none()
    );
    let orphan = opened.iter().find(|i| **i != held).unwrap();
    let at_provider = payments().get_intent(orphan).await.unwrap();
    assert_eq!(
        at_provider.status,
        procure_adapters::payments::IntentStatus::Canceled,
        "the intent opened as the order closed is cancelled at the provider"
    );
    store.close().await;
}
