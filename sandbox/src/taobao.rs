//! Taobao Global Open Platform (IOP) gateway: `POST /rest{apiPath}` (GET with a query string is
//! accepted too, as on 1688), answering in the shapes docs/vendors/taobao.md gives (per the
//! public SDK; tests/contracts/taobao/ holds them).
//!
//! Checks in order: known apiPath (`InvalidApiPath`), `app_key` (`InvalidAppKey`),
//! `sign_method=sha256` + `sign` (`IncompleteSignature`), `access_token` (`IllegalAccessToken`),
//! then injected faults, then duplicated parameters / `timestamp` presence (`InvalidParameter`),
//! then the business call. Every answer is HTTP 200 JSON. The IOP envelope is `code` (`"0"`),
//! `request_id`, `_trace_id_`; a gateway refusal is `{"code","message","request_id"}`; a
//! business failure is `code` `"0"` with `success: false`, `error_code`, `error_msg` (under
//! `result` for render and logistics, as their answers are). An injected outage (`error`
//! fault) is HTTP 503 with code `ServiceUnavailable`.
//!
//! Orders mirror 1688: an order is created directly in `WAIT_BUYER_P` (`BULIDING` is never
//! observable), paying moves it to `WAIT_SELLER_SEND_GOODS`, the seller ships `seller_ship_ms`
//! after payment (`WAIT_BUYER_CONFIRM_GOODS`, evaluated lazily on every read), and
//! `POST /_sandbox/orders/{id}/cancel` closes an unpaid order (`TRADE_CLOSED`, stock returned).
//! The buyer cancels with `/purchase/order/asyn/cancel` until the seller ships: Taobao handles
//! it asynchronously, the sandbox closes the order within the call (`TRADE_CLOSED`; a paid order
//! is refunded in full: `pay_amount` stays, a `refund_id` appears on its lines, ledger
//! `marketplace_refund` with reference the `purchase_id`); a shipped order answers
//! `ORDER_CANNOT_CANCEL` (assumed code). Ids (`purchase_id`, `sub_purchase_order_id`) are
//! integers; each order line is one sub-order, and `/logistics/detail/get` takes its id.
//! Each distinct item of an order is its own seller group in the render, with that sku's 1688
//! domestic shipping as `mainland_shipping_fee`. Ledger: `purchase` and `marketplace_payment`,
//! platform `taobao`, reference the `outer_purchase_id`, external id the `purchase_id`.

use crate::{
    Sandbox, State,
    catalogue::{Offer, PLATFORM_TAOBAO},
    faults::{AOP_KINDS, AOP_PRODUCT_KINDS, Fired, Platform},
    generated,
    util::{self, json_response, parse_form},
};
use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State as AxState},
    http::StatusCode,
    response::Response,
};
use procure_domain::signing;
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

/// Assumed (docs/vendors/taobao.md, "Assumed"): every code below is the sandbox's, not sourced
/// (the SDK names only `IllegalAccessToken`). This is the one place the sandbox names them.
mod assumed {
    /// A buyer account under risk control; the `account_restricted` fault produces it.
    pub(super) const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";
    pub(super) const INCOMPLETE_SIGNATURE: &str = "IncompleteSignature";
    pub(super) const INVALID_APP_KEY: &str = "InvalidAppKey";
    pub(super) const API_CALL_LIMIT: &str = "ApiCallLimit";
    pub(super) const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
    pub(super) const ITEM_NOT_FOUND: &str = "ITEM_NOT_FOUND";
    pub(super) const ORDER_NOT_FOUND: &str = "ORDER_NOT_FOUND";
    /// `purchase_amount` differs from the current total.
    pub(super) const PRICE_CHANGED: &str = "PRICE_CHANGED";
    pub(super) const INVALID_PARAMETER: &str = "InvalidParameter";
    /// The refusal of a cancellation the order's state forbids.
    pub(super) const ORDER_CANNOT_CANCEL: &str = "ORDER_CANNOT_CANCEL";
    /// `pay_failed_results[].errorCode` of a closed order.
    pub(super) const TRADE_CLOSED_REASON: &str = "TRADE_CLOSED";
    /// Unknown apiPath, injected outage.
    pub(super) const INVALID_API_PATH: &str = "InvalidApiPath";
    pub(super) const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
}
use assumed::*;

/// Per SDK `consts/error.go`.
const ILLEGAL_ACCESS_TOKEN: &str = "IllegalAccessToken";

// Per SDK `consts/purchase_order_status.go`.
const WAIT_BUYER_P: &str = "WAIT_BUYER_P";
const WAIT_SELLER_SEND_GOODS: &str = "WAIT_SELLER_SEND_GOODS";
const WAIT_BUYER_CONFIRM_GOODS: &str = "WAIT_BUYER_CONFIRM_GOODS";
const TRADE_CLOSED: &str = "TRADE_CLOSED";
/// Per SDK `consts/logistics_status.go`: the parcel's state once the seller has shipped.
const LOGISTICS_COLLECTED: &str = "COLLECTED";

const MAX_LINES: usize = 50;
/// Per SDK `types/order_batch_pay.go`: at most 10 orders per batch.
const MAX_PAY_BATCH: usize = 10;
const MAX_QUANTITY: i64 = 1_000_000;
/// Postage of an item whose sku has no 1688 listing to take the domestic shipping from.
const DEFAULT_POSTAGE_FEN: i64 = 500;
const SHIPPING_COMPANY: &str = "ZTO";
const SELLER_NICK: &str = "sandbox-seller";
const SELLER_ID: u64 = 2_200_000_000_001;
const BUYER_NICK: &str = "sandbox-buyer";

