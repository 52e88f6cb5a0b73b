//! 1688 Open Platform (AOP) gateway: `/openapi/param2/1/{namespace}/{apiName}/{appKey}`.
//!
//! Gateway checks in order: known API, app key, `_aop_signature`, `access_token`, then injected
//! faults, then the business call. Gateway errors are HTTP 400 `{"error_code","error_message"}`
//! (`gw.*`). Business answers are HTTP 200 in each API's documented envelope and units
//! (docs/vendors/1688.md, which cites every field): yuan JSON numbers where 1688 documents yuan
//! (`price`, `finalUnitPrice`, `amount`, `totalAmount`, `sumProductPayment`, `shippingFee`,
//! `itemAmount`), fen integers where it documents fen (`sumPayment`, `sumCarriage`,
//! `sumPaymentNoCarriage`, `totalSuccessAmount`, `postFee`, `payAmount`). What 1688 does not
//! publish is in [`assumed`] and nowhere else.

use crate::{
    Sandbox, State,
    catalogue::PLATFORM_1688,
    faults::{AOP_KINDS, AOP_PRODUCT_KINDS, Fired, Platform},
    generated,
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

/// What 1688 does not publish, modelled here and nowhere else in the sandbox (the adapter has
/// its own one place, `adapters/src/alibaba.rs` `assumed`; docs/vendors/1688.md "Assumed").
pub(crate) mod assumed {
    /// A restricted buyer account: no public code exists. The `account_restricted` fault
    /// answers it in the called API's business envelope.
    pub(crate) const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";
    /// A missing or malformed parameter, in the called API's envelope: the code
    /// `alibaba.trade.createCrossOrder`'s page shows for an invalid address (`400`).
    pub(crate) const PARAM_INVALID: &str = "400";
    /// preparePay's failures: its page says its codes are not known.
    pub(crate) const ORDER_ALREADY_PAID: &str = "ORDER_ALREADY_PAID";
    pub(crate) const ORDER_CLOSED: &str = "ORDER_STATUS_INVALID";
    pub(crate) const PAY_AMOUNT_MISMATCH: &str = "PAY_AMOUNT_MISMATCH";
    // `alibaba.trade.createCrossOrder` documents no business codes: it answers the preview's
    // (`500_001`, `500_003`, `500_004`) in its own `{"success":false,"code","message"}`.
    /// `ORDER_NOT_EXIST` is documented for `alibaba.trade.cancel`; the buyer view, the
    /// logistics query and preparePay answer it too.
    pub(crate) const ORDER_NOT_EXIST: &str = "ORDER_NOT_EXIST";
    /// Names and numbers of the sandbox's seller and buyer (contacts, login ids, Alipay ids).
    pub(crate) const SELLER_LOGIN: &str = "sandbox-seller";
    pub(crate) const BUYER_LOGIN: &str = "sandbox-buyer";
}
pub(crate) use assumed::ACCOUNT_RESTRICTED;

const GW_SIGNATURE_INVALID: &str = "gw.SignatureInvalid";
const GW_RATE_LIMITED: &str = "gw.QosAppFrequencyLimit";
const GW_ACL_DECLINE: &str = "gw.APIACLDecline";
// Sandbox choices (not pinned by the contract): unknown API, undecodable parameters, outage.
const GW_API_UNSUPPORTED: &str = "gw.APIUnsupported";
const GW_PARAM_INVALID: &str = "gw.ParamInvalid";
const GW_SERVICE_UNAVAILABLE: &str = "gw.ServiceUnavailable";

// `alibaba.createOrder.preview`'s documented codes.
/// The offer cannot be traded online (also: gone from the shelf).
const PREVIEW_NOT_TRADABLE: &str = "500_001";
/// The spec does not belong to the offer.
const PREVIEW_SPEC_MISMATCH: &str = "500_003";
/// Short stock of a SKU.
const PREVIEW_OUT_OF_STOCK: &str = "500_004";
/// `alibaba.trade.getLogisticsInfos.buyerView`: not shipped yet, ask later.
const LOGISTICS_NOT_YET: &str = "500_2";
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
/// `webSite` where it is required: the 1688 site.
const WEB_SITE: &str = "1688";

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
    title: String,
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
    /// `addressParam` as the buyer sent it.
    address: Value,
    created_ms: i64,
    modified_ms: i64,
    paid_ms: Option<i64>,
    shipped_ms: Option<i64>,
    closed_ms: Option<i64>,
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

/// A business failure in the documented envelope of `api`.
fn api_error(api: &str, code: &str, message: impl Into<String>) -> Value {
    let message = message.into();
    match api {
        // `errorCode` / `errorMsg`.
        a if a == API_PREVIEW.1 => {
            json!({"success": false, "errorCode": code, "errorMsg": message})
        }
        // `success`, `code`, `message`.
        a if a == API_CREATE.1 => json!({"success": false, "code": code, "message": message}),
        // Nested `result.{success, code, message}`.
        a if a == API_PAY.1 || a == API_REFUND_REASONS.1 || a == API_CREATE_REFUND.1 => {
            json!({"result": {"success": false, "code": code, "message": message}})
        }
        // `success`, `message` (its documented failures are messages; an assumed code rides
        // along as `errorCode`).
        a if a == API_PRODUCT_INFO.1 => {
            json!({"success": false, "message": message, "errorCode": code})
        }
        // `errorCode` / `errorMessage` (buyer view: `success` is a String).
        a if a == API_BUYER_VIEW.1 => {
            json!({"success": "false", "errorCode": code, "errorMessage": message})
        }
        _ => json!({"success": false, "errorCode": code, "errorMessage": message}),
    }
}

/// Fen as the yuan JSON number 1688 writes: `18` for whole yuan, else `6.15` (the shortest
/// decimal that reads back as exactly the same fen).
pub(crate) fn yuan_number(fen: i64) -> Value {
    if fen % 100 == 0 {
        json!(fen / 100)
    } else {
        let text = util::yuan(fen);
        text.parse::<f64>()
            .map_or_else(|_| json!(text), |f| json!(f))
    }
}

/// A Long id as a JSON number when it is all digits.
fn long(id: &str) -> Value {
    id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n))
}

