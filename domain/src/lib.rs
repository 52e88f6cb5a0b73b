//! Pure business rules of `procure`: money, the order state machine, shipping lines, the all-in
//! quote and the marketplace / payment signature schemes. Nothing here performs I/O or reads a
//! clock, so every rule can be unit- and property-tested without a server, and workflow code can
//! use it freely.

pub mod money;
pub mod monitor;
pub mod order;
pub mod ports;
pub mod procurement;
pub mod quote;
pub mod secret;
pub mod shipping;
pub mod signing;
pub mod text;

pub use money::{Currency, FxRate, Money, MoneyError};
pub use order::{IllegalTransition, OrderState, transition};
pub use secret::Secret;
