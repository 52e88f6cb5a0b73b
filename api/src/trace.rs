//! Request logging and trace context: every request runs in one span carrying its method, its
//! matched route (never the raw path: the codec endpoint's path may hold a token), its
//! `request_id` (`x-request-id`, taken from the caller when it is a plain id, else generated,
//! and echoed on the response) and, once a handler knows it, the `order_id`. When the process
//! traces with OpenTelemetry (`procure_temporal::trace_with_opentelemetry`), an incoming W3C
//! `traceparent` is the span's parent, and [`current_traceparent`] hands the request's trace
//! context to the outbox row it queues, so the dispatcher starts the workflow in the same trace.

use axum::{
    Router,
    extract::{MatchedPath, Request},
    http::{HeaderMap, HeaderName},
    response::Response,
};
use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator},
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::{collections::HashMap, time::Duration};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The span of a request whose successful answers are logged at debug: health checks and the
/// high-volume reads of [`QUIET_READS`].
const QUIET_SPAN: &str = "quiet_request";

/// Routes read so often (product reads behind a storefront) that a line per success would drown
/// the log; their failures are logged as any other.
const QUIET_READS: &[&str] = &["/api/v1/products/{id}"];

/// The route of a request that matched none.
pub const UNMATCHED: &str = "unmatched";

/// A caller's request id is kept when it is 1 to 128 ASCII letters, digits, `-`, `_`, `.` or
/// `:`; anything else is replaced by a generated one (it ends up in every log line).
pub fn request_id_ok(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

async fn drop_unusable_request_id(mut req: Request) -> Request {
    let usable = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(request_id_ok);
    if !usable {
        req.headers_mut().remove(&X_REQUEST_ID);
    }
    req
}

/// The request span: method, route template, request id; `order_id` and `status` are recorded
/// later. Its parent is the caller's `traceparent` when traces are on.
fn request_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let method = req.method().as_str();
    // Health checks come every few seconds from an orchestrator, and product reads tens of
    // thousands of times a second from storefronts: their successful lines are debug.
    let span = if route.starts_with("/health/") || QUIET_READS.contains(&route) {
        tracing::info_span!(
            QUIET_SPAN,
            otel.name = Empty,
            otel.kind = Empty,
            method,
            route,
            request_id,
            status = Empty,
        )
    } else {
        tracing::info_span!(
            "http_request",
            otel.name = Empty,
            otel.kind = Empty,
            method,
            route,
            request_id,
            order_id = Empty,
            status = Empty,
        )
    };
    if procure_temporal::traces_with_opentelemetry() {
        name_for_traces(&span, &format!("{method} {route}"), Some("server"));
        let parent = TraceContextPropagator::new().extract(&Headers(req.headers()));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    span
}

fn request_served(res: &Response, latency: Duration, span: &Span) {
    let status = res.status().as_u16();
    span.record("status", status);
    let latency_ms = latency.as_millis() as u64;
    if span.metadata().is_some_and(|m| m.name() == QUIET_SPAN) && res.status().is_success() {
        tracing::debug!(status, latency_ms, "request served");
    } else if res.status().is_server_error() {
        tracing::warn!(status, latency_ms, "request failed");
    } else {
        tracing::info!(status, latency_ms, "request served");
    }
}

/// The request id, request span and request log around every route of `router`.
pub(crate) fn layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(request_served)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(drop_unusable_request_id))
}

/// The exported span's name (and kind) for `span`, which declared `otel.name` (and
/// `otel.kind`) empty: recorded only when the process traces, so log lines never show them.
pub(crate) fn name_for_traces(span: &Span, name: &str, kind: Option<&str>) {
    span.record("otel.name", name);
    if let Some(kind) = kind {
        span.record("otel.kind", kind);
    }
}

/// Record the order a request is about on its span (its log lines then carry `order_id`).
pub(crate) fn record_order_id(order_id: &str) {
    Span::current().record("order_id", order_id);
}

/// The W3C `traceparent` of the current span when the process traces, for work queued now and
/// done later (the outbox).
pub fn current_traceparent() -> Option<String> {
    if !procure_temporal::traces_with_opentelemetry() {
        return None;
    }
    let cx = Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace context a stored `traceparent` names (an empty context when it names none).
pub fn context_of(traceparent: &str) -> Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callers_request_id_is_kept_only_when_plain() {
        assert!(request_id_ok("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"));
        assert!(request_id_ok("gw:abc.123_x"));
        for bad in ["", "a b", "x\ny", "é", &"a".repeat(129), "{\"json\":1}"] {
            assert!(!request_id_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_stored_traceparent_names_its_trace() {
        let cx = context_of("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let span = cx.span();
        let sc = span.span_context();
        assert!(sc.is_valid() && sc.is_remote());
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(!context_of("garbage").span().span_context().is_valid());
    }
}
