//! `/_sandbox/*` control endpoints: health, catalogue, product edits, ledger, faults, webhooks,
//! and the marketplace sellers (ship an order now, the shipping delay).

use crate::{
    Sandbox,
    faults::{FaultSpec, Faults},
    util::{self, json_response, plain_error},
};
use axum::{
    body::Bytes,
    extract::{Path, State as AxState},
    http::StatusCode,
    response::Response,
};
use serde::Deserialize;
use serde_json::json;

pub(crate) async fn health() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

pub(crate) async fn catalogue(AxState(sb): AxState<Sandbox>) -> Response {
    let (products, offers) = sb.with(|s| (s.products.clone(), s.all_offers()));
    json_response(
        StatusCode::OK,
        json!({"products": products, "offers": offers}),
    )
}

pub(crate) async fn ledger(AxState(sb): AxState<Sandbox>) -> Response {
    json_response(StatusCode::OK, json!({"entries": sb.ledger()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductEdit {
    price_fen: Option<i64>,
    /// Units on sale (an offer's `stock`; `stock` is accepted as an alias).
    #[serde(alias = "stock")]
    amount_on_sale: Option<i64>,
    /// Sandbox extension: take the listing off the shelf (1688 answers the offer as gone) or
    /// back on.
    removed: Option<bool>,
    /// A 1688 listing's domestic carriage per order, in fen (the preview's `sumCarriage`).
    domestic_shipping_fen: Option<i64>,
}

pub(crate) async fn update_product(
    AxState(sb): AxState<Sandbox>,
    Path(offer_id): Path<String>,
    body: Bytes,
) -> Response {
    let edit: ProductEdit = match util::parse_json(&body) {
        Ok(e) => e,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    if edit
        .price_fen
        .is_some_and(|p| !(1..=100_000_000).contains(&p))
    {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "price_fen must be 1..=100000000",
        );
    }
    if edit
        .amount_on_sale
        .is_some_and(|a| !(0..=100_000_000).contains(&a))
    {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "amount_on_sale must be 0..=100000000",
        );
    }
    if edit
        .domestic_shipping_fen
        .is_some_and(|c| !(0..=100_000_000).contains(&c))
    {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "domestic_shipping_fen must be 0..=100000000",
        );
    }
    let updated = sb.with(|s| {
        // 1688 listings answer in the `products` shape, other platforms' in the `offers` shape.
        let v = if let Some(p) = s.products.iter_mut().find(|p| p.offer_id == offer_id) {
            if let Some(v) = edit.price_fen {
                p.price_fen = v;
            }
            if let Some(v) = edit.amount_on_sale {
                p.amount_on_sale = v;
            }
            if let Some(v) = edit.domestic_shipping_fen {
                p.domestic_shipping_fen = v;
            }
            serde_json::to_value(&*p).unwrap_or_default()
        } else {
            if edit.domestic_shipping_fen.is_some() {
                return Some(Err(()));
            }
            let o = s.offers.iter_mut().find(|o| o.offer_id == offer_id)?;
            if let Some(v) = edit.price_fen {
                o.price_fen = v;
            }
            if let Some(v) = edit.amount_on_sale {
                o.stock = v;
            }
            serde_json::to_value(&*o).unwrap_or_default()
        };
        match edit.removed {
            Some(true) => {
                s.removed.insert(offer_id.clone());
            }
            Some(false) => {
                s.removed.remove(&offer_id);
            }
            None => {}
        }
        Some(Ok((v, s.removed.contains(&offer_id))))
    });
    match updated {
        None => plain_error(StatusCode::NOT_FOUND, "not_found", "no such offer"),
        Some(Err(())) => plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "domestic_shipping_fen applies to 1688 listings only",
        ),
        Some(Ok((mut v, removed))) => {
            tracing::info!(offer_id = %offer_id, listing = %v, removed, "listing changed (sandbox)");
            v["removed"] = json!(removed);
            json_response(StatusCode::OK, v)
        }
    }
}

pub(crate) async fn add_fault(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let spec: FaultSpec = match util::parse_json(&body) {
        Ok(s) => s,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    match sb.with(|s| s.faults.add(spec)) {
        Ok(f) => {
            tracing::info!(fault = ?f, "fault injected");
            json_response(StatusCode::OK, json!({"id": Faults::id(&f), "fault": f}))
        }
        Err(m) => plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    }
}

pub(crate) async fn list_faults(AxState(sb): AxState<Sandbox>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"faults": sb.with(|s| s.faults.list())}),
    )
}

