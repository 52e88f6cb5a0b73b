//! Pinduoduo open platform router, product reads only: `POST /api/router` with
//! `type=pdd.ddk.goods.detail`, asked by `goods_sign`, and `type=pdd.ddk.goods.search`, asked
//! by `keyword` (here: a numeric `goods_id`, to resolve it to its `goods_sign`)
//! (docs/vendors/pdd.md). A `goods_sign` the catalogue does not hold answers a generated
//! product (`generated`); `need_sku_info=true` adds its `sku_list`.
//!
//! Checks in order: `client_id`, `sign`, `timestamp` within ±600 s of now, duplicated
//! parameters / `data_type` other than JSON, known `type`, then injected faults, then the call.
//! Every error code is in [`codes`], the one place that says which are assumed. `access_token` is optional and not
//! checked (goods detail needs no user authorisation). Errors are HTTP 200
//! `{"error_response":{"error_code","error_msg","sub_code","sub_msg","request_id"}}`, except an
//! injected outage (`error` fault): HTTP 503 in the sandbox's own error shape
//! (`{"error":{"code","message"}}`, as a proxy in front of the router would answer, so it reads
//! as transient). No ledger entries.
//! `min_group_price` is the offer's `price_fen`; `min_normal_price` is derived from it
//! (`catalogue::pdd_normal_price`).

use crate::{
    Sandbox, State,
    catalogue::{PLATFORM_PDD, pdd_normal_price},
    faults::{Fired, PDD_KINDS, Platform},
    generated::{self, GenProduct},
    util::{self, json_response, parse_form, plain_error},
};
use axum::{body::Bytes, extract::State as AxState, http::StatusCode, response::Response};
use procure_domain::signing;
use serde_json::{Value, json};
use std::collections::HashMap;

/// PDD's error codes as the sandbox answers them. No source found confirms what any of these
/// numbers mean (docs/vendors/pdd.md, "Assumed"); the adapter's `pdd::assumed_codes` holds the
/// same assumption on the client side.
mod codes {
    pub(super) const BAD_SIGNATURE: i64 = 20004;
    pub(super) const RATE_LIMITED: i64 = 52101;
    /// A buyer / app under risk control: one of the forbidden / risky codes.
    pub(crate) const ACCOUNT_RESTRICTED: i64 = 70032;
    pub(super) const BAD_PARAMETER: i64 = 10000;
    /// Unknown `client_id` (a sandbox choice).
    pub(super) const UNKNOWN_CLIENT: i64 = 10016;
}
pub(crate) use codes::ACCOUNT_RESTRICTED;
use codes::{BAD_PARAMETER, BAD_SIGNATURE, RATE_LIMITED, UNKNOWN_CLIENT};

/// Allowed distance of `timestamp` (unix seconds) from the sandbox's clock.
const TIMESTAMP_WINDOW_S: i64 = 600;

const TYPE_GOODS_DETAIL: &str = "pdd.ddk.goods.detail";
const TYPE_GOODS_SEARCH: &str = "pdd.ddk.goods.search";

fn error(code: i64, sub_code: &str, msg: &str) -> Value {
    json!({"error_response": {
        "error_code": code,
        "error_msg": msg,
        "sub_code": sub_code,
        "sub_msg": msg,
        "request_id": util::random_id("", 20),
    }})
}

fn reply(body: Value) -> Response {
    json_response(StatusCode::OK, body)
}

pub(crate) async fn router(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let Ok(pairs) = parse_form(&body) else {
        return reply(error(
            BAD_PARAMETER,
            "invalid_form",
            "parameters are not valid form encoding",
        ));
    };
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let cfg = sb.config();
    if get("client_id") != Some(cfg.pdd_client_id.as_str()) {
        return reply(error(
            UNKNOWN_CLIENT,
            "invalid_client_id",
            "client_id is missing or unknown",
        ));
    }
    let expected = signing::pdd_signature(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.pdd_client_secret,
    );
    if !get("sign").is_some_and(|g| signing::signatures_equal(g, &expected)) {
        tracing::info!("pinduoduo call rejected: bad signature");
        return reply(error(
            BAD_SIGNATURE,
            "sign_invalid",
            "签名错误 / invalid sign",
        ));
    }
    let now_s = util::now_ms().div_euclid(1000);
    let fresh = get("timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| (now_s - t).abs() <= TIMESTAMP_WINDOW_S);
    if !fresh {
        return reply(error(
            BAD_PARAMETER,
            "timestamp_invalid",
            "timestamp must be unix seconds within 600 s of the server time",
        ));
    }
    let mut params: HashMap<&str, &str> = HashMap::new();
    for (k, v) in &pairs {
        if params.insert(k.as_str(), v.as_str()).is_some() {
            return reply(error(
                BAD_PARAMETER,
                "duplicate_parameter",
                &format!("parameter {k} given twice"),
            ));
        }
    }
    if params
        .get("data_type")
        .is_some_and(|d| !d.eq_ignore_ascii_case("JSON"))
    {
        return reply(error(
            BAD_PARAMETER,
            "data_type_unsupported",
            "data_type must be JSON",
        ));
    }
    let kind = params.get("type").copied().unwrap_or_default();
    if kind != TYPE_GOODS_DETAIL && kind != TYPE_GOODS_SEARCH {
        return reply(error(
            BAD_PARAMETER,
            "unknown_type",
            "unknown type (api name)",
        ));
    }

    let fired = sb.enter(Platform::Pinduoduo, kind, PDD_KINDS).await;
    if fired.rate_limit {
        return reply(error(
            RATE_LIMITED,
            "rate_limited",
            "the call frequency limit was exceeded",
        ));
    }
    if fired.bad_signature {
        return reply(error(
            BAD_SIGNATURE,
            "sign_invalid",
            "签名错误 / invalid sign",
        ));
    }
    if fired.error {
        // An outage answers from in front of the router, not in the PDD error shape.
        return plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "service temporarily unavailable",
        );
    }
    if fired.account_restricted {
        return reply(error(
            ACCOUNT_RESTRICTED,
            "risk_control",
            "the request was refused by risk control",
        ));
    }
    let answer = if kind == TYPE_GOODS_SEARCH {
        match search_keyword(&params) {
            Ok(keyword) => sb.with(|s| goods_search(s, keyword, &fired)),
            Err(e) => e,
        }
    } else {
        let with_skus = params.get("need_sku_info") == Some(&"true");
        match goods_sign(&params) {
            Ok(sign) => sb.with(|s| goods_detail(s, sign, with_skus, &fired)),
            Err(e) => e,
        }
    };
    if let Some(d) = fired.timeout_after_commit {
        tracing::info!(
            delay_ms = d.as_millis() as u64,
            "pinduoduo answer held back (fault)"
        );
        sb.sleep(d).await;
    }
    reply(answer)
}

