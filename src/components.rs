//! The deployable pieces, each runnable on its own (`procure api`, `procure worker`) or all
//! together in one process (`crate::system`). Each is built from a [`Deployment`]: every value
//! it needs, already checked, secrets included. `crate::settings` makes one from the settings
//! tree (`procure.example.toml`); nothing here reads the environment.

use anyhow::Context;
use procure_activities::{
    monitor::MonitorActivitiesImpl,
    order::{OrderActivitiesImpl, demo_warehouse},
};
use procure_adapters::{
    AlibabaConfig, Carrier, CarrierConfig, DeliveryAddress, EcbConfig, EcbFx, Marketplaces,
    Payments, PaymentsConfig, PddConfig, SmtpConfig, SmtpMailer, TaobaoConfig, Tracking,
    TrackingConfig, WebhookClient,
};
use procure_api::{
    ApiConfig, AppState, OrderTimings,
    auth::TokenKey,
    dispatcher::Dispatcher,
    email_delivery::{EmailConfig, EmailDelivery},
    webhook_delivery::{DeliveryConfig, WebhookDelivery},
};
use procure_domain::{seal::Sealer, tariff::Pricing};
use procure_store::Store;
use procure_temporal::{EncryptionCodec, TemporalConnection, TemporalLink};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::net::TcpListener;

/// Where the outside world is and how we authenticate to it.
#[derive(Clone, Debug)]
pub struct External {
    pub alibaba: AlibabaConfig,
    pub taobao: TaobaoConfig,
    pub pdd: PddConfig,
    pub payments: PaymentsConfig,
    pub tracking: TrackingConfig,
    pub carrier: CarrierConfig,
    pub fx: EcbConfig,
    /// Price-monitor lookups per second on each platform (separate from purchasing).
    pub monitor_requests_per_second: u32,
}

/// Price monitors leave most of each platform's call budget to purchasing.
pub const DEFAULT_MONITOR_REQUESTS_PER_SECOND: u32 = 5;

impl Default for External {
    fn default() -> Self {
        External {
            alibaba: Default::default(),
            taobao: Default::default(),
            pdd: Default::default(),
            payments: Default::default(),
            tracking: Default::default(),
            carrier: Default::default(),
            fx: Default::default(),
            monitor_requests_per_second: DEFAULT_MONITOR_REQUESTS_PER_SECOND,
        }
    }
}

impl External {
    /// Every adapter pointed at one base URL (the sandbox), with the demo credentials.
    pub fn at(base_url: &str) -> Self {
        let mut e = External::default();
        e.alibaba.base_url = base_url.into();
        e.taobao.base_url = base_url.into();
        e.pdd.base_url = base_url.into();
        e.payments.base_url = base_url.into();
        e.tracking.base_url = base_url.into();
        e.carrier.base_url = base_url.into();
        e.fx.base_url = base_url.into();
        e
    }
}

/// Where a component finds Temporal and its work.
#[derive(Clone, Debug)]
pub struct TemporalTarget {
    /// Address, namespace and authentication (`crate::settings::TemporalSettings::connection`).
    pub connection: TemporalConnection,
    pub task_queue: String,
    /// Browser origins of the Temporal Web UI, allowed to call our codec endpoint.
    pub ui_origins: Vec<String>,
}

/// The database and its connection pool.
#[derive(Clone, Debug)]
pub struct Database {
    pub url: String,
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection.
    pub acquire_timeout: Duration,
}

impl Database {
    pub async fn connect(&self) -> anyhow::Result<Store> {
        Store::connect_with(&self.url, self.max_connections, self.acquire_timeout)
            .await
            .context("opening the database")
    }
}

/// Our own keys: token signing, data at rest, Temporal payloads.
#[derive(Clone, Debug)]
pub struct Keys {
    pub tokens: TokenKey,
    pub data: Sealer,
    pub payload: EncryptionCodec,
}

