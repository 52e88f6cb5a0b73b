//! 17TRACK API v2.2 shape: `register`, `gettrackinfo`, the `TRACKING_UPDATED` push, and
//! `POST /_sandbox/tracking/{number}` to force a status.
//!
//! A registered number moves InfoReceived → InTransit → OutForDelivery → Delivered, one step
//! every `tracking_step_ms`; the status is computed from the clock whenever it is read. A forced
//! status is final (automatic progress stops) until forced again.

use crate::{
    Sandbox,
    faults::{Platform, REQUEST_KINDS},
    util::{self, json_response, plain_error},
    webhook,
};
use axum::{
    body::Bytes,
    extract::{Path, State as AxState},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{collections::HashMap, time::Duration};

/// 17TRACK error codes. Only -18019901 is pinned by the contract; the others are the sandbox's
/// choice where the public list was not at hand, and live only here.
mod codes {
    /// Register: the number is already registered.
    pub(super) const ALREADY_REGISTERED: i64 = -18019901;
    /// gettrackinfo: the number has not been registered.
    pub(super) const NOT_REGISTERED: i64 = -18019902;
    /// The carrier code is not a known integer.
    pub(super) const INVALID_CARRIER: i64 = -18019903;
    /// Whole request: missing / wrong `17token`.
    pub(super) const INVALID_TOKEN: i64 = -18010002;
    /// Whole request: too many requests (also HTTP 429).
    pub(super) const RATE_LIMITED: i64 = -18010005;
    /// Whole request: the account may not use the API (injected `account_restricted`).
    pub(super) const ACCOUNT_RESTRICTED: i64 = -18010004;
    /// Whole request: internal error (injected `error`).
    pub(super) const INTERNAL: i64 = -18010001;
    /// Number format not acceptable.
    pub(super) const INVALID_NUMBER: i64 = -18010012;
    /// Whole request: body is not a JSON array of 1..=40 items.
    pub(super) const INVALID_BODY: i64 = -18010013;
}

/// Carrier code reported for numbers registered without one ("auto-detected"): sandbox choice.
const SANDBOX_CARRIER_CODE: i64 = 190_999;
const MAX_ITEMS: usize = 40;

const STAGES: [(&str, &str, &str); 4] = [
    (
        "InfoReceived",
        "InfoReceived",
        "Shipment information received, awaiting pickup",
    ),
    (
        "InTransit",
        "InTransit_Other",
        "Departed sorting centre, in transit",
    ),
    ("OutForDelivery", "OutForDelivery_Other", "Out for delivery"),
    ("Delivered", "Delivered_Other", "Delivered"),
];
const STATUSES: [&str; 9] = [
    "NotFound",
    "InfoReceived",
    "InTransit",
    "Expired",
    "AvailableForPickup",
    "OutForDelivery",
    "DeliveryFailure",
    "Delivered",
    "Exception",
];

#[derive(Clone, Debug)]
struct Forced {
    status: String,
    at_ms: i64,
    /// Automatic stages reached when the status was forced.
    stages: usize,
}

#[derive(Clone, Debug)]
struct Tracked {
    carrier: i64,
    registered_ms: i64,
    forced: Option<Forced>,
}

#[derive(Default)]
pub(crate) struct TrackState {
    numbers: HashMap<String, Tracked>,
}

/// Index of the last automatic stage reached at `now`.
fn stage_at(t: &Tracked, now: i64, step_ms: u64) -> usize {
    if step_ms == 0 {
        return STAGES.len() - 1;
    }
    let elapsed = u64::try_from(now.saturating_sub(t.registered_ms)).unwrap_or(0);
    usize::try_from(elapsed / step_ms)
        .unwrap_or(usize::MAX)
        .min(STAGES.len() - 1)
}

fn track_info(t: &Tracked, now: i64, step_ms: u64) -> Value {
    let reached = match &t.forced {
        Some(f) => f.stages,
        None => stage_at(t, now, step_ms),
    };
    let mut events: Vec<Value> = (0..=reached)
        .map(|i| {
            let step = i64::try_from(step_ms).unwrap_or(i64::MAX);
            let at = t.registered_ms.saturating_add((i as i64).saturating_mul(step));
            json!({"time_iso": util::iso_utc(at), "time_utc": util::iso_utc(at), "description": STAGES[i].2,
                   "location": "", "stage": STAGES[i].0, "sub_status": STAGES[i].1})
        })
        .collect();
    let (status, sub) = match &t.forced {
        Some(f) => {
            let sub = format!("{}_Other", f.status);
            events.push(json!({"time_iso": util::iso_utc(f.at_ms), "time_utc": util::iso_utc(f.at_ms),
                               "description": format!("Status update: {}", f.status), "location": "",
                               "stage": f.status, "sub_status": sub}));
            (f.status.clone(), sub)
        }
        None => (STAGES[reached].0.to_owned(), STAGES[reached].1.to_owned()),
    };
    events.reverse(); // newest first, as 17TRACK lists them
    json!({
        "latest_status": {"status": status, "sub_status": sub},
        "latest_event": events.first().cloned().unwrap_or(Value::Null),
        "tracking": {"providers": [{
            "provider": {"key": t.carrier, "name": "SANDBOX-EXP"},
            "events": events,
        }]},
    })
}

fn envelope_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(
        status,
        json!({"code": code, "data": {"errors": [{"code": code, "message": message}]}}),
    )
}