pub(crate) async fn clear_faults(AxState(sb): AxState<Sandbox>) -> Response {
    let n = sb.with(|s| s.faults.clear());
    tracing::info!(cleared = n, "faults cleared");
    json_response(StatusCode::OK, json!({"cleared": n}))
}

pub(crate) async fn delete_fault(
    AxState(sb): AxState<Sandbox>,
    Path(id): Path<String>,
) -> Response {
    if sb.with(|s| s.faults.remove(&id)) {
        json_response(StatusCode::OK, json!({"deleted": id}))
    } else {
        plain_error(StatusCode::NOT_FOUND, "not_found", "no such fault")
    }
}

/// `PUT /_sandbox/webhooks`: a field that is absent stays as it is; `null` removes the target.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    #[serde(default, with = "double_option")]
    payments: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    tracking: Option<Option<String>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

fn valid_url(u: &str) -> bool {
    u.len() <= 2048
        && reqwest::Url::parse(u)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
}

pub(crate) async fn set_webhooks(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let req: WebhookBody = match util::parse_json(&body) {
        Ok(b) => b,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    for u in [&req.payments, &req.tracking]
        .into_iter()
        .flatten()
        .flatten()
    {
        if !valid_url(u) {
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "webhook targets must be http(s) URLs",
            );
        }
    }
    let (payments, tracking) = sb.with(|s| {
        if let Some(p) = req.payments {
            s.webhooks.payments = p;
        }
        if let Some(t) = req.tracking {
            s.webhooks.tracking = t;
        }
        (s.webhooks.payments.clone(), s.webhooks.tracking.clone())
    });
    tracing::info!(payments = ?payments, tracking = ?tracking, "webhook targets set");
    json_response(
        StatusCode::OK,
        json!({"payments": payments, "tracking": tracking}),
    )
}

pub(crate) async fn get_webhooks(AxState(sb): AxState<Sandbox>) -> Response {
    let (payments, tracking) =
        sb.with(|s| (s.webhooks.payments.clone(), s.webhooks.tracking.clone()));
    json_response(
        StatusCode::OK,
        json!({"payments": payments, "tracking": tracking}),
    )
}

