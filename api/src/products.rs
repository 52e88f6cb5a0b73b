//! Imported products: `POST /api/v1/products/import` (a pasted link, or `{platform, id}`),
//! `GET /api/v1/products/{id}` and `GET /api/v1/products?query=&cursor=`.
//!
//! An import parses the link (`procure_domain::product_link`), asks the marketplace through the
//! [`ProductDetails`] port (the API never calls a vendor itself), and stores the product with
//! every SKU a listing and an offer (store `products`). A product read within the freshness
//! window is served as stored; the reads are served from the product cache (`cache/`).
//!
//! Refusals, each with its own code: a link that names no product (422 `invalid_link`, with the
//! parser's reason), a product the marketplace no longer lists (404 `product_delisted`), a
//! marketplace error (424 `marketplace_error`, with the vendor's reason and whether a later try
//! may succeed), and more imports at once than the marketplaces' budgets allow (429
//! `import_busy`, with `Retry-After`).

use crate::auth::{Caller, Role};
use crate::cache::ProductCache;
use crate::extract::JsonBody;
use crate::product_source::{port, product_error};
use crate::views::products::{ProductList, ProductView};
use crate::{ApiError, AppState};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use procure_domain::{
    clock::now_ms,
    ports::ProductError,
    product::estimate_measures,
    product_link::{self, ProductRef},
};
use procure_store::{StoreError, products::product_key};
use serde::{Deserialize, Serialize};

/// Products per page when the request names no `limit`, and the most it may name.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products/import", post(import))
        .route("/api/v1/products", get(list))
        .route("/api/v1/products/{id}", get(read))
}

/// What an import names: a link as pasted, or the platform and its id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

fn product_ref(r: &ImportRequest) -> Result<ProductRef, ApiError> {
    let parsed = match (&r.url, &r.platform, &r.id) {
        (Some(url), None, None) => product_link::parse_link(url),
        (None, Some(platform), Some(id)) => product_link::from_platform_id(platform, id),
        _ => {
            return Err(ApiError::field(
                "url",
                "give url, or platform and id (not both)",
            ));
        }
    };
    parsed.map_err(|e| ApiError::Unprocessable("invalid_link", format!("{} ({})", e, e.code())))
}

async fn import(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<ImportRequest>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let r = body.read()?;
    let text = crate::text::lines(&r);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    let wanted = product_ref(&r)?;
    let port = port(&state)?.clone();
    // A product read within the freshness window is answered as stored.
    let freshness = state.config.products.freshness.as_millis() as i64;
    if !wanted.needs_resolving() {
        let id = product_key(wanted.platform, &wanted.id);
        if let Ok(p) = state.store.product(&id).await
            && now_ms() - p.fetched_at_ms < freshness
        {
            return Ok((StatusCode::OK, Json(ProductView::from(p))).into_response());
        }
    }
    let Ok(_permit) = state.imports.clone().try_acquire_owned() else {
        let mut resp = ApiError::Refused(
            StatusCode::TOO_MANY_REQUESTS,
            "import_busy",
            "too many imports at once for the marketplaces' rate budgets; try again shortly".into(),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Ok(resp);
    };
    let product_id = port.resolve(&wanted).await.map_err(product_error)?;
    let id = product_key(wanted.platform, &product_id);
    let fetched_at = now_ms();
    let detail = match port.product(wanted.platform, &product_id).await {
        Ok(d) => d,
        Err(gone @ ProductError::Gone(_)) => {
            // Known before: no longer quoted or bought.
            if let Some(version) = state.store.mark_delisted(&id).await? {
                state.product_cache.invalidate(&id, version).await;
            }
            return Err(product_error(gone));
        }
        Err(other) => return Err(product_error(other)),
    };
    let measures = estimate_measures(&detail);
    let (saved, created) = state
        .store
        .save_product(&detail, measures, fetched_at)
        .await
        .map_err(|e| match e {
            StoreError::StateConflict(why) => {
                ApiError::Refused(StatusCode::FAILED_DEPENDENCY, "marketplace_error", why)
            }
            other => other.into(),
        })?;
    state
        .product_cache
        .invalidate(&saved.id, saved.version)
        .await;
    tracing::info!(product = %saved.id, skus = saved.skus.len(), created, "product imported");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ProductView::from(saved))).into_response())
}

/// One product, from the cache (in-process, then the shared level when configured), else the
/// store.
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    if !crate::id_ok(&id) {
        return Err(ApiError::NotFound("product"));
    }
    let (body, level) = state
        .product_cache
        .get_or_load(&id, || async {
            match state.store.product(&id).await {
                Ok(p) => Ok(Some((
                    p.version,
                    serde_json::to_vec(&ProductView::from(p)).map_err(ApiError::internal)?,
                ))),
                Err(StoreError::NotFound) => Ok(None),
                Err(e) => Err(ApiError::from(e)),
            }
        })
        .await?
        .ok_or(ApiError::NotFound("product"))?;
    Ok(ProductCache::response(body, level))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub query: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::field("limit", "1 to 200"))?,
    };
    let query = q.query.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if query.is_some_and(|s| s.chars().count() > 100) {
        return Err(ApiError::field("query", "at most 100 characters"));
    }
    if let Some(c) = &q.cursor
        && !crate::id_ok(c)
    {
        return Err(ApiError::BadRequest(
            "invalid_cursor",
            "cursor must be the next_cursor of an earlier page".into(),
        ));
    }
    let key = format!(
        "{limit}\u{0}{}\u{0}{}",
        query.unwrap_or(""),
        q.cursor.as_deref().unwrap_or("")
    );
    let (body, level) = state
        .product_cache
        .page_or_load(&key, || async {
            let page = state
                .store
                .products(query, q.cursor.as_deref(), limit)
                .await?;
            serde_json::to_vec(&ProductList::from(page)).map_err(ApiError::internal)
        })
        .await?;
    Ok(ProductCache::response(body, level))
}
