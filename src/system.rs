//! The whole system in one process: sandbox, store, API, outbox dispatcher and worker, wired
//! to a Temporal frontend. `procure dev`, `procure bench` and the end-to-end tests all start
//! exactly this, so what the demo shows is what the tests prove.

use crate::{
    components::{Deployment, TemporalTarget, run_api, run_worker},
    settings::{Process, Settings, Sources},
};
use anyhow::Context;
use procure_api::OrderTimings;
use procure_sandbox::{Sandbox, SandboxConfig};
use procure_store::{Store, catalogue::Listing};
use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

/// reqwest is built without a default TLS provider; install ring's once per process.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Clone, Debug)]
pub struct SystemConfig {
    pub database_url: String,
    pub temporal_address: String,
    pub namespace: String,
    pub task_queue: String,
    pub api_addr: SocketAddr,
    pub sandbox_addr: SocketAddr,
    pub sandbox: SandboxConfig,
    pub timings: OrderTimings,
    /// Run the worker in this process (false when workers run as separate processes).
    pub run_worker: bool,
    /// Origins of the Temporal Web UI (allowed to call the codec endpoint).
    pub ui_origins: Vec<String>,
    /// Serve the metrics port here (`/metrics` and health for the whole system); `None`: no
    /// metrics port.
    pub metrics_addr: Option<SocketAddr>,
    /// Everything else: keys, tariff, warehouse, adapter tuning, pool sizes. The fields above
    /// and the sandbox (every vendor, with its demo credentials) take precedence over it.
    pub settings: Settings,
}

impl SystemConfig {
    pub fn target(&self) -> TemporalTarget {
        TemporalTarget {
            connection: procure_temporal::TemporalConnection::plain(
                self.temporal_address.clone(),
                self.namespace.clone(),
            ),
            task_queue: self.task_queue.clone(),
            ui_origins: self.ui_origins.clone(),
        }
    }

    pub fn local(database_url: impl Into<String>, temporal_address: impl Into<String>) -> Self {
        SystemConfig {
            database_url: database_url.into(),
            temporal_address: temporal_address.into(),
            namespace: "default".into(),
            task_queue: procure_workflows::TASK_QUEUE.into(),
            api_addr: "127.0.0.1:0".parse().expect("literal"),
            sandbox_addr: "127.0.0.1:0".parse().expect("literal"),
            sandbox: SandboxConfig::default(),
            timings: OrderTimings::default(),
            run_worker: true,
            ui_origins: Vec::new(),
            metrics_addr: None,
            settings: local_settings(),
        }
    }

    /// What the components are built from: `settings` for a system whose outside world is
    /// the sandbox at `sandbox_url`.
    pub fn deployment(&self, sandbox_url: &str) -> anyhow::Result<Deployment> {
        let mut s = self.settings.clone();
        s.development = true;
        s.external_url = sandbox_url.to_owned();
        s.alibaba.base_url = None;
        s.alibaba.app_key = None;
        s.alibaba.app_secret = None;
        s.alibaba.access_token = None;
        s.taobao.base_url = None;
        s.taobao.app_key = None;
        s.taobao.app_secret = None;
        s.taobao.access_token = None;
        s.pinduoduo.base_url = None;
        s.pinduoduo.client_id = None;
        s.pinduoduo.client_secret = None;
        s.pinduoduo.access_token = None;
        s.payments.base_url = None;
        s.payments.api_key = None;
        s.payments.webhook_secret = Some(self.sandbox.stripe_webhook_secret.clone().into());
        s.tracking.base_url = None;
        s.tracking.token = None;
        s.carrier.base_url = None;
        s.carrier.api_key = None;
        s.fx.base_url = None;
        let mut d = s.deployment(Process::Api)?;
        d.database.url = self.database_url.clone();
        d.temporal = self.target();
        d.timings = self.timings.clone();
        d.metrics_listen = self.metrics_addr;
        Ok(d)
    }
}

/// The settings of an in-process system: the defaults and this process's `PROCURE_…`
/// variables (so its keys are the ones the environment names), in development.
fn local_settings() -> Settings {
    match Settings::load(&Sources::from_process_env()) {
        Ok(s) => Settings {
            development: true,
            ..s
        },
        Err(e) => panic!("{e:#}"),
    }
}

