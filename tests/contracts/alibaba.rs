//! Contract tests of the 1688 adapter and sandbox against tests/contracts/1688/: for every
//! fixture, (1) the adapter parses the documented response into the documented values, (2) the
//! request it sends has the documented names and nesting, (3) the sandbox answers the same call
//! in the documented shape. The documented error answers follow at the end.

use crate::harness::*;
use procure_adapters::alibaba::{
    Alibaba1688, AlibabaConfig, MarketOrder, MarketOrderStatus, OrderDetail, PayOutcome,
    RefundReason,
};
use procure_adapters::market::{CargoLine, DeliveryAddress, MarketError, PurchaseRequest};
use procure_domain::signing::aop_signature;
use serde_json::{Value, json};

/// The AOP system parameters, which the fixtures do not list.
const SYSTEM: &[&str] = &["access_token", "_aop_timestamp", "_aop_signature"];
const TRADE: &str = "com.alibaba.trade";
const PRODUCT: &str = "com.alibaba.product";
const LOGISTICS: &str = "com.alibaba.logistics";

fn client(base_url: &str) -> Alibaba1688 {
    procure::system::install_crypto_provider();
    Alibaba1688::new(AlibabaConfig {
        base_url: base_url.into(),
        ..AlibabaConfig::default()
    })
    .unwrap()
}

/// A recorder answering the fixture's documented response, the fixture and a client of it.
async fn documented(name: &str) -> (Recorder, Fixture, Alibaba1688) {
    let recorder = Recorder::answering(response_literal(name)).await;
    let c = client(&recorder.base_url);
    (recorder, fixture(name), c)
}

fn assert_request(f: &Fixture, recorder: &Recorder) {
    let sent = recorder.only();
    assert_eq!(sent.method, "POST", "{}", f.api);
    assert!(
        sent.path.starts_with("/openapi/param2/1/")
            && sent.path.ends_with(&format!("/{}/demo1688", f.api)),
        "{}: {}",
        f.api,
        sent.path
    );
    assert!(
        sent.body.contains("_aop_signature="),
        "a signed form body: {}",
        sent.body
    );
    let found = request_mismatches(f, &sent.params, SYSTEM);
    assert!(
        found.is_empty(),
        "{}: {found:#?}\nsent {:#?}",
        f.api,
        sent.params
    );
}

fn assert_shape(f: &Fixture, answer: &Value) {
    let found = shape_mismatches(&f.response, answer);
    assert!(
        found.is_empty(),
        "{}: {found:#?}\nsandbox answered {answer:#}",
        f.api
    );
}

/// A correctly signed call to the sandbox (demo credentials), answered as JSON.
async fn aop(base: &str, namespace: &str, api: &str, params: &[(&str, &str)]) -> Value {
    let path = format!("param2/1/{namespace}/{api}/demo1688");
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("access_token".into(), "demo1688-token".into()));
    all.push((
        "_aop_timestamp".into(),
        procure_domain::clock::now_ms().to_string(),
    ));
    let sig = aop_signature(
        &path,
        all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "demo1688-secret",
    );
    all.push(("_aop_signature".into(), sig));
    procure::system::install_crypto_provider();
    let r = reqwest::Client::new()
        .post(format!("{base}/openapi/{path}"))
        .form(&all)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

