//! The product cache: each product's answer body, serialized once, in up to two levels before
//! the store. The in-process level (`moka`) keeps it for the TTL (`products.cache_ttl_s`, 5
//! minutes by default), at most `products.cache_entries` entries; the optional shared level
//! (Redis, `products.redis_url`, [`shared`]) lets a replica serve what another built. A miss in
//! both loads from the store.
//!
//! Every answer carries the version of the product it was built from (`products.version`).
//! A change (a re-import or refresh through this replica, or, within [`CHANGES_POLL`], any
//! change anywhere else seen by [`ProductCache::follow_changes`]: another replica's import, a
//! price monitor's run in a worker) raises the product's *floor* here and in Redis and drops
//! the older answers; an answer below the floor is never served nor stored. So a read that
//! loaded the store just before a change cannot put the old answer back, and every replica
//! drops a changed product at once.

pub mod shared;

use crate::ApiError;
use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use procure_metrics::ReadLevel;
use procure_store::{Store, products::ProductChange};
use shared::SharedLevel;
use std::collections::HashMap;
use std::sync::Arc;
use std::{future::Future, time::Duration};

/// How often each replica looks for changed products.
pub const CHANGES_POLL: Duration = Duration::from_millis(250);
/// How far back each look reaches beyond the previous one: changes are stamped by the clock of
/// the process that made them, and clocks of hosts differ a little.
const CLOCK_SLACK_MS: i64 = 5_000;
/// Looks for changes that may fail in a row before this replica drops every answer it holds
/// (it can no longer tell which are old).
const FAILED_LOOKS_BEFORE_FORGETTING: u32 = 8;
/// The response header naming where a product read was answered from (`memory`, `shared`,
/// `store`).
pub const LEVEL_HEADER: &str = "x-procure-cache";

/// Where a replica's change feed stands ([`ProductCache::catch_up`], then
/// [`ProductCache::follow_changes`]).
pub struct ChangeFeed {
    since: i64,
    /// The version each product was last dropped at, so one change drops once.
    dropped: HashMap<String, (i64, i64)>,
    /// Changes the shared level has not taken yet: the newest version, and when it was seen
    /// (after twice the TTL no shared answer older than it is left to drop).
    pending: HashMap<String, (i64, i64)>,
    failed_looks: u32,
}

#[derive(Clone)]
struct Entry {
    version: i64,
    body: Bytes,
}

