//! Encryption of every Temporal payload (workflow and activity inputs and results, signals,
//! queries, schedule actions): AES-256-GCM over the whole serialized payload, with the key id
//! in the payload's metadata so keys rotate (new payloads use the first key, old ones open
//! with any key still configured). Payloads without our encoding pass through unchanged, so
//! histories written before encryption still replay and an operator may send a plain JSON
//! signal from the CLI or the Web UI.
//!
//! Keys come from `PROCURE_PAYLOAD_KEYS` (`"kid1:hex32,kid0:hex32"`), separate from the keys
//! that seal data at rest. Operators read decoded payloads through the codec endpoint the API
//! serves for the Temporal Web UI (`procure_api::codec`).

use futures::future::{BoxFuture, FutureExt};
use procure_domain::seal::{SealError, Sealer};
use prost::Message;
use std::{collections::HashMap, sync::Arc};
use temporalio_common::{
    data_converters::{
        DataConverter, DefaultFailureConverter, PayloadCodec, PayloadConversionError,
        PayloadConverter, SerializationContextData,
    },
    protos::temporal::api::common::v1::Payload,
};

/// `encoding` metadata of an encrypted payload.
pub const ENCODING: &str = "binary/encrypted";
/// Metadata key naming the key a payload was encrypted with.
pub const KEY_ID: &str = "encryption-key-id";
/// Key id of the public development key.
const DEV_KEY_ID: &str = "dev-payload";

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("encrypted payload without a key id")]
    MissingKeyId,
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error("decrypted payload is not a payload: {0}")]
    Corrupt(#[from] prost::DecodeError),
}

#[derive(Clone, Debug)]
pub struct EncryptionCodec {
    sealer: Arc<Sealer>,
}

impl EncryptionCodec {
    pub fn new(sealer: Sealer) -> Self {
        EncryptionCodec {
            sealer: Arc::new(sealer),
        }
    }

    /// The public development key (key id `dev-payload`): sandbox setups and tests only.
    pub fn development() -> Self {
        Self::new(Sealer::development_with(DEV_KEY_ID))
    }

    pub fn encode_one(&self, payload: &Payload) -> Payload {
        let (kid, sealed) = self.sealer.seal_binary(&payload.encode_to_vec());
        Payload {
            metadata: HashMap::from([
                ("encoding".to_owned(), ENCODING.as_bytes().to_vec()),
                (KEY_ID.to_owned(), kid.into_bytes()),
            ]),
            data: sealed,
            ..Default::default()
        }
    }

    /// The original payload of an encrypted one; any other payload as it is.
    pub fn decode_one(&self, payload: Payload) -> Result<Payload, CodecError> {
        if !is_encrypted(&payload) {
            return Ok(payload);
        }
        let kid = payload
            .metadata
            .get(KEY_ID)
            .and_then(|k| std::str::from_utf8(k).ok())
            .ok_or(CodecError::MissingKeyId)?;
        let plain = self.sealer.open_binary(kid, &payload.data)?;
        Ok(Payload::decode(plain.as_slice())?)
    }

    /// The converter every Temporal client of ours uses: serde JSON payloads, encrypted.
    pub fn data_converter(&self) -> DataConverter {
        DataConverter::new(
            PayloadConverter::default(),
            DefaultFailureConverter::default(),
            self.clone(),
        )
    }
}

pub fn is_encrypted(payload: &Payload) -> bool {
    payload.metadata.get("encoding").map(Vec::as_slice) == Some(ENCODING.as_bytes())
}

impl PayloadCodec for EncryptionCodec {
    fn encode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let out = payloads.iter().map(|p| self.encode_one(p)).collect();
        futures::future::ready(Ok(out)).boxed()
    }

    fn decode(
        &self,
        _context: &SerializationContextData,
        payloads: Vec<Payload>,
    ) -> BoxFuture<'static, Result<Vec<Payload>, PayloadConversionError>> {
        let out = payloads
            .into_iter()
            .map(|p| self.decode_one(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PayloadConversionError::EncodingError(Box::new(e)));
        futures::future::ready(out).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
    const K0: &str = "k0:0000000000000000000000000000000000000000000000000000000000000000";

    fn json_payload(body: &str) -> Payload {
        Payload {
            metadata: HashMap::from([("encoding".to_owned(), b"json/plain".to_vec())]),
            data: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn encrypts_round_trips_and_rotates() {
        let secret = r#"{"address":"1 Secret Street","token":"tok_live_123"}"#;
        let old = EncryptionCodec::new(Sealer::from_spec(K0).unwrap());
        let sealed = old.encode_one(&json_payload(secret));
        assert!(is_encrypted(&sealed));
        assert_eq!(sealed.metadata[KEY_ID], b"k0");
        let bytes = sealed.encode_to_vec();
        assert!(
            !bytes.windows(6).any(|w| w == b"Secret")
                && !bytes.windows(8).any(|w| w == b"tok_live"),
            "no clear text in the encoded payload"
        );
        // After rotation new payloads use k1 and old ones still open.
        let new = EncryptionCodec::new(Sealer::from_spec(&format!("{K1},{K0}")).unwrap());
        assert_eq!(
            new.decode_one(sealed.clone()).unwrap(),
            json_payload(secret)
        );
        assert_eq!(
            new.encode_one(&json_payload(secret)).metadata[KEY_ID],
            b"k1"
        );
        // A key that is gone, a tampered payload and a missing key id are errors, not garbage.
        let other = EncryptionCodec::new(Sealer::from_spec(K1).unwrap());
        assert!(matches!(
            other.decode_one(sealed.clone()),
            Err(CodecError::Seal(SealError::UnknownKey(_)))
        ));
        let mut tampered = sealed.clone();
        *tampered.data.last_mut().unwrap() ^= 1;
        assert!(matches!(
            old.decode_one(tampered),
            Err(CodecError::Seal(SealError::Tampered))
        ));
        let mut no_kid = sealed;
        no_kid.metadata.remove(KEY_ID);
        assert!(matches!(
            old.decode_one(no_kid),
            Err(CodecError::MissingKeyId)
        ));
    }

    #[test]
    fn plain_payloads_pass_through() {
        let codec = EncryptionCodec::new(Sealer::from_spec(K0).unwrap());
        let plain = json_payload(r#""operator says cancel""#);
        assert_eq!(codec.decode_one(plain.clone()).unwrap(), plain);
    }
}
