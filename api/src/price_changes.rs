//! The customer's answer to a price change (`AwaitingCustomer`): accept, which hands back the
//! supplement's payment intent to confirm (the order resumes when the provider reports it
//! paid), or decline, which cancels the order with a full refund. A change can be decided once,
//! and only before its deadline; the workflow cancels by default after it.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::price_changes::DecisionResult;
use crate::{ApiError, AppState, id_ok};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::post,
};
use procure_store::StoreError;
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route(
        "/api/v1/orders/{id}/price-changes/{change_id}",
        post(decide),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accept,
    Decline,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub decision: Decision,
}

async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((order_id, change_id)): Path<(String, String)>,
    body: JsonBody<DecisionBody>,
) -> Result<(StatusCode, Json<DecisionResult>), ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let body = body.read()?;
    let text = crate::text::lines(&body);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    if !id_ok(&order_id) || !id_ok(&change_id) {
        return Err(ApiError::NotFound("price change"));
    }
    match state.store.order(&order_id).await {
        Ok(o) => caller.owns(&o.customer_id)?,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("price change")),
        Err(e) => return Err(e.into()),
    }
    let result = match body.decision {
        Decision::Accept => state.store.accept_price_change(&order_id, &change_id).await,
        Decision::Decline => {
            state
                .store
                .decline_price_change(&order_id, &change_id)
                .await
        }
    };
    let change = match result {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("price change")),
        Err(StoreError::StateConflict(why)) => {
            return Err(ApiError::Conflict("price_change_closed", why));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(%order_id, change = %change_id, decision = ?body.decision, "price change decided");
    match body.decision {
        Decision::Accept => Ok((
            StatusCode::OK,
            Json(DecisionResult {
                pay_intent_id: change.intent_id.clone(),
                price_change: change.into(),
            }),
        )),
        Decision::Decline => {
            state.outbox_notify.notify_one();
            Ok((
                StatusCode::ACCEPTED,
                Json(DecisionResult {
                    price_change: change.into(),
                    pay_intent_id: None,
                }),
            ))
        }
    }
}
