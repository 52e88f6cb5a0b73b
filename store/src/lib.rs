//! The application store (sqlx over SQLite or PostgreSQL), one module per aggregate. Each
//! module adds its own `impl Store` block and reads and writes only its own tables, except
//! where a transaction must span two (an accepted order takes stock from its listings; a paid
//! supplement closes its price change). Every change that must reach a workflow commits with
//! its [`outbox`] row.
//!
//! Every business event the storefront hears of is appended to [`events`] (the event log) in
//! the transaction of its change; [`subscriptions`] holds the webhook endpoints and their
//! deliveries.
//!
//! Modules never import a module that imports them: [`db`] (connection, errors), [`events`]
//! and [`outbox`] come first; the aggregates build on them; [`read_model`] composes the order
//! detail from the aggregates.

pub mod accounts;
pub mod alternatives;
pub mod catalogue;
pub mod db;
pub mod email;
pub mod events;
pub mod intake;
pub mod levels;
pub mod milestones;
pub mod monitors;
pub mod orders;
pub mod outbox;
pub mod parcels;
pub mod payments;
pub mod price_changes;
pub mod products;
pub mod read_model;
pub mod shipments;
pub mod subscriptions;
pub mod warehouse;
pub mod webhooks;

pub use db::{Backend, Result, Store, StoreError};
