//! `procure bench`, version 2: the figures of issue 15's table (P1–P6) measured against the
//! system in its production shape (separate `procure` processes on loopback, see [`system`]),
//! phase by phase. Each phase starts a fresh system, writes `bench/results/<phase>.json`, and
//! `bench/results/summary.md` is rebuilt from every phase file present, so phases can run separately. The
//! bench reports figures against their targets; it never fails on them.
//!
//! - [`intake`] (P2): open-loop `POST /api/v1/orders` at a sweep of rates.
//! - [`burst`] (P5, P6): 5,000 orders at once, a reactive driver paying each when payable.
//! - [`steady`] (P1, P3): the full flow at a fixed rate from a separate driver process, history
//!   counts, capacity against the bare-workflow baseline.
//! - [`memory`] (P4): the worker's RSS against orders in flight.
//! - [`products`] (issue 17): imports, then cached and cold product reads under `wrk`.
//!
//! Shared pieces: [`system`] (launch), [`latency`] (percentiles, coordinated omission),
//! [`results`] (the JSON files), [`summary`] (the Markdown), [`plot`] (the burst PNG), and
//! [`driver`], the separate driver process (`procure bench-driver`).

pub mod burst;
pub mod driver;
pub mod intake;
pub mod latency;
pub mod memory;
pub mod plot;
pub mod products;
pub mod results;
pub mod steady;
pub mod summary;
pub mod system;

use anyhow::Context;
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};
use system::{Database, LaunchOptions, Launched};

/// A phase of the bench.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Intake,
    Burst,
    Steady,
    Memory,
    Products,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Intake,
        Phase::Burst,
        Phase::Steady,
        Phase::Memory,
        Phase::Products,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intake => "intake",
            Phase::Burst => "burst",
            Phase::Steady => "steady",
            Phase::Memory => "memory",
            Phase::Products => "products",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Phase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("{s:?}: one of intake, burst, steady, memory, products"))
    }
}

#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub phases: Vec<Phase>,
    /// Where the result files and the summary go (`bench/results`).
    pub out_dir: PathBuf,
    /// Where each phase's system keeps its files while it runs (removed after).
    pub work_dir: PathBuf,
    /// This binary: every process of the system is one of it.
    pub exe: PathBuf,
    pub database: Database,
    /// `RUST_LOG` of the system's processes.
    pub log_filter: String,
    pub intake_rates: Vec<u32>,
    pub intake_seconds: u64,
    pub intake_connections: usize,
    pub burst_orders: usize,
    pub burst_trickle_per_s: f64,
    pub steady_rate: f64,
    pub steady_seconds: u64,
    pub capacity_orders: usize,
    pub memory_levels: Vec<usize>,
    /// `worker.max_cached_workflows` for the memory phase (the settings' value when unset).
    pub memory_cache: Option<usize>,
    /// Products imported before the reads, seconds of each `wrk` run, and its threads and
    /// connections.
    pub products_imports: usize,
    pub products_seconds: u64,
    pub products_wrk_threads: u32,
    pub products_wrk_connections: u32,
    /// The longest a phase waits for orders to get somewhere.
    pub deadline: Duration,
    /// The command line, recorded in each result file.
    pub command: String,
    /// Run no phase: only rebuild the summary from the files present.
    pub summary_only: bool,
}

impl BenchConfig {
    pub(crate) fn run_info(&self, phase: &str) -> results::RunInfo {
        results::RunInfo {
            started_at: results::now_rfc3339(),
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .into(),
            database: match self.database {
                Database::Sqlite => "sqlite".into(),
                Database::Postgres(_) => "postgres".into(),
            },
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_before: results::load_average(),
            load_after: 0.0,
            command: format!("{} (phase {phase})", self.command),
            seconds: 0.0,
        }
    }

    /// Run `measure` on a fresh system for `phase`: a failure carries the processes' log
    /// tails, the system is stopped either way, and the phase's run info is finished.
    pub(crate) async fn measured<R>(
        &self,
        phase: &str,
        worker_env: Vec<(String, String)>,
        measure: impl AsyncFnOnce(&Launched) -> anyhow::Result<R>,
    ) -> anyhow::Result<(R, results::RunInfo)> {
        let mut run = self.run_info(phase);
        let system = self.launch(phase, worker_env).await?;
        let result = measure(&system)
            .await
            .map_err(|e| e.context(system.log_tails()));
        system.stop().await?;
        let result = result?;
        intake::finish(&mut run);
        Ok((result, run))
    }

