//! Talking to Temporal outside workflow code: the payload codec that encrypts every payload
//! ([`codec`]) and the client connection built on it ([`client`]), shared by the API, the worker
//! and the binary, and the readiness check ([`health`]).

pub mod client;
pub mod codec;
pub mod health;

pub use client::{
    TemporalConnection, TemporalLink, TemporalTls, connect, connect_with, record_client_metrics,
    trace_with_opentelemetry, traces_with_opentelemetry,
};
pub use codec::EncryptionCodec;
