//! International line booking: `POST /carrier/v1/shipments`, idempotent on `reference`.
//! The sandbox line charges like a typical express tariff (first 500 g, then per started 500 g);
//! the charge is recorded in the ledger and echoed as `amount_minor` / `currency`.

use crate::{
    Sandbox,
    faults::{Platform, REQUEST_KINDS},
    util::{self, json_response, plain_error},
};
use axum::{
    body::Bytes,
    extract::State as AxState,
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

pub(crate) const CARRIER_NAME: &str = "SANDBOX-EXP";
const FIRST_WEIGHT_G: u64 = 500;
const FIRST_PRICE_FEN: i64 = 9_000;
const STEP_G: u64 = 500;
const STEP_PRICE_FEN: i64 = 3_000;
const MAX_WEIGHT_G: u64 = 70_000;

#[derive(Default)]
pub(crate) struct CarrierState {
    by_reference: HashMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShipmentRequest {
    reference: String,
    service: String,
    weight_g: u64,
    destination_country: String,
}

fn fee_fen(weight_g: u64) -> i64 {
    let steps = weight_g.saturating_sub(FIRST_WEIGHT_G).div_ceil(STEP_G);
    FIRST_PRICE_FEN + STEP_PRICE_FEN * steps as i64
}

pub(crate) async fn create_shipment(
    AxState(sb): AxState<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if !key
        .is_some_and(|k| procure_domain::signing::signatures_equal(k, &sb.config().carrier_api_key))
    {
        return plain_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key",
        );
    }
    let fired = sb
        .enter(Platform::Carrier, "/carrier/v1/shipments", REQUEST_KINDS)
        .await;
    if fired.rate_limit {
        return plain_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
        );
    }
    if fired.error {
        return plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "booking service unavailable",
        );
    }
    if fired.account_restricted {
        return plain_error(
            StatusCode::FORBIDDEN,
            "account_restricted",
            "this account may not book shipments",
        );
    }
    let req: ShipmentRequest = match util::parse_json(&body) {
        Ok(r) => r,
        Err(m) => return plain_error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    if !util::valid_token(&req.reference, 64) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "reference must be 1..=64 printable characters",
        );
    }
    if req.service.trim().is_empty() || req.service.len() > 32 {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "service must be 1..=32 characters",
        );
    }
    if req.weight_g == 0 || req.weight_g > MAX_WEIGHT_G {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "weight_g must be 1..=70000",
        );
    }
    let c = req.destination_country.as_bytes();
    if c.len() != 2 || !c.iter().all(u8::is_ascii_uppercase) {
        return plain_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "destination_country must be an ISO 3166-1 alpha-2 code",
        );
    }
    let answer = sb.with(|s| {
        if let Some(prev) = s.carrier.by_reference.get(&req.reference) {
            tracing::info!(reference = %req.reference, "carrier booking repeat: same shipment");
            return prev.clone();
        }
        let shipment_id = util::random_id("shp_", 20);
        let tracking_number = format!("SBX{}CN", util::random_digits(10));
        let fee = fee_fen(req.weight_g);
        let v = json!({
            "shipment_id": shipment_id,
            "tracking_number": tracking_number,
            "carrier": CARRIER_NAME,
            "service": req.service,
            "amount_minor": fee,
            "currency": "CNY",
        });
        s.record(
            "shipment",
            "carrier",
            &req.reference,
            &shipment_id,
            fee,
            "CNY",
        );
        s.carrier
            .by_reference
            .insert(req.reference.clone(), v.clone());
        v
    });
    if let Some(d) = fired.timeout_after_commit {
        sb.sleep(d).await;
    }
    json_response(StatusCode::OK, answer)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tariff() {
        assert_eq!(super::fee_fen(1), 9_000);
        assert_eq!(super::fee_fen(500), 9_000);
        assert_eq!(super::fee_fen(501), 12_000);
        assert_eq!(super::fee_fen(1_500), 15_000);
    }
}
