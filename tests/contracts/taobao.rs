//! Contract tests of the Taobao Global (IOP) adapter and sandbox against tests/contracts/taobao/
//! (docs/vendors/taobao.md). For every fixture: the adapter parses the documented answer
//! (`*_parses_*`), sends the documented parameters (`*_sends_*`), and the sandbox answers a
//! signed request in the documented shape (`*_sandbox_*`).
//!
//! One relaxation, for the sandbox only: `item_id` and `sku_id` are int64 in most of the SDK's
//! answer types and strings in others (its author notes the platform sends either), and the
//! sandbox's catalogue ids are strings (`tb…`), so the shape check leaves those two keys' JSON
//! type open. The adapter reads both.

use super::harness::*;
use procure_adapters::market::{
    CargoLine, DeliveryAddress, LogisticsInfo, PurchaseRequest, Quote, QuotedLine,
};
use procure_adapters::taobao::{
    CreatedPurchase, Taobao, TaobaoConfig, TaobaoOrder, TaobaoOrderStatus, TaobaoPayOutcome,
    TaobaoSku,
};
use serde_json::{Value, json};

/// IOP's system parameters, which the fixtures do not list.
const SYSTEM_PARAMS: [&str; 5] = [
    "app_key",
    "access_token",
    "sign_method",
    "timestamp",
    "sign",
];

fn name(api: &str) -> String {
    format!("taobao/{api}")
}

/// reqwest is built without a default TLS crypto provider; every test here builds clients.
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client(base: &str) -> Taobao {
    tls();
    Taobao::new(TaobaoConfig {
        base_url: base.to_owned(),
        ..TaobaoConfig::default()
    })
    .expect("client")
}

/// A recorder answering the fixture's documented response verbatim.
async fn recorder(api: &str) -> (Fixture, Recorder) {
    let f = fixture(&name(api));
    let rec = Recorder::answering(response_literal(&name(api))).await;
    (f, rec)
}

/// Every request the adapter sent went to the fixture's api with documented parameters.
fn assert_documented_requests(f: &Fixture, rec: &Recorder) {
    let seen = rec.received();
    assert!(!seen.is_empty(), "{}: nothing sent", f.api);
    for r in seen {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/rest{}", f.api));
        let m = request_mismatches(f, &r.params, &SYSTEM_PARAMS);
        assert!(m.is_empty(), "{}: {m:#?}\nsent {:#?}", f.api, r.params);
    }
}

fn address() -> DeliveryAddress {
    DeliveryAddress {
        full_name: "Wang Wei".into(),
        mobile: "13800000000".into(),
        post_code: "518000".into(),
        province: "广东省".into(),
        city: "深圳市".into(),
        area: "宝安区".into(),
        town: "新安街道".into(),
        address: "Warehouse 1".into(),
    }
}

fn request(out: &str, item: &str, sku: &str, quantity: u32) -> PurchaseRequest {
    PurchaseRequest {
        out_order_id: out.into(),
        lines: vec![CargoLine {
            offer_id: item.into(),
            spec_id: sku.into(),
            quantity,
            max_unit_price_fen: 1_000_000,
        }],
        address: address(),
        max_total_fen: 10_000_000,
    }
}

/// The documented shape with `item_id` / `sku_id` of any JSON type (see the module doc).
fn ids_open(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if k == "item_id" || k == "sku_id" {
                        Value::Null
                    } else {
                        ids_open(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(ids_open).collect()),
        other => other.clone(),
    }
}

fn assert_sandbox_shape(f: &Fixture, answer: &Value) {
    assert_eq!(answer["code"], "0", "{}: {answer:#}", f.api);
    let m = shape_mismatches(&ids_open(&f.response), answer);
    assert!(m.is_empty(), "{}: {m:#?}\n{answer:#}", f.api);
}

