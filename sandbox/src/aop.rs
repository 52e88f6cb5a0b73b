//! 1688 Open Platform (AOP) gateway: `/openapi/param2/1/{namespace}/{apiName}/{appKey}`.
//!
//! Gateway checks in order: known API, app key, `_aop_signature`, `access_token`, then injected
//! faults, then the business call. Gateway errors are HTTP 400 `{"error_code","error_message"}`;
//! business errors are HTTP 200 `{"success":false,"code","message"}`.

use crate::{
    Sandbox, State,
    faults::{AOP_KINDS, Fired, Platform},
    util::{self, json_response, parse_form, plain_error},
};
use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State as AxState},
    http::StatusCode,
    response::Response,
};
use procure_domain::signing;
use serde_json::{Value, json};
use std::collections::HashMap;

/// 1688 publishes no error code for a restricted buyer account (docs/vendors/1688.md). This is the
/// single place the sandbox models it: a business error `success:false` with this code, which
/// the `account_restricted` fault produces on any 1688 call.
pub(crate) const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";

const GW_SIGNATURE_INVALID: &str = "gw.SignatureInvalid";
const GW_RATE_LIMITED: &str = "gw.QosAppFrequencyLimit";
const GW_ACL_DECLINE: &str = "gw.APIACLDecline";
// Sandbox choices (not pinned by the contract): unknown API, undecodable parameters, outage.
const GW_API_UNSUPPORTED: &str = "gw.APIUnsupported";
const GW_PARAM_INVALID: &str = "gw.ParamInvalid";
const GW_SERVICE_UNAVAILABLE: &str = "gw.ServiceUnavailable";

// Business codes.
const PRODUCT_NOT_EXIST: &str = "PRODUCT_NOT_EXIST";
const SKU_NOT_EXIST: &str = "SKU_NOT_EXIST";
const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
const ORDER_NOT_EXIST: &str = "ORDER_NOT_EXIST";
const ORDER_ALREADY_PAID: &str = "ORDER_ALREADY_PAID";
const ORDER_STATUS_INVALID: &str = "ORDER_STATUS_INVALID";
const PAY_AMOUNT_MISMATCH: &str = "PAY_AMOUNT_MISMATCH";
const INVALID_PARAMETER: &str = "INVALID_PARAMETER";
// `alibaba.trade.cancel` (answered as `errorCode` / `errorMessage`, as documented).
const ORDER_STATUS_ERROR: &str = "ORDER_STATUS_ERROR";
const CLOSE_ORDER_TOO_FAST: &str = "CLOSE_ORDER_TOO_FAST";
// The refund APIs' documented codes (nested `result.code`).
const REFUND_ORDER_NOT_EXIST: &str = "5001";
const REFUND_GOODS_STATUS_INVALID: &str = "5003";
const REFUND_REASON_INVALID: &str = "5004";
const REFUND_STATE_ERROR: &str = "5010";
const REFUND_AMOUNT_ERROR: &str = "5011";
const REFUND_DESCRIPTION_LENGTH: &str = "5012";
const GOODS_STATUSES: [&str; 5] = [
    "refundWaitSellerSend",
    "refundWaitBuyerReceive",
    "refundBuyerReceived",
    "aftersaleBuyerNotReceived",
    "aftersaleBuyerReceived",
];
const CANCEL_REASONS: [&str; 3] = ["buyerCancel", "sellerGoodsLack", "other"];
/// The reasons offered for a refund before shipping (sandbox choice: ids and names are ours).
const REFUND_REASONS: [(i64, &str, bool, bool); 3] = [
    (20003, "我不想要了", false, false),
    (20004, "拍错/多拍", false, false),
    (20011, "其他", true, false),
];

const MAX_CARGO_LINES: usize = 50;
const MAX_QUANTITY: i64 = 1_000_000;

const API_PRODUCT_INFO: (&str, &str) = ("com.alibaba.product", "alibaba.cross.productInfo");
const API_PREVIEW: (&str, &str) = ("com.alibaba.trade", "alibaba.createOrder.preview");
const API_CREATE: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.createCrossOrder");
const API_PAY: (&str, &str) = (
    "com.alibaba.trade",
    "alibaba.trade.pay.protocolPay.preparePay",
);
const API_BUYER_VIEW: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.get.buyerView");
const API_ORDER_LIST: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.getBuyerOrderList");
const API_LOGISTICS: (&str, &str) = (
    "com.alibaba.logistics",
    "alibaba.trade.getLogisticsInfos.buyerView",
);
const API_CANCEL: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.cancel");
const API_REFUND_REASONS: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.getRefundReasonList");
const API_CREATE_REFUND: (&str, &str) = ("com.alibaba.trade", "alibaba.trade.createRefund");
const APIS: [(&str, &str); 10] = [
    API_CANCEL,
    API_REFUND_REASONS,
    API_CREATE_REFUND,
    API_PRODUCT_INFO,
    API_PREVIEW,
    API_CREATE,
    API_PAY,
    API_BUYER_VIEW,
    API_ORDER_LIST,
    API_LOGISTICS,
];

