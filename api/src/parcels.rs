//! Parcels: a customer ships any set of their stored orders to one destination
//! (`POST /api/v1/parcels`); the warehouse reports the packed parcel's weight and dimensions
//! (`POST /api/v1/warehouse/parcels/{id}/packed`), which prices it and settles each order's
//! quoted estimate against its share of the actual cost; `ParcelWorkflow` then refunds, charges,
//! books and tracks.
//!
//! Settlement policy (also in the README): what a quote estimated for international shipping,
//! duty and insurance is compared with the packed parcel's actual cost of the same, shared
//! across its orders in proportion to their estimates. A standard quote settles both ways (a
//! supplementary charge, or an automatic refund); a guaranteed quote is never charged more (we
//! absorb the difference) and is refunded when the actual is lower. Amounts are converted at each
//! order's locked quote rate; the duty threshold is assessed on the consolidated parcel at
//! today's rate, as customs will.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::parcels::ParcelView;
use crate::{ApiError, AppState, error::FieldError, quotes::QuoteDoc, warehouse::measures};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
};
use procure_domain::{
    Currency, FxRate, Money,
    quote::{DeclaredItem, Settlement, ShippingLine, assess_duty, settle},
    shipping::{Ineligible, line_options},
    status::{ParcelStatus, SettlementOutcome},
};
use procure_store::{
    StoreError,
    orders::{OrderRecord, quoted_rate},
    parcels::{NewParcel, ParcelSettlement},
};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/parcels", post(create))
        .route("/api/v1/parcels/{id}", get(read))
        .route("/api/v1/warehouse/parcels/{id}/packed", post(packed))
}

const MAX_ORDERS: usize = 30;

/// The goods category of every parcel, for the lines' bans and for duty: listings carry no
/// category yet.
const GOODS: &str = "general";

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParcel {
    pub customer_id: String,
    pub order_ids: Vec<String>,
    /// A line code from the catalogue; default: the line of the first order's quote, or when
    /// the goods as the warehouse measured them are below its minimum weight (and no order's
    /// price is guaranteed), the cheapest line that carries them.
    #[serde(default)]
    pub shipping_line: Option<String>,
}

/// An order of a parcel with what its quote said.
struct Quoted {
    order: OrderRecord,
    quote: QuoteDoc,
    rate: FxRate,
}

impl Quoted {
    /// Shipping, duty and insurance as the quote estimated them (CNY).
    fn estimate_cny(&self) -> Result<Money, ApiError> {
        let b = &self.quote.breakdown;
        Money::sum(
            Currency::CNY,
            [b.international_shipping, b.duty, b.insurance],
        )
        .map_err(ApiError::internal)
    }

    fn in_order_currency(&self, cny: Money) -> Result<Money, ApiError> {
        cny.convert(&self.rate).map_err(ApiError::internal)
    }
}

async fn quoted(state: &AppState, order: OrderRecord) -> Result<Quoted, ApiError> {
    let stored = state.store.quote(&order.quote_id).await?;
    let quote: QuoteDoc = serde_json::from_value(stored.body.clone()).map_err(|_| {
        ApiError::Conflict(
            "quote_predates_parcels",
            format!("order {} was quoted before parcels existed", order.id),
        )
    })?;
    let rate = quoted_rate(&stored.body, order.total.currency)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    Ok(Quoted { order, quote, rate })
}

