//! Deterministic workflow code. `contract` declares the activities by name and type (their
//! implementations live in the `activities` crate, which this crate must never depend on);
//! `order` is the long-lived per-order workflow; `parcel` ships stored orders to the customer and
//! follows tracking; `monitor` is one run of a scheduled price monitor; `bench` is the bare
//! baseline for `procure bench` (registered only by it); `versions` lists the patches that guard
//! changes to running workflows; `priority` says which work the engine serves first in a burst.
//! Nothing here performs I/O, reads the clock or draws random numbers except through the SDK.

use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_sdk::ActivityOptions;

pub mod bench;
pub mod contract;
pub mod lenient;
pub mod monitor;
pub mod order;
pub mod parcel;
pub mod priority;
pub mod versions;

pub use monitor::{PriceMonitorWorkflow, monitor_schedule_id};
pub use order::{OrderWorkflow, order_workflow_id};
pub use parcel::{ParcelWorkflow, parcel_workflow_id};

/// Task queue served by every worker process.
pub const TASK_QUEUE: &str = "procure-orders";

/// Keyword search attribute that mirrors the order state (register it on the server).
pub const ORDER_STATE_ATTRIBUTE: &str = "OrderState";

/// Activities that talk to the outside world: bounded per attempt, retried by Temporal with
/// backoff (each is idempotent, so a retry after a timeout never doubles an effect).
pub(crate) fn io_opts() -> ActivityOptions {
    backoff_opts(
        Duration::from_secs(30),
        Duration::from_millis(500),
        Duration::from_secs(60),
        0,
    )
}

/// Exponential backoff (doubling from `initial` up to `max_interval`) for `attempts` tries,
/// 0 meaning no limit, each try bounded by `per_try`: the one shape of every retry policy.
pub(crate) fn backoff_opts(
    per_try: Duration,
    initial: Duration,
    max_interval: Duration,
    attempts: u32,
) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(per_try)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(initial)
                .backoff_coefficient(2.0)
                .maximum_interval(max_interval)
                .maximum_attempts(attempts)
                .build(),
        )
        .build()
}
