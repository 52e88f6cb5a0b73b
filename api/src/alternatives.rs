//! Alternatives and matching suggestions for imported products (operators):
//!
//! - `POST /api/v1/products/{id}/alternatives` `{"sku", "alternative_sku"}` links a SKU of the
//!   product to a listing of the same product elsewhere (another platform, or another seller),
//!   both ways: procurement then ranks and fails over across both (store `alternatives`). The
//!   link records the matching suggestion's confidence when both are imported products, so an
//!   operator's judgement and the machine's can be compared later.
//! - `DELETE /api/v1/products/{id}/alternatives/{sku}/{alternative_sku}` undoes it.
//! - `GET /api/v1/products/{id}/matches` suggests imported products that look like the same
//!   product (title and attribute values, `procure_domain::matching`), each with how confident
//!   the suggestion is, which SKU pairs with which, and why; it never links by itself.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::products::AlternativeView;
use crate::{ApiError, AppState};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use procure_domain::matching::{self, Confidence, SUGGEST_MIN_BPS};
use procure_domain::order::Platform;
use procure_store::{
    StoreError,
    products::{ProductStatus, StoredProduct},
};
use serde::{Deserialize, Serialize};

/// Candidates read from the title index per suggestion, and the most suggestions answered.
const CANDIDATES: i64 = 50;
pub const MAX_MATCHES: usize = 20;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products/{id}/alternatives", post(link))
        .route(
            "/api/v1/products/{id}/alternatives/{sku}/{alternative_sku}",
            delete(unlink),
        )
        .route("/api/v1/products/{id}/matches", get(matches))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// A SKU of this product.
    pub sku: String,
    /// The listing of the same product elsewhere (an imported product's SKU, or a catalogue
    /// listing).
    pub alternative_sku: String,
    /// Link even though the two SKUs' variant values differ (the operator knows better, e.g.
    /// the shops spell a colour differently): without it such a link is refused, as it could
    /// buy the wrong variant.
    #[serde(default)]
    pub despite_variants: bool,
}

#[derive(Debug, Serialize)]
pub struct LinkView {
    pub sku: String,
    pub alternative: AlternativeView,
    /// The matching suggestion for the two products, when both are imported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<SuggestionView>,
}

#[derive(Debug, Serialize)]
pub struct SuggestionView {
    pub confidence: Confidence,
    pub confidence_bps: u32,
    /// How alike the two SKUs' variant values are (basis points; 0 when they do not pair).
    pub variant_bps: u32,
    pub reasons: Vec<String>,
}

async fn product(state: &AppState, id: &str) -> Result<StoredProduct, ApiError> {
    if !crate::id_ok(id) {
        return Err(ApiError::NotFound("product"));
    }
    match state.store.product(id).await {
        Ok(p) => Ok(p),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("product")),
        Err(e) => Err(e.into()),
    }
}

async fn link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<LinkRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator])?;
    let r = body.read()?;
    let text = crate::text::lines(&r);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    let p = product(&state, &id).await?;
    if p.spec_of(&r.sku).is_none() {
        return Err(ApiError::field("sku", format!("{id} has no SKU {}", r.sku)));
    }
    if !crate::id_ok(&r.alternative_sku) {
        return Err(ApiError::field("alternative_sku", "no such listing"));
    }
    let other = match state.store.product_of_sku(&r.alternative_sku).await? {
        Some(o) if o.id == p.id => {
            return Err(ApiError::Conflict(
                "same_product",
                format!(
                    "{} is a variant of {id} itself, not the same product elsewhere",
                    r.alternative_sku
                ),
            ));
        }
        Some(o) if o.status == ProductStatus::Delisted => {
            return Err(ApiError::Refused(
                StatusCode::CONFLICT,
                "product_delisted",
                format!(
                    "{}: the marketplace no longer lists product {}",
                    r.alternative_sku, o.id
                ),
            ));
        }
        other => other,
    };
    let suggestion = other
        .as_ref()
        .map(|o| suggest(&p, &r.sku, o, &r.alternative_sku));
    // Two imported SKUs whose variants do not pair could buy the wrong colour or size.
    if let (Some(s), Some(o)) = (&suggestion, &other)
        && s.variant_bps == 0
        && !r.despite_variants
    {
        let expected = s.expected.as_deref().map_or_else(
            || format!("no SKU of {} has the same variant values", o.id),
            |sku| format!("the SKU with the same variant values is {sku}"),
        );
        return Err(ApiError::Conflict(
            "variant_mismatch",
            format!(
                "{} and {} are different variants ({expected}); send despite_variants to link them anyway",
                r.sku, r.alternative_sku
            ),
        ));
    }
    // How sure the machine is that this pair is the same thing to buy.
    let confidence = suggestion
        .as_ref()
        .map(|s| s.matched.confidence_bps.min(s.variant_bps));
    let (created, changed) = state
        .store
        .link_alternative(&r.sku, &r.alternative_sku, confidence, &caller.0.sub)
        .await
        .map_err(|e| match e {
            StoreError::UnknownSku(s) => {
                ApiError::field("alternative_sku", format!("no listing {s}"))
            }
            StoreError::StateConflict(why) => ApiError::Conflict("same_product", why),
            other => other.into(),
        })?;
    let alternative = state
        .store
        .alternatives(&r.sku)
        .await?
        .into_iter()
        .find(|a| a.alternative_sku == r.alternative_sku)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the link just written is not there")))?;
    // The store marked every product listing either SKU changed: this replica drops them now,
    // the others through the change feed.
    for (id, version) in &changed {
        state.product_cache.invalidate(id, *version).await;
    }
    tracing::info!(
        sku = %r.sku,
        alternative = %r.alternative_sku,
        by = %caller.0.sub,
        confidence_bps = confidence,
        created,
        "alternative linked"
    );
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(LinkView {
            sku: r.sku,
            alternative: AlternativeView::from(&alternative),
            suggestion: suggestion.map(|s| SuggestionView {
                confidence: s.matched.confidence,
                confidence_bps: s.matched.confidence_bps,
                variant_bps: s.variant_bps,
                reasons: s.matched.reasons,
            }),
        }),
    )
        .into_response())
}