/// A stable numeric stand-in for ids the sandbox does not keep (`skuId`): 13 digits.
fn digits_of(s: &str) -> u64 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    1_000_000_000_000 + h % 9_000_000_000_000
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

    let kinds = if api == API_PRODUCT_INFO.1 {
        AOP_PRODUCT_KINDS
    } else {
        AOP_KINDS
    };
    let fired = sb.enter(Platform::Aop, api, kinds).await;
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
            api_error(
                api,
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
                api_error(
                    api,
                    assumed::PARAM_INVALID,
                    format!("parameter {k} given twice"),
                ),
            );
        }
    }
    let now = util::now_ms();
    let grace_ms = i64::try_from(cfg.close_order_grace_ms).unwrap_or(i64::MAX);
    let p = Params { map: &params, api };
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

struct Params<'a> {
    map: &'a HashMap<&'a str, &'a str>,
    api: &'a str,
}

impl Params<'_> {
    fn bad(&self, message: impl Into<String>) -> Value {
        api_error(self.api, assumed::PARAM_INVALID, message)
    }

    fn opt(&self, k: &str) -> Option<&str> {
        self.map.get(k).copied().filter(|v| !v.trim().is_empty())
    }

    fn req(&self, k: &str) -> Result<&str, Value> {
        self.opt(k)
            .ok_or_else(|| self.bad(format!("missing required parameter {k}")))
    }

    fn id(&self, k: &str) -> Result<&str, Value> {
        let v = self.req(k)?;
        if util::valid_token(v, 64) {
            Ok(v)
        } else {
            Err(self.bad(format!("parameter {k} must be 1..=64 printable characters")))
        }
    }

    /// `webSite`, required by the buyer view, the logistics query and the cancel: `1688`.
    fn web_site(&self) -> Result<(), Value> {
        match self.req("webSite")? {
            WEB_SITE => Ok(()),
            other => Err(self.bad(format!("webSite {other:?} is not served here (1688)"))),
        }
    }
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

/// `alibaba.cross.productInfo`: `skuInfos[].price` in yuan (Double).
fn product_info(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let id = p.id("productId")?;
    if let Some(pct) = fired.price_jump_percent {
        jump_price(s, id, pct);
    }
    let Some(prod) = s.product_mut(id) else {
        if s.generates(id, generated::is_long_id(id)) {
            return Ok(generated_product_info(s, id, fired));
        }
        // The documented failure is a message: "商品[id]不存在".
        return Err(json!({"success": false, "message": format!("商品[{id}]不存在")}));
    };
    let on_sale = if fired.out_of_stock {
        0
    } else {
        prod.amount_on_sale
    };
    Ok(json!({
        "success": true,
        "productInfo": {
            "productID": long(&prod.offer_id),
            "subject": prod.title,
            "status": if fired.delisted { DELISTED_STATUS } else { "published" },
            "skuInfos": [{
                "specId": prod.spec_id,
                "skuId": digits_of(&prod.spec_id),
                "price": yuan_number(prod.price_fen),
                "amountOnSale": on_sale,
            }],
            "saleInfo": {"amountOnSale": on_sale, "minOrderQuantity": 1, "unit": "件"},
        }
    }))
}

/// The `status` of an offer taken off the shelf (`delisted` fault): one of the statuses the
/// SDK's `AlibabaProductProductInfo.status` lists (expired: 过期).
const DELISTED_STATUS: &str = "expired";
/// Where the sandbox's generated image paths live, relative to 1688's image host as the SDK
/// documents `image.images` (relative paths).
const GENERATED_IMAGE_DIR: &str = "img/ibank/sandbox/";