async fn control(base: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    procure::system::install_crypto_provider();
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// A sandbox with its own settings (the shared `crate::sandbox()` takes none).
async fn sandbox_with(cfg: procure_sandbox::SandboxConfig) -> String {
    let sandbox = procure_sandbox::Sandbox::new(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(procure_sandbox::serve(
        listener,
        sandbox,
        std::future::pending(),
    ));
    base
}

fn address() -> DeliveryAddress {
    DeliveryAddress {
        full_name: "张三".into(),
        mobile: "15251667788".into(),
        post_code: "000000".into(),
        province: "浙江省".into(),
        city: "杭州市".into(),
        area: "滨江区".into(),
        town: String::new(),
        address: "网商路699号".into(),
    }
}

/// A purchase of `quantity` of the sandbox's first demo listing.
fn request(out: &str, quantity: u32) -> PurchaseRequest {
    let p = &procure_sandbox::catalogue::demo()[0];
    PurchaseRequest {
        out_order_id: out.into(),
        lines: vec![CargoLine {
            offer_id: p.offer_id.clone(),
            spec_id: p.spec_id.clone(),
            quantity,
            max_unit_price_fen: p.price_fen,
        }],
        address: address(),
        max_total_fen: 10_000_000,
    }
}

/// A sandbox order created and (when `paid`) paid through the adapter.
async fn sandbox_order(base: &str, out: &str, paid: bool) -> (String, i64) {
    let c = client(base);
    let created = c.create_order(&request(out, 2)).await.unwrap();
    if paid {
        let pay = c
            .pay(
                &created.order_id,
                created.total_success_amount_fen,
                &format!("pay-{out}"),
            )
            .await
            .unwrap();
        assert_eq!(pay, PayOutcome::Paid);
    }
    (created.order_id, created.total_success_amount_fen)
}

// ---- alibaba.cross.productInfo ----------------------------------------------------------------

const PRODUCT_INFO: &str = "1688/alibaba.cross.productInfo";

#[tokio::test]
async fn product_info_parses_the_documented_answer() {
    let (rec, f, c) = documented(PRODUCT_INFO).await;
    let info = c.product_info("573741401425").await.unwrap();
    assert_eq!(info.product_id, "584051070147");
    assert_eq!(info.status, "published");
    assert_eq!(info.skus.len(), 1);
    assert_eq!(info.skus[0].spec_id, "fb82997a5b64af3c729cea89bef44409");
    assert_eq!(info.skus[0].price_fen, 4000, "price 40 is yuan");
    assert_eq!(info.skus[0].amount_on_sale, 1200);
    assert_request(&f, &rec);
}

#[tokio::test]
async fn product_info_sandbox_answers_the_documented_shape() {
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(PRODUCT_INFO);
    let p = &procure_sandbox::catalogue::demo()[0];
    let v = aop(
        &base,
        PRODUCT,
        "alibaba.cross.productInfo",
        &[("productId", &p.offer_id)],
    )
    .await;
    assert_shape(&f, &v);
    assert_eq!(
        client(&base).product_info(&p.offer_id).await.unwrap().skus[0].price_fen,
        p.price_fen,
        "the sandbox's yuan number reads back as the listing's fen"
    );
}

// ---- alibaba.createOrder.preview --------------------------------------------------------------

const PREVIEW: &str = "1688/alibaba.createOrder.preview";

#[tokio::test]
async fn preview_parses_the_documented_answer() {
    let (rec, f, c) = documented(PREVIEW).await;
    let preview = c.preview(&request("PO-DOC", 2)).await.unwrap();
    assert_eq!(preview.sum_payment_fen, 4400);
    assert_eq!(preview.sum_carriage_fen, 800);
    assert_eq!(preview.sum_goods_fen, 3600);
    assert_eq!(
        preview.total_fen(),
        4400,
        "sumPayment already includes carriage"
    );
    assert_eq!(preview.cargo[0].offer_id, "548818919805");
    assert_eq!(
        preview.cargo[0].final_unit_price_fen, 1800,
        "finalUnitPrice 18 is yuan"
    );
    assert_eq!(preview.cargo[0].amount_fen, 3600, "amount 36 is yuan");
    assert_request(&f, &rec);
}

#[tokio::test]
async fn preview_sandbox_answers_the_documented_shape() {
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(PREVIEW);
    let p = &procure_sandbox::catalogue::demo()[0];
    let cargo = json!([{"offerId": p.offer_id.parse::<u64>().unwrap(), "specId": p.spec_id, "quantity": 2}]);
    let addr = json!({"fullName": "张三", "mobile": "15251667788", "postCode": "000000",
                      "provinceText": "浙江省", "cityText": "杭州市", "areaText": "滨江区",
                      "townText": "", "address": "网商路699号"});
    let v = aop(
        &base,
        TRADE,
        "alibaba.createOrder.preview",
        &[
            ("flow", "general"),
            ("addressParam", &addr.to_string()),
            ("cargoParamList", &cargo.to_string()),
        ],
    )
    .await;
    assert_shape(&f, &v);
    let r = &v["orderPreviewResuslt"][0];
    let goods = p.price_fen * 2;
    assert_eq!(r["sumPaymentNoCarriage"], json!(goods));
    assert_eq!(r["sumCarriage"], json!(p.domestic_shipping_fen));
    assert_eq!(r["sumPayment"], json!(goods + p.domestic_shipping_fen));
}

// ---- alibaba.trade.createCrossOrder -----------------------------------------------------------

const CREATE: &str = "1688/alibaba.trade.createCrossOrder";

#[tokio::test]
async fn create_parses_the_documented_answer() {
    let (rec, f, c) = documented(CREATE).await;
    let created = c.create_order(&request("PO-DOC", 2)).await.unwrap();
    assert_eq!(created.order_id, "87407346014789305");
    assert_eq!(created.total_success_amount_fen, 156_800, "fen");
    assert_eq!(created.post_fee_fen, 800);
    assert!(created.failed_offers.is_empty());
    assert_request(&f, &rec);
    assert_eq!(rec.only().params["outOrderId"], "PO-DOC");
}

#[tokio::test]
async fn create_sandbox_answers_the_documented_shape() {
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(CREATE);
    let req = request("PO-SHAPE-C", 1);
    // The adapter's own request, replayed signed: the sandbox sees what 1688 would.
    let rec = Recorder::answering(response_literal(CREATE)).await;
    client(&rec.base_url).create_order(&req).await.unwrap();
    let sent = rec.only().params;
    let params: Vec<(&str, &str)> = sent
        .iter()
        .filter(|(k, _)| !SYSTEM.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let v = aop(&base, TRADE, "alibaba.trade.createCrossOrder", &params).await;
    assert_shape(&f, &v);
}

// ---- alibaba.trade.pay.protocolPay.preparePay -------------------------------------------------

const PAY: &str = "1688/alibaba.trade.pay.protocolPay.preparePay";

#[tokio::test]
async fn pay_parses_the_documented_answer_and_sends_one_json_param() {
    let (rec, f, c) = documented(PAY).await;
    assert_eq!(
        c.pay("1938489823", 615, "pay-1").await.unwrap(),
        PayOutcome::Paid
    );
    assert_request(&f, &rec);
    let param: Value =
        serde_json::from_str(&rec.only().params["tradeWithholdPreparePayParam"]).unwrap();
    assert_eq!(
        param,
        json!({"orderId": 1_938_489_823u64, "payAmount": 615, "opRequestId": "pay-1"})
    );
}

#[tokio::test]
async fn pay_sandbox_answers_the_documented_shape() {
    let (base, sb) = crate::sandbox().await;
    let f = fixture(PAY);
    let (id, total) = sandbox_order(&base, "PO-SHAPE-P", false).await;
    let param =
        json!({"orderId": id.parse::<u64>().unwrap(), "payAmount": total, "opRequestId": "op-1"});
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.pay.protocolPay.preparePay",
        &[("tradeWithholdPreparePayParam", &param.to_string())],
    )
    .await;
    assert_shape(&f, &v);
    assert_eq!(v["result"]["result"]["paySuccess"], true);
    let paid: Vec<_> = sb
        .ledger()
        .into_iter()
        .filter(|e| e.kind == "marketplace_payment")
        .collect();
    assert_eq!((paid.len(), paid[0].amount_minor), (1, total));
}

// ---- alibaba.trade.get.buyerView --------------------------------------------------------------

const BUYER_VIEW: &str = "1688/alibaba.trade.get.buyerView";

#[tokio::test]
async fn buyer_view_parses_the_documented_answer() {
    let (rec, f, c) = documented(BUYER_VIEW).await;
    let d = c.order_detail("58218860983545941").await.unwrap();
    assert_eq!(d.order.order_id, "58218860983545941", "idOfStr");
    assert_eq!(d.order.total_amount_fen, 615, "totalAmount 6.15 is yuan");
    assert_eq!(d.goods_fen, 30, "sumProductPayment 0.3 is yuan");
    assert_eq!(d.order.status, MarketOrderStatus::WaitBuyerReceive);
    assert_eq!(d.refund_status.as_deref(), Some("waitselleragree"));
    assert_eq!(d.refund_fen, Some(0));
    assert_eq!(
        d.entry_ids,
        [
            "128403042259997715",
            "58218860985545944",
            "58218860986545944"
        ],
        "subItemIDString, else subItemID's literal digits"
    );
    assert_request(&f, &rec);
    assert_eq!(rec.only().params["webSite"], "1688");
}

#[tokio::test]
async fn buyer_view_sandbox_answers_the_documented_shape() {
    // The documented sample: shipped (logisticsItems) with a refund request open.
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(BUYER_VIEW);
    control(
        &base,
        reqwest::Method::PUT,
        "/_sandbox/marketplace/seller",
        json!({"ship_after_ms": 3_600_000, "refunds_at_once": false}),
    )
    .await;
    let (id, total) = sandbox_order(&base, "PO-SHAPE-BV", true).await;
    let c = client(&base);
    assert!(matches!(
        c.cancel_order(&id, "customer cancelled").await.unwrap(),
        procure_adapters::market::CancelOutcome::Pending { .. }
    ));
    control(
        &base,
        reqwest::Method::POST,
        &format!("/_sandbox/marketplace/orders/{id}/ship"),
        json!({}),
    )
    .await;
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.get.buyerView",
        &[("webSite", "1688"), ("orderId", &id)],
    )
    .await;
    assert_shape(&f, &v);
    let d = c.order_detail(&id).await.unwrap();
    assert_eq!(
        d.order.total_amount_fen, total,
        "totalAmount (yuan) × 100 = the total"
    );
    // Required: no webSite, a documented-style refusal.
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.get.buyerView",
        &[("orderId", &id)],
    )
    .await;
    assert_eq!(v["success"], "false", "{v}");
    assert!(
        v["errorCode"].is_string() && v["errorMessage"].is_string(),
        "{v}"
    );
}

