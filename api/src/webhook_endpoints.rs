//! Webhook subscriptions (admin only): `POST/GET /api/v1/webhook-endpoints`,
//! `GET/PATCH/DELETE /api/v1/webhook-endpoints/{id}`, the secret's rotation with an overlap
//! (`POST …/{id}/rotate-secret`), a replay (`POST …/{id}/replay?since=…`) and the attempts
//! (`GET …/{id}/attempts`). Delivery itself is `webhook_delivery`.
//!
//! The secret (`whsec_…`, Standard Webhooks) is generated here, sealed with the data keys before
//! it is stored, and shown in the answer that created or rotated it, and never again.
//!
//! A target URL is outside input: `http` or `https`, a host, no credentials, no fragment, at
//! most 2,048 characters. Outside development (`webhooks.allow_internal_targets` off) a literal
//! internal address or `localhost` is refused here, and a name that resolves to one is refused
//! when connecting (`procure_adapters::webhook_sender`).

use crate::auth::Caller;
use crate::error::FieldError;
use crate::extract::JsonBody;
use crate::views::events::rfc3339;
use crate::views::webhooks::{
    AttemptList, EndpointList, EndpointView, ReplayView, SecretView, ShownSecret,
};
use crate::{ApiError, AppState, id_ok};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use procure_domain::{
    clock::now_ms, events::EventType, ports::is_internal_address, webhook_signing,
};
use procure_store::{
    StoreError,
    subscriptions::{Endpoint, EndpointChange, NewEndpoint},
};
use serde::{Deserialize, Serialize};

