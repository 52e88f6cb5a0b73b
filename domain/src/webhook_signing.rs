//! Signing our own webhooks per the Standard Webhooks specification
//! (docs/vendors/standard-webhooks.md): symmetric `v1` signatures, HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, base64, through the specification's own Rust
//! library (`standardwebhooks`). A secret is `whsec_` + base64 of 32 random bytes (the
//! specification allows 24 to 64); during a rotation's overlap a delivery carries a signature
//! by each secret, space-separated, so a consumer holding either verifies it.

use crate::Secret;
use aes_gcm::aead::{OsRng, rand_core::RngCore};
use base64::{Engine, engine::general_purpose::STANDARD};

/// The prefix of a symmetric secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret we generate.
pub const SECRET_BYTES: usize = 32;

/// The header names of the specification.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("a webhook secret is whsec_ followed by base64 of 24 to 64 bytes")]
    BadSecret,
    #[error("a webhook id or timestamp may not contain '.'")]
    BadId,
    #[error("the body is not UTF-8")]
    BadBody,
}

/// A fresh secret: `whsec_` + base64 of [`SECRET_BYTES`] bytes from the operating system.
pub fn generate_secret() -> Secret {
    let mut key = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut key);
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
}

/// Whether `s` is a secret of the specification's symmetric form.
pub fn check_secret(s: &Secret) -> Result<(), SigningError> {
    let raw = s
        .expose()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SigningError::BadSecret)?;
    match STANDARD.decode(raw) {
        Ok(k) if (24..=64).contains(&k.len()) => Ok(()),
        _ => Err(SigningError::BadSecret),
    }
}

/// The `webhook-signature` header value of one delivery: a `v1,<base64>` signature by each
/// of `secrets` (the current one first), space-separated.
pub fn signature_header(
    secrets: &[&Secret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    if msg_id.contains('.') {
        return Err(SigningError::BadId);
    }
    let mut out = Vec::with_capacity(secrets.len());
    for s in secrets {
        check_secret(s)?;
        let hook =
            standardwebhooks::Webhook::new(s.expose()).map_err(|_| SigningError::BadSecret)?;
        out.push(
            hook.sign(msg_id, timestamp, body)
                .map_err(|_| SigningError::BadBody)?,
        );
    }
    Ok(out.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification library's own known-answer vector.
    #[test]
    fn signs_the_specifications_known_answer() {
        let secret = Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let header = signature_header(
            &[&secret],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(header, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn two_secrets_sign_twice_space_separated() {
        let (a, b) = (generate_secret(), generate_secret());
        let both = signature_header(&[&a, &b], "evt_1", 1, b"{}").unwrap();
        let one = signature_header(&[&a], "evt_1", 1, b"{}").unwrap();
        let other = signature_header(&[&b], "evt_1", 1, b"{}").unwrap();
        assert_eq!(both, format!("{one} {other}"));
        assert_ne!(one, other);
    }

    #[test]
    fn generated_secrets_have_the_specified_form() {
        let s = generate_secret();
        assert!(s.expose().starts_with("whsec_"));
        check_secret(&s).unwrap();
        assert_ne!(generate_secret().expose(), s.expose());
        for bad in ["", "whsec_", "whsec_!!!", "sk_live_abc", "whsec_c2hvcnQ="] {
            assert_eq!(
                check_secret(&Secret::new(bad)),
                Err(SigningError::BadSecret),
                "{bad}"
            );
        }
        assert_eq!(
            signature_header(&[&s], "evt.1", 1, b"{}"),
            Err(SigningError::BadId)
        );
    }
}