#[derive(Clone, Debug)]
struct OrderLine {
    /// The sub-order id (`subItemID`).
    entry_id: String,
    offer_id: String,
    spec_id: String,
    quantity: i64,
    unit_price_fen: i64,
    amount_fen: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Order {
    id: String,
    out_order_id: String,
    status: &'static str,
    goods_fen: i64,
    carriage_fen: i64,
    total_fen: i64,
    lines: Vec<OrderLine>,
    created_ms: i64,
    paid_ms: Option<i64>,
    logistics: Option<(String, String)>,
    close_reason: Option<String>,
    /// The in-sale refund: `refundStatus`, `refundPayment` (fen) and its id.
    refund: Option<(&'static str, i64, String)>,
}

#[derive(Default)]
pub(crate) struct AopState {
    orders: HashMap<String, Order>,
    by_out_order_id: HashMap<String, String>,
    /// First answer given to each `opRequestId`.
    pay_requests: HashMap<String, Value>,
}

fn gateway(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"error_code": code, "error_message": message, "request_id": util::random_id("", 16)}),
    )
}

fn biz(code: &str, message: impl Into<String>) -> Value {
    json!({"success": false, "code": code, "message": message.into()})
}

pub(crate) async fn handle_post(
    AxState(sb): AxState<Sandbox>,
    Path((version, namespace, api, app_key)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    call(&sb, &version, &namespace, &api, &app_key, &body).await
}

pub(crate) async fn handle_get(
    AxState(sb): AxState<Sandbox>,
    Path((version, namespace, api, app_key)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    call(
        &sb,
        &version,
        &namespace,
        &api,
        &app_key,
        query.unwrap_or_default().as_bytes(),
    )
    .await
}

async fn call(
    sb: &Sandbox,
    version: &str,
    namespace: &str,
    api: &str,
    app_key: &str,
    raw: &[u8],
) -> Response {
    let Ok(pairs) = parse_form(raw) else {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_PARAM_INVALID,
            "parameters are not valid form encoding",
        );
    };
    if version != "1" || !APIS.contains(&(namespace, api)) {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_API_UNSUPPORTED,
            "API not found or not supported",
        );
    }
    let cfg = sb.config();
    if app_key != cfg.alibaba_app_key {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_ACL_DECLINE,
            "App key is not authorized for this API",
        );
    }
    let given = pairs
        .iter()
        .find(|(k, _)| k == "_aop_signature")
        .map(|(_, v)| v.as_str());
    let url_path = format!("param2/{version}/{namespace}/{api}/{app_key}");
    let expected = signing::aop_signature(
        &url_path,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.alibaba_app_secret,
    );
    if !given.is_some_and(|g| signing::signatures_equal(g, &expected)) {
        tracing::info!(api, "1688 call rejected: bad signature");
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_SIGNATURE_INVALID,
            "Request signature is invalid",
        );
    }
    let token = pairs
        .iter()
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.as_str());
    if !util::buyer_token_ok(token, &cfg.alibaba_access_token) {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_ACL_DECLINE,
            "access_token is missing, invalid or expired",
        );
    }

    let fired = sb.enter(Platform::Aop, api, AOP_KINDS).await;
    if fired.rate_limit {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_RATE_LIMITED,
            "App call frequency limit exceeded",
        );
    }
    if fired.bad_signature {
        return gateway(
            StatusCode::BAD_REQUEST,
            GW_SIGNATURE_INVALID,
            "Request signature is invalid",
        );
    }
    if fired.error {
        return gateway(
            StatusCode::SERVICE_UNAVAILABLE,
            GW_SERVICE_UNAVAILABLE,
            "Service temporarily unavailable",
        );
    }
    if fired.account_restricted {
        return json_response(
            StatusCode::OK,
            biz(
                ACCOUNT_RESTRICTED,
                "The buyer account is restricted from trading",
            ),
        );
    }

    let mut params: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &pairs {
        if params.insert(k.as_str(), v.as_str()).is_some() {
            return json_response(
                StatusCode::OK,
                biz(INVALID_PARAMETER, format!("parameter {k} given twice")),
            );
        }
    }
    let now = util::now_ms();
    let grace_ms = i64::try_from(cfg.close_order_grace_ms).unwrap_or(i64::MAX);
    let p = Params(&params);
    let answer = sb.with(|s| {
        let ship_ms = s.seller_ship_ms();
        match (namespace, api) {
            n if n == API_CANCEL => trade_cancel(s, &p, now, grace_ms, ship_ms),
            n if n == API_REFUND_REASONS => {
                refund_reasons(s, &p, now, ship_ms).map_err(refund_error)
            }
            n if n == API_CREATE_REFUND => create_refund(s, &p, now, ship_ms).map_err(refund_error),
            n if n == API_PRODUCT_INFO => product_info(s, &p, &fired),
            n if n == API_PREVIEW => preview(s, &p, &fired),
            n if n == API_CREATE => create_order(s, &p, &fired, now),
            n if n == API_PAY => pay(s, &p, now, ship_ms),
            n if n == API_BUYER_VIEW => buyer_view(s, &p, now, ship_ms),
            n if n == API_ORDER_LIST => order_list(s, &p, now, ship_ms),
            _ => logistics(s, &p, now, ship_ms),
        }
    });
    let answer = answer.unwrap_or_else(|e| e);
    if let Some(d) = fired.timeout_after_commit {
        tracing::info!(
            api,
            delay_ms = d.as_millis() as u64,
            "1688 answer held back after commit (fault)"
        );
        sb.sleep(d).await;
    }
    json_response(StatusCode::OK, answer)
}

