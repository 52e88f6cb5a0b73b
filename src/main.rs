//! `procure`: the command line. `dev` runs the whole system on embedded defaults, `sandbox`
//! serves the stand-in outside world alone, `bench` measures throughput against a baseline.

use anyhow::Context;
use clap::{Parser, Subcommand};
use procure::telemetry::{LogFormat, LogTarget, TelemetryConfig};
use procure::{
    demo::{Driver, Script},
    devserver::{DevServer, DevServerOptions, free_port},
    settings::{Process, Settings, Sources},
    system::{System, SystemConfig, install_crypto_provider},
};
use procure_api::OrderTimings;
use procure_domain::OrderState;
use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

#[derive(Parser)]
#[command(
    name = "procure",
    version,
    about = "Durable procurement orchestrator for cross-border agent purchasing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (for people) or as one JSON object per line, with the fields of the
    /// spans they were logged in (request_id, order_id, workflow_id, trace_id, …).
    #[arg(
        long,
        global = true,
        env = "PROCURE_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: LogFormat,
    /// Export traces over OTLP/gRPC to this collector, e.g. http://127.0.0.1:4317 (none by
    /// default: without it nothing is traced).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (default: procure-<command>).
    #[arg(long, global = true, env = "OTEL_SERVICE_NAME")]
    service_name: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally: Temporal dev server (SQLite file), sandbox, API and worker.
    Dev(DevArgs),
    /// Serve the sandbox marketplaces, payment provider, carrier, tracking and FX feed.
    Sandbox {
        /// Where to listen, host:port (default 127.0.0.1:8790; in a container 0.0.0.0:8790).
        #[arg(long, conflicts_with = "port")]
        listen: Option<SocketAddr>,
        /// Shorthand for `--listen 127.0.0.1:PORT`.
        #[arg(long)]
        port: Option<u16>,
        /// Where the payment provider posts `payment_intent.succeeded` (the API's
        /// `/api/v1/webhooks/payments`); also settable with `PUT /_sandbox/webhooks`.
        #[arg(long, value_parser = http_url)]
        payments_webhook: Option<String>,
        /// Where 17TRACK pushes tracking updates (the API's `/api/v1/webhooks/tracking`).
        #[arg(long, value_parser = http_url)]
        tracking_webhook: Option<String>,
    },
    /// Serve the API and run the outbox dispatcher (one of several processes in production).
    Api {
        /// `api.listen` (default 127.0.0.1:8080; `PROCURE_API_ADDR`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Copy the sandbox's demo catalogue into the listings at start (demo setups only);
        /// listings that exist keep their stock, so a restart never frees held units.
        /// `api.seed_sandbox_catalogue` (`PROCURE_SEED_SANDBOX_CATALOGUE`).
        #[arg(long)]
        seed_sandbox_catalogue: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Run a worker: workflows and activities on the task queue (run as many as you like).
    Worker {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Exit 0 when `url` answers 2xx within 5 s, else 1: a container's health check (the image
    /// has no curl), e.g. `procure probe http://127.0.0.1:8080/health/live`.
    Probe { url: String },
    /// Measure the system in its production shape (dev server, sandbox, API, worker as
    /// separate processes on loopback), phase by phase: intake (open-loop order intake),
    /// burst (5,000 orders at once), steady (the full flow at a fixed rate, against a
    /// bare-workflow baseline), memory (worker RSS against orders in flight). Each phase
    /// writes <out>/<phase>.json, and the summary beside them is rebuilt from every phase file.
    Bench(BenchArgs),
    /// The bench's driver process (started by `procure bench`): places orders and plays
    /// customers, warehouse and purchaser by reacting to the order lists; stops when its
    /// standard input closes.
    #[command(hide = true)]
    BenchDriver(BenchDriverArgs),
    /// Worked example: two-order parcels to two destinations, from quote to actual charges and
    /// refunds (runs everything in-process on loopback, then stops).
    ExampleParcels {
        #[arg(long, default_value = "bench/results/parcel-example.md")]
        out: PathBuf,
    },
    /// Print a bearer token for a role, signed with `api.jwt_secret` (PROCURE_JWT_SECRET; the
    /// development key only with PROCURE_DEVELOPMENT=true): for operators' scripts, the fuzzer
    /// and trying the API by hand.
    Token {
        /// customer, operator, warehouse, purchaser, admin, or codec (decodes payloads only).
        #[arg(long)]
        role: String,
        /// For a customer token: the customer it acts for.
        #[arg(long)]
        customer: Option<String>,
        #[arg(long, default_value = "cli")]
        subject: String,
        #[arg(long, default_value_t = 3600)]
        ttl_s: i64,
    },
    /// Nothing lost, nothing doubled: N orders while workers are SIGKILLed, the API restarted
    /// and the Temporal dev server restarted, with sandbox faults on; checks and prints the
    /// invariants, exits non-zero if one fails (bounded, loopback only).
    Chaos {
        #[arg(long, default_value_t = 300)]
        orders: usize,
        /// Seeds the kill timing and choice of worker (default: from the clock).
        #[arg(long)]
        seed: Option<u64>,
        /// Seconds between worker kills, drawn from MIN..MAX.
        #[arg(long, default_value_t = 3)]
        kill_min_s: u64,
        #[arg(long, default_value_t = 8)]
        kill_max_s: u64,
        /// Give up on orders still moving after this many seconds.
        #[arg(long, default_value_t = 900)]
        deadline_s: u64,
        /// Orders an operator sends malformed Updates and signals (and valid ones) to.
        #[arg(long, default_value_t = 3)]
        operator_orders: usize,
        /// Orders that get a signed webhook with a wrong amount, then a replayed delivery.
        #[arg(long, default_value_t = 3)]
        forged_payments: usize,
        /// Orders the customer asks to cancel at a random stage.
        #[arg(long, default_value_t = 3)]
        customer_cancels: usize,
        /// Operators and customers act within this many seconds of the orders being placed.
        #[arg(long, default_value_t = 15)]
        act_within_s: u64,
        #[arg(long, default_value = "bench/results/chaos.md")]
        out: PathBuf,
    },
    /// Worked example: a price monitor as a Temporal Schedule, its price history before and
    /// after a sandbox price change, alerts and the re-ranked channel (in-process, stops).
    ExampleMonitor {
        #[arg(long, default_value = "bench/results/monitor-example.md")]
        out: PathBuf,
    },
}

/// Flags of the long-running processes. Each overrides its key of the settings tree
/// (`procure.example.toml` documents every key, `PROCURE_…` variables set them too);
/// credentials come only from the environment, never from a command line.
#[derive(clap::Args)]
struct CommonArgs {
    /// Settings file (TOML, keys as in procure.example.toml); also `PROCURE_CONFIG`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// `database.url` (default sqlite://.procure/procure.db).
    #[arg(long)]
    database_url: Option<String>,
    /// `temporal.address`.
    #[arg(long)]
    temporal_address: Option<String>,
    /// `temporal.namespace`.
    #[arg(long)]
    namespace: Option<String>,
    /// `temporal.task_queue`.
    #[arg(long)]
    task_queue: Option<String>,
    /// Base URL of every external system unless overridden below (default: the sandbox).
    #[arg(long)]
    external_url: Option<String>,
    #[arg(long)]
    alibaba_url: Option<String>,
    #[arg(long)]
    taobao_url: Option<String>,
    #[arg(long)]
    pinduoduo_url: Option<String>,
    #[arg(long)]
    payments_url: Option<String>,
    #[arg(long)]
    tracking_url: Option<String>,
    #[arg(long)]
    carrier_url: Option<String>,
    #[arg(long)]
    fx_url: Option<String>,
    /// Seconds a customer has to pay before the reservation is released.
    #[arg(long)]
    payment_timeout_s: Option<u64>,
    #[arg(long)]
    tracking_poll_s: Option<u64>,
    /// Seconds a purchaser has to buy an assisted (Pinduoduo) line before it escalates.
    #[arg(long)]
    purchaser_deadline_s: Option<u64>,
    /// Seconds a customer has to answer a price change before the order is cancelled.
    #[arg(long)]
    price_change_deadline_s: Option<u64>,
    /// Days goods are stored for free, days before the end the customer is reminded, and days
    /// of grace after it before unclaimed goods are disposed.
    #[arg(long)]
    storage_free_days: Option<u64>,
    #[arg(long)]
    storage_reminder_days: Option<u64>,
    #[arg(long)]
    storage_grace_days: Option<u64>,
    /// Origins of the Temporal Web UI allowed to call the codec endpoint (comma-separated).
    #[arg(long)]
    ui_origins: Option<String>,
    /// Shortest period a price monitor's cron may have, in seconds.
    #[arg(long)]
    monitor_min_period_s: Option<u64>,
    /// Price-monitor lookups per second on each marketplace.
    #[arg(long)]
    monitor_rps: Option<u32>,
}

impl CommonArgs {
    /// The settings file, this process's environment, and the flags given.
    fn sources(&self) -> Sources {
        let mut s = Sources::from_process_env();
        s.file = self.config.clone();
        let strings = [
            ("database.url", &self.database_url),
            ("temporal.address", &self.temporal_address),
            ("temporal.namespace", &self.namespace),
            ("temporal.task_queue", &self.task_queue),
            ("temporal.ui_origins", &self.ui_origins),
            ("external_url", &self.external_url),
            ("alibaba.base_url", &self.alibaba_url),
            ("taobao.base_url", &self.taobao_url),
            ("pinduoduo.base_url", &self.pinduoduo_url),
            ("payments.base_url", &self.payments_url),
            ("tracking.base_url", &self.tracking_url),
            ("carrier.base_url", &self.carrier_url),
            ("fx.base_url", &self.fx_url),
        ];
        for (key, v) in strings {
            if let Some(v) = v {
                s.flag(key, v.as_str());
            }
        }
        let numbers = [
            ("timings.payment_timeout_s", self.payment_timeout_s),
            ("timings.tracking_poll_s", self.tracking_poll_s),
            ("timings.purchaser_deadline_s", self.purchaser_deadline_s),
            (
                "timings.price_change_deadline_s",
                self.price_change_deadline_s,
            ),
            ("timings.storage_free_days", self.storage_free_days),
            ("timings.storage_reminder_days", self.storage_reminder_days),
            ("timings.storage_grace_days", self.storage_grace_days),
            ("timings.monitor_min_period_s", self.monitor_min_period_s),
        ];
        for (key, v) in numbers {
            if let Some(v) = v {
                s.flag(key, v);
            }
        }
        if let Some(v) = self.monitor_rps {
            s.flag("monitors.requests_per_second", v);
        }
        s
    }
}

#[derive(clap::Args)]
struct DevArgs {
    /// Place this many demo orders through the public API and follow them live.
    #[arg(long, default_value_t = 0)]
    demo_orders: usize,
    /// Exit once the demo orders are done: status 0 only if all reached Completed.
    #[arg(long)]
    exit_when_done: bool,
    /// Where the SQLite files and logs live (`procure.log`, `temporal.log`).
    #[arg(long, default_value = ".procure")]
    data_dir: PathBuf,
    /// Log to the terminal (stderr) instead of `<data-dir>/procure.log`, interleaved with the
    /// progress view.
    #[arg(long)]
    logs_to_terminal: bool,
    #[arg(long, default_value_t = 8080)]
    api_port: u16,
    #[arg(long, default_value_t = 8790)]
    sandbox_port: u16,
    #[arg(long, default_value_t = 7233)]
    temporal_port: u16,
    #[arg(long, default_value_t = 8233)]
    ui_port: u16,
    /// The metrics port (`/metrics`, `/health/ready`) of the whole system.
    #[arg(long, default_value_t = 9464)]
    metrics_port: u16,
}

/// The logs and traces of this run of `command`: the log level unless `RUST_LOG` says
/// otherwise, where the lines go, and the OTLP endpoint when one is given.
fn telemetry_config(cli: &Cli) -> Option<TelemetryConfig> {
    let (name, default_filter, target) = match &cli.command {
        Command::Dev(a) => (
            "dev",
            "warn,procure=info",
            if a.logs_to_terminal {
                LogTarget::Stderr
            } else {
                LogTarget::File(a.data_dir.join(DEV_LOG_FILE))
            },
        ),
        Command::Sandbox { .. } => ("sandbox", "info", LogTarget::Stderr),
        Command::Api { .. } => ("api", "info", LogTarget::Stderr),
        Command::Worker { .. } => ("worker", "info", LogTarget::Stderr),
        Command::Bench(_) => ("bench", "warn", LogTarget::Stderr),
        Command::BenchDriver(_) => ("bench-driver", "warn", LogTarget::Stderr),
        Command::Chaos { .. } => ("chaos", "warn", LogTarget::Stderr),
        Command::ExampleParcels { .. } => ("example-parcels", "warn", LogTarget::Stderr),
        Command::ExampleMonitor { .. } => ("example-monitor", "warn", LogTarget::Stderr),
        Command::Probe { .. } | Command::Token { .. } => return None,
    };
    Some(TelemetryConfig {
        format: cli.log_format,
        default_filter: default_filter.to_owned(),
        filter: std::env::var("RUST_LOG").ok(),
        target,
        otlp_endpoint: cli.otlp_endpoint.clone().filter(|e| !e.trim().is_empty()),
        service_name: cli
            .service_name
            .clone()
            .unwrap_or_else(|| format!("procure-{name}")),
    })
}

/// `procure dev`'s log file in its data directory: the terminal keeps the progress view.
const DEV_LOG_FILE: &str = "procure.log";

/// The requested port, or a free one when it is taken (printed, so nobody has to guess).
fn port_or_free(p: u16) -> u16 {
    if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
        p
    } else {
        free_port()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    install_crypto_provider();
    let cli = Cli::parse();
    let config = telemetry_config(&cli);
    // Why a run failed is printed on the terminal, and logged where the logs go unless they
    // are that terminal's text: JSON on stderr stays one object per line (logged, not
    // printed), `procure dev`'s log file gets it as well as the terminal.
    let (log_error, print_error) = match &config {
        None => (false, true),
        Some(c) => match (&c.target, c.format) {
            (LogTarget::Stderr, LogFormat::Json) => (true, false),
            (LogTarget::Stderr, LogFormat::Text) => (false, true),
            (LogTarget::File(_), _) => (true, true),
        },
    };
    let telemetry = match config.as_ref().map(procure::telemetry::init) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Sandbox {
            listen,
            port,
            payments_webhook,
            tracking_webhook,
        } => {
            let listen =
                listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(8790))));
            sandbox(listen, payments_webhook, tracking_webhook).await
        }
        Command::Probe { url } => probe(&url).await,
        Command::Bench(args) => bench(args).await,
        Command::BenchDriver(args) => bench_driver(args).await,
        Command::ExampleParcels { out } => example_parcels(out).await,
        Command::ExampleMonitor { out } => example_monitor(out).await,
        Command::Token {
            role,
            customer,
            subject,
            ttl_s,
        } => token(&role, customer.as_deref(), &subject, ttl_s),
        Command::Chaos {
            orders,
            seed,
            kill_min_s,
            kill_max_s,
            deadline_s,
            operator_orders,
            forged_payments,
            customer_cancels,
            act_within_s,
            out,
        } => {
            let actions = procure::chaos::Actions {
                operator_orders,
                forged_payments,
                customer_cancels,
                act_within: Duration::from_secs(act_within_s),
            };
            chaos(
                orders,
                seed,
                (kill_min_s, kill_max_s),
                deadline_s,
                actions,
                out,
            )
            .await
        }
        Command::Api {
            listen,
            seed_sandbox_catalogue,
            common,
        } => api(listen, seed_sandbox_catalogue, common).await,
        Command::Worker { common } => worker(common).await,
    };
    if let Err(e) = &result
        && log_error
    {
        tracing::error!(error = format!("{e:#}"), "stopped by an error");
    }
    if let Some(t) = telemetry {
        t.shutdown();
    }
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            if print_error {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (what an orchestrator sends before it kills a
/// process): the API then stops accepting and finishes its requests, a worker stops polling and
/// lets its running tasks finish.
async fn stop_signal() {
    let name = terminated().await;
    tracing::info!(signal = name, "stopping");
}

#[cfg(unix)]
async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

#[cfg(not(unix))]
async fn terminated() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "Ctrl-C"
}

/// The settings of a process, checked for it: a missing secret fails the start here.
fn deployment(
    sources: Sources,
    process: Process,
) -> anyhow::Result<(Settings, procure::components::Deployment)> {
    let settings = Settings::load(&sources)?;
    let name = match process {
        Process::Api => "procure api",
        Process::Worker => "procure worker",
        Process::Token => "procure token",
    };
    let deployment = settings
        .deployment(process)
        .with_context(|| format!("{name}: the settings are incomplete"))?;
    Ok((settings, deployment))
}

async fn api(listen: Option<SocketAddr>, seed: bool, common: CommonArgs) -> anyhow::Result<bool> {
    let mut sources = common.sources();
    if let Some(listen) = listen {
        sources.flag("api.listen", listen.to_string());
    }
    if seed {
        sources.flag("api.seed_sandbox_catalogue", true);
    }
    let (settings, d) = deployment(sources, Process::Api)?;
    let store = d.database.connect().await?;
    if settings.api.seed_sandbox_catalogue {
        let n = procure::system::seed_from_sandbox(&store, &settings.external_url).await?;
        tracing::info!(listings = n, "seeded the sandbox catalogue");
    }
    let listen = settings.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    procure::components::check_temporal_at_start(&d.temporal.connection, &d.keys.payload)
        .await
        .context("procure api: connecting to Temporal")?;
    procure::metrics_port::start(
        d.metrics_listen,
        &d.temporal.connection,
        &d.keys.payload,
        store.clone(),
        procure::metrics_port::Runs::Api,
    )
    .await?;
    tracing::info!(addr = %listener.local_addr()?, temporal = %d.temporal.connection.describe(), "API listening");
    procure::components::run_api(listener, store, &d, stop_signal()).await?;
    Ok(true)
}

async fn worker(common: CommonArgs) -> anyhow::Result<bool> {
    let (_, d) = deployment(common.sources(), Process::Worker)?;
    if d.metrics_listen.is_some() {
        let store = d.database.connect().await.context("procure worker")?;
        procure::metrics_port::start(
            d.metrics_listen,
            &d.temporal.connection,
            &d.keys.payload,
            store,
            procure::metrics_port::Runs::Worker,
        )
        .await?;
    }
    procure::components::run_worker(&d, stop_signal()).await?;
    Ok(true)
}

async fn probe(url: &str) -> anyhow::Result<bool> {
    install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    match client.get(url).send().await {
        Ok(r) if r.status().is_success() => Ok(true),
        Ok(r) => {
            eprintln!("probe: {url} answered {}", r.status());
            Ok(false)
        }
        Err(e) => {
            eprintln!("probe: {url}: {e}");
            Ok(false)
        }
    }
}

async fn sandbox(
    listen: SocketAddr,
    payments_webhook: Option<String>,
    tracking_webhook: Option<String>,
) -> anyhow::Result<bool> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the sandbox to {listen}"))?;
    println!("sandbox listening on http://{}", listener.local_addr()?);
    let sb = procure_sandbox::Sandbox::new(procure_sandbox::SandboxConfig {
        payments_webhook_url: payments_webhook,
        tracking_webhook_url: tracking_webhook,
        ..procure_sandbox::SandboxConfig::default()
    });
    procure_sandbox::serve(listener, sb, stop_signal()).await?;
    Ok(true)
}

