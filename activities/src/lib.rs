//! Activities: everything that touches the outside world or the database. `store` is the sqlx
//! store, `adapters` speak the external protocols, `order` implements the activity contract
//! declared in `procure_workflows::contract` on top of both.

pub mod adapters;
pub mod fulfilment;
pub mod order;
pub mod pool;
pub mod seal;
pub mod store;
pub mod supplements;
pub mod warehouse;
