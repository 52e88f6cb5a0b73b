//! How a process reaches Temporal: the Temporal SDK's own client configuration (the
//! `TEMPORAL_…` variables and `temporal.toml` profiles, exactly as the `temporal` CLI reads
//! them), overridden key by key by `procure`'s `temporal.*` settings, resolved into one typed
//! [`TemporalConnection`] that the API, the dispatcher, the workers and the CLI all use.
//!
//! Files are read and the client key is checked against its certificate here, at start, so a
//! wrong path or a mismatched key fails the start naming its setting.

use super::*;
use crate::components::temporal_settings::{CLIENT_CERT, CLIENT_KEY, SERVER_CA};
use procure_temporal::{TemporalConnection, TemporalTls};
use std::collections::HashMap;
use temporalio_common::envconfig::{
    ClientConfigProfile, DataSource, LoadClientConfigProfileOptions, load_client_config_profile,
};

/// Where Temporal is when neither the SDK's configuration nor `temporal.address` says.
pub const DEFAULT_TEMPORAL_ADDRESS: &str = "127.0.0.1:7233";

/// `temporal.tls.*`: TLS to the frontend. Any of them set turns TLS on (unless `enabled =
/// false`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemporalTlsSettings {
    /// TLS on or off; unset: on when any TLS setting (here or in the SDK's configuration) or
    /// an API key is given.
    pub enabled: Option<bool>,
    /// File holding the client certificate chain (PEM), for mTLS.
    pub client_cert: Option<PathBuf>,
    /// Secret: the client certificate's private key (PEM).
    pub client_key: Option<Secret>,
    /// File holding the CA certificates the server's certificate must chain to (PEM); unset:
    /// the system's roots (Temporal Cloud).
    pub server_ca_cert: Option<PathBuf>,
    /// The name the server's certificate must carry (and SNI); unset: the address's host.
    pub server_name: Option<String>,
}

/// TLS material from the SDK's configuration: a file or the data itself.
#[derive(Clone, Debug, PartialEq)]
pub enum Material {
    File(PathBuf),
    Data(Secret),
}

/// The SDK's client configuration, as loaded from the environment and the profile file; the
/// API key and any inline key data are [`Secret`]s.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemporalClientConfig {
    pub address: Option<String>,
    pub namespace: Option<String>,
    pub api_key: Option<Secret>,
    /// The profile's TLS section (or a `TEMPORAL_TLS_…` variable), if any.
    pub tls: Option<SdkTls>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SdkTls {
    pub disabled: Option<bool>,
    pub client_cert: Option<Material>,
    pub client_key: Option<Material>,
    pub server_ca_cert: Option<Material>,
    pub server_name: Option<String>,
    pub disable_host_verification: bool,
}

fn material(d: Option<DataSource>) -> Option<Material> {
    match d? {
        DataSource::Path(p) => Some(Material::File(PathBuf::from(p))),
        DataSource::Data(d) => Some(Material::Data(Secret::new(
            String::from_utf8_lossy(&d).into_owned(),
        ))),
        _ => None,
    }
}

impl TemporalClientConfig {
    /// The SDK's configuration from `env` (`TEMPORAL_CONFIG_FILE`, `TEMPORAL_PROFILE`,
    /// `TEMPORAL_ADDRESS`, …) and the profile file it names (or the SDK's default path).
    pub fn load(env: &[(String, String)]) -> anyhow::Result<Self> {
        let vars: HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("TEMPORAL_"))
            .cloned()
            .collect();
        let profile = load_client_config_profile(
            LoadClientConfigProfileOptions::default(),
            Some(&vars),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "the Temporal client configuration (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, \
                     TEMPORAL_…): {e}"
            )
        })?;
        let ClientConfigProfile {
            address,
            namespace,
            api_key,
            tls,
            ..
        } = profile;
        Ok(TemporalClientConfig {
            address: address.filter(|a| !a.is_empty()),
            namespace: namespace.filter(|n| !n.is_empty()),
            api_key: api_key.filter(|k| !k.is_empty()).map(Secret::new),
            tls: tls.map(|t| SdkTls {
                disabled: t.disabled,
                client_cert: material(t.client_cert),
                client_key: material(t.client_key),
                server_ca_cert: material(t.server_ca_cert),
                server_name: t.server_name,
                disable_host_verification: t.disable_host_verification,
            }),
        })
    }
}

/// Where a value came from, for error messages.
fn read_path(path: &Path, setting: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{setting}: reading {}", path.display()))
}