// ---- alibaba.trade.getBuyerOrderList ----------------------------------------------------------

const ORDER_LIST: &str = "1688/alibaba.trade.getBuyerOrderList";

#[tokio::test]
async fn order_list_parses_the_documented_answer() {
    let (rec, f, c) = documented(ORDER_LIST).await;
    let o: MarketOrder = c.order_by_out_id("PO-DOC").await.unwrap().unwrap();
    assert_eq!(
        o.order_id, "196965465451498520",
        "a numeric idOfStr, digits kept"
    );
    assert_eq!(o.total_amount_fen, 1, "totalAmount 0.01 is yuan");
    assert_eq!(o.status, MarketOrderStatus::Cancel);
    assert_eq!(o.close_reason.as_deref(), Some("BUYER_NO_PAY"));
    assert_request(&f, &rec);
    assert_eq!(rec.only().params["outOrderId"], "PO-DOC");
}

#[tokio::test]
async fn order_list_sandbox_answers_the_documented_shape() {
    // The documented sample: an order closed before payment.
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(ORDER_LIST);
    let (id, _) = sandbox_order(&base, "PO-SHAPE-OL", false).await;
    control(
        &base,
        reqwest::Method::POST,
        &format!("/_sandbox/orders/{id}/cancel"),
        json!({"close_reason": "BUYER_NO_PAY"}),
    )
    .await;
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.getBuyerOrderList",
        &[("outOrderId", "PO-SHAPE-OL")],
    )
    .await;
    assert_shape(&f, &v);
}