/// A weight in grams as 1688's `unitWeight` (kg, Double; docs/vendors/1688.md, Assumed).
fn kg_number(grams: u32) -> Value {
    if grams.is_multiple_of(1000) {
        json!(grams / 1000)
    } else {
        json!(f64::from(grams) / 1000.0)
    }
}

/// `alibaba.cross.productInfo` for an id the catalogue does not hold: the generated product
/// (`generated`) in the whole `AlibabaProductProductInfo` shape.
fn generated_product_info(s: &State, id: &str, fired: &Fired) -> Value {
    let mut g = s.generated(PLATFORM_1688, id);
    // Orders placed on it took their units.
    for sku in &mut g.skus {
        if let Some(left) = s.generated_stock(PLATFORM_1688, id, &sku.spec_id) {
            sku.stock = left;
        }
    }
    let stock = |n: i64| if fired.out_of_stock { 0 } else { n };
    let skus: Vec<Value> = g
        .skus
        .iter()
        .map(|s| {
            let attributes: Vec<Value> = s
                .specs
                .iter()
                .enumerate()
                .map(|(i, sp)| {
                    let mut a = json!({
                        "attributeID": sp.parent_id,
                        "attributeValue": sp.value,
                        "attributeName": sp.name,
                        "attributeDisplayName": sp.name,
                    });
                    if i == 0 {
                        a["skuImageUrl"] = json!(format!("{GENERATED_IMAGE_DIR}{}", s.image));
                    }
                    a
                })
                .collect();
            json!({
                "specId": s.spec_id,
                "skuId": s.sku_id,
                "price": yuan_number(s.price_fen),
                "amountOnSale": stock(s.stock),
                "cargoNumber": "",
                "attributes": attributes,
            })
        })
        .collect();
    let mut shipping = json!({"sendGoodsAddressText": g.attributes[2].1});
    if let Some(w) = g.weight_g {
        shipping["unitWeight"] = kg_number(w);
    }
    if let Some((l, w, h)) = g.dims_mm {
        shipping["length"] = json!(l / 10);
        shipping["width"] = json!(w / 10);
        shipping["height"] = json!(h / 10);
    }
    let attributes: Vec<Value> = g
        .attributes
        .iter()
        .enumerate()
        .map(|(i, (name, value))| {
            json!({"attributeID": 1000 + i, "attributeName": name, "value": value, "isCustom": false})
        })
        .collect();
    let images: Vec<String> = g
        .images
        .iter()
        .map(|f| format!("{GENERATED_IMAGE_DIR}{f}"))
        .collect();
    json!({
        "success": true,
        "productInfo": {
            "productID": long(id),
            "productType": "wholesale",
            "categoryID": g.category_id,
            "subject": g.title,
            "status": if fired.delisted { DELISTED_STATUS } else { "published" },
            "attributes": attributes,
            "image": {"images": images},
            "skuInfos": skus,
            "saleInfo": {
                "amountOnSale": stock(g.total_stock()),
                "minOrderQuantity": g.moq,
                "unit": "件",
                "quoteType": 1,
                "priceRanges": [{"startQuantity": g.moq, "price": yuan_number(g.min_price_fen())}],
            },
            "shippingInfo": shipping,
            "supplierUserId": g.seller_id.to_string(),
            "supplierLoginId": g.seller_name,
            "sellerLoginId": g.seller_name,
        }
    })
}

struct Cargo {
    offer_id: String,
    spec_id: Option<String>,
    quantity: i64,
}

fn parse_cargo(p: &Params<'_>, raw: &str) -> Result<Vec<Cargo>, Value> {
    let bad = |m: &str| p.bad(format!("cargoParamList: {m}"));
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
                Some(Value::Number(n)) if n.is_u64() => n.to_string(),
                Some(Value::String(s)) if util::valid_token(s, 32) => s.clone(),
                _ => return Err(bad("offerId must be a Long")),
            };
            let spec_id = match o.get("specId") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if util::valid_token(s, 64) => Some(s.clone()),
                _ => return Err(bad("specId must be a string")),
            };
            let quantity = match o.get("quantity") {
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
                _ => None,
            }
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| bad("quantity must be a whole number 1..=1000000"))?;
            Ok(Cargo {
                offer_id,
                spec_id,
                quantity,
            })
        })
        .collect()
}

