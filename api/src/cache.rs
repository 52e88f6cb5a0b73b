//! The product cache: each product's answer body, serialized once, kept in process (`moka`) for
//! the TTL (`products.cache_ttl_s`, 5 minutes by default) and at most `products.cache_entries`
//! entries; a miss loads from the store. A re-import or refresh through this replica drops the
//! entry at once; [`ProductCache::follow_changes`] drops, within `CHANGES_POLL`, every product
//! that changed anywhere else (another replica's import, a price monitor's run in a worker), so
//! every replica agrees without a shared cache.

use crate::ApiError;
use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use procure_store::Store;
use std::collections::HashMap;
use std::{future::Future, time::Duration};

/// How often each replica looks for changed products.
pub const CHANGES_POLL: Duration = Duration::from_millis(250);
/// How far back each look reaches beyond the previous one: changes are stamped by the clock of
/// the process that made them, and clocks of hosts differ a little.
const CLOCK_SLACK_MS: i64 = 5_000;

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
    pub fn invalidate(&self, key: &str) {
        self.local.invalidate(key);
    }

    /// Until `stop`: drop every product that changed since the last look (see the module
    /// docs). A failed look is logged and retried at the next one; entries expire by their TTL
    /// meanwhile.
    pub async fn follow_changes(self, store: Store, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut since = procure_domain::clock::now_ms();
        // What each product's last change was when it was dropped, so one change drops once.
        let mut dropped: HashMap<String, i64> = HashMap::new();
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(CHANGES_POLL) => {}
            }
            match store.products_changed_since(since - CLOCK_SLACK_MS).await {
                Ok(changed) => {
                    for (id, at) in changed {
                        since = since.max(at);
                        if dropped.get(&id).is_none_or(|seen| *seen < at) {
                            self.local.invalidate(&id);
                            dropped.insert(id, at);
                        }
                    }
                    dropped.retain(|_, at| *at >= since - CLOCK_SLACK_MS);
                }
                Err(e) => tracing::warn!(error = %e, "reading changed products failed; retrying"),
            }
        }
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