struct Params<'a>(&'a HashMap<&'a str, &'a str>);

impl Params<'_> {
    fn req(&self, k: &str) -> Result<&str, Value> {
        match self.0.get(k) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(biz(INVALID_PARAMETER, format!("missing parameter {k}"))),
        }
    }

    fn id(&self, k: &str) -> Result<&str, Value> {
        let v = self.req(k)?;
        if util::valid_token(v, 64) {
            Ok(v)
        } else {
            Err(biz(
                INVALID_PARAMETER,
                format!("parameter {k} must be 1..=64 printable characters"),
            ))
        }
    }
}

fn sku_info(p: &crate::Product, out_of_stock: bool) -> Value {
    json!({
        "specId": p.spec_id,
        "price": util::yuan(p.price_fen),
        "amountOnSale": if out_of_stock { 0 } else { p.amount_on_sale },
    })
}

/// `price_jump`: the seller raises the listing's price for good (rounded to whole fen, at least 1).
fn jump_price(s: &mut State, offer_id: &str, percent: u32) {
    if let Some(p) = s.product_mut(offer_id) {
        let bump = (i128::from(p.price_fen) * i128::from(percent) / 100).max(1);
        let new = i64::try_from(i128::from(p.price_fen) + bump).unwrap_or(i64::MAX);
        tracing::info!(
            offer_id,
            old_fen = p.price_fen,
            new_fen = new,
            "1688 price jump (fault)"
        );
        p.price_fen = new;
    }
}

fn product_info(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let id = p.id("productId")?;
    if let Some(pct) = fired.price_jump_percent {
        jump_price(s, id, pct);
    }
    let Some(prod) = s.product_mut(id) else {
        return Err(biz(
            PRODUCT_NOT_EXIST,
            format!("product {id} does not exist or is off the shelf"),
        ));
    };
    Ok(json!({
        "success": true,
        "productInfo": {
            "productID": prod.offer_id,
            "subject": prod.title,
            "status": "published",
            "skuInfos": [sku_info(prod, fired.out_of_stock)],
        }
    }))
}

struct Cargo {
    offer_id: String,
    spec_id: Option<String>,
    quantity: i64,
}

fn parse_cargo(raw: &str) -> Result<Vec<Cargo>, Value> {
    let bad = |m: &str| biz(INVALID_PARAMETER, format!("cargoParamList: {m}"));
    let v: Value = serde_json::from_str(raw).map_err(|_| bad("not valid JSON"))?;
    let items = v.as_array().ok_or_else(|| bad("must be a JSON array"))?;
    if items.is_empty() || items.len() > MAX_CARGO_LINES {
        return Err(bad("must hold 1..=50 entries"));
    }
    items
        .iter()
        .map(|it| {
            let o = it
                .as_object()
                .ok_or_else(|| bad("entries must be objects"))?;
            let offer_id = match o.get("offerId") {
                Some(Value::String(s)) if util::valid_token(s, 32) => s.clone(),
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                _ => return Err(bad("offerId must be a number or a non-empty string")),
            };
            let spec_id = match o.get("specId") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if util::valid_token(s, 64) => Some(s.clone()),
                _ => return Err(bad("specId must be a string")),
            };
            let quantity = match o.get("quantity") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| bad("quantity must be an integer 1..=1000000"))?;
            Ok(Cargo {
                offer_id,
                spec_id,
                quantity,
            })
        })
        .collect()
}