const API_PRODUCT: &str = "/product/get";
const API_RENDER: &str = "/purchase/order/render";
const API_CREATE: &str = "/purchase/order/create";
const API_PAY: &str = "/purchase/order/batch/pay";
const API_QUERY: &str = "/purchase/orders/query";
const API_LOGISTICS: &str = "/logistics/detail/get";
const API_CANCEL: &str = "/purchase/order/asyn/cancel";
const APIS: [&str; 7] = [
    API_CANCEL,
    API_PRODUCT,
    API_RENDER,
    API_CREATE,
    API_PAY,
    API_QUERY,
    API_LOGISTICS,
];

#[derive(Clone, Debug)]
struct Line {
    sub_id: String,
    item_id: String,
    sku_id: String,
    quantity: i64,
    price_fen: i64,
    order_line_no: String,
    title: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Order {
    id: String,
    outer_id: String,
    status: &'static str,
    postage_fen: i64,
    total_fen: i64,
    lines: Vec<Line>,
    receiver: Value,
    created_ms: i64,
    modified_ms: i64,
    paid_ms: Option<i64>,
    /// Tracking number, company, shipped at (ms).
    logistics: Option<(String, String, i64)>,
    close_reason: Option<String>,
    /// The refund of a paid order that was cancelled.
    refund_id: Option<String>,
    /// The buyer asked to cancel this paid order and the seller has not decided yet.
    cancel_requested: bool,
}

#[derive(Default)]
pub(crate) struct TaobaoState {
    orders: HashMap<String, Order>,
    by_outer_id: HashMap<String, String>,
    /// `sub_purchase_order_id` → `purchase_id`.
    by_line: HashMap<String, String>,
}

fn request_id() -> String {
    util::random_id("", 24).to_ascii_lowercase()
}

/// A success: `body`'s fields inside the IOP envelope.
fn ok(body: Value) -> Value {
    let mut map = match body {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    map.insert("code".into(), json!("0"));
    map.insert("request_id".into(), json!(request_id()));
    map.insert("_trace_id_".into(), json!(request_id()));
    Value::Object(map)
}

/// The gateway's refusal (signature, key, token, limits, parameters).
fn fail(code: &str, message: impl Into<String>) -> Value {
    json!({"code": code, "message": message.into(), "request_id": request_id()})
}

/// A business failure at the top of the answer (product, create, pay, query, cancel).
fn biz_fail(code: &str, message: impl Into<String>) -> Value {
    ok(json!({"success": false, "error_code": code, "error_msg": message.into()}))
}

/// A business failure under `result` (render, logistics).
fn result_fail(code: &str, message: impl Into<String>) -> Value {
    ok(
        json!({"result": {"success": false, "error_code": code, "error_msg": message.into(),
                         "inner_error_msg": "", "fail_items": ""}}),
    )
}

/// A successful business outcome's fields.
fn success(mut extra: Value) -> Value {
    extra["success"] = json!(true);
    extra["error_code"] = json!("");
    extra["error_msg"] = json!("");
    extra
}

/// An id as the SDK types it: an integer when it is one, else (catalogue ids) a string.
fn id_json(id: &str) -> Value {
    match id.parse::<u64>() {
        Ok(n) if n.to_string() == id => Value::from(n),
        _ => Value::String(id.to_owned()),
    }
}

/// `{amount, currency}`, amount in fen (per SDK `Price`).
fn money(fen: i64) -> Value {
    json!({"amount": fen, "currency": "CNY"})
}

fn reply(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

pub(crate) async fn handle_post(
    AxState(sb): AxState<Sandbox>,
    Path(api): Path<String>,
    body: Bytes,
) -> Response {
    call(&sb, &api, &body).await
}

pub(crate) async fn handle_get(
    AxState(sb): AxState<Sandbox>,
    Path(api): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    call(&sb, &api, query.unwrap_or_default().as_bytes()).await
}

async fn call(sb: &Sandbox, api: &str, raw: &[u8]) -> Response {
    let api_path = format!("/{api}");
    let Ok(pairs) = parse_form(raw) else {
        return reply(fail(
            INVALID_PARAMETER,
            "parameters are not valid form encoding",
        ));
    };
    let Some(api_path) = APIS.iter().copied().find(|a| *a == api_path) else {
        return reply(fail(INVALID_API_PATH, "The specified API path is invalid"));
    };
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let cfg = sb.config();
    if get("app_key") != Some(cfg.taobao_app_key.as_str()) {
        return reply(fail(INVALID_APP_KEY, "The app_key is invalid"));
    }
    let expected = signing::iop_signature(
        api_path,
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.taobao_app_secret,
    );
    let signed = get("sign_method") == Some("sha256")
        && get("sign").is_some_and(|g| signing::signatures_equal(g, &expected));
    if !signed {
        tracing::info!(api = api_path, "taobao call rejected: bad signature");
        return reply(fail(
            INCOMPLETE_SIGNATURE,
            "The request signature does not conform to platform standards",
        ));
    }
    if !util::buyer_token_ok(get("access_token"), &cfg.taobao_access_token) {
        return reply(fail(
            ILLEGAL_ACCESS_TOKEN,
            "The access_token is missing, invalid or expired",
        ));
    }

    let kinds = if api_path == API_PRODUCT {
        AOP_PRODUCT_KINDS
    } else {
        AOP_KINDS
    };
    let fired = sb.enter(Platform::Taobao, api_path, kinds).await;
    if fired.rate_limit {
        return reply(fail(API_CALL_LIMIT, "The request has exceeded the limit"));
    }
    if fired.bad_signature {
        return reply(fail(
            INCOMPLETE_SIGNATURE,
            "The request signature does not conform to platform standards",
        ));
    }
    if fired.error {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            fail(SERVICE_UNAVAILABLE, "Service temporarily unavailable"),
        );
    }
    if fired.account_restricted {
        return reply(fail(
            ACCOUNT_RESTRICTED,
            "The buyer account is restricted by risk control",
        ));
    }

    let mut params: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &pairs {
        if params.insert(k.as_str(), v.as_str()).is_some() {
            return reply(fail(
                INVALID_PARAMETER,
                format!("parameter {k} given twice"),
            ));
        }
    }
    if !params
        .get("timestamp")
        .is_some_and(|t| t.parse::<i64>().is_ok_and(|t| t > 0))
    {
        return reply(fail(
            INVALID_PARAMETER,
            "timestamp must be epoch milliseconds",
        ));
    }
    let now = util::now_ms();
    let p = Params(&params);
    let answer = sb.with(|s| {
        let ship_ms = s.seller_ship_ms();
        match api_path {
            API_CANCEL => buyer_cancel(s, &p, now, ship_ms),
            API_PRODUCT => product(s, &p, &fired),
            API_RENDER => render(s, &p, &fired),
            API_CREATE => create(s, &p, &fired, now),
            API_PAY => batch_pay(s, &p, now, ship_ms),
            API_QUERY => query(s, &p, now, ship_ms),
            _ => logistics(s, &p, now, ship_ms),
        }
    });
    let answer = answer.map(ok).unwrap_or_else(|e| e);
    if let Some(d) = fired.timeout_after_commit {
        tracing::info!(
            api = api_path,
            delay_ms = d.as_millis() as u64,
            "taobao answer held back after commit (fault)"
        );
        sb.sleep(d).await;
    }
    reply(answer)
}

struct Params<'a>(&'a HashMap<&'a str, &'a str>);

impl Params<'_> {
    fn req(&self, k: &str) -> Result<&str, Value> {
        match self.0.get(k) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(fail(INVALID_PARAMETER, format!("missing parameter {k}"))),
        }
    }

    fn opt_id(&self, k: &str) -> Result<Option<&str>, Value> {
        match self.0.get(k) {
            None => Ok(None),
            Some(_) => self.id(k).map(Some),
        }
    }

    fn id(&self, k: &str) -> Result<&str, Value> {
        let v = self.req(k)?;
        if util::valid_token(v, 64) {
            Ok(v)
        } else {
            Err(fail(
                INVALID_PARAMETER,
                format!("parameter {k} must be 1..=64 printable characters"),
            ))
        }
    }
}

