//! The system under test, in its production shape: the Temporal dev server (file-backed, WAL),
//! `procure sandbox`, `procure api` and `procure worker`, each its own process of this very
//! binary on loopback, configured only through `PROCURE_…` variables (as `tests/processes.rs`
//! starts them). Separate processes let the bench read the worker's RSS and keep the driver
//! and load generator out of the system's own process.
//!
//! Stock: the sandbox's demo catalogue holds a few thousand units per product and the API seeds
//! its listings from it, so before the API starts every product and offer of the sandbox is
//! raised to [`BENCH_STOCK`] units (`POST /_sandbox/products/{offer_id}`); the seeded listings
//! then hold as many, and a 195,000-order sweep never runs out.

use crate::devserver::{DevServer, DevServerOptions, free_port};
use anyhow::Context;
use procure_store::Store;
use serde_json::{Value, json};
use sqlx::Connection;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};
use temporalio_client::Client;
use tokio::process::{Child, Command};

/// Units on sale of every sandbox product and offer, and so of every seeded listing.
pub const BENCH_STOCK: i64 = 50_000_000;

/// Where the system keeps its data.
#[derive(Clone, Debug)]
pub enum Database {
    /// A fresh SQLite file in the run's directory (the default).
    Sqlite,
    /// A fresh database on this PostgreSQL server, named after the URL's database and the
    /// phase; dropped when the system stops.
    Postgres(String),
}

pub struct LaunchOptions {
    /// Names the run's directory, task queue and database.
    pub name: String,
    pub database: Database,
    /// Extra `PROCURE_…` variables for the worker (sticky cache size, …).
    pub worker_env: Vec<(String, String)>,
    /// `RUST_LOG` of the API and worker (their logs go to files in the run directory).
    pub log_filter: String,
}