fn check_order_params(p: &Params<'_>) -> Result<Vec<Cargo>, Value> {
    let flow = p.req("flow")?;
    if flow != "general" {
        return Err(biz(INVALID_PARAMETER, "flow must be \"general\""));
    }
    let addr: Value = serde_json::from_str(p.req("addressParam")?)
        .map_err(|_| biz(INVALID_PARAMETER, "addressParam is not valid JSON"))?;
    if addr.as_object().is_none_or(|o| o.is_empty()) {
        return Err(biz(
            INVALID_PARAMETER,
            "addressParam must be a non-empty JSON object",
        ));
    }
    parse_cargo(p.req("cargoParamList")?)
}

struct Priced {
    lines: Vec<OrderLine>,
    goods_fen: i64,
    carriage_fen: i64,
}

/// Price the cargo against the current listings and check stock (per offer, summed over lines).
fn price(s: &mut State, cargo: &[Cargo], fired: &Fired) -> Result<Priced, Value> {
    if let Some(pct) = fired.price_jump_percent {
        let mut seen = Vec::new();
        for c in cargo {
            if !seen.contains(&&c.offer_id) {
                jump_price(s, &c.offer_id, pct);
                seen.push(&c.offer_id);
            }
        }
    }
    let overflow = || biz(INVALID_PARAMETER, "order amount too large");
    let mut lines = Vec::with_capacity(cargo.len());
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    let (mut goods, mut carriage) = (0i64, 0i64);
    for c in cargo {
        let Some(prod) = s.product_mut(&c.offer_id) else {
            return Err(biz(
                PRODUCT_NOT_EXIST,
                format!("product {} does not exist or is off the shelf", c.offer_id),
            ));
        };
        if c.spec_id.as_ref().is_some_and(|sp| *sp != prod.spec_id) {
            return Err(biz(
                SKU_NOT_EXIST,
                format!("spec not found for product {}", c.offer_id),
            ));
        }
        let w = wanted.entry(c.offer_id.as_str()).or_insert(0);
        if *w == 0 {
            carriage = carriage
                .checked_add(prod.domestic_shipping_fen)
                .ok_or_else(overflow)?;
        }
        *w += c.quantity;
        if fired.out_of_stock || *w > prod.amount_on_sale {
            return Err(biz(
                OUT_OF_STOCK,
                format!("insufficient stock for product {}", c.offer_id),
            ));
        }
        let amount = prod
            .price_fen
            .checked_mul(c.quantity)
            .ok_or_else(overflow)?;
        goods = goods.checked_add(amount).ok_or_else(overflow)?;
        lines.push(OrderLine {
            entry_id: util::random_digits(19),
            offer_id: c.offer_id.clone(),
            spec_id: prod.spec_id.clone(),
            quantity: c.quantity,
            unit_price_fen: prod.price_fen,
            amount_fen: amount,
        });
    }
    goods.checked_add(carriage).ok_or_else(overflow)?;
    Ok(Priced {
        lines,
        goods_fen: goods,
        carriage_fen: carriage,
    })
}

fn cargo_list(lines: &[OrderLine]) -> Value {
    lines
        .iter()
        .map(|l| {
            json!({
                "offerId": l.offer_id,
                "specId": l.spec_id,
                "quantity": l.quantity,
                "amount": l.amount_fen,
                "finalUnitPrice": util::yuan(l.unit_price_fen),
            })
        })
        .collect()
}

fn preview(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let cargo = check_order_params(p)?;
    let priced = price(s, &cargo, fired)?;
    Ok(json!({
        "success": true,
        "orderPreviewResuslt": [{
            "sumPayment": priced.goods_fen,
            "sumCarriage": priced.carriage_fen,
            "cargoList": cargo_list(&priced.lines),
        }]
    }))
}

fn create_response(o: &Order) -> Value {
    json!({"success": true, "result": {"orderId": o.id, "totalSuccessAmount": o.total_fen, "failedOfferList": []}})
}