/// The `goods_sign` asked for. `goods_id_list` is documented as taken offline in favour of
/// `goods_sign`, so asking by it is refused (with `BAD_PARAMETER`, a sandbox choice: what PDD
/// answers is not documented).
fn goods_sign<'a>(params: &HashMap<&str, &'a str>) -> Result<&'a str, Value> {
    if params.contains_key("goods_id_list") {
        return Err(error(
            BAD_PARAMETER,
            "goods_id_list_offline",
            "goods_id_list is offline: ask by goods_sign",
        ));
    }
    match params.get("goods_sign") {
        Some(sign) if util::valid_token(sign, 64) => Ok(sign),
        _ => Err(error(
            BAD_PARAMETER,
            "goods_sign_invalid",
            "goods_sign is required",
        )),
    }
}

/// The numeric `goods_id` PDD still reports beside a listing's `goods_sign`: a stable integer
/// derived from the sandbox offer id (FNV-1a, 12 digits).
fn numeric_goods_id(offer_id: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in offer_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % 900_000_000_000 + 100_000_000_000) as i64
}

fn goods_detail(s: &mut State, sign: &str, with_skus: bool, fired: &Fired) -> Value {
    if let Some(pct) = fired.price_jump_percent {
        s.jump_offer_price(PLATFORM_PDD, sign, pct);
    }
    if fired.delisted {
        return detail_answer(vec![]);
    }
    if s.offer_mut(PLATFORM_PDD, sign).is_none() && s.generates(sign, true) {
        return detail_answer(vec![generated_goods(s, sign, with_skus)]);
    }
    let details: Vec<Value> = s
        .offer_mut(PLATFORM_PDD, sign)
        .map(|o| o.clone())
        .map(|offer| {
            json!({
                "goods_sign": offer.offer_id,
                "goods_id": numeric_goods_id(&offer.offer_id),
                "goods_name": s.title_of(&offer.sku),
                "min_group_price": offer.price_fen,
                "min_normal_price": pdd_normal_price(offer.price_fen),
            })
        })
        .into_iter()
        .collect();
    detail_answer(details)
}

fn detail_answer(details: Vec<Value>) -> Value {
    json!({"goods_detail_response": {
        "goods_details": details,
        "request_id": util::random_id("", 20),
    }})
}

/// Where the sandbox's generated PDD images live (a host that never resolves).
const GENERATED_IMAGE_BASE: &str = "https://img.sandbox.invalid/pinduoduo/";

/// The `goods_id` PDD reports beside a generated listing's `goods_sign`: the one a sandbox
/// `goods_sign` was made from (`pdd.ddk.goods.search`), else one derived from the sign.
fn generated_goods_id(sign: &str) -> i64 {
    generated::goods_id_of_sign(sign)
        .and_then(|id| i64::try_from(id).ok())
        .unwrap_or_else(|| numeric_goods_id(sign))
}

