//! The Temporal client connection, and a lazily connected client: the API starts (and accepts orders) even while the
//! Temporal frontend is unreachable; the dispatcher connects when it can.
//!
//! Where to connect and how to authenticate is a typed [`TemporalConnection`], built by the
//! binary's settings (the Temporal SDK's own environment and `temporal.toml` profiles,
//! overridden by `procure`'s settings): this crate never reads the environment or a file.

use crate::codec::EncryptionCodec;
use procure_domain::Secret;
use std::{
    fmt,
    sync::atomic::{AtomicBool, Ordering},
};
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, TlsOptions, Url,
};
use tokio::sync::OnceCell;

/// Where a Temporal frontend is and how to authenticate to it.
#[derive(Clone, Debug, PartialEq)]
pub struct TemporalConnection {
    /// `host:port` or a full URL (`https://…` for TLS).
    pub address: String,
    pub namespace: String,
    /// Sent as `Authorization: Bearer <key>` (Temporal Cloud API keys).
    pub api_key: Option<Secret>,
    /// TLS to the frontend; `None`: plain-text gRPC.
    pub tls: Option<TemporalTls>,
}

/// TLS to the frontend: the material itself (PEM), never file paths.
#[derive(Clone, PartialEq, Default)]
pub struct TemporalTls {
    /// CA certificates the server's certificate must chain to; `None`: the system's roots.
    pub server_ca_cert: Option<Vec<u8>>,
    /// The name the server's certificate must carry (and SNI); `None`: the address's host.
    pub server_name: Option<String>,
    /// mTLS: the client certificate chain and its private key, both or neither.
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Secret>,
}

impl fmt::Debug for TemporalTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporalTls")
            .field(
                "server_ca_cert",
                &self.server_ca_cert.as_ref().map(|_| "set"),
            )
            .field("server_name", &self.server_name)
            .field("client_cert", &self.client_cert.as_ref().map(|_| "set"))
            .field("client_key", &self.client_key)
            .finish()
    }
}

impl TemporalConnection {
    /// A plain-text connection (the dev server).
    pub fn plain(address: impl Into<String>, namespace: impl Into<String>) -> Self {
        TemporalConnection {
            address: address.into(),
            namespace: namespace.into(),
            api_key: None,
            tls: None,
        }
    }

    /// The URL connected to: the address, `https://` when TLS is on and no scheme is given.
    pub fn url(&self) -> anyhow::Result<Url> {
        let url = if self.address.contains("://") {
            self.address.clone()
        } else if self.tls.is_some() {
            format!("https://{}", self.address)
        } else {
            format!("http://{}", self.address)
        };
        Url::parse(&url).map_err(|e| anyhow::anyhow!("Temporal address {:?}: {e}", self.address))
    }

    /// One line for logs: address, namespace and the kind of authentication, no secret.
    pub fn describe(&self) -> String {
        let auth = match (&self.tls, &self.api_key) {
            (None, None) => "plain text",
            (None, Some(_)) => "API key without TLS",
            (Some(t), _) if t.client_cert.is_some() && self.api_key.is_some() => "mTLS and API key",
            (Some(t), _) if t.client_cert.is_some() => "mTLS",
            (Some(_), Some(_)) => "TLS and API key",
            (Some(_), None) => "TLS",
        };
        format!("{} namespace {} ({auth})", self.address, self.namespace)
    }

    fn options(&self, identity: &str) -> anyhow::Result<ConnectionOptions> {
        let tls = self.tls.as_ref().map(|t| {
            let client = match (&t.client_cert, &t.client_key) {
                (Some(cert), Some(key)) => Some(
                    ClientTlsOptions::builder()
                        .client_cert(cert.clone())
                        .client_private_key(key.expose().as_bytes().to_vec())
                        .build(),
                ),
                _ => None,
            };
            TlsOptions::builder()
                .maybe_server_root_ca_cert(t.server_ca_cert.clone())
                .maybe_domain(t.server_name.clone())
                .maybe_client_tls_options(client)
                .build()
        });
        Ok(ConnectionOptions::new(self.url()?)
            .identity(identity.to_owned())
            .connect_timeout(std::time::Duration::from_secs(5))
            .maybe_api_key(self.api_key.as_ref().map(|k| k.expose().to_owned()))
            .maybe_tls_options(tls)
            .maybe_metrics_meter(CLIENT_METRICS.get().cloned())
            .build())
    }
}