/// A correctly signed IOP request to the in-process sandbox.
async fn signed(
    base: &str,
    sb: &procure_sandbox::Sandbox,
    api: &str,
    params: &[(&str, String)],
) -> Value {
    let cfg = sb.config();
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    all.push(("app_key".into(), cfg.taobao_app_key.clone()));
    all.push(("access_token".into(), cfg.taobao_access_token.clone()));
    all.push(("sign_method".into(), "sha256".into()));
    all.push((
        "timestamp".into(),
        procure_domain::clock::now_ms().to_string(),
    ));
    let sign = procure_domain::signing::iop_signature(
        api,
        all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.taobao_app_secret,
    );
    all.push(("sign".into(), sign));
    tls();
    let resp = reqwest::Client::new()
        .post(format!("{base}/rest{api}"))
        .form(&all)
        .send()
        .await
        .expect("sandbox");
    assert_eq!(resp.status(), 200, "{api}");
    resp.json().await.expect("json answer")
}

async fn control(base: &str, path: &str, body: Value) {
    control_with(reqwest::Method::POST, base, path, body).await
}

async fn control_with(method: reqwest::Method, base: &str, path: &str, body: Value) {
    tls();
    let resp = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("sandbox control");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
}

/// A Taobao offer of the sandbox catalogue with stock for a few orders.
fn offer(sb: &procure_sandbox::Sandbox) -> procure_sandbox::Offer {
    sb.offers()
        .into_iter()
        .find(|o| o.platform == "taobao" && o.stock >= 10)
        .expect("a taobao offer in stock")
}

/// An order bought through the adapter against the sandbox: created, optionally paid and
/// shipped (the seller ships on the control endpoint).
async fn sandbox_order(
    base: &str,
    sb: &procure_sandbox::Sandbox,
    out: &str,
    pay: bool,
    ship: bool,
) -> TaobaoOrder {
    let o = offer(sb);
    let tb = client(base);
    let req = request(out, &o.offer_id, &o.spec_id, 1);
    let quote = tb.render(&req).await.expect("render").quote();
    let created = tb.create(&req, &quote).await.expect("create");
    if pay {
        assert_eq!(
            tb.pay(&created.purchase_order_id).await.expect("pay"),
            TaobaoPayOutcome::Paid
        );
    }
    if ship {
        let path = format!(
            "/_sandbox/marketplace/orders/{}/ship",
            created.purchase_order_id
        );
        control(base, &path, json!({})).await;
    }
    tb.order(&created.purchase_order_id).await.expect("order")
}

// ---- /product/get ----

#[tokio::test]
async fn product_get_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("product_get").await;
    let p = client(&rec.base_url).product("731040994692").await.unwrap();
    assert_eq!(p.item_id, "731040994692");
    assert_eq!(p.title, "陶瓷马克杯 350ml");
    // The promotion price (fen) is what a buyer pays now; the list price is 4500.
    assert_eq!(
        p.skus,
        [TaobaoSku {
            sku_id: "5432109876543".into(),
            price_fen: 4200,
            quantity: 120
        }]
    );
    assert_documented_requests(&f, &rec);
}

#[tokio::test]
async fn product_get_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("product_get"));
    let (base, sb) = crate::sandbox().await;
    let o = offer(&sb);
    let v = signed(
        &base,
        &sb,
        "/product/get",
        &[("item_id", o.offer_id.clone())],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    assert_eq!(
        v["data"]["sku_list"][0]["promotion_price"],
        json!(o.price_fen)
    );
}

// ---- /purchase/order/render ----

