//! Taobao Global Open Platform (IOP) gateway: `POST /rest{apiPath}` (GET with a query string is
//! accepted too, as on 1688).
//!
//! Checks in order: known apiPath (`InvalidApiPath`), `app_key` (`InvalidAppKey`),
//! `sign_method=sha256` + `sign` (`IncompleteSignature`), `access_token` (`IllegalAccessToken`),
//! then injected faults, then duplicated parameters / `timestamp` presence (`InvalidParameter`),
//! then the business call. Every answer is HTTP 200 JSON `{"code":"0","request_id","data"}` or
//! `{"code","message","request_id"}`, except an injected outage (`error` fault): HTTP 503 with
//! code `ServiceUnavailable`.
//!
//! Orders mirror 1688: an order is created directly in `WAIT_BUYER_P` (`BULIDING` is never
//! observable), paying moves it to `WAIT_SELLER_SEND_GOODS`, the seller ships `seller_ship_ms`
//! after payment (`WAIT_BUYER_CONFIRM_GOODS`, evaluated lazily on every read), and
//! `POST /_sandbox/orders/{id}/cancel` closes an unpaid order (`TRADE_CLOSED`, stock returned).
//! The buyer cancels with `/purchase/order/asyn/cancel` until the seller ships: Taobao handles
//! it asynchronously, the sandbox closes the order within the call (`TRADE_CLOSED`; a paid order
//! is refunded in full: `refund_amount`, ledger `marketplace_refund` with reference the
//! `purchase_order_id`); a shipped order answers `ORDER_CANNOT_CANCEL` (assumed code,
//! docs/vendors/taobao.md). Each line carries a `sub_purchase_order_id`.
//! Postage is the sku's 1688 domestic shipping, once per distinct item of an order.
//! Ledger: `purchase` and `marketplace_payment`, platform `taobao`, reference the
//! `outer_purchase_id`, external id the `purchase_order_id`.

use crate::{
    Sandbox, State,
    catalogue::{Offer, PLATFORM_TAOBAO},
    faults::{AOP_KINDS, Fired, Platform},
    util::{self, json_response, parse_form},
};
use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State as AxState},
    http::StatusCode,
    response::Response,
};
use procure_domain::signing;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// Taobao publishes no code for a buyer account under risk control (docs/vendors/taobao.md). This is the
/// single place the sandbox models it; the `account_restricted` fault produces it on any call.
pub(crate) const ACCOUNT_RESTRICTED: &str = "ACCOUNT_RESTRICTED";

const INCOMPLETE_SIGNATURE: &str = "IncompleteSignature";
const INVALID_APP_KEY: &str = "InvalidAppKey";
const ILLEGAL_ACCESS_TOKEN: &str = "IllegalAccessToken";
const API_CALL_LIMIT: &str = "ApiCallLimit";
const OUT_OF_STOCK: &str = "OUT_OF_STOCK";
const ITEM_NOT_FOUND: &str = "ITEM_NOT_FOUND";
const ORDER_NOT_FOUND: &str = "ORDER_NOT_FOUND";
const PRICE_CHANGED: &str = "PRICE_CHANGED";
const INVALID_PARAMETER: &str = "InvalidParameter";
/// Assumed (docs/vendors/taobao.md): the refusal of a cancellation the order's state forbids.
const ORDER_CANNOT_CANCEL: &str = "ORDER_CANNOT_CANCEL";
// Sandbox choices (not pinned by the contract): unknown apiPath, injected outage.
const INVALID_API_PATH: &str = "InvalidApiPath";
const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
/// `pay_failure_list` reason of a closed order.
const TRADE_CLOSED_REASON: &str = "TRADE_CLOSED";

const WAIT_BUYER_P: &str = "WAIT_BUYER_P";
const WAIT_SELLER_SEND_GOODS: &str = "WAIT_SELLER_SEND_GOODS";
const WAIT_BUYER_CONFIRM_GOODS: &str = "WAIT_BUYER_CONFIRM_GOODS";
const TRADE_CLOSED: &str = "TRADE_CLOSED";

const MAX_LINES: usize = 50;
const MAX_PAY_BATCH: usize = 50;
const MAX_QUANTITY: i64 = 1_000_000;
/// Postage of an item whose sku has no 1688 listing to take the domestic shipping from.
const DEFAULT_POSTAGE_FEN: i64 = 500;
const SHIPPING_COMPANY: &str = "ZTO";

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
}