fn create_order(s: &mut State, p: &Params<'_>, fired: &Fired, now: i64) -> Result<Value, Value> {
    let out = p.id("outOrderId")?;
    let cargo = check_order_params(p)?;
    if let Some(id) = s.aop.by_out_order_id.get(out) {
        let o = &s.aop.orders[id];
        tracing::info!(out_order_id = out, order_id = %o.id, "1688 createCrossOrder repeat: same order");
        return Ok(create_response(o));
    }
    let priced = price(s, &cargo, fired)?;
    for l in &priced.lines {
        if let Some(prod) = s.product_mut(&l.offer_id) {
            prod.amount_on_sale -= l.quantity;
        }
    }
    let id = loop {
        let id = util::random_digits(19);
        if !s.aop.orders.contains_key(&id) {
            break id;
        }
    };
    let order = Order {
        id: id.clone(),
        out_order_id: out.to_owned(),
        status: "waitbuyerpay",
        goods_fen: priced.goods_fen,
        carriage_fen: priced.carriage_fen,
        total_fen: priced.goods_fen + priced.carriage_fen,
        lines: priced.lines,
        created_ms: now,
        paid_ms: None,
        logistics: None,
        close_reason: None,
        refund: None,
    };
    let answer = create_response(&order);
    s.record("purchase", "1688", out, &id, order.total_fen, "CNY");
    s.aop.by_out_order_id.insert(out.to_owned(), id.clone());
    s.aop.orders.insert(id, order);
    Ok(answer)
}

/// The seller ships `ship_ms` after payment; evaluated lazily whenever the order is read.
/// A seller does not ship while a refund request is open (sandbox choice).
fn advance(o: &mut Order, now: i64, ship_ms: i64) {
    if o.status == "waitsellersend"
        && o.refund.is_none()
        && o.paid_ms.is_some_and(|t| now >= t.saturating_add(ship_ms))
    {
        o.status = "waitbuyerreceive";
        o.logistics = Some((format!("YT{}", util::random_digits(13)), "YTO".to_owned()));
        tracing::info!(order_id = %o.id, "1688 seller shipped");
    }
}

fn order_mut<'a>(
    s: &'a mut State,
    id: &str,
    now: i64,
    ship_ms: i64,
) -> Result<&'a mut Order, Value> {
    let o = s
        .aop
        .orders
        .get_mut(id)
        .ok_or_else(|| biz(ORDER_NOT_EXIST, format!("order {id} does not exist")))?;
    advance(o, now, ship_ms);
    Ok(o)
}

fn pay(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let order_id = p.id("orderId")?;
    let op = p.id("opRequestId")?;
    let amount: i64 = p
        .req("payAmount")?
        .parse()
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| {
            biz(
                INVALID_PARAMETER,
                "payAmount must be a positive integer (fen)",
            )
        })?;
    if let Some(first) = s.aop.pay_requests.get(op) {
        tracing::info!(op_request_id = op, "1688 preparePay repeat: first answer");
        return Ok(first.clone());
    }
    let answer = match order_mut(s, order_id, now, ship_ms) {
        Err(e) => e,
        Ok(o) if o.status == "cancel" => biz(ORDER_STATUS_INVALID, "order is closed"),
        Ok(o) if o.status != "waitbuyerpay" => biz(ORDER_ALREADY_PAID, "order is already paid"),
        Ok(o) if o.total_fen != amount => biz(
            PAY_AMOUNT_MISMATCH,
            format!(
                "payAmount {amount} differs from the order amount {}",
                o.total_fen
            ),
        ),
        Ok(o) => {
            o.status = "waitsellersend";
            o.paid_ms = Some(now);
            advance(o, now, ship_ms);
            let total = o.total_fen;
            s.record("marketplace_payment", "1688", op, order_id, total, "CNY");
            json!({"success": true, "result": {"paySuccess": true}})
        }
    };
    s.aop.pay_requests.insert(op.to_owned(), answer.clone());
    Ok(answer)
}

fn base_info(o: &Order) -> Value {
    let mut v = json!({
        "id": o.id,
        "idOfStr": o.id,
        "outOrderId": o.out_order_id,
        "status": o.status,
        "totalAmount": o.total_fen,
        "sumProductPayment": o.goods_fen,
        "shippingFee": o.carriage_fen,
        "createTime": util::aop_time(o.created_ms),
    });
    if let Some(t) = o.paid_ms {
        v["payTime"] = json!(util::aop_time(t));
    }
    if let Some(r) = &o.close_reason {
        v["closeReason"] = json!(r);
    }
    if let Some((status, fen, _)) = &o.refund {
        v["refundStatus"] = json!(status);
        v["refundPayment"] = json!(fen);
    }
    v
}