// ---- alibaba.trade.getLogisticsInfos.buyerView ------------------------------------------------

const LOGISTICS_INFO: &str = "1688/alibaba.trade.getLogisticsInfos.buyerView";

#[tokio::test]
async fn logistics_parses_the_documented_answer() {
    let (rec, f, c) = documented(LOGISTICS_INFO).await;
    // The sample's entry carries no logisticsBillNo: nothing to track, and no error.
    assert_eq!(c.logistics("1221434").await.unwrap(), vec![]);
    assert_request(&f, &rec);
    assert_eq!(rec.only().params["webSite"], "1688");
    // With the documented bill number and company beside it, one shipment.
    let rec = Recorder::answering(
        r#"{"result":[{"logisticsId":"BX1","logisticsBillNo":"YT123","logisticsCompanyName":"YTO","status":"ACCEPT"}]}"#.into(),
    )
    .await;
    let found = client(&rec.base_url).logistics("1").await.unwrap();
    assert_eq!(
        (
            found.len(),
            found[0].bill_no.as_str(),
            found[0].company.as_str()
        ),
        (1, "YT123", "YTO")
    );
}

#[tokio::test]
async fn logistics_sandbox_answers_the_documented_shape() {
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(LOGISTICS_INFO);
    // seller_ship_ms 0: shipped on payment.
    let (id, _) = sandbox_order(&base, "PO-SHAPE-L", true).await;
    let v = aop(
        &base,
        LOGISTICS,
        "alibaba.trade.getLogisticsInfos.buyerView",
        &[("webSite", "1688"), ("orderId", &id)],
    )
    .await;
    assert_shape(&f, &v);
    let found = client(&base).logistics(&id).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].bill_no.starts_with("YT"), "{found:?}");
}