/// A JSON id: a non-empty string or a non-negative integer.
fn json_id(v: Option<&Value>, max: usize) -> Option<String> {
    match v {
        Some(Value::String(s)) if util::valid_token(s, max) => Some(s.clone()),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON array of ids (`purchaseOrderIdList`, `purchase_ids`, `sub_purchase_orderId_list`).
fn id_list(raw: &str, name: &str, max: usize) -> Result<Vec<String>, Value> {
    let bad = || {
        fail(
            INVALID_PARAMETER,
            format!("{name} must be a JSON array of 1..={max} ids"),
        )
    };
    let items: Vec<Value> = serde_json::from_str(raw).map_err(|_| bad())?;
    if items.is_empty() || items.len() > max {
        return Err(bad());
    }
    items
        .iter()
        .map(|it| json_id(Some(it), 64).ok_or_else(bad))
        .collect()
}

/// A JSON object parameter (`receiver`, `receiver_address`) that must name a country.
fn address_param(p: &Params<'_>, name: &str) -> Result<Value, Value> {
    let v: Value = serde_json::from_str(p.req(name)?)
        .map_err(|_| fail(INVALID_PARAMETER, format!("{name} is not valid JSON")))?;
    let ok = v
        .get("country")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.trim().is_empty());
    if !ok {
        return Err(fail(
            INVALID_PARAMETER,
            format!("{name} must be a JSON object with a country"),
        ));
    }
    Ok(v)
}

fn product(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let id = p.id("item_id")?;
    if let Some(pct) = fired.price_jump_percent {
        s.jump_offer_price(PLATFORM_TAOBAO, id, pct);
    }
    let gone = || {
        biz_fail(
            ITEM_NOT_FOUND,
            format!("item {id} does not exist or is off the shelf"),
        )
    };
    if fired.delisted {
        return Err(gone());
    }
    let Some(offer) = s.offer_mut(PLATFORM_TAOBAO, id).cloned() else {
        if s.generates(id, generated::is_long_id(id)) {
            return Ok(generated_product(s, id, fired));
        }
        return Err(gone());
    };
    let stock = if fired.out_of_stock { 0 } else { offer.stock };
    let postage = s.postage_of(&offer.sku);
    Ok(success(json!({
        "fail_items": "",
        "data": {
            "item_id": id_json(&offer.offer_id),
            "title": s.title_of(&offer.sku),
            "shop_name": SELLER_NICK,
            "user_nick": SELLER_NICK,
            "status": "NORMAL",
            "price": offer.price_fen,
            "promotion_price": offer.price_fen,
            "coupon_price": offer.price_fen,
            "quantity": stock,
            "begin_amount": 1,
            "postFee": postage,
            "pic_urls": [],
            "sku_list": [{
                "sku_id": id_json(&offer.spec_id),
                "price": offer.price_fen,
                "promotion_price": offer.price_fen,
                "coupon_price": offer.price_fen,
                "quantity": stock,
                "status": "NORMAL",
                "pic_url": "",
                "properties": [],
                "postFee": postage,
            }],
        },
    })))
}

/// Where the sandbox's generated Taobao images live (a host that never resolves).
const GENERATED_IMAGE_BASE: &str = "https://img.sandbox.invalid/taobao/";

/// The list price of a generated item: 15 % above what a buyer pays, whole yuan.
fn list_price(fen: i64) -> i64 {
    (fen * 115 / 100 + 99) / 100 * 100
}

/// `/product/get` for an id the catalogue does not hold: the generated product
/// (`generated`) in the SDK's `ProductInfoData` shape.
fn generated_product(s: &State, id: &str, fired: &Fired) -> Value {
    let mut g = s.generated(PLATFORM_TAOBAO, id);
    // Orders placed on it took their units.
    for sku in &mut g.skus {
        if let Some(left) = s.generated_stock(PLATFORM_TAOBAO, id, &sku.sku_id.to_string()) {
            sku.stock = left;
        }
    }
    let stock = |n: i64| if fired.out_of_stock { 0 } else { n };
    let skus: Vec<Value> = g
        .skus
        .iter()
        .map(|s| {
            let properties: Vec<Value> = s
                .specs
                .iter()
                .map(|sp| {
                    json!({"prop_id": sp.parent_id, "prop_name": sp.name,
                           "value_id": sp.value_id, "value_name": sp.value,
                           "value_desc": sp.value})
                })
                .collect();
            json!({
                "sku_id": s.sku_id,
                "price": list_price(s.price_fen),
                "promotion_price": s.price_fen,
                "coupon_price": s.price_fen,
                "quantity": stock(s.stock),
                "status": "NORMAL",
                "pic_url": format!("{GENERATED_IMAGE_BASE}{}", s.image),
                "properties": properties,
                "postFee": generated::CARRIAGE_FEN,
            })
        })
        .collect();
    let pics: Vec<String> = g
        .images
        .iter()
        .map(|f| format!("{GENERATED_IMAGE_BASE}{f}"))
        .collect();
    let min = g.min_price_fen();
    success(json!({
        "fail_items": "",
        "data": {
            "item_id": id_json(id),
            "title": g.title,
            "shop_id": g.seller_id,
            "shop_name": g.seller_name,
            "user_nick": g.seller_name,
            "status": "NORMAL",
            "category_id": g.category_id.to_string(),
            "price": list_price(min),
            "promotion_price": min,
            "coupon_price": min,
            "quantity": stock(g.total_stock()),
            "begin_amount": g.moq,
            "postFee": generated::CARRIAGE_FEN,
            "pic_urls": pics,
            "sku_list": skus,
        },
    }))
}

struct LineReq {
    item_id: String,
    sku_id: Option<String>,
    quantity: i64,
    order_line_no: String,
}

/// `render_item_List` (`[{item_id, sku_id, quantity}]`) or `order_line_list` (the same plus
/// `currency`, `price`, `order_line_no`).
fn parse_lines(raw: &str, name: &str) -> Result<Vec<LineReq>, Value> {
    let bad = |m: &str| fail(INVALID_PARAMETER, format!("{name}: {m}"));
    let v: Value = serde_json::from_str(raw).map_err(|_| bad("not valid JSON"))?;
    let items = v.as_array().ok_or_else(|| bad("must be a JSON array"))?;
    if items.is_empty() || items.len() > MAX_LINES {
        return Err(bad("must hold 1..=50 entries"));
    }
    items
        .iter()
        .map(|it| {
            let o = it
                .as_object()
                .ok_or_else(|| bad("entries must be objects"))?;
            let item_id = json_id(o.get("item_id"), 32)
                .ok_or_else(|| bad("item_id must be a non-empty string or a number"))?;
            let sku_id = match o.get("sku_id") {
                None | Some(Value::Null) => None,
                v => Some(json_id(v, 64).ok_or_else(|| bad("sku_id must be a string"))?),
            };
            let quantity = match o.get("quantity") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| bad("quantity must be an integer 1..=1000000"))?;
            let order_line_no = match o.get("order_line_no") {
                None | Some(Value::Null) => String::new(),
                v => json_id(v, 64).ok_or_else(|| bad("order_line_no must be a string"))?,
            };
            Ok(LineReq {
                item_id,
                sku_id,
                quantity,
                order_line_no,
            })
        })
        .collect()
}