/// The order params the preview and the create share; `flow` is required by the create only.
fn check_order_params(p: &Params<'_>, flow_required: bool) -> Result<(Vec<Cargo>, Value), Value> {
    let flow = if flow_required {
        Some(p.req("flow")?)
    } else {
        p.opt("flow")
    };
    if flow.is_some_and(|f| f != "general") {
        return Err(p.bad("flow: only \"general\" is served here"));
    }
    let addr: Value = serde_json::from_str(p.req("addressParam")?)
        .map_err(|_| p.bad("addressParam is not valid JSON"))?;
    if addr.as_object().is_none_or(|o| o.is_empty()) {
        return Err(p.bad("addressParam must be a non-empty JSON object"));
    }
    Ok((parse_cargo(p, p.req("cargoParamList")?)?, addr))
}

struct Priced {
    lines: Vec<OrderLine>,
    goods_fen: i64,
    carriage_fen: i64,
}

/// Price the cargo against the current listings and check stock (per offer, summed over lines).
fn price(s: &mut State, p: &Params<'_>, cargo: &[Cargo], fired: &Fired) -> Result<Priced, Value> {
    if let Some(pct) = fired.price_jump_percent {
        let mut seen = Vec::new();
        for c in cargo {
            if !seen.contains(&&c.offer_id) {
                jump_price(s, &c.offer_id, pct);
                seen.push(&c.offer_id);
            }
        }
    }
    let overflow = || p.bad("order amount too large");
    let mut lines = Vec::with_capacity(cargo.len());
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    let (mut goods, mut carriage) = (0i64, 0i64);
    for c in cargo {
        let generated = s.generates(&c.offer_id, generated::is_long_id(&c.offer_id));
        let Some(prod) = s.listing_1688(&c.offer_id, c.spec_id.as_deref()) else {
            if generated {
                // A generated offer without that spec.
                return Err(api_error(
                    p.api,
                    PREVIEW_SPEC_MISMATCH,
                    format!(
                        "规格[{}]不属于商品[{}]",
                        c.spec_id.as_deref().unwrap_or_default(),
                        c.offer_id
                    ),
                ));
            }
            return Err(api_error(
                p.api,
                PREVIEW_NOT_TRADABLE,
                format!("商品[{}]不支持在线交易，无法下单", c.offer_id),
            ));
        };
        if c.spec_id.as_ref().is_some_and(|sp| *sp != prod.spec_id) {
            return Err(api_error(
                p.api,
                PREVIEW_SPEC_MISMATCH,
                format!(
                    "商品[{}]不属于同一卖家或规格[{}]不属于商品[{}]",
                    c.offer_id,
                    c.spec_id.as_deref().unwrap_or_default(),
                    c.offer_id
                ),
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
            return Err(api_error(
                p.api,
                PREVIEW_OUT_OF_STOCK,
                format!(
                    "商品[{}_{}]库存不足，请核实库存后再下单",
                    c.offer_id, prod.spec_id
                ),
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
            title: prod.title.clone(),
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

/// `alibaba.createOrder.preview`: `sumPayment` = goods + carriage (fen), `sumCarriage`,
/// `sumPaymentNoCarriage` (fen); `cargoList[].amount` and `finalUnitPrice` in yuan.
fn preview(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let (cargo, _) = check_order_params(p, false)?;
    let priced = price(s, p, &cargo, fired)?;
    let cargo_list: Vec<Value> = priced
        .lines
        .iter()
        .map(|l| {
            json!({
                "amount": yuan_number(l.amount_fen),
                "finalUnitPrice": yuan_number(l.unit_price_fen),
                "specId": l.spec_id,
                "skuId": digits_of(&l.spec_id),
                "offerId": long(&l.offer_id),
                "cargoPromotionList": [],
            })
        })
        .collect();
    Ok(json!({
        "orderPreviewResuslt": [{
            "tradeModeNameList": ["assureTrade"],
            "status": true,
            "taoSampleSinglePromotion": false,
            "sumPayment": priced.goods_fen + priced.carriage_fen,
            "sumCarriage": priced.carriage_fen,
            "sumPaymentNoCarriage": priced.goods_fen,
            "flowFlag": "general",
            "cargoList": cargo_list,
            "shopPromotionList": [],
            "tradeModelList": [{
                "tradeType": "assureTrade",
                "name": "担保交易",
                "description": "sandbox: the buyer pays within the order's payment window",
                "opSupport": true,
            }],
        }],
        "success": true,
    }))
}

/// `alibaba.trade.createCrossOrder`: `result.{success, orderId, totalSuccessAmount (fen),
/// postFee (fen), failedOfferList}`.
fn create_response(o: &Order) -> Value {
    json!({
        "result": {
            "success": true,
            "orderId": o.id,
            "totalSuccessAmount": o.total_fen,
            "postFee": o.carriage_fen,
            "failedOfferList": [],
        },
        "success": true,
    })
}

fn create_order(s: &mut State, p: &Params<'_>, fired: &Fired, now: i64) -> Result<Value, Value> {
    let out = match p.opt("outOrderId") {
        Some(_) => Some(p.id("outOrderId")?),
        None => None,
    };
    let (cargo, address) = check_order_params(p, true)?;
    if let Some(id) = out.and_then(|out| s.aop.by_out_order_id.get(out)) {
        let o = &s.aop.orders[id];
        tracing::info!(out_order_id = out, order_id = %o.id, "1688 createCrossOrder repeat: same order");
        return Ok(create_response(o));
    }
    let priced = price(s, p, &cargo, fired)?;
    for l in &priced.lines {
        if let Some(prod) = s.listing_1688(&l.offer_id, Some(&l.spec_id)) {
            prod.amount_on_sale -= l.quantity;
        }
    }
    let id = loop {
        let id = util::random_digits(19);
        if !s.aop.orders.contains_key(&id) && !id.starts_with('0') {
            break id;
        }
    };
    let out = out.map_or_else(|| id.clone(), str::to_owned);
    let order = Order {
        id: id.clone(),
        out_order_id: out.clone(),
        status: "waitbuyerpay",
        goods_fen: priced.goods_fen,
        carriage_fen: priced.carriage_fen,
        total_fen: priced.goods_fen + priced.carriage_fen,
        lines: priced.lines,
        address,
        created_ms: now,
        modified_ms: now,
        paid_ms: None,
        shipped_ms: None,
        closed_ms: None,
        logistics: None,
        close_reason: None,
        refund: None,
    };
    let answer = create_response(&order);
    s.record("purchase", "1688", &out, &id, order.total_fen, "CNY");
    s.aop.by_out_order_id.insert(out, id.clone());
    s.aop.orders.insert(id, order);
    Ok(answer)
}

/// The seller ships `ship_ms` after payment; evaluated lazily whenever the order is read.
/// A seller does not ship on its own while a refund request is open (sandbox choice).
fn advance(o: &mut Order, now: i64, ship_ms: i64) {
    if o.status == "waitsellersend"
        && o.refund.is_none()
        && o.paid_ms.is_some_and(|t| now >= t.saturating_add(ship_ms))
    {
        ship(o, now);
    }
}

fn ship(o: &mut Order, now: i64) {
    o.status = "waitbuyerreceive";
    o.shipped_ms = Some(now);
    o.modified_ms = now;
    o.logistics = Some((format!("YT{}", util::random_digits(13)), "YTO".to_owned()));
    tracing::info!(order_id = %o.id, "1688 seller shipped");
}

fn order_mut<'a>(
    s: &'a mut State,
    p: &Params<'_>,
    id: &str,
    now: i64,
    ship_ms: i64,
) -> Result<&'a mut Order, Value> {
    let o =
        s.aop.orders.get_mut(id).ok_or_else(|| {
            api_error(p.api, assumed::ORDER_NOT_EXIST, format!("订单[{id}]不存在"))
        })?;
    advance(o, now, ship_ms);
    Ok(o)
}

/// `alibaba.trade.pay.protocolPay.preparePay`: ONE parameter `tradeWithholdPreparePayParam`
/// (JSON `{orderId, payChannel?, payAmount? (fen), opRequestId?}`); the answer nests
/// `result.result.paySuccess`. A `payAmount` other than the order's total is refused.
fn pay(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let raw = p.req("tradeWithholdPreparePayParam")?;
    let param: Value = serde_json::from_str(raw)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| p.bad("tradeWithholdPreparePayParam must be a JSON object"))?;
    let order_id = match &param["orderId"] {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) if util::valid_token(s, 64) => s.clone(),
        _ => return Err(p.bad("tradeWithholdPreparePayParam.orderId must be a Long")),
    };
    let amount = match &param["payAmount"] {
        Value::Null => None,
        Value::Number(n) => Some(
            n.as_i64()
                .filter(|a| *a > 0)
                .ok_or_else(|| p.bad("payAmount must be a positive Long (fen)"))?,
        ),
        _ => return Err(p.bad("payAmount must be a positive Long (fen)")),
    };
    let op = match &param["opRequestId"] {
        Value::Null => None,
        Value::String(s) if util::valid_token(s, 64) => Some(s.clone()),
        _ => return Err(p.bad("opRequestId must be a string of 1..=64 characters")),
    };
    if let Some(first) = op.as_ref().and_then(|op| s.aop.pay_requests.get(op)) {
        tracing::info!(op_request_id = op, "1688 preparePay repeat: first answer");
        return Ok(first.clone());
    }
    let fail = |code: &str, m: String| api_error(p.api, code, m);
    let answer = match order_mut(s, p, &order_id, now, ship_ms) {
        Err(e) => e,
        Ok(o) if o.status == "cancel" => fail(assumed::ORDER_CLOSED, "order is closed".into()),
        Ok(o) if o.status != "waitbuyerpay" => {
            fail(assumed::ORDER_ALREADY_PAID, "order is already paid".into())
        }
        Ok(o) if amount.is_some_and(|a| a != o.total_fen) => fail(
            assumed::PAY_AMOUNT_MISMATCH,
            format!(
                "payAmount {} fen differs from the order's totalAmount {} ({} fen)",
                amount.unwrap_or_default(),
                util::yuan(o.total_fen),
                o.total_fen
            ),
        ),
        Ok(o) => {
            o.status = "waitsellersend";
            o.paid_ms = Some(now);
            o.modified_ms = now;
            advance(o, now, ship_ms);
            let total = o.total_fen;
            let reference = op.clone().unwrap_or_else(|| format!("pay-{order_id}"));
            s.record(
                "marketplace_payment",
                "1688",
                &reference,
                &order_id,
                total,
                "CNY",
            );
            json!({"result": {"success": true, "code": null, "message": null,
                   "result": {"payChannel": "alipay", "paySuccess": true}}})
        }
    };
    if let Some(op) = op {
        s.aop.pay_requests.insert(op, answer.clone());
    }
    Ok(answer)
}

/// How an order view writes `idOfStr`: the buyer view's sample has a string, the order
/// list's a number.
#[derive(Clone, Copy)]
enum IdOfStr {
    Text,
    Number,
}

fn time(ms: i64) -> Value {
    json!(util::aop_time(ms))
}

/// `baseInfo` (`alibaba.openplatform.trade.model.OrderBaseInfo`): every amount named in yuan
/// is a yuan number; `refundPayment` and `discount` are Longs (fen).
fn base_info(o: &Order, id_style: IdOfStr) -> Value {
    let a = &o.address;
    let field = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or_default();
    let area = [
        field("provinceText"),
        field("cityText"),
        field("areaText"),
        field("townText"),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ");
    let refunded = o.refund.as_ref().map_or(
        0,
        |(st, fen, _)| {
            if *st == "refundsuccess" { *fen } else { 0 }
        },
    );
    let mut v = json!({
        "businessType": "cn",
        "buyerID": format!("b2b-{}", digits_of(assumed::BUYER_LOGIN)),
        "createTime": util::aop_time(o.created_ms),
        "id": long(&o.id),
        "modifyTime": util::aop_time(o.modified_ms),
        "refund": yuan_number(refunded),
        "sellerID": format!("b2b-{}", digits_of(assumed::SELLER_LOGIN)),
        "shippingFee": yuan_number(o.carriage_fen),
        "status": o.status,
        "totalAmount": yuan_number(o.total_fen),
        "discount": 0,
        "buyerContact": {"phone": "", "imInPlatform": assumed::BUYER_LOGIN, "name": field("fullName"),
                         "mobile": field("mobile"), "companyName": ""},
        "sellerContact": {"phone": "", "email": "seller@sandbox.invalid", "imInPlatform": assumed::SELLER_LOGIN,
                          "name": "Sandbox Seller", "mobile": "", "companyName": "Sandbox Supplier Ltd"},
        "tradeType": "50060",
        "refundPayment": refunded,
        "idOfStr": match id_style { IdOfStr::Text => json!(o.id), IdOfStr::Number => long(&o.id) },
        "alipayTradeId": if o.paid_ms.is_some() { format!("2026{}", &o.id[..o.id.len().min(16)]) } else { "UNCREAT".to_owned() },
        "receiverInfo": {"toFullName": field("fullName"), "toDivisionCode": field("districtCode"),
                         "toPost": field("postCode"), "toTownCode": "", "toArea": area},
        "buyerLoginId": assumed::BUYER_LOGIN,
        "sellerLoginId": assumed::SELLER_LOGIN,
        "buyerUserId": digits_of(assumed::BUYER_LOGIN),
        "sellerUserId": digits_of(assumed::SELLER_LOGIN),
        "buyerAlipayId": format!("2088{}", digits_of("buyer-alipay")),
        "sellerAlipayId": format!("2088{}", digits_of("seller-alipay")),
        "sumProductPayment": yuan_number(o.goods_fen),
        "stepPayAll": false,
        "outOrderId": o.out_order_id,
    });
    if let Some(t) = o.paid_ms {
        v["payTime"] = time(t);
    }
    if let Some(t) = o.shipped_ms {
        v["allDeliveredTime"] = time(t);
    }
    if let Some(t) = o.closed_ms {
        v["completeTime"] = time(t);
    }
    if let Some(r) = &o.close_reason {
        v["closeReason"] = json!(r);
    }
    if let Some((status, _, _)) = &o.refund {
        v["refundStatus"] = json!(status);
    }
    v
}

fn status_text(status: &str) -> &'static str {
    match status {
        "waitbuyerpay" => "等待买家付款",
        "waitsellersend" => "等待卖家发货",
        "waitbuyerreceive" => "等待买家收货",
        "cancel" => "交易取消",
        _ => "其他",
    }
}

/// `productItems[]`: `price` and `itemAmount` in yuan, `subItemID` a Long beside
/// `subItemIDString`.
fn product_items(o: &Order) -> Vec<Value> {
    o.lines
        .iter()
        .map(|l| {
            let mut item = json!({
                "itemAmount": yuan_number(l.amount_fen),
                "name": l.title,
                "price": yuan_number(l.unit_price_fen),
                "productID": long(&l.offer_id),
                "productImgUrl": [format!("https://sandbox.invalid/img/{}.jpg", l.offer_id)],
                "productSnapshotUrl": format!("https://sandbox.invalid/order/offer_snapshot.htm?order_entry_id={}", l.entry_id),
                "quantity": l.quantity,
                "refund": 0,
                "skuID": digits_of(&l.spec_id),
                "status": o.status,
                "subItemID": long(&l.entry_id),
                "type": "common",
                "unit": "件",
                "guaranteesTerms": [],
                "productCargoNumber": "",
                "skuInfos": [{"name": "规格", "value": l.spec_id}],
                "entryDiscount": 0,
                "specId": l.spec_id,
                "quantityFactor": 1,
                "statusStr": status_text(o.status),
                "logisticsStatus": if o.shipped_ms.is_some() { 2 } else { 1 },
                "gmtCreate": util::aop_time(o.created_ms),
                "gmtModified": util::aop_time(o.modified_ms),
                "gmtPayExpireTime": util::aop_time(o.created_ms.saturating_add(86_400_000)),
                "subItemIDString": l.entry_id,
            });
            if let Some((status, _, refund_id)) = &o.refund {
                item["refundStatus"] = json!(status.to_ascii_uppercase());
                item["refundId"] = json!(refund_id);
            }
            if let Some(r) = &o.close_reason {
                item["closeReason"] = json!(r);
            }
            item
        })
        .collect()
}

/// `nativeLogistics`, with `logisticsItems` once the seller has shipped.
fn native_logistics(o: &Order) -> Value {
    let field = |k: &str| o.address.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut v = json!({
        "address": field("address"),
        "area": field("areaText"),
        "areaCode": field("districtCode"),
        "city": field("cityText"),
        "contactPerson": field("fullName"),
        "mobile": field("mobile"),
        "province": field("provinceText"),
        "zip": field("postCode"),
        "townCode": "",
        "town": field("townText"),
    });
    if let (Some(t), Some((bill, _))) = (o.shipped_ms, &o.logistics) {
        let ids: Vec<&str> = o.lines.iter().map(|l| l.entry_id.as_str()).collect();
        v["logisticsItems"] = json!([{
            "deliveredTime": util::aop_time(t),
            "logisticsCode": format!("BX{}", &o.id[..o.id.len().min(15)]),
            "type": "2",
            "id": digits_of(bill),
            "status": "alreadysend",
            "gmtModified": util::aop_time(t),
            "gmtCreate": util::aop_time(t),
            "fromPhone": "",
            "fromMobile": "",
            "logisticsBillNo": bill,
            "subItemIds": ids.join(","),
        }]);
    }
    v
}

fn trade_info(o: &Order, id_style: IdOfStr) -> Value {
    let pay_status = match (o.paid_ms, o.status) {
        (Some(_), _) => "2",
        (None, "cancel") => "8",
        (None, _) => "1",
    };
    json!({
        "baseInfo": base_info(o, id_style),
        "nativeLogistics": native_logistics(o),
        "productItems": product_items(o),
        "tradeTerms": [{
            "payStatus": pay_status,
            "payTime": util::aop_time(o.paid_ms.unwrap_or(o.created_ms)),
            "payWay": "1",
            "phasAmount": yuan_number(o.total_fen),
            "phase": digits_of(&o.id),
        }],
        "extAttributes": [],
        "orderRateInfo": {"buyerRateStatus": 5, "sellerRateStatus": 5},
    })
}

/// `alibaba.trade.get.buyerView` (`webSite` required).
fn buyer_view(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    p.web_site()?;
    let o = order_mut(s, p, p.id("orderId")?, now, ship_ms)?;
    Ok(json!({"result": trade_info(o, IdOfStr::Text)}))
}

/// `alibaba.trade.getBuyerOrderList`: by `outOrderId` (or every order), newest first.
fn order_list(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let ids: Vec<String> = match p.opt("outOrderId") {
        Some(out) => s
            .aop
            .by_out_order_id
            .get(out)
            .cloned()
            .into_iter()
            .collect(),
        None => {
            let mut all: Vec<&Order> = s.aop.orders.values().collect();
            all.sort_by_key(|o| std::cmp::Reverse(o.created_ms));
            all.iter().map(|o| o.id.clone()).collect()
        }
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in &ids {
        found.push(trade_info(
            order_mut(s, p, id, now, ship_ms)?,
            IdOfStr::Number,
        ));
    }
    Ok(json!({"result": found, "totalRecord": found.len()}))
}

/// `alibaba.trade.getLogisticsInfos.buyerView` (`webSite` required): `500_2` until the
/// seller ships.
fn logistics(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    p.web_site()?;
    let o = order_mut(s, p, p.id("orderId")?, now, ship_ms)?;
    let Some((bill, company)) = &o.logistics else {
        return Err(api_error(
            p.api,
            LOGISTICS_NOT_YET,
            "订单尚未发货，暂无物流详情，请稍候再试。",
        ));
    };
    let field = |k: &str| o.address.get(k).and_then(Value::as_str).unwrap_or_default();
    let ids: Vec<&str> = o.lines.iter().map(|l| l.entry_id.as_str()).collect();
    let goods: Vec<Value> = o
        .lines
        .iter()
        .map(|l| json!({"unit": "件", "quantity": l.quantity, "goodName": l.title}))
        .collect();
    Ok(json!({
        "result": [{
            "logisticsId": format!("BX{}", &o.id[..o.id.len().min(15)]),
            "logisticsBillNo": bill,
            "orderEntryIds": ids.join(","),
            "status": "ACCEPT",
            "logisticsCompanyId": "8",
            "logisticsCompanyName": company,
            "logisticsCompanyNo": company,
            "remarks": "",
            "sendGoods": goods,
            "receiver": {
                "receiverCountyCode": field("districtCode"), "receiverCity": field("cityText"),
                "receiverProvinceCode": "", "receiverCityCode": "", "encrypt": "CN",
                "receiverCounty": field("areaText"), "receiverMobile": field("mobile"),
                "receiverProvince": field("provinceText"), "receiverName": field("fullName"),
                "receiverAddress": field("address"), "receiverPhone": "",
            },
            "sender": {
                "senderCityCode": "330100", "senderAddress": "Sandbox warehouse 1",
                "senderName": "Sandbox Seller", "senderProvince": "浙江省", "encrypt": "CN",
                "senderCity": "杭州市", "senderCountyCode": "330108", "senderProvinceCode": "330000",
                "senderMobile": "", "senderPhone": "", "senderCounty": "滨江区",
            },
        }],
        "success": true,
    }))
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
        } else if let Some(p) = s
            .generated_products
            .iter_mut()
            .find(|p| p.offer_id == l.offer_id && p.spec_id == l.spec_id)
        {
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
        .map_err(|_| cancel_error(assumed::PARAM_INVALID, "missing parameter webSite"))?;
    if site != "1688" {
        return Err(cancel_error(assumed::PARAM_INVALID, "webSite must be 1688"));
    }
    let reason = p
        .req("cancelReason")
        .map_err(|_| cancel_error(assumed::PARAM_INVALID, "missing parameter cancelReason"))?;
    if !CANCEL_REASONS.contains(&reason) {
        return Err(cancel_error(
            assumed::PARAM_INVALID,
            "cancelReason must be buyerCancel, sellerGoodsLack or other",
        ));
    }
    let id = p
        .id("tradeID")
        .map_err(|_| cancel_error(assumed::PARAM_INVALID, "tradeID must be an order id"))?;
    let o = order_mut(s, p, id, now, ship_ms)
        .map_err(|_| cancel_error(assumed::ORDER_NOT_EXIST, "订单不存在"))?;
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
    o.closed_ms = Some(now);
    o.modified_ms = now;
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
    let o = order_mut(s, p, id, now, ship_ms)
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
    let now = util::now_ms();
    o.closed_ms = Some(now);
    o.modified_ms = now;
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
    Some(Ok(base_info(&s.aop.orders[id], IdOfStr::Text)))
}

/// `POST /_sandbox/marketplace/orders/{id}/ship` for a 1688 order: the seller ships now.
/// `None` if there is no such order; `Err(status)` unless it is paid (shipping twice answers
/// the shipped order again). The seller ships even with a refund request open (the buyer view's
/// documented sample shows such an order: `waitbuyerreceive` with `refundStatus`
/// `waitselleragree`); the request then no longer fits (`5010` on a new one).
pub(crate) fn sandbox_ship(s: &mut State, id: &str) -> Option<Result<Value, &'static str>> {
    let o = s.aop.orders.get_mut(id)?;
    match o.status {
        "waitsellersend" => {
            ship(o, util::now_ms());
            Some(Ok(base_info(o, IdOfStr::Text)))
        }
        "waitbuyerreceive" => Some(Ok(base_info(o, IdOfStr::Text))),
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
        let now = util::now_ms();
        o.closed_ms = Some(now);
        o.modified_ms = now;
        let info = base_info(o, IdOfStr::Text);
        let lines = o.lines.clone();
        restock(s, &lines);
        tracing::info!(order_id = %order_id, "1688 order closed by the seller (sandbox)");
        json_response(StatusCode::OK, json!({"baseInfo": info}))
    })
}
