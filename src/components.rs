//! The deployable pieces, each runnable on its own (`procure api`, `procure worker`) or all
//! together in one process (`crate::system`). Adapters are configured by [`External`]: every
//! base URL and credential, so the same code talks to the sandbox or to the real vendors.

use anyhow::Context;
use procure_activities::{
    monitor::MonitorActivitiesImpl,
    order::{OrderActivitiesImpl, demo_warehouse},
};
use procure_adapters::{
    Alibaba1688, AlibabaConfig, Carrier, CarrierConfig, EcbConfig, EcbFx, Marketplaces, Payments,
    PaymentsConfig, PddConfig, TaobaoConfig, Tracking, TrackingConfig,
};
use procure_api::{ApiConfig, AppState, OrderTimings, dispatcher::Dispatcher};
use procure_domain::{seal::Sealer, tariff::Pricing};
use procure_store::Store;
use procure_temporal::TemporalLink;
use std::{future::Future, sync::Arc};
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
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    /// Browser origins of the Temporal Web UI, allowed to call our codec endpoint.
    pub ui_origins: Vec<String>,
}

pub async fn order_activities(
    database_url: &str,
    ext: &External,
) -> anyhow::Result<OrderActivitiesImpl> {
    Ok(OrderActivitiesImpl {
        store: Store::connect(database_url)
            .await
            .context("opening the database (worker)")?,
        market: Alibaba1688::new(ext.alibaba.clone())?,
        payments: Payments::new(ext.payments.clone())?,
        carrier: Carrier::new(ext.carrier.clone())?,
        tracking: Tracking::new(ext.tracking.clone())?,
        warehouse: demo_warehouse(),
        shipping_service: "EXP".into(),
        sealer: Sealer::from_env()?,
        marketplaces: Marketplaces::new(ext.alibaba.clone(), ext.taobao.clone(), ext.pdd.clone())?,
        clients: Default::default(),
    })
}

/// The price-monitor activities: their own marketplace clients, paced at
/// `monitor_requests_per_second` per platform, beside the store, exchange rates and tariff.
pub async fn monitor_activities(
    store: Store,
    ext: &External,
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
        pricing: Pricing::default(),
    })
}

/// Run a worker until `shutdown`. The SDK's worker future is not `Send`: await it on the
/// thread that owns the runtime (the `procure worker` main task, or a dedicated thread).
pub async fn run_worker(
    database_url: &str,
    ext: &External,
    temporal: &TemporalTarget,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let activities = order_activities(database_url, ext).await?;
    let monitor = monitor_activities(activities.store.clone(), ext).await?;
    let client =
        procure_temporal::connect(&temporal.address, &temporal.namespace, "procure-worker")
            .await
            .context("connecting the worker to Temporal")?;
    let settings = procure_worker::WorkerSettings {
        task_queue: temporal.task_queue.clone(),
        ..Default::default()
    };
    procure_worker::run(client, activities, monitor, settings, shutdown).await
}

/// Serve the API and run the outbox dispatcher until `shutdown`.
pub async fn run_api(
    listener: TcpListener,
    store: Store,
    ext: &External,
    temporal: &TemporalTarget,
    timings: OrderTimings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let fx = Arc::new(EcbFx::new(ext.fx.clone())?);
    let api_cfg = ApiConfig {
        stripe_webhook_secret: ext.payments.webhook_secret.clone(),
        task_queue: temporal.task_queue.clone(),
        timings: timings.clone(),
        codec_origins: temporal.ui_origins.clone(),
        ..Default::default()
    };
    let state = AppState::new(
        store.clone(),
        fx,
        Arc::new(ext.tracking.clone()),
        api_cfg,
        Sealer::from_env()?,
        procure_temporal::codec::EncryptionCodec::from_env()?,
    )
    .with_payments(Arc::new(Payments::new(ext.payments.clone())?));
    let link = Arc::new(TemporalLink::new(
        temporal.address.clone(),
        temporal.namespace.clone(),
    ));
    let state = state.with_temporal(link.clone());
    // Schedules live in Temporal, monitors here: bring every schedule back in line on start.
    let queued = store
        .resync_schedules()
        .await
        .context("queueing price-monitor schedule syncs")?;
    if queued > 0 {
        tracing::info!(monitors = queued, "price-monitor schedules queued for sync");
    }
    let dispatcher = Dispatcher {
        store,
        temporal: link,
        notify: state.outbox_notify.clone(),
        task_queue: temporal.task_queue.clone(),
        timings,
        max_attempts: procure_api::dispatcher::max_attempts_from_env()?,
    };
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let dispatcher_task = tokio::spawn(async move {
        dispatcher
            .run(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await
    });
    let served = procure_api::serve(listener, state, shutdown).await;
    let _ = tx.send(true);
    let _ = dispatcher_task.await;
    Ok(served?)
}
