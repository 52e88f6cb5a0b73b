//! The seller's domestic shipment to our warehouse, end to end on a real Temporal dev server
//! (patch `seller-shipment`): the workflow asks the marketplace's logistics API while the goods
//! travel, "not shipped yet" (1688 `500_2`, Taobao's empty list) is asked again, the timeline
//! shows "seller shipped: <carrier> <waybill>", the event goes out once, and the warehouse scans
//! the waybill instead of our label. A seller who misses the deadline parks the order for an
//! operator with the marketplace's own status; a waybill of two orders is an exception.
//!
//! The sandbox sellers are held (a 30-day shipping delay) and ship when the test says so
//! (`POST /_sandbox/marketplace/orders/{id}/ship`), so nothing here waits on a clock.

mod support;

use procure_api::{OrderTimings, auth::Role};
use procure_domain::OrderState;
use procure_store::shipments::{NewSellerShipment, ShipmentSource};
use serde_json::{Value, json};
use std::time::Duration;
use support::*;

const HELD_MS: u64 = 30 * 24 * 3600 * 1000;

fn timings(deadline_s: u64) -> OrderTimings {
    OrderTimings {
        seller_ship_poll: Duration::from_secs(1),
        seller_ship_deadline: Duration::from_secs(deadline_s),
        purchaser_deadline: Duration::from_secs(120),
        ..fast()
    }
}

async fn app_with_held_sellers(deadline_s: u64) -> TestApp {
    spawn_app_configured(timings(deadline_s), |cfg| {
        cfg.sandbox.seller_ship_ms = HELD_MS;
    })
    .await
}

/// The marketplace order that bought line 1 of `order_id`.
async fn marketplace_order(app: &TestApp, order_id: &str) -> String {
    app.system
        .store
        .line_purchase(order_id, 1)
        .await
        .unwrap()
        .expect("line 1 is bought")
        .marketplace_order_id
}

async fn ship_now(app: &TestApp, marketplace_order_id: &str) {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/marketplace/orders/{marketplace_order_id}/ship",
            app.system.sandbox_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the sandbox seller ships");
}