// ---- alibaba.trade.cancel ---------------------------------------------------------------------

const CANCEL: &str = "1688/alibaba.trade.cancel";

#[tokio::test]
async fn cancel_parses_the_documented_answer() {
    let (rec, f, c) = documented(CANCEL).await;
    c.trade_cancel("202711458975969812", "取消订单")
        .await
        .unwrap();
    assert_request(&f, &rec);
    // The refusal beside it: ORDER_STATUS_ERROR is a permanent rejection the cancel decides on.
    let mut refused: Value = serde_json::from_str(&f.response_text()).unwrap();
    refused["success"] = json!(false);
    refused["errorCode"] = json!("ORDER_STATUS_ERROR");
    refused["errorMessage"] = json!("订单状态错误");
    let rec = Recorder::answering(refused.to_string()).await;
    assert!(matches!(
        client(&rec.base_url).trade_cancel("1", "x").await,
        Err(MarketError::Rejected { code, .. }) if code == "ORDER_STATUS_ERROR"
    ));
}

#[tokio::test]
async fn cancel_sandbox_answers_the_documented_shape() {
    // 1688 refuses a cancel within ten seconds of creation: this sandbox waits none.
    let base = sandbox_with(procure_sandbox::SandboxConfig {
        close_order_grace_ms: 0,
        ..Default::default()
    })
    .await;
    let f = fixture(CANCEL);
    let (id, _) = sandbox_order(&base, "PO-SHAPE-X", false).await;
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.cancel",
        &[
            ("webSite", "1688"),
            ("tradeID", &id),
            ("cancelReason", "buyerCancel"),
            ("remark", "取消订单"),
        ],
    )
    .await;
    assert_shape(&f, &v);
    assert_eq!(v["success"], true);
}

// ---- alibaba.trade.getRefundReasonList / alibaba.trade.createRefund --------------------------

const REASONS: &str = "1688/alibaba.trade.getRefundReasonList";
const REFUND: &str = "1688/alibaba.trade.createRefund";

fn detail(order_id: &str) -> OrderDetail {
    OrderDetail {
        order: MarketOrder {
            order_id: order_id.into(),
            out_order_id: None,
            status: MarketOrderStatus::WaitSellerSend,
            total_amount_fen: 9900,
            close_reason: None,
        },
        status_text: "waitsellersend".into(),
        goods_fen: 9100,
        entry_ids: vec!["506683458996743225".into()],
        refund_status: None,
        refund_fen: None,
    }
}

