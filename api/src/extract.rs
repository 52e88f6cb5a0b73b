//! The one JSON body extractor. It never rejects on its own: a handler first checks who is
//! calling, then reads the body, so a caller without the right role learns nothing about what a
//! valid body looks like. A body that does not parse becomes the API's structured error
//! ([`ApiError`]: 415, 413 or 400 with the parser's reason).

use crate::ApiError;
use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
};
use std::convert::Infallible;

/// A JSON request body of type `T`, read when the handler asks for it with [`JsonBody::read`].
pub struct JsonBody<T>(Result<T, ApiError>);

impl<T> JsonBody<T> {
    /// The parsed body, or the error that explains why it does not parse.
    pub fn read(self) -> Result<T, ApiError> {
        self.0
    }

    /// The parsed body, if it parsed (for tracing fields).
    pub fn peek(&self) -> Option<&T> {
        self.0.as_ref().ok()
    }
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request(req: Request, state: &S) -> Result<Self, Infallible> {
        Ok(JsonBody(
            Json::<T>::from_request(req, state)
                .await
                .map(|Json(t)| t)
                .map_err(ApiError::from),
        ))
    }
}
