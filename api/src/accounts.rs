//! Admin API for the buyer-account pool. Credentials are write-only: they are sealed on the
//! way in and no response, log line or error ever carries them.

use crate::auth::Caller;
use crate::extract::JsonBody;
use crate::views::accounts::{AccountList, AccountView};
use crate::{ApiError, AppState, error::FieldError};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, patch},
};
use procure_domain::{Secret, order::Platform, status::AccountStatus};
use procure_store::{StoreError, accounts::NewAccount};
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/accounts", get(list).post(add))
        .route("/api/v1/admin/accounts/{id}", patch(update).get(one))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddAccount {
    pub id: String,
    pub platform: String,
    pub label: String,
    pub weight: i64,
    pub daily_cap: i64,
    pub per_minute: i64,
    pub access_token: Secret,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    pub weight: Option<i64>,
    pub daily_cap: Option<i64>,
    pub per_minute: Option<i64>,
    pub status: Option<String>,
    pub access_token: Option<Secret>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub platform: Option<String>,
}

fn check_range(e: &mut Vec<FieldError>, field: &str, v: Option<i64>, lo: i64, hi: i64) {
    if let Some(v) = v
        && !(lo..=hi).contains(&v)
    {
        e.push(FieldError {
            field: field.into(),
            message: format!("must be {lo} to {hi}"),
        });
    }
}

fn check_token(e: &mut Vec<FieldError>, t: Option<&Secret>) {
    let Some(t) = t else { return };
    if t.expose().is_empty() || t.expose().len() > 512 {
        e.push(FieldError {
            field: "access_token".into(),
            message: "must be 1 to 512 characters".into(),
        });
    }
    // A secret serializes redacted, so the body check cannot see it; the message names the
    // character's position, never the token.
    crate::text::line(e, "access_token", t.expose());
}

fn platform(s: &str) -> Result<Platform, ApiError> {
    match s.parse::<Platform>() {
        Ok(Platform::Pinduoduo) => Err(ApiError::field(
            "platform",
            "Pinduoduo purchases are assisted; it has no buyer accounts",
        )),
        Ok(p) => Ok(p),
        Err(_) => Err(ApiError::field("platform", "one of 1688, taobao")),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccountList>, ApiError> {
    caller.require(&[])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let p = q.platform.as_deref().map(platform).transpose()?;
    Ok(Json(AccountList::from(state.store.accounts(p).await?)))
}

async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    caller.require(&[])?;
    match state.store.account(&id).await {
        Ok(a) => Ok(Json(a.into())),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("account")),
        Err(e) => Err(e.into()),
    }
}

async fn add(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<AddAccount>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    caller.require(&[])?;
    let req = body.read()?;
    let text = crate::text::lines(&req);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    let p = platform(&req.platform)?;
    let mut e = Vec::new();
    if req.id.is_empty()
        || req.id.len() > 64
        || !req
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        e.push(FieldError {
            field: "id".into(),
            message: "1 to 64 letters, digits, - or _".into(),
        });
    }
    if req.label.is_empty() || req.label.chars().count() > 100 {
        e.push(FieldError {
            field: "label".into(),
            message: "must be 1 to 100 characters".into(),
        });
    }
    check_range(&mut e, "weight", Some(req.weight), 1, 1_000);
    check_range(&mut e, "daily_cap", Some(req.daily_cap), 0, 100_000);
    check_range(&mut e, "per_minute", Some(req.per_minute), 0, 10_000);
    check_token(&mut e, Some(&req.access_token));
    if !e.is_empty() {
        return Err(ApiError::Validation(e));
    }
    if state.store.account(&req.id).await.is_ok() {
        return Err(ApiError::Conflict(
            "account_exists",
            format!("account {} exists", req.id),
        ));
    }
    let acc = state
        .store
        .add_account(
            &NewAccount {
                id: req.id,
                platform: p,
                label: req.label,
                weight: req.weight,
                daily_cap: req.daily_cap,
                per_minute: req.per_minute,
                access_token: req.access_token,
            },
            &state.sealer,
        )
        .await?;
    tracing::info!(account = %acc.id, platform = acc.platform.as_str(), "buyer account added");
    Ok((StatusCode::CREATED, Json(acc.into())))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<UpdateAccount>,
) -> Result<Json<AccountView>, ApiError> {
    caller.require(&[])?;
    let req = body.read()?;
    let mut e = crate::text::lines(&req);
    check_range(&mut e, "weight", req.weight, 1, 1_000);
    check_range(&mut e, "daily_cap", req.daily_cap, 0, 100_000);
    check_range(&mut e, "per_minute", req.per_minute, 0, 10_000);
    check_token(&mut e, req.access_token.as_ref());
    let status = match req.status.as_deref().map(str::parse::<AccountStatus>) {
        Some(Err(_)) => {
            e.push(FieldError {
                field: "status".into(),
                message: "active or disabled".into(),
            });
            None
        }
        Some(Ok(s)) => Some(s),
        None => None,
    };
    if !e.is_empty() {
        return Err(ApiError::Validation(e));
    }
    let token = req
        .access_token
        .as_ref()
        .map(|t| (t, state.sealer.as_ref()));
    match state
        .store
        .update_account(
            &id,
            req.weight,
            req.daily_cap,
            req.per_minute,
            status,
            token,
        )
        .await
    {
        Ok(a) => {
            tracing::info!(account = %a.id, status = %a.status, "buyer account updated");
            Ok(Json(a.into()))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("account")),
        Err(err) => Err(err.into()),
    }
}