#[tokio::test]
async fn refund_reasons_parse_the_documented_answer() {
    let (rec, f, c) = documented(REASONS).await;
    let reasons = c
        .refund_reasons(
            "586683458994743215",
            &["586683458997743215".into()],
            "refundWaitSellerSend",
        )
        .await
        .unwrap();
    assert_eq!(
        reasons,
        [RefundReason {
            id: "20003".into(),
            name: "我不想要了".into(),
            need_voucher: false,
            no_refund_carriage: false
        }]
    );
    assert_request(&f, &rec);
}

#[tokio::test]
async fn create_refund_parses_the_documented_answer() {
    let (rec, f, c) = documented(REFUND).await;
    let reason = RefundReason {
        id: "20028".into(),
        name: "x".into(),
        need_voucher: false,
        no_refund_carriage: false,
    };
    let id = c
        .create_refund(&detail("506683458994743225"), &reason, 800, "客户取消")
        .await
        .unwrap();
    assert_eq!(id, "TQ34931008034741532");
    assert_request(&f, &rec);
    let sent = rec.only().params;
    assert_eq!(
        (
            sent["applyPayment"].as_str(),
            sent["applyCarriage"].as_str()
        ),
        ("9100", "800")
    );
}

#[tokio::test]
async fn refund_sandbox_answers_the_documented_shapes() {
    let (base, _sb) = crate::sandbox().await;
    control(
        &base,
        reqwest::Method::PUT,
        "/_sandbox/marketplace/seller",
        json!({"ship_after_ms": 3_600_000}),
    )
    .await;
    let (id, total) = sandbox_order(&base, "PO-SHAPE-R", true).await;
    let d = client(&base).order_detail(&id).await.unwrap();
    let entries = format!("[{}]", d.entry_ids.join(","));
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.getRefundReasonList",
        &[
            ("orderId", &id),
            ("orderEntryIds", &entries),
            ("goodsStatus", "refundWaitSellerSend"),
        ],
    )
    .await;
    assert_shape(&fixture(REASONS), &v);
    let reason = v["result"]["result"]["reasons"][0]["id"].to_string();
    let v = aop(
        &base,
        TRADE,
        "alibaba.trade.createRefund",
        &[
            ("orderId", &id),
            ("orderEntryIds", &entries),
            ("disputeRequest", "refund"),
            ("applyPayment", &d.goods_fen.to_string()),
            ("applyCarriage", &(total - d.goods_fen).to_string()),
            ("applyReasonId", &reason),
            ("description", "客户取消"),
            ("goodsStatus", "refundWaitSellerSend"),
        ],
    )
    .await;
    assert_shape(&fixture(REFUND), &v);
    assert_eq!(
        client(&base).order_detail(&id).await.unwrap().refund_fen,
        Some(total)
    );
}

// ---- the documented error answers ------------------------------------------------------------

/// `alibaba.createOrder.preview`'s short stock: errorCode 500_004 with errorMsg (error table).
#[tokio::test]
async fn preview_short_stock_is_out_of_stock_on_both_sides() {
    let rec = Recorder::answering(
        r#"{"success":false,"errorCode":"500_004","errorMsg":"商品[548818919805_eb81c61de14f4adb405ffcc2c8a4a3fb]库存不足"}"#.into(),
    )
    .await;
    assert_eq!(
        client(&rec.base_url).preview(&request("PO-E", 1)).await,
        Err(MarketError::OutOfStock)
    );
    let (base, _sb) = crate::sandbox().await;
    let err = client(&base).preview(&request("PO-E", 1_000_000)).await;
    assert_eq!(err, Err(MarketError::OutOfStock));
}