fn buyer_view(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let o = order_mut(s, p.id("orderId")?, now, ship_ms)?;
    let items: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            json!({"productID": l.offer_id, "specId": l.spec_id, "quantity": l.quantity,
                   "price": util::yuan(l.unit_price_fen), "itemAmount": l.amount_fen,
                   "subItemID": l.entry_id.parse::<u64>().ok(), "subItemIDString": l.entry_id})
        })
        .collect();
    Ok(json!({"success": true, "result": {"baseInfo": base_info(o), "productItems": items}}))
}

fn order_list(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let out = p.id("outOrderId")?;
    let found = match s.aop.by_out_order_id.get(out).cloned() {
        Some(id) => vec![base_info(order_mut(s, &id, now, ship_ms)?)],
        None => vec![],
    };
    Ok(json!({"success": true, "result": found}))
}

fn logistics(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let o = order_mut(s, p.id("orderId")?, now, ship_ms)?;
    let list: Vec<Value> = o
        .logistics
        .iter()
        .map(|(bill, company)| json!({"logisticsBillNo": bill, "logisticsCompanyName": company}))
        .collect();
    Ok(json!({"success": true, "result": list}))
}

/// `alibaba.trade.cancel`'s documented failure shape.
fn cancel_error(code: &str, message: impl Into<String>) -> Value {
    json!({"success": false, "errorCode": code, "errorMessage": message.into()})
}

/// Put an order's units back on sale.
fn restock(s: &mut State, lines: &[OrderLine]) {
    for l in lines {
        if let Some(p) = s.products.iter_mut().find(|p| p.offer_id == l.offer_id) {
            p.amount_on_sale += l.quantity;
        }
    }
}

/// `alibaba.trade.cancel`: the buyer closes an order that waits for payment (1688 cancels
/// unpaid orders only: anything else is `ORDER_STATUS_ERROR`), not within `grace_ms` of its
/// creation (`CLOSE_ORDER_TOO_FAST`). Its stock goes back on sale.
fn trade_cancel(
    s: &mut State,
    p: &Params<'_>,
    now: i64,
    grace_ms: i64,
    ship_ms: i64,
) -> Result<Value, Value> {
    let site = p
        .req("webSite")
        .map_err(|_| cancel_error(INVALID_PARAMETER, "missing parameter webSite"))?;
    if site != "1688" {
        return Err(cancel_error(INVALID_PARAMETER, "webSite must be 1688"));
    }
    let reason = p
        .req("cancelReason")
        .map_err(|_| cancel_error(INVALID_PARAMETER, "missing parameter cancelReason"))?;
    if !CANCEL_REASONS.contains(&reason) {
        return Err(cancel_error(
            INVALID_PARAMETER,
            "cancelReason must be buyerCancel, sellerGoodsLack or other",
        ));
    }
    let id = p
        .id("tradeID")
        .map_err(|_| cancel_error(INVALID_PARAMETER, "tradeID must be an order id"))?;
    let o =
        order_mut(s, id, now, ship_ms).map_err(|_| cancel_error(ORDER_NOT_EXIST, "订单不存在"))?;
    if o.status != "waitbuyerpay" {
        return Err(cancel_error(ORDER_STATUS_ERROR, "订单状态错误"));
    }
    if now < o.created_ms.saturating_add(grace_ms) {
        return Err(cancel_error(
            CLOSE_ORDER_TOO_FAST,
            "the order was created less than ten seconds ago",
        ));
    }
    o.status = "cancel";
    o.close_reason = Some(reason.to_owned());
    let lines = o.lines.clone();
    restock(s, &lines);
    tracing::info!(order_id = id, "1688 order cancelled by the buyer");
    Ok(json!({"success": true}))
}

/// The refund APIs answer inside `result`: `{"result":{"success":false,"code","message"}}`.
fn refund_error(e: Value) -> Value {
    json!({"result": e})
}

fn refund_fail(code: &str, message: impl Into<String>) -> Value {
    json!({"success": false, "code": code, "message": message.into()})
}

