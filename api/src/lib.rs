//! The customer- and operator-facing HTTP API (axum), the outbox dispatcher that hands
//! accepted work to Temporal, and the delivery of the event log to subscribers' webhooks
//! ([`webhook_delivery`]) and of customer notifications by email ([`email_delivery`]). The API never talks to Temporal on the request path: an order is
//! committed with its outbox row, so orders accepted while Temporal is down still start later.

pub mod accounts;
pub mod admin_outbox;
pub mod alternatives;
pub mod auth;
pub mod cache;
pub mod cancel;
pub mod codec;
pub mod contacts;
pub mod delivery_loop;
pub mod dispatcher;
pub mod email_delivery;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod orders;
pub mod parcels;
pub mod price_changes;
pub mod product_source;
pub mod products;

pub mod monitors;
pub mod purchaser;
pub mod quotes;
pub mod schedules;
pub mod text;
pub mod trace;
pub mod views;
pub mod warehouse;
pub mod webhook_delivery;
pub mod webhook_endpoints;
pub mod webhooks;

use axum::Router;
use procure_domain::{
    Secret,
    ports::{FxRates, PaymentRecords, ProductDetails, TrackingWebhooks},
    seal::Sealer,
    tariff,
};
use procure_store::Store;
use procure_temporal::{EncryptionCodec, TemporalLink};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::sync::Notify;

pub use error::ApiError;

/// Timings of the long-running processes: handed to each order and parcel workflow at start,
/// and the pace limit of price monitors.
#[derive(Clone, Debug)]
pub struct OrderTimings {
    pub payment_timeout: Duration,
    pub inbound_timeout: Duration,
    pub tracking_poll: Duration,
    pub purchaser_deadline: Duration,
    /// How long a customer has to answer a price change before the order is cancelled.
    pub price_change_deadline: Duration,
    /// Free storage in the warehouse, the reminder before it ends, and the grace period after
    /// it in which the customer still chooses before the goods are disposed.
    pub storage_free: Duration,
    pub storage_reminder: Duration,
    pub storage_grace: Duration,
    /// Tracking polls per parcel workflow run before it continues as new.
    pub parcel_polls_per_run: u32,
    /// Between two questions to the marketplaces about a seller's domestic shipment, and how
    /// long after the purchase a seller has to ship before an operator is asked.
    pub seller_ship_poll: Duration,
    pub seller_ship_deadline: Duration,
    /// The shortest period a price monitor's cron may have: marketplaces rate-limit lookups.
    pub monitor_min_period: Duration,
}