    pub(crate) async fn launch(
        &self,
        name: &str,
        worker_env: Vec<(String, String)>,
    ) -> anyhow::Result<Launched> {
        Launched::start(
            &self.exe,
            &self.work_dir,
            LaunchOptions {
                name: name.to_owned(),
                database: self.database.clone(),
                worker_env,
                log_filter: self.log_filter.clone(),
            },
        )
        .await
    }
}

/// Run the selected phases, each writing its file, then rebuild the summary. A phase that
/// fails is reported and the others still run; the result is false if any failed.
pub async fn run(cfg: &BenchConfig) -> anyhow::Result<bool> {
    let mut ok = true;
    let phases: &[Phase] = if cfg.summary_only { &[] } else { &cfg.phases };
    for phase in phases {
        let started = Instant::now();
        eprintln!("bench: phase {} …", phase.as_str());
        let written = match phase {
            Phase::Intake => intake::run(cfg).await.and_then(|mut r| {
                r.run.seconds = started.elapsed().as_secs_f64();
                results::write(&cfg.out_dir, "intake", &r)
            }),
            Phase::Burst => burst::run(cfg).await.and_then(|mut r| {
                r.run.seconds = started.elapsed().as_secs_f64();
                results::write(&cfg.out_dir, "burst", &r)
            }),
            Phase::Steady => steady::run(cfg).await.and_then(|mut r| {
                r.run.seconds = started.elapsed().as_secs_f64();
                results::write(&cfg.out_dir, "steady", &r)
            }),
            Phase::Memory => memory::run(cfg).await.and_then(|mut r| {
                r.run.seconds = started.elapsed().as_secs_f64();
                results::write(&cfg.out_dir, "memory", &r)
            }),
            Phase::Products => products::run(cfg).await.and_then(|mut r| {
                r.run.seconds = started.elapsed().as_secs_f64();
                results::write(&cfg.out_dir, "products", &r)
            }),
        };
        match written {
            Ok(path) => eprintln!(
                "bench: phase {} done in {:.0} s → {}",
                phase.as_str(),
                started.elapsed().as_secs_f64(),
                path.display()
            ),
            Err(e) => {
                eprintln!("bench: phase {} failed: {e:#}", phase.as_str());
                ok = false;
            }
        }
    }
    let md = summary::render(&summary::Inputs::read(&cfg.out_dir)?);
    let path = cfg.out_dir.join("summary.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("bench: summary → {}", path.display());
    println!("{md}");
    Ok(ok)
}

/// A driver process (`procure bench-driver`) started against a launched system.
pub(crate) struct DriverProcess {
    child: tokio::process::Child,
    out: PathBuf,
}

pub(crate) struct DriverPlan {
    pub plan: driver::Plan,
    pub burst: usize,
    pub rate: f64,
    pub seconds: f64,
}

impl DriverProcess {
    pub(crate) fn start(
        cfg: &BenchConfig,
        system: &Launched,
        name: &str,
        p: DriverPlan,
    ) -> anyhow::Result<DriverProcess> {
        let out = system.dir.join(format!("{name}.json"));
        let args: Vec<String> = [
            "bench-driver",
            "--api",
            &system.api_url,
            "--sandbox",
            &system.sandbox_url,
            "--plan",
            p.plan.as_str(),
            "--burst",
            &p.burst.to_string(),
            "--rate",
            &p.rate.to_string(),
            "--seconds",
            &p.seconds.to_string(),
            "--deadline-s",
            &cfg.deadline.as_secs().to_string(),
            "--out",
            &out.display().to_string(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let child = system.spawn_extra(&cfg.exe, name, &args)?;
        Ok(DriverProcess { child, out })
    }

    /// Whether it is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Close its input (its signal to stop), wait for it (bounded) and read its report.
    pub(crate) async fn finish(mut self) -> anyhow::Result<driver::DriverReport> {
        drop(self.child.stdin.take());
        match tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the driver exited with {status}");
            }
            Err(_) => {
                system::stop_child("bench-driver", &mut self.child).await;
                anyhow::bail!("the driver did not stop within 120 s");
            }
        }
        read_report(&self.out)
    }
}

fn read_report(path: &Path) -> anyhow::Result<driver::DriverReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// `x / y`, 0 when `y` is 0.
pub(crate) fn ratio(x: f64, y: f64) -> f64 {
    if y > 0.0 { x / y } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_parse_by_name() {
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>(), Ok(p));
        }
        assert!("everything".parse::<Phase>().is_err());
        assert_eq!(ratio(8.0, 10.0), 0.8);
        assert_eq!(ratio(8.0, 0.0), 0.0);
    }
}