/// POST an inbound scan; (HTTP status, body).
async fn scan(app: &TestApp, named_by: Value) -> (u16, Value) {
    let mut body = json!({"weight_g": 900, "l_mm": 300, "w_mm": 200, "h_mm": 120,
        "photo_urls": ["https://warehouse.example/qc/1.jpg"]});
    body.as_object_mut()
        .unwrap()
        .extend(named_by.as_object().unwrap().clone());
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/warehouse/inbound", app.system.api_url))
        .bearer_auth(app.driver.token(Role::Warehouse, None))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The order's timeline entries that start with `prefix`.
async fn timeline_with(app: &TestApp, id: &str, prefix: &str) -> Vec<String> {
    let o = app.driver.order(id).await.unwrap();
    reasons(&o)
        .into_iter()
        .filter(|r| r.starts_with(prefix))
        .collect()
}

/// How many times the workflow has asked for the sellers' shipments so far.
async fn shipment_polls(id: &str) -> usize {
    let client = test_client("shipment-test").await;
    let history = history_json(&client, &procure_workflows::order_workflow_id(id), "").await;
    let text = String::from_utf8(history).unwrap();
    // Each poll schedules one activity of this type (its name appears once per scheduling).
    text.matches("\"seller_shipments\"").count()
}

/// `order.seller_shipped` events of the order in the operator's feed.
async fn shipped_events(app: &TestApp, id: &str) -> Vec<Value> {
    let feed = app
        .driver
        .api_get("/api/v1/events?type=order.seller_shipped&limit=100")
        .await
        .unwrap();
    feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["order_id"] == id)
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_timeline_follows_the_sellers_shipment_and_the_warehouse_scans_its_waybill() {
    let app = app_with_held_sellers(600).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, _) = place(&app, idx).await;
    wait_state(&app, &id, OrderState::InboundTransit).await;
    let mid = marketplace_order(&app, &id).await;

    // Not shipped yet: 1688 answers 500_2 and the workflow asks again at the next poll.
    eventually(Duration::from_secs(30), "two polls", || async {
        (shipment_polls(&id).await >= 2).then_some(())
    })
    .await;
    assert!(timeline_with(&app, &id, "seller shipped").await.is_empty());
    assert_eq!(
        app.driver.order(&id).await.unwrap()["state"],
        "InboundTransit"
    );

    ship_now(&app, &mid).await;
    let shipped = eventually(Duration::from_secs(30), "seller shipped", || async {
        let t = timeline_with(&app, &id, "seller shipped: ").await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    let order = app.driver.order(&id).await.unwrap();
    let s = &order["seller_shipments"][0];
    let waybill = s["waybill"].as_str().unwrap().to_owned();
    assert_eq!(s["carrier"], "YTO");
    assert_eq!(s["platform"], "1688");
    assert_eq!(s["marketplace_order_id"], mid.as_str());
    assert_eq!(s["source"], "marketplace");
    assert_eq!(
        shipped,
        [format!(
            "seller shipped: YTO {waybill} (line 1, 1688 order {mid})"
        )]
    );
    println!("timeline of {id}:");
    for r in reasons(&order) {
        println!("  {r}");
    }

    // One event per parcel, however often it is seen.
    let events = shipped_events(&app, &id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["tracking_number"], waybill.as_str());
    assert_eq!(events[0]["data"]["carrier"], "YTO");

    // The warehouse scans the seller's waybill: matched to the order.
    let (status, body) = scan(&app, json!({"waybill": waybill})).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["order_id"], id.as_str());
    assert_eq!(body["matched_by"], "waybill");
    assert_eq!(body["status"], "received");
    wait_state(&app, &id, OrderState::InWarehouse).await;
    assert_eq!(
        shipped_events(&app, &id).await.len(),
        1,
        "still one event after the scan"
    );
    order_replays_and_records(&id, "order_seller_shipment").await;
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_seller_who_has_not_shipped_by_the_deadline_parks_the_order_with_the_marketplace_status()
{
    let app = app_with_held_sellers(2).await;
    let idx = sku_cheapest_on(&app, "taobao").await;
    let (id, _) = place(&app, idx).await;
    let parked = wait_state(&app, &id, OrderState::NeedsOperator).await;
    let why = reasons(&parked).pop().unwrap();
    let mid = marketplace_order(&app, &id).await;
    assert!(
        why.starts_with("seller has not shipped within 2 s of the purchase: line 1: taobao order")
            && why.contains(&mid)
            && why.contains("is WAIT_SELLER_SEND_GOODS"),
        "the operator sees the marketplace's own status: {why}"
    );

    // The operator gives the seller more time: back in transit, still polling.
    let out = temporal_cli_update(&app, &id, "retry_step", "{}")
        .await
        .unwrap();
    assert!(out.contains("true"), "{out}");
    wait_state(&app, &id, OrderState::InboundTransit).await;
    assert_eq!(
        timeline_with(&app, &id, "operator: waiting for the seller")
            .await
            .len(),
        1
    );

    ship_now(&app, &mid).await;
    let shipped = eventually(Duration::from_secs(30), "seller shipped", || async {
        let t = timeline_with(&app, &id, "seller shipped: ").await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    let order = app.driver.order(&id).await.unwrap();
    let waybill = order["seller_shipments"][0]["waybill"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        shipped[0].contains(&waybill) && shipped[0].contains("taobao order"),
        "{shipped:?}"
    );
    // Shipped in time for the new deadline: no second escalation. The parcel is scanned by a
    // label that is not ours: the waybill found through `reference`.
    let (status, body) = scan(&app, json!({"reference": waybill})).await;
    assert_eq!(
        (status, &body["matched_by"]),
        (202, &json!("waybill")),
        "{body}"
    );
    wait_state(&app, &id, OrderState::InWarehouse).await;
    let parks = reasons(&app.driver.order(&id).await.unwrap())
        .into_iter()
        .filter(|r| r.starts_with("seller has not shipped"))
        .count();
    assert_eq!(parks, 1);
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_purchasers_waybill_is_followed_and_a_waybill_of_two_orders_is_an_exception() {
    let app = app_with_held_sellers(600).await;
    let idx = sku_cheapest_on(&app, "pinduoduo").await;
    let (id, _) = place(&app, idx).await;
    wait_state(&app, &id, OrderState::Procuring).await;
    let task = eventually(Duration::from_secs(30), "a purchaser task", || async {
        app.driver
            .purchaser_tasks("open")
            .await
            .unwrap()
            .into_iter()
            .find(|t| t["order_id"] == id.as_str())
    })
    .await;
    let task_id = task["id"].as_str().unwrap();
    let complete = |body: Value| {
        let url = format!(
            "{}/api/v1/purchaser/tasks/{task_id}/complete",
            app.system.api_url
        );
        let token = app.driver.token(Role::Purchaser, None);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // A waybill without its carrier, or one no carrier prints, is refused with the field.
    let (s, b) = complete(
        json!({"marketplace_order_id": "PDD-SHIP-1", "amount_paid_fen": 100,
        "waybill": "75312345678901"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["fields"][0]["field"].as_str()),
        (422, Some("waybill")),
        "{b}"
    );
    let (s, b) = complete(
        json!({"marketplace_order_id": "PDD-SHIP-1", "amount_paid_fen": 100,
        "carrier": "ZTO", "waybill": "75 31"}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["fields"][0]["field"].as_str()),
        (422, Some("waybill")),
        "{b}"
    );
    let (s, b) = complete(
        json!({"marketplace_order_id": "PDD-SHIP-1", "amount_paid_fen": 100,
        "carrier": "ZTO", "waybill": "75312345678901"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");

    let shipped = eventually(Duration::from_secs(30), "seller shipped", || async {
        let t = timeline_with(&app, &id, "seller shipped: ").await;
        (!t.is_empty()).then_some(t)
    })
    .await;
    assert_eq!(
        shipped,
        ["seller shipped: ZTO 75312345678901 (line 1, pinduoduo order PDD-SHIP-1)"]
    );
    let order = app.driver.order(&id).await.unwrap();
    assert_eq!(order["seller_shipments"][0]["source"], "purchaser");
    assert_eq!(shipped_events(&app, &id).await.len(), 1);

    // Bad scans get a clear error and record nothing.
    let (s, b) = scan(&app, json!({"waybill": "7!"})).await;
    assert_eq!(
        (s, b["error"]["fields"][0]["field"].as_str()),
        (422, Some("waybill")),
        "{b}"
    );
    let (s, b) = scan(&app, json!({"waybill": "75312345678901", "order_id": id})).await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = scan(&app, json!({"waybill": "99999999999"})).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("exception")), "{b}");
    assert!(
        b["reason"]
            .as_str()
            .unwrap()
            .contains("matches no order's seller shipment"),
        "{b}"
    );

    // The same waybill recorded for a second order: the parcel cannot be told apart.
    let (other, _) = place(&app, idx).await;
    let recorded = app
        .system
        .store
        .record_seller_shipment(&NewSellerShipment {
            order_id: other.clone(),
            line_no: 1,
            platform: "pinduoduo".into(),
            marketplace_order_id: "PDD-SHIP-2".into(),
            carrier: "ZTO".into(),
            waybill: "75312345678901".into(),
            source: ShipmentSource::Purchaser,
        })
        .await
        .unwrap();
    assert!(recorded);
    let (s, b) = scan(&app, json!({"waybill": "75312345678901"})).await;
    assert_eq!((s, b["status"].as_str()), (202, Some("exception")), "{b}");
    let reason = b["reason"].as_str().unwrap();
    assert!(
        reason.contains("matches 2 orders") && reason.contains(&id) && reason.contains(&other),
        "{reason}"
    );
    let open = app
        .driver
        .api_get("/api/v1/warehouse/exceptions")
        .await
        .unwrap();
    assert_eq!(
        open["exceptions"].as_array().unwrap().len(),
        2,
        "the unknown waybill and the ambiguous one: {open}"
    );
    // Neither order was told of a parcel.
    assert_eq!(
        app.driver.order(&id).await.unwrap()["state"],
        "InboundTransit"
    );
    // The operator resolves it to the right order: it arrives.
    let ex = open["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["reason"].as_str().unwrap().contains("2 orders"))
        .unwrap()["id"]
        .clone();
    app.driver
        .api_post(
            &format!("/api/v1/warehouse/exceptions/{ex}/resolve"),
            &json!({"order_id": id}),
        )
        .await
        .unwrap();
    wait_state(&app, &id, OrderState::InWarehouse).await;
    app.system.stop().await.unwrap();
}