fn read_material(m: &Material, setting: &str) -> anyhow::Result<Vec<u8>> {
    match m {
        Material::File(p) => read_path(p, setting),
        Material::Data(d) => Ok(d.expose().as_bytes().to_vec()),
    }
}

impl TemporalSettings {
    /// The connection: each `temporal.*` setting given, else the SDK's configuration's, else
    /// the default (plain text to 127.0.0.1:7233, namespace `default`).
    pub fn connection(&self) -> anyhow::Result<TemporalConnection> {
        let sdk = &self.client_config;
        let sdk_tls = sdk.tls.clone().unwrap_or_default();
        let own = &self.tls;
        let api_key = self
            .api_key
            .clone()
            .filter(|k| !k.expose().is_empty())
            .or_else(|| sdk.api_key.clone());
        let own_tls_set = own.client_cert.is_some()
            || own.client_key.is_some()
            || own.server_ca_cert.is_some()
            || own.server_name.is_some();
        let enabled = own.enabled.unwrap_or_else(|| {
            own_tls_set
                || match &sdk.tls {
                    Some(t) => t.disabled != Some(true),
                    None => api_key.is_some(),
                }
        });
        let tls = if enabled {
            anyhow::ensure!(
                !sdk_tls.disable_host_verification,
                "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION (or the profile's \
                 disable_host_verification) is not supported: set temporal.tls.server_name \
                 (PROCURE_TEMPORAL__TLS__SERVER_NAME or TEMPORAL_TLS_SERVER_NAME) to the name \
                 the server's certificate carries"
            );
            let client_cert = match (&own.client_cert, &sdk_tls.client_cert) {
                (Some(p), _) => Some(read_path(p, CLIENT_CERT)?),
                (None, Some(m)) => Some(read_material(m, CLIENT_CERT)?),
                (None, None) => None,
            };
            let client_key = match (&own.client_key, &sdk_tls.client_key) {
                (Some(k), _) => Some(k.clone()),
                (None, Some(m)) => Some(Secret::new(
                    String::from_utf8(read_material(m, CLIENT_KEY)?)
                        .map_err(|_| anyhow::anyhow!("{CLIENT_KEY}: not PEM text"))?,
                )),
                (None, None) => None,
            };
            let server_ca_cert = match (&own.server_ca_cert, &sdk_tls.server_ca_cert) {
                (Some(p), _) => Some(read_path(p, SERVER_CA)?),
                (None, Some(m)) => Some(read_material(m, SERVER_CA)?),
                (None, None) => None,
            };
            match (&client_cert, &client_key) {
                (Some(cert), Some(key)) => check_client_pair(cert, key)?,
                (Some(_), None) => bail!("{CLIENT_CERT} is set but {CLIENT_KEY} is not"),
                (None, Some(_)) => bail!("{CLIENT_KEY} is set but {CLIENT_CERT} is not"),
                (None, None) => {}
            }
            if let Some(ca) = &server_ca_cert {
                let certs = certificates(ca).with_context(|| SERVER_CA.to_owned())?;
                anyhow::ensure!(!certs.is_empty(), "{SERVER_CA}: no PEM certificate in it");
            }
            Some(TemporalTls {
                server_ca_cert,
                server_name: own.server_name.clone().or(sdk_tls.server_name),
                client_cert,
                client_key,
            })
        } else {
            None
        };
        Ok(TemporalConnection {
            address: self
                .address
                .clone()
                .filter(|a| !a.is_empty())
                .or_else(|| sdk.address.clone())
                .unwrap_or_else(|| DEFAULT_TEMPORAL_ADDRESS.to_owned()),
            namespace: self
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| sdk.namespace.clone())
                .unwrap_or_else(|| "default".to_owned()),
            api_key,
            tls,
        })
    }
}

fn certificates(pem: &[u8]) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("not a PEM certificate: {e}"))
}

/// The client certificate parses, the key parses, and the key is the certificate's.
fn check_client_pair(cert: &[u8], key: &Secret) -> anyhow::Result<()> {
    use rustls::pki_types::{PrivateKeyDer, pem::PemObject};
    let chain = certificates(cert).with_context(|| CLIENT_CERT.to_owned())?;
    anyhow::ensure!(!chain.is_empty(), "{CLIENT_CERT}: no PEM certificate in it");
    // The parse error names no key material; say only that it is not a key.
    let der = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
        .map_err(|_| anyhow::anyhow!("{CLIENT_KEY}: not a PEM private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain, der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => anyhow::anyhow!(
            "{CLIENT_KEY} is not the private key of the certificate in {CLIENT_CERT}"
        ),
        _ => anyhow::anyhow!("{CLIENT_KEY}: not a usable private key"),
    })?;
    Ok(())
}