/// A webhook target given on the command line: an http(s) URL.
fn http_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() => Ok(s.to_owned()),
        _ => Err(format!("{s:?} is not an http(s) URL")),
    }
}

async fn start_temporal(
    data_dir: &std::path::Path,
    port: Option<u16>,
    ui_port: Option<u16>,
    ui: bool,
) -> anyhow::Result<DevServer> {
    start_temporal_with_codec(data_dir, port, ui_port, ui, None).await
}

/// As `start_temporal`, with the Web UI decoding payloads through `ui_codec_endpoint`.
async fn start_temporal_with_codec(
    data_dir: &std::path::Path,
    port: Option<u16>,
    ui_port: Option<u16>,
    ui: bool,
    ui_codec_endpoint: Option<String>,
) -> anyhow::Result<DevServer> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    println!(
        "starting Temporal dev server (SQLite file {}, WAL) …",
        data_dir.join("temporal.db").display()
    );
    DevServer::start(DevServerOptions {
        db_file: Some(data_dir.join("temporal.db")),
        port,
        ui_port,
        ui,
        namespace: "default".into(),
        search_attributes: vec![(
            procure_workflows::ORDER_STATE_ATTRIBUTE.into(),
            "Keyword".into(),
        )],
        log_file: Some(data_dir.join("temporal.log")),
        ui_codec_endpoint,
    })
    .await
}

