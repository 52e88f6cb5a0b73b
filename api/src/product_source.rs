//! Reading imported products from their marketplaces through the [`ProductDetails`] port, for
//! the import endpoint (`products.rs`) and for quotes (`quotes.rs`): the port itself, how its
//! refusals are answered, and the freshness rule a quote on an imported SKU follows.

use crate::{ApiError, AppState};
use axum::http::StatusCode;
use procure_domain::{
    clock::now_ms,
    ports::{ProductDetails, ProductError},
    product::estimate_measures,
};
use procure_store::products::ProductStatus;
use std::sync::Arc;

/// A marketplace's refusal as the API answers it.
pub(crate) fn product_error(e: ProductError) -> ApiError {
    match e {
        ProductError::Gone(why) => {
            ApiError::Refused(StatusCode::NOT_FOUND, "product_delisted", why)
        }
        ProductError::Vendor(e) => ApiError::Refused(
            StatusCode::FAILED_DEPENDENCY,
            "marketplace_error",
            format!(
                "the marketplace answered: {}{}",
                e.message,
                if e.retryable {
                    " (a later try may succeed)"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// The port, or 503 when this API runs without one (no marketplace configured).
pub(crate) fn port(state: &AppState) -> Result<&Arc<dyn ProductDetails>, ApiError> {
    state
        .products
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("no marketplace is configured for products".into()))
}

/// Before a quote prices an imported product's SKU: the product is read again from its
/// marketplace unless it was read within the freshness window, so no customer is quoted an
/// older price; a delisted product, a SKU the marketplace no longer lists, or a quantity below
/// the seller's minimum is refused. A seeded listing (no imported product) passes as it is.
pub(crate) async fn fresh_for_quote(
    state: &AppState,
    field: &str,
    sku: &str,
    quantity: u32,
) -> Result<(), ApiError> {
    let Some(mut p) = state.store.product_of_sku(sku).await? else {
        return Ok(());
    };
    let freshness = state.config.products.freshness.as_millis() as i64;
    if p.status == ProductStatus::Active && now_ms() - p.fetched_at_ms >= freshness {
        let port = port(state)?.clone();
        let fetched_at = now_ms();
        match port.product(p.detail.platform, &p.detail.product_id).await {
            Ok(detail) => {
                let measures = estimate_measures(&detail);
                p = state
                    .store
                    .save_product(&detail, measures, fetched_at)
                    .await?
                    .0;
                state.product_cache.invalidate(&p.id, p.version).await;
            }
            Err(ProductError::Gone(_)) => {
                if let Some(version) = state.store.mark_delisted(&p.id).await? {
                    state.product_cache.invalidate(&p.id, version).await;
                }
                p.status = ProductStatus::Delisted;
            }
            Err(other) => return Err(product_error(other)),
        }
    }
    if p.status == ProductStatus::Delisted {
        return Err(ApiError::Refused(
            StatusCode::CONFLICT,
            "product_delisted",
            format!("{sku}: the marketplace no longer lists product {}", p.id),
        ));
    }
    if p.spec_of(sku)
        .and_then(|s| p.detail.skus.iter().find(|d| d.spec_id == s))
        .is_none()
    {
        return Err(ApiError::Refused(
            StatusCode::CONFLICT,
            "sku_unavailable",
            format!("{sku}: the marketplace no longer lists this variant"),
        ));
    }
    if let Some(min) = p.detail.min_order_quantity
        && quantity < min
    {
        return Err(ApiError::field(
            field,
            format!("the seller sells at least {min} units in one order"),
        ));
    }
    Ok(())
}
