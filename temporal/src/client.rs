//! The Temporal client connection, and a lazily connected client: the API starts (and accepts orders) even while the
//! Temporal frontend is unreachable; the dispatcher connects when it can.

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use tokio::sync::OnceCell;

pub struct TemporalLink {
    address: String,
    namespace: String,
    client: OnceCell<Client>,
}

impl TemporalLink {
    pub fn new(address: impl Into<String>, namespace: impl Into<String>) -> Self {
        TemporalLink {
            address: address.into(),
            namespace: namespace.into(),
            client: OnceCell::new(),
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        self.client
            .get_or_try_init(|| connect(&self.address, &self.namespace, "procure-api"))
            .await
            .cloned()
    }
}

/// Connect to a Temporal frontend at `host:port` (or a full URL). Every payload the client
/// (and a worker built on it) sends is encrypted with the keys in `PROCURE_PAYLOAD_KEYS`.
pub async fn connect(address: &str, namespace: &str, identity: &str) -> anyhow::Result<Client> {
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
    let codec = crate::codec::EncryptionCodec::from_env()?;
    Ok(Client::new(
        conn,
        ClientOptions::new(namespace.to_owned())
            .data_converter(codec.data_converter())
            .build(),
    )?)
}