async fn dev(args: DevArgs) -> anyhow::Result<bool> {
    let started = Instant::now();
    let (api_port, ui_port) = (port_or_free(args.api_port), port_or_free(args.ui_port));
    // The settings of a development system: the defaults and the environment (its keys).
    let settings = Settings {
        development: true,
        ..Settings::load(&Sources::from_process_env())?
    };
    // Demo tokens, one per person's role, signed with the API's key. The UI gets none of them:
    // it decodes payloads through a loopback relay holding a short-lived codec token.
    let tokens = settings.deployment(Process::Api)?.keys.tokens;
    let now_s = procure_domain::clock::now_ms() / 1000;
    let demo_tokens: Vec<(String, String)> = procure_api::auth::Role::ALL
        .iter()
        .filter(|&&role| role != procure_api::auth::Role::Codec)
        .map(|&role| {
            let customer = (role == procure_api::auth::Role::Customer).then_some("cust-0");
            let who = format!("demo-{}", role.as_str());
            (
                match customer {
                    Some(c) => format!("{} ({c})", role.as_str()),
                    None => role.as_str().to_owned(),
                },
                tokens.issue(&who, role, customer, now_s, 7 * 24 * 3600),
            )
        })
        .collect();
    let relay = {
        let key = tokens.clone();
        procure::devserver::CodecRelay::start(
            tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .context("binding the UI codec relay")?,
            &format!("http://127.0.0.1:{api_port}"),
            ui_origins(ui_port),
            move || procure::devserver::ui_codec_token(&key),
            Duration::from_secs(procure::devserver::CODEC_TTL_S as u64 / 3),
        )
        .await?
    };
    let temporal = start_temporal_with_codec(
        &args.data_dir,
        Some(port_or_free(args.temporal_port)),
        Some(ui_port),
        true,
        Some(relay.url().to_owned()),
    )
    .await?;
    let db = args.data_dir.join("procure.db");
    let mut cfg = SystemConfig::local(format!("sqlite://{}", db.display()), temporal.address());
    cfg.settings = settings;
    cfg.ui_origins = ui_origins(ui_port);
    cfg.api_addr = SocketAddr::from(([127, 0, 0, 1], api_port));
    cfg.sandbox_addr = SocketAddr::from(([127, 0, 0, 1], port_or_free(args.sandbox_port)));
    cfg.metrics_addr = Some(SocketAddr::from((
        [127, 0, 0, 1],
        port_or_free(args.metrics_port),
    )));
    cfg.sandbox.tracking_step_ms = 400;
    cfg.timings = OrderTimings {
        payment_timeout: Duration::from_secs(600),
        inbound_timeout: Duration::from_secs(3600),
        tracking_poll: Duration::from_secs(1),
        purchaser_deadline: Duration::from_secs(600),
        price_change_deadline: Duration::from_secs(600),
        seller_ship_poll: Duration::from_secs(1),
        seller_ship_deadline: Duration::from_secs(600),
        ..OrderTimings::default()
    };
    let system = match System::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            let _ = temporal.stop().await;
            relay.stop().await;
            return Err(e);
        }
    };
    println!();
    println!(
        "  procure is running ({:.1} s to start)",
        started.elapsed().as_secs_f64()
    );
    println!("  API          {}/api/v1/orders", system.api_url);
    println!("  Temporal UI  {}", temporal.ui_url().unwrap_or_default());
    println!(
        "  Temporal     {} (namespace default, task queue {})",
        temporal.address(),
        procure_workflows::TASK_QUEUE
    );
    println!("  Sandbox      {}/_sandbox/ledger", system.sandbox_url);
    if let Some(url) = &system.metrics_url {
        println!("  Metrics      {url}/metrics (health: {url}/health/ready)");
    }
    println!("  Database     sqlite://{}", db.display());
    if args.logs_to_terminal {
        println!(
            "  Logs         here (stderr); Temporal's in {}",
            args.data_dir.join("temporal.log").display()
        );
    } else {
        println!(
            "  Logs         {} (Temporal's: {}; --logs-to-terminal shows them here)",
            args.data_dir.join(DEV_LOG_FILE).display(),
            args.data_dir.join("temporal.log").display()
        );
    }
    println!("  Payloads     encrypted in Temporal (AES-256-GCM); the UI decodes them through");
    println!(
        "               {} (loopback relay to {}/api/codec/decode with a",
        relay.url(),
        system.api_url
    );
    println!("               decode-only codec token, renewed every 20 minutes)");
    println!("  Demo tokens  (Authorization: Bearer …, valid 7 days)");
    for (role, token) in &demo_tokens {
        println!("    {role:<18} {token}");
    }
    println!();
    let driver = Driver::new(system.api_url.clone(), system.sandbox_url.clone())
        .with_token_key(tokens.clone());
    if let Err(e) = demo_monitor(&driver).await {
        println!("  price monitor demo failed: {e:#}\n");
    }

    let ok;
    let demo = async {
        if args.demo_orders == 0 {
            return anyhow::Ok(true);
        }
        run_demo(&driver, args.demo_orders).await
    };
    tokio::select! {
        r = demo => {
            ok = r?;
            if !args.exit_when_done {
                println!("demo done; press Ctrl-C to stop");
                terminated().await;
            }
        }
        name = terminated() => { println!("\n{name}: stopping"); ok = args.demo_orders == 0; }
    }
    println!("stopping API, worker and sandbox …");
    system.stop().await?;
    println!("stopping Temporal dev server …");
    temporal.stop().await?;
    relay.stop().await;
    println!("stopped.");
    Ok(ok)
}

