//! What the API needs from the outside world, as small traits it holds behind `Arc<dyn …>`:
//! exchange rates ([`FxRates`]), the payment provider's own record of a payment
//! ([`PaymentRecords`]), opening an order's payment intent ([`PaymentIntents`]), the verification of tracking webhooks ([`TrackingWebhooks`]),
//! the delivery of our own webhooks to subscribers ([`WebhookSender`]) and of emails to
//! customers ([`EmailSender`]), and the marketplaces' product details ([`ProductDetails`]). The
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

/// One signed webhook request to a subscriber's endpoint (a `POST` with a JSON body).
#[derive(Clone, Debug)]
pub struct OutgoingWebhook<'a> {
    pub url: &'a str,
    /// The Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub headers: &'a [(&'static str, String)],
    pub body: &'a [u8],
    /// The whole request, connecting to the end of the answer's headers.
    pub timeout: std::time::Duration,
}

/// What the endpoint answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAnswer {
    pub status: u16,
    /// Its `Retry-After`, in seconds, when it sent one.
    pub retry_after: Option<std::time::Duration>,
}

/// Sends our webhooks. A transport failure (no connection, a timeout, a refused address) is a
/// [`PortError`] whose message says what happened, without the body or any header.
pub trait WebhookSender: Send + Sync {
    fn send<'a>(&'a self, req: OutgoingWebhook<'a>) -> PortFuture<'a, WebhookAnswer>;
}

/// One email to one customer: plain text, from the configured sender.
#[derive(Clone, Debug)]
pub struct OutgoingEmail<'a> {
    /// The recipient. Personal data: a sender never logs it or puts it in an error.
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    /// Stable per event (`Message-ID`), so a retried message is recognisably the same one.
    pub message_id: &'a str,
    /// The whole exchange with the server, connecting to its answer after the message.
    pub timeout: std::time::Duration,
}

/// Sends customer emails (SMTP in production). A failure is a [`PortError`] whose message says
/// what happened (no connection, a timeout, the server's code and text) without the recipient;
/// `retryable` is false for a permanent rejection (a 5xx).
pub trait EmailSender: Send + Sync {
    fn send<'a>(&'a self, email: OutgoingEmail<'a>) -> PortFuture<'a, ()>;
}

/// Whether an address is one a subscriber's webhook must not reach unless the deployment
/// allows internal targets: loopback, private, link-local, shared (CGNAT), unspecified,
/// multicast or broadcast, IPv6 unique-local and link-local, and IPv4 inside IPv6.
pub fn is_internal_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_address(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_internal_address;

    #[test]
    fn internal_addresses_are_recognised() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(is_internal_address(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_internal_address(a.parse().unwrap()), "{a}");
        }
    }
}

/// Why a product could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProductError {
    /// The marketplace no longer lists it (delisted, deleted, or no such id), in its words.
    Gone(String),
    /// The marketplace refused or failed.
    Vendor(PortError),
}

/// What a product port answers.
pub type ProductFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ProductError>> + Send + 'a>>;

/// The marketplaces' product detail APIs, within each one's rate budget.
pub trait ProductDetails: Send + Sync {
    /// The id the detail API takes for what a link named: the id itself, or for a Pinduoduo
    /// `goods_id` its `goods_sign`.
    fn resolve<'a>(
        &'a self,
        product: &'a crate::product_link::ProductRef,
    ) -> ProductFuture<'a, String>;
    /// The product as its marketplace describes it now.
    fn product<'a>(
        &'a self,
        platform: crate::order::Platform,
        product_id: &'a str,
    ) -> ProductFuture<'a, crate::product::ProductDetail>;
}
