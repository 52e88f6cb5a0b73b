//! Encryption at rest for credentials and other secrets we must store (AES-256-GCM, random
//! 96-bit nonce, key id in the envelope so keys can rotate: new data is sealed with the current
//! key, old data opens with any key still listed).

use crate::Secret;
use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng},
};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("malformed sealed value")]
    Malformed,
    #[error("unknown key id {0:?}")]
    UnknownKey(String),
    #[error("sealed value failed authentication")]
    Tampered,
    #[error("key must be 32 bytes of hex")]
    BadKey,
}

#[derive(Clone)]
pub struct Sealer {
    current: String,
    keys: HashMap<String, Key<Aes256Gcm>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Key used when none is configured. Anyone can read this source, so it protects nothing;
/// it exists so the sandbox setup runs without configuration. Set `PROCURE_DATA_KEYS`.
const DEV_KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

impl Sealer {
    /// `spec` = `"kid1:hex32,kid0:hex32"`; the first key seals, every key opens.
    pub fn from_spec(spec: &str) -> Result<Sealer, SealError> {
        let mut keys = HashMap::new();
        let mut current = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, hexkey) = part.split_once(':').ok_or(SealError::BadKey)?;
            let bytes = hex::decode(hexkey).map_err(|_| SealError::BadKey)?;
            if bytes.len() != 32 || kid.is_empty() {
                return Err(SealError::BadKey);
            }
            current.get_or_insert_with(|| kid.to_owned());
            keys.insert(kid.to_owned(), *Key::<Aes256Gcm>::from_slice(&bytes));
        }
        Ok(Sealer {
            current: current.ok_or(SealError::BadKey)?,
            keys,
        })
    }

    /// The public development key under key id `dev`: sandbox setups and tests only.
    pub fn development() -> Sealer {
        Sealer::development_with("dev")
    }

    /// The public development key under key id `kid`.
    pub fn development_with(kid: &str) -> Sealer {
        Sealer::from_spec(&format!("{kid}:{DEV_KEY_HEX}")).expect("the development key is valid")
    }

    /// Key id new data is sealed with.
    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// Seal into binary: the current key's id and `nonce ‖ ciphertext` (for envelopes that
    /// carry the key id themselves, such as Temporal payload metadata).
    pub fn seal_binary(&self, plaintext: &[u8]) -> (String, Vec<u8>) {
        let cipher = Aes256Gcm::new(&self.keys[&self.current]);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(&nonce, plaintext)
            .expect("AES-GCM encryption does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        (self.current.clone(), out)
    }

    /// Open what [`Sealer::seal_binary`] produced with key `kid`.
    pub fn open_binary(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        if sealed.len() < 12 + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = sealed.split_at(12);
        Aes256Gcm::new(key)
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SealError::Tampered)
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new(&self.keys[&self.current]);
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = cipher
            .encrypt(&nonce, plaintext)
            .expect("AES-GCM encryption does not fail");
        format!(
            "v1:{}:{}:{}",
            self.current,
            hex::encode(nonce),
            hex::encode(ct)
        )
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let mut parts = sealed.splitn(4, ':');
        let (Some("v1"), Some(kid), Some(nonce), Some(ct)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Malformed);
        };
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| SealError::UnknownKey(kid.to_owned()))?;
        let nonce = hex::decode(nonce).map_err(|_| SealError::Malformed)?;
        let ct = hex::decode(ct).map_err(|_| SealError::Malformed)?;
        if nonce.len() != 12 {
            return Err(SealError::Malformed);
        }
        Aes256Gcm::new(key)
            .decrypt(Nonce::from_slice(&nonce), ct.as_ref())
            .map_err(|_| SealError::Tampered)
    }

    pub fn seal_secret(&self, s: &Secret) -> String {
        self.seal(s.expose().as_bytes())
    }

    pub fn open_secret(&self, sealed: &str) -> Result<Secret, SealError> {
        String::from_utf8(self.open(sealed)?)
            .map(Secret::new)
            .map_err(|_| SealError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:1111111111111111111111111111111111111111111111111111111111111111";
    const K0: &str = "k0:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn seals_opens_and_rotates() {
        let old = Sealer::from_spec(K0).unwrap();
        let sealed_old = old.seal(b"token-a");
        let new = Sealer::from_spec(&format!("{K1},{K0}")).unwrap();
        assert_eq!(
            new.open(&sealed_old).unwrap(),
            b"token-a",
            "old data opens after rotation"
        );
        let sealed_new = new.seal(b"token-b");
        assert!(sealed_new.starts_with("v1:k1:"));
        assert!(!sealed_new.contains("token-b"));
        assert_ne!(new.seal(b"token-b"), sealed_new, "fresh nonce each time");
        assert!(matches!(
            old.open(&sealed_new),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn tampering_is_detected() {
        let s = Sealer::from_spec(K1).unwrap();
        let mut sealed = s.seal(b"secret");
        let last = sealed.pop().unwrap();
        sealed.push(if last == '0' { '1' } else { '0' });
        assert!(matches!(s.open(&sealed), Err(SealError::Tampered)));
        assert!(matches!(s.open("v1:k1:zz"), Err(SealError::Malformed)));
        assert!(matches!(
            Sealer::from_spec("k:1234"),
            Err(SealError::BadKey)
        ));
    }
}