/// The order a refund call names, with `orderEntryIds` checked against its sub-orders.
fn refund_order<'a>(
    s: &'a mut State,
    p: &Params<'_>,
    now: i64,
    ship_ms: i64,
) -> Result<&'a mut Order, Value> {
    let id = p
        .id("orderId")
        .map_err(|_| refund_fail(REFUND_ORDER_NOT_EXIST, "orderId is required"))?;
    let entries: Vec<String> = p
        .req("orderEntryIds")
        .ok()
        .and_then(|raw| serde_json::from_str::<Vec<Value>>(raw).ok())
        .map(|v| {
            v.iter()
                .filter_map(|e| match e {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .filter(|v: &Vec<String>| !v.is_empty())
        .ok_or_else(|| {
            refund_fail(
                REFUND_STATE_ERROR,
                "orderEntryIds must be a non-empty array",
            )
        })?;
    let goods_status = p.req("goodsStatus").unwrap_or_default();
    if !GOODS_STATUSES.contains(&goods_status) {
        return Err(refund_fail(
            REFUND_GOODS_STATUS_INVALID,
            "货物状态状态不合法",
        ));
    }
    let o = order_mut(s, id, now, ship_ms)
        .map_err(|_| refund_fail(REFUND_ORDER_NOT_EXIST, "订单不存在"))?;
    if entries
        .iter()
        .any(|e| !o.lines.iter().any(|l| &l.entry_id == e))
    {
        return Err(refund_fail(
            REFUND_STATE_ERROR,
            "sub-order not in this order",
        ));
    }
    // Only the in-sale refund before shipping is modelled: any other goods status, or an order
    // that is not waiting for the seller to ship, does not fit.
    if goods_status != "refundWaitSellerSend" || o.status != "waitsellersend" {
        return Err(refund_fail(
            REFUND_STATE_ERROR,
            format!("退货状态错误: order is {}", o.status),
        ));
    }
    Ok(o)
}

/// `alibaba.trade.getRefundReasonList`.
fn refund_reasons(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    refund_order(s, p, now, ship_ms)?;
    let reasons: Vec<Value> = REFUND_REASONS
        .iter()
        .map(|(id, name, voucher, no_carriage)| {
            json!({"id": id, "name": name, "needVoucher": voucher, "noRefundCarriage": no_carriage, "tip": ""})
        })
        .collect();
    Ok(json!({"result": {"success": true, "result": {"reasons": reasons}}}))
}

/// `alibaba.trade.createRefund` (refund only, before shipping): opens the request
/// (`refundStatus=waitselleragree`). Sandbox choice: by default the seller agrees at once, so
/// the refund succeeds within the call (see `settle_refund`); with `refunds_at_once` off it
/// waits for `POST /_sandbox/marketplace/orders/{id}/refund`. A second request is `5010`.
fn create_refund(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let description = p.req("description").unwrap_or_default();
    let reason = p.req("applyReasonId").unwrap_or_default().to_owned();
    let dispute = p.req("disputeRequest").unwrap_or_default();
    let fen = |k: &str| {
        p.req(k)
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v >= 0)
    };
    let (payment, carriage) = (fen("applyPayment"), fen("applyCarriage"));
    let o = refund_order(s, p, now, ship_ms)?;
    if o.refund.is_some() {
        return Err(refund_fail(
            REFUND_STATE_ERROR,
            "a refund is already open for this order",
        ));
    }
    if dispute != "refund" {
        return Err(refund_fail(
            REFUND_STATE_ERROR,
            "only a refund (not a return) fits an unshipped order",
        ));
    }
    if !REFUND_REASONS
        .iter()
        .any(|(id, ..)| id.to_string() == reason)
    {
        return Err(refund_fail(
            REFUND_REASON_INVALID,
            "退款退货原因错误，请确认原因id",
        ));
    }
    if !(2..=150).contains(&description.chars().count()) {
        return Err(refund_fail(REFUND_DESCRIPTION_LENGTH, "退款描述长度错误"));
    }
    let (Some(payment), Some(carriage)) = (payment, carriage) else {
        return Err(refund_fail(
            REFUND_AMOUNT_ERROR,
            "applyPayment and applyCarriage are fen",
        ));
    };
    // Waiting for the seller to ship, the refund must be the goods' full payment.
    if payment != o.goods_fen || carriage > o.carriage_fen {
        return Err(refund_fail(
            REFUND_AMOUNT_ERROR,
            format!(
                "退款金额错误: goods {} fen, carriage at most {} fen",
                o.goods_fen, o.carriage_fen
            ),
        ));
    }
    let refund_id = format!("TQ{}", util::random_digits(17));
    let amount = payment + carriage;
    o.refund = Some(("waitselleragree", amount, refund_id.clone()));
    let order_id = o.id.clone();
    if s.refunds_at_once {
        settle_refund(s, &order_id, true);
    }
    Ok(json!({"result": {"success": true, "result": {"refundId": refund_id}}}))
}

/// The seller decides an open refund request: agreed, the refund succeeds (`refundsuccess`,
/// the order closes as `cancel`, stock back on sale, ledger `marketplace_refund` with reference
/// the 1688 order id); refused, it is `refundclose` and the order goes on. False when the order
/// has no open request.
fn settle_refund(s: &mut State, order_id: &str, agree: bool) -> bool {
    let Some(o) = s.aop.orders.get_mut(order_id) else {
        return false;
    };
    let Some(("waitselleragree", amount, refund_id)) = o.refund.clone() else {
        return false;
    };
    if !agree {
        o.refund = Some(("refundclose", 0, refund_id));
        tracing::info!(order_id, "1688 refund refused by the seller (sandbox)");
        return true;
    }
    o.refund = Some(("refundsuccess", amount, refund_id.clone()));
    o.status = "cancel";
    o.close_reason = Some("buyerCancel".to_owned());
    let lines = o.lines.clone();
    restock(s, &lines);
    s.record(
        "marketplace_refund",
        "1688",
        order_id,
        &refund_id,
        amount,
        "CNY",
    );
    true
}

/// `POST /_sandbox/marketplace/orders/{id}/refund` for a 1688 order: `None` if there is no such
/// order, `Some(false)` if it has no open refund request.
pub(crate) fn sandbox_decide_refund(
    s: &mut State,
    id: &str,
    agree: bool,
) -> Option<Result<Value, String>> {
    s.aop.orders.get(id)?;
    if !settle_refund(s, id, agree) {
        let status = s.aop.orders[id].status;
        return Some(Err(format!(
            "order is {status} with no open refund request"
        )));
    }
    Some(Ok(base_info(&s.aop.orders[id])))
}

/// `POST /_sandbox/marketplace/orders/{id}/ship` for a 1688 order: the seller ships now.
/// `None` if there is no such order; `Err(status)` unless it is paid (shipping twice answers
/// the shipped order again).
pub(crate) fn sandbox_ship(s: &mut State, id: &str) -> Option<Result<Value, &'static str>> {
    let o = s.aop.orders.get_mut(id)?;
    match o.status {
        // `advance` ships a paid order whose delay is over: make it over now.
        "waitsellersend" => {
            advance(o, i64::MAX, 0);
            Some(Ok(base_info(o)))
        }
        "waitbuyerreceive" => Some(Ok(base_info(o))),
        other => Some(Err(other)),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    close_reason: Option<String>,
}

/// Sandbox extension `POST /_sandbox/orders/{orderId}/cancel` `{"close_reason"?}`: the seller
/// closes an unpaid order (default reason `sellerGoodsLack`); its stock goes back on sale.
/// Taobao purchase orders too (`TRADE_CLOSED`; answered as `{"order": …}`).
pub(crate) async fn sandbox_cancel(
    AxState(sb): AxState<Sandbox>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: CancelBody = if body.is_empty() {
        CancelBody::default()
    } else {
        match util::parse_json(&body) {
            Ok(b) => b,
            Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
        }
    };
    let reason = req
        .close_reason
        .unwrap_or_else(|| "sellerGoodsLack".to_owned());
    if !util::valid_token(&reason, 64) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "close_reason must be 1..=64 characters",
        );
    }
    sb.with(|s| {
        let Some(o) = s.aop.orders.get_mut(&order_id) else {
            return match crate::taobao::sandbox_close(s, &order_id, &reason) {
                None => plain_error(StatusCode::NOT_FOUND, "not_found", "no such order"),
                Some(Err(status)) => plain_error(
                    StatusCode::CONFLICT,
                    "invalid_state",
                    format!("order is {status}"),
                ),
                Some(Ok(order)) => json_response(StatusCode::OK, json!({"order": order})),
            };
        };
        if o.status != "waitbuyerpay" {
            return plain_error(
                StatusCode::CONFLICT,
                "invalid_state",
                format!("order is {}", o.status),
            );
        }
        o.status = "cancel";
        o.close_reason = Some(reason);
        let info = base_info(o);
        let lines = o.lines.clone();
        restock(s, &lines);
        tracing::info!(order_id = %order_id, "1688 order closed by the seller (sandbox)");
        json_response(StatusCode::OK, json!({"baseInfo": info}))
    })
}
