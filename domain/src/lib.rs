//! Pure business rules of `procure`: money, the order state machine, shipping lines, the all-in
//! quote, the tariff, the parsing of pasted product links (`product_link`), the statuses of stored records, the marketplace / payment signature schemes
//! the sealing of secrets at rest, and the event catalogue with the signing of our own webhooks. Nothing here performs I/O, so every rule can be unit- and
//! property-tested without a server. The one exception that reads the wall clock is
//! [`clock::now_ms`], for non-workflow code only; workflow code reads time through its SDK.

pub mod clock;
pub mod email;
pub mod events;
pub mod matching;
pub mod money;
pub mod monitor;
pub mod order;
pub mod ports;
pub mod procurement;
pub mod product;
pub mod product_link;
pub mod quote;
pub mod seal;
pub mod secret;
pub mod shipping;
pub mod signing;
pub mod status;
pub mod tariff;
pub mod text;
pub mod webhook_signing;

pub use money::{Currency, FxRate, Money, MoneyError};
pub use order::{IllegalTransition, OrderState, transition};
pub use secret::Secret;