/// One generated listing in the goods detail's shape (with its `sku_list` when asked).
fn generated_goods(s: &State, sign: &str, with_skus: bool) -> Value {
    let g: GenProduct = s.generated(PLATFORM_PDD, sign);
    let image = |f: &str| format!("{GENERATED_IMAGE_BASE}{f}");
    let min = g.min_price_fen();
    let mut goods = json!({
        "goods_sign": sign,
        "goods_id": generated_goods_id(sign),
        "goods_name": g.title,
        "goods_desc": g.title,
        "goods_image_url": image(&g.images[0]),
        "goods_thumbnail_url": image(&g.images[0]),
        "goods_gallery_urls": g.images.iter().map(|f| image(f)).collect::<Vec<_>>(),
        "mall_id": g.seller_id,
        "mall_name": g.seller_name,
        "min_group_price": min,
        "min_normal_price": pdd_normal_price(min),
    });
    if with_skus {
        goods["sku_list"] = g
            .skus
            .iter()
            .map(|s| {
                json!({
                    "is_onsale": 1,
                    "min_group_price": s.price_fen,
                    "sku_thumb_url": image(&s.image),
                    "spec_list": s.specs.iter().map(|sp| json!({
                        "parent_spec_id": sp.parent_id,
                        "parent_spec_value": sp.name,
                        "spec_id": sp.value_id,
                        "spec_value": sp.value,
                        "note": "",
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
    }
    goods
}

/// The `keyword` of a search: required here (the SDK lets `opt_id` stand in for it; the
/// sandbox searches by keyword only).
fn search_keyword<'a>(params: &HashMap<&str, &'a str>) -> Result<&'a str, Value> {
    match params.get("keyword") {
        Some(k) if !k.trim().is_empty() && k.len() <= 512 => Ok(k.trim()),
        _ => Err(error(
            BAD_PARAMETER,
            "keyword_invalid",
            "keyword (or opt_id) is required",
        )),
    }
}

/// `pdd.ddk.goods.search` by a numeric `goods_id`: the one listing it names (a seeded
/// listing's own `goods_sign`, else a generated one's), as `goods_search_response.goods_list`.
/// Any other keyword finds nothing (the sandbox has no search index).
fn goods_search(s: &mut State, keyword: &str, fired: &Fired) -> Value {
    let found = keyword
        .parse::<u64>()
        .ok()
        .filter(|_| generated::is_long_id(keyword) && !fired.delisted)
        .and_then(|id| {
            let seeded = s
                .offers
                .iter()
                .find(|o| o.platform == PLATFORM_PDD && numeric_goods_id(&o.offer_id) as u64 == id)
                .map(|o| o.offer_id.clone());
            match seeded {
                Some(sign) if s.offer_mut(PLATFORM_PDD, &sign).is_some() => Some(sign),
                Some(_) => None,
                None => Some(generated::goods_sign_of(id)),
            }
        });
    let list: Vec<Value> = found
        .map(|sign| {
            let detail = detail_of(s, &sign);
            json!({
                "goods_sign": sign,
                "goods_name": detail["goods_name"],
                "goods_image_url": detail.get("goods_image_url").cloned().unwrap_or(json!("")),
                "mall_name": detail.get("mall_name").cloned().unwrap_or(json!("")),
                "min_group_price": detail["min_group_price"],
                "min_normal_price": detail["min_normal_price"],
            })
        })
        .into_iter()
        .collect();
    json!({"goods_search_response": {
        "goods_list": list,
        "total_count": list.len(),
        "search_id": util::random_id("", 20),
        "list_id": util::random_id("", 16),
    }})
}

/// A listing's detail entry (seeded or generated), for the search's answer.
fn detail_of(s: &mut State, sign: &str) -> Value {
    let answer = goods_detail(s, sign, false, &Fired::default());
    answer["goods_detail_response"]["goods_details"][0].clone()
}

/// `POST /_sandbox/pinduoduo/orders` — stands in for a purchaser buying by hand in the PDD app
/// (PDD has no buyer API): records the purchase and payment in the ledger and returns the PDD
/// order number. Idempotent on `reference` (our purchaser-task id).
pub(crate) async fn manual_order(
    AxState(sb): AxState<Sandbox>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    let goods_id = body["goods_id"].as_str().unwrap_or_default().to_owned();
    let amount = body["amount_fen"].as_i64().unwrap_or(0);
    if !util::valid_token(&reference, 128) || goods_id.is_empty() || amount <= 0 {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "reference, goods_id and a positive amount_fen are required",
        );
    }
    let mut st = sb.lock();
    if let Some(e) = st
        .ledger
        .iter()
        .find(|e| e.kind == "purchase" && e.platform == PLATFORM_PDD && e.reference == reference)
    {
        return json_response(
            StatusCode::OK,
            json!({"order_sn": e.external_id, "replayed": true}),
        );
    }
    if !st
        .offers
        .iter()
        .any(|o| o.platform == PLATFORM_PDD && o.offer_id == goods_id)
        || st.removed.contains(&goods_id)
    {
        return plain_error(StatusCode::NOT_FOUND, "not_found", "no such goods on sale");
    }
    let order_sn = format!(
        "{}-{}",
        util::now_ms() / 1000 % 1_000_000,
        util::random_id("", 12)
    );
    st.record(
        "purchase",
        PLATFORM_PDD,
        &reference,
        &order_sn,
        amount,
        "CNY",
    );
    st.record(
        "marketplace_payment",
        PLATFORM_PDD,
        &reference,
        &order_sn,
        amount,
        "CNY",
    );
    json_response(StatusCode::OK, json!({"order_sn": order_sn}))
}
