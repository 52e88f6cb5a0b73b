//! Who is calling: signed bearer tokens (JWT, HS256) naming a role, and for customers the
//! customer they act for. The key comes from `PROCURE_JWT_SECRET`; without it a public
//! development key is used (with a warning) so the sandbox setup runs unconfigured.
//!
//! Verification accepts only HS256 (a token claiming `alg: none` or anything else is refused),
//! compares the signature in constant time, and requires an unexpired `exp`.

use crate::ApiError;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use hmac::{Hmac, Mac};
use procure_domain::Secret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Operator,
    Warehouse,
    Purchaser,
    Admin,
    /// Decodes Temporal payloads through the codec endpoint and nothing else: the credential
    /// a Web UI holds, short-lived (`CODEC_TTL_S`) and renewed by whoever runs the UI.
    Codec,
}

/// Lifetime of a codec token: a leaked one reads payloads for at most this long.
pub const CODEC_TTL_S: i64 = 3_600;

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Customer,
        Role::Operator,
        Role::Warehouse,
        Role::Purchaser,
        Role::Admin,
        Role::Codec,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Operator => "operator",
            Role::Warehouse => "warehouse",
            Role::Purchaser => "purchaser",
            Role::Admin => "admin",
            Role::Codec => "codec",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who: a user or service id.
    pub sub: String,
    pub role: Role,
    /// For customers: whose orders they may see and change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("a customer token must name its customer")]
    NoCustomer,
}

/// Public development key: anyone can read it here, so it protects nothing. Set
/// `PROCURE_JWT_SECRET` anywhere that matters.
const DEV_SECRET: &str = "procure-development-jwt-secret-do-not-use-in-production";

/// Tolerated clock difference between token issuer and us.
const LEEWAY_S: i64 = 30;

#[derive(Clone, Debug)]
pub struct TokenKey {
    secret: Secret,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

impl TokenKey {
    pub fn new(secret: Secret) -> Self {
        TokenKey { secret }
    }

    /// The public development key: sandbox setups and tests only.
    pub fn development() -> Self {
        TokenKey::new(Secret::new(DEV_SECRET))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.secret.expose().as_bytes())
            .expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// A token for `role` valid for `ttl_s` seconds from `now_s`.
    pub fn issue(
        &self,
        sub: &str,
        role: Role,
        customer_id: Option<&str>,
        now_s: i64,
        ttl_s: i64,
    ) -> String {
        self.sign(&Claims {
            sub: sub.to_owned(),
            role,
            customer_id: customer_id.map(str::to_owned),
            exp: now_s + ttl_s,
            iat: now_s,
        })
    }

    pub fn verify(&self, token: &str, now_s: i64) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::Malformed)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm);
        }
        let sig = B64.decode(s).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        // `verify_slice` compares in constant time.
        mac.verify_slice(&sig).map_err(|_| AuthError::Signature)?;
        let claims: Claims = B64
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(AuthError::Malformed)?;
        if claims.exp + LEEWAY_S < now_s {
            return Err(AuthError::Expired);
        }
        if claims.role == Role::Customer && claims.customer_id.as_deref().is_none_or(str::is_empty)
        {
            return Err(AuthError::NoCustomer);
        }
        Ok(claims)
    }
}

fn now_s() -> i64 {
    procure_domain::clock::now_ms() / 1000
}

/// The authenticated caller of a request (from `Authorization: Bearer <token>`).
#[derive(Clone, Debug)]
pub struct Caller(pub Claims);

impl Caller {
    pub fn role(&self) -> Role {
        self.0.role
    }