/// The matching suggestion for two imported products, seen from one SKU of each.
struct Suggested {
    matched: matching::Match,
    /// How alike the two SKUs' variant values are; 0 when the suggestion pairs them with
    /// others.
    variant_bps: u32,
    /// The SKU of the other product the suggestion pairs `sku` with, if any.
    expected: Option<String>,
}

fn suggest(p: &StoredProduct, sku: &str, o: &StoredProduct, alternative: &str) -> Suggested {
    let matched = matching::score(&p.detail, &o.detail);
    let pair = matched
        .skus
        .iter()
        .find(|pair| Some(pair.spec_id.as_str()) == p.spec_of(sku));
    let variant_bps = pair
        .filter(|pair| Some(pair.alternative_spec_id.as_str()) == o.spec_of(alternative))
        .map_or(0, |pair| pair.bps);
    let expected = pair.and_then(|pair| o.sku_of(&pair.alternative_spec_id).map(str::to_owned));
    Suggested {
        matched,
        variant_bps,
        expected,
    }
}

async fn unlink(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, sku, alternative)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[Role::Operator])?;
    let p = product(&state, &id).await?;
    if p.spec_of(&sku).is_none() || !crate::id_ok(&alternative) {
        return Err(ApiError::NotFound("alternative"));
    }
    let Some(changed) = state.store.unlink_alternative(&sku, &alternative).await? else {
        return Err(ApiError::NotFound("alternative"));
    };
    for (id, version) in &changed {
        state.product_cache.invalidate(id, *version).await;
    }
    tracing::info!(%sku, %alternative, by = %caller.0.sub, "alternative unlinked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct MatchQuery {
    /// Only products of this platform (`1688`, `taobao`, `pinduoduo`).
    pub platform: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MatchList {
    pub product: String,
    /// Best first; only suggestions at or above `min_confidence_bps`.
    pub matches: Vec<MatchView>,
    pub min_confidence_bps: u32,
}

#[derive(Debug, Serialize)]
pub struct MatchView {
    pub product: String,
    pub platform: Platform,
    pub title: String,
    pub confidence: Confidence,
    pub confidence_bps: u32,
    pub title_bps: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes_bps: Option<u32>,
    /// Which SKU of the product pairs with which SKU of the suggestion (by variant values),
    /// ready for `POST …/alternatives`; `linked` when they already are.
    pub skus: Vec<SkuPairView>,
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SkuPairView {
    pub sku: String,
    pub alternative_sku: String,
    pub bps: u32,
    pub linked: bool,
}

async fn matches(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<MatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MatchList>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let platform = match q.platform.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<Platform>()
                .map_err(|_| ApiError::field("platform", "one of 1688, taobao, pinduoduo"))?,
        ),
    };
    let p = product(&state, &id).await?;
    let candidates = state
        .store
        .products_sharing_title(&p.id, &p.detail.title, platform, CANDIDATES)
        .await?;
    let mut out: Vec<MatchView> = Vec::new();
    for c in candidates {
        let m = matching::score(&p.detail, &c.detail);
        if m.confidence_bps < SUGGEST_MIN_BPS {
            continue;
        }
        let skus = m
            .skus
            .iter()
            .filter_map(|pair| {
                let sku = p.sku_of(&pair.spec_id)?.to_owned();
                let alternative_sku = c.sku_of(&pair.alternative_spec_id)?.to_owned();
                // Linked already: by an operator, or one listing (the catalogue's) adopted by
                // both products.
                let linked = sku == alternative_sku
                    || p.alternatives
                        .iter()
                        .any(|a| a.sku == sku && a.alternative_sku == alternative_sku);
                Some(SkuPairView {
                    sku,
                    alternative_sku,
                    bps: pair.bps,
                    linked,
                })
            })
            .collect();
        out.push(MatchView {
            product: c.id.clone(),
            platform: c.detail.platform,
            title: c.detail.title.clone(),
            confidence: m.confidence,
            confidence_bps: m.confidence_bps,
            title_bps: m.title_bps,
            attributes_bps: m.attributes_bps,
            skus,
            reasons: m.reasons,
        });
    }
    out.sort_by(|a, b| {
        b.confidence_bps
            .cmp(&a.confidence_bps)
            .then_with(|| a.product.cmp(&b.product))
    });
    out.truncate(MAX_MATCHES);
    Ok(Json(MatchList {
        product: p.id,
        matches: out,
        min_confidence_bps: SUGGEST_MIN_BPS,
    }))
}