/// Why a line cannot be bought now (the render's `unavailable_sku_list`).
struct Unavailable {
    item_id: String,
    sku_id: Option<String>,
    code: &'static str,
    message: String,
}

struct Priced {
    lines: Vec<Line>,
    /// Per distinct item, in order of first appearance: the item and its postage.
    groups: Vec<(String, i64)>,
    postage_fen: i64,
    total_fen: i64,
}

/// Price the lines against the current listings and check stock (per item, summed over lines).
fn price(
    s: &mut State,
    req: &[LineReq],
    fired: &Fired,
) -> Result<Priced, Result<Unavailable, Value>> {
    if let Some(pct) = fired.price_jump_percent {
        let distinct: HashSet<&str> = req.iter().map(|l| l.item_id.as_str()).collect();
        for id in distinct {
            s.jump_offer_price(PLATFORM_TAOBAO, id, pct);
        }
    }
    let overflow = || Err(Err(fail(INVALID_PARAMETER, "order amount too large")));
    let unavailable = |l: &LineReq, code, message: String| {
        Err(Ok(Unavailable {
            item_id: l.item_id.clone(),
            sku_id: l.sku_id.clone(),
            code,
            message,
        }))
    };
    let mut lines = Vec::with_capacity(req.len());
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    let mut groups: Vec<(String, i64)> = Vec::new();
    let (mut goods, mut postage) = (0i64, 0i64);
    for l in req {
        let listing = s.listing_taobao(&l.item_id, l.sku_id.as_deref()).cloned();
        let Some(offer): Option<Offer> = listing else {
            return unavailable(
                l,
                ITEM_NOT_FOUND,
                format!("item {} does not exist or is off the shelf", l.item_id),
            );
        };
        if l.sku_id.as_ref().is_some_and(|sk| *sk != offer.spec_id) {
            return unavailable(
                l,
                ITEM_NOT_FOUND,
                format!("sku not found for item {}", l.item_id),
            );
        }
        let w = wanted.entry(l.item_id.as_str()).or_insert(0);
        if *w == 0 {
            let p = s.postage_of(&offer.sku);
            groups.push((l.item_id.clone(), p));
            postage = match postage.checked_add(p) {
                Some(v) => v,
                None => return overflow(),
            };
        }
        *w += l.quantity;
        if fired.out_of_stock || *w > offer.stock {
            return unavailable(
                l,
                OUT_OF_STOCK,
                format!("insufficient stock for item {}", l.item_id),
            );
        }
        let Some(amount) = offer.price_fen.checked_mul(l.quantity) else {
            return overflow();
        };
        goods = match goods.checked_add(amount) {
            Some(v) => v,
            None => return overflow(),
        };
        lines.push(Line {
            sub_id: String::new(),
            item_id: l.item_id.clone(),
            sku_id: offer.spec_id.clone(),
            quantity: l.quantity,
            price_fen: offer.price_fen,
            order_line_no: l.order_line_no.clone(),
            title: s.title_of(&offer.sku),
        });
    }
    let Some(total) = goods.checked_add(postage) else {
        return overflow();
    };
    Ok(Priced {
        lines,
        groups,
        postage_fen: postage,
        total_fen: total,
    })
}