#[derive(Clone, Debug)]
pub(crate) struct Order {
    id: String,
    outer_id: String,
    status: &'static str,
    postage_fen: i64,
    total_fen: i64,
    lines: Vec<Line>,
    paid_ms: Option<i64>,
    logistics: Option<(String, String)>,
    close_reason: Option<String>,
    /// What the buyer got back when a paid order was cancelled (fen).
    refund_fen: Option<i64>,
    /// The buyer asked to cancel this paid order and the seller has not decided yet.
    cancel_requested: bool,
}

#[derive(Default)]
pub(crate) struct TaobaoState {
    orders: HashMap<String, Order>,
    by_outer_id: HashMap<String, String>,
}

fn request_id() -> String {
    util::random_id("", 24).to_ascii_lowercase()
}

fn ok(data: Value) -> Value {
    json!({"code": "0", "request_id": request_id(), "data": data})
}

fn fail(code: &str, message: impl Into<String>) -> Value {
    json!({"code": code, "message": message.into(), "request_id": request_id()})
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

    let fired = sb.enter(Platform::Taobao, api_path, AOP_KINDS).await;
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
            API_CREATE => create(s, &p, &fired),
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

fn item_not_found(id: &str) -> Value {
    fail(
        ITEM_NOT_FOUND,
        format!("item {id} does not exist or is off the shelf"),
    )
}

fn product(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let id = p.id("item_id")?;
    if let Some(pct) = fired.price_jump_percent {
        s.jump_offer_price(PLATFORM_TAOBAO, id, pct);
    }
    let offer = s
        .offer_mut(PLATFORM_TAOBAO, id)
        .ok_or_else(|| item_not_found(id))?
        .clone();
    Ok(json!({
        "item_id": offer.offer_id,
        "title": s.title_of(&offer.sku),
        "skus": [{
            "sku_id": offer.spec_id,
            "price": offer.price_fen,
            "quantity": if fired.out_of_stock { 0 } else { offer.stock },
        }],
    }))
}

struct LineReq {
    item_id: String,
    sku_id: Option<String>,
    quantity: i64,
}

fn parse_lines(raw: &str) -> Result<Vec<LineReq>, Value> {
    let bad = |m: &str| fail(INVALID_PARAMETER, format!("order_line_list: {m}"));
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
            Ok(LineReq {
                item_id,
                sku_id,
                quantity,
            })
        })
        .collect()
}

fn check_order_params(p: &Params<'_>) -> Result<Vec<LineReq>, Value> {
    let receiver: Value = serde_json::from_str(p.req("receiver")?)
        .map_err(|_| fail(INVALID_PARAMETER, "receiver is not valid JSON"))?;
    if receiver.as_object().is_none_or(|o| o.is_empty()) {
        return Err(fail(
            INVALID_PARAMETER,
            "receiver must be a non-empty JSON object",
        ));
    }
    parse_lines(p.req("order_line_list")?)
}

struct Priced {
    lines: Vec<Line>,
    postage_fen: i64,
    total_fen: i64,
}

/// Price the lines against the current listings and check stock (per item, summed over lines).
fn price(s: &mut State, req: &[LineReq], fired: &Fired) -> Result<Priced, Value> {
    if let Some(pct) = fired.price_jump_percent {
        let distinct: HashSet<&str> = req.iter().map(|l| l.item_id.as_str()).collect();
        for id in distinct {
            s.jump_offer_price(PLATFORM_TAOBAO, id, pct);
        }
    }
    let overflow = || fail(INVALID_PARAMETER, "order amount too large");
    let mut lines = Vec::with_capacity(req.len());
    let mut wanted: HashMap<&str, i64> = HashMap::new();
    let (mut goods, mut postage) = (0i64, 0i64);
    for l in req {
        let offer: Offer = s
            .offer_mut(PLATFORM_TAOBAO, &l.item_id)
            .ok_or_else(|| item_not_found(&l.item_id))?
            .clone();
        if l.sku_id.as_ref().is_some_and(|sk| *sk != offer.spec_id) {
            return Err(fail(
                ITEM_NOT_FOUND,
                format!("sku not found for item {}", l.item_id),
            ));
        }
        let w = wanted.entry(l.item_id.as_str()).or_insert(0);
        if *w == 0 {
            postage = postage
                .checked_add(s.postage_of(&offer.sku))
                .ok_or_else(overflow)?;
        }
        *w += l.quantity;
        if fired.out_of_stock || *w > offer.stock {
            return Err(fail(
                OUT_OF_STOCK,
                format!("insufficient stock for item {}", l.item_id),
            ));
        }
        let amount = offer
            .price_fen
            .checked_mul(l.quantity)
            .ok_or_else(overflow)?;
        goods = goods.checked_add(amount).ok_or_else(overflow)?;
        lines.push(Line {
            sub_id: String::new(),
            item_id: l.item_id.clone(),
            sku_id: offer.spec_id.clone(),
            quantity: l.quantity,
            price_fen: offer.price_fen,
        });
    }
    let total = goods.checked_add(postage).ok_or_else(overflow)?;
    Ok(Priced {
        lines,
        postage_fen: postage,
        total_fen: total,
    })
}

