//! The application store (sqlx over SQLite or PostgreSQL), one module per aggregate. Each
//! module adds its own `impl Store` block and reads and writes only its own tables, except
//! where a transaction must span two (an accepted order takes stock from its listings; a paid
//! supplement closes its price change). Every change that must reach a workflow commits with
//! its [`outbox`] row.
//!
//! Modules never import a module that imports them: [`db`] (connection, errors) and
//! [`outbox`] come first; the aggregates build on them; [`read_model`] composes the order
//! detail from the aggregates.

pub mod accounts;
pub mod catalogue;
pub mod db;
pub mod intake;
pub mod levels;
pub mod milestones;
pub mod monitors;
pub mod orders;
pub mod outbox;
pub mod parcels;
pub mod payments;
pub mod price_changes;
pub mod read_model;
pub mod warehouse;
pub mod webhooks;

pub use db::{Backend, Result, Store, StoreError};