fn render_ok(data: Value) -> Value {
    json!({"result": success(json!({"inner_error_msg": "", "fail_items": "", "data": data}))})
}

/// `/purchase/order/render` `render_item_List`, `receiver_address`,
/// `need_supplychain_service`: one `render_item_list` entry per seller group (here: per
/// distinct item); a line that cannot be bought is listed in `unavailable_sku_list`.
fn render(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    address_param(p, "receiver_address")?;
    if let Some(v) = p.0.get("need_supplychain_service")
        && *v != "true"
        && *v != "false"
    {
        return Err(fail(
            INVALID_PARAMETER,
            "need_supplychain_service must be true or false",
        ));
    }
    let req = parse_lines(p.req("render_item_List")?, "render_item_List")?;
    let priced = match price(s, &req, fired) {
        Ok(p) => p,
        Err(Err(bad)) => return Err(bad),
        Err(Ok(u)) => {
            return Ok(render_ok(json!({
                "render_item_list": [],
                "unavailable_sku_list": [{
                    "item_id": id_json(&u.item_id),
                    "sku_id": u.sku_id.as_deref().map_or(Value::Null, id_json),
                    "reason": u.message,
                    "error_code": u.code,
                    "error_msg": u.message,
                }],
                "total_real_pay_price": money(0),
            })));
        }
    };
    let items: Vec<Value> = priced
        .groups
        .iter()
        .map(|(item, postage)| {
            let infos: Vec<Value> = priced
                .lines
                .iter()
                .filter(|l| l.item_id == *item)
                .map(|l| {
                    json!({
                        "item_id": id_json(&l.item_id),
                        "sku_id": id_json(&l.sku_id),
                        "quantity": l.quantity,
                        "origin_price": money(l.price_fen),
                        "discount_price": money(l.price_fen * l.quantity),
                    })
                })
                .collect();
            let goods: i64 = priced
                .lines
                .iter()
                .filter(|l| l.item_id == *item)
                .map(|l| l.price_fen * l.quantity)
                .sum();
            json!({
                "nick": SELLER_NICK,
                "seller_id": SELLER_ID,
                "item_price_infos": infos,
                "mainland_shipping_fee": money(*postage),
                "order_fee": money(goods + postage),
                "choose_supply_chain_services": [],
                "dispatch_place": "浙江省",
                "estimated_delivery_time": "",
                "currency_code": "CNY",
                "delivery_fee": postage,
            })
        })
        .collect();
    Ok(render_ok(json!({
        "render_item_list": items,
        "unavailable_sku_list": [],
        "total_real_pay_price": money(priced.total_fen),
    })))
}

fn create_answer(o: &Order) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            json!({
                "item_id": l.item_id,
                "sku_id": id_json(&l.sku_id),
                "quantity": l.quantity,
                "order_line_no": l.order_line_no,
                "sub_purchase_order_id": id_json(&l.sub_id),
                "estimate_amount": l.price_fen * l.quantity,
                "estimate_currency": "CNY",
                "supplier_nick": SELLER_NICK,
            })
        })
        .collect();
    success(json!({"data": {
        "outer_purchase_id": o.outer_id,
        "payment_url": format!("sandbox://taobao/pay/{}", o.id),
        "success": true,
        "error_code": "",
        "error_message": "",
        "order_list": [{
            "purchase_id": id_json(&o.id),
            "supplier_nick": SELLER_NICK,
            "estimate_amount": o.total_fen,
            "estimate_currency": "CNY",
            "source_market": "TB",
            "order_line_list": lines,
        }],
    }}))
}

/// A fresh integer id of `n` digits that `taken` does not hold.
fn fresh_id(n: usize, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = util::random_digits(n);
        if !taken(&id) {
            return id;
        }
    }
}

