//! What the API needs from the outside world, as small traits it holds behind `Arc<dyn …>`:
//! exchange rates ([`FxRates`]), the payment provider's own record of a payment
//! ([`PaymentRecords`]), opening an order's payment intent ([`PaymentIntents`]) and the verification of tracking webhooks ([`TrackingWebhooks`]). The
//! vendor clients implement them (crate `procure-adapters`); the root crate injects them, so the
//! API depends on no vendor adapter.

use std::{fmt, future::Future, pin::Pin};

use serde::{Deserialize, Serialize};

use crate::{FxRate, Money};

/// What an outside system answers through a port.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PortError>> + Send + 'a>>;

/// A port's failure, as the vendor client described it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortError {
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
}

impl PortError {
    pub fn new(e: impl fmt::Display, retryable: bool) -> Self {
        PortError {
            message: e.to_string(),
            retryable,
        }
    }
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PortError {}

/// A rate fixed for a quote, with where and when it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedRate {
    pub rate: FxRate,
    /// Publication date of the table the rate comes from.
    pub date: String,
    pub source: String,
}

/// Exchange rates for quotes and settlements.
pub trait FxRates: Send + Sync {
    /// The current rate from `from` to `to`.
    fn locked_rate(&self, from: crate::Currency, to: crate::Currency)
    -> PortFuture<'_, LockedRate>;
}

/// The payment provider's own record of one payment intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRecord {
    pub intent_id: String,
    /// The payment went through.
    pub succeeded: bool,
    pub amount_received: Money,
    /// The provider's status, for logs.
    pub status: String,
}

/// Opens and closes an order's payment intent at the provider, outside the workflow: the
/// dispatcher makes an order payable the moment it is accepted, whatever the engine's backlog.
pub trait PaymentIntents: Send + Sync {
    /// Create (or, for the same order and amount, find again) the order's intent under
    /// [`crate::order::charge_key`]; answers its id.
    fn open_intent<'a>(&'a self, order_id: &'a str, amount: Money) -> PortFuture<'a, String>;
    /// Cancel an intent nobody may pay any more.
    fn cancel_intent<'a>(&'a self, intent_id: &'a str) -> PortFuture<'a, ()>;
}

/// Reads payments back from the provider: a webhook is a notification, the provider's record
/// decides what was paid.
pub trait PaymentRecords: Send + Sync {
    fn payment_record<'a>(&'a self, intent_id: &'a str) -> PortFuture<'a, PaymentRecord>;
}

/// One event of a tracking push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingPushEvent {
    /// RFC 3339, as the provider wrote it.
    pub time_iso: String,
    pub description: String,
}

/// A verified tracking push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingPush {
    /// The tracking number.
    pub number: String,
    /// The parcel's status in the provider's words (e.g. `InTransit`).
    pub status: String,
    /// As the provider lists them (newest first on 17TRACK).
    pub events: Vec<TrackingPushEvent>,
}

/// Verifies the tracking provider's signed webhooks.
pub trait TrackingWebhooks: Send + Sync {
    /// The push in `body` if `sign_header` signs it; the error says why not.
    fn verify(&self, body: &[u8], sign_header: &str) -> Result<TrackingPush, PortError>;
}