#[tokio::test]
async fn purchase_order_render_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("purchase_order_render").await;
    let req = request("o-1", "4096709792297020", "32248575036476", 2);
    let r = client(&rec.base_url).render(&req).await.unwrap();
    assert_eq!(r.total_amount_fen, 2615, "total_real_pay_price.amount, fen");
    assert_eq!(r.postage_fen, 615, "mainland_shipping_fee.amount");
    assert_eq!(r.lines.len(), 1);
    assert_eq!(
        (r.lines[0].item_id.as_str(), r.lines[0].sku_id.as_str()),
        ("4096709792297020", "32248575036476")
    );
    assert_eq!((r.lines[0].quantity, r.lines[0].price_fen), (2, 1000));
    assert_documented_requests(&f, &rec);
    let sent = rec.only().params;
    let items: Value = serde_json::from_str(&sent["render_item_List"]).unwrap();
    assert_eq!(
        items,
        json!([{"item_id": "4096709792297020", "sku_id": "32248575036476", "quantity": 2}])
    );
    let to: Value = serde_json::from_str(&sent["receiver_address"]).unwrap();
    assert_eq!(
        (&to["name"], &to["city"]),
        (&json!("Wang Wei"), &json!("深圳市"))
    );
}

#[tokio::test]
async fn purchase_order_render_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("purchase_order_render"));
    let (base, sb) = crate::sandbox().await;
    let o = offer(&sb);
    let items = json!([{"item_id": o.offer_id, "sku_id": o.spec_id, "quantity": 2}]);
    let to = f.request.params["receiver_address"].to_string();
    let v = signed(
        &base,
        &sb,
        "/purchase/order/render",
        &[
            ("render_item_List", items.to_string()),
            ("receiver_address", to),
            ("need_supplychain_service", "false".into()),
        ],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    let data = &v["result"]["data"];
    let postage = data["render_item_list"][0]["mainland_shipping_fee"]["amount"]
        .as_i64()
        .unwrap();
    assert_eq!(
        data["total_real_pay_price"]["amount"],
        json!(o.price_fen * 2 + postage)
    );
}

// ---- /purchase/order/create ----

fn create_quote() -> Quote {
    Quote {
        lines: vec![QuotedLine {
            offer_id: "4096709792297020".into(),
            spec_id: "32248575036476".into(),
            unit_price_fen: 1000,
        }],
        total_fen: 2000,
    }
}

#[tokio::test]
async fn purchase_order_create_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("purchase_order_create").await;
    let req = request("TESTMORE100000004", "4096709792297020", "32248575036476", 1);
    let created = client(&rec.base_url)
        .create(&req, &create_quote())
        .await
        .unwrap();
    // The HTTP client scrubs query strings off every URL in an answer body before anyone
    // reads it (crate::http), so payment_url arrives without its query.
    assert_eq!(
        created,
        CreatedPurchase {
            purchase_order_id: "200078851363".into(),
            outer_purchase_id: Some("TESTMORE100000004".into()),
            payment_url: Some("https://pay.example/cashier".into()),
            sub_order_ids: vec!["2912066688476065752".into()],
        }
    );
    assert_documented_requests(&f, &rec);
    let sent = rec.only().params;
    assert_eq!(sent["outer_purchase_id"], "TESTMORE100000004");
    assert_eq!(sent["purchase_amount"], "2000", "fen");
    let lines: Value = serde_json::from_str(&sent["order_line_list"]).unwrap();
    assert_eq!(
        (&lines[0]["price"], &lines[0]["quantity"]),
        (&json!(1000), &json!(1))
    );
}

#[tokio::test]
async fn purchase_order_create_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("purchase_order_create"));
    let (base, sb) = crate::sandbox().await;
    let o = offer(&sb);
    let req = request("C-1", &o.offer_id, &o.spec_id, 1);
    let total = client(&base).render(&req).await.unwrap().total_amount_fen;
    let lines = json!([{"item_id": o.offer_id, "sku_id": o.spec_id, "quantity": 1,
                        "currency": "CNY", "price": o.price_fen, "order_line_no": "C-1-1"}]);
    let params = [
        ("outer_purchase_id", "C-1".to_string()),
        ("purchase_amount", total.to_string()),
        ("order_line_list", lines.to_string()),
        ("receiver", f.request.params["receiver"].to_string()),
    ];
    let v = signed(&base, &sb, "/purchase/order/create", &params).await;
    assert_sandbox_shape(&f, &v);
    // Idempotent on outer_purchase_id: the repeat answers the same order.
    let again = signed(&base, &sb, "/purchase/order/create", &params).await;
    assert_eq!(
        again["data"]["order_list"][0]["purchase_id"],
        v["data"]["order_list"][0]["purchase_id"]
    );
    let purchases = sb
        .ledger()
        .into_iter()
        .filter(|e| e.kind == "purchase")
        .count();
    assert_eq!(purchases, 1);
}