pub struct TemporalLink {
    connection: TemporalConnection,
    /// Payload encryption.
    codec: EncryptionCodec,
    client: OnceCell<Client>,
}

impl TemporalLink {
    /// A link to a plain-text frontend (the dev server), connecting on first use.
    pub fn new(
        address: impl Into<String>,
        namespace: impl Into<String>,
        codec: EncryptionCodec,
    ) -> Self {
        Self::to(TemporalConnection::plain(address, namespace), codec)
    }

    /// A link that connects on first use, encrypting every payload with `codec`.
    pub fn to(connection: TemporalConnection, codec: EncryptionCodec) -> Self {
        TemporalLink {
            connection,
            codec,
            client: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client
            .get_or_try_init(|| connect(&self.connection, "procure-api", &self.codec))
            .await
            .cloned()
    }
}

/// Connect to a plain-text Temporal frontend at `host:port` (or a full URL): the dev server.
pub async fn connect_with(
    address: &str,
    namespace: &str,
    identity: &str,
    codec: &EncryptionCodec,
) -> anyhow::Result<Client> {
    connect(
        &TemporalConnection::plain(address, namespace),
        identity,
        codec,
    )
    .await
}

/// The meter every client connected in this process records its requests into
/// ([`record_client_metrics`]).
static CLIENT_METRICS: std::sync::OnceLock<temporalio_common::telemetry::metrics::TemporalMeter> =
    std::sync::OnceLock::new();

/// From now on every client connected in this process records the SDK's client metrics
/// (`temporal_request…`, `temporal_long_request…`) into `meter`. For a process that only talks
/// to Temporal as a client (the API): a worker's runtime records its own. The first meter set
/// stays.
pub fn record_client_metrics(meter: temporalio_common::telemetry::metrics::TemporalMeter) {
    let _ = CLIENT_METRICS.set(meter);
}

/// Whether clients trace with OpenTelemetry ([`trace_with_opentelemetry`]).
static OPENTELEMETRY: AtomicBool = AtomicBool::new(false);

/// From now on every client connected in this process carries the Temporal SDK's OpenTelemetry
/// plugin, and so does every worker built on one: workflow starts, signals, workflow runs and
/// activities become spans of the global tracer provider, and the trace context travels in
/// each workflow's and activity's Temporal header. The binary calls this once it has installed
/// a tracer provider; without it no plugin is installed and nothing is traced.
pub fn trace_with_opentelemetry() {
    OPENTELEMETRY.store(true, Ordering::Relaxed);
}

/// Whether [`trace_with_opentelemetry`] was called.
pub fn traces_with_opentelemetry() -> bool {
    OPENTELEMETRY.load(Ordering::Relaxed)
}

/// Connect to the frontend `connection` names. Every payload the client (and a worker built on
/// it) sends is encrypted with `codec`. The error never holds a secret: the SDK's errors
/// carry no key material, and the options (which do) are not part of it.
pub async fn connect(
    connection: &TemporalConnection,
    identity: &str,
    codec: &EncryptionCodec,
) -> anyhow::Result<Client> {
    let conn = Connection::connect(connection.options(identity)?)
        .await
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))?;
    // The plugin is given to the client only: a worker built on this client gets its worker
    // half from it (registering it on the worker as well would apply it twice).
    let tracing = traces_with_opentelemetry()
        .then(|| temporalio_sdk::opentelemetry::OpenTelemetryPlugin::builder().build());
    Ok(Client::new(
        conn,
        ClientOptions::new(connection.namespace.clone())
            .data_converter(codec.data_converter())
            .plugins(tracing)
            .build(),
    )?)
}

/// An error and its sources on one line (tonic's transport errors hide the TLS cause in them).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        cur = s.source();
    }
    out
}