/// `alibaba.trade.getLogisticsInfos.buyerView` before shipping: 500_2 = not yet, never a
/// rejection.
#[tokio::test]
async fn logistics_not_yet_is_no_shipment_on_both_sides() {
    let rec = Recorder::answering(
        r#"{"success":false,"errorCode":"500_2","errorMessage":"订单尚未发货，暂无物流详情，请稍候再试。"}"#.into(),
    )
    .await;
    assert_eq!(client(&rec.base_url).logistics("1").await, Ok(vec![]));
    let (base, _sb) = crate::sandbox().await;
    control(
        &base,
        reqwest::Method::PUT,
        "/_sandbox/marketplace/seller",
        json!({"ship_after_ms": 3_600_000}),
    )
    .await;
    let (id, _) = sandbox_order(&base, "PO-E2", true).await;
    let v = aop(
        &base,
        LOGISTICS,
        "alibaba.trade.getLogisticsInfos.buyerView",
        &[("webSite", "1688"), ("orderId", &id)],
    )
    .await;
    assert_eq!(v["errorCode"], "500_2", "{v}");
    assert_eq!(client(&base).logistics(&id).await, Ok(vec![]));
}

/// Gateway errors: `{"error_code":"gw.…","error_message":…}`.
#[tokio::test]
async fn gateway_errors_are_classified() {
    let reply = |code: &'static str| {
        move |_: &Received| {
            (
                400,
                format!(r#"{{"error_code":"{code}","error_message":"m"}}"#),
            )
        }
    };
    let rec = Recorder::start(reply("gw.SignatureInvalid")).await;
    assert_eq!(
        client(&rec.base_url).order_status("1").await,
        Err(MarketError::SignatureRejected)
    );
    let rec = Recorder::start(reply("gw.APIACLDecline")).await;
    assert!(matches!(
        client(&rec.base_url).order_status("1").await,
        Err(MarketError::Rejected { code, .. }) if code == "gw.APIACLDecline"
    ));
}

/// A yuan amount finer than a fen is refused, never rounded.
#[tokio::test]
async fn a_sub_fen_total_is_refused() {
    let text =
        response_literal(BUYER_VIEW).replace("\"totalAmount\":6.15", "\"totalAmount\":6.155");
    assert!(text.contains("6.155"));
    let rec = Recorder::answering(text).await;
    let err = client(&rec.base_url).order_detail("1").await.unwrap_err();
    assert!(
        err.to_string().contains("alibaba.trade.get.buyerView"),
        "{err}"
    );
    assert!(
        err.is_retryable(),
        "an unreadable answer: the outcome is unknown"
    );
}

// ---- alibaba.cross.productInfo, the whole product (import) ----------------------------------

const PRODUCT_DETAIL: &str = "1688/alibaba.cross.productInfo.detail";

#[tokio::test]
async fn product_detail_parses_the_documented_answer() {
    use procure_adapters::market::{Attribute, Dimensions, SkuDetail};
    let (rec, f, c) = documented(PRODUCT_DETAIL).await;
    let p = c.product_detail("557235167116").await.unwrap();
    assert_eq!(p.product_id, "557235167116");
    assert_eq!(
        p.title,
        "2017汇族美新品原创手工森系女鞋春季花朵低跟舒适浅口单鞋"
    );
    assert_eq!(
        p.image_urls,
        ["https://cbu01.alicdn.com/img/ibank/2017/992/417/3971714299_420783022.jpg"],
        "relative image paths live on 1688's image host"
    );
    assert_eq!(
        p.attributes,
        [
            Attribute::new("流行元素", "花朵"),
            Attribute::new("鞋头形状", "扁头")
        ]
    );
    assert_eq!(
        p.skus,
        [SkuDetail {
            spec_id: "01f43d7be0ccc4bd2ba36d4bdf1b3689".into(),
            attributes: vec![
                Attribute::new("尺码", "38"),
                Attribute::new("颜色", "烧焦卡其")
            ],
            price_fen: 25800,
            stock: Some(106),
            image_url: Some(
                "https://cbu01.alicdn.com/img/ibank/2017/216/154/3972451612_420783022.jpg".into()
            ),
        }]
    );
    assert_eq!(p.min_order_quantity, Some(3));
    assert_eq!(p.seller.id.as_deref(), Some("2207596043"));
    assert_eq!(p.seller.name.as_deref(), Some("汇族美鞋业"));
    assert_eq!(p.weight_g, Some(1000), "unitWeight 1 (kg)");
    assert_eq!(
        p.dimensions,
        Some(Dimensions {
            l_mm: 300,
            w_mm: 200,
            h_mm: 110
        })
    );
    assert_request(&f, &rec);
}