// ---- /purchase/order/batch/pay ----

#[tokio::test]
async fn purchase_order_batch_pay_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("purchase_order_batch_pay").await;
    let tb = client(&rec.base_url);
    assert_eq!(
        tb.pay("200078851363").await.unwrap(),
        TaobaoPayOutcome::Paid
    );
    assert_eq!(
        tb.pay("200078851364").await.unwrap(),
        TaobaoPayOutcome::Failed {
            reason: "TRADE_CLOSED".into(),
            message: "order is closed".into()
        }
    );
    assert_documented_requests(&f, &rec);
    assert_eq!(
        rec.received()[0].params["purchaseOrderIdList"],
        "[200078851363]"
    );
}

#[tokio::test]
async fn purchase_order_batch_pay_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("purchase_order_batch_pay"));
    let (base, sb) = crate::sandbox().await;
    let payable = sandbox_order(&base, &sb, "P-1", false, false).await;
    let closed = sandbox_order(&base, &sb, "P-2", false, false).await;
    let path = format!("/_sandbox/orders/{}/cancel", closed.purchase_order_id);
    control(&base, &path, json!({})).await;
    let ids = format!(
        "[{},{}]",
        payable.purchase_order_id, closed.purchase_order_id
    );
    let v = signed(
        &base,
        &sb,
        "/purchase/order/batch/pay",
        &[("purchaseOrderIdList", ids)],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    assert_eq!(
        v["data"]["will_pay_purchase_order_ids"],
        json!([payable.purchase_order_id])
    );
    assert_eq!(
        v["data"]["pay_failure_purchase_order_ids"],
        json!([closed.purchase_order_id])
    );
}

// ---- /purchase/orders/query ----

#[tokio::test]
async fn purchase_orders_query_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("purchase_orders_query").await;
    let tb = client(&rec.base_url);
    let o = tb.order("200078283966").await.unwrap();
    assert_eq!(o.status, TaobaoOrderStatus::WaitBuyerConfirmGoods);
    assert_eq!((o.total_amount_fen, o.pay_amount_fen), (2615, 2615));
    assert!(o.was_paid);
    assert_eq!(o.sub_order_ids, ["2912066688476065752"]);
    assert_eq!(o.outer_purchase_id.as_deref(), Some("TESTMORE100000004"));
    let by_outer = tb.order_by_outer_id("TESTMORE100000004").await.unwrap();
    assert_eq!(by_outer, Some(o));
    assert_documented_requests(&f, &rec);
    let seen = rec.received();
    assert_eq!(seen[0].params["purchase_ids"], "[200078283966]");
    assert_eq!(seen[1].params["outer_purchase_id"], "TESTMORE100000004");
}

#[tokio::test]
async fn purchase_orders_query_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("purchase_orders_query"));
    let (base, sb) = crate::sandbox().await;
    let o = sandbox_order(&base, &sb, "Q-1", true, true).await;
    assert_eq!(o.status, TaobaoOrderStatus::WaitBuyerConfirmGoods);
    let v = signed(
        &base,
        &sb,
        "/purchase/orders/query",
        &[("purchase_ids", format!("[{}]", o.purchase_order_id))],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    let by_outer = signed(
        &base,
        &sb,
        "/purchase/orders/query",
        &[("outer_purchase_id", "Q-1".into())],
    )
    .await;
    assert_sandbox_shape(&f, &by_outer);
    assert_eq!(
        v["data"]["purchase_orders"],
        by_outer["data"]["purchase_orders"]
    );
}

