//! Booking of the international line: one shipment per reference, idempotent on the reference,
//! so a retried booking returns the shipment made the first time.

use procure_domain::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::http::{
    ApiError, BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CarrierConfig {
    pub base_url: String,
    pub api_key: Secret,
    pub http: HttpConfig,
}

impl Default for CarrierConfig {
    fn default() -> Self {
        CarrierConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            api_key: Secret::new("demo-carrier-key"),
            http: HttpConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub tracking_number: String,
    pub carrier: String,
}

/// International line client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Carrier {
    cfg: CarrierConfig,
    http: HttpClient,
}

fn booking_body(reference: &str, service: &str, weight_g: u32, destination_country: &str) -> Value {
    json!({
        "reference": reference,
        "service": service,
        "weight_g": weight_g,
        "destination_country": destination_country.to_ascii_uppercase(),
    })
}

fn parse_shipment(resp: &RawResponse) -> Result<Shipment, ApiError> {
    let v: Value = serde_json::from_str(&resp.body).unwrap_or(Value::Null);
    if !resp.is_success() {
        let field = |k: &str| {
            v.get(k)
                .or_else(|| v.pointer(&format!("/error/{k}")))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let code = field("code").unwrap_or_else(|| format!("http_{}", resp.status));
        let message = field("message").unwrap_or_else(|| resp.snippet());
        return Err(ApiError::from_status(resp, code, message));
    }
    let field = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::InvalidResponse(format!("missing {k} in {:?}", resp.snippet()))
            })
    };
    Ok(Shipment {
        shipment_id: field("shipment_id")?,
        tracking_number: field("tracking_number")?,
        carrier: field("carrier")?,
    })
}

impl Carrier {
    pub fn new(cfg: CarrierConfig) -> Result<Self, BuildError> {
        let http = HttpClient::new("carrier", &cfg.http, vec![cfg.api_key.clone()])?;
        Ok(Carrier { cfg, http })
    }

    /// Book a shipment; booking the same `reference` again returns the same shipment.
    pub async fn book(
        &self,
        reference: &str,
        service: &str,
        weight_g: u32,
        destination_country: &str,
    ) -> Result<Shipment, ApiError> {
        if reference.trim().is_empty() || weight_g == 0 || destination_country.len() != 2 {
            return Err(ApiError::Rejected {
                status: 0,
                code: "invalid_request".into(),
                message: "booking needs a reference, a weight and an ISO country code".into(),
            });
        }
        let url = join_url(&self.cfg.base_url, "/carrier/v1/shipments");
        let body = booking_body(reference, service, weight_g, destination_country);
        let make = |c: &reqwest::Client| {
            c.post(&url)
                .bearer_auth(self.cfg.api_key.expose())
                .json(&body)
        };
        let resp = self
            .http
            .execute("book", make, retry_5xx_429)
            .await
            .map_err(ApiError::from_transport)?;
        parse_shipment(&resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Reply};

    #[test]
    fn builds_the_booking_body() {
        assert_eq!(
            booking_body("ord-1", "EXPRESS", 1200, "de"),
            json!({"reference":"ord-1","service":"EXPRESS","weight_g":1200,"destination_country":"DE"})
        );
    }

    #[test]
    fn parses_answers_and_errors() {
        let ok = RawResponse {
            status: 200,
            body: r#"{"shipment_id":"shp_1","tracking_number":"SX1","carrier":"SANDBOX-EXP"}"#
                .into(),
            retry_after: None,
        };
        assert_eq!(
            parse_shipment(&ok).unwrap(),
            Shipment {
                shipment_id: "shp_1".into(),
                tracking_number: "SX1".into(),
                carrier: "SANDBOX-EXP".into()
            }
        );
        let bad = RawResponse {
            status: 422,
            body: r#"{"error":{"code":"bad_country","message":"no"}}"#.into(),
            retry_after: None,
        };
        assert_eq!(
            parse_shipment(&bad).unwrap_err().code(),
            Some("bad_country")
        );
        let down = RawResponse {
            status: 503,
            body: String::new(),
            retry_after: None,
        };
        assert!(parse_shipment(&down).unwrap_err().is_retryable());
    }

    #[tokio::test]
    async fn books_with_bearer_key() {
        let server = MockServer::start(|_| {
            Reply::json(
                200,
                r#"{"shipment_id":"shp_1","tracking_number":"SX1","carrier":"SANDBOX-EXP"}"#,
            )
        })
        .await;
        let carrier = Carrier::new(CarrierConfig {
            base_url: server.base_url(),
            ..CarrierConfig::default()
        })
        .unwrap();
        let s = carrier.book("ord-1", "EXPRESS", 1200, "DE").await.unwrap();
        assert_eq!(s.tracking_number, "SX1");
        let r = &server.requests()[0];
        assert_eq!(
            (r.method.as_str(), r.path()),
            ("POST", "/carrier/v1/shipments")
        );
        assert_eq!(r.header("authorization"), Some("Bearer demo-carrier-key"));
        assert_eq!(r.json()["reference"], "ord-1");
    }
}
