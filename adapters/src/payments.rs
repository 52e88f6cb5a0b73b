//! Customer payments in Stripe's PaymentIntents shape: create (idempotent on our key), read,
//! confirm (the sandbox's stand-in for the customer paying), cancel, refund, and verification of
//! the signed webhook. Amounts travel in minor units with a lower-case ISO currency.

use procure_domain::{Currency, Money, Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WebhookError;
use super::http::{ApiError, BuildError, HttpClient, HttpConfig, RawResponse, join_url};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentsConfig {
    pub base_url: String,
    pub api_key: Secret,
    pub webhook_secret: Secret,
    /// Webhooks signed longer ago than this are refused (replay protection).
    pub webhook_tolerance_s: i64,
    pub http: HttpConfig,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            api_key: Secret::new("sk_test_procure"),
            webhook_secret: Secret::new("whsec_procure_demo"),
            webhook_tolerance_s: 300,
            http: HttpConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
    #[serde(other)]
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    pub id: String,
    pub status: IntentStatus,
    pub amount: Money,
    pub amount_received: Money,
    /// `metadata[order_id]` as we set it.
    pub order_id: Option<String>,
    /// For the customer's browser only; never serialized, so never in workflow history.
    #[serde(skip)]
    pub client_secret: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub amount: Money,
    pub payment_intent: Option<String>,
    pub status: String,
}

/// A verified payments webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEvent {
    pub id: String,
    /// e.g. `payment_intent.succeeded`.
    pub event_type: String,
    /// The PaymentIntent the event is about, when it is about one.
    pub intent: Option<PaymentIntent>,
}

/// Stripe-shaped payments client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Payments {
    cfg: PaymentsConfig,
    http: HttpClient,
}

/// Read Stripe's error envelope `{"error":{"type","code","message"}}` into an [`ApiError`].
pub(crate) fn classify_error(resp: &RawResponse) -> ApiError {
    let body: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
    let err = &body["error"];
    let field = |k: &str| err.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = field("type").unwrap_or_default();
    let message = field("message").unwrap_or_else(|| resp.snippet());
    // An idempotency_error carries no code: the type is the code.
    let code = field("code").unwrap_or_else(|| {
        if kind.is_empty() {
            format!("http_{}", resp.status)
        } else {
            kind.clone()
        }
    });
    match (resp.status, kind.as_str()) {
        (_, "idempotency_error") if resp.status != 409 => ApiError::Rejected {
            status: resp.status,
            code: "idempotency_error".into(),
            message,
        },
        _ => ApiError::from_status(resp, code, message),
    }
}

/// 409 = the same idempotency key is in flight; its result is worth waiting for.
fn retry_on(r: &RawResponse) -> bool {
    r.status >= 500 || r.status == 429 || r.status == 409
}

fn money_field(v: &Value, key: &str, currency: Currency) -> Result<Money, ApiError> {
    let minor = v
        .get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::InvalidResponse(format!("missing integer {key}")))?;
    Ok(Money::new(minor, currency))
}

fn currency_field(v: &Value) -> Result<Currency, ApiError> {
    let c = v
        .get("currency")
        .and_then(Value::as_str)
        .unwrap_or_default();
    c.to_ascii_uppercase()
        .parse()
        .map_err(|_| ApiError::InvalidResponse(format!("unsupported currency {c:?}")))
}

fn str_field(v: &Value, key: &str) -> Result<String, ApiError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::InvalidResponse(format!("missing {key}")))
}

fn parse_intent(v: &Value) -> Result<PaymentIntent, ApiError> {
    let currency = currency_field(v)?;
    let status = serde_json::from_value(v.get("status").cloned().unwrap_or(Value::Null))
        .map_err(|_| ApiError::InvalidResponse("missing status".into()))?;
    Ok(PaymentIntent {
        id: str_field(v, "id")?,
        status,
        amount: money_field(v, "amount", currency)?,
        amount_received: money_field(v, "amount_received", currency)
            .unwrap_or(Money::zero(currency)),
        order_id: v
            .pointer("/metadata/order_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        client_secret: v
            .get("client_secret")
            .and_then(Value::as_str)
            .map(Secret::new),
    })
}

/// Ids go into URL paths: accept only what Stripe ids are made of.
fn checked_id(id: &str) -> Result<&str, ApiError> {
    if !id.is_empty()
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        Ok(id)
    } else {
        Err(ApiError::Rejected {
            status: 0,
            code: "invalid_id".into(),
            message: "malformed object id".into(),
        })
    }
}