/// `/purchase/order/create` `outer_purchase_id` (idempotent), `purchase_amount` (fen, the
/// render total), `order_line_list`, `receiver`.
fn create(s: &mut State, p: &Params<'_>, fired: &Fired, now: i64) -> Result<Value, Value> {
    let outer = p.id("outer_purchase_id")?;
    let receiver = address_param(p, "receiver")?;
    let req = parse_lines(p.req("order_line_list")?, "order_line_list")?;
    let amount: i64 = p
        .req("purchase_amount")?
        .parse()
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| {
            fail(
                INVALID_PARAMETER,
                "purchase_amount must be a positive integer (fen)",
            )
        })?;
    if let Some(id) = s.taobao.by_outer_id.get(outer) {
        let o = &s.taobao.orders[id];
        tracing::info!(outer_purchase_id = outer, purchase_id = %o.id,
                       "taobao order create repeat: same order");
        return Ok(create_answer(o));
    }
    let priced = match price(s, &req, fired) {
        Ok(p) => p,
        Err(Err(bad)) => return Err(bad),
        Err(Ok(u)) => return Err(biz_fail(u.code, u.message)),
    };
    if priced.total_fen != amount {
        return Err(biz_fail(
            PRICE_CHANGED,
            format!(
                "purchase_amount {amount} differs from the current total {}",
                priced.total_fen
            ),
        ));
    }
    for l in &priced.lines {
        if let Some(o) = s.listing_taobao(&l.item_id, Some(&l.sku_id)) {
            o.stock -= l.quantity;
        }
    }
    let id = fresh_id(12, |id| s.taobao.orders.contains_key(id));
    let mut lines = priced.lines;
    for l in lines.iter_mut() {
        l.sub_id = fresh_id(18, |sub| s.taobao.by_line.contains_key(sub));
        s.taobao.by_line.insert(l.sub_id.clone(), id.clone());
    }
    let keep = [
        "name",
        "phone",
        "mobile_phone",
        "country",
        "state",
        "city",
        "district",
        "address",
        "zip",
    ];
    let receiver: Map<String, Value> = keep
        .iter()
        .map(|k| {
            let v = receiver.get(*k).and_then(Value::as_str).unwrap_or("");
            (k.to_string(), json!(v))
        })
        .collect();
    let order = Order {
        id: id.clone(),
        outer_id: outer.to_owned(),
        status: WAIT_BUYER_P,
        postage_fen: priced.postage_fen,
        total_fen: priced.total_fen,
        lines,
        receiver: Value::Object(receiver),
        created_ms: now,
        modified_ms: now,
        paid_ms: None,
        logistics: None,
        close_reason: None,
        refund_id: None,
        cancel_requested: false,
    };
    let answer = create_answer(&order);
    s.record(
        "purchase",
        PLATFORM_TAOBAO,
        outer,
        &id,
        order.total_fen,
        "CNY",
    );
    s.taobao.by_outer_id.insert(outer.to_owned(), id.clone());
    s.taobao.orders.insert(id, order);
    Ok(answer)
}

/// The seller ships `ship_ms` after payment; evaluated lazily whenever the order is read. A
/// seller does not ship while a cancellation is pending (sandbox choice).
fn advance(o: &mut Order, now: i64, ship_ms: i64) {
    if o.status == WAIT_SELLER_SEND_GOODS
        && !o.cancel_requested
        && let Some(paid) = o.paid_ms
        && now >= paid.saturating_add(ship_ms)
    {
        let at = paid.saturating_add(ship_ms).min(now);
        o.status = WAIT_BUYER_CONFIRM_GOODS;
        o.modified_ms = at;
        o.logistics = Some((
            format!("7{}", util::random_digits(13)),
            SHIPPING_COMPANY.to_owned(),
            at,
        ));
        tracing::info!(purchase_id = %o.id, "taobao seller shipped");
    }
}

/// `/purchase/order/batch/pay` `purchaseOrderIdList` (a JSON array of at most 10 ids): the
/// payable orders are paid within the call and listed in `will_pay_purchase_order_ids`, as is
/// an order paid already (no second debit); a closed or unknown one is listed in
/// `pay_failure_purchase_order_ids` with a `pay_failed_results` entry.
fn batch_pay(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let ids = id_list(
        p.req("purchaseOrderIdList")?,
        "purchaseOrderIdList",
        MAX_PAY_BATCH,
    )?;
    let mut seen = HashSet::new();
    let (mut paid, mut failed, mut results) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure = |id: &str, code: &str, message: String| {
        failed.push(Value::String(id.to_owned()));
        results.push(json!({"gspOrderId": id_json(id), "errorCode": code,
                            "errorMessage": message, "class": "sandbox.PayFailure"}));
    };
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(o) = s.taobao.orders.get_mut(&id) else {
            failure(&id, ORDER_NOT_FOUND, format!("order {id} does not exist"));
            continue;
        };
        advance(o, now, ship_ms);
        match o.status {
            TRADE_CLOSED => {
                failure(&id, TRADE_CLOSED_REASON, format!("order {id} is closed"));
                continue;
            }
            WAIT_BUYER_P => {
                o.status = WAIT_SELLER_SEND_GOODS;
                o.paid_ms = Some(now);
                o.modified_ms = now;
                advance(o, now, ship_ms);
                let (outer, total) = (o.outer_id.clone(), o.total_fen);
                s.record(
                    "marketplace_payment",
                    PLATFORM_TAOBAO,
                    &outer,
                    &id,
                    total,
                    "CNY",
                );
            }
            _ => tracing::info!(purchase_id = %id, "taobao batch pay: already paid"),
        }
        paid.push(Value::String(id));
    }
    Ok(success(json!({"data": {
        "will_pay_purchase_order_ids": paid,
        "pay_failure_purchase_order_ids": failed,
        "pay_failed_results": results,
    }})))
}

