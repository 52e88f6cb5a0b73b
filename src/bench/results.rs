//! What each phase writes to `bench/results/<phase>.json`, and reading it back for the summary.
//! Every file carries the run's context (when, which build, which database, how loaded the
//! machine was) so figures from separate runs can sit in one summary honestly.

use super::latency::Percentiles;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::{collections::BTreeMap, path::Path};

/// The run a phase's figures come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// UTC, RFC 3339, when the phase started.
    pub started_at: String,
    /// `release` or `debug`.
    pub build: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub cores: usize,
    /// The 1-minute load average before the phase's system started, and at its end.
    pub load_before: f64,
    pub load_after: f64,
    /// The command line that produced the file.
    pub command: String,
    pub seconds: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntakeStep {
    /// Orders per second the generator offered (open loop).
    pub target_per_s: f64,
    pub seconds: f64,
    pub sent: u64,
    /// 201/200 answers per second over the step.
    pub accepted_per_s: f64,
    pub accepted: u64,
    /// Failed requests by HTTP status or transport error (`timeout`, `connect`, …).
    pub errors: BTreeMap<String, u64>,
    /// Latency of accepted orders from each request's intended send time.
    pub latency: Percentiles,
    /// Outbox rows not yet dispatched when the step ended (the engine's backlog at intake).
    pub outbox_backlog_at_end: i64,
    /// Workflows the dispatcher had started by the end of the step.
    pub dispatched_at_end: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntakeResult {
    pub run: RunInfo,
    pub connections: usize,
    /// How stock was made to last the sweep.
    pub stock_note: String,
    pub steps: Vec<IntakeStep>,
}

/// One point of the burst plot: an order's milestones, seconds after the burst began.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BurstPoint {
    pub accepted_s: f64,
    pub payable_ms: Option<f64>,
    pub purchase_after_paid_ms: Option<f64>,
    /// Placed in the initial burst (true) or by the trickle that kept arriving meanwhile.
    pub in_burst: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BurstResult {
    pub run: RunInfo,
    pub burst_orders: usize,
    /// New orders per second placed while the burst drained.
    pub trickle_per_s: f64,
    pub trickle_orders: usize,
    /// Seconds the API took to accept the whole burst.
    pub accept_seconds: f64,
    /// Accepted → payment intent stored (payments.created_at_ms, else first seen by the
    /// driver), every order of the run.
    pub accepted_to_payable: Percentiles,
    /// Where `accepted_to_payable` came from: `store` or `driver`.
    pub payable_source: String,
    /// The driver's confirm call → the first purchase recorded (purchases.created_at_ms).
    pub paid_to_purchase: Percentiles,
    /// The same for the trickle's orders alone (placed after the burst, paid at once): do they
    /// queue behind the burst?
    pub trickle_paid_to_purchase: Percentiles,
    /// Accepted → first purchase, burst orders.
    pub accepted_to_purchase: Percentiles,
    /// Burst start → the last burst order's first purchase.
    pub drain_seconds: f64,
    pub purchased: usize,
    pub not_purchased: usize,
    /// The plot beside this file (`burst.png`), when it could be drawn.
    pub plot: Option<String>,
    pub points: Vec<BurstPoint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryCounts {
    /// Workflow histories read (orders and their parcels).
    pub histories: usize,
    pub events_per_order: f64,
    /// WorkflowTaskCompleted events per order.
    pub workflow_tasks_per_order: f64,
    /// ActivityTaskScheduled per order.
    pub activities_per_order: f64,
    /// MarkerRecorded (local activities) per order.
    pub local_activities_per_order: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SteadyResult {
    pub run: RunInfo,
    pub rate_per_s: f64,
    pub seconds: f64,
    pub placed: usize,
    pub completed: usize,
    /// Completed orders ÷ (first placement → last completion).
    pub orders_per_s: f64,
    /// Order accepted → its first purchase recorded.
    pub order_to_purchase: Percentiles,
    /// Order accepted → Completed.
    pub order_to_complete: Percentiles,
    /// Counted from the Temporal histories of the completed orders (order + parcel).
    pub history: HistoryCounts,
    /// Capacity: `capacity_orders` placed at once and driven to Completed.
    pub capacity_orders: usize,
    pub capacity_completed: usize,
    pub capacity_orders_per_s: f64,
    /// The same number of bare workflows with the activity counts read from the histories.
    pub baseline_activities: u32,
    pub baseline_local_activities: u32,
    pub baseline_workflows: usize,
    pub baseline_per_s: f64,
    pub baseline_history: HistoryCounts,
    /// capacity_orders_per_s ÷ baseline_per_s.
    pub ratio: f64,
    /// Requests the driver process made per second, on average (it lists by state).
    pub driver_requests_per_s: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryLevel {
    pub in_flight: usize,
    /// Orders in the waiting state when sampled.
    pub waiting: usize,
    pub rss_mb: f64,
    /// (RSS − idle RSS) ÷ in-flight orders.
    pub kb_per_order: f64,
    /// The SDK's sticky cache size when sampled (temporal_sticky_cache_size), if read.
    pub sticky_cache: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryResult {
    pub run: RunInfo,
    /// The state the orders wait in.
    pub waiting_state: String,
    pub max_cached_workflows: usize,
    pub idle_rss_mb: f64,
    pub levels: Vec<MemoryLevel>,
}

/// Write `value` as `<dir>/<phase>.json`.
pub fn write<T: Serialize>(
    dir: &Path,
    phase: &str,
    value: &T,
) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{phase}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)? + "\n")?;
    Ok(path)
}

/// `<dir>/<phase>.json` when it exists and parses; an unreadable file is an error, a missing
/// one is `None` (that phase was not run).
pub fn read<T: DeserializeOwned>(dir: &Path, phase: &str) -> anyhow::Result<Option<T>> {
    let path = dir.join(format!("{phase}.json"));
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(
            serde_json::from_str(&s).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The machine's 1-minute load average (0 when unreadable).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Now in UTC, RFC 3339, to the second.
pub fn now_rfc3339() -> String {
    let ms = procure_domain::clock::now_ms();
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn a_written_result_reads_back_and_a_missing_one_is_none() {
        let dir = std::env::temp_dir().join(format!("procure-results-{}", uuid::Uuid::new_v4()));
        let r = MemoryResult {
            waiting_state: "PendingPayment".into(),
            max_cached_workflows: 2000,
            levels: vec![MemoryLevel {
                in_flight: 1000,
                ..MemoryLevel::default()
            }],
            ..MemoryResult::default()
        };
        write(&dir, "memory", &r).unwrap();
        assert_eq!(read::<MemoryResult>(&dir, "memory").unwrap(), Some(r));
        assert_eq!(read::<MemoryResult>(&dir, "intake").unwrap(), None);
        std::fs::write(dir.join("burst.json"), "{").unwrap();
        assert!(read::<BurstResult>(&dir, "burst").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