pub struct System {
    pub api_url: String,
    pub sandbox_url: String,
    /// `http://…` of the metrics port, when the system has one.
    pub metrics_url: Option<String>,
    pub store: Store,
    pub sandbox: Sandbox,
    cfg: SystemConfig,
    /// Stops the workers; they stop first, so no purchase in flight meets a stopped sandbox.
    stop_workers: watch::Sender<bool>,
    /// Stops the API, the dispatcher and the sandbox, once the workers have finished.
    shutdown: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// The SDK's worker future is not `Send`, so the worker gets a runtime of its own on a
/// dedicated thread; its store pool and HTTP clients are created there too.
///
/// The worker is supervised as a process manager would supervise `procure worker`: one that
/// fails to start (Temporal or the database not answering yet) or ends while the system runs
/// is logged as an error and started again after a backoff ([`WORKER_RESTART`], doubling to
/// [`WORKER_RESTART_MAX`]), so a system whose worker died never sits there looking healthy
/// while no workflow moves. Each start has a runtime of its own, shut down before the next: a
/// worker that failed takes its activity tasks with it, as a restarted process would, and
/// never runs beside its successor.
fn spawn_worker(
    cfg: SystemConfig,
    sandbox_url: String,
    rx: watch::Receiver<bool>,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::task::spawn_blocking(move || {
        // Stopped: told so, or the system is gone (its sender dropped).
        let stopping = |rx: &watch::Receiver<bool>| *rx.borrow() || rx.has_changed().is_err();
        let waits = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let deployment = cfg.deployment(&sandbox_url)?;
        let mut wait = WORKER_RESTART;
        for start in 1u32.. {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("procure-worker")
                .enable_all()
                .build()?;
            let outcome = rt.block_on(run_worker(&deployment, stopped(&rx)));
            rt.shutdown_timeout(Duration::from_secs(5));
            if stopping(&rx) {
                return outcome;
            }
            match outcome {
                Ok(()) => tracing::error!(
                    start,
                    retry_in_ms = wait.as_millis() as u64,
                    "the worker ended while the system runs; starting it again"
                ),
                Err(e) => tracing::error!(
                    start,
                    retry_in_ms = wait.as_millis() as u64,
                    error = format!("{e:#}"),
                    "the worker failed; starting it again"
                ),
            }
            let mut stop = rx.clone();
            let stopped_meanwhile = waits.block_on(async {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => false,
                    _ = stop.wait_for(|s| *s) => true,
                }
            });
            if stopped_meanwhile || stopping(&rx) {
                return Ok(());
            }
            wait = (wait * 2).min(WORKER_RESTART_MAX);
        }
        Ok(())
    })
}

/// The first wait before an in-process worker that failed is started again.
const WORKER_RESTART: Duration = Duration::from_millis(250);
/// The longest wait between restarts of an in-process worker.
const WORKER_RESTART_MAX: Duration = Duration::from_secs(10);

/// Copy the sandbox's demo catalogue into our listings (our sellable stock mirrors the seller's).
pub async fn seed_catalogue(store: &Store, sandbox: &Sandbox) -> anyhow::Result<usize> {
    seed_products(store, &sandbox.catalogue(), &sandbox.offers()).await
}

/// Seed catalogue products as our listings and their offers on every platform as
/// procurement candidates; returns how many products. Safe to run on every start: a listing
/// that exists keeps its stock (units held by open orders stay held), only its offer, price
/// and measures refresh.
pub async fn seed_products(
    store: &Store,
    products: &[procure_sandbox::catalogue::Product],
    offers: &[procure_sandbox::catalogue::Offer],
) -> anyhow::Result<usize> {
    for p in products {
        store
            .seed_listing(&Listing {
                sku: p.sku.clone(),
                platform: p.platform.clone(),
                offer_id: p.offer_id.clone(),
                spec_id: p.spec_id.clone(),
                title: p.title.clone(),
                price_fen: p.price_fen,
                weight_g: i64::from(p.weight_g),
                l_mm: i64::from(p.l_mm),
                w_mm: i64::from(p.w_mm),
                h_mm: i64::from(p.h_mm),
                domestic_shipping_fen: p.domestic_shipping_fen,
                available: p.amount_on_sale,
            })
            .await?;
    }
    for o in offers {
        let Some(product) = products.iter().find(|p| p.sku == o.sku) else {
            continue;
        };
        store
            .upsert_offer(&procure_store::catalogue::Offer {
                sku: o.sku.clone(),
                platform: o.platform.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
                offer_id: o.offer_id.clone(),
                spec_id: o.spec_id.clone(),
                price_fen: o.price_fen,
                domestic_shipping_fen: product.domestic_shipping_fen,
                stock: (o.platform != "pinduoduo").then_some(o.stock),
                active: true,
            })
            .await?;
    }
    Ok(products.len())
}

/// Seed listings from a running sandbox's catalogue (`GET /_sandbox/catalogue`).
pub async fn seed_from_sandbox(store: &Store, sandbox_url: &str) -> anyhow::Result<usize> {
    #[derive(serde::Deserialize)]
    struct Catalogue {
        products: Vec<procure_sandbox::catalogue::Product>,
        #[serde(default)]
        offers: Vec<procure_sandbox::catalogue::Offer>,
    }
    install_crypto_provider();
    let c: Catalogue = reqwest::get(format!("{sandbox_url}/_sandbox/catalogue"))
        .await
        .context("fetching the sandbox catalogue")?
        .error_for_status()?
        .json()
        .await?;
    seed_products(store, &c.products, &c.offers).await
}

impl System {
    /// The Temporal frontend this system talks to (`host:port`).
    pub fn temporal_address(&self) -> &str {
        &self.cfg.temporal_address
    }

