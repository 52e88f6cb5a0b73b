//! The API's one error type: a stable machine-readable `code`, a human message, optional
//! field-level details. Internal causes are logged with their chain and never leaked.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use procure_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(&'static str, String),
    #[error("not found")]
    NotFound(&'static str),
    /// 405: the path exists, the method does not (the `Allow` header lists those that do).
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{1}")]
    Conflict(&'static str, String),
    #[error("{1}")]
    Unprocessable(&'static str, String),
    /// An answer with a status of its own: a product the marketplace no longer lists (404), a
    /// marketplace's refusal (424 Failed Dependency), a budget used up (429).
    #[error("{2}")]
    Refused(StatusCode, &'static str, String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 413: the body is over the API's size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: not `Content-Type: application/json`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(e.into())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, fields) = match &self {
            ApiError::Validation(f) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "the request has invalid fields".to_owned(),
                Some(f.as_slice()),
            ),
            ApiError::BadRequest(code, m) => (StatusCode::BAD_REQUEST, *code, m.clone(), None),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not answer this method; see the Allow header".to_owned(),
                None,
            ),
            ApiError::Conflict(code, m) => (StatusCode::CONFLICT, *code, m.clone(), None),
            ApiError::Unprocessable(code, m) => {
                (StatusCode::UNPROCESSABLE_ENTITY, *code, m.clone(), None)
            }
            ApiError::Refused(status, code, m) => (*status, *code, m.clone(), None),
            ApiError::Unauthorized(m) => {
                (StatusCode::UNAUTHORIZED, "unauthorized", m.clone(), None)
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone(), None),
            ApiError::TooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                m.clone(),
                None,
            ),
            ApiError::UnsupportedMediaType(m) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                m.clone(),
                None,
            ),
            ApiError::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                m.clone(),
                None,
            ),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_owned(),
                    None,
                )
            }
        };
        (
            status,
            Json(Body {
                error: Inner {
                    code,
                    message,
                    fields,
                },
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::TooLarge(format!(
                    "the body is larger than {} KiB",
                    crate::MAX_BODY_BYTES / 1024
                ))
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::BadRequest("malformed_json", e.body_text())
            }
            JsonRejection::JsonDataError(e) => ApiError::BadRequest("invalid_body", e.body_text()),
            JsonRejection::BytesRejection(e) => ApiError::BadRequest("invalid_body", e.body_text()),
            other => ApiError::BadRequest("invalid_body", other.body_text()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::IdempotencyConflict => ApiError::Conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body".into(),
            ),
            StoreError::OutOfStock {
                sku,
                requested,
                available,
            } => ApiError::Conflict(
                "out_of_stock",
                format!("{sku}: requested {requested}, available {available}"),
            ),
            StoreError::UnknownSku(sku) => ApiError::field("items", format!("unknown sku {sku}")),
            // A conditional update lost to another change: the resource is not in the state
            // the request needs. Handlers may name the conflict more precisely.
            StoreError::StateConflict(why) => ApiError::Conflict("state_conflict", why),
            other => ApiError::internal(other),
        }
    }
}

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(e: axum::extract::rejection::BytesRejection) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the body is larger than {} KiB",
                crate::MAX_BODY_BYTES / 1024
            ))
        } else {
            ApiError::BadRequest("invalid_body", e.body_text())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_state_race_is_a_conflict_wherever_it_surfaces() {
        let r = ApiError::from(StoreError::StateConflict("parcel already packed".into()))
            .into_response();
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = ApiError::from(StoreError::Corrupt("bad row".into())).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
