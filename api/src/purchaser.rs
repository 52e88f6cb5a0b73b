//! The assisted channel's work list: purchasers see open tasks (what to buy, where, for at most
//! how much, by when) and report each purchase once; the order's workflow resumes on it.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::accounts::{PurchaserTaskView, TaskList};
use crate::{ApiError, AppState, error::FieldError};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::{get, post},
};
use procure_domain::status::PurchaserTaskStatus;
use procure_store::StoreError;
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/purchaser/tasks", get(list))
        .route("/api/v1/purchaser/tasks/{id}/complete", post(complete))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub status: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TaskList>, ApiError> {
    caller.require(&[Role::Purchaser, Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let filter = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(
            s.parse::<PurchaserTaskStatus>()
                .map_err(|_| ApiError::field("status", "open, completed, expired or all"))?,
        ),
    };
    Ok(Json(TaskList::from(
        state.store.purchaser_tasks(filter).await?,
    )))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    pub marketplace_order_id: String,
    pub amount_paid_fen: i64,
    /// The seller's domestic shipment, when the purchaser has it already: the carrier and the
    /// waybill number (both or neither). The warehouse can then match the parcel by its waybill.
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub waybill: Option<String>,
}

async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<Completion>,
) -> Result<Json<PurchaserTaskView>, ApiError> {
    caller.require(&[Role::Purchaser, Role::Operator])?;
    let c = body.read()?;
    let mut e = crate::text::lines(&c);
    let m = &c.marketplace_order_id;
    if m.is_empty()
        || m.len() > 64
        || !m
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        e.push(FieldError {
            field: "marketplace_order_id".into(),
            message: "1 to 64 letters, digits, - or _".into(),
        });
    }
    if c.amount_paid_fen <= 0 {
        e.push(FieldError {
            field: "amount_paid_fen".into(),
            message: "must be positive".into(),
        });
    }
    let shipped = match (c.carrier.as_deref(), c.waybill.as_deref()) {
        (None, None) => None,
        (Some(carrier), Some(waybill)) => {
            e.extend(crate::warehouse::waybill_errors("waybill", waybill));
            if carrier.trim().is_empty() || carrier.chars().count() > 40 {
                e.push(FieldError {
                    field: "carrier".into(),
                    message: "1 to 40 characters".into(),
                });
            }
            Some((carrier.trim(), waybill))
        }
        (Some(_), None) | (None, Some(_)) => {
            e.push(FieldError {
                field: "waybill".into(),
                message: "give carrier and waybill together, or neither".into(),
            });
            None
        }
    };
    if !e.is_empty() {
        return Err(ApiError::Validation(e));
    }
    match state
        .store
        .complete_purchaser_task(&id, m, c.amount_paid_fen, shipped)
        .await
    {
        Ok(task) => {
            state.outbox_notify.notify_one();
            // Observability only: a failed read loses the latency sample, never the purchase.
            let accepted = state.store.order(&task.order_id).await.ok();
            procure_metrics::global().purchased(
                &task.platform,
                accepted.map(|o| o.created_at_ms),
                procure_domain::clock::now_ms(),
            );
            tracing::info!(task = %task.id, order_id = %task.order_id, "purchaser task completed");
            Ok(Json(task.into()))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("task")),
        Err(StoreError::StateConflict(why)) => Err(ApiError::Conflict("task_not_open", why)),
        Err(other) => Err(other.into()),
    }
}