#[derive(Deserialize)]
struct Item {
    number: Value,
    #[serde(default)]
    carrier: Option<Value>,
}

/// Auth, faults and body shape shared by both endpoints.
/// Returns the items and the hold-back delay of an injected `timeout_after_commit`.
async fn enter(
    sb: &Sandbox,
    headers: &HeaderMap,
    api: &str,
    body: &Bytes,
) -> Result<(Option<Duration>, Vec<Value>), Response> {
    let token = headers.get("17token").and_then(|v| v.to_str().ok());
    if !token
        .is_some_and(|t| procure_domain::signing::signatures_equal(t, &sb.config().track17_token))
    {
        return Err(envelope_error(
            StatusCode::UNAUTHORIZED,
            codes::INVALID_TOKEN,
            "Invalid or missing 17token.",
        ));
    }
    let fired = sb.enter(Platform::Track17, api, REQUEST_KINDS).await;
    if fired.rate_limit {
        return Err(envelope_error(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            "Too many requests.",
        ));
    }
    if fired.error {
        return Err(envelope_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "Internal error.",
        ));
    }
    if fired.account_restricted {
        return Err(envelope_error(
            StatusCode::FORBIDDEN,
            codes::ACCOUNT_RESTRICTED,
            "Account is restricted.",
        ));
    }
    let items: Vec<Value> = util::parse_json(body)
        .map_err(|m| envelope_error(StatusCode::BAD_REQUEST, codes::INVALID_BODY, &m))?;
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(envelope_error(
            StatusCode::BAD_REQUEST,
            codes::INVALID_BODY,
            "The body must be a JSON array of 1..=40 items.",
        ));
    }
    Ok((fired.timeout_after_commit, items))
}

fn rejected(number: &str, code: i64, message: &str) -> Value {
    json!({"number": number, "error": {"code": code, "message": message}})
}

