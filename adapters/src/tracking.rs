//! Parcel tracking in 17TRACK API v2.2's shape: register numbers, read their status and events
//! (at most 40 numbers per request; longer inputs are split), and verify the signed webhook.

use procure_domain::{Secret, signing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WebhookError;
use super::http::{
    ApiError, BuildError, HttpClient, HttpConfig, RawResponse, join_url, retry_5xx_429,
};

/// Numbers per request, 17TRACK's limit.
pub const MAX_BATCH: usize = 40;

/// Rejection code for a number that is already registered: registering is then already done.
/// (17TRACK's code table; kept in one place in case it differs.)
pub const ALREADY_REGISTERED: i64 = -18019901;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackingConfig {
    pub base_url: String,
    pub token: Secret,
    pub http: HttpConfig,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            base_url: super::SANDBOX_BASE_URL.into(),
            token: Secret::new("demo17token"),
            http: HttpConfig::default(),
        }
    }
}

/// A tracking number, with the carrier code when we know it (17TRACK detects it otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRef {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<u32>,
}

impl TrackRef {
    pub fn new(number: impl Into<String>) -> Self {
        TrackRef {
            number: number.into(),
            carrier: None,
        }
    }
}

impl From<&str> for TrackRef {
    fn from(number: &str) -> Self {
        TrackRef::new(number)
    }
}

/// 17TRACK's main statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParcelStatus {
    NotFound,
    InfoReceived,
    InTransit,
    Expired,
    AvailableForPickup,
    OutForDelivery,
    DeliveryFailure,
    Delivered,
    Exception,
}

impl ParcelStatus {
    /// An unknown status reads as `NotFound` ("no usable information yet"), so a vocabulary
    /// change upstream makes us keep polling rather than fail.
    pub fn from_wire(s: &str) -> Self {
        serde_json::from_value(Value::String(s.to_owned())).unwrap_or_else(|_| {
            tracing::warn!(status = s, "unknown 17TRACK status");
            ParcelStatus::NotFound
        })
    }

    pub fn is_delivered(self) -> bool {
        self == ParcelStatus::Delivered
    }