    pub async fn start(cfg: SystemConfig) -> anyhow::Result<System> {
        install_crypto_provider();
        let (tx, rx) = watch::channel(false);
        let mut tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = Vec::new();

        let sandbox_listener = TcpListener::bind(cfg.sandbox_addr)
            .await
            .context("binding the sandbox port")?;
        let api_listener = TcpListener::bind(cfg.api_addr)
            .await
            .context("binding the API port")?;
        let sandbox_url = format!("http://{}", sandbox_listener.local_addr()?);
        let api_url = format!("http://{}", api_listener.local_addr()?);

        let mut sandbox_cfg = cfg.sandbox.clone();
        sandbox_cfg.payments_webhook_url = Some(format!("{api_url}/api/v1/webhooks/payments"));
        sandbox_cfg.tracking_webhook_url = Some(format!("{api_url}/api/v1/webhooks/tracking"));
        let sandbox = Sandbox::new(sandbox_cfg.clone());
        {
            let (sb, stop) = (sandbox.clone(), stopped(&rx));
            tasks.push((
                "sandbox",
                tokio::spawn(async move {
                    Ok(procure_sandbox::serve(sandbox_listener, sb, stop).await?)
                }),
            ));
        }

        let deployment = cfg.deployment(&sandbox_url)?;
        let store = deployment.database.connect().await?;
        seed_catalogue(&store, &sandbox).await?;
        let runs = if cfg.run_worker {
            crate::metrics_port::Runs::Everything
        } else {
            crate::metrics_port::Runs::Api
        };
        let metrics_url = crate::metrics_port::start(
            deployment.metrics_listen,
            &deployment.temporal.connection,
            &deployment.keys.payload,
            store.clone(),
            runs,
        )
        .await?
        .map(|a| format!("http://{a}"));
        {
            let (store, stop) = (store.clone(), stopped(&rx));
            tasks.push((
                "api",
                tokio::spawn(async move { run_api(api_listener, store, &deployment, stop).await }),
            ));
        }

        let mut system = System {
            api_url,
            sandbox_url,
            metrics_url,
            store,
            sandbox,
            cfg,
            stop_workers: watch::channel(false).0,
            shutdown: tx,
            tasks,
        };
        if system.cfg.run_worker {
            system.start_worker();
        }
        Ok(system)
    }

    /// Start the worker in this process, when `run_worker` was off; a system whose worker runs
    /// (it is supervised, so it runs until the system stops) keeps the one it has.
    pub fn start_worker(&mut self) {
        if self
            .tasks
            .iter()
            .any(|(name, task)| *name == "worker" && !task.is_finished())
        {
            tracing::warn!("the in-process worker runs already; not starting a second");
            return;
        }
        let handle = spawn_worker(
            self.cfg.clone(),
            self.sandbox_url.clone(),
            self.stop_workers.subscribe(),
        );
        self.tasks.push(("worker", handle));
    }

    /// Start one more API replica on this system's database and sandbox, with caches of its
    /// own (what a second API process behind a load balancer is); it stops with the system.
    /// Answers its base URL.
    pub async fn start_api_replica(&mut self) -> anyhow::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the replica's API port")?;
        let url = format!("http://{}", listener.local_addr()?);
        let deployment = self.cfg.deployment(&self.sandbox_url)?;
        let store = deployment.database.connect().await?;
        let stop = stopped(&self.shutdown.subscribe());
        self.tasks.push((
            "api replica",
            tokio::spawn(async move { run_api(listener, store, &deployment, stop).await }),
        ));
        wait_http_ok(&format!("{url}/health/live"), Duration::from_secs(30)).await?;
        Ok(url)
    }

    /// Stop every component and wait for each to finish: the workers first (running
    /// activities finish within their graceful period, against a sandbox still serving), then
    /// the API, the dispatcher and the sandbox.
    pub async fn stop(self) -> anyhow::Result<()> {
        let (workers, rest): (Vec<_>, Vec<_>) = self
            .tasks
            .into_iter()
            .partition(|(name, _)| *name == "worker");
        let graceful = Duration::from_secs(self.cfg.settings.worker.graceful_shutdown_s);
        let _ = self.stop_workers.send(true);
        Self::wait_for(workers, graceful + Duration::from_secs(10)).await;
        let _ = self.shutdown.send(true);
        Self::wait_for(rest, Duration::from_secs(30)).await;
        self.store.close().await;
        Ok(())
    }

    async fn wait_for(
        tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
        within: Duration,
    ) {
        for (name, task) in tasks {
            match tokio::time::timeout(within, task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(
                    component = name,
                    error = format!("{e:#}"),
                    "stopped with an error"
                ),
                Ok(Err(e)) => tracing::warn!(component = name, error = %e, "task panicked"),
                Err(_) => tracing::warn!(
                    component = name,
                    within_s = within.as_secs(),
                    "did not stop in time"
                ),
            }
        }
    }
}

/// Poll `url` until it answers 2xx, failing after `within`.
pub async fn wait_http_ok(url: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = reqwest::get(url).await
            && r.status().is_success()
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{url} did not answer within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