// ---- /logistics/detail/get ----

#[tokio::test]
async fn logistics_detail_get_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("logistics_detail_get").await;
    let parcels = client(&rec.base_url)
        .line_logistics("2912066688476065752")
        .await
        .unwrap();
    assert_eq!(
        parcels,
        [LogisticsInfo {
            bill_no: "78912345678901".into(),
            company: "中通快递".into()
        }]
    );
    assert_documented_requests(&f, &rec);
}

#[tokio::test]
async fn logistics_detail_get_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("logistics_detail_get"));
    let (base, sb) = crate::sandbox().await;
    let o = sandbox_order(&base, &sb, "L-1", true, true).await;
    let line = o.sub_order_ids[0].clone();
    let v = signed(
        &base,
        &sb,
        "/logistics/detail/get",
        &[("purchase_order_line_id", line)],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    // The adapter reads the order's lines from the query, then each line's parcels.
    let parcels = client(&base).logistics(&o.purchase_order_id).await.unwrap();
    assert_eq!(parcels.len(), 1);
    assert_eq!(
        json!(parcels[0].bill_no),
        v["result"]["data"]["pnm_logistics_details"][0]["mail_no"]
    );
}

// ---- /purchase/order/asyn/cancel ----

#[tokio::test]
async fn purchase_order_asyn_cancel_parses_the_documented_answer_and_sends_documented_params() {
    let (f, rec) = recorder("purchase_order_asyn_cancel").await;
    let order = TaobaoOrder {
        purchase_order_id: "200049962700".into(),
        outer_purchase_id: None,
        status: TaobaoOrderStatus::WaitBuyerPay,
        total_amount_fen: 2000,
        pay_amount_fen: 0,
        was_paid: false,
        close_reason: None,
        sub_order_ids: vec!["200049962701".into()],
        refund_id: None,
    };
    client(&rec.base_url)
        .request_cancel(&order, "buyer cancelled")
        .await
        .unwrap();
    assert_documented_requests(&f, &rec);
    let sent = rec.only().params;
    assert_eq!(sent["purchase_id"], "200049962700");
    assert_eq!(sent["sub_purchase_orderId_list"], r#"["200049962701"]"#);
}

#[tokio::test]
async fn purchase_order_asyn_cancel_sandbox_answers_in_the_documented_shape() {
    let f = fixture(&name("purchase_order_asyn_cancel"));
    let (base, sb) = crate::sandbox().await;
    // The seller must not have shipped yet: a paid order is cancellable until then.
    let seller = json!({"ship_after_ms": 3_600_000});
    control_with(
        reqwest::Method::PUT,
        &base,
        "/_sandbox/marketplace/seller",
        seller,
    )
    .await;
    let o = sandbox_order(&base, &sb, "X-1", true, false).await;
    assert_eq!(o.status, TaobaoOrderStatus::WaitSellerSendGoods);
    let subs = Value::from(o.sub_order_ids.clone()).to_string();
    let v = signed(
        &base,
        &sb,
        "/purchase/order/asyn/cancel",
        &[
            ("purchase_id", o.purchase_order_id.clone()),
            ("sub_purchase_orderId_list", subs),
            ("cancel_reason", "buyer cancelled".into()),
        ],
    )
    .await;
    assert_sandbox_shape(&f, &v);
    assert_eq!(v["success"], true);
    // The order reads closed and refunded in full (the sandbox refunds at once by default).
    let now = client(&base).order(&o.purchase_order_id).await.unwrap();
    assert_eq!(now.status, TaobaoOrderStatus::TradeClosed);
    assert_eq!(now.refunded_fen(), o.total_amount_fen);
}

// ---- /product/get, the whole item (import) ----

#[tokio::test]
async fn product_detail_parses_the_documented_answer_and_sends_documented_params() {
    use procure_adapters::market::{Attribute, SkuDetail};
    let (f, rec) = recorder("product_get.detail").await;
    let p = client(&rec.base_url)
        .product_detail("731040994692")
        .await
        .unwrap();
    assert_eq!(p.product_id, "731040994692");
    assert_eq!(p.title, "陶瓷马克杯 350ml");
    assert_eq!(
        p.image_urls,
        ["https://img.alicdn.com/imgextra/i1/100298765/O1CN01mug_!!100298765.jpg"]
    );
    assert!(
        p.attributes.is_empty(),
        "/product/get lists no item properties"
    );
    assert_eq!(
        p.skus,
        [SkuDetail {
            spec_id: "5432109876543".into(),
            attributes: vec![Attribute::new("颜色分类", "白色")],
            price_fen: 4200,
            stock: Some(120),
            image_url: Some(
                "https://img.alicdn.com/imgextra/i2/100298765/O1CN01white_!!100298765.jpg".into()
            ),
        }]
    );
    assert_eq!(p.min_order_quantity, Some(2), "begin_amount");
    assert_eq!(p.seller.id.as_deref(), Some("100298765"));
    assert_eq!(p.seller.name.as_deref(), Some("sample shop"));
    assert_eq!((p.weight_g, p.dimensions), (None, None));
    assert_documented_requests(&f, &rec);
}

#[tokio::test]
async fn product_detail_sandbox_answers_any_id_in_the_documented_shape() {
    let f = fixture(&name("product_get.detail"));
    let (base, sb) = crate::sandbox().await;
    let tb = client(&base);
    for n in 0..12u64 {
        let id = (731_040_994_692 + n * 31).to_string();
        let v = signed(&base, &sb, "/product/get", &[("item_id", id.clone())]).await;
        assert_sandbox_shape(&f, &v);
        let again = signed(&base, &sb, "/product/get", &[("item_id", id.clone())]).await;
        let strip = |mut v: Value| {
            v["request_id"] = Value::Null;
            v["_trace_id_"] = Value::Null;
            v
        };
        assert_eq!(
            strip(v.clone()),
            strip(again),
            "the same id is the same item"
        );
        let d = tb.product_detail(&id).await.unwrap();
        assert!((1..=4).contains(&d.skus.len()));
        assert_eq!(
            d.skus.len(),
            v["data"]["sku_list"].as_array().unwrap().len()
        );
        // The price source reads the same SKUs.
        let priced = tb.product(&id).await.unwrap();
        assert_eq!(priced.skus[0].price_fen, d.skus[0].price_fen);
        assert_eq!(priced.skus[0].sku_id, d.skus[0].spec_id);
    }
    // A seeded offer answers as before, and the detail reads it.
    let o = offer(&sb);
    let d = tb.product_detail(&o.offer_id).await.unwrap();
    assert_eq!(
        (d.skus[0].spec_id.as_str(), d.skus[0].price_fen),
        (o.spec_id.as_str(), o.price_fen)
    );
}

#[tokio::test]
async fn product_detail_delisted_on_demand_is_listing_gone() {
    let (base, sb) = crate::sandbox().await;
    let tb = client(&base);
    let o = offer(&sb);
    for id in ["731040994692", o.offer_id.as_str()] {
        control(
            &base,
            "/_sandbox/faults",
            json!({"platform": "taobao", "api": "/product/get", "kind": "delisted", "count": 1}),
        )
        .await;
        assert_eq!(
            tb.product_detail(id).await.unwrap_err(),
            procure_adapters::market::MarketError::ListingGone,
            "{id}"
        );
        assert!(tb.product_detail(id).await.is_ok(), "{id}: spent");
    }
    assert_eq!(
        tb.product_detail("tb-no-such-item").await.unwrap_err(),
        procure_adapters::market::MarketError::ListingGone
    );
}
