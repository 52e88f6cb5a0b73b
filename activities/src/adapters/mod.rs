//! Clients of the external systems, one module per system, speaking the vendors' real protocols
//! (docs/sandbox-wire.md). Every `…Config::default()` points at the sandbox with its demo
//! credentials; real endpoints are a matter of configuration.
//!
//! reqwest is built with `rustls-no-provider`: the process must install a rustls
//! `CryptoProvider` before it builds any adapter (reqwest panics otherwise).

pub mod alibaba;
pub mod carrier;
pub mod fx;
pub mod http;
pub mod payments;
pub mod tracking;

#[cfg(test)]
mod testing;

pub use alibaba::{Alibaba1688, AlibabaConfig, MarketError, PurchaseRequest, Purchased};
pub use carrier::{Carrier, CarrierConfig, Shipment};
pub use fx::{EcbConfig, EcbFx, FxError, LockedRate};
pub use http::{ApiError, BuildError, HttpConfig};
pub use payments::{PaymentIntent, Payments, PaymentsConfig, Refund};
pub use tracking::{ParcelStatus, TrackRef, TrackStatus, Tracking, TrackingConfig};

/// The sandbox's address: the default base URL of every adapter.
pub const SANDBOX_BASE_URL: &str = "http://127.0.0.1:8790";

/// Tests that drive a real reqwest client install ring's provider, as the binaries do.
#[cfg(test)]
fn install_test_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why an incoming webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("webhook signature is too old")]
    Stale,
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

impl From<procure_domain::signing::WebhookSignatureError> for WebhookError {
    fn from(e: procure_domain::signing::WebhookSignatureError) -> Self {
        use procure_domain::signing::WebhookSignatureError as E;
        match e {
            E::Mismatch => WebhookError::BadSignature,
            E::Stale => WebhookError::Stale,
            E::Malformed => WebhookError::Malformed("signature header".into()),
        }
    }
}