/// The browser origins of the Web UI on `ui_port`.
fn ui_origins(ui_port: u16) -> Vec<String> {
    vec![
        format!("http://127.0.0.1:{ui_port}"),
        format!("http://localhost:{ui_port}"),
    ]
}

/// The demo price monitor: a Temporal Schedule over every demo product; one run now, shown.
async fn demo_monitor(driver: &Driver) -> anyhow::Result<()> {
    let m = driver.ensure_demo_monitor().await?;
    let id = m["monitor_id"].as_str().unwrap_or_default();
    println!(
        "  Price monitor {id} \"{}\": cron {} → Temporal schedule {} (UI: Schedules)",
        m["name"].as_str().unwrap_or_default(),
        m["cron"].as_str().unwrap_or_default(),
        m["schedule"]["schedule_id"].as_str().unwrap_or_default()
    );
    println!("  running it once now …");
    let run = driver.run_monitor(id, Duration::from_secs(60)).await?;
    println!(
        "  priced {} offer(s): {} listed, {} gone, {} failed; {} price change(s), {} alert(s)",
        run["offers"],
        run["listed"],
        run["gone"],
        run["failed"],
        run["price_changes"],
        run["alerts"].as_array().map_or(0, Vec::len)
    );
    for line in run["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(run["ranking"].as_array().into_iter().flatten())
    {
        println!("    {}", line.as_str().unwrap_or_default());
    }
    println!("  price history: GET /api/v1/products/{{sku}}/prices\n");
    Ok(())
}

async fn run_demo(driver: &Driver, n: usize) -> anyhow::Result<bool> {
    let catalogue = driver.catalogue().await?;
    println!("placing {n} demo order(s) through the public API …");
    let mut placed = Vec::new();
    for i in 0..n {
        let o = driver.place_demo_order(i, &catalogue).await?;
        let id = o["id"].as_str().unwrap_or_default().to_owned();
        println!("  placed {id}  total {}", procure::demo::display_total(&o));
        placed.push((id, Instant::now()));
    }
    println!();
    let outcomes = driver
        .drive(
            placed,
            Script::HappyPath,
            Duration::from_secs(300),
            |id, state, reason, t| {
                println!(
                    "[{:>6.1}s] {id}  {:<15} {reason}",
                    t.as_secs_f64(),
                    state.as_str()
                );
            },
        )
        .await?;
    println!();
    println!(
        "{:<40} {:<12} {:>14} {:>9}",
        "order", "state", "total", "elapsed"
    );
    for o in &outcomes {
        println!(
            "{:<40} {:<12} {:>14} {:>8.1}s",
            o.order_id,
            o.state.as_str(),
            o.total,
            o.elapsed.as_secs_f64()
        );
    }
    let completed = outcomes
        .iter()
        .filter(|o| o.state == OrderState::Completed)
        .count();
    println!("\n{completed}/{n} orders Completed");
    let ledger = driver.ledger().await?;
    let count = |k: &str| ledger.iter().filter(|e| e.kind == k).count();
    println!(
        "sandbox ledger: {} purchase(s), {} marketplace payment(s), {} charge(s), {} refund(s), {} shipment(s)",
        count("purchase"),
        count("marketplace_payment"),
        count("charge"),
        count("refund"),
        count("shipment")
    );
    Ok(completed == n)
}

/// A throwaway system for a worked example: dev server, SQLite file, sandbox, API and worker,
/// all on loopback under the temp directory.
async fn example_system(name: &str) -> anyhow::Result<(DevServer, System, Driver)> {
    let dir = std::env::temp_dir().join(format!("procure-{name}-{}", std::process::id()));
    let temporal = start_temporal(&dir, None, None, false).await?;
    let mut cfg = SystemConfig::local(
        format!("sqlite://{}", dir.join("procure.db").display()),
        temporal.address(),
    );
    cfg.sandbox.tracking_step_ms = 200;
    cfg.timings = OrderTimings {
        tracking_poll: Duration::from_secs(1),
        ..OrderTimings::default()
    };
    let system = System::start(cfg).await?;
    let driver = Driver::new(system.api_url.clone(), system.sandbox_url.clone());
    Ok((temporal, system, driver))
}

fn write_report(out: &std::path::Path, report: &str) -> anyhow::Result<()> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, report)?;
    println!("written to {}", out.display());
    Ok(())
}

