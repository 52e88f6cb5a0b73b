//! Signed webhooks from the payment provider. The signature is checked (constant time, stale
//! timestamps rejected) before anything is parsed; each event id is processed once; the
//! workflow is signalled through the outbox.

use crate::{ApiError, AppState};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use procure_activities::supplements::IntentOwner;
use procure_domain::{Currency, Money, signing};
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks/payments", post(payment_webhook))
        .route("/api/v1/webhooks/tracking", post(tracking_webhook))
}

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Intent,
}

#[derive(Deserialize)]
struct Intent {
    id: String,
    #[serde(default)]
    amount_received: i64,
    currency: String,
}

async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing Stripe-Signature".into()))?;
    let now = procure_activities::store::now_ms() / 1000;
    signing::verify_stripe_signature(
        header,
        &body,
        state.config.stripe_webhook_secret.expose(),
        now,
        state.config.webhook_tolerance.as_secs() as i64,
    )
    .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest("invalid_event", format!("unreadable event: {e}")))?;
    let ignored = || {
        Ok((
            StatusCode::OK,
            Json(serde_json::json!({"received": true, "handled": false})),
        ))
    };
    if event.kind != "payment_intent.succeeded" {
        return ignored();
    }
    let intent = event.data.object;
    let Some(owner) = state.store.intent_owner(&intent.id).await? else {
        tracing::warn!(intent = %intent.id, "payment for an unknown intent");
        return ignored();
    };

    let currency: Currency = intent
        .currency
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| ApiError::BadRequest("invalid_event", "unsupported currency".into()))?;
    let amount = Money::new(intent.amount_received, currency);
    // Redeliveries and replays of an event already handled are acknowledged and dropped.
    let (subject, fresh) = match &owner {
        IntentOwner::Order { order_id } => {
            let payload = serde_json::json!({
                "signal": "payment_succeeded",
                "args": {"intent_id": intent.id, "amount": amount},
            });
            let fresh = state
                .store
                .accept_payment_succeeded(&event.id, &intent.id, order_id, &payload)
                .await?;
            (order_id.clone(), fresh)
        }
        IntentOwner::Supplement {
            order_id,
            change_id,
        } => {
            let payload = serde_json::json!({
                "signal": "supplement_paid",
                "args": {"change_id": change_id, "intent_id": intent.id, "amount": amount},
            });
            let fresh = state
                .store
                .accept_payment_succeeded(&event.id, &intent.id, order_id, &payload)
                .await?;
            (order_id.clone(), fresh)
        }
        IntentOwner::Charge(charge) => {
            let payload = serde_json::json!({
                "signal": "charge_paid",
                "args": {"charge_id": charge.id, "intent_id": intent.id, "amount": amount},
            });
            let fresh = state
                .store
                .accept_charge_paid(&event.id, charge, &payload)
                .await?;
            (charge.workflow_id.clone(), fresh)
        }
    };
    if !fresh {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({"received": true, "duplicate": true})),
        ));
    }
    state.outbox_notify.notify_one();
    tracing::info!(%subject, %amount, "payment succeeded");
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"received": true, "handled": true})),
    ))
}

/// 17TRACK `TRACKING_UPDATED` pushes: the `sign` header is checked (constant time) before the
/// body is parsed; the update goes to the parcel's workflow through the outbox (polling covers
/// a lost push).
async fn tracking_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let sign = headers
        .get("sign")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing sign header".into()))?;
    let hook = state
        .config
        .tracking
        .verify_webhook(&body, sign)
        .map_err(|e| ApiError::Unauthorized(format!("webhook rejected: {e}")))?;
    let Some(parcel_id) = state.store.parcel_for_tracking(&hook.status.number).await? else {
        tracing::warn!(tracking = %hook.status.number, "tracking update for an unknown parcel");
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({"received": true, "handled": false})),
        ));
    };
    let status = serde_json::to_value(hook.status.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "NotFound".into());
    let description = hook
        .status
        .events
        .first()
        .map(|e| e.description.clone())
        .unwrap_or_else(|| status.clone());
    let payload = serde_json::json!({
        "signal": "tracking_update",
        "args": {"status": status, "description": description},
    });
    state
        .store
        .enqueue(
            procure_activities::warehouse::SIGNAL_PARCEL,
            &parcel_id,
            &payload,
        )
        .await?;
    state.outbox_notify.notify_one();
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"received": true, "handled": true})),
    ))
}