impl Keys {
    /// The public development keys: sandbox setups and tests only.
    pub fn development() -> Self {
        Keys {
            tokens: TokenKey::development(),
            data: Sealer::development(),
            payload: EncryptionCodec::development(),
        }
    }
}

/// Our consolidation warehouse: where sellers ship to, and the carrier service its parcels
/// leave with.
#[derive(Clone, Debug)]
pub struct Warehouse {
    pub address: DeliveryAddress,
    pub shipping_service: String,
}

impl Warehouse {
    /// The demo warehouse (sandbox setups only).
    pub fn demo() -> Self {
        Warehouse {
            address: demo_warehouse(),
            shipping_service: "EXP".into(),
        }
    }
}

/// The API's own knobs beside the timings.
#[derive(Clone, Debug)]
pub struct ApiTuning {
    pub quote_ttl: Duration,
    pub price_tolerance_bps: u32,
    /// Deliveries of one outbox row before a transient failure makes it dead.
    pub outbox_max_attempts: u32,
    pub products: procure_api::ProductsConfig,
}

impl Default for ApiTuning {
    fn default() -> Self {
        let api = ApiConfig::default();
        ApiTuning {
            quote_ttl: api.quote_ttl,
            price_tolerance_bps: api.price_tolerance_bps,
            outbox_max_attempts: procure_api::dispatcher::DEFAULT_MAX_ATTEMPTS,
            products: procure_api::ProductsConfig::default(),
        }
    }
}

/// The email channel: where to send and how the delivery loop paces itself.
#[derive(Clone, Debug)]
pub struct EmailChannel {
    pub smtp: SmtpConfig,
    pub delivery: EmailConfig,
}

/// Everything the API and the worker are built from, checked (see `crate::settings`).
#[derive(Clone, Debug)]
pub struct Deployment {
    /// How a worker takes work. Its task queue is always `temporal.task_queue` (`run_worker`
    /// sets it), whatever this holds.
    pub worker: procure_worker::WorkerSettings,
    /// Where this process serves `/metrics` and health; `None`: nowhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub database: Database,
    pub external: External,
    pub temporal: TemporalTarget,
    pub timings: OrderTimings,
    /// Delivery of the event log to subscribers' webhooks (the API process delivers).
    pub webhooks: DeliveryConfig,
    /// Customer notifications by email (the API process sends); `None`: the channel is off.
    pub email: Option<EmailChannel>,
    pub keys: Keys,
    pub warehouse: Warehouse,
    /// The tariff and the shipping-line catalogue quotes are priced with.
    pub pricing: Pricing,
    pub api: ApiTuning,
}

/// The order activities on `store`, against `ext`, with the given keys and warehouse.
pub fn order_activities_on(
    store: Store,
    ext: &External,
    sealer: Sealer,
    warehouse: &Warehouse,
) -> anyhow::Result<OrderActivitiesImpl> {
    Ok(OrderActivitiesImpl {
        store,
        payments: Payments::new(ext.payments.clone())?,
        carrier: Carrier::new(ext.carrier.clone())?,
        tracking: Tracking::new(ext.tracking.clone())?,
        warehouse: warehouse.address.clone(),
        shipping_service: warehouse.shipping_service.clone(),
        sealer,
        marketplaces: Marketplaces::new(ext.alibaba.clone(), ext.taobao.clone(), ext.pdd.clone())?,
        clients: Default::default(),
    })
}

/// The order activities against `ext` with the development keys and the demo warehouse
/// (sandbox setups and tests).
pub async fn order_activities(
    database_url: &str,
    ext: &External,
) -> anyhow::Result<OrderActivitiesImpl> {
    let store = Store::connect(database_url)
        .await
        .context("opening the database (worker)")?;
    order_activities_on(store, ext, Sealer::development(), &Warehouse::demo())
}

