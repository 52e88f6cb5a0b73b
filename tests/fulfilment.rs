//! From the warehouse to the door, end to end on a real Temporal dev server: consolidation of
//! two orders into one parcel, settlement of the quoted shipping estimate both ways (and the
//! guaranteed quote), storage expiry, a delivery exception parked for an operator, and a parcel
//! workflow that continues as new while tracking, replayed from its recorded history.

mod support;

use procure_api::OrderTimings;
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

/// Quote and place an order of one unit of catalogue item `idx` for `customer` to `country`.
async fn order_for(
    app: &TestApp,
    idx: usize,
    customer: &str,
    country: &str,
    currency: &str,
    guaranteed: bool,
) -> String {
    order_of(app, idx, 1, customer, country, currency, guaranteed).await
}

/// As `order_for`, with `quantity` units.
async fn order_of(
    app: &TestApp,
    idx: usize,
    quantity: u32,
    customer: &str,
    country: &str,
    currency: &str,
    guaranteed: bool,
) -> String {
    let catalogue = app.driver.catalogue().await.unwrap();
    let sku = catalogue[idx]["sku"].as_str().unwrap();
    let request = json!({"items": [{"sku": sku, "quantity": quantity}],
        "destination_country": country, "currency": currency, "guaranteed": guaranteed});
    order_quoted(app, &request, customer).await.1
}

/// Quote `request` (`POST /api/v1/quotes`) and place the order for `customer` to the quote's
/// destination: the quote and the order's id.
async fn order_quoted(app: &TestApp, request: &Value, customer: &str) -> (Value, String) {
    let quote: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/quotes", app.system.api_url))
        .bearer_auth(app.driver.token(procure_api::auth::Role::Operator, None))
        .json(request)
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
            customer,
            request["destination_country"].as_str().unwrap(),
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    (quote, id)
}

/// Pay, let procurement buy, and scan the goods in: the order waits in the warehouse.
async fn into_warehouse(app: &TestApp, id: &str) -> Value {
    wait_state(app, id, OrderState::InboundTransit).await;
    app.driver.scan_in(id).await.unwrap();
    wait_state(app, id, OrderState::InWarehouse).await
}