/// The longest overlap a rotation may ask for, and the one it gets by default.
pub const MAX_OVERLAP_S: u64 = 7 * 24 * 3600;
pub const DEFAULT_OVERLAP_S: u64 = 24 * 3600;
/// Events one replay queues at most.
pub const MAX_REPLAY: i64 = 10_000;
/// Attempts per page.
pub const MAX_ATTEMPTS_PAGE: i64 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhook-endpoints", get(list).post(create))
        .route(
            "/api/v1/webhook-endpoints/{id}",
            get(one).patch(update).delete(remove),
        )
        .route("/api/v1/webhook-endpoints/{id}/rotate-secret", post(rotate))
        .route("/api/v1/webhook-endpoints/{id}/replay", post(replay))
        .route("/api/v1/webhook-endpoints/{id}/attempts", get(attempts))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    pub url: String,
    /// Catalogue type names (`order.paid`), or `["*"]` for every type.
    pub event_types: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret keeps signing beside the new one (0 to 604800; default 86400).
    pub overlap_s: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct ReplayQuery {
    pub since: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AttemptsQuery {
    pub before: Option<String>,
    pub limit: Option<String>,
}

/// Why a target URL is refused, or the URL as given.
pub fn check_url(raw: &str, allow_internal: bool) -> Result<(), String> {
    if raw.is_empty() || raw.len() > 2_048 {
        return Err("must be 1 to 2048 characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be http or https".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("may not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("may not have a fragment".into());
    }
    let host = match url.host() {
        None => return Err("must name a host".into()),
        Some(h) => h,
    };
    if !allow_internal {
        let internal = match host {
            url::Host::Domain(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal")
            }
            url::Host::Ipv4(ip) => is_internal_address(ip.into()),
            url::Host::Ipv6(ip) => is_internal_address(ip.into()),
        };
        if internal {
            return Err(
                "points at an internal address (loopback, private, link-local); this deployment \
                 does not allow internal targets"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The event types named, each from the catalogue; `*` for all of them.
fn event_types(names: &[String], errors: &mut Vec<FieldError>) -> Vec<EventType> {
    if names.len() == 1 && names[0] == "*" {
        return EventType::ALL.to_vec();
    }
    if names.is_empty() || names.len() > EventType::ALL.len() {
        errors.push(FieldError {
            field: "event_types".into(),
            message: format!(
                "must list 1 to {} catalogue types (docs/events.md), or [\"*\"] for all",
                EventType::ALL.len()
            ),
        });
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        match n.parse::<EventType>() {
            Ok(t) if !out.contains(&t) => out.push(t),
            Ok(_) => errors.push(FieldError {
                field: format!("event_types[{i}]"),
                message: "listed twice".into(),
            }),
            Err(_) => errors.push(FieldError {
                field: format!("event_types[{i}]"),
                message: "not a catalogue type (docs/events.md)".into(),
            }),
        }
    }
    out
}

fn description(d: Option<&str>, errors: &mut Vec<FieldError>) {
    if d.is_some_and(|d| d.chars().count() > 200) {
        errors.push(FieldError {
            field: "description".into(),
            message: "at most 200 characters".into(),
        });
    }
}

fn url_field(state: &AppState, url: &str, errors: &mut Vec<FieldError>) {
    if let Err(message) = check_url(url, state.config.webhooks.allow_internal_targets) {
        errors.push(FieldError {
            field: "url".into(),
            message,
        });
    }
}

async fn view(state: &AppState, e: Endpoint) -> Result<EndpointView, ApiError> {
    let counts = state.store.delivery_counts(&e.id).await?;
    Ok(EndpointView::new(e, counts, now_ms()))
}

async fn endpoint(state: &AppState, id: &str) -> Result<Endpoint, ApiError> {
    if !id_ok(id) {
        return Err(ApiError::NotFound("webhook endpoint"));
    }
    match state.store.webhook_endpoint(id).await {
        Ok(e) => Ok(e),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("webhook endpoint")),
        Err(e) => Err(e.into()),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateEndpoint>,
) -> Result<(StatusCode, Json<SecretView>), ApiError> {
    caller.require(&[])?;
    let req = body.read()?;
    let mut errors = crate::text::lines(&req);
    url_field(&state, &req.url, &mut errors);
    let types = event_types(&req.event_types, &mut errors);
    description(req.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let id = format!("we_{}", uuid::Uuid::now_v7().simple());
    let secret = webhook_signing::generate_secret();
    let sealed = state.sealer.seal_secret(&secret);
    let e = state
        .store
        .add_webhook_endpoint(&NewEndpoint {
            id: &id,
            url: &req.url,
            description: req.description.as_deref().unwrap_or_default(),
            event_types: &types,
            secret_sealed: &sealed,
            enabled: req.enabled.unwrap_or(true),
        })
        .await?;
    tracing::info!(endpoint = %e.id, types = types.len(), "webhook endpoint subscribed");
    Ok((
        StatusCode::CREATED,
        Json(SecretView {
            endpoint: view(&state, e).await?,
            secret: ShownSecret(secret),
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<EndpointList>, ApiError> {
    caller.require(&[])?;
    let mut endpoints = Vec::new();
    for e in state.store.webhook_endpoints().await? {
        endpoints.push(view(&state, e).await?);
    }
    Ok(Json(EndpointList { endpoints }))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, ApiError> {
    caller.require(&[])?;
    let e = endpoint(&state, &id).await?;
    Ok(Json(view(&state, e).await?))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<UpdateEndpoint>,
) -> Result<Json<EndpointView>, ApiError> {
    caller.require(&[])?;
    endpoint(&state, &id).await?;
    let req = body.read()?;
    let mut errors = crate::text::lines(&req);
    if let Some(u) = &req.url {
        url_field(&state, u, &mut errors);
    }
    let types = req
        .event_types
        .as_deref()
        .map(|names| event_types(names, &mut errors));
    description(req.description.as_deref(), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let e = state
        .store
        .update_webhook_endpoint(
            &id,
            &EndpointChange {
                url: req.url.as_deref(),
                description: req.description.as_deref(),
                event_types: types.as_deref(),
                enabled: req.enabled,
            },
        )
        .await?;
    tracing::info!(endpoint = %e.id, enabled = e.enabled, "webhook endpoint updated");
    Ok(Json(view(&state, e).await?))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(&[])?;
    endpoint(&state, &id).await?;
    state.store.delete_webhook_endpoint(&id).await?;
    tracing::info!(endpoint = %id, "webhook endpoint removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<RotateSecret>,
) -> Result<Json<SecretView>, ApiError> {
    caller.require(&[])?;
    endpoint(&state, &id).await?;
    let req = body.read()?;
    let overlap = req.overlap_s.unwrap_or(DEFAULT_OVERLAP_S);
    if overlap > MAX_OVERLAP_S {
        return Err(ApiError::field(
            "overlap_s",
            format!("must be 0 to {MAX_OVERLAP_S} seconds"),
        ));
    }
    let secret = webhook_signing::generate_secret();
    let sealed = state.sealer.seal_secret(&secret);
    let until = now_ms() + (overlap as i64) * 1000;
    let e = state
        .store
        .rotate_webhook_secret(&id, &sealed, until)
        .await?;
    tracing::info!(endpoint = %id, overlap_s = overlap, "webhook secret rotated");
    Ok(Json(SecretView {
        endpoint: view(&state, e).await?,
        secret: ShownSecret(secret),
    }))
}

async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<ReplayQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<ReplayView>), ApiError> {
    caller.require(&[])?;
    endpoint(&state, &id).await?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let since_ms = match q.since.as_deref().map(str::trim) {
        None | Some("") => {
            return Err(ApiError::BadRequest(
                "invalid_since",
                "since is required: an RFC 3339 time (2026-12-01T00:00:00Z) or milliseconds since the epoch"
                    .into(),
            ));
        }
        Some(s) => parse_since(s).ok_or_else(|| {
            ApiError::BadRequest(
                "invalid_since",
                "since must be an RFC 3339 time (2026-12-01T00:00:00Z) or milliseconds since the epoch"
                    .into(),
            )
        })?,
    };
    let queued = state
        .store
        .replay_deliveries(&id, since_ms, MAX_REPLAY)
        .await?;
    tracing::info!(endpoint = %id, queued, since_ms, "webhook deliveries replayed");
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayView {
            queued,
            since: rfc3339(since_ms),
        }),
    ))
}

/// `since` as milliseconds: an RFC 3339 time or a whole number of milliseconds.
fn parse_since(s: &str) -> Option<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return (ms >= 0).then_some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
        .filter(|ms| *ms >= 0)
}

async fn attempts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<AttemptsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AttemptList>, ApiError> {
    caller.require(&[])?;
    endpoint(&state, &id).await?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let before = match q.before.as_deref() {
        None => None,
        Some(b) => Some(
            b.trim()
                .parse::<i64>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "invalid_cursor",
                        "before must be an attempt id from an earlier page".into(),
                    )
                })?,
        ),
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_ATTEMPTS_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_ATTEMPTS_PAGE}"),
                )
            })?,
    };
    let rows = state.store.delivery_attempts(&id, before, limit).await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|a| a.id))
        .flatten();
    Ok(Json(AttemptList {
        attempts: rows.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_urls_are_checked() {
        for ok in [
            "https://shop.example/hooks/procure",
            "http://shop.example:8080/h?x=1",
        ] {
            assert_eq!(check_url(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://shop.example/",
            "https://user:pw@shop.example/",
            "https://shop.example/#frag",
            "not a url",
            "file:///etc/passwd",
            "https://127.0.0.1/",
            "http://localhost:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.5/",
            "http://metadata.google.internal/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        // Development and tests: receivers on loopback.
        assert_eq!(check_url("http://127.0.0.1:9000/hook", true), Ok(()));
        assert!(check_url("ftp://127.0.0.1/", true).is_err());
    }

    #[test]
    fn event_types_are_the_catalogues() {
        let mut e = Vec::new();
        assert_eq!(event_types(&["*".into()], &mut e), EventType::ALL.to_vec());
        assert_eq!(
            event_types(&["order.paid".into(), "parcel.shipped".into()], &mut e),
            vec![EventType::OrderPaid, EventType::ParcelShipped]
        );
        assert!(e.is_empty());
        event_types(
            &["order.paid".into(), "order.paid".into(), "nope".into()],
            &mut e,
        );
        assert_eq!(
            e.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(),
            ["event_types[1]", "event_types[2]"]
        );
        let mut e = Vec::new();
        event_types(&[], &mut e);
        assert_eq!(e[0].field, "event_types");
    }

    #[test]
    fn since_is_a_time_or_milliseconds() {
        assert_eq!(parse_since("1764547200000"), Some(1_764_547_200_000));
        assert_eq!(parse_since("2025-12-01T00:00:00Z"), Some(1_764_547_200_000));
        assert_eq!(parse_since("yesterday"), None);
        assert_eq!(parse_since("-5"), None);
    }
}
