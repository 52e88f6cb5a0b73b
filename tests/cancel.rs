//! Cancellation through the public API (`POST /api/v1/orders/{id}/cancel`), in every state,
//! checked against the sandbox's ledger: unpaid orders end Cancelled with the stock released;
//! paid orders with nothing bought are refunded in full once (an open purchaser task is
//! withdrawn); bought lines are cancelled at the marketplace while the seller has not shipped,
//! and refunded; after that, or once the goods are in the warehouse, a 409 says why.

mod support;

use procure::demo::Script;
use procure_api::auth::Role;
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

async fn cancel(app: &TestApp, id: &str, role: Role, customer: Option<&str>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/orders/{id}/cancel", app.system.api_url))
        .bearer_auth(app.driver.token(role, customer))
        .json(&json!({"reason": "changed my mind"}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

async fn as_customer(app: &TestApp, id: &str) -> (u16, Value) {
    let o = app.driver.order(id).await.unwrap();
    let customer = o["customer_id"].as_str().unwrap().to_owned();
    cancel(app, id, Role::Customer, Some(&customer)).await
}

/// Poll without paying until `want`.
async fn wait_unpaid(app: &TestApp, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = app.driver.order(id).await.unwrap();
        if o["state"] == want {
            return o;
        }
        assert!(Instant::now() < deadline, "never {want}: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn seller(app: &TestApp, body: Value) {
    let r = reqwest::Client::new()
        .put(format!(
            "{}/_sandbox/marketplace/seller",
            app.system.sandbox_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn net(ledger: &[procure_sandbox::LedgerEntry]) -> i64 {
    ledger_sum(ledger, "charge") - ledger_sum(ledger, "refund")
}

#[tokio::test]
async fn unpaid_order_is_cancelled_by_its_customer_and_only_by_them() {
    let app = spawn_app(fast()).await;
    let (id, product) = place(&app, 0).await;
    let sku = product["sku"].as_str().unwrap();
    wait_unpaid(&app, &id, "PendingPayment").await;
    let held = available(&app, sku).await;
    let (code, _) = cancel(&app, &id, Role::Customer, Some("someone-else")).await;
    assert_eq!(code, 403, "another customer cannot cancel");
    let (code, body) = as_customer(&app, &id).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["granted"], true);
    assert_eq!(body["state"], "Cancelled");
    assert!(available(&app, sku).await > held, "stock released");
    // Idempotent: asking again answers the same.
    let (code, again) = as_customer(&app, &id).await;
    assert_eq!((code, &again["state"]), (200, &json!("Cancelled")));
    let o = app.driver.order(&id).await.unwrap();
    assert!(
        reasons(&o)
            .iter()
            .any(|r| r.starts_with("cancellation requested by customer:")),
        "who asked is on the timeline: {o}"
    );
    let (code, _) = cancel(&app, &id, Role::Warehouse, None).await;
    assert_eq!(code, 403, "the warehouse role cannot cancel");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn paid_order_with_an_open_purchaser_task_is_withdrawn_and_refunded_once() {
    let app = spawn_app(procure_api::OrderTimings {
        purchaser_deadline: Duration::from_secs(600),
        ..fast()
    })
    .await;
    stock_out_everywhere(&app).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, _) = place(&app, idx).await;
    let o = wait_unpaid(&app, &id, "PendingPayment").await;
    app.driver
        .pay(o["payment_intent_id"].as_str().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.driver.purchaser_tasks("open").await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no purchaser task opened");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, body) = as_customer(&app, &id).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "Refunded");
    assert!(
        app.driver.purchaser_tasks("open").await.unwrap().is_empty(),
        "the task was withdrawn"
    );
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(ledger.iter().filter(|e| e.kind == "refund").count(), 1);
    assert_eq!(net(&ledger), 0, "refunded in full: {ledger:?}");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn bought_line_is_cancelled_at_the_marketplace_until_the_seller_ships() {
    let app = spawn_app(fast()).await;
    seller(
        &app,
        json!({"ship_after_ms": 3_600_000, "refunds_at_once": true}),
    )
    .await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, _) = place(&app, idx).await;
    wait_state(&app, &id, OrderState::InboundTransit).await;
    let (code, body) = as_customer(&app, &id).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["granted"], true);
    assert_eq!(body["state"], "Refunded");
    let ledger = app.driver.ledger().await.unwrap();
    let bought: i64 = ledger
        .iter()
        .filter(|e| e.kind == "marketplace_payment")
        .map(|e| e.amount_minor)
        .sum();
    assert_eq!(
        ledger_sum(&ledger, "marketplace_refund"),
        bought,
        "the marketplace paid back what we paid: {ledger:?}"
    );
    assert_eq!(net(&ledger), 0, "the customer is refunded in full");

    // Once the seller has shipped, the cancellation is refused with the reason, and the order
    // goes on to the warehouse.
    seller(&app, json!({"ship_after_ms": 0})).await;
    let (id2, _) = place(&app, idx).await;
    wait_state(&app, &id2, OrderState::InboundTransit).await;
    let (code, body) = as_customer(&app, &id2).await;
    assert_eq!(code, 409, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("can no longer be cancelled"), "{msg}");
    assert_eq!(
        drive_one(&app, &id2, Script::HappyPath).await,
        OrderState::Completed
    );
    let o = app.driver.order(&id2).await.unwrap();
    assert!(
        reasons(&o)
            .iter()
            .any(|r| r.starts_with("cancellation refused"))
    );
    app.system.stop().await.unwrap();
}

/// A two-line order whose second line nobody sells any more.
async fn order_with_an_unbuyable_line(app: &TestApp) -> (String, Value) {
    let catalogue = app.driver.catalogue_full().await.unwrap();
    let products = catalogue["products"].as_array().unwrap();
    let offers = catalogue["offers"].as_array().unwrap();
    // Line 1 is bought through 1688's buyer API; line 2 is another product.
    let ia = sku_cheapest_on(app, "1688").await;
    let ib = (ia + 1) % products.len();
    let (a, b) = (
        products[ia]["sku"].as_str().unwrap(),
        products[ib]["sku"].as_str().unwrap(),
    );
    for o in offers.iter().filter(|o| o["sku"] == b) {
        app.driver
            .set_product(o["offer_id"].as_str().unwrap(), json!({"stock": 0}))
            .await
            .unwrap();
    }
    let quote = app
        .driver
        .quote(&[(a.to_owned(), 1), (b.to_owned(), 1)], "US", "USD")
        .await
        .unwrap();
    let order = app
        .driver
        .place_order(
            quote["quote_id"].as_str().unwrap(),
            "cust-lines",
            "US",
            &format!("lines-{}", uuid::Uuid::new_v4()),
        )
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let o = wait_unpaid(app, &id, "PendingPayment").await;
    app.driver
        .pay(o["payment_intent_id"].as_str().unwrap())
        .await
        .unwrap();
    let o = wait_unpaid(app, &id, "AwaitingCustomer").await;
    (id, o)
}

async fn decide(app: &TestApp, id: &str, line: u32, decision: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/orders/{id}/lines/{line}/decision",
            app.system.api_url
        ))
        .bearer_auth(app.driver.token(Role::Customer, Some("cust-lines")))
        .json(&json!({"decision": decision}))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// The share the ledger refunded for the order (all refunds referencing it).
fn refunded(ledger: &[procure_sandbox::LedgerEntry]) -> i64 {
    ledger_sum(ledger, "refund")
}

#[tokio::test]
async fn an_unbuyable_line_is_dropped_with_its_share_refunded_and_the_rest_goes_on() {
    let app = spawn_app(fast()).await;
    let (id, o) = order_with_an_unbuyable_line(&app).await;
    let total = o["total"]["minor"].as_i64().unwrap();
    let last = reasons(&o).pop().unwrap();
    assert!(
        last.contains("line 2 cannot be bought") && last.contains("dropped"),
        "{last}"
    );
    let (code, _) = decide(&app, &id, 1, "drop").await;
    assert_eq!(code, 409, "line 1 is not the question");
    let (code, body) = decide(&app, &id, 2, "drop").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    let ledger = app.driver.ledger().await.unwrap();
    let share = refunded(&ledger) - shipping_refunds(&app, &id).await;
    assert!(
        share > 0 && share < total,
        "line 2's share only: {share} of {total}"
    );
    assert_eq!(
        ledger.iter().filter(|e| e.kind == "purchase").count(),
        1,
        "line 1 bought once, line 2 never"
    );
    order_replays_and_records(&id, "order_line_dropped").await;
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn cancel_all_refunds_everything_and_no_answer_drops_the_line_by_default() {
    let app = spawn_app(procure_api::OrderTimings {
        price_change_deadline: Duration::from_secs(3),
        ..fast()
    })
    .await;
    let (id, o) = order_with_an_unbuyable_line(&app).await;
    let total = o["total"]["minor"].as_i64().unwrap();
    // No answer: line 2 is dropped after the deadline and line 1 goes on.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = app.driver.order(&id).await.unwrap();
        if reasons(&o).iter().any(|r| r.contains("dropped by default")) {
            break;
        }
        assert!(Instant::now() < deadline, "never dropped by default: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ledger = app.driver.ledger().await.unwrap();
    let dropped = refunded(&ledger);
    assert!(dropped > 0 && dropped < total);

    // A second order: the customer cancels all; line 1 (bought, the sandbox seller ships at
    // once) cannot be cancelled at the marketplace, so it is kept as stored goods and only the
    // rest is refunded.
    let (id2, o2) = order_with_an_unbuyable_line(&app).await;
    let total2 = o2["total"]["minor"].as_i64().unwrap();
    let before = refunded(&app.driver.ledger().await.unwrap());
    let (code, body) = decide(&app, &id2, 2, "cancel_all").await;
    assert_eq!(code, 200, "{body}");
    let o2 = wait_state(&app, &id2, OrderState::InboundTransit).await;
    assert!(
        reasons(&o2)
            .iter()
            .any(|r| r.contains("kept as stored goods")),
        "{o2}"
    );
    let ledger = app.driver.ledger().await.unwrap();
    let share2 = refunded(&ledger) - before;
    assert!(
        share2 > 0 && share2 < total2,
        "only the unbought line: {share2} of {total2}"
    );
    app.system.stop().await.unwrap();
}

/// Refunds packing made against the order's quoted shipping (not line refunds).
async fn shipping_refunds(app: &TestApp, id: &str) -> i64 {
    let o = app.driver.order(id).await.unwrap();
    (-shipping_settlement(app, &o).await).max(0)
}