fn intent_form(amount: Money, order_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("amount", amount.minor.to_string()),
        ("currency", amount.currency.code().to_ascii_lowercase()),
        ("metadata[order_id]", order_id.to_owned()),
    ]
}

impl Payments {
    pub fn new(cfg: PaymentsConfig) -> Result<Self, BuildError> {
        let http = HttpClient::new(
            "payments",
            &cfg.http,
            vec![cfg.api_key.clone(), cfg.webhook_secret.clone()],
        )?;
        Ok(Payments { cfg, http })
    }

    async fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        form: &[(&'static str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, ApiError> {
        let url = join_url(&self.cfg.base_url, path);
        let make = |c: &reqwest::Client| {
            let mut rb = c
                .request(method.clone(), &url)
                .bearer_auth(self.cfg.api_key.expose());
            if let Some(key) = idempotency_key {
                rb = rb.header("Idempotency-Key", key);
            }
            if method == reqwest::Method::POST {
                rb.form(form)
            } else {
                rb
            }
        };
        let resp = self
            .http
            .execute(op, make, retry_on)
            .await
            .map_err(ApiError::from_transport)?;
        if !resp.is_success() {
            return Err(classify_error(&resp));
        }
        resp.json().map_err(ApiError::InvalidResponse)
    }

    /// Create a PaymentIntent. The same key with the same parameters returns the stored intent;
    /// with other parameters it is `Rejected { code: "idempotency_error" }`.
    pub async fn create_intent(
        &self,
        idempotency_key: &str,
        amount: Money,
        order_id: &str,
    ) -> Result<PaymentIntent, ApiError> {
        if amount.minor <= 0 {
            return Err(ApiError::Rejected {
                status: 0,
                code: "invalid_amount".into(),
                message: format!("{amount}"),
            });
        }
        let form = intent_form(amount, order_id);
        let v = self
            .send(
                "create_intent",
                reqwest::Method::POST,
                "/v1/payment_intents",
                &form,
                Some(idempotency_key),
            )
            .await?;
        parse_intent(&v)
    }

    pub async fn get_intent(&self, id: &str) -> Result<PaymentIntent, ApiError> {
        let path = format!("/v1/payment_intents/{}", checked_id(id)?);
        parse_intent(
            &self
                .send("get_intent", reqwest::Method::GET, &path, &[], None)
                .await?,
        )
    }

    /// Cancel an unpaid intent; a succeeded one answers `payment_intent_unexpected_state`.
    pub async fn cancel_intent(&self, id: &str) -> Result<PaymentIntent, ApiError> {
        let path = format!("/v1/payment_intents/{}/cancel", checked_id(id)?);
        parse_intent(
            &self
                .send("cancel_intent", reqwest::Method::POST, &path, &[], None)
                .await?,
        )
    }

    /// Withdraw an intent the customer was asked to pay: cancel it unless it already
    /// succeeded. Returns true when it was paid (the payment stands). A payment landing between
    /// the read and the cancel makes the cancel fail; a retry then reads it as succeeded.
    pub async fn withdraw_intent(&self, id: &str) -> Result<bool, ApiError> {
        match self.get_intent(id).await?.status {
            IntentStatus::Succeeded => Ok(true),
            IntentStatus::Canceled => Ok(false),
            _ => self.cancel_intent(id).await.map(|_| false),
        }
    }

    /// Refund `amount` of a succeeded intent, idempotent on `idempotency_key`.
    pub async fn refund(
        &self,
        idempotency_key: &str,
        intent_id: &str,
        amount: Money,
    ) -> Result<Refund, ApiError> {
        if amount.minor <= 0 {
            return Err(ApiError::Rejected {
                status: 0,
                code: "invalid_amount".into(),
                message: format!("{amount}"),
            });
        }
        let form = vec![
            ("payment_intent", checked_id(intent_id)?.to_owned()),
            ("amount", amount.minor.to_string()),
        ];
        let v = self
            .send(
                "refund",
                reqwest::Method::POST,
                "/v1/refunds",
                &form,
                Some(idempotency_key),
            )
            .await?;
        // The refund's currency is the intent's; use the answer's when it states one.
        let currency = if v.get("currency").is_some() {
            currency_field(&v)?
        } else {
            amount.currency
        };
        Ok(Refund {
            id: str_field(&v, "id")?,
            amount: money_field(&v, "amount", currency)?,
            payment_intent: v
                .get("payment_intent")
                .and_then(Value::as_str)
                .map(str::to_owned),
            status: v
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// Verify a webhook's `Stripe-Signature` header against the raw body, then parse it.
    pub fn verify_webhook(
        &self,
        body: &[u8],
        signature_header: &str,
        now_s: i64,
    ) -> Result<PaymentEvent, WebhookError> {
        self.cfg.verify_webhook(body, signature_header, now_s)
    }
}

impl PaymentsConfig {
    /// Webhook verification without an HTTP client (for the process that receives webhooks).
    pub fn verify_webhook(
        &self,
        body: &[u8],
        signature_header: &str,
        now_s: i64,
    ) -> Result<PaymentEvent, WebhookError> {
        signing::verify_stripe_signature(
            signature_header,
            body,
            self.webhook_secret.expose(),
            now_s,
            self.webhook_tolerance_s,
        )?;
        parse_event(body)
    }
}

fn parse_event(body: &[u8]) -> Result<PaymentEvent, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let object = v.pointer("/data/object");
    let intent = match object {
        Some(o) if o.get("object").and_then(Value::as_str) == Some("payment_intent") => {
            Some(parse_intent(o).map_err(|e| WebhookError::Malformed(e.to_string()))?)
        }
        _ => None,
    };
    Ok(PaymentEvent {
        id: field("id").ok_or_else(|| WebhookError::Malformed("missing id".into()))?,
        event_type: field("type").ok_or_else(|| WebhookError::Malformed("missing type".into()))?,
        intent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Reply};
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    const INTENT: &str = r#"{"id":"pi_123","object":"payment_intent","amount":2599,"amount_received":0,"currency":"usd","status":"requires_payment_method","client_secret":"pi_123_secret_x","metadata":{"order_id":"ord-1"}}"#;

    #[test]
    fn parses_an_intent() {
        let i = parse_intent(&serde_json::from_str(INTENT).unwrap()).unwrap();
        assert_eq!(i.id, "pi_123");
        assert_eq!(i.status, IntentStatus::RequiresPaymentMethod);
        assert_eq!(i.amount, Money::new(2599, Currency::USD));
        assert_eq!(i.amount_received, Money::new(0, Currency::USD));
        assert_eq!(i.order_id.as_deref(), Some("ord-1"));
        let json = serde_json::to_string(&i).unwrap();
        assert!(
            !json.contains("secret"),
            "client_secret never serialized: {json}"
        );
    }

    #[test]
    fn sends_minor_units_and_lower_case_currency() {
        let f = intent_form(Money::new(1500, Currency::JPY), "ord-9");
        assert_eq!(f[0], ("amount", "1500".to_string()));
        assert_eq!(f[1], ("currency", "jpy".to_string()));
        assert_eq!(f[2], ("metadata[order_id]", "ord-9".to_string()));
    }

    #[test]
    fn classifies_stripe_errors() {
        let r = |status, body: &str| RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        };
        let idem = classify_error(&r(
            400,
            r#"{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters"}}"#,
        ));
        assert_eq!(idem.code(), Some("idempotency_error"));
        assert!(!idem.is_retryable());
        let state = classify_error(&r(
            400,
            r#"{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"m"}}"#,
        ));
        assert_eq!(state.code(), Some("payment_intent_unexpected_state"));
        assert!(
            classify_error(&r(
                409,
                r#"{"error":{"type":"idempotency_error","message":"in flight"}}"#
            ))
            .is_retryable()
        );
        assert!(
            classify_error(&r(500, r#"{"error":{"type":"api_error","message":"m"}}"#))
                .is_retryable()
        );
        assert!(matches!(
            classify_error(&r(401, "{}")),
            ApiError::Unauthorized(_)
        ));
    }

    #[test]
    fn refuses_ids_that_would_escape_the_path() {
        assert!(checked_id("pi_123").is_ok());
        assert!(checked_id("../v1/refunds").is_err());
        assert!(checked_id("pi_1?x=1").is_err());
        assert!(checked_id("").is_err());
    }

    fn client(base_url: String) -> Payments {
        let mut cfg = PaymentsConfig {
            base_url,
            ..PaymentsConfig::default()
        };
        cfg.http = crate::testing::quick_http(None);
        Payments::new(cfg).unwrap()
    }

    #[test]
    fn verifies_webhooks() {
        let body = format!(
            r#"{{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1,"data":{{"object":{INTENT}}}}}"#
        );
        let header =
            signing::stripe_signature_header("whsec_procure_demo", 1_700_000_000, body.as_bytes());
        let p = PaymentsConfig::default();
        let ev = p
            .verify_webhook(body.as_bytes(), &header, 1_700_000_010)
            .unwrap();
        assert_eq!(ev.event_type, "payment_intent.succeeded");
        assert_eq!(ev.intent.unwrap().id, "pi_123");
        assert_eq!(
            p.verify_webhook(body.replace("2599", "1").as_bytes(), &header, 1_700_000_010),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            p.verify_webhook(body.as_bytes(), &header, 1_700_000_400),
            Err(WebhookError::Stale)
        );
    }

    #[tokio::test]
    async fn creates_with_key_and_bearer_and_retries_an_in_flight_duplicate() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let server = MockServer::start(move |_| {
            if h.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(
                    409,
                    r#"{"error":{"type":"idempotency_error","message":"in flight"}}"#,
                )
            } else {
                Reply::json(200, INTENT)
            }
        })
        .await;
        let i = client(server.base_url())
            .create_intent("ord-1-pay", Money::new(2599, Currency::USD), "ord-1")
            .await
            .unwrap();
        assert_eq!(i.amount, Money::new(2599, Currency::USD));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert_eq!(
                (r.method.as_str(), r.path()),
                ("POST", "/v1/payment_intents")
            );
            assert_eq!(r.header("authorization"), Some("Bearer sk_test_procure"));
            assert_eq!(r.header("idempotency-key"), Some("ord-1-pay"));
            assert_eq!(r.form()["currency"], "usd");
            assert_eq!(r.form()["metadata[order_id]"], "ord-1");
        }
    }

    #[tokio::test]
    async fn refunds_and_maps_errors() {
        let server = MockServer::start(|req| match req.form().get("amount").map(String::as_str) {
            Some("100") => Reply::json(200, r#"{"id":"re_1","object":"refund","amount":100,"payment_intent":"pi_123","status":"succeeded"}"#),
            _ => Reply::json(400, r#"{"error":{"type":"invalid_request_error","code":"amount_too_large","message":"too much"}}"#),
        })
        .await;
        let p = client(server.base_url());
        let r = p
            .refund("ord-1-refund-1", "pi_123", Money::new(100, Currency::EUR))
            .await
            .unwrap();
        assert_eq!(
            (r.id.as_str(), r.amount),
            ("re_1", Money::new(100, Currency::EUR))
        );
        let err = p
            .refund("ord-1-refund-2", "pi_123", Money::new(999, Currency::EUR))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("amount_too_large"));
        assert_eq!(
            server.requests()[0].header("idempotency-key"),
            Some("ord-1-refund-1")
        );
    }

    #[tokio::test]
    async fn reads_and_cancels_by_path() {
        let server = MockServer::start(|_| Reply::json(200, INTENT)).await;
        let p = client(server.base_url());
        p.get_intent("pi_123").await.unwrap();
        p.cancel_intent("pi_123").await.unwrap();
        let got: Vec<(String, String)> = server
            .requests()
            .iter()
            .map(|r| (r.method.clone(), r.path().to_owned()))
            .collect();
        assert_eq!(
            got,
            [
                ("GET".into(), "/v1/payment_intents/pi_123".into()),
                ("POST".into(), "/v1/payment_intents/pi_123/cancel".into()),
            ]
        );
    }
}
