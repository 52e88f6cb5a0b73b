//! Liveness and readiness for load balancers and orchestrators, on the API's port and on every
//! process's metrics port (`health::router(checks)` is independent of the API's state).
//!
//! - `GET /health/live` (and the older `GET /health`): the process serves requests.
//! - `GET /health/ready`: the database answers a query and Temporal describes our namespace,
//!   each within a bound. 200 when both do, 503 naming the check that did not. An API built
//!   without a Temporal link (tests, tools) reports that check as not configured, which does not
//!   make it unready: it still takes orders into the outbox.
//!
//! The answers carry no secrets: a failing check says what failed, not how it was addressed.

use std::time::{Duration, Instant};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use serde::Serialize;

use procure_store::Store;
use procure_temporal::TemporalLink;

/// How long each readiness check may take before it counts as failed.
const CHECK_WITHIN: Duration = Duration::from_secs(3);

/// What readiness checks: the store, and Temporal when this process talks to it.
#[derive(Clone)]
pub struct HealthChecks {
    pub store: Store,
    pub temporal: Option<std::sync::Arc<TemporalLink>>,
}

/// The health routes, for any router's state.
pub fn router<S: Clone + Send + Sync + 'static>(checks: HealthChecks) -> Router<S> {
    Router::new()
        .route("/health", get(live))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(checks)
}

#[derive(Debug, Serialize)]
pub struct Live {
    pub status: &'static str,
}

async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Failed,
    /// No such dependency in this process (an API without a Temporal link).
    NotConfigured,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub status: CheckStatus,
    pub took_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Ready {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub database: Check,
    pub temporal: Check,
}

async fn timed<F>(check: F) -> Check
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    let outcome = check.await;
    Check {
        status: if outcome.is_ok() {
            CheckStatus::Ok
        } else {
            CheckStatus::Failed
        },
        took_ms: started.elapsed().as_millis() as u64,
        error: outcome
            .err()
            .map(|e| e.to_string().chars().take(200).collect()),
    }
}

async fn ready(State(state): State<HealthChecks>) -> (StatusCode, Json<Ready>) {
    let database = timed(async {
        tokio::time::timeout(CHECK_WITHIN, state.store.ping())
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} ms", CHECK_WITHIN.as_millis()))?
            .map_err(|e| anyhow::anyhow!("{e}"))
    });
    let temporal = async {
        match &state.temporal {
            Some(link) => timed(link.ready(CHECK_WITHIN)).await,
            None => Check {
                status: CheckStatus::NotConfigured,
                took_ms: 0,
                error: None,
            },
        }
    };
    let (database, temporal) = tokio::join!(database, temporal);
    let ok = database.status == CheckStatus::Ok && temporal.status != CheckStatus::Failed;
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if ok { "ready" } else { "not_ready" };
    (
        code,
        Json(Ready {
            status,
            database,
            temporal,
        }),
    )
}