pub struct Launched {
    temporal: Option<DevServer>,
    children: Vec<(&'static str, Child)>,
    pub dir: PathBuf,
    pub api_url: String,
    pub sandbox_url: String,
    pub temporal_address: String,
    pub database_url: String,
    pub database: Database,
    pg_name: Option<(String, String)>,
    pub task_queue: String,
    pub worker_pid: u32,
    pub worker_metrics: String,
    pub payload_codec: procure_temporal::EncryptionCodec,
    /// The variables every process got (for a driver process started later).
    pub env: Vec<(String, String)>,
}

impl Launched {
    pub async fn start(exe: &Path, root: &Path, opts: LaunchOptions) -> anyhow::Result<Launched> {
        crate::system::install_crypto_provider();
        let dir = root.join(format!(
            "{}-{}",
            opts.name,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let temporal = DevServer::start(DevServerOptions {
            db_file: Some(dir.join("temporal.db")),
            port: None,
            ui_port: None,
            ui: false,
            namespace: "default".into(),
            search_attributes: vec![(
                procure_workflows::ORDER_STATE_ATTRIBUTE.into(),
                "Keyword".into(),
            )],
            log_file: Some(dir.join("temporal.log")),
            ui_codec_endpoint: None,
        })
        .await?;
        let mut launched = Launched {
            temporal_address: temporal.address(),
            temporal: Some(temporal),
            children: Vec::new(),
            api_url: String::new(),
            sandbox_url: String::new(),
            database_url: String::new(),
            database: opts.database.clone(),
            pg_name: None,
            task_queue: format!("bench-{}", opts.name),
            worker_pid: 0,
            worker_metrics: String::new(),
            payload_codec: development_codec()?,
            env: Vec::new(),
            dir,
        };
        if let Err(e) = launched.start_processes(exe, &opts).await {
            let tail = launched.log_tails();
            launched.stop().await.ok();
            return Err(e.context(tail));
        }
        Ok(launched)
    }

    async fn start_processes(&mut self, exe: &Path, opts: &LaunchOptions) -> anyhow::Result<()> {
        self.database_url = match &opts.database {
            Database::Sqlite => format!("sqlite://{}", self.dir.join("app.db").display()),
            Database::Postgres(url) => {
                let (url, name, admin) = fresh_postgres(url, &opts.name).await?;
                self.pg_name = Some((admin, name));
                url
            }
        };
        let (sandbox_port, api_port, metrics_port) = (free_port(), free_port(), free_port());
        self.sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
        self.api_url = format!("http://127.0.0.1:{api_port}");
        self.worker_metrics = format!("http://127.0.0.1:{metrics_port}");
        self.env = vec![
            ("PROCURE_DATABASE_URL".into(), self.database_url.clone()),
            (
                "PROCURE_TEMPORAL_ADDRESS".into(),
                self.temporal_address.clone(),
            ),
            ("PROCURE_TEMPORAL_NAMESPACE".into(), "default".into()),
            ("PROCURE_TASK_QUEUE".into(), self.task_queue.clone()),
            ("PROCURE_EXTERNAL_URL".into(), self.sandbox_url.clone()),
            ("PROCURE_DEVELOPMENT".into(), "true".into()),
            ("PROCURE_TRACKING_POLL_S".into(), "1".into()),
            // Orders the bench leaves waiting (memory, an unpaid burst order) must not expire
            // while it measures.
            ("PROCURE_PAYMENT_TIMEOUT_S".into(), "7200".into()),
            ("PROCURE_API_ADDR".into(), format!("127.0.0.1:{api_port}")),
            ("RUST_LOG".into(), opts.log_filter.clone()),
        ];
        // The vendors' clients are paced for the real vendors (Stripe: 25 intents per second
        // per account, docs/vendors/stripe-errors.md); against the sandbox the pace is lifted,
        // so the bench measures procure, and the summary names the real ceiling beside it.
        for vendor in [
            "PAYMENTS",
            "ALIBABA",
            "TAOBAO",
            "PINDUODUO",
            "TRACKING",
            "CARRIER",
        ] {
            self.env.push((
                format!("PROCURE_{vendor}__HTTP__REQUESTS_PER_SECOND"),
                "0".into(),
            ));
        }
        let sandbox = self.spawn(
            exe,
            "sandbox",
            &["sandbox", "--port", &sandbox_port.to_string()],
            &[],
        )?;
        self.children.push(("sandbox", sandbox));
        crate::system::wait_http_ok(
            &format!("{}/_sandbox/health", self.sandbox_url),
            Duration::from_secs(30),
        )
        .await?;
        raise_stock(&self.sandbox_url).await?;
        let http = reqwest::Client::new();
        http.put(format!("{}/_sandbox/webhooks", self.sandbox_url))
            .json(&json!({
                "payments": format!("{}/api/v1/webhooks/payments", self.api_url),
                "tracking": format!("{}/api/v1/webhooks/tracking", self.api_url),
            }))
            .send()
            .await?
            .error_for_status()
            .context("pointing the sandbox's webhooks at the API")?;
        let api = self.spawn(exe, "api", &["api", "--seed-sandbox-catalogue"], &[])?;
        self.children.push(("api", api));
        crate::system::wait_http_ok(
            &format!("{}/health/ready", self.api_url),
            Duration::from_secs(60),
        )
        .await
        .context("the API did not become ready")?;
        let mut worker_env = opts.worker_env.clone();
        worker_env.push((
            "PROCURE_METRICS_ADDR".into(),
            format!("127.0.0.1:{metrics_port}"),
        ));
        let worker = self.spawn(exe, "worker", &["worker"], &worker_env)?;
        self.worker_pid = worker.id().context("worker pid")?;
        self.children.push(("worker", worker));
        crate::system::wait_http_ok(
            &format!("{}/health/ready", self.worker_metrics),
            Duration::from_secs(60),
        )
        .await
        .context("the worker did not become ready")?;
        Ok(())
    }

    /// Start another process of this binary with the system's environment and `extra` on
    /// top (later values win), logging to `<name>.log` in the run's directory.
    pub fn spawn_with(
        &self,
        exe: &Path,
        name: &str,
        args: &[&str],
        extra: &[(String, String)],
    ) -> anyhow::Result<Child> {
        self.spawn(exe, name, args, extra)
    }

    fn spawn(
        &self,
        exe: &Path,
        name: &str,
        args: &[&str],
        extra: &[(String, String)],
    ) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .kill_on_drop(true)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (k, v) in self.env.iter().chain(extra) {
            cmd.env(k, v);
        }
        cmd.spawn()
            .with_context(|| format!("starting procure {name}"))
    }

    /// Start another process of this binary with the system's environment (the driver).
    pub fn spawn_extra(&self, exe: &Path, name: &str, args: &[String]) -> anyhow::Result<Child> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .kill_on_drop(true)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.spawn()
            .with_context(|| format!("starting procure {name}"))
    }

