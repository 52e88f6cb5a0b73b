//! The codec endpoint for the Temporal Web UI and CLI (Temporal's remote codec protocol):
//! `POST /api/codec/decode` and `/api/codec/encode` with `{"payloads": [{"metadata": {…},
//! "data": "…"}]}` (bytes base64-encoded), so operators read and send payloads in clear while
//! Temporal stores them encrypted. Operators (and admins) may use both; a `codec` token (the
//! Web UI's credential, short-lived) may only decode. The token comes in `Authorization` (the
//! header form), or in the path (`/api/codec/t/{token}/decode`) for a stock UI that can send
//! no header; a token in a URL shows up in process lists and logs, so only ever put a codec
//! token there. `procure dev` uses neither in the UI's configuration: it gives the UI a
//! loopback relay that adds the header (`procure::devserver::CodecRelay`). Browsers may call
//! it from the origins in `ApiConfig::codec_origins` (CORS).

use crate::{
    ApiError, AppState,
    auth::{Caller, Role, authenticate},
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use temporalio_common::protos::temporal::api::common::v1::Payload;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/codec/{direction}", post(by_header).options(preflight))
        .route(
            "/api/codec/t/{token}/{direction}",
            post(by_path).options(preflight),
        )
}

/// Most payloads one request may carry.
const MAX_PAYLOADS: usize = 1_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct JsonPayload {
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    #[serde(default)]
    pub data: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Payloads {
    #[serde(default)]
    pub payloads: Vec<JsonPayload>,
}

fn from_json(p: JsonPayload) -> Result<Payload, ApiError> {
    let bad = |what: &str| ApiError::BadRequest("invalid_payload", format!("{what} is not base64"));
    Ok(Payload {
        metadata: p
            .metadata
            .into_iter()
            .map(|(k, v)| Ok((k, B64.decode(v).map_err(|_| bad("metadata"))?)))
            .collect::<Result<_, ApiError>>()?,
        data: B64.decode(p.data).map_err(|_| bad("data"))?,
        ..Default::default()
    })
}

fn to_json(p: Payload) -> JsonPayload {
    JsonPayload {
        metadata: p
            .metadata
            .into_iter()
            .map(|(k, v)| (k, B64.encode(v)))
            .collect(),
        data: B64.encode(p.data),
    }
}

/// CORS headers for an allowed browser origin.
fn cors(state: &AppState, headers: &HeaderMap, response: &mut Response) {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.config.codec_origins.iter().any(|a| a == o));
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type,x-namespace,authorization"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST, OPTIONS"),
        );
    }
}

async fn preflight(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    cors(&state, &headers, &mut r);
    r
}

#[derive(Clone, Copy)]
enum Direction {
    Encode,
    Decode,
}

async fn handle(
    state: AppState,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    body: Result<Bytes, BytesRejection>,
    direction: Direction,
) -> Response {
    let result = async {
        let caller = caller?;
        // A codec token (the Web UI's) decodes only; encoding makes payloads Temporal would
        // act on, which is an operator's business.
        match direction {
            Direction::Decode => caller.require(&[Role::Operator, Role::Codec])?,
            Direction::Encode => caller.require(&[Role::Operator])?,
        }
        let body = body?;
        let req: Payloads = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest("invalid_body", e.to_string()))?;
        if req.payloads.len() > MAX_PAYLOADS {
            return Err(ApiError::BadRequest(
                "too_many_payloads",
                format!("at most {MAX_PAYLOADS} payloads per request"),
            ));
        }
        let mut out = Vec::with_capacity(req.payloads.len());
        for p in req.payloads {
            let p = from_json(p)?;
            out.push(to_json(match direction {
                Direction::Encode => state.codec.encode_one(&p),
                Direction::Decode => state.codec.decode_one(p).map_err(|e| {
                    ApiError::Unprocessable("undecodable_payload", e.to_string())
                })?,
            }));
        }
        tracing::info!(caller = %caller.0.sub, role = caller.role().as_str(), payloads = out.len(), encode = matches!(direction, Direction::Encode), "codec request");
        Ok::<_, ApiError>(Json(Payloads { payloads: out }))
    }
    .await;
    let mut response = result.into_response();
    cors(&state, &headers, &mut response);
    response
}

impl Direction {
    fn parse(s: &str) -> Result<Direction, ApiError> {
        match s {
            "decode" => Ok(Direction::Decode),
            "encode" => Ok(Direction::Encode),
            _ => Err(ApiError::NotFound("route")),
        }
    }
}

/// `POST /api/codec/{decode|encode}` with the token in `Authorization`.
async fn by_header(
    State(state): State<AppState>,
    Path(direction): Path<String>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match Direction::parse(&direction) {
        Ok(d) => handle(state, headers, caller, body, d).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /api/codec/t/{token}/{decode|encode}`: the token in the path, for the stock Web UI.
async fn by_path(
    State(state): State<AppState>,
    Path((token, direction)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match Direction::parse(&direction) {
        Ok(d) => {
            let caller = authenticate(&state.tokens, &token);
            handle(state, headers, caller, body, d).await
        }
        Err(e) => e.into_response(),
    }
}
