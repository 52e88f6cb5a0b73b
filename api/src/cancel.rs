//! `POST /api/v1/orders/{id}/cancel`: the customer (their own orders) or an operator cancels an
//! order. The request is the workflow's `cancel_order` update, so the answer is the outcome the
//! workflow reached, granted or refused, and every request is on the order's timeline with who
//! asked. Idempotent: the same caller and reason again is the same update (its id is derived
//! from them) and gets the same answer.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::{ApiError, AppState, error::FieldError};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::post,
};
use procure_store::StoreError;
use procure_workflows::{
    OrderWorkflow,
    order::{CancelOutcome, CancelRequest, LineDecision, LineDecisionRequest, OperatorOutcome},
    order_workflow_id,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use temporalio_client::{WorkflowExecuteUpdateOptions, errors::WorkflowUpdateError};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders/{id}/cancel", post(cancel_order))
        .route(
            "/api/v1/orders/{id}/lines/{line_no}/decision",
            post(decide_line),
        )
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDecisionBody {
    pub decision: LineDecision,
}

/// `POST /api/v1/orders/{id}/lines/{line_no}/decision` `{"decision": "drop" | "cancel_all"}`:
/// the customer's answer when one line of their order cannot be bought (the order waits in
/// AwaitingCustomer). 409 when no such question is open.
async fn decide_line(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, line_no)): Path<(String, u32)>,
    body: JsonBody<LineDecisionBody>,
) -> Result<Json<OperatorOutcome>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    if !crate::id_ok(&id) {
        return Err(ApiError::NotFound("order"));
    }
    crate::trace::record_order_id(&id);
    let body = body.read()?;
    owned_order(&state, &caller, &id).await?;
    let client = temporal_client(&state).await?;
    let outcome = client
        .get_workflow_handle::<OrderWorkflow>(order_workflow_id(&id))
        .execute_update(
            OrderWorkflow::update_line_decision,
            LineDecisionRequest {
                line_no,
                decision: body.decision,
            },
            WorkflowExecuteUpdateOptions::builder()
                .update_id(format!("line-{line_no}-decision"))
                .build(),
        )
        .await;
    match outcome {
        Ok(o) => Ok(Json(o)),
        Err(WorkflowUpdateError::Failed(f)) => {
            Err(ApiError::Conflict("no_question", f.message.clone()))
        }
        Err(WorkflowUpdateError::NotFound(_)) => Err(ApiError::Conflict(
            "no_question",
            "the order's workflow is not running".into(),
        )),
        Err(e) => Err(ApiError::Unavailable(format!("Temporal: {e}"))),
    }
}

/// The order, when the caller may act on it (customers: their own).
async fn owned_order(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<procure_store::orders::OrderRecord, ApiError> {
    let order = match state.store.order_detail(id).await {
        Ok(d) => d.order,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("order")),
        Err(e) => return Err(e.into()),
    };
    caller.owns(&order.customer_id)?;
    Ok(order)
}

async fn temporal_client(state: &AppState) -> Result<temporalio_client::Client, ApiError> {
    let Some(temporal) = &state.temporal else {
        return Err(ApiError::Unavailable("this needs Temporal".into()));
    };
    temporal
        .client()
        .await
        .map_err(|e| ApiError::Unavailable(format!("Temporal unreachable: {e:#}")))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    pub reason: String,
}

async fn cancel_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<CancelBody>,
) -> Result<Json<CancelOutcome>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    if !crate::id_ok(&id) {
        return Err(ApiError::NotFound("order"));
    }
    crate::trace::record_order_id(&id);
    let body = body.read()?;
    let mut errors = crate::text::lines(&body);
    let n = body.reason.trim().chars().count();
    if n == 0 || body.reason.chars().count() > procure_workflows::order::operator::MAX_REASON_CHARS
    {
        errors.push(FieldError {
            field: "reason".into(),
            message: format!(
                "must be 1 to {} characters",
                procure_workflows::order::operator::MAX_REASON_CHARS
            ),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let order = owned_order(&state, &caller, &id).await?;
    let requested_by = match caller.customer_id() {
        Some(c) => format!("customer:{c}"),
        None => format!("{}:{}", caller.role().as_str(), caller.0.sub),
    };
    // Ended orders answer from the read-model: nothing left to ask the workflow.
    if order.state.is_terminal() {
        let granted = matches!(
            order.state,
            procure_domain::OrderState::Cancelled | procure_domain::OrderState::Refunded
        );
        if granted {
            return Ok(Json(CancelOutcome {
                granted,
                state: order.state,
                message: format!("the order already ended {}", order.state),
            }));
        }
        return Err(ApiError::Conflict(
            "not_cancellable",
            format!("the order already ended {}", order.state),
        ));
    }
    let client = temporal_client(&state).await?;
    let update_id = {
        let mut h = Sha256::new();
        h.update(requested_by.as_bytes());
        h.update([0]);
        h.update(body.reason.as_bytes());
        format!("cancel-{}", &hex::encode(h.finalize())[..32])
    };
    let outcome = client
        .get_workflow_handle::<OrderWorkflow>(order_workflow_id(&id))
        .execute_update(
            OrderWorkflow::update_cancel_order,
            CancelRequest {
                reason: body.reason,
                requested_by,
            },
            WorkflowExecuteUpdateOptions::builder()
                .update_id(update_id)
                .build(),
        )
        .await;
    match outcome {
        Ok(o) if o.granted => Ok(Json(o)),
        Ok(o) => Err(ApiError::Conflict("not_cancellable", o.message)),
        Err(WorkflowUpdateError::NotFound(_)) => Err(ApiError::Conflict(
            "not_cancellable",
            "the order's workflow has not started yet or has ended; try again shortly".into(),
        )),
        Err(WorkflowUpdateError::Failed(f)) => {
            Err(ApiError::BadRequest("invalid_cancel", f.message.clone()))
        }
        Err(e) => Err(ApiError::Unavailable(format!("Temporal: {e}"))),
    }
}