fn lines_json(lines: &[Line]) -> Value {
    lines
        .iter()
        .map(|l| {
            json!({"item_id": l.item_id, "sku_id": l.sku_id, "quantity": l.quantity,
                   "price": l.price_fen})
        })
        .collect()
}

fn render(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let req = check_order_params(p)?;
    let priced = price(s, &req, fired)?;
    Ok(json!({
        "total_amount": priced.total_fen,
        "postage": priced.postage_fen,
        "lines": lines_json(&priced.lines),
    }))
}

fn create_data(o: &Order) -> Value {
    json!({"purchase_order_id": o.id, "outer_purchase_id": o.outer_id, "status": o.status})
}

fn create(s: &mut State, p: &Params<'_>, fired: &Fired) -> Result<Value, Value> {
    let outer = p.id("outer_purchase_id")?;
    let req = check_order_params(p)?;
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
        tracing::info!(outer_purchase_id = outer, purchase_order_id = %o.id,
                       "taobao order create repeat: same order");
        return Ok(create_data(o));
    }
    let priced = price(s, &req, fired)?;
    if priced.total_fen != amount {
        return Err(fail(
            PRICE_CHANGED,
            format!(
                "purchase_amount {amount} differs from the current total {}",
                priced.total_fen
            ),
        ));
    }
    for l in &priced.lines {
        if let Some(o) = s.offer_mut(PLATFORM_TAOBAO, &l.item_id) {
            o.stock -= l.quantity;
        }
    }
    let id = loop {
        let id = util::random_digits(18);
        if !s.taobao.orders.contains_key(&id) {
            break id;
        }
    };
    let mut lines = priced.lines;
    for (i, l) in lines.iter_mut().enumerate() {
        l.sub_id = format!("{id}-{}", i + 1);
    }
    let order = Order {
        id: id.clone(),
        outer_id: outer.to_owned(),
        status: WAIT_BUYER_P,
        postage_fen: priced.postage_fen,
        total_fen: priced.total_fen,
        lines,
        paid_ms: None,
        logistics: None,
        close_reason: None,
        refund_fen: None,
        cancel_requested: false,
    };
    let data = create_data(&order);
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
    Ok(data)
}

/// The seller ships `ship_ms` after payment; evaluated lazily whenever the order is read. A
/// seller does not ship while a cancellation is pending (sandbox choice).
fn advance(o: &mut Order, now: i64, ship_ms: i64) {
    if o.status == WAIT_SELLER_SEND_GOODS
        && !o.cancel_requested
        && o.paid_ms.is_some_and(|t| now >= t.saturating_add(ship_ms))
    {
        o.status = WAIT_BUYER_CONFIRM_GOODS;
        o.logistics = Some((
            format!("7{}", util::random_digits(13)),
            SHIPPING_COMPANY.to_owned(),
        ));
        tracing::info!(purchase_order_id = %o.id, "taobao seller shipped");
    }
}

fn parse_id_list(raw: &str) -> Result<Vec<String>, Value> {
    let bad = || {
        fail(
            INVALID_PARAMETER,
            "purchase_order_id_list must be a JSON array of 1..=50 order ids",
        )
    };
    let v: Value = serde_json::from_str(raw).map_err(|_| bad())?;
    let items = v.as_array().ok_or_else(bad)?;
    if items.is_empty() || items.len() > MAX_PAY_BATCH {
        return Err(bad());
    }
    items
        .iter()
        .map(|it| json_id(Some(it), 64).ok_or_else(bad))
        .collect()
}

fn batch_pay(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let ids = parse_id_list(p.req("purchase_order_id_list")?)?;
    let mut seen = HashSet::new();
    let (mut paid, mut failed) = (Vec::new(), Vec::new());
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let Some(o) = s.taobao.orders.get_mut(&id) else {
            failed.push(json!({"purchase_order_id": id, "reason": ORDER_NOT_FOUND}));
            continue;
        };
        advance(o, now, ship_ms);
        match o.status {
            TRADE_CLOSED => {
                failed.push(json!({"purchase_order_id": id, "reason": TRADE_CLOSED_REASON}));
                continue;
            }
            WAIT_BUYER_P => {
                o.status = WAIT_SELLER_SEND_GOODS;
                o.paid_ms = Some(now);
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
            _ => tracing::info!(purchase_order_id = %id, "taobao batch pay: already paid"),
        }
        paid.push(Value::String(id));
    }
    Ok(json!({"pay_success_list": paid, "pay_failure_list": failed}))
}

