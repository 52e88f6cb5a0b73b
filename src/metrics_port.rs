//! The metrics port of every process (`metrics.listen`, `PROCURE_METRICS_ADDR`):
//!
//! - `GET /metrics`: procure's own series (`procure_metrics`) followed by the Temporal SDK
//!   core's (`temporal_…`, from the core's own Prometheus exporter);
//! - `GET /health/live` and `GET /health/ready`: the same checks as the API's (the database and
//!   Temporal), so an orchestrator can probe a worker, which has no HTTP API.
//!
//! The SDK core's exporter serves only `/metrics` on a port of its own. It runs once per
//! process on a loopback port, on a thread and runtime of its own (a worker's runtime may stop
//! and start again), and the metrics port appends its text to ours on every scrape.
//!
//! A worker's runtime records the core's worker metrics (task latencies, slots, polls, sticky
//! cache); in the API, which only talks to Temporal as a client, its clients record the core's
//! request metrics (`temporal_request…`) into the same exporter.
//!
//! Levels read from the store (orders by state, the outbox, the account pool) are reported by
//! the process that runs the outbox dispatcher (the API), so many workers do not report the
//! same rows many times.

use anyhow::Context;
use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use procure_api::health::{self, HealthChecks};
use procure_store::Store;
use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};
use temporalio_common::telemetry::{
    PrometheusExporterOptions, TelemetryOptions,
    metrics::{CoreMeter, TemporalMeter},
    start_prometheus_metric_exporter, telemetry_init,
};

/// The SDK core's Prometheus exporter of this process.
pub struct SdkMetrics {
    meter: Arc<dyn CoreMeter>,
    addr: SocketAddr,
}

impl SdkMetrics {
    /// The process's exporter, started on first use.
    pub fn get() -> anyhow::Result<&'static SdkMetrics> {
        static SDK: OnceLock<Result<SdkMetrics, String>> = OnceLock::new();
        SDK.get_or_init(|| start_exporter().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("the Temporal SDK's metrics exporter: {e}"))
    }

    /// What the worker's runtime records into.
    pub fn meter(&self) -> Arc<dyn CoreMeter> {
        self.meter.clone()
    }

    /// A meter for Temporal clients (the SDK core's prefix and service label), for a process
    /// without a worker runtime to make one.
    pub fn client_meter(&self) -> anyhow::Result<TemporalMeter> {
        let telemetry = telemetry_init(TelemetryOptions::builder().metrics(self.meter()).build())?;
        telemetry
            .get_temporal_metric_meter()
            .ok_or_else(|| anyhow::anyhow!("the SDK's telemetry made no metric meter"))
    }

    /// The exporter's text, or why it could not be read.
    async fn text(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let text = http
            .get(format!("http://{}/metrics", self.addr))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(text)
    }
}

fn start_exporter() -> anyhow::Result<SdkMetrics> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sdk-metrics".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let options = PrometheusExporterOptions::builder()
                    .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .counters_total_suffix(true)
                    .unit_suffix(true)
                    .use_seconds_for_durations(true)
                    .build();
                match start_prometheus_metric_exporter(options) {
                    Ok(started) => {
                        let meter: Arc<dyn CoreMeter> = started.meter;
                        let _ = tx.send(Ok(SdkMetrics {
                            meter,
                            addr: started.bound_addr,
                        }));
                        // The exporter serves for as long as the process lives.
                        std::future::pending::<()>().await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })
        .context("starting its thread")?;
    rx.recv().context("its thread ended")?
}

/// What one metrics port serves.
#[derive(Clone)]
pub struct MetricsPort {
    /// Append the SDK core's series (a process that runs a worker).
    pub sdk: Option<&'static SdkMetrics>,
    /// Read the levels from this store on every scrape (the process running the dispatcher).
    pub levels: Option<Store>,
    pub health: HealthChecks,
    http: reqwest::Client,
}

impl MetricsPort {
    pub fn new(
        sdk: Option<&'static SdkMetrics>,
        levels: Option<Store>,
        health: HealthChecks,
    ) -> Self {
        MetricsPort {
            sdk,
            levels,
            health,
            http: reqwest::Client::new(),
        }
    }
}