fn line<'a>(state: &'a AppState, code: &str) -> Option<&'a ShippingLine> {
    state.config.pricing.lines.iter().find(|l| l.code == code)
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateParcel>,
) -> Result<(StatusCode, Json<ParcelView>), ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let req = body.read()?;
    caller.owns(&req.customer_id)?;
    let mut e = crate::text::lines(&req);
    if req.order_ids.is_empty() || req.order_ids.len() > MAX_ORDERS {
        e.push(FieldError {
            field: "order_ids".into(),
            message: format!("1 to {MAX_ORDERS} orders"),
        });
    }
    let mut seen = std::collections::HashSet::new();
    if !req.order_ids.iter().all(|o| seen.insert(o.as_str())) {
        e.push(FieldError {
            field: "order_ids".into(),
            message: "each order once".into(),
        });
    }
    if req.customer_id.is_empty() || req.customer_id.len() > 64 {
        e.push(FieldError {
            field: "customer_id".into(),
            message: "must be 1 to 64 characters".into(),
        });
    }
    if !e.is_empty() {
        return Err(ApiError::Validation(e));
    }
    let mut orders = Vec::with_capacity(req.order_ids.len());
    for id in &req.order_ids {
        let order = match state.store.order(id).await {
            Ok(o) if o.customer_id == req.customer_id => o,
            Ok(_) | Err(StoreError::NotFound) => {
                return Err(ApiError::field(
                    "order_ids",
                    format!("no order {id} of this customer"),
                ));
            }
            Err(err) => return Err(err.into()),
        };
        orders.push(quoted(&state, order).await?);
    }
    let first = &orders[0];
    let (country, currency) = (
        first.order.destination_country.clone(),
        first.order.total.currency,
    );
    if orders
        .iter()
        .any(|o| o.order.destination_country != country || o.order.total.currency != currency)
    {
        return Err(ApiError::field(
            "order_ids",
            "a parcel goes to one destination and settles in one currency",
        ));
    }
    // The line must be able to carry the goods as the warehouse measured them (packing adds a
    // little; the packing report is checked again).
    let (mut weight_g, mut volume) = (0u64, 0u64);
    for o in &orders {
        match state.store.warehouse_item(&o.order.id).await {
            Ok(item) => {
                weight_g += u64::try_from(item.weight_g).unwrap_or(0);
                volume += item.dims.volume_mm3();
            }
            Err(StoreError::NotFound) => {
                return Err(ApiError::Conflict(
                    "not_in_storage",
                    format!("order {} has no goods in the warehouse", o.order.id),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    let carries = |tariff: &ShippingLine| {
        tariff.check(
            &country,
            &[GOODS],
            tariff.chargeable_weight_g(weight_g, volume),
        )
    };
    let quoted = first.quote.shipping_line.clone();
    let code = match &req.shipping_line {
        Some(code) => code.clone(),
        // The quoted line, unless the goods as measured are lighter than it takes (a quote is
        // made on the listings' weights, the warehouse weighs what arrived): then the cheapest
        // line that carries them, as the quote would have chosen. A guaranteed price stays on
        // its line; any other obstacle (too heavy, a destination the line left) is the
        // customer's choice to make, answered with the reason.
        None => match line(&state, &quoted).map(carries) {
            Some(Err(why @ Ineligible::TooLight { .. }))
                if !orders.iter().any(|o| o.quote.guaranteed) =>
            {
                let options = line_options(
                    &state.config.pricing.lines,
                    &country,
                    &[GOODS],
                    weight_g,
                    volume,
                )
                .map_err(ApiError::internal)?;
                let Some(best) = options.first() else {
                    return Err(ApiError::field(
                        "shipping_line",
                        format!("{quoted}: {why}; and no other line carries these goods"),
                    ));
                };
                tracing::info!(
                    quoted = %quoted,
                    chosen = %best.code,
                    reason = %why,
                    "the quoted line cannot carry the goods as measured; shipping on the cheapest that can"
                );
                best.code.clone()
            }
            _ => quoted,
        },
    };
    let Some(tariff) = line(&state, &code) else {
        return Err(ApiError::field("shipping_line", "unknown shipping line"));
    };
    // A guaranteed price holds for the line it was quoted on: another line would make us absorb
    // whatever it costs more.
    if let Some(o) = orders
        .iter()
        .find(|o| o.quote.guaranteed && o.quote.shipping_line != code)
    {
        return Err(ApiError::field(
            "shipping_line",
            format!(
                "order {} has a guaranteed price on {}; ship it on that line",
                o.order.id, o.quote.shipping_line
            ),
        ));
    }
    carries(tariff).map_err(|why| ApiError::field("shipping_line", format!("{code}: {why}")))?;
    let mut estimated = Money::zero(currency);
    for o in &orders {
        let est = o.in_order_currency(o.estimate_cny()?)?;
        estimated = estimated.checked_add(est).map_err(ApiError::internal)?;
    }
    let id = format!("pcl_{}", uuid::Uuid::now_v7().simple());
    let parcel = match state
        .store
        .create_parcel(&NewParcel {
            id: &id,
            customer_id: &req.customer_id,
            destination_country: &country,
            shipping_line: &code,
            estimated,
            order_ids: &req.order_ids,
        })
        .await
    {
        Ok(p) => p,
        Err(StoreError::StateConflict(why)) => {
            return Err(ApiError::Conflict("not_in_storage", why));
        }
        Err(err) => return Err(err.into()),
    };
    state.outbox_notify.notify_one();
    tracing::info!(parcel_id = %id, orders = req.order_ids.len(), %estimated, "parcel requested");
    Ok((StatusCode::CREATED, Json(parcel.into())))
}

async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ParcelView>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator, Role::Warehouse])?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::NotFound("parcel"));
    }
    match state.store.parcel(&id).await {
        Ok(p) => {
            caller.owns(&p.customer_id)?;
            Ok(Json(p.into()))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("parcel")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Packed {
    pub weight_g: u32,
    pub l_mm: u32,
    pub w_mm: u32,
    pub h_mm: u32,
}

/// Price the packed parcel and settle each order against its quote; the workflow carries out
/// the refunds and the charge.
async fn packed(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<Packed>,
) -> Result<(StatusCode, Json<ParcelView>), ApiError> {
    caller.require(&[Role::Warehouse, Role::Operator])?;
    let p = body.read()?;
    let dims = measures(p.weight_g, p.l_mm, p.w_mm, p.h_mm)?;
    let parcel = match state.store.parcel(&id).await {
        Ok(parcel) => parcel,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("parcel")),
        Err(e) => return Err(e.into()),
    };
    if parcel.status != ParcelStatus::Requested {
        return Err(ApiError::Conflict(
            "parcel_already_packed",
            format!("parcel is {}", parcel.status),
        ));
    }
    let tariff = line(&state, &parcel.shipping_line).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "line {} left the catalogue",
            parcel.shipping_line
        ))
    })?;
    let chargeable = tariff.chargeable_weight_g(u64::from(p.weight_g), dims.volume_mm3());
    tariff
        .check(&parcel.destination_country, &[GOODS], chargeable)
        .map_err(|why| {
            ApiError::Conflict(
                "line_cannot_carry_parcel",
                format!("{}: {why}; repack or split the parcel", tariff.code),
            )
        })?;
    let fee = tariff.fee(chargeable).map_err(ApiError::internal)?;

    let mut orders = Vec::new();
    for order_id in &parcel.order_ids {
        let order = state.store.order(order_id).await?;
        orders.push(quoted(&state, order).await?);
    }
    let pricing = &state.config.pricing;
    let dest = pricing
        .destination(&parcel.destination_country)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("destination left the pricing")))?;
    let declared: Vec<DeclaredItem> = orders
        .iter()
        .map(|o| DeclaredItem {
            category: GOODS.into(),
            value: o
                .quote
                .breakdown
                .goods
                .checked_add(o.quote.breakdown.domestic_shipping)
                .unwrap_or(o.quote.breakdown.goods),
        })
        .collect();
    // Insurance covers the orders whose quotes included it.
    let insured = Money::sum(
        Currency::CNY,
        orders
            .iter()
            .zip(&declared)
            .filter(|(o, _)| o.quote.insurance)
            .map(|(_, d)| d.value),
    )
    .map_err(ApiError::internal)?;
    let insurance = if insured.minor > 0 {
        pricing
            .insurance
            .premium(insured)
            .map_err(ApiError::internal)?
    } else {
        Money::zero(Currency::CNY)
    };
    let fx_dest = state
        .fx
        .locked_rate(Currency::CNY, dest.duty.de_minimis.currency)
        .await
        .map_err(|e| ApiError::Unavailable(format!("exchange rates unavailable: {e}")))?;
    let freight = fee.checked_add(insurance).map_err(ApiError::internal)?;
    let duty = assess_duty(&dest.duty, &declared, freight, &fx_dest.rate)
        .map_err(|e| ApiError::Unprocessable("unpriceable", e.to_string()))?;
    let actual_cny = freight.checked_add(duty.duty).map_err(ApiError::internal)?;

    // Each order bears the actual cost in proportion to what its quote estimated.
    let estimates: Vec<Money> = orders
        .iter()
        .map(Quoted::estimate_cny)
        .collect::<Result<_, _>>()?;
    let shares = actual_cny
        .allocate(&estimates.iter().map(|m| m.minor).collect::<Vec<_>>())
        .map_err(ApiError::internal)?;
    let mut settlements = Vec::new();
    let mut actual_total = Money::zero(parcel.currency);
    for ((o, est), share) in orders.iter().zip(&estimates).zip(shares) {
        let estimated = o.in_order_currency(*est)?;
        let actual = o.in_order_currency(share)?;
        actual_total = actual_total
            .checked_add(actual)
            .map_err(ApiError::internal)?;
        let (outcome, amount) =
            match settle(estimated, actual, o.quote.guaranteed).map_err(ApiError::internal)? {
                Settlement::Even => (SettlementOutcome::Even, Money::zero(parcel.currency)),
                Settlement::Charge(m) => (SettlementOutcome::Charge, m),
                Settlement::Refund(m) => (SettlementOutcome::Refund, m),
                Settlement::Absorbed(m) => (SettlementOutcome::Absorbed, m),
            };
        settlements.push(ParcelSettlement {
            order_id: o.order.id.clone(),
            guaranteed: o.quote.guaranteed,
            estimated,
            actual,
            outcome,
            amount,
            refund_id: None,
        });
    }
    match state
        .store
        .record_packed(&id, p.weight_g, dims, actual_total, &settlements)
        .await
    {
        Ok(()) => {}
        Err(StoreError::StateConflict(why)) => {
            return Err(ApiError::Conflict("parcel_already_packed", why));
        }
        Err(e) => return Err(e.into()),
    }
    state.outbox_notify.notify_one();
    tracing::info!(parcel_id = %id, chargeable_g = chargeable, actual = %actual_total, estimated = %parcel.estimated, dutiable = duty.dutiable, "parcel packed and priced");
    Ok((
        StatusCode::ACCEPTED,
        Json(state.store.parcel(&id).await?.into()),
    ))
}