/// One `purchase_orders[]` entry (per SDK `PurchaseOrder`, `SubPurchaseOrder`).
fn order_json(o: &Order) -> Value {
    let paid = o.paid_ms.is_some();
    let pay_time = o.paid_ms.unwrap_or(0);
    let goods: i64 = o.lines.iter().map(|l| l.price_fen * l.quantity).sum();
    let shipped = o.logistics.as_ref();
    let subs: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            let amount = l.price_fen * l.quantity;
            let logistic_orders: Vec<Value> = shipped
                .map(|(number, company, at)| {
                    json!({"logistic_company_name": company, "logistic_number": number,
                           "rts_time": at})
                })
                .into_iter()
                .collect();
            json!({
                "sub_purchase_order_id": id_json(&l.sub_id),
                "status": o.status,
                "close_reason": o.close_reason.clone().unwrap_or_default(),
                "item_id": l.item_id,
                "sku_id": id_json(&l.sku_id),
                "title": l.title,
                "quantity": l.quantity,
                "purchase_amount": amount,
                "purchase_currency": "CNY",
                "pay_amount": if paid { amount } else { 0 },
                "pay_currency": "CNY",
                "product_amount": amount,
                "pay_time": pay_time,
                "refund_id": o.refund_id.as_deref().map_or(json!(0), id_json),
                "purchase_order_outer_id": o.id,
                "purchase_order_line_outer_id": l.sub_id,
                "logistic_orders": logistic_orders,
                "can_confirm_receipt": shipped.is_some() && o.status == WAIT_BUYER_CONFIRM_GOODS,
            })
        })
        .collect();
    let r = |k: &str| o.receiver.get(k).cloned().unwrap_or(json!(""));
    json!({
        "purchase_id": id_json(&o.id),
        "outer_purchase_id": o.outer_id,
        "status": o.status,
        "purchase_amount": o.total_fen,
        "purchase_currency": "CNY",
        "pay_amount": if paid { o.total_fen } else { 0 },
        "pay_currency": "CNY",
        "product_amount": goods,
        "domestic_post_fee": o.postage_fen,
        "hongbao_deduction_amount": 0,
        "pay_time": pay_time,
        "created_time": o.created_ms,
        "modify_time": o.modified_ms,
        "order_source": "",
        "seller_order_number": "",
        "source_market": "TB",
        "supplier_nick": SELLER_NICK,
        "distributor_nick": BUYER_NICK,
        "receiver": {"country": r("country"), "state": r("state"), "city": r("city"),
                     "district": r("district"), "address": r("address"), "zip": r("zip")},
        "sub_purchase_orders": subs,
    })
}

/// `/purchase/orders/query` by `outer_purchase_id` and/or `purchase_ids` (JSON array): the
/// matching orders (none is an empty list).
fn query(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let outer = p.opt_id("outer_purchase_id")?;
    let ids = match p.0.get("purchase_ids") {
        None => None,
        Some(raw) => Some(id_list(raw, "purchase_ids", MAX_LINES)?),
    };
    let found: Vec<String> = match (outer, ids) {
        (None, None) => {
            return Err(fail(
                INVALID_PARAMETER,
                "give outer_purchase_id or purchase_ids",
            ));
        }
        (Some(out), None) => s.taobao.by_outer_id.get(out).cloned().into_iter().collect(),
        (None, Some(ids)) => ids,
        (Some(out), Some(ids)) => s
            .taobao
            .by_outer_id
            .get(out)
            .filter(|found| ids.contains(found))
            .cloned()
            .into_iter()
            .collect(),
    };
    let mut seen = HashSet::new();
    let mut orders: Vec<Value> = Vec::new();
    for id in &found {
        if !seen.insert(id.as_str()) {
            continue;
        }
        if let Some(o) = s.taobao.orders.get_mut(id) {
            advance(o, now, ship_ms);
            orders.push(order_json(o));
        }
    }
    Ok(success(json!({"data": {
        "results_total": orders.len(),
        "page_no": 1,
        "page_size": 20,
        "purchase_orders": orders,
    }})))
}

/// `/logistics/detail/get` `purchase_order_line_id` (a `sub_purchase_order_id`): the line's
/// parcel once the seller shipped (`pnm_logistics_details` empty before).
fn logistics(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let line_id = p.id("purchase_order_line_id")?;
    let not_found = || {
        result_fail(
            ORDER_NOT_FOUND,
            format!("purchase order line {line_id} does not exist"),
        )
    };
    let order_id = s
        .taobao
        .by_line
        .get(line_id)
        .cloned()
        .ok_or_else(not_found)?;
    let o = s.taobao.orders.get_mut(&order_id).ok_or_else(not_found)?;
    advance(o, now, ship_ms);
    let line = o
        .lines
        .iter()
        .find(|l| l.sub_id == line_id)
        .ok_or_else(not_found)?;
    let r = |k: &str| o.receiver.get(k).cloned().unwrap_or(json!(""));
    let details: Vec<Value> = o
        .logistics
        .iter()
        .map(|(number, company, at)| {
            json!({
                "mail_no": number,
                "logistics_status": LOGISTICS_COLLECTED,
                "logistics_desc": "已揽收",
                "goods_number": line.quantity,
                "logistics_partner": [{"company": company, "company_image_url": "",
                                       "company_contact": ""}],
                "logistics_traces": [{
                    "time": at.to_string(),
                    "status": LOGISTICS_COLLECTED,
                    "status_desc": "已揽收",
                    "standerd_desc": "The parcel was collected",
                    "action": "COLLECT",
                    "province": r("state"),
                    "city": r("city"),
                    "district": r("district"),
                    "facility_name": "sandbox depot",
                    "next_city": "",
                    "next_node_name": "",
                }],
                "logistics_goods": [{"title": line.title, "quantity": line.quantity,
                                     "image_url": "", "property": ""}],
                "receiver": {"name": r("name"), "phone": r("mobile_phone"),
                             "province": r("state"), "city": r("city"),
                             "district": r("district"), "address": r("address"),
                             "zip_code": r("zip")},
            })
        })
        .collect();
    Ok(render_ok(json!({
        "purchase_order_outer_id": id_json(&o.id),
        "pnm_logistics_details": details,
    })))
}

/// `POST /_sandbox/orders/{id}/cancel` for a Taobao order: `None` if there is no such order,
/// `Err(status)` unless it is unpaid, else the closed order (its stock goes back on sale).
pub(crate) fn sandbox_close(
    s: &mut State,
    id: &str,
    reason: &str,
) -> Option<Result<Value, &'static str>> {
    let o = s.taobao.orders.get_mut(id)?;
    if o.status != WAIT_BUYER_P {
        return Some(Err(o.status));
    }
    o.status = TRADE_CLOSED;
    o.modified_ms = util::now_ms();
    o.close_reason = Some(reason.to_owned());
    let v = order_json(o);
    let lines = o.lines.clone();
    restock(s, &lines);
    tracing::info!(purchase_id = %id, "taobao order closed by the seller (sandbox)");
    Some(Ok(v))
}

