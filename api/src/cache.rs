//! The product cache: each product's answer body, serialized once, kept in process (`moka`) for
//! the TTL (`api.product_cache_ttl_s`, 5 minutes by default) and at most
//! `api.product_cache_entries` entries. A re-import or a price change invalidates the entry at
//! once; a miss loads from the store.

use crate::ApiError;
use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use std::{future::Future, time::Duration};

#[derive(Clone)]
pub struct ProductCache {
    local: moka::sync::Cache<String, Bytes>,
}

impl ProductCache {
    pub fn new(ttl: Duration, entries: u64) -> Self {
        ProductCache {
            local: moka::sync::Cache::builder()
                .max_capacity(entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The cached body of `key`, else what `load` answers (cached when `Some`).
    pub async fn get_or_load<F, Fut>(&self, key: &str, load: F) -> Result<Option<Bytes>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Vec<u8>>, ApiError>>,
    {
        if let Some(hit) = self.local.get(key) {
            return Ok(Some(hit));
        }
        let Some(body) = load().await? else {
            return Ok(None);
        };
        let body = Bytes::from(body);
        self.local.insert(key.to_owned(), body.clone());
        Ok(Some(body))
    }

    /// Drop `key` everywhere it is cached.
    pub async fn invalidate(&self, key: &str) {
        self.local.invalidate(key);
    }

    /// A cached body as the answer: JSON, as the handler would have written it.
    pub fn response(body: Bytes) -> Response {
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    }
}
