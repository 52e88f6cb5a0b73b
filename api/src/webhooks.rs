//! Signed webhooks from the payment provider and the tracking provider. The signature is
//! checked (constant time) before anything is parsed; stale deliveries and replays (the same
//! signed request again) are refused; each payment event id is processed once (a provider's
//! redelivery is acknowledged and dropped); the workflow is signalled through the outbox.

use crate::{ApiError, AppState};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use procure_domain::{Currency, Money, signing};
use procure_metrics::WebhookOutcome;
use procure_store::{
    outbox::{OrderSignal, OutboxMessage, ParcelSignal},
    payments::IntentOwner,
};
use procure_workflows::{contract::ChargePaid, order::PaymentSucceeded, parcel::TrackingUpdate};
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/webhooks/payments",
            post(|state, headers, body| async move {
                counted("stripe", payment_webhook(state, headers, body).await)
            }),
        )
        .route(
            "/api/v1/webhooks/tracking",
            post(|state, headers, body| async move {
                counted("17track", tracking_webhook(state, headers, body).await)
            }),
        )
}

/// Count one delivery by what became of it (`procure_webhook_deliveries_total`).
fn counted(source: &str, handled: Handled) -> Handled {
    let outcome = match &handled {
        Ok((_, Json(body))) if body["duplicate"] == true => WebhookOutcome::Duplicate,
        Ok((_, Json(body))) if body["handled"] == false => WebhookOutcome::Ignored,
        Ok(_) => WebhookOutcome::Handled,
        Err(ApiError::Unauthorized(_)) => WebhookOutcome::Rejected,
        Err(ApiError::Conflict("webhook_replayed", _)) => WebhookOutcome::Replayed,
        Err(_) => WebhookOutcome::Failed,
    };
    procure_metrics::global().webhook_delivery(source, outcome);
    handled
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

fn replayed() -> ApiError {
    ApiError::Conflict(
        "webhook_replayed",
        "this signed delivery was already received".into(),
    )
}

/// How long a tracking push is remembered against replays; a push whose newest event is
/// older than that is stale (17TRACK signs no timestamp, so the events date it).
pub const TRACKING_REPLAY_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

async fn payment_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Handled {
    let body = body?;
    let header = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing Stripe-Signature".into()))?;
    let now = procure_domain::clock::now_ms() / 1000;
    signing::verify_stripe_signature(
        header,
        &body,
        state.config.stripe_webhook_secret.expose(),
        now,
        state.config.webhook_tolerance.as_secs() as i64,
    )
    .map_err(|e| ApiError::Unauthorized(format!("webhook signature rejected: {e}")))?;
    // A signature covers its timestamp: within the tolerance window the same one again is a
    // replay (the provider re-signs each redelivery).
    if !state
        .store
        .claim_webhook_delivery("stripe", header.trim(), 2 * state.config.webhook_tolerance)
        .await?
    {
        return Err(replayed());
    }
    let outcome = payment_event(&state, &body).await;
    if outcome.is_err() {
        // Not processed: the provider's retry of this very delivery must be accepted.
        state
            .store
            .release_webhook_delivery("stripe", header.trim())
            .await?;
    }
    outcome
}

type Handled = Result<(StatusCode, Json<serde_json::Value>), ApiError>;

async fn payment_event(state: &AppState, body: &[u8]) -> Handled {
    let event: Event = serde_json::from_slice(body)
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
    let claimed = Money::new(intent.amount_received, currency);
    // The provider's own record decides what was paid, not the event's copy of it.
    let (amount, confirmed) = match &state.payments {
        Some(payments) => {
            let held = payments
                .payment_record(&intent.id)
                .await
                .map_err(|e| ApiError::Unavailable(format!("payment provider unreachable: {e}")))?;
            let confirmed = held.succeeded;
            if !confirmed || held.amount_received != claimed {
                tracing::warn!(intent = %intent.id, claimed = %claimed, held = %held.amount_received, status = %held.status, "payment event disagrees with the provider's record");
            }
            (held.amount_received, confirmed)
        }
        None => (claimed, true),
    };
    // Redeliveries and replays of an event already handled are acknowledged and dropped.
    let (subject, fresh) = match &owner {
        IntentOwner::Order { order_id } => {
            let signal = OrderSignal::PaymentSucceeded(PaymentSucceeded {
                intent_id: intent.id.clone(),
                amount,
            });
            let fresh = state
                .store
                .accept_payment_succeeded(&event.id, &intent.id, order_id, &signal, confirmed)
                .await?;
            (order_id.clone(), fresh)
        }
        IntentOwner::Supplement {
            order_id,
            change_id,
        } => {
            let signal = OrderSignal::SupplementPaid(ChargePaid {
                charge_id: change_id.clone(),
                intent_id: intent.id.clone(),
                amount,
            });
            let fresh = state
                .store
                .accept_payment_succeeded(&event.id, &intent.id, order_id, &signal, confirmed)
                .await?;
            (order_id.clone(), fresh)
        }
        IntentOwner::Charge(charge) => {
            let paid = ChargePaid {
                charge_id: charge.id.clone(),
                intent_id: intent.id.clone(),
                amount,
            };
            let fresh = state
                .store
                .accept_charge_paid(&event.id, charge, &paid, confirmed)
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
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Handled {
    let body = body?;
    let sign = headers
        .get("sign")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing sign header".into()))?;
    let hook = state
        .tracking_webhooks
        .verify(&body, sign)
        .map_err(|e| ApiError::Unauthorized(format!("webhook rejected: {e}")))?;
    let newest_ms = hook
        .events
        .iter()
        .filter_map(|e| parse_rfc3339_ms(&e.time_iso))
        .max();
    let now = procure_domain::clock::now_ms();
    if newest_ms.is_some_and(|t| now - t > TRACKING_REPLAY_WINDOW.as_millis() as i64) {
        return Err(ApiError::Unauthorized(
            "webhook rejected: stale (its newest event is older than 30 days)".into(),
        ));
    }
    if !state
        .store
        .claim_webhook_delivery(
            "17track",
            &sign.trim().to_ascii_lowercase(),
            TRACKING_REPLAY_WINDOW,
        )
        .await?
    {
        return Err(replayed());
    }
    let outcome = tracking_event(&state, &hook).await;
    if outcome.is_err() {
        state
            .store
            .release_webhook_delivery("17track", &sign.trim().to_ascii_lowercase())
            .await?;
    }
    outcome
}

async fn tracking_event(state: &AppState, hook: &procure_domain::ports::TrackingPush) -> Handled {
    let Some(parcel_id) = state.store.parcel_for_tracking(&hook.number).await? else {
        tracing::warn!(tracking = %hook.number, "tracking update for an unknown parcel");
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({"received": true, "handled": false})),
        ));
    };
    let status = hook.status.clone();
    let description = hook
        .events
        .first()
        .map(|e| e.description.clone())
        .unwrap_or_else(|| status.clone());
    let update = ParcelSignal::TrackingUpdate(TrackingUpdate {
        status,
        description,
    });
    state
        .store
        .enqueue(&parcel_id, &OutboxMessage::SignalParcel(update))
        .await?;
    state.outbox_notify.notify_one();
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"received": true, "handled": true})),
    ))
}

/// Milliseconds since the epoch of an RFC 3339 time (`2025-01-02T10:00:00Z`, fractions and
/// offsets allowed); `None` when unreadable.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp() * 1000)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_ms;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2025-01-02T10:00:00Z"),
            Some(1_735_812_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-01-02T10:00:00.250Z"),
            Some(1_735_812_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2025-01-02T18:00:00+08:00"),
            Some(1_735_812_000_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-01-02 10:00:00",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad:?}");
        }
    }
}
