//! `POST /api/v1/quotes`: an all-in price in the customer's currency, with the exchange rate
//! locked (rate, date and source recorded) until the quote expires. The customer may pick a
//! shipping line (default: the cheapest that can carry the parcel), insurance and a guaranteed
//! price; the response lists every line that could carry it.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::{ApiError, AppState, error::FieldError};
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use procure_domain::clock::now_ms;
use procure_domain::tariff::Destination;
use procure_domain::{
    Currency, Money, MoneyError,
    quote::{LineOption, Parcel, QuoteBreakdown, QuoteRequest, ShippingLine, line_options, quote},
};
use procure_store::orders::StoredQuote;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

pub const MAX_ITEMS: usize = 50;
pub const MAX_QUANTITY: u32 = 999;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/quotes", post(create_quote))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteItemRequest {
    pub sku: String,
    pub quantity: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateQuote {
    pub items: Vec<QuoteItemRequest>,
    pub destination_country: String,
    pub currency: String,
    /// Code of the shipping line; the cheapest eligible line when absent.
    #[serde(default)]
    pub shipping_line: Option<String>,
    #[serde(default)]
    pub insurance: bool,
    #[serde(default)]
    pub guaranteed: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoneyView {
    pub minor: i64,
    pub currency: Currency,
    pub display: String,
}

impl From<Money> for MoneyView {
    fn from(m: Money) -> Self {
        MoneyView {
            minor: m.minor,
            currency: m.currency,
            display: m.to_string(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuotedItem {
    pub sku: String,
    pub title: String,
    pub platform: String,
    pub offer_id: String,
    pub spec_id: String,
    pub quantity: u32,
    pub unit_price: Money,
}

/// A line that can carry the parcel: its fee in CNY and in the quote's currency.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShippingOption {
    #[serde(flatten)]
    pub line: LineOption,
    pub fee_in_currency: MoneyView,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FxView {
    pub rate: String,
    pub date: String,
    pub source: String,
}

/// The quote as stored and returned: everything needed to turn it into an order later.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuoteDoc {
    pub quote_id: String,
    pub expires_at_ms: i64,
    pub destination_country: String,
    pub currency: Currency,
    pub total: MoneyView,
    pub breakdown: QuoteBreakdown,
    pub fx: FxView,
    pub shipping_line: String,
    /// Eligible lines, cheapest first (absent in quotes stored before there was a choice).
    #[serde(default)]
    pub shipping_options: Vec<ShippingOption>,
    #[serde(default)]
    pub insurance: bool,
    #[serde(default)]
    pub guaranteed: bool,
    pub price_tolerance_bps: u32,
    pub items: Vec<QuotedItem>,
}

/// A quote request that passed every check, with what the checks looked up.
struct ValidQuote<'a> {
    currency: Currency,
    destination: &'a Destination,
    /// The shipping line the customer asked for, if any.
    line: Option<&'a ShippingLine>,
}

fn validate<'a>(req: &CreateQuote, state: &'a AppState) -> Result<ValidQuote<'a>, ApiError> {
    let mut errors = crate::text::lines(req);
    let mut err = |f: &str, m: String| {
        errors.push(FieldError {
            field: f.into(),
            message: m,
        })
    };
    if req.items.is_empty() || req.items.len() > MAX_ITEMS {
        err("items", format!("between 1 and {MAX_ITEMS} items required"));
    }
    let mut seen = HashSet::new();
    for (i, item) in req.items.iter().enumerate() {
        if item.sku.is_empty() || item.sku.len() > 64 {
            err(
                &format!("items[{i}].sku"),
                "must be 1 to 64 characters".into(),
            );
        } else if !seen.insert(item.sku.as_str()) {
            err(
                &format!("items[{i}].sku"),
                "duplicate sku; use quantity".into(),
            );
        }
        if item.quantity == 0 || item.quantity > MAX_QUANTITY {
            err(
                &format!("items[{i}].quantity"),
                format!("must be 1 to {MAX_QUANTITY}"),
            );
        }
    }
    let destination = state.config.pricing.destination(&req.destination_country);
    if destination.is_none() {
        err(
            "destination_country",
            "unsupported destination country".into(),
        );
    }
    let currency = req.currency.parse::<Currency>();
    if currency.is_err() {
        err("currency", "unsupported currency".into());
    }
    // `Some(None)`: a line was named and does not exist.
    let line = req
        .shipping_line
        .as_deref()
        .map(|code| state.config.pricing.line(code));
    if let Some(None) = line {
        err("shipping_line", "unknown shipping line".into());
    }
    match (errors.is_empty(), currency, destination) {
        (true, Ok(currency), Some(destination)) => Ok(ValidQuote {
            currency,
            destination,
            line: line.flatten(),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

#[tracing::instrument(skip_all, fields(items = body.peek().map(|b| b.items.len()).unwrap_or(0)))]
async fn create_quote(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateQuote>,
) -> Result<(StatusCode, Json<QuoteDoc>), ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let req = body.read()?;
    let ValidQuote {
        currency,
        destination: dest,
        line: chosen,
    } = validate(&req, &state)?;
    let pricing = &state.config.pricing;

    let mut items = Vec::with_capacity(req.items.len());
    let mut quoted = Vec::with_capacity(req.items.len());
    for (i, it) in req.items.iter().enumerate() {
        let field = format!("items[{i}].quantity");
        crate::product_source::fresh_for_quote(&state, &field, &it.sku, it.quantity).await?;
        let l = state.store.listing(&it.sku).await?;
        if l.available < i64::from(it.quantity) {
            return Err(ApiError::Conflict(
                "out_of_stock",
                format!(
                    "{}: requested {}, available {}",
                    l.sku, it.quantity, l.available
                ),
            ));
        }
        let item = l.quote_item(l.price_fen, l.domestic_shipping_fen, it.quantity);
        let unit_price = item.unit_price;
        items.push(item);
        quoted.push(QuotedItem {
            sku: l.sku,
            title: l.title,
            platform: l.platform,
            offer_id: l.offer_id,
            spec_id: l.spec_id,
            quantity: it.quantity,
            unit_price,
        });
    }

    let country = req.destination_country.as_str();
    let parcel = Parcel::of(&items);
    let options = line_options(
        &pricing.lines,
        country,
        &parcel.categories,
        parcel.actual_g,
        parcel.volume_mm3,
    )
    .map_err(ApiError::internal)?;
    let line = match chosen {
        Some(line) => {
            let code = &line.code;
            let chargeable = line.chargeable_weight_g(parcel.actual_g, parcel.volume_mm3);
            if let Err(reason) = line.check(country, &parcel.categories, chargeable) {
                return Err(ApiError::field(
                    "shipping_line",
                    format!("{code} cannot carry this order: {reason}"),
                ));
            }
            line
        }
        None => options
            .first()
            .and_then(|o| pricing.line(&o.code))
            .ok_or_else(|| {
                ApiError::Unprocessable(
                    "no_shipping_line",
                    format!(
                        "no shipping line can carry this order to {country} \
                         ({} g, {} mm³)",
                        parcel.actual_g, parcel.volume_mm3
                    ),
                )
            })?,
    };

    let fx = state
        .fx
        .locked_rate(Currency::CNY, currency)
        .await
        .map_err(|e| ApiError::Unavailable(format!("exchange rates unavailable: {e}")))?;
    let fx_dest = state
        .fx
        .locked_rate(Currency::CNY, dest.duty.de_minimis.currency)
        .await
        .map_err(|e| ApiError::Unavailable(format!("exchange rates unavailable: {e}")))?;

    let breakdown = quote(&QuoteRequest {
        items: &items,
        service_fee: &pricing.service_fee,
        line,
        duty: &dest.duty,
        fx: &fx.rate,
        fx_destination: &fx_dest.rate,
        insurance: req.insurance.then_some(&pricing.insurance),
        guarantee: req.guaranteed.then_some(&pricing.guarantee),
    })
    .map_err(|e| ApiError::Unprocessable("unquotable", e.to_string()))?;
    let shipping_options = options
        .into_iter()
        .map(|line| {
            Ok(ShippingOption {
                fee_in_currency: line.fee.convert(&fx.rate)?.into(),
                line,
            })
        })
        .collect::<Result<Vec<_>, MoneyError>>()
        .map_err(|e| ApiError::Unprocessable("unquotable", e.to_string()))?;

    let doc = QuoteDoc {
        quote_id: format!("q_{}", uuid::Uuid::now_v7().simple()),
        expires_at_ms: now_ms() + state.config.quote_ttl.as_millis() as i64,
        destination_country: req.destination_country.clone(),
        currency,
        total: breakdown.total.into(),
        fx: FxView {
            rate: fx.rate.decimal(),
            date: fx.date.clone(),
            source: fx.source.clone(),
        },
        breakdown,
        shipping_line: line.code.clone(),
        shipping_options,
        insurance: req.insurance,
        guaranteed: req.guaranteed,
        price_tolerance_bps: state.config.price_tolerance_bps,
        items: quoted,
    };
    state
        .store
        .insert_quote(&StoredQuote {
            id: doc.quote_id.clone(),
            body: serde_json::to_value(&doc).map_err(ApiError::internal)?,
            total: doc.breakdown.total,
            expires_at_ms: doc.expires_at_ms,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}
