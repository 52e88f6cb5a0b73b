//! The email channel's endpoints (delivery itself is `email_delivery`):
//!
//! - `PUT /api/v1/customers/{id}/contact` `{"email", "email_notifications", "locale"?}`, `GET`
//!   and `DELETE` of it: the customer themself, operators and admins, as the customer's
//!   notifications. The address is personal data: checked here (a 422 naming `email`, never
//!   repeating it), sealed with the data keys before it is stored, never logged.
//! - `GET /api/v1/admin/email-deliveries?status=&before=&limit=` (admin): the deliveries with
//!   their attempts, newest first; `status=failed` lists what was given up.

use crate::auth::{Caller, Role};
use crate::error::FieldError;
use crate::extract::JsonBody;
use crate::views::email::{ContactView, EmailDeliveryList, EmailDeliveryView};
use crate::{ApiError, AppState, id_ok};
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    routing::get,
};
use procure_domain::email::{Locale, check_address};
use procure_store::{StoreError, email::Contact};
use serde::{Deserialize, Serialize};

/// Most deliveries one page lists.
pub const MAX_LIMIT: i64 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/customers/{id}/contact",
            get(show).put(put).delete(remove),
        )
        .route("/api/v1/admin/email-deliveries", get(deliveries))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutContact {
    pub email: String,
    pub email_notifications: bool,
    /// A language tag the templates exist in (`en`); absent: `en`.
    #[serde(default)]
    pub locale: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    pub status: Option<String>,
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

fn customer(caller: &Caller, id: &str) -> Result<(), ApiError> {
    caller.require_customer(id, &[Role::Operator])?;
    if !id_ok(id) {
        return Err(ApiError::NotFound("customer"));
    }
    Ok(())
}

fn view(state: &AppState, c: Contact) -> Result<ContactView, ApiError> {
    let email = state
        .sealer
        .open(&c.email_sealed)
        .map_err(ApiError::internal)?;
    let email = String::from_utf8(email)
        .map_err(|_| ApiError::internal(anyhow::anyhow!("a sealed address is not text")))?;
    Ok(ContactView::new(c, email))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ContactView>, ApiError> {
    customer(&caller, &id)?;
    match state.store.contact(&id).await {
        Ok(c) => Ok(Json(view(&state, c)?)),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("contact")),
        Err(e) => Err(e.into()),
    }
}

async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<PutContact>,
) -> Result<Json<ContactView>, ApiError> {
    customer(&caller, &id)?;
    let req = body.read()?;
    let email = req.email.trim();
    // Every string is one printable line first (the message names the character, never the
    // text), then the address is one we can send to.
    let mut errors = crate::text::lines(&req);
    let named = |errors: &[FieldError], f: &str| errors.iter().any(|e| e.field == f);
    if !named(&errors, "email")
        && let Err(why) = check_address(email)
    {
        errors.push(FieldError {
            field: "email".into(),
            message: format!("not an email address we can send to: {why}"),
        });
    }
    let locale = match req.locale.as_deref().map(str::trim) {
        None | Some("") => Locale::En,
        Some(_) if named(&errors, "locale") => Locale::En,
        Some(tag) => match Locale::parse(tag) {
            Some(l) => l,
            None => {
                errors.push(FieldError {
                    field: "locale".into(),
                    message: format!(
                        "must be one of {}",
                        Locale::ALL
                            .iter()
                            .map(|l| l.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
                Locale::En
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // The domain is case-insensitive; the local part is the receiving server's to interpret.
    let email = match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
        None => email.to_owned(),
    };
    let sealed = state.sealer.seal(email.as_bytes());
    let c = state
        .store
        .put_contact(&id, &sealed, req.email_notifications, locale.as_str())
        .await?;
    tracing::info!(customer = %id, email_notifications = req.email_notifications, locale = locale.as_str(), "customer contact set");
    Ok(Json(view(&state, c)?))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    customer(&caller, &id)?;
    match state.store.delete_contact(&id).await {
        Ok(()) => {
            tracing::info!(customer = %id, "customer contact removed");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("contact")),
        Err(e) => Err(e.into()),
    }
}

async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Json<EmailDeliveryList>, ApiError> {
    caller.require(&[])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let statuses = procure_store::email::STATUSES;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) if statuses.contains(&s) => Some(s),
        Some(_) => {
            return Err(ApiError::field(
                "status",
                format!("must be one of {}", statuses.join(", ")),
            ));
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::field(
            "limit",
            format!("must be 1 to {MAX_LIMIT}"),
        ));
    }
    let rows = state
        .store
        .email_deliveries(status, q.before, limit)
        .await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    let mut out = Vec::with_capacity(rows.len());
    for d in rows {
        let attempts = state.store.email_attempts(d.id).await?;
        out.push(EmailDeliveryView::new(d, attempts));
    }
    Ok(Json(EmailDeliveryList {
        deliveries: out,
        next_before,
    }))
}