    /// Needs a person: the parcel is stuck, returned or the number expired.
    pub fn is_problem(self) -> bool {
        matches!(
            self,
            ParcelStatus::Exception | ParcelStatus::DeliveryFailure | ParcelStatus::Expired
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackEvent {
    pub time_iso: String,
    pub description: String,
    pub stage: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackStatus {
    pub number: String,
    pub carrier: Option<u32>,
    pub status: ParcelStatus,
    pub sub_status: Option<String>,
    /// As the provider lists them (newest first on 17TRACK).
    pub events: Vec<TrackEvent>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRejection {
    pub number: String,
    pub code: i64,
    pub message: String,
}

impl TrackRejection {
    pub fn is_already_registered(&self) -> bool {
        self.code == ALREADY_REGISTERED
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub accepted: Vec<TrackRef>,
    pub rejected: Vec<TrackRejection>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub statuses: Vec<TrackStatus>,
    /// Numbers 17TRACK would not answer for (e.g. never registered).
    pub rejected: Vec<TrackRejection>,
}

/// A verified tracking webhook.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingWebhook {
    /// e.g. `TRACKING_UPDATED`.
    pub event: String,
    pub status: TrackStatus,
}

/// 17TRACK-shaped client. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracking {
    cfg: TrackingConfig,
    http: HttpClient,
}

fn as_u32(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

fn parse_status(entry: &Value) -> Result<TrackStatus, ApiError> {
    let number = entry
        .get("number")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::InvalidResponse("entry without number".into()))?;
    let info = entry.get("track_info").unwrap_or(&Value::Null);
    let latest = info.get("latest_status").unwrap_or(&Value::Null);
    let status = latest
        .get("status")
        .and_then(Value::as_str)
        .map_or(ParcelStatus::NotFound, ParcelStatus::from_wire);
    let events = info
        .pointer("/tracking/providers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|p| {
            p.get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|e| TrackEvent {
            time_iso: e
                .get("time_iso")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            description: e
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            stage: e.get("stage").and_then(Value::as_str).map(str::to_owned),
        })
        .collect();
    Ok(TrackStatus {
        number: number.to_owned(),
        carrier: as_u32(entry.get("carrier")),
        status,
        sub_status: latest
            .get("sub_status")
            .and_then(Value::as_str)
            .map(str::to_owned),
        events,
    })
}

fn parse_rejections(data: &Value) -> Vec<TrackRejection> {
    data.get("rejected")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| TrackRejection {
            number: r
                .get("number")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            code: r
                .pointer("/error/code")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            message: r
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
        .collect()
}

/// Unwrap the `{"code":0,"data":…}` envelope, or classify the failure.
fn envelope_data(resp: &RawResponse) -> Result<Value, ApiError> {
    let body: Option<Value> = serde_json::from_str(&resp.body).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("code"))
        .and_then(Value::as_i64);
    let message = body
        .as_ref()
        .and_then(|b| {
            b.pointer("/data/errors/0/message")
                .or_else(|| b.get("message"))
        })
        .and_then(Value::as_str)
        .map_or_else(|| resp.snippet(), str::to_owned);
    if !resp.is_success() {
        return Err(ApiError::from_status(
            resp,
            code.map_or_else(|| format!("http_{}", resp.status), |c| c.to_string()),
            message,
        ));
    }
    match (code, body) {
        (Some(0), Some(mut b)) => Ok(b.get_mut("data").map(Value::take).unwrap_or(Value::Null)),
        (Some(c), _) => Err(ApiError::Rejected {
            status: resp.status,
            code: c.to_string(),
            message,
        }),
        (None, _) => Err(ApiError::InvalidResponse(format!(
            "no envelope: {}",
            resp.snippet()
        ))),
    }
}

fn check_signature(body: &[u8], sign_header: &str, token: &Secret) -> Result<(), WebhookError> {
    let expected = signing::track17_signature(body, token.expose());
    if signing::signatures_equal(&sign_header.trim().to_ascii_lowercase(), &expected) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

fn parse_webhook(body: &[u8]) -> Result<TrackingWebhook, WebhookError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let event = v
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let data = v
        .get("data")
        .ok_or_else(|| WebhookError::Malformed("missing data".into()))?;
    let status = parse_status(data).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    Ok(TrackingWebhook { event, status })
}

impl TrackingConfig {
    /// Verify the `sign` header (constant-time) and parse the webhook, without an HTTP client.
    pub fn verify_webhook(
        &self,
        body: &[u8],
        sign_header: &str,
    ) -> Result<TrackingWebhook, WebhookError> {
        check_signature(body, sign_header, &self.token)?;
        parse_webhook(body)
    }
}

impl Tracking {
    pub fn new(cfg: TrackingConfig) -> Result<Self, BuildError> {
        let http = HttpClient::new("17track", &cfg.http, vec![cfg.token.clone()])?;
        Ok(Tracking { cfg, http })
    }

    async fn post(&self, op: &'static str, batch: &[TrackRef]) -> Result<Value, ApiError> {
        let url = join_url(&self.cfg.base_url, &format!("/track/v2.2/{op}"));
        let make = |c: &reqwest::Client| {
            let mut token = reqwest::header::HeaderValue::from_str(self.cfg.token.expose())
                .unwrap_or(reqwest::header::HeaderValue::from_static(""));
            token.set_sensitive(true);
            c.post(&url).header("17token", token).json(batch)
        };
        let resp = self
            .http
            .execute(op, make, retry_5xx_429)
            .await
            .map_err(ApiError::from_transport)?;
        envelope_data(&resp)
    }

    /// Register numbers for tracking, 40 per request. A number registered before comes back
    /// in `rejected` with [`TrackRejection::is_already_registered`].
    pub async fn register(&self, refs: &[TrackRef]) -> Result<Registered, ApiError> {
        let mut out = Registered::default();
        for batch in refs.chunks(MAX_BATCH) {
            let data = self.post("register", batch).await?;
            out.accepted.extend(
                data.get("accepted")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| {
                        Some(TrackRef {
                            number: a.get("number")?.as_str()?.to_owned(),
                            carrier: as_u32(a.get("carrier")),
                        })
                    }),
            );
            out.rejected.extend(parse_rejections(&data));
        }
        Ok(out)
    }

    /// Current status and events of registered numbers, 40 per request.
    pub async fn track(&self, refs: &[TrackRef]) -> Result<Tracked, ApiError> {
        let mut out = Tracked::default();
        for batch in refs.chunks(MAX_BATCH) {
            let data = self.post("gettrackinfo", batch).await?;
            for entry in data
                .get("accepted")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.statuses.push(parse_status(entry)?);
            }
            out.rejected.extend(parse_rejections(&data));
        }
        Ok(out)
    }

    pub fn verify_webhook(
        &self,
        body: &[u8],
        sign_header: &str,
    ) -> Result<TrackingWebhook, WebhookError> {
        self.cfg.verify_webhook(body, sign_header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Reply};

    const INFO: &str = r#"{"code":0,"data":{"accepted":[{"number":"SX1","carrier":190271,"track_info":{"latest_status":{"status":"InTransit","sub_status":"InTransit_Other"},"tracking":{"providers":[{"events":[{"time_iso":"2025-01-02T10:00:00Z","description":"Departed","stage":"InTransit"},{"time_iso":"2025-01-01T10:00:00Z","description":"Accepted","stage":"InfoReceived"}]}]}}}],"rejected":[{"number":"NOPE","error":{"code":-18019902,"message":"not registered"}}]}}"#;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn parses_track_info() {
        let data = envelope_data(&raw(200, INFO)).unwrap();
        let s = parse_status(&data["accepted"][0]).unwrap();
        assert_eq!(s.number, "SX1");
        assert_eq!(s.carrier, Some(190271));
        assert_eq!(s.status, ParcelStatus::InTransit);
        assert_eq!(s.sub_status.as_deref(), Some("InTransit_Other"));
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[0].description, "Departed");
        let rej = parse_rejections(&data);
        assert_eq!(
            rej,
            [TrackRejection {
                number: "NOPE".into(),
                code: -18019902,
                message: "not registered".into()
            }]
        );
        assert!(!rej[0].is_already_registered());
    }

    #[test]
    fn knows_all_nine_statuses() {
        for s in [
            "NotFound",
            "InfoReceived",
            "InTransit",
            "Expired",
            "AvailableForPickup",
            "OutForDelivery",
            "DeliveryFailure",
            "Delivered",
            "Exception",
        ] {
            assert_eq!(serde_json::to_value(ParcelStatus::from_wire(s)).unwrap(), s);
        }
        assert_eq!(
            ParcelStatus::from_wire("Teleported"),
            ParcelStatus::NotFound
        );
        assert!(ParcelStatus::Delivered.is_delivered());
        assert!(ParcelStatus::Exception.is_problem());
    }

    #[test]
    fn classifies_envelope_errors() {
        assert!(
            matches!(envelope_data(&raw(200, r#"{"code":-18010002,"data":{"errors":[{"code":-18010002,"message":"bad key"}]}}"#)), Err(ApiError::Rejected { code, message, .. }) if code == "-18010002" && message == "bad key")
        );
        assert!(matches!(
            envelope_data(&raw(401, r#"{"code":401}"#)),
            Err(ApiError::Unauthorized(_))
        ));
        assert_eq!(envelope_data(&raw(429, "")), Err(ApiError::RateLimited));
        assert!(envelope_data(&raw(503, "down")).unwrap_err().is_retryable());
    }

    #[test]
    fn webhook_signature_is_checked_in_constant_time_and_parsed() {
        let cfg = TrackingConfig::default();
        let body = br#"{"event":"TRACKING_UPDATED","data":{"number":"SX1","track_info":{"latest_status":{"status":"Delivered"}}}}"#;
        let sign = signing::track17_signature(body, "demo17token");
        let hook = cfg.verify_webhook(body, &sign).unwrap();
        assert_eq!(
            (hook.event.as_str(), hook.status.status),
            ("TRACKING_UPDATED", ParcelStatus::Delivered)
        );
        assert!(
            cfg.verify_webhook(body, &sign.to_ascii_uppercase()).is_ok(),
            "hex case does not matter"
        );
        assert_eq!(
            cfg.verify_webhook(b"{}", &sign),
            Err(WebhookError::BadSignature)
        );
        assert_eq!(
            cfg.verify_webhook(body, ""),
            Err(WebhookError::BadSignature)
        );
    }

    fn client(base_url: String) -> Tracking {
        let mut cfg = TrackingConfig {
            base_url,
            ..TrackingConfig::default()
        };
        cfg.http.requests_per_second = 0;
        Tracking::new(cfg).unwrap()
    }

    #[tokio::test]
    async fn splits_into_batches_of_forty() {
        let server = MockServer::start(|req| {
            let accepted: Vec<Value> = req
                .json()
                .as_array()
                .unwrap()
                .iter()
                .map(|r| serde_json::json!({"number": r["number"]}))
                .collect();
            Reply::json(
                200,
                serde_json::json!({"code": 0, "data": {"accepted": accepted, "rejected": []}})
                    .to_string(),
            )
        })
        .await;
        let refs: Vec<TrackRef> = (0..95).map(|i| TrackRef::new(format!("N{i}"))).collect();
        let t = client(server.base_url());
        let reg = t.register(&refs).await.unwrap();
        assert_eq!(reg.accepted.len(), 95);
        let tracked = t.track(&refs).await.unwrap();
        assert_eq!(tracked.statuses.len(), 95);
        assert!(
            tracked
                .statuses
                .iter()
                .all(|s| s.status == ParcelStatus::NotFound)
        );
        let reqs = server.requests();
        let sizes: Vec<usize> = reqs
            .iter()
            .map(|r| r.json().as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [40, 40, 15, 40, 40, 15]);
        assert!(reqs[..3].iter().all(|r| r.path() == "/track/v2.2/register"));
        assert!(
            reqs[3..]
                .iter()
                .all(|r| r.path() == "/track/v2.2/gettrackinfo")
        );
        assert!(
            reqs.iter()
                .all(|r| r.header("17token") == Some("demo17token"))
        );
        assert!(
            !reqs[0].body.contains("carrier"),
            "no carrier key when unknown"
        );
    }
}