/// Put an order's units back on sale.
fn restock(s: &mut State, lines: &[Line]) {
    for l in lines {
        if let Some(offer) = s
            .offers
            .iter_mut()
            .find(|x| x.platform == PLATFORM_TAOBAO && x.offer_id == l.item_id)
        {
            offer.stock += l.quantity;
        } else if let Some(offer) = s
            .generated_offers
            .iter_mut()
            .find(|x| x.offer_id == l.item_id && x.spec_id == l.sku_id)
        {
            offer.stock += l.quantity;
        }
    }
}

/// `/purchase/order/asyn/cancel` `purchase_id`, `sub_purchase_orderId_list` (JSON array of the
/// order's sub-orders; the sandbox cancels whole orders only, so it must name all of them or
/// be absent), `cancel_reason`, `cancel_remark`. Unpaid: closed at once (`TRADE_CLOSED`).
/// Paid and unshipped: closed and refunded in full at once by default, else pending until the
/// seller decides (`refunds_at_once`). Closed already or pending: accepted again, nothing more
/// happens. Anything else: `ORDER_CANNOT_CANCEL`.
fn buyer_cancel(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let id = p.id("purchase_id")?;
    let reason = p.req("cancel_reason")?;
    if reason.chars().count() > 200 {
        return Err(fail(
            INVALID_PARAMETER,
            "cancel_reason is at most 200 characters",
        ));
    }
    let subs: Vec<String> = match p.0.get("sub_purchase_orderId_list") {
        None => Vec::new(),
        Some(raw) => id_list(raw, "sub_purchase_orderId_list", MAX_LINES)?,
    };
    let Some(o) = s.taobao.orders.get_mut(id) else {
        return Err(biz_fail(
            ORDER_NOT_FOUND,
            format!("order {id} does not exist"),
        ));
    };
    advance(o, now, ship_ms);
    let all: HashSet<&str> = o.lines.iter().map(|l| l.sub_id.as_str()).collect();
    let named: HashSet<&str> = subs.iter().map(String::as_str).collect();
    if !named.is_empty() && named != all {
        return Err(fail(
            INVALID_PARAMETER,
            "sub_purchase_orderId_list must name every sub-order of the order",
        ));
    }
    match o.status {
        TRADE_CLOSED => return Ok(success(json!({}))),
        WAIT_BUYER_P | WAIT_SELLER_SEND_GOODS => {}
        other => {
            return Err(biz_fail(
                ORDER_CANNOT_CANCEL,
                format!("order {id} is {other} and can no longer be cancelled"),
            ));
        }
    }
    let paid = o.status == WAIT_SELLER_SEND_GOODS;
    o.cancel_requested = true;
    if !paid || s.refunds_at_once {
        close_cancelled(s, id, true);
    }
    Ok(success(json!({})))
}

/// Decide a pending cancellation: agreed, the order closes (`TRADE_CLOSED`, stock back on
/// sale; a paid one refunded in full: a `refund_id` on its lines, ledger `marketplace_refund`
/// with reference the `purchase_id`); refused, the order goes on. False when none is pending.
fn close_cancelled(s: &mut State, id: &str, agree: bool) -> bool {
    let Some(o) = s.taobao.orders.get_mut(id) else {
        return false;
    };
    if !o.cancel_requested || o.status == TRADE_CLOSED {
        return false;
    }
    o.cancel_requested = false;
    if !agree {
        tracing::info!(
            purchase_id = id,
            "taobao cancellation refused by the seller (sandbox)"
        );
        return true;
    }
    let refund = (o.status == WAIT_SELLER_SEND_GOODS).then_some(o.total_fen);
    o.status = TRADE_CLOSED;
    o.modified_ms = util::now_ms();
    o.close_reason = Some("BUYER_CANCEL".to_owned());
    if refund.is_some() {
        o.refund_id = Some(util::random_digits(12));
    }
    let lines = o.lines.clone();
    restock(s, &lines);
    if let Some(amount) = refund {
        s.record("marketplace_refund", PLATFORM_TAOBAO, id, id, amount, "CNY");
    }
    tracing::info!(
        purchase_id = id,
        refunded_fen = refund.unwrap_or(0),
        "taobao order cancelled by the buyer"
    );
    true
}

/// `POST /_sandbox/marketplace/orders/{id}/refund` for a Taobao order (see
/// `aop::sandbox_decide_refund`).
pub(crate) fn sandbox_decide_refund(
    s: &mut State,
    id: &str,
    agree: bool,
) -> Option<Result<Value, String>> {
    s.taobao.orders.get(id)?;
    if !close_cancelled(s, id, agree) {
        let status = s.taobao.orders[id].status;
        return Some(Err(format!(
            "order is {status} with no pending cancellation"
        )));
    }
    Some(Ok(order_json(&s.taobao.orders[id])))
}

/// `POST /_sandbox/marketplace/orders/{id}/ship` for a Taobao order (see `aop::sandbox_ship`).
pub(crate) fn sandbox_ship(s: &mut State, id: &str) -> Option<Result<Value, &'static str>> {
    let o = s.taobao.orders.get_mut(id)?;
    match o.status {
        WAIT_SELLER_SEND_GOODS => {
            let paid = o.paid_ms.unwrap_or(0);
            let now = util::now_ms().max(paid);
            advance(o, now, now - paid);
            Some(Ok(order_json(o)))
        }
        WAIT_BUYER_CONFIRM_GOODS => Some(Ok(order_json(o))),
        other => Some(Err(other)),
    }
}

impl State {
    /// The postage the seller charges per distinct item of `sku` (its 1688 domestic shipping).
    fn postage_of(&self, sku: &str) -> i64 {
        self.products
            .iter()
            .find(|p| p.sku == sku)
            .map_or(DEFAULT_POSTAGE_FEN, |p| p.domestic_shipping_fen)
    }
}