/// The price-monitor activities: their own marketplace clients, paced at
/// `monitor_requests_per_second` per platform, beside the store, exchange rates and tariff.
pub fn monitor_activities(
    store: Store,
    ext: &External,
    pricing: Pricing,
) -> anyhow::Result<MonitorActivitiesImpl> {
    let (mut alibaba, mut taobao, mut pdd) =
        (ext.alibaba.clone(), ext.taobao.clone(), ext.pdd.clone());
    for http in [&mut alibaba.http, &mut taobao.http, &mut pdd.http] {
        http.requests_per_second = ext.monitor_requests_per_second;
    }
    Ok(MonitorActivitiesImpl {
        store,
        market: Marketplaces::new(alibaba, taobao, pdd)?,
        fx: Arc::new(EcbFx::new(ext.fx.clone())?),
        pricing,
    })
}

/// Run a worker until `shutdown`. The SDK's worker future is not `Send`: await it on the
/// thread that owns the runtime (the `procure worker` main task, or a dedicated thread).
pub async fn run_worker(
    d: &Deployment,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = d.database.connect().await.context("worker")?;
    let activities = order_activities_on(
        store.clone(),
        &d.external,
        d.keys.data.clone(),
        &d.warehouse,
    )?;
    let monitor = monitor_activities(store, &d.external, d.pricing.clone())?;
    let client = connect_temporal(&d.temporal.connection, "procure-worker", &d.keys.payload)
        .await
        .context("connecting the worker to Temporal")?;
    // The task queue is the one the dispatcher starts workflows on: `d.temporal`'s, which an
    // in-process system sets after the settings were read.
    let settings = procure_worker::WorkerSettings {
        task_queue: d.temporal.task_queue.clone(),
        ..d.worker.clone()
    };
    // The SDK core's metrics are recorded when this process has a metrics port to serve them.
    let metrics = match d.metrics_listen {
        Some(_) => Some(crate::metrics_port::SdkMetrics::get()?.meter()),
        None => None,
    };
    procure_worker::run(client, activities, monitor, settings, metrics, shutdown).await
}

/// Connect to Temporal; a failure names the connection (no secret) and the settings behind
/// its likely cause.
pub async fn connect_temporal(
    connection: &TemporalConnection,
    identity: &str,
    codec: &EncryptionCodec,
) -> anyhow::Result<temporalio_client::Client> {
    procure_temporal::connect(connection, identity, codec)
        .await
        .map_err(|e| {
            let text = format!("{e:#}");
            anyhow::anyhow!(
                "Temporal at {}: {text} ({})",
                connection.describe(),
                temporal_settings::connect_failure_hint(connection, &text)
            )
        })
}

/// `procure api` at start: a Temporal that refuses this connection's TLS or credentials is a
/// start error naming the setting; an unreachable one is not (the outbox holds the orders
/// until the dispatcher connects).
pub async fn check_temporal_at_start(
    connection: &TemporalConnection,
    codec: &EncryptionCodec,
) -> anyhow::Result<()> {
    match procure_temporal::connect(connection, "procure-api", codec).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = format!("{e:#}");
            let hint = temporal_settings::connect_failure_hint(connection, &text);
            if temporal_settings::is_unreachable(&hint) {
                tracing::warn!(temporal = %connection.describe(), error = %text,
                    "Temporal is not reachable yet; orders wait in the outbox");
                Ok(())
            } else {
                anyhow::bail!("Temporal at {}: {text} ({hint})", connection.describe())
            }
        }
    }
}

