//! A payment is what the provider holds: correctly signed webhooks that lie (nothing received,
//! one cent, another currency) never make an order paid. The order parks in NeedsOperator with
//! the reason, nothing is bought or charged, and a real payment later verifies and completes
//! it; a cancel of an order whose payment never verified ends it.

mod support;

use procure::demo::Script;
use procure_domain::{OrderState, signing};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// Send a payment webhook signed with the provider's secret, as the provider would.
async fn signed_event(app: &TestApp, event: &Value) -> u16 {
    let body = serde_json::to_vec(event).unwrap();
    let now = procure_domain::clock::now_ms() / 1000;
    reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/payments", app.system.api_url))
        .header(
            "Stripe-Signature",
            signing::stripe_signature_header("whsec_procure_demo", now, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn succeeded(event_id: &str, intent: &str, amount: i64, currency: &str) -> Value {
    json!({
        "id": event_id,
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded",
                            "amount": amount, "amount_received": amount, "currency": currency}}
    })
}

/// Poll (without paying) until the order is in `want` with `n` timeline reasons holding `needle`.
async fn wait_for(app: &TestApp, id: &str, want: &str, needle: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = app.driver.order(id).await.unwrap();
        let got = reasons(&o).iter().filter(|r| r.contains(needle)).count();
        if o["state"] == want && got >= n {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "order {id} never reached {want} with {n} × {needle:?}; last {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pending_order(app: &TestApp) -> (String, String, i64, String) {
    let (id, _) = place(app, 0).await;
    let o = wait_for(app, &id, "PendingPayment", "created for", 1).await;
    let intent = o["payment_intent_id"].as_str().unwrap().to_owned();
    let total = o["total"]["minor"].as_i64().unwrap();
    let currency = o["total"]["currency"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    (id, intent, total, currency)
}

#[tokio::test]
async fn lying_payment_webhooks_never_make_an_order_paid() {
    let app = spawn_app(fast()).await;
    let (id, intent, total, currency) = pending_order(&app).await;
    let other = if currency == "usd" { "eur" } else { "usd" };
    let lies = [
        succeeded("evt_lie_zero", &intent, 0, &currency),
        succeeded("evt_lie_cent", &intent, 1, &currency),
        succeeded("evt_lie_currency", &intent, total, other),
    ];
    for (n, lie) in lies.iter().enumerate() {
        assert_eq!(
            signed_event(&app, lie).await,
            200,
            "signed: accepted as a notification"
        );
        let o = wait_for(&app, &id, "NeedsOperator", "payment not verified", n + 1).await;
        let why = reasons(&o)
            .into_iter()
            .rfind(|r| r.contains("payment not verified"))
            .unwrap();
        assert!(
            why.contains("not succeeded"),
            "the provider's view is the reason: {why}"
        );
    }
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(order_charges(&ledger, &id), 0, "nothing was charged");
    assert!(
        ledger.iter().all(|e| e.kind != "purchase"),
        "nothing was bought"
    );
    let o = app.driver.order(&id).await.unwrap();
    assert!(
        !reasons(&o)
            .iter()
            .any(|r| r.starts_with("payment") && r.contains("succeeded:")),
        "never Paid: {o}"
    );

    // The customer really pays: the provider's record verifies and the order goes on.
    app.driver.pay(&intent).await.unwrap();
    wait_for(&app, &id, "Procuring", "succeeded:", 1).await;
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(order_charges(&ledger, &id), 1);
    order_replays_and_records(&id, "order_unverified_payment").await;
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn cancelling_an_order_whose_payment_never_verified_ends_it() {
    let app = spawn_app(fast()).await;
    let (id, intent, total, currency) = pending_order(&app).await;
    let sku = app.driver.order(&id).await.unwrap()["lines"][0]["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = available(&app, &sku).await;
    assert_eq!(
        signed_event(&app, &succeeded("evt_lie_1", &intent, total - 1, &currency)).await,
        200
    );
    wait_for(&app, &id, "NeedsOperator", "payment not verified", 1).await;
    let out = temporal_cli_update(
        &app,
        &id,
        "cancel_order",
        r#"{"reason": "payment never arrived", "requested_by": "operator:ops-2"}"#,
    )
    .await
    .expect("cancel accepted");
    assert!(
        out.contains("granted:true") && out.contains("state:Cancelled"),
        "{out}"
    );
    let o = app.driver.order(&id).await.unwrap();
    assert_eq!(o["state"], "Cancelled");
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(ledger_sum(&ledger, "refund"), 0, "nothing to refund");
    assert!(available(&app, &sku).await > before, "stock released");
    app.system.stop().await.unwrap();
}