async fn example_parcels(out: PathBuf) -> anyhow::Result<bool> {
    let (temporal, system, driver) = example_system("example").await?;
    let mut report = String::from(
        "## Worked example: two-order parcels to two destinations\n\n\
         Produced by `procure example-parcels` against the sandbox. Each quote estimates \
         international shipping, duty and insurance; packing prices the consolidated parcel and \
         settles each order against its estimate (standard: charge or refund; guaranteed: never \
         more than quoted).\n\n",
    );
    let mut ok = true;
    for s in &procure::example::SCENARIOS {
        println!(
            "{} → {}: ordering, buying, storing, consolidating …",
            s.customer, s.country
        );
        match procure::example::run_scenario(&driver, s).await {
            Ok(section) => {
                println!("{section}");
                report.push_str(&section);
            }
            Err(e) => {
                eprintln!("{} → {} failed: {e:#}", s.customer, s.country);
                ok = false;
            }
        }
    }
    write_report(&out, &report)?;
    system.stop().await?;
    temporal.stop().await?;
    Ok(ok)
}

fn token(role: &str, customer: Option<&str>, subject: &str, ttl_s: i64) -> anyhow::Result<bool> {
    let role = procure_api::auth::Role::ALL
        .into_iter()
        .find(|r| r.as_str() == role)
        .with_context(|| format!("unknown role {role:?}"))?;
    anyhow::ensure!(
        role != procure_api::auth::Role::Customer || customer.is_some(),
        "a customer token needs --customer"
    );
    anyhow::ensure!(
        (1..=30 * 24 * 3600).contains(&ttl_s),
        "--ttl-s must be 1 s to 30 days"
    );
    let (_, d) = deployment(Sources::from_process_env(), Process::Token)?;
    let now = procure_domain::clock::now_ms() / 1000;
    println!(
        "{}",
        d.keys.tokens.issue(subject, role, customer, now, ttl_s)
    );
    Ok(true)
}