    /// 403 unless the caller has one of `roles` (admins pass every check).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.0.role == Role::Admin || roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "role {} may not do this",
                self.0.role.as_str()
            )))
        }
    }

    /// 403 unless the caller may act for `customer_id`: staff of the given roles may, a
    /// customer only for themself.
    pub fn require_customer(&self, customer_id: &str, staff: &[Role]) -> Result<(), ApiError> {
        match self.0.role {
            Role::Customer if self.0.customer_id.as_deref() == Some(customer_id) => Ok(()),
            Role::Customer => Err(ApiError::Forbidden(
                "a customer may act only on their own orders".into(),
            )),
            _ => self.require(staff),
        }
    }

    /// After the role check: a customer may act only for themself; staff for anyone.
    pub fn owns(&self, customer_id: &str) -> Result<(), ApiError> {
        match self.0.role {
            Role::Customer if self.0.customer_id.as_deref() != Some(customer_id) => Err(
                ApiError::Forbidden("a customer may act only on their own orders".into()),
            ),
            _ => Ok(()),
        }
    }

    /// The customer a customer token acts for; `None` for staff.
    pub fn customer_id(&self) -> Option<&str> {
        match self.0.role {
            Role::Customer => self.0.customer_id.as_deref(),
            _ => None,
        }
    }
}

/// Verify a bearer token (header value without the scheme).
pub fn authenticate(key: &TokenKey, token: &str) -> Result<Caller, ApiError> {
    key.verify(token, now_s())
        .map(Caller)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

impl axum::extract::FromRequestParts<crate::AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("expected Authorization: Bearer <token>".into())
            })?;
        authenticate(&state.tokens, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(Secret::new("test-secret-that-is-long-enough-for-hs256"))
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let k = key();
        let t = k.issue("op-1", Role::Operator, None, 1_000, 60);
        let c = k.verify(&t, 1_030).unwrap();
        assert_eq!((c.sub.as_str(), c.role), ("op-1", Role::Operator));
        assert_eq!(
            k.verify(&t, 1_000 + 60 + LEEWAY_S + 1),
            Err(AuthError::Expired)
        );
    }

    #[test]
    fn forged_altered_and_unsigned_tokens_are_refused() {
        let k = key();
        let t = k.issue("c-1", Role::Customer, Some("cust-1"), 1_000, 60);
        let other = TokenKey::new(Secret::new("another-secret-that-is-long-enough-x"));
        assert_eq!(other.verify(&t, 1_000), Err(AuthError::Signature));
        // Promote the customer to admin without re-signing.
        let parts: Vec<&str> = t.split('.').collect();
        let forged_claims =
            B64.encode(br#"{"sub":"c-1","role":"admin","exp":99999999999,"iat":0}"#);
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(k.verify(&forged, 1_000), Err(AuthError::Signature));
        let none = format!(
            "{}.{forged_claims}.",
            B64.encode(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert_eq!(k.verify(&none, 1_000), Err(AuthError::Algorithm));
        for junk in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert_eq!(k.verify(junk, 1_000), Err(AuthError::Malformed), "{junk:?}");
        }
        let no_customer = k.issue("c-2", Role::Customer, None, 1_000, 60);
        assert_eq!(k.verify(&no_customer, 1_000), Err(AuthError::NoCustomer));
    }

    #[test]
    fn roles_and_ownership() {
        let k = key();
        let now = 1_000;
        let caller = |role, cust: Option<&str>| {
            Caller(k.verify(&k.issue("x", role, cust, now, 60), now).unwrap())
        };
        let customer = caller(Role::Customer, Some("cust-1"));
        assert!(
            customer
                .require_customer("cust-1", &[Role::Operator])
                .is_ok()
        );
        assert!(
            customer
                .require_customer("cust-2", &[Role::Operator])
                .is_err()
        );
        assert!(customer.require(&[Role::Operator]).is_err());
        let op = caller(Role::Operator, None);
        assert!(op.require_customer("cust-2", &[Role::Operator]).is_ok());
        assert!(op.require(&[Role::Warehouse]).is_err());
        let admin = caller(Role::Admin, None);
        assert!(admin.require(&[Role::Warehouse]).is_ok());
        // A codec token passes only where the codec role is named, never the admin-only checks.
        let codec = caller(Role::Codec, None);
        assert!(codec.require(&[Role::Operator, Role::Codec]).is_ok());
        assert!(codec.require(&[Role::Operator]).is_err());
        assert!(codec.require(&[]).is_err());
        assert_eq!(codec.customer_id(), None);
        assert_eq!(customer.customer_id(), Some("cust-1"));
        assert_eq!(op.customer_id(), None);
    }
}
