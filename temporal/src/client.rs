//! The Temporal client connection, and a lazily connected client: the API starts (and accepts orders) even while the
//! Temporal frontend is unreachable; the dispatcher connects when it can.

use crate::codec::EncryptionCodec;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use tokio::sync::OnceCell;

pub struct TemporalLink {
    address: String,
    namespace: String,
    /// Payload encryption; `None`: the keys in `PROCURE_PAYLOAD_KEYS` (see [`connect`]).
    codec: Option<EncryptionCodec>,
    client: OnceCell<Client>,
}

impl TemporalLink {
    pub fn new(address: impl Into<String>, namespace: impl Into<String>) -> Self {
        TemporalLink {
            address: address.into(),
            namespace: namespace.into(),
            codec: None,
            client: OnceCell::new(),
        }
    }

    /// Encrypt payloads with `codec`.
    pub fn with_codec(mut self, codec: EncryptionCodec) -> Self {
        self.codec = Some(codec);
        self
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client
            .get_or_try_init(|| async {
                match &self.codec {
                    Some(codec) => {
                        connect_with(&self.address, &self.namespace, "procure-api", codec).await
                    }
                    None => connect(&self.address, &self.namespace, "procure-api").await,
                }
            })
            .await
            .cloned()
    }
}

/// Connect to a Temporal frontend at `host:port` (or a full URL). Every payload the client
/// (and a worker built on it) sends is encrypted with the keys in `PROCURE_PAYLOAD_KEYS`.
pub async fn connect(address: &str, namespace: &str, identity: &str) -> anyhow::Result<Client> {
    let codec = EncryptionCodec::from_env()?;
    connect_with(address, namespace, identity, &codec).await
}

/// As [`connect`], every payload encrypted with `codec`.
pub async fn connect_with(
    address: &str,
    namespace: &str,
    identity: &str,
    codec: &EncryptionCodec,
) -> anyhow::Result<Client> {
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    let opts = ConnectionOptions::new(Url::parse(&url)?)
        .identity(identity.to_owned())
        .connect_timeout(std::time::Duration::from_secs(5))
        .build();
    let conn = Connection::connect(opts).await?;
    Ok(Client::new(
        conn,
        ClientOptions::new(namespace.to_owned())
            .data_converter(codec.data_converter())
            .build(),
    )?)
}