async fn chaos(
    orders: usize,
    seed: Option<u64>,
    (kill_min_s, kill_max_s): (u64, u64),
    deadline_s: u64,
    actions: procure::chaos::Actions,
    out: PathBuf,
) -> anyhow::Result<bool> {
    let seed = seed.unwrap_or_else(|| procure_domain::clock::now_ms() as u64);
    let dir = std::env::temp_dir().join(format!("procure-chaos-{}", std::process::id()));
    println!(
        "chaos: {orders} orders, seed {seed}, data in {}",
        dir.display()
    );
    let report = procure::chaos::run(procure::chaos::ChaosConfig {
        orders,
        seed,
        procure_bin: std::env::current_exe()?,
        dir,
        kill_every: (
            Duration::from_secs(kill_min_s.max(1)),
            Duration::from_secs(kill_max_s.max(kill_min_s.max(1) + 1)),
        ),
        deadline: Duration::from_secs(deadline_s),
        actions,
    })
    .await?;
    let md = format!(
        "## Chaos run\n\n`procure chaos --orders {orders} --seed {seed}`\n\n{}",
        report.markdown()
    );
    println!("{md}");
    write_report(&out, &md)?;
    Ok(report.ok())
}

async fn example_monitor(out: PathBuf) -> anyhow::Result<bool> {
    let (temporal, system, driver) = example_system("example-monitor").await?;
    println!("creating a price monitor, running it, changing sandbox prices, running it again …");
    let result = procure::example_monitor::run(&driver, &temporal.address()).await;
    let ok = match result {
        Ok(report) => {
            println!("{report}");
            write_report(&out, &report)?;
            true
        }
        Err(e) => {
            eprintln!("price monitor example failed: {e:#}");
            false
        }
    };
    system.stop().await?;
    temporal.stop().await?;
    Ok(ok)
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Phases to run, in order (default: all): intake, burst, steady, memory, products.
    phases: Vec<procure::bench::Phase>,
    /// Where the phase files and the summary go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Run on PostgreSQL: postgres://user@host:port/name; each phase gets a fresh database
    /// named after it on that server (dropped after). Default: a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// `RUST_LOG` of the system's processes (their logs go to files in the run directory).
    #[arg(long, default_value = "info")]
    system_log: String,
    /// Offered rates of the intake sweep, orders/s (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,3000")]
    intake_rates: Vec<u32>,
    /// Seconds per intake rate.
    #[arg(long, default_value_t = 30)]
    intake_seconds: u64,
    /// Requests in flight at most (connections) during intake.
    #[arg(long, default_value_t = 256)]
    intake_connections: usize,
    #[arg(long, default_value_t = 5000)]
    burst_orders: usize,
    /// New orders per second placed while the burst drains.
    #[arg(long, default_value_t = 5.0)]
    burst_trickle: f64,
    /// Steady rate, orders/s, and for how long.
    #[arg(long, default_value_t = 10.0)]
    steady_rate: f64,
    #[arg(long, default_value_t = 60)]
    steady_seconds: u64,
    /// Orders placed at once for P1's capacity, against as many bare workflows (0: skip).
    #[arg(long, default_value_t = 200)]
    capacity_orders: usize,
    /// Orders in flight at which the worker's RSS is sampled (comma-separated, rising).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    memory_levels: Vec<usize>,
    /// `worker.max_cached_workflows` for the memory phase (default: the settings' value).
    #[arg(long)]
    memory_cache: Option<usize>,
    /// Products the products phase imports before the reads.
    #[arg(long, default_value_t = 300)]
    products_imports: usize,
    /// Seconds of each measured `wrk` run of the products phase, and its threads and
    /// connections.
    #[arg(long, default_value_t = 15)]
    products_seconds: u64,
    #[arg(long, default_value_t = 2)]
    products_wrk_threads: u32,
    #[arg(long, default_value_t = 64)]
    products_wrk_connections: u32,
    /// The longest a phase waits for its orders, in seconds.
    #[arg(long, default_value_t = 900)]
    deadline_s: u64,
    /// Run no phase; rebuild the summary from the phase files present.
    #[arg(long)]
    summary_only: bool,
}