#[derive(Clone)]
pub struct ProductCache {
    ttl: Duration,
    local: moka::sync::Cache<String, Entry>,
    /// The newest version of each recently changed product this replica knows of.
    floors: moka::sync::Cache<String, i64>,
    shared: Option<Arc<SharedLevel>>,
    /// Pages of `GET /api/v1/products` (in process only), each with the catalogue generation it
    /// was built in: any product change seen here starts a new generation, so a page never
    /// outlives a change of a product it holds or should hold.
    pages: moka::sync::Cache<String, (u64, Bytes)>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl ProductCache {
    pub fn new(ttl: Duration, entries: u64) -> Self {
        ProductCache {
            ttl,
            local: moka::sync::Cache::builder()
                .max_capacity(entries)
                .time_to_live(ttl)
                .build(),
            // A floor outlives every answer it guards.
            floors: moka::sync::Cache::builder()
                .max_capacity(entries.max(10_000))
                .time_to_live(ttl.saturating_mul(2))
                .build(),
            shared: None,
            pages: moka::sync::Cache::builder()
                .max_capacity(entries.min(10_000))
                .time_to_live(ttl)
                .build(),
            generation: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// With the shared level between replicas.
    pub fn with_shared(mut self, shared: SharedLevel) -> Self {
        self.shared = Some(Arc::new(shared));
        self
    }

    pub fn shared(&self) -> Option<&SharedLevel> {
        self.shared.as_deref()
    }

    fn floor(&self, key: &str) -> i64 {
        self.floors.get(key).unwrap_or(0)
    }

    /// The cached body of `key` and the level that had it, else what `load` answers: the
    /// body and the version it was built from, cached in both levels unless a newer change
    /// is known by then.
    pub async fn get_or_load<F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> Result<Option<(Bytes, ReadLevel)>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<(i64, Vec<u8>)>, ApiError>>,
    {
        let metrics = procure_metrics::global();
        let floor = self.floor(key);
        if let Some(hit) = self.local.get(key)
            && hit.version >= floor
        {
            metrics.product_read(ReadLevel::Memory);
            return Ok(Some((hit.body, ReadLevel::Memory)));
        }
        if let Some(shared) = &self.shared
            && let Some((version, body)) = shared.get(key, floor).await
        {
            self.keep(key, version, body.clone());
            metrics.product_read(ReadLevel::Shared);
            return Ok(Some((body, ReadLevel::Shared)));
        }
        let Some((version, body)) = load().await? else {
            metrics.product_read(ReadLevel::Missing);
            return Ok(None);
        };
        if let Some(shared) = &self.shared
            && version >= self.floor(key)
        {
            shared.put(key, version, &body).await;
        }
        let body = Bytes::from(body);
        self.keep(key, version, body.clone());
        metrics.product_read(ReadLevel::Store);
        Ok(Some((body, ReadLevel::Store)))
    }

    /// Keep an answer in process unless a newer change is known (checked after the insert
    /// too, as a change may land between).
    fn keep(&self, key: &str, version: i64, body: Bytes) {
        if version < self.floor(key) {
            return;
        }
        self.local.insert(key.to_owned(), Entry { version, body });
        if version < self.floor(key) {
            self.local.invalidate(key);
        }
    }

    /// `key` changed to `version`: drop its older answers here and in the shared level.
    /// Answers whether the shared level took it (true without one).
    pub async fn invalidate(&self, key: &str, version: i64) -> bool {
        self.raise_floor(key, version);
        match &self.shared {
            Some(shared) => shared.drop_below(key, version).await,
            None => true,
        }
    }

    /// A page of the product list by its query, from this replica's memory unless a product
    /// changed since it was built, else what `load` answers.
    pub async fn page_or_load<F, Fut>(
        &self,
        key: &str,
        load: F,
    ) -> Result<(Bytes, ReadLevel), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ApiError>>,
    {
        use std::sync::atomic::Ordering;
        // Taken before the store is read: a change landing during the read makes it old.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((built, body)) = self.pages.get(key)
            && built == generation
        {
            return Ok((body, ReadLevel::Memory));
        }
        let body = Bytes::from(load().await?);
        if self.generation.load(Ordering::Acquire) == generation {
            self.pages
                .insert(key.to_owned(), (generation, body.clone()));
        }
        Ok((body, ReadLevel::Store))
    }

    fn raise_floor(&self, key: &str, version: i64) {
        // A change seen before (this replica's own write, then the change feed's sighting of
        // it) ends no second generation of list pages.
        if self.floor(key) < version {
            self.floors.insert(key.to_owned(), version);
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        if self.local.get(key).is_some_and(|e| e.version < version) {
            self.local.invalidate(key);
        }
    }

    /// Before this replica serves: every product changed within twice the TTL (the longest a
    /// shared answer or its floor lives) raises its floor here and in Redis, so a change made
    /// while no replica was running (a worker's price monitor, say) is never hidden by an
    /// answer Redis kept. Answers where the change feed goes on from.
    pub async fn catch_up(&self, store: &Store) -> Result<ChangeFeed, procure_store::StoreError> {
        let now = procure_domain::clock::now_ms();
        let reach = self.ttl.saturating_mul(2).as_millis() as i64;
        let mut feed = ChangeFeed {
            since: now - reach,
            dropped: HashMap::new(),
            pending: HashMap::new(),
            failed_looks: 0,
        };
        let changed = store.products_changed_since(feed.since).await?;
        self.apply(&mut feed, changed, now).await;
        Ok(feed)
    }

    /// Until `stop`: drop every product that changed since the last look (see the module
    /// docs). A failed look is logged and retried at the next one; after
    /// [`FAILED_LOOKS_BEFORE_FORGETTING`] in a row this replica drops all it holds in process.
    /// A change the shared level did not take is offered to it again at every look.
    pub async fn follow_changes(
        self,
        store: Store,
        mut feed: ChangeFeed,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(CHANGES_POLL) => {}
            }
            match store
                .products_changed_since(feed.since - CLOCK_SLACK_MS)
                .await
            {
                Ok(changed) => {
                    feed.failed_looks = 0;
                    self.apply(&mut feed, changed, procure_domain::clock::now_ms())
                        .await;
                }
                Err(e) => {
                    feed.failed_looks += 1;
                    tracing::warn!(error = %e, failed_looks = feed.failed_looks, "reading changed products failed; retrying");
                    if feed.failed_looks == FAILED_LOOKS_BEFORE_FORGETTING {
                        self.local.invalidate_all();
                        tracing::warn!(
                            "changes unseen for too long: this replica's product answers dropped"
                        );
                    }
                }
            }
        }
    }

    /// Each change once: its floor raised here at once, and offered to the shared level until
    /// Redis takes it (a drop it missed is tried again at the next look, nothing else is).
    async fn apply(&self, feed: &mut ChangeFeed, changed: Vec<ProductChange>, now: i64) {
        for c in changed {
            // A stamp from a clock ahead of ours must not move the window past other hosts'
            // changes.
            feed.since = feed.since.max(c.updated_at_ms.min(now));
            if feed.dropped.get(&c.id).is_none_or(|(v, _)| *v < c.version) {
                feed.dropped
                    .insert(c.id.clone(), (c.version, c.updated_at_ms));
                self.raise_floor(&c.id, c.version);
                if self.shared.is_some() {
                    let pending = feed.pending.get(&c.id).map_or(0, |(v, _)| *v);
                    feed.pending.insert(c.id, (pending.max(c.version), now));
                }
            }
        }
        feed.dropped
            .retain(|_, (_, at)| *at >= feed.since - CLOCK_SLACK_MS);
        let Some(shared) = &self.shared else {
            return;
        };
        let reach = self.ttl.saturating_mul(2).as_millis() as i64;
        for (id, (version, seen)) in std::mem::take(&mut feed.pending) {
            if !shared.drop_below(&id, version).await && seen >= now - reach {
                feed.pending.insert(id, (version, seen));
            }
        }
    }

    /// A cached body as the answer: JSON, as the handler would have written it, saying which
    /// level answered.
    pub fn response(body: Bytes, level: ReadLevel) -> Response {
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::OK;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r.headers_mut()
            .insert(LEVEL_HEADER, HeaderValue::from_static(level.as_str()));
        r
    }
}

#[cfg(test)]
mod tests {
    //! The levels against the machine's Redis (`PROCURE_TEST_REDIS_URL`, started by
    //! scripts/bootstrap.sh): two caches with one prefix are two replicas.
    use super::shared::{SharedConfig, SharedLevel};
    use super::*;

    fn redis_url() -> String {
        std::env::var("PROCURE_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
    }

    fn replica(prefix: &str) -> ProductCache {
        let shared = SharedLevel::new(&SharedConfig {
            url: redis_url(),
            ca_cert_pem: None,
            password: None,
            prefix: prefix.to_owned(),
            ttl: Duration::from_secs(60),
        })
        .unwrap();
        ProductCache::new(Duration::from_secs(60), 100).with_shared(shared)
    }

    /// The shared entry of `p1` as Redis holds it.
    async fn raw(prefix: &str) -> Option<Vec<u8>> {
        let mut conn = redis::Client::open(redis_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        redis::cmd("GET")
            .arg(format!("{prefix}product:{{p1}}:body"))
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn read(cache: &ProductCache, version: i64) -> (Bytes, ReadLevel) {
        cache
            .get_or_load("p1", || async move {
                Ok(Some((version, format!("v{version}").into_bytes())))
            })
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn an_answer_older_than_a_seen_change_is_never_kept_nor_shared() {
        let prefix = format!("procure-unit-{}:", uuid::Uuid::new_v4().simple());
        let (a, b) = (replica(&prefix), replica(&prefix));
        assert!(
            a.shared().unwrap().ping().await,
            "the machine's Redis answers"
        );

        // A reads the store at version 1 while the product changes to version 2, and the
        // change is announced before A's read finishes: A answers what it read, but keeps
        // and shares nothing.
        let (body, level) = a
            .get_or_load("p1", || async {
                a.invalidate("p1", 2).await;
                Ok(Some((1, b"v1".to_vec())))
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&body[..], level), (&b"v1"[..], ReadLevel::Store));
        assert!(a.local.get("p1").is_none(), "v1 is not kept in process");
        assert_eq!(raw(&prefix).await, None, "nor shared");
        // B, a replica that never saw the change itself, finds nothing shared: it loads v2.
        assert_eq!(read(&b, 2).await, (Bytes::from("v2"), ReadLevel::Store));
        assert_eq!(read(&a, 2).await, (Bytes::from("v2"), ReadLevel::Shared));
        assert_eq!(read(&a, 2).await, (Bytes::from("v2"), ReadLevel::Memory));

        // A replica that read version 2 late cannot put it back over version 3 once 3 is
        // announced anywhere: the floor in Redis refuses it, for replicas that never saw it.
        let c = replica(&prefix);
        b.invalidate("p1", 3).await;
        assert_eq!(
            read(&a, 2).await.1,
            ReadLevel::Memory,
            "A has not seen 3 yet"
        );
        c.shared().unwrap().put("p1", 2, b"v2").await;
        assert_eq!(
            raw(&prefix).await,
            None,
            "the put below the floor wrote nothing"
        );
        assert_eq!(read(&c, 3).await, (Bytes::from("v3"), ReadLevel::Store));
        // An older put after a newer one is refused too.
        c.shared().unwrap().put("p1", 2, b"v2").await;
        assert_eq!(raw(&prefix).await.as_deref(), Some(&b"3:v3"[..]));
        // Two replicas racing to share answers above the floor: the newer one stays.
        c.shared().unwrap().put("p1", 5, b"v5").await;
        b.shared().unwrap().put("p1", 4, b"v4").await;
        assert_eq!(raw(&prefix).await.as_deref(), Some(&b"5:v5"[..]));
        let d = replica(&prefix);
        assert_eq!(read(&d, 9).await, (Bytes::from("v5"), ReadLevel::Shared));
    }

    /// This replica's own write, then the change feed's sighting of the same change: list
    /// pages built after the write stay served from memory; a newer change ends them.
    #[tokio::test]
    async fn a_change_seen_twice_ends_one_generation_of_pages() {
        let cache = ProductCache::new(Duration::from_secs(60), 100);
        let page = |cache: &ProductCache| {
            let cache = cache.clone();
            async move {
                cache
                    .page_or_load("q", || async { Ok(b"page".to_vec()) })
                    .await
                    .unwrap()
                    .1
            }
        };
        cache.invalidate("p1", 2).await;
        assert_eq!(page(&cache).await, ReadLevel::Store);
        assert_eq!(page(&cache).await, ReadLevel::Memory);
        let now = procure_domain::clock::now_ms();
        let mut feed = ChangeFeed {
            since: now,
            dropped: HashMap::new(),
            pending: HashMap::new(),
            failed_looks: 0,
        };
        let seen = |version| ProductChange {
            id: "p1".into(),
            updated_at_ms: now,
            version,
        };
        cache.apply(&mut feed, vec![seen(2)], now).await;
        assert_eq!(
            page(&cache).await,
            ReadLevel::Memory,
            "the same change again"
        );
        cache.apply(&mut feed, vec![seen(3)], now).await;
        assert_eq!(page(&cache).await, ReadLevel::Store, "a newer change");
    }
}