    /// The last lines of each process's log (for an error).
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for name in ["sandbox", "api", "worker"] {
            if let Ok(s) = std::fs::read_to_string(self.dir.join(format!("{name}.log"))) {
                let lines: Vec<&str> = s.lines().collect();
                let tail = lines[lines.len().saturating_sub(8)..].join("\n");
                out.push_str(&format!("--- {name}.log\n{tail}\n"));
            }
        }
        out
    }

    /// The worker's resident set (VmRSS) in kB.
    pub fn worker_rss_kb(&self) -> Option<u64> {
        rss_kb(self.worker_pid)
    }

    /// A store on the system's database (for milestones; reads only).
    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect_with(&self.database_url, 2, Duration::from_secs(30)).await?)
    }

    pub async fn temporal_client(&self) -> anyhow::Result<Client> {
        procure_temporal::connect_with(
            &self.temporal_address,
            "default",
            "procure-bench",
            &self.payload_codec,
        )
        .await
    }

    pub fn driver(&self) -> crate::demo::Driver {
        crate::demo::Driver::new(self.api_url.clone(), self.sandbox_url.clone())
    }

    /// A gauge of the worker's metrics port (summed over its label sets), if present.
    pub async fn worker_gauge(&self, name: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.worker_metrics))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        gauge(&text, name)
    }

    /// SIGTERM each process (worker first), wait for it (bounded), then stop the dev server and
    /// drop a PostgreSQL database made for the run.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        while let Some((name, mut child)) = self.children.pop() {
            stop_child(name, &mut child).await;
        }
        if let Some(t) = self.temporal.take() {
            t.stop().await?;
        }
        if let Some((admin, name)) = self.pg_name.take()
            && let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// SIGTERM, then SIGKILL after 15 s.
pub async fn stop_child(name: &str, child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), child.wait())
            .await
            .is_ok()
        {
            return;
        }
        eprintln!("bench: procure {name} ignored SIGTERM for 15 s; killing it");
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// The payload codec of a development deployment (the same keys the processes use).
fn development_codec() -> anyhow::Result<procure_temporal::EncryptionCodec> {
    let settings = crate::settings::Settings {
        development: true,
        ..crate::settings::Settings::load(&crate::settings::Sources::from_process_env())?
    };
    Ok(settings
        .deployment(crate::settings::Process::Api)?
        .keys
        .payload)
}

/// Raise every sandbox product's and offer's units on sale to [`BENCH_STOCK`].
async fn raise_stock(sandbox_url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let c: Value = http
        .get(format!("{sandbox_url}/_sandbox/catalogue"))
        .send()
        .await?
        .json()
        .await?;
    let ids = c["products"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(c["offers"].as_array().into_iter().flatten())
        .filter_map(|p| p["offer_id"].as_str().map(str::to_owned));
    for id in ids {
        http.post(format!("{sandbox_url}/_sandbox/products/{id}"))
            .json(&json!({"amount_on_sale": BENCH_STOCK}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("raising the stock of {id}"))?;
    }
    Ok(())
}

/// Create a fresh database on the server of `url`: returns its URL, its name and the URL of
/// the server's `postgres` database (to drop it later).
async fn fresh_postgres(url: &str, phase: &str) -> anyhow::Result<(String, String, String)> {
    let (base, db) = url
        .rsplit_once('/')
        .filter(|(b, _)| b.contains("://"))
        .context("--database-url: postgres://user@host:port/name")?;
    let db = db.split('?').next().unwrap_or_default();
    let stem: String = if db.is_empty() { "procure_bench" } else { db }
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let name = format!(
        "{stem}_{phase}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let admin = format!("{base}/postgres");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .with_context(|| format!("connecting to {admin}"))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    Ok((format!("{base}/{name}"), name, admin))
}

/// VmRSS of a process in kB, from /proc/<pid>/status.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&s)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The sum of a Prometheus series' samples (every label set) in an exposition text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Wait until `check` is true, polling every `every`, for at most `within`.
pub async fn wait_for<F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{what}: not reached within {within:?}");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_and_gauges() {
        let status = "Name:\tprocure\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(123_456));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(rss_kb(std::process::id()).unwrap() > 0);
        let text = "# TYPE temporal_sticky_cache_size gauge\n\
                    temporal_sticky_cache_size{service_name=\"w\",task_queue=\"q\"} 1200\n\
                    temporal_sticky_cache_size_other 5\n\
                    temporal_sticky_cache_size{task_queue=\"r\"} 3\n";
        assert_eq!(gauge(text, "temporal_sticky_cache_size"), Some(1203.0));
        assert_eq!(gauge(text, "nothing"), None);
    }
}
