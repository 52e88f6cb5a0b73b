//! The event log for consumers that pull: `GET /api/v1/events?after=<cursor>&limit=<n>` (a
//! customer sees their own events, operators and admins all) and a customer's notifications,
//! `GET /api/v1/customers/{id}/notifications`. Both page by cursor, oldest first; the envelope is
//! the one webhooks deliver (`views::events`).

use crate::auth::{Caller, Role};
use crate::views::events::EventList;
use crate::{ApiError, AppState, id_ok};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    routing::get,
};
use procure_domain::events::EventType;
use procure_store::events::Reader;
use serde::Deserialize;

/// Events per page when the request names no `limit`, and the most it may name.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/events", get(feed))
        .route("/api/v1/customers/{id}/notifications", get(notifications))
}

/// The query of a page; every value is read as text, so a malformed one gets a 400 that names
/// it (not the extractor's).
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: Option<String>,
    /// Comma-separated type names (the feed only).
    #[serde(rename = "type")]
    pub types: Option<String>,
}

/// The cursor and page size of a query: `after` a cursor (a whole number ≥ 0; absent: the
/// start of the log), `limit` 1 to [`MAX_LIMIT`].
pub(crate) fn page(q: &PageQuery) -> Result<(i64, i64), ApiError> {
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|a| *a >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "invalid_cursor",
                    "after must be a cursor from an earlier page (a whole number, 0 for the start)"
                        .into(),
                )
            })?,
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "invalid_limit",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    Ok((after, limit))
}

fn types(q: &PageQuery) -> Result<Option<Vec<EventType>>, ApiError> {
    let Some(list) = q.types.as_deref() else {
        return Ok(None);
    };
    list.split(',')
        .map(|t| {
            t.trim().parse::<EventType>().map_err(|_| {
                ApiError::BadRequest(
                    "invalid_type",
                    format!(
                        "type must list catalogue types separated by commas (docs/events.md); {:?} is none",
                        t.trim().chars().take(64).collect::<String>()
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn query(
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<PageQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))
}

async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let q = query(q)?;
    let (after, limit) = page(&q)?;
    let types = types(&q)?;
    let reader = match caller.customer_id() {
        Some(c) => Reader::Customer(c),
        None => Reader::All,
    };
    let page = state
        .store
        .events_after(reader, after, limit, types.as_deref())
        .await?;
    Ok(Json(page.into()))
}

async fn notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(customer_id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    caller.require_customer(&customer_id, &[Role::Operator])?;
    if !id_ok(&customer_id) {
        return Err(ApiError::NotFound("customer"));
    }
    let q = query(q)?;
    if q.types.is_some() {
        return Err(ApiError::BadRequest(
            "invalid_query",
            "notifications take after and limit only".into(),
        ));
    }
    let (after, limit) = page(&q)?;
    let page = state
        .store
        .customer_notifications(&customer_id, after, limit)
        .await?;
    Ok(Json(page.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(after: Option<&str>, limit: Option<&str>) -> PageQuery {
        PageQuery {
            after: after.map(Into::into),
            limit: limit.map(Into::into),
            types: None,
        }
    }

    #[test]
    fn pages_are_bounded_and_bad_values_named() {
        assert_eq!(page(&q(None, None)).unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(page(&q(Some("42"), Some("500"))).unwrap(), (42, 500));
        for (after, limit, code) in [
            (Some("-1"), None, "invalid_cursor"),
            (Some("abc"), None, "invalid_cursor"),
            (Some("1.5"), None, "invalid_cursor"),
            (None, Some("0"), "invalid_limit"),
            (None, Some("501"), "invalid_limit"),
            (None, Some("ten"), "invalid_limit"),
        ] {
            match page(&q(after, limit)) {
                Err(ApiError::BadRequest(c, _)) => assert_eq!(c, code, "{after:?} {limit:?}"),
                other => panic!("{after:?} {limit:?}: {other:?}"),
            }
        }
        let typed = PageQuery {
            types: Some("order.paid, parcel.shipped".into()),
            ..q(None, None)
        };
        assert_eq!(
            types(&typed).unwrap(),
            Some(vec![EventType::OrderPaid, EventType::ParcelShipped])
        );
        let bad = PageQuery {
            types: Some("order.paid,order.exploded".into()),
            ..q(None, None)
        };
        assert!(matches!(
            types(&bad),
            Err(ApiError::BadRequest("invalid_type", _))
        ));
    }
}