/// `POST /_sandbox/marketplace/orders/{id}/ship`: the seller of a paid 1688 or Taobao order
/// ships it now (from then on the buyer can no longer cancel). 404 for an unknown order, 409
/// for one that is not paid (or closed); shipping a shipped order answers it again.
pub(crate) async fn ship_order(
    AxState(sb): AxState<Sandbox>,
    Path(order_id): Path<String>,
) -> Response {
    let shipped = sb.with(|s| {
        crate::aop::sandbox_ship(s, &order_id)
            .map(|r| r.map(|o| ("1688", o)))
            .or_else(|| crate::taobao::sandbox_ship(s, &order_id).map(|r| r.map(|o| ("taobao", o))))
    });
    match shipped {
        None => plain_error(StatusCode::NOT_FOUND, "not_found", "no such order"),
        Some(Err(status)) => plain_error(
            StatusCode::CONFLICT,
            "invalid_state",
            format!("order is {status}: only a paid order can be shipped"),
        ),
        Some(Ok((platform, order))) => {
            tracing::info!(order_id = %order_id, platform, "seller shipped (sandbox)");
            json_response(
                StatusCode::OK,
                json!({"platform": platform, "order": order}),
            )
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SellerBody {
    ship_after_ms: Option<u64>,
    refunds_at_once: Option<bool>,
}

/// The longest shipping delay `PUT /_sandbox/marketplace/seller` accepts (30 days).
const MAX_SHIP_AFTER_MS: u64 = 30 * 24 * 3600 * 1000;

fn seller_json(s: &crate::State) -> serde_json::Value {
    json!({"ship_after_ms": s.seller_ship_ms, "refunds_at_once": s.refunds_at_once})
}

/// `PUT /_sandbox/marketplace/seller` `{"ship_after_ms"?, "refunds_at_once"?}`: the 1688 and
/// Taobao sellers ship `ship_after_ms` after payment from now on (orders already paid included;
/// 0 = on payment), and agree to a paid order's refund / cancellation within the buyer's call
/// (`refunds_at_once`, the default) or only when told (`POST …/orders/{id}/refund`). An absent
/// field stays as it is.
pub(crate) async fn set_seller(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let req: SellerBody = match util::parse_json(&body) {
        Ok(b) => b,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    if req.ship_after_ms.is_some_and(|ms| ms > MAX_SHIP_AFTER_MS) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "ship_after_ms must be 0..=2592000000",
        );
    }
    let now = sb.with(|s| {
        if let Some(ms) = req.ship_after_ms {
            s.seller_ship_ms = ms;
        }
        if let Some(at_once) = req.refunds_at_once {
            s.refunds_at_once = at_once;
        }
        seller_json(s)
    });
    tracing::info!(seller = %now, "marketplace sellers set");
    json_response(StatusCode::OK, now)
}

pub(crate) async fn get_seller(AxState(sb): AxState<Sandbox>) -> Response {
    json_response(StatusCode::OK, sb.with(|s| seller_json(s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundDecision {
    agree: bool,
}

/// `POST /_sandbox/marketplace/orders/{id}/refund` `{"agree": bool}`: the seller of a 1688
/// order with an open refund request, or of a Taobao order with a pending cancellation,
/// decides it. 404 for an unknown order, 409 when nothing is pending.
pub(crate) async fn decide_refund(
    AxState(sb): AxState<Sandbox>,
    Path(order_id): Path<String>,
    body: Bytes,
) -> Response {
    let req: RefundDecision = match util::parse_json(&body) {
        Ok(b) => b,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    let decided = sb.with(|s| {
        crate::aop::sandbox_decide_refund(s, &order_id, req.agree)
            .map(|r| r.map(|o| ("1688", o)))
            .or_else(|| {
                crate::taobao::sandbox_decide_refund(s, &order_id, req.agree)
                    .map(|r| r.map(|o| ("taobao", o)))
            })
    });
    match decided {
        None => plain_error(StatusCode::NOT_FOUND, "not_found", "no such order"),
        Some(Err(m)) => plain_error(StatusCode::CONFLICT, "invalid_state", m),
        Some(Ok((platform, order))) => {
            tracing::info!(order_id = %order_id, platform, agree = req.agree, "seller decided a refund (sandbox)");
            json_response(
                StatusCode::OK,
                json!({"platform": platform, "order": order}),
            )
        }
    }
}

/// One side of `POST /_sandbox/relistings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListingRef {
    platform: String,
    id: String,
}

/// Body of `POST /_sandbox/relistings`: the generated listing `platform`/`id` becomes a copy of
/// the generated listing `of`, the same product sold by another seller (`generated::relist`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Relisting {
    platform: String,
    id: String,
    of: ListingRef,
}

pub(crate) async fn relist(AxState(sb): AxState<Sandbox>, body: Bytes) -> Response {
    let r: Relisting = match util::parse_json(&body) {
        Ok(r) => r,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    let known = |p: &str| {
        [
            crate::catalogue::PLATFORM_1688,
            crate::catalogue::PLATFORM_TAOBAO,
            crate::catalogue::PLATFORM_PDD,
        ]
        .contains(&p)
    };
    if !known(&r.platform) || !known(&r.of.platform) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "platform: 1688, taobao or pinduoduo",
        );
    }
    if (r.platform.as_str(), r.id.as_str()) == (r.of.platform.as_str(), r.of.id.as_str()) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a listing is not a copy of itself",
        );
    }
    let outcome = sb.with(|s| {
        let generated = |platform: &str, id: &str| {
            let well_formed =
                platform == crate::catalogue::PLATFORM_PDD || crate::generated::is_long_id(id);
            s.generates(id, well_formed)
        };
        if !generated(&r.platform, &r.id) || !generated(&r.of.platform, &r.of.id) {
            return Err("both listings must be generated ones (ids the catalogue does not hold)");
        }
        let materialised = s.generated_products.iter().any(|p| p.offer_id == r.id)
            || s.generated_offers.iter().any(|o| o.offer_id == r.id);
        if materialised {
            return Err("the listing was ordered from already");
        }
        s.relistings.insert(
            (r.platform.clone(), r.id.clone()),
            (r.of.platform.clone(), r.of.id.clone()),
        );
        Ok(())
    });
    match outcome {
        Ok(()) => json_response(
            StatusCode::OK,
            json!({"platform": r.platform, "id": r.id, "of": {"platform": r.of.platform, "id": r.of.id}}),
        ),
        Err(why) => plain_error(StatusCode::CONFLICT, "invalid_state", why),
    }
}