impl Default for OrderTimings {
    fn default() -> Self {
        OrderTimings {
            payment_timeout: Duration::from_secs(30 * 60),
            inbound_timeout: Duration::from_secs(14 * 24 * 3600),
            tracking_poll: Duration::from_secs(6 * 3600),
            purchaser_deadline: Duration::from_secs(4 * 3600),
            price_change_deadline: Duration::from_secs(48 * 3600),
            storage_free: Duration::from_secs(90 * 24 * 3600),
            storage_reminder: Duration::from_secs(7 * 24 * 3600),
            storage_grace: Duration::from_secs(30 * 24 * 3600),
            parcel_polls_per_run: 500,
            seller_ship_poll: Duration::from_secs(3 * 3600),
            seller_ship_deadline: Duration::from_secs(72 * 3600),
            monitor_min_period: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub quote_ttl: Duration,
    pub pricing: tariff::Pricing,
    pub stripe_webhook_secret: Secret,
    /// Signed webhooks older than this are rejected (replay protection).
    pub webhook_tolerance: Duration,
    pub task_queue: String,
    pub timings: OrderTimings,
    /// Default price tolerance over the quoted unit price before the customer is asked.
    pub price_tolerance_bps: u32,
    /// Verifies (and in development issues) bearer tokens.
    pub tokens: auth::TokenKey,
    /// Browser origins allowed to call the codec endpoint (the Temporal Web UI's).
    pub codec_origins: Vec<String>,
    /// Delivery of the event log to subscribers' webhooks (and which targets they may name).
    pub webhooks: webhook_delivery::DeliveryConfig,
    /// Imported products: freshness, cache and import concurrency.
    pub products: ProductsConfig,
}

/// How imported products are kept and served (README, "Products").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductsConfig {
    /// A product read from its marketplace this recently is quoted and re-imported as stored;
    /// older, it is read again first.
    pub freshness: Duration,
    /// How long a product's answer stays in the in-process cache, and how many are kept.
    pub cache_ttl: Duration,
    pub cache_entries: u64,
    /// Imports asking the marketplaces at once; more get 429 (each marketplace client also
    /// keeps its own rate budget).
    pub max_concurrent_imports: usize,
    /// The cache level shared between API replicas (Redis), when configured.
    pub shared: Option<cache::shared::SharedConfig>,
}

impl Default for ProductsConfig {
    fn default() -> Self {
        ProductsConfig {
            freshness: Duration::from_secs(300),
            cache_ttl: Duration::from_secs(300),
            cache_entries: 100_000,
            max_concurrent_imports: 8,
            shared: None,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            quote_ttl: Duration::from_secs(15 * 60),
            pricing: tariff::Pricing::default(),
            stripe_webhook_secret: Secret::new("whsec_procure_demo"),
            webhook_tolerance: Duration::from_secs(300),
            task_queue: procure_workflows::TASK_QUEUE.to_owned(),
            timings: OrderTimings::default(),
            price_tolerance_bps: 1_000,
            tokens: auth::TokenKey::development(),
            codec_origins: Vec::new(),
            webhooks: webhook_delivery::DeliveryConfig::default(),
            products: ProductsConfig::default(),
        }
    }
}

/// Largest request body the API reads; larger ones get a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether a client-supplied id (in a path or a body) is well-formed: 1 to 128 ASCII letters,
/// digits, '-' or '_'. Anything else cannot name one of ours.
pub(crate) fn id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// Exchange rates (ECB in production).
    pub fx: Arc<dyn FxRates>,
    /// Verifies tracking webhooks (17TRACK signs them with the API token).
    pub tracking_webhooks: Arc<dyn TrackingWebhooks>,
    pub config: Arc<ApiConfig>,
    /// Wakes the dispatcher as soon as new outbox work commits.
    pub outbox_notify: Arc<Notify>,
    /// Seals buyer-account credentials before they are stored.
    pub sealer: Arc<Sealer>,
    /// Verifies bearer tokens (shared with `config.tokens`).
    pub tokens: Arc<auth::TokenKey>,
    /// Temporal payload encryption, for the UI's codec endpoint.
    pub codec: Arc<EncryptionCodec>,
    /// The payment provider, read back when its webhook reports a payment (the event is a
    /// notification; the provider's intent is the record).
    pub payments: Option<Arc<dyn PaymentRecords>>,
    /// Temporal, for the operations that must answer with the workflow's outcome (cancel).
    pub temporal: Option<Arc<TemporalLink>>,
    /// Accepts orders in batches, one transaction per batch (group commit).
    pub intake: procure_store::intake::Intake,
    /// The marketplaces' product details, for imports and fresh quotes of imported products.
    pub products: Option<Arc<dyn ProductDetails>>,
    /// Imports in flight (at most `config.products.max_concurrent_imports`).
    pub imports: Arc<tokio::sync::Semaphore>,
    pub product_cache: cache::ProductCache,
}

impl AppState {
    pub fn new(
        store: Store,
        fx: Arc<dyn FxRates>,
        tracking_webhooks: Arc<dyn TrackingWebhooks>,
        config: ApiConfig,
        sealer: Sealer,
        codec: EncryptionCodec,
    ) -> Self {
        AppState {
            intake: procure_store::intake::Intake::new(
                store.clone(),
                procure_store::intake::DEFAULT_MAX_BATCH,
            ),
            store,
            fx,
            tracking_webhooks,
            tokens: Arc::new(config.tokens.clone()),
            products: None,
            imports: Arc::new(tokio::sync::Semaphore::new(
                config.products.max_concurrent_imports.max(1),
            )),
            product_cache: cache::ProductCache::new(
                config.products.cache_ttl,
                config.products.cache_entries,
            ),
            config: Arc::new(config),
            outbox_notify: Arc::new(Notify::new()),
            sealer: Arc::new(sealer),
            codec: Arc::new(codec),
            payments: None,
            temporal: None,
        }
    }

    pub fn with_temporal(mut self, link: Arc<TemporalLink>) -> Self {
        self.temporal = Some(link);
        self
    }

    /// Import products from, and refresh quotes through, these marketplaces.
    pub fn with_products(mut self, products: Arc<dyn ProductDetails>) -> Self {
        self.products = Some(products);
        self
    }

    /// Read payments back from this provider before recording them as paid.
    pub fn with_payments(mut self, payments: Arc<dyn PaymentRecords>) -> Self {
        self.payments = Some(payments);
        self
    }
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(health::router(health::HealthChecks {
            store: state.store.clone(),
            temporal: state.temporal.clone(),
        }))
        .merge(quotes::router())
        .merge(orders::router())
        .merge(cancel::router())
        .merge(webhooks::router())
        .merge(accounts::router())
        .merge(admin_outbox::router())
        .merge(purchaser::router())
        .merge(price_changes::router())
        .merge(parcels::router())
        .merge(warehouse::router())
        .merge(monitors::router())
        .merge(events::router())
        .merge(contacts::router())
        .merge(products::router())
        .merge(alternatives::router())
        .merge(webhook_endpoints::router())
        .merge(codec::router())
        .merge(openapi::router())
        // The router's own answers carry the one error body too; the 405 keeps its `Allow`.
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    trace::layers(routes).with_state(state)
}

/// Serve until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
