//! The Temporal client connection, and a lazily connected client: the API starts (and accepts orders) even while the
//! Temporal frontend is unreachable; the dispatcher connects when it can.

use crate::codec::EncryptionCodec;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use tokio::sync::OnceCell;

pub struct TemporalLink {
    address: String,
    namespace: String,
    /// Payload encryption.
    codec: EncryptionCodec,
    client: OnceCell<Client>,
}

impl TemporalLink {
    /// A link that connects on first use, encrypting every payload with `codec`.
    pub fn new(
        address: impl Into<String>,
        namespace: impl Into<String>,
        codec: EncryptionCodec,
    ) -> Self {
        TemporalLink {
            address: address.into(),
            namespace: namespace.into(),
            codec,
            client: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client
            .get_or_try_init(|| {
                connect_with(&self.address, &self.namespace, "procure-api", &self.codec)
            })
            .await
            .cloned()
    }
}

/// Connect to a Temporal frontend at `host:port` (or a full URL). Every payload the client
/// (and a worker built on it) sends is encrypted with `codec`.
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
