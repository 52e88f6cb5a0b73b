//! Activities: the implementations of the activity contract declared in
//! `procure_workflows::contract`, on top of the store (`procure_store`) and the adapters that
//! speak the external protocols. `order` implements the order activities, `fulfilment` the
//! warehouse and parcel ones, `monitor` runs price monitors, `cancel` cancels a bought line at
//! its marketplace, `shipment` follows the sellers' domestic shipments; `errors` is how each reports a failure to Temporal.

pub mod cancel;
mod errors;
pub mod fulfilment;
pub mod monitor;
pub mod order;
pub mod shipment;