fn valid_number(n: &str) -> bool {
    (4..=50).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parse one body item into (number, optional carrier) or a rejection.
fn parse_item(v: Value) -> Result<(String, Option<i64>), Value> {
    let Ok(item) = serde_json::from_value::<Item>(v) else {
        return Err(rejected(
            "",
            codes::INVALID_NUMBER,
            "Each item must be an object with a number.",
        ));
    };
    let Value::String(number) = item.number else {
        return Err(rejected(
            "",
            codes::INVALID_NUMBER,
            "number must be a string.",
        ));
    };
    if !valid_number(&number) {
        let shown: String = number.chars().take(50).collect();
        return Err(rejected(
            &shown,
            codes::INVALID_NUMBER,
            "The tracking number format is invalid.",
        ));
    }
    let carrier = match item.carrier {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some_and(|c| c > 0) => n.as_i64(),
        Some(Value::String(s)) if s.parse::<i64>().is_ok_and(|c| c > 0) => s.parse().ok(),
        Some(_) => {
            return Err(rejected(
                &number,
                codes::INVALID_CARRIER,
                "The carrier code is invalid.",
            ));
        }
    };
    Ok((number, carrier))
}

pub(crate) async fn register(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (hold, items) = match enter(&sb, &headers, "/track/v2.2/register", &body).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = util::now_ms();
    let mut accepted = Vec::new();
    let mut rejections = Vec::new();
    let mut fresh = Vec::new();
    sb.with(|s| {
        for v in items {
            match parse_item(v) {
                Err(r) => rejections.push(r),
                Ok((number, carrier)) => {
                    if s.track.numbers.contains_key(&number) {
                        rejections.push(rejected(
                            &number,
                            codes::ALREADY_REGISTERED,
                            &format!("The tracking number '{number}' has already been registered."),
                        ));
                        continue;
                    }
                    let carrier = carrier.unwrap_or(SANDBOX_CARRIER_CODE);
                    s.track.numbers.insert(
                        number.clone(),
                        Tracked {
                            carrier,
                            registered_ms: now,
                            forced: None,
                        },
                    );
                    tracing::info!(number = %number, carrier, "17track number registered");
                    accepted.push(json!({"number": number, "carrier": carrier, "origin": 1}));
                    fresh.push(number);
                }
            }
        }
    });
    for number in fresh {
        spawn_progress(&sb, number, now);
    }
    if let Some(d) = hold {
        sb.sleep(d).await;
    }
    json_response(
        StatusCode::OK,
        json!({"code": 0, "data": {"accepted": accepted, "rejected": rejections}}),
    )
}

pub(crate) async fn gettrackinfo(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (hold, items) = match enter(&sb, &headers, "/track/v2.2/gettrackinfo", &body).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let now = util::now_ms();
    let step = sb.config().tracking_step_ms;
    let mut accepted = Vec::new();
    let mut rejections = Vec::new();
    sb.with(|s| {
        for v in items {
            match parse_item(v) {
                Err(r) => rejections.push(r),
                Ok((number, _)) => match s.track.numbers.get(&number) {
                    None => rejections.push(rejected(
                        &number,
                        codes::NOT_REGISTERED,
                        &format!("The tracking number '{number}' has not been registered."),
                    )),
                    Some(t) => accepted.push(json!({
                        "number": number,
                        "carrier": t.carrier,
                        "track_info": track_info(t, now, step),
                    })),
                },
            }
        }
    });
    if let Some(d) = hold {
        sb.sleep(d).await;
    }
    json_response(
        StatusCode::OK,
        json!({"code": 0, "data": {"accepted": accepted, "rejected": rejections}}),
    )
}

/// Push the current state of `number` to the tracking webhook (if one is set).
fn notify(sb: &Sandbox, number: &str) {
    let now = util::now_ms();
    let step = sb.config().tracking_step_ms;
    let Some(body) = sb.with(|s| {
        s.track.numbers.get(number).map(|t| {
            json!({"event": "TRACKING_UPDATED", "data": {
                "number": number, "carrier": t.carrier, "track_info": track_info(t, now, step)}})
        })
    }) else {
        return;
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    webhook::dispatch(
        sb,
        webhook::Target::Tracking,
        body,
        format!("TRACKING_UPDATED {number}"),
    );
}

/// Push an update at registration and at every automatic step, until delivered or forced.
fn spawn_progress(sb: &Sandbox, number: String, registered_ms: i64) {
    let sb = sb.clone();
    tokio::spawn(async move {
        notify(&sb, &number);
        let step = sb.config().tracking_step_ms;
        if step == 0 {
            return;
        }
        for i in 1..STAGES.len() as i64 {
            let due = registered_ms
                .saturating_add(i.saturating_mul(i64::try_from(step).unwrap_or(i64::MAX)));
            let wait = u64::try_from(due - util::now_ms()).unwrap_or(0);
            sb.sleep(Duration::from_millis(wait)).await;
            if sb.is_shut_down() {
                return;
            }
            let forced = sb.with(|s| {
                s.track
                    .numbers
                    .get(&number)
                    .is_none_or(|t| t.forced.is_some())
            });
            if forced {
                return;
            }
            notify(&sb, &number);
        }
    });
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceBody {
    status: String,
}

/// `POST /_sandbox/tracking/{number}` `{"status":"Exception"}`.
pub(crate) async fn force_status(
    AxState(sb): AxState<Sandbox>,
    Path(number): Path<String>,
    body: Bytes,
) -> Response {
    let req: ForceBody = match util::parse_json(&body) {
        Ok(b) => b,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    if !STATUSES.contains(&req.status.as_str()) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("status must be one of {}", STATUSES.join(", ")),
        );
    }
    let now = util::now_ms();
    let step = sb.config().tracking_step_ms;
    let info = sb.with(|s| {
        let t = s.track.numbers.get_mut(&number)?;
        let stages = match &t.forced {
            Some(f) => f.stages,
            None => stage_at(t, now, step),
        };
        t.forced = Some(Forced {
            status: req.status.clone(),
            at_ms: now,
            stages,
        });
        Some(track_info(t, now, step))
    });
    match info {
        None => plain_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "tracking number not registered",
        ),
        Some(info) => {
            tracing::info!(number = %number, status = %req.status, "17track status forced");
            notify(&sb, &number);
            json_response(
                StatusCode::OK,
                json!({"number": number, "track_info": info}),
            )
        }
    }
}