async fn bench(a: BenchArgs) -> anyhow::Result<bool> {
    let phases = if a.phases.is_empty() {
        procure::bench::Phase::ALL.to_vec()
    } else {
        a.phases.clone()
    };
    let database = match &a.database_url {
        None => procure::bench::system::Database::Sqlite,
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
            procure::bench::system::Database::Postgres(u.clone())
        }
        Some(u) => anyhow::bail!("--database-url {u:?}: only postgres:// (SQLite is the default)"),
    };
    let cfg = procure::bench::BenchConfig {
        phases,
        out_dir: a.out.clone(),
        work_dir: std::env::temp_dir().join(format!("procure-bench-{}", std::process::id())),
        exe: std::env::current_exe()?,
        database,
        log_filter: a.system_log.clone(),
        intake_rates: a.intake_rates.clone(),
        intake_seconds: a.intake_seconds,
        intake_connections: a.intake_connections.max(1),
        burst_orders: a.burst_orders,
        burst_trickle_per_s: a.burst_trickle,
        steady_rate: a.steady_rate,
        steady_seconds: a.steady_seconds,
        capacity_orders: a.capacity_orders,
        memory_levels: a.memory_levels.clone(),
        memory_cache: a.memory_cache,
        products_imports: a.products_imports.max(1),
        products_seconds: a.products_seconds.max(1),
        products_wrk_threads: a.products_wrk_threads.max(1),
        products_wrk_connections: a.products_wrk_connections.max(1),
        deadline: Duration::from_secs(a.deadline_s),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        summary_only: a.summary_only,
    };
    let ok = procure::bench::run(&cfg).await;
    let _ = std::fs::remove_dir_all(&cfg.work_dir);
    ok
}

#[derive(clap::Args)]
struct BenchDriverArgs {
    #[arg(long)]
    api: String,
    #[arg(long)]
    sandbox: String,
    /// place, pay or full.
    #[arg(long)]
    plan: procure::bench::driver::Plan,
    #[arg(long, default_value_t = 0)]
    burst: usize,
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    #[arg(long, default_value_t = 250)]
    tick_ms: u64,
    #[arg(long, default_value_t = 900)]
    deadline_s: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long)]
    out: PathBuf,
}

async fn bench_driver(a: BenchDriverArgs) -> anyhow::Result<bool> {
    procure::bench::driver::run(procure::bench::driver::DriverConfig {
        api: a.api,
        sandbox: a.sandbox,
        plan: a.plan,
        burst: a.burst,
        rate: a.rate,
        seconds: a.seconds,
        tick: Duration::from_millis(a.tick_ms.max(10)),
        deadline: Duration::from_secs(a.deadline_s),
        concurrency: a.concurrency.max(1),
        out: a.out,
    })
    .await?;
    Ok(true)
}
