//! The outbox's dead-letter list, for operators: work the dispatcher gave up on (a permanent
//! failure such as a signal for a workflow that has finished, or transient failures past the
//! attempt bound), with its reason, and the two ways out.
//!
//! - `GET  /api/v1/admin/outbox/dead`               the list (oldest first) and the counts
//! - `POST /api/v1/admin/outbox/dead/{id}/retry`    back to pending, due now, attempts from 0
//! - `POST /api/v1/admin/outbox/dead/{id}/discard`  give it up (idempotent)
//!
//! A dead letter shows its kind, subject (order, parcel or monitor id), signal name, attempts,
//! last error and times; never its payload, which may carry personal data or payment details.

use crate::auth::{Caller, Role};
use crate::views::outbox::{DeadList, Outcome};
use crate::{ApiError, AppState};
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    routing::{get, post},
};
use procure_store::StoreError;
use serde::Deserialize;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/outbox/dead", get(list))
        .route("/api/v1/admin/outbox/dead/{id}/retry", post(retry))
        .route("/api/v1/admin/outbox/dead/{id}/discard", post(discard))
}

/// Most dead letters one answer lists.
pub const MAX_LIMIT: i64 = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DeadList>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    Ok(Json(DeadList {
        dead_count: state.store.outbox_dead_count().await?,
        pending_count: state.store.outbox_pending().await?,
        dead: state
            .store
            .outbox_dead_letters(limit)
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Outbox ids are integers; anything else names none (a structured 404).
fn row_id(id: &str) -> Result<i64, ApiError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound("dead letter"))
}

fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("dead letter"),
        StoreError::StateConflict(why) => ApiError::Conflict("not_dead", why),
        other => other.into(),
    }
}

async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    caller.require(&[Role::Operator])?;
    let id = row_id(&id)?;
    state.store.outbox_retry_dead(id).await.map_err(refused)?;
    tracing::info!(outbox_id = id, by = %caller.0.sub, "dead letter sent again");
    state.outbox_notify.notify_one();
    Ok(Json(Outcome {
        id,
        status: "pending",
    }))
}

async fn discard(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Outcome>, ApiError> {
    caller.require(&[Role::Operator])?;
    let id = row_id(&id)?;
    state
        .store
        .outbox_discard_dead(id, &caller.0.sub)
        .await
        .map_err(refused)?;
    tracing::info!(outbox_id = id, by = %caller.0.sub, "dead letter discarded");
    Ok(Json(Outcome {
        id,
        status: "discarded",
    }))
}