#[tokio::test]
async fn product_detail_sandbox_answers_any_id_in_the_documented_shape() {
    let (base, _sb) = crate::sandbox().await;
    let f = fixture(PRODUCT_DETAIL);
    let c = client(&base);
    let (mut complete, mut without_weight) = (0, 0);
    for n in 0..30u64 {
        let id = (573_741_401_425 + n * 977).to_string();
        let v = aop(
            &base,
            PRODUCT,
            "alibaba.cross.productInfo",
            &[("productId", &id)],
        )
        .await;
        let again = aop(
            &base,
            PRODUCT,
            "alibaba.cross.productInfo",
            &[("productId", &id)],
        )
        .await;
        assert_eq!(v, again, "the same id is the same product");
        let detail = c.product_detail(&id).await.unwrap();
        assert_eq!(detail.product_id, id);
        assert!((1..=4).contains(&detail.skus.len()), "{detail:?}");
        assert!(
            detail
                .skus
                .iter()
                .all(|s| s.price_fen > 0 && !s.spec_id.is_empty())
        );
        let ship = &v["productInfo"]["shippingInfo"];
        assert_eq!(detail.weight_g.is_some(), ship.get("unitWeight").is_some());
        if ship.get("unitWeight").is_some() && ship.get("length").is_some() {
            assert_shape(&f, &v);
            complete += 1;
        }
        without_weight += usize::from(detail.weight_g.is_none());
        // Its SKUs are what the price source reads.
        let sku = &detail.skus[0];
        let price = c.product_info(&id).await.unwrap();
        assert_eq!(price.skus[0].price_fen, sku.price_fen);
    }
    assert!(
        complete > 0 && without_weight > 0,
        "{complete} {without_weight}"
    );
    // The seeded catalogue answers as before; the detail reads it too.
    let seeded = &procure_sandbox::catalogue::demo()[0];
    let d = c.product_detail(&seeded.offer_id).await.unwrap();
    assert_eq!(d.title, seeded.title);
    assert_eq!(
        (
            d.skus.len(),
            d.skus[0].spec_id.as_str(),
            d.skus[0].price_fen
        ),
        (1, seeded.spec_id.as_str(), seeded.price_fen)
    );
    assert_eq!(d.min_order_quantity, Some(1));
    // An id that is not a Long is no product, as before.
    assert_eq!(
        c.product_detail("no-such-offer").await.unwrap_err(),
        MarketError::ListingGone
    );
}

#[tokio::test]
async fn product_detail_delisted_and_vendor_errors_on_demand() {
    let (base, _sb) = crate::sandbox().await;
    let c = client(&base);
    let seeded = procure_sandbox::catalogue::demo()[0].offer_id.clone();
    for id in ["573741401425", seeded.as_str()] {
        control(
            &base,
            reqwest::Method::POST,
            "/_sandbox/faults",
            json!({"platform": "1688", "api": "alibaba.cross.productInfo", "kind": "delisted", "count": 1}),
        )
        .await;
        assert_eq!(
            c.product_detail(id).await.unwrap_err(),
            MarketError::ListingGone,
            "{id}"
        );
        assert!(
            c.product_detail(id).await.is_ok(),
            "{id}: the fault is spent"
        );
    }
    control(
        &base,
        reqwest::Method::POST,
        "/_sandbox/faults",
        json!({"platform": "1688", "api": "alibaba.cross.productInfo", "kind": "account_restricted", "count": 1}),
    )
    .await;
    assert_eq!(
        c.product_detail("573741401425").await.unwrap_err(),
        MarketError::AccountRestricted
    );
}
