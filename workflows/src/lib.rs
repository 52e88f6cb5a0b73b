//! Deterministic workflow code. `contract` declares the activities by name and type (their
//! implementations live in the `activities` crate, which this crate must never depend on);
//! `order` is the long-lived per-order workflow; `parcel` ships stored orders to the customer and
//! follows tracking; `bench` is the bare baseline for `procure bench`.
//! Nothing here performs I/O, reads the clock or draws random numbers except through the SDK.

pub mod bench;
pub mod contract;
pub mod order;
pub mod parcel;

pub use order::{OrderWorkflow, order_workflow_id};
pub use parcel::{ParcelWorkflow, parcel_workflow_id};

/// Task queue served by every worker process.
pub const TASK_QUEUE: &str = "procure-orders";

/// Keyword search attribute that mirrors the order state (register it on the server).
pub const ORDER_STATE_ATTRIBUTE: &str = "OrderState";