fn order_json(o: &Order) -> Value {
    let mut lines = lines_json(&o.lines);
    if let Some(arr) = lines.as_array_mut() {
        for (v, l) in arr.iter_mut().zip(&o.lines) {
            v["sub_purchase_order_id"] = json!(l.sub_id);
        }
    }
    let mut v = json!({
        "purchase_order_id": o.id,
        "outer_purchase_id": o.outer_id,
        "status": o.status,
        "total_amount": o.total_fen,
        "postage": o.postage_fen,
        "lines": lines,
    });
    if let Some(r) = &o.close_reason {
        v["close_reason"] = json!(r);
    }
    if let Some(r) = o.refund_fen {
        v["refund_amount"] = json!(r);
    }
    v
}

fn query(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let outer = p.opt_id("outer_purchase_id")?;
    let order_id = p.opt_id("purchase_order_id")?;
    let id = match (outer, order_id) {
        (None, None) => {
            return Err(fail(
                INVALID_PARAMETER,
                "give outer_purchase_id or purchase_order_id",
            ));
        }
        (Some(out), None) => s.taobao.by_outer_id.get(out).cloned(),
        (None, Some(id)) => Some(id.to_owned()),
        (Some(out), Some(id)) => s
            .taobao
            .by_outer_id
            .get(out)
            .filter(|found| *found == id)
            .cloned(),
    };
    let orders: Vec<Value> = id
        .and_then(|id| s.taobao.orders.get_mut(&id))
        .map(|o| {
            advance(o, now, ship_ms);
            order_json(o)
        })
        .into_iter()
        .collect();
    Ok(json!({"orders": orders}))
}

fn logistics(s: &mut State, p: &Params<'_>, now: i64, ship_ms: i64) -> Result<Value, Value> {
    let id = p.id("purchase_order_id")?;
    let o = s
        .taobao
        .orders
        .get_mut(id)
        .ok_or_else(|| fail(ORDER_NOT_FOUND, format!("order {id} does not exist")))?;
    advance(o, now, ship_ms);
    let list: Vec<Value> = o
        .logistics
        .iter()
        .map(|(number, company)| json!({"tracking_number": number, "company": company}))
        .collect();
    Ok(json!({"logistics": list}))
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
    o.close_reason = Some(reason.to_owned());
    let v = order_json(o);
    let lines = o.lines.clone();
    restock(s, &lines);
    tracing::info!(purchase_order_id = %id, "taobao order closed by the seller (sandbox)");
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
        }
    }
}

/// `/purchase/order/asyn/cancel` `purchase_id`, `sub_purchase_orderId_list` (JSON array of the
/// order's sub-orders; the sandbox cancels whole orders only, so it must name all of them or
/// be empty), `cancel_reason`, `cancel_remark`. Unpaid: closed at once (`TRADE_CLOSED`).
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
        Some(raw) => serde_json::from_str::<Vec<Value>>(raw)
            .ok()
            .and_then(|v| v.iter().map(|x| json_id(Some(x), 64)).collect())
            .ok_or_else(|| {
                fail(
                    INVALID_PARAMETER,
                    "sub_purchase_orderId_list must be a JSON array of sub-order ids",
                )
            })?,
    };
    let o = s
        .taobao
        .orders
        .get_mut(id)
        .ok_or_else(|| fail(ORDER_NOT_FOUND, format!("order {id} does not exist")))?;
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
        TRADE_CLOSED => return Ok(json!({})),
        WAIT_BUYER_P | WAIT_SELLER_SEND_GOODS => {}
        other => {
            return Err(fail(
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
    Ok(json!({}))
}

/// Decide a pending cancellation: agreed, the order closes (`TRADE_CLOSED`, stock back on
/// sale; a paid one refunded in full: `refund_amount`, ledger `marketplace_refund` with
/// reference the `purchase_order_id`); refused, the order goes on. False when none is pending.
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
            purchase_order_id = id,
            "taobao cancellation refused by the seller (sandbox)"
        );
        return true;
    }
    let refund = (o.status == WAIT_SELLER_SEND_GOODS).then_some(o.total_fen);
    o.status = TRADE_CLOSED;
    o.close_reason = Some("BUYER_CANCEL".to_owned());
    o.refund_fen = refund;
    let lines = o.lines.clone();
    restock(s, &lines);
    if let Some(amount) = refund {
        s.record("marketplace_refund", PLATFORM_TAOBAO, id, id, amount, "CNY");
    }
    tracing::info!(
        purchase_order_id = id,
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
            advance(o, i64::MAX, 0);
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
