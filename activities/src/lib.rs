//! Activities: everything that touches the outside world or the database. `store` is the sqlx
//! store, the vendor clients live in `procure_adapters`, `order` implements the activity contract
//! declared in `procure_workflows::contract` on top of both; `pricing` is the tariff (shipping
//! lines, duty, fees) quotes and price monitors share; `prices` stores price monitors, their
//! snapshots and alerts, and `monitor` runs them; `cancel` cancels a bought line at its
//! marketplace.

pub mod cancel;
pub mod codec;
pub mod fulfilment;
pub mod monitor;
pub mod order;
pub mod pool;
pub mod prices;
pub mod pricing;
pub mod seal;
pub mod store;
pub mod supplements;
pub mod warehouse;