/// Serve the API, run the outbox dispatcher, deliver the event log to webhooks and (when the
/// channel is configured) customer notifications by email until `shutdown`.
pub async fn run_api(
    listener: TcpListener,
    store: Store,
    d: &Deployment,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ext = &d.external;
    let fx = Arc::new(EcbFx::new(ext.fx.clone())?);
    let api_cfg = ApiConfig {
        quote_ttl: d.api.quote_ttl,
        pricing: d.pricing.clone(),
        stripe_webhook_secret: ext.payments.webhook_secret.clone(),
        webhook_tolerance: Duration::from_secs(ext.payments.webhook_tolerance_s.max(1) as u64),
        task_queue: d.temporal.task_queue.clone(),
        timings: d.timings.clone(),
        price_tolerance_bps: d.api.price_tolerance_bps,
        tokens: d.keys.tokens.clone(),
        codec_origins: d.temporal.ui_origins.clone(),
        webhooks: d.webhooks.clone(),
        products: d.api.products.clone(),
    };
    let marketplaces = Marketplaces::new(ext.alibaba.clone(), ext.taobao.clone(), ext.pdd.clone())?;
    let state = AppState::new(
        store.clone(),
        fx,
        Arc::new(ext.tracking.clone()),
        api_cfg,
        d.keys.data.clone(),
        d.keys.payload.clone(),
    )
    .with_payments(Arc::new(Payments::new(ext.payments.clone())?))
    .with_products(Arc::new(marketplaces));
    let intents: Arc<dyn procure_domain::ports::PaymentIntents> =
        Arc::new(Payments::new(ext.payments.clone())?);
    let link = Arc::new(TemporalLink::to(
        d.temporal.connection.clone(),
        d.keys.payload.clone(),
    ));
    let mut state = state.with_temporal(link.clone());
    if let Some(shared) = &d.api.products.shared {
        let level = procure_api::cache::shared::SharedLevel::new(shared)?;
        if level.ping().await {
            tracing::info!(prefix = %shared.prefix, "product reads share a cache through Redis");
        } else {
            tracing::warn!(
                "the shared product cache (products.redis_url) does not answer yet; reads go to \
                 the database until it does"
            );
        }
        state.product_cache = state.product_cache.clone().with_shared(level);
    }
    // Schedules live in Temporal, monitors here: bring every schedule back in line on start.
    let queued = store
        .resync_schedules()
        .await
        .context("queueing price-monitor schedule syncs")?;
    if queued > 0 {
        tracing::info!(monitors = queued, "price-monitor schedules queued for sync");
    }
    match store.index_product_titles().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            products = n,
            "product titles indexed for matching suggestions"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "indexing product titles failed; the next start tries again")
        }
    }
    let dispatcher = Dispatcher {
        store,
        temporal: link,
        notify: state.outbox_notify.clone(),
        task_queue: d.temporal.task_queue.clone(),
        timings: d.timings.clone(),
        max_attempts: d.api.outbox_max_attempts,
        payments: Some(intents),
    };
    let delivery = WebhookDelivery {
        store: state.store.clone(),
        sender: Arc::new(WebhookClient::new(
            d.webhooks.request_timeout.min(Duration::from_secs(5)),
            d.webhooks.allow_internal_targets,
        )?),
        sealer: state.sealer.clone(),
        config: d.webhooks.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
    };
    let email = match &d.email {
        None => None,
        Some(channel) => {
            let mailer = SmtpMailer::new(&channel.smtp)?;
            tracing::info!(relay = mailer.relay(), "customer notifications are emailed");
            Some(EmailDelivery {
                store: state.store.clone(),
                sender: Arc::new(mailer),
                sealer: state.sealer.clone(),
                config: channel.delivery.clone(),
                wake: Arc::new(tokio::sync::Notify::new()),
            })
        }
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let dispatcher_task = {
        let stop = stopped();
        tokio::spawn(async move { dispatcher.run(stop).await })
    };
    let delivery_task = {
        let stop = stopped();
        tokio::spawn(async move { delivery.run(stop).await })
    };
    let email_task = email.map(|email| {
        let stop = stopped();
        tokio::spawn(async move { email.run(stop).await })
    });
    // The changes made while no replica ran reach the caches before the first read.
    let feed = state
        .product_cache
        .catch_up(&state.store)
        .await
        .context("reading the products changed recently")?;
    let cache_task = {
        let stop = stopped();
        let (cache, store) = (state.product_cache.clone(), state.store.clone());
        tokio::spawn(async move { cache.follow_changes(store, feed, stop).await })
    };
    let served = procure_api::serve(listener, state, shutdown).await;
    let _ = tx.send(true);
    let _ = dispatcher_task.await;
    let _ = delivery_task.await;
    if let Some(t) = email_task {
        let _ = t.await;
    }
    let _ = cache_task.await;
    Ok(served?)
}