/// Poll a parcel until `done` holds for it (at most 60 s).
async fn wait_parcel_until(
    app: &TestApp,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = app.driver.parcel(id).await.unwrap();
        if done(&p) {
            return p;
        }
        assert!(Instant::now() < deadline, "parcel never {what}: {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_parcel(app: &TestApp, id: &str, status: &str) -> Value {
    wait_parcel_until(app, id, status, |p| p["status"] == status).await
}

/// The parcel as soon as it either asks for a supplementary payment or has shipped.
async fn wait_any_charge_or_shipped(app: &TestApp, pid: &str) -> Value {
    wait_parcel_until(app, pid, "awaiting payment or shipped", |p| {
        ["awaiting_payment", "shipped", "delivered", "exception"]
            .contains(&p["status"].as_str().unwrap_or_default())
    })
    .await
}

async fn wait_parcel_with_tracking(app: &TestApp, pid: &str) -> Value {
    wait_parcel_until(app, pid, "booked", |p| {
        p["tracking_number"].as_str().is_some()
    })
    .await
}

fn minor(v: &Value) -> i64 {
    v["minor"].as_i64().unwrap()
}

#[tokio::test]
async fn two_orders_consolidate_into_one_parcel_and_both_are_delivered() {
    let app = spawn_app(fast()).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let a = order_for(&app, idx, "cust-consol", "DE", "EUR", false).await;
    let b = order_for(&app, idx, "cust-consol", "DE", "EUR", false).await;
    let item_a = into_warehouse(&app, &a).await["warehouse"].clone();
    let item_b = into_warehouse(&app, &b).await["warehouse"].clone();

    // Another customer's order cannot join, nor can an order twice.
    let other = app
        .driver
        .request_parcel("someone-else", &[a.as_str()], None)
        .await;
    assert!(other.is_err(), "another customer's goods");
    let parcel = app
        .driver
        .request_parcel("cust-consol", &[a.as_str(), b.as_str()], None)
        .await
        .unwrap();
    let pid = parcel["id"].as_str().unwrap().to_owned();
    assert_eq!(parcel["order_ids"].as_array().unwrap().len(), 2);
    assert!(
        app.driver
            .request_parcel("cust-consol", &[a.as_str()], None)
            .await
            .is_err(),
        "already in a parcel"
    );
    wait_state(&app, &a, OrderState::Packing).await;
    wait_state(&app, &b, OrderState::Packing).await;

    // Packed together: both items in one box of the combined size.
    let weight = item_a["weight_g"].as_u64().unwrap() + item_b["weight_g"].as_u64().unwrap() + 80;
    let d = |k: &str| {
        item_a["dims"][k]
            .as_u64()
            .unwrap()
            .max(item_b["dims"][k].as_u64().unwrap()) as u32
    };
    let h = (item_a["dims"]["h_mm"].as_u64().unwrap() + item_b["dims"]["h_mm"].as_u64().unwrap())
        as u32;
    let priced = app
        .driver
        .pack(
            &pid,
            weight as u32,
            [d("l_mm") + 20, d("w_mm") + 20, h + 20],
        )
        .await
        .unwrap();
    let settlements = priced["settlements"].as_array().unwrap();
    assert_eq!(settlements.len(), 2, "{priced}");
    let actual: i64 = settlements.iter().map(|s| minor(&s["actual"])).sum();
    assert_eq!(
        actual,
        minor(&priced["actual"]),
        "shares add up to the parcel"
    );
    app.driver
        .pay_charges(&wait_any_charge_or_shipped(&app, &pid).await)
        .await
        .unwrap();

    for id in [&a, &b] {
        let done = wait_state(&app, id, OrderState::Completed).await;
        let r = reasons(&done).join("\n");
        assert!(r.contains(&format!("packing in parcel {pid}")), "{r}");
    }
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(
        ledger.iter().filter(|e| e.kind == "shipment").count(),
        1,
        "one parcel, one shipment: {ledger:?}"
    );
    let delivered = wait_parcel(&app, &pid, "delivered").await;
    assert!(delivered["tracking_number"].as_str().is_some());
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn settlement_refunds_a_lighter_parcel_charges_a_heavier_one_and_honours_a_guarantee() {
    let app = spawn_app(fast()).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    // Four units quoted: packed as a small light box, they cost less than estimated.
    let light = order_of(&app, idx, 4, "cust-light", "US", "USD", false).await;
    let heavy = order_for(&app, idx, "cust-heavy", "US", "USD", false).await;
    let sure = order_for(&app, idx, "cust-sure", "US", "USD", true).await;
    let mut parcels = Vec::new();
    for (id, customer) in [
        (&light, "cust-light"),
        (&heavy, "cust-heavy"),
        (&sure, "cust-sure"),
    ] {
        let stored = into_warehouse(&app, id).await;
        if id == &sure {
            // A guaranteed price holds on its quoted line only: no free upgrade to another.
            let quoted = app
                .system
                .store
                .quote(stored["quote_id"].as_str().unwrap())
                .await
                .unwrap();
            let other = if quoted.body["shipping_line"] == "SANDBOX-EXP" {
                "SANDBOX-ECO"
            } else {
                "SANDBOX-EXP"
            };
            assert!(
                app.driver
                    .request_parcel(customer, &[id.as_str()], Some(other))
                    .await
                    .is_err()
            );
        }
        let p = app
            .driver
            .request_parcel(customer, &[id.as_str()], None)
            .await
            .unwrap();
        parcels.push(p["id"].as_str().unwrap().to_owned());
    }
    // Lighter and smaller than quoted: the difference goes back at once.
    let p = app
        .driver
        .pack(&parcels[0], 100, [100, 100, 50])
        .await
        .unwrap();
    assert_eq!(p["settlements"][0]["outcome"], "refund", "{p}");
    let refund = minor(&p["settlements"][0]["amount"]);
    assert!(refund > 0);
    // Much heavier than quoted: a supplementary charge, and the parcel waits for it.
    let p = app
        .driver
        .pack(&parcels[1], 6_000, [500, 400, 300])
        .await
        .unwrap();
    assert_eq!(p["settlements"][0]["outcome"], "charge", "{p}");
    let extra = minor(&p["settlements"][0]["amount"]);
    let waiting = wait_parcel(&app, &parcels[1], "awaiting_payment").await;
    assert_eq!(minor(&waiting["charges"][0]["amount"]), extra);
    assert_eq!(
        app.driver.order(&heavy).await.unwrap()["state"],
        "Packing",
        "not shipped before the difference is paid"
    );
    app.driver.pay_charges(&waiting).await.unwrap();
    // Guaranteed: the same overweight parcel costs the customer nothing more.
    let p = app
        .driver
        .pack(&parcels[2], 6_000, [500, 400, 300])
        .await
        .unwrap();
    assert_eq!(p["settlements"][0]["outcome"], "absorbed", "{p}");

    for id in [&light, &heavy, &sure] {
        wait_state(&app, id, OrderState::Completed).await;
    }
    let ledger = app.driver.ledger().await.unwrap();
    let refunds: Vec<_> = ledger.iter().filter(|e| e.kind == "refund").collect();
    assert_eq!(refunds.len(), 1, "{ledger:?}");
    assert_eq!(refunds[0].amount_minor, refund);
    assert_eq!(
        refunds[0].reference,
        format!("{}-{light}-shipping-refund", parcels[0])
    );
    let charged = |r: &str| {
        ledger
            .iter()
            .filter(|e| e.kind == "charge" && e.reference == r)
            .map(|e| e.amount_minor)
            .sum::<i64>()
    };
    assert_eq!(
        charged(&light),
        minor(&app.driver.order(&light).await.unwrap()["total"])
    );
    assert_eq!(
        charged(&heavy),
        minor(&app.driver.order(&heavy).await.unwrap()["total"])
    );
    assert_eq!(charged(&parcels[1]), extra, "the supplementary charge");
    assert_eq!(
        charged(&sure),
        minor(&app.driver.order(&sure).await.unwrap()["total"])
    );
    assert_eq!(charged(&parcels[2]), 0, "nothing above a guaranteed quote");
    app.system.stop().await.unwrap();
}

/// Quoted on sea freight (3 kg minimum) for the listings' weight, the goods arrive lighter:
/// the parcel asked for without a line goes on the cheapest line that carries them, and asking
/// for the sea line by name is a clear 422 naming the reason.
#[tokio::test]
async fn goods_lighter_than_their_quoted_lines_minimum_ship_on_the_cheapest_line_that_carries_them()
{
    let app = spawn_app(fast()).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let catalogue = app.driver.catalogue_full().await.unwrap();
    let product = &catalogue["products"][idx];
    let unit_g = product["weight_g"].as_u64().unwrap();
    let quantity = 3_500u64.div_ceil(unit_g);
    let (quote, id) = order_quoted(
        &app,
        &json!({"items": [{"sku": product["sku"], "quantity": quantity}],
            "destination_country": "GB", "currency": "GBP", "shipping_line": "SANDBOX-SEA"}),
        "cust-light",
    )
    .await;
    assert_eq!(quote["shipping_line"], "SANDBOX-SEA", "{quote}");
    wait_state(&app, &id, OrderState::InboundTransit).await;
    // The seller sent less weight than the listings claim: 1.2 kg in a small box.
    let scan = reqwest::Client::new()
        .post(format!("{}/api/v1/warehouse/inbound", app.system.api_url))
        .bearer_auth(app.driver.token(procure_api::auth::Role::Warehouse, None))
        .json(
            &json!({"order_id": id, "weight_g": 1_200, "l_mm": 250, "w_mm": 200, "h_mm": 100,
            "photo_urls": ["https://warehouse.example/qc/1.jpg"]}),
        )
        .send()
        .await
        .unwrap();
    assert!(scan.status().is_success(), "{}", scan.text().await.unwrap());
    wait_state(&app, &id, OrderState::InWarehouse).await;

    let refused = app
        .driver
        .request_parcel("cust-light", &[id.as_str()], Some("SANDBOX-SEA"))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("422"), "{refused}");
    assert!(
        refused
            .contains("SANDBOX-SEA: parcel below the line's minimum chargeable weight of 3000 g"),
        "{refused}"
    );
    let parcel = app
        .driver
        .request_parcel("cust-light", &[id.as_str()], None)
        .await
        .unwrap();
    // 1.2 kg: Economy 60 + 2 × 18 = 96 CNY, Express 90 + 2 × 30 = 150 CNY (config/tariff.toml).
    assert_eq!(parcel["shipping_line"], "SANDBOX-ECO", "{parcel}");
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn storage_reminds_once_then_extension_is_paid_and_unclaimed_goods_are_disposed() {
    let app = spawn_app(OrderTimings {
        storage_free: Duration::from_secs(4),
        storage_reminder: Duration::from_secs(3),
        storage_grace: Duration::from_secs(3),
        ..fast()
    })
    .await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let keep = order_for(&app, idx, "cust-store", "GB", "GBP", false).await;
    let forget = order_for(&app, idx, "cust-store", "GB", "GBP", false).await;
    into_warehouse(&app, &keep).await;
    into_warehouse(&app, &forget).await;

    // Both run out: one reminder for the customer that day, naming both items.
    let waiting = wait_state(&app, &keep, OrderState::AwaitingCustomer).await;
    assert!(
        reasons(&waiting)
            .iter()
            .any(|r| r.contains("reminder sent") || r.contains("covered by today's reminder"))
    );
    // Reminders name every item of the customer that runs out soon, and a new one goes out
    // only when that list grows: the last one names both.
    wait_state(&app, &forget, OrderState::AwaitingCustomer).await;
    let notes: Vec<_> = app
        .system
        .store
        .customer_notifications("cust-store", 0, 100)
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.kind == procure_domain::events::EventType::StorageReminder)
        .collect();
    assert!((1..=2).contains(&notes.len()), "{notes:?}");
    let last: Vec<&str> = notes.last().unwrap().data["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap())
        .collect();
    assert!(
        last.contains(&keep.as_str()) && last.contains(&forget.as_str()),
        "{notes:?}"
    );

    // The customer extends one of them and pays; the other is never claimed.
    assert_eq!(
        app.driver
            .storage_choice(&keep, json!({"choice": "extend", "days": 400}))
            .await
            .unwrap(),
        422
    );
    assert_eq!(
        app.driver
            .storage_choice(&keep, json!({"choice": "extend", "days": 30}))
            .await
            .unwrap(),
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let order = loop {
        let o = app.driver.order(&keep).await.unwrap();
        if o["charges"].as_array().is_some_and(|c| !c.is_empty()) {
            break o;
        }
        assert!(Instant::now() < deadline, "no storage charge: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(order["charges"][0]["kind"], "storage_extension");
    app.driver.pay_charges(&order).await.unwrap();
    let kept = wait_state(&app, &keep, OrderState::InWarehouse).await;
    assert!(
        kept["warehouse"]["stored_until_ms"].as_i64().unwrap()
            > kept["warehouse"]["received_at_ms"].as_i64().unwrap() + 29 * 24 * 3600 * 1000
    );

    let gone = wait_state(&app, &forget, OrderState::Disposed).await;
    assert!(
        reasons(&gone)
            .pop()
            .unwrap()
            .contains("disposed by default")
    );
    assert_eq!(gone["warehouse"]["status"], "disposed");
    // Each message reached the customer as an event with what the storefront writes it from:
    // the end of free storage and the disposal deadline, the charge with its intent to pay.
    let notes = app
        .system
        .store
        .customer_notifications("cust-store", 0, 100)
        .await
        .unwrap()
        .events;
    let of = |kind: procure_domain::events::EventType, order: &str| {
        notes
            .iter()
            .find(|e| e.kind == kind && e.order_id.as_deref() == Some(order))
            .unwrap_or_else(|| panic!("no {kind} for {order}: {notes:?}"))
            .data
            .clone()
    };
    use procure_domain::events::EventType;
    let expiring = of(EventType::StorageExpiring, &forget);
    let ended = expiring["free_storage_ended_at_ms"].as_i64().unwrap();
    assert_eq!(
        expiring["dispose_after_ms"].as_i64().unwrap(),
        ended + 3_000
    );
    assert_eq!(expiring["items"][0]["line_no"], 1);
    let due = of(EventType::ChargeDue, &keep);
    assert_eq!(due["kind"], "storage_extension");
    assert_eq!(due["amount"], order["charges"][0]["amount"]);
    assert_eq!(due["payment_intent_id"], order["charges"][0]["intent_id"]);
    assert!(
        !notes.iter().any(|e| e.kind == EventType::OrderDisposed),
        "a disposal is no customer message of its own"
    );
    let log = app
        .system
        .store
        .subject_events(&format!("order:{forget}"))
        .await
        .unwrap();
    assert_eq!(log.last().unwrap().kind, EventType::OrderDisposed);
    // Disposed goods cannot be shipped.
    assert!(
        app.driver
            .request_parcel("cust-store", &[forget.as_str()], None)
            .await
            .is_err()
    );
    app.system.stop().await.unwrap();
}

/// Force a sandbox tracking status (what the carrier reports).
async fn force_tracking(app: &TestApp, number: &str, status: &str) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/tracking/{number}",
            app.system.sandbox_url
        ))
        .json(&json!({"status": status}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

#[tokio::test]
async fn a_delivery_exception_parks_the_order_for_an_operator_until_the_parcel_arrives() {
    // The carrier moves only when told: the exception lands before any delivery.
    let app = spawn_app_tracking(fast(), 3_600_000).await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let id = order_for(&app, idx, "cust-exc", "FR", "EUR", false).await;
    let item = into_warehouse(&app, &id).await["warehouse"].clone();
    let p = app
        .driver
        .request_parcel("cust-exc", &[id.as_str()], None)
        .await
        .unwrap();
    let pid = p["id"].as_str().unwrap().to_owned();
    wait_state(&app, &id, OrderState::Packing).await;
    let w = item["weight_g"].as_u64().unwrap() as u32;
    app.driver
        .pack(
            &pid,
            w,
            [
                item["dims"]["l_mm"].as_u64().unwrap() as u32,
                item["dims"]["w_mm"].as_u64().unwrap() as u32,
                item["dims"]["h_mm"].as_u64().unwrap() as u32,
            ],
        )
        .await
        .unwrap();
    let shipped = wait_any_charge_or_shipped(&app, &pid).await;
    app.driver.pay_charges(&shipped).await.unwrap();
    let shipped = wait_parcel_with_tracking(&app, &pid).await;
    let number = shipped["tracking_number"].as_str().unwrap().to_owned();
    force_tracking(&app, &number, "Exception").await;
    let parked = wait_state(&app, &id, OrderState::NeedsOperator).await;
    assert!(
        reasons(&parked).pop().unwrap().contains("Exception"),
        "{parked}"
    );
    // The operator sorts it out with the carrier; the parcel is delivered after all.
    force_tracking(&app, &number, "Delivered").await;
    let done = wait_state(&app, &id, OrderState::Completed).await;
    assert!(
        reasons(&done)
            .iter()
            .any(|r| r.contains("Delivered") || r.contains("delivered"))
    );
    // The event log tells the storefront the same story, in order.
    use procure_domain::events::EventType;
    let kinds = |subject: String| {
        let store = app.system.store.clone();
        async move {
            store
                .subject_events(&subject)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect::<Vec<_>>()
        }
    };
    let parcel = kinds(format!("parcel:{pid}")).await;
    let at = |k| {
        parcel
            .iter()
            .position(|p| *p == k)
            .unwrap_or_else(|| panic!("{k}: {parcel:?}"))
    };
    assert!(
        at(EventType::ParcelPacked) < at(EventType::ParcelShipped)
            && at(EventType::ParcelShipped) < at(EventType::ParcelException)
            && at(EventType::ParcelException) < at(EventType::ParcelDelivered),
        "{parcel:?}"
    );
    let order = kinds(format!("order:{id}")).await;
    assert!(order.contains(&EventType::OrderNeedsOperator), "{order:?}");
    assert_eq!(order.last(), Some(&EventType::OrderCompleted), "{order:?}");
    app.system.stop().await.unwrap();
}

/// A parcel tracked for long enough continues as new (here every 2 polls); each run's history
/// replays against today's code.
#[tokio::test]
async fn long_tracking_continues_as_new_and_the_first_run_replays() {
    let app = spawn_app_tracking(
        OrderTimings {
            parcel_polls_per_run: 2,
            ..fast()
        },
        3_600_000,
    )
    .await;
    let idx = sku_cheapest_on(&app, "1688").await;
    let id = order_for(&app, idx, "cust-can", "NL", "EUR", false).await;
    into_warehouse(&app, &id).await;
    let p = app
        .driver
        .request_parcel("cust-can", &[id.as_str()], None)
        .await
        .unwrap();
    let pid = p["id"].as_str().unwrap().to_owned();
    wait_state(&app, &id, OrderState::Packing).await;
    app.driver.pack(&pid, 400, [200, 150, 100]).await.unwrap();
    let shipped = wait_any_charge_or_shipped(&app, &pid).await;
    app.driver.pay_charges(&shipped).await.unwrap();
    let shipped = wait_parcel_with_tracking(&app, &pid).await;
    // The parcel stays in transit: polls accumulate (one a second), runs roll over.
    let number = shipped["tracking_number"].as_str().unwrap().to_owned();

    let client = test_client("e2e").await;
    let wf_id = procure_workflows::parcel_workflow_id(&pid);
    let query = format!("WorkflowId = '{wf_id}' AND ExecutionStatus = 'ContinuedAsNew'");
    let deadline = Instant::now() + Duration::from_secs(60);
    let first_run = loop {
        use futures_util::StreamExt;
        let runs: Vec<_> = client
            .list_workflows(query.clone(), Default::default())
            .collect()
            .await;
        if let Some(Ok(run)) = runs.into_iter().next() {
            break run.run_id().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the parcel workflow never continued as new"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    force_tracking(&app, &number, "Delivered").await;
    wait_state(&app, &id, OrderState::Completed).await;

    replay(&history_json(&client, &wf_id, &first_run).await).await;
    app.system.stop().await.unwrap();
}