/// Serve the metrics port on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    port: MetricsPort,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(port.clone())
        .merge(health::router(port.health.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Bind `addr` and serve the port in the background until `shutdown`; returns the bound
/// address. A port that cannot be bound is a start error naming the setting.
pub async fn spawn(
    addr: SocketAddr,
    port: MetricsPort,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics.listen (PROCURE_METRICS_ADDR): binding {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, port, shutdown).await {
            tracing::warn!(error = format!("{e:#}"), "the metrics port stopped");
        }
    });
    tracing::info!(addr = %bound, "metrics port listening");
    Ok(bound)
}

async fn metrics(State(port): State<MetricsPort>) -> impl IntoResponse {
    let registry = procure_metrics::global();
    let mut missing = Vec::new();
    if let Some(store) = &port.levels {
        let now = procure_domain::clock::now_ms();
        match store.levels(now).await {
            Ok(levels) => registry.set_levels(&to_metrics(&levels, now)),
            Err(e) => missing.push(format!("store levels: {e}")),
        }
    }
    let mut body = registry.render();
    if let Some(sdk) = port.sdk {
        match sdk.text(&port.http).await {
            Ok(text) => body.push_str(&text),
            Err(e) => missing.push(format!("Temporal SDK metrics: {e:#}")),
        }
    }
    if !missing.is_empty() {
        // A partial scrape still serves what it has; the gap is logged, not hidden.
        tracing::warn!(missing = missing.join("; "), "metrics scrape incomplete");
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, procure_metrics::CONTENT_TYPE)],
        body,
    )
}

/// The store's reading as gauge values: every order state is reported, zeros included, so a
/// state that empties drops to 0 instead of vanishing.
fn to_metrics(levels: &procure_store::levels::Levels, now_ms: i64) -> procure_metrics::Levels {
    let orders_by_state = procure_domain::OrderState::ALL
        .iter()
        .map(|s| {
            let n = levels
                .orders_by_state
                .iter()
                .find(|(state, _)| state == s)
                .map_or(0, |(_, n)| *n);
            (s.as_str().to_owned(), n)
        })
        .collect();
    procure_metrics::Levels {
        orders_by_state,
        outbox_backlog: levels.outbox_backlog,
        outbox_oldest_age: levels.outbox_oldest_created_ms.map_or(Duration::ZERO, |t| {
            Duration::from_millis(now_ms.saturating_sub(t).max(0) as u64)
        }),
        outbox_dead_letters: levels.outbox_dead_letters,
        buyer_accounts: levels
            .accounts
            .iter()
            .map(|a| (a.platform.clone(), a.status.as_str(), a.count))
            .collect(),
    }
}

/// Which parts of the system a process runs, and so what its metrics port reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runs {
    /// The API and the dispatcher: procure's series and the store's levels.
    Api,
    /// A worker: procure's series and the SDK core's.
    Worker,
    /// Both in one process (`procure dev`, the in-process system).
    Everything,
}

/// Start the metrics port at `listen`, if there is one, for a process that runs `runs`,
/// serving until the process ends (a worker that drains after SIGTERM stays observable).
/// Readiness reaches Temporal over `temporal` with `codec`. Returns the bound address.
pub async fn start(
    listen: Option<SocketAddr>,
    temporal: &procure_temporal::TemporalConnection,
    codec: &procure_temporal::EncryptionCodec,
    store: Store,
    runs: Runs,
) -> anyhow::Result<Option<SocketAddr>> {
    let Some(addr) = listen else {
        return Ok(None);
    };
    let sdk = SdkMetrics::get()?;
    if runs == Runs::Api {
        // No worker runtime here: the API's Temporal clients (the dispatcher's, readiness')
        // record the SDK's request metrics themselves.
        procure_temporal::record_client_metrics(sdk.client_meter()?);
    }
    let sdk = Some(sdk);
    let levels = (runs != Runs::Worker).then(|| store.clone());
    let temporal = procure_temporal::TemporalLink::to(temporal.clone(), codec.clone());
    let port = MetricsPort::new(
        sdk,
        levels,
        HealthChecks {
            store,
            temporal: Some(Arc::new(temporal)),
        },
    );
    spawn(addr, port, std::future::pending()).await.map(Some)
}