/// The settings (and variables) behind a Temporal connection, for messages: the settings layer
/// names them when a value is wrong, [`connect_temporal`] when the server refuses.
pub mod temporal_settings {
    use procure_temporal::TemporalConnection;

    pub const CLIENT_CERT: &str = "temporal.tls.client_cert (PROCURE_TEMPORAL__TLS__CLIENT_CERT, or \
                               TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_CERT_DATA)";
    pub const CLIENT_KEY: &str = "temporal.tls.client_key (PROCURE_TEMPORAL__TLS__CLIENT_KEY or \
                              PROCURE_TEMPORAL__TLS__CLIENT_KEY_FILE, or TEMPORAL_TLS_CLIENT_KEY_PATH / \
                              TEMPORAL_TLS_CLIENT_KEY_DATA)";
    pub const SERVER_CA: &str = "temporal.tls.server_ca_cert (PROCURE_TEMPORAL__TLS__SERVER_CA_CERT, or \
                             TEMPORAL_TLS_SERVER_CA_CERT_PATH / TEMPORAL_TLS_SERVER_CA_CERT_DATA)";
    pub const API_KEY: &str = "temporal.api_key (PROCURE_TEMPORAL__API_KEY or PROCURE_TEMPORAL__API_KEY_FILE, or TEMPORAL_API_KEY)";

    /// What to check when connecting failed: the settings behind the likely cause, by the TLS or
    /// gRPC error the connection ended with.
    pub fn connect_failure_hint(connection: &TemporalConnection, error: &str) -> String {
        let e = error.to_ascii_lowercase();
        let has_client_cert = connection
            .tls
            .as_ref()
            .is_some_and(|t| t.client_cert.is_some());
        if e.contains("unknownissuer")
            || e.contains("unknown issuer")
            || e.contains("invalid peer certificate")
            || e.contains("badsignature")
        {
            format!(
                "the server's certificate is not trusted: check {SERVER_CA} and \
                 temporal.tls.server_name (PROCURE_TEMPORAL__TLS__SERVER_NAME or \
                 TEMPORAL_TLS_SERVER_NAME)"
            )
        } else if e.contains("notvalidforname") || e.contains("not valid for name") {
            "the server's certificate does not carry the address's name: set \
             temporal.tls.server_name (PROCURE_TEMPORAL__TLS__SERVER_NAME or \
             TEMPORAL_TLS_SERVER_NAME)"
                .to_owned()
        } else if e.contains("certificate required")
            || e.contains("certificaterequired")
            || e.contains("no required ssl certificate")
            || e.contains("bad certificate")
            || e.contains("badcertificate")
            || e.contains("unknown ca")
            || e.contains("unknownca")
            || (!has_client_cert && e.contains("400"))
        {
            if has_client_cert {
                format!(
                    "the server refused the client certificate: check {CLIENT_CERT} and {CLIENT_KEY}"
                )
            } else {
                format!("the server wants a client certificate: set {CLIENT_CERT} and {CLIENT_KEY}")
            }
        } else if e.contains("unauthenticated")
            || e.contains("permissiondenied")
            || e.contains("permission denied")
            || e.contains("403")
            || e.contains("401")
        {
            format!("the server refused the credentials: check {API_KEY} and the namespace")
        } else if connection.tls.is_none()
            && (e.contains("connection reset")
                || e.contains("broken pipe")
                || e.contains("h2 protocol"))
        {
            "the server may expect TLS: set temporal.tls.enabled (PROCURE_TEMPORAL__TLS__ENABLED or \
             TEMPORAL_TLS=true)"
                .to_owned()
        } else {
            UNREACHABLE.to_owned()
        }
    }

    const UNREACHABLE: &str = "check temporal.address and the network";

    /// The hint says only that the server could not be reached (no refusal of TLS or keys).
    pub fn is_unreachable(hint: &str) -> bool {
        hint == UNREACHABLE
    }
}
