//! Plumbing shared by every adapter: one client shape (connect and per-attempt timeouts), a
//! deadline on each call, in-call retry of transient failures (connection refused, 5xx, 429)
//! with exponential backoff and jitter, per-adapter pacing, and error texts scrubbed of
//! credentials. Errors name the operation, never the URL: a 1688 path carries the app key.

use std::{
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use procure_domain::Secret;
use procure_metrics::CallOutcome;
use serde::{Deserialize, Serialize};

/// Timeouts, retry budget and pacing of one adapter. Durations in milliseconds so the struct
/// reads naturally from a configuration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// TCP (and TLS) connect timeout of one attempt.
    pub connect_timeout_ms: u64,
    /// Whole-attempt timeout: from sending the request to the end of the response body.
    pub request_timeout_ms: u64,
    /// Upper bound of a whole call: pacing, every attempt and the backoff between them. The
    /// activity's start-to-close timeout must leave room for the calls it makes.
    pub call_deadline_ms: u64,
    /// Attempts per call, the first included (1 = no in-call retry).
    pub max_attempts: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// Pacing of this adapter's requests (all calls of one adapter value share it); 0 = none.
    pub requests_per_second: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            call_deadline_ms: 25_000,
            max_attempts: 3,
            backoff_min_ms: 100,
            backoff_max_ms: 2_000,
            requests_per_second: 20,
        }
    }
}

/// The client could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot build the {service} HTTP client: {reason}")]
pub struct BuildError {
    pub service: &'static str,
    pub reason: String,
}

/// Errors of the payment, tracking and carrier adapters (marketplaces use `market::MarketError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    /// No answer in time: the request may or may not have taken effect. Reconcile or retry with
    /// the same idempotency key; never treat it as "not done".
    #[error("timed out; the outcome is unknown")]
    Timeout,
    /// Connection failure, 5xx, in-flight duplicate: safe to retry with the same key.
    #[error("transient failure: {0}")]
    Transient(String),
    #[error("rate limited")]
    RateLimited,
    /// Credentials refused (401/403).
    #[error("credentials refused: {0}")]
    Unauthorized(String),
    /// The provider refused this request; sending it again will not change the answer.
    #[error("rejected ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer we cannot read; the outcome is unknown.
    #[error("unreadable response: {0}")]
    InvalidResponse(String),
}

impl ApiError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Timeout
            | ApiError::Transient(_)
            | ApiError::RateLimited
            | ApiError::InvalidResponse(_) => true,
            ApiError::Unauthorized(_) | ApiError::Rejected { .. } => false,
        }
    }

    /// The provider's error code, when it gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Map a transport failure (no HTTP answer).
    pub(crate) fn from_transport(t: Transport) -> Self {
        match t {
            Transport::Timeout => ApiError::Timeout,
            Transport::Connect(m) | Transport::Io(m) => ApiError::Transient(m),
            Transport::Build(m) => ApiError::Rejected {
                status: 0,
                code: "client_config".into(),
                message: m,
            },
        }
    }

    /// Map an HTTP answer that is not a success and carries no provider-specific error shape.
    pub(crate) fn from_status(resp: &RawResponse, code: String, message: String) -> Self {
        match resp.status {
            429 => ApiError::RateLimited,
            401 | 403 => ApiError::Unauthorized(message),
            408 => ApiError::Timeout,
            409 => ApiError::Transient(format!("409 {code}: {message}")),
            s if s >= 500 => ApiError::Transient(format!("{s} {code}: {message}")),
            s => ApiError::Rejected {
                status: s,
                code,
                message,
            },
        }
    }
}

/// A failure before any HTTP answer arrived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Transport {
    /// Per-attempt timeout or the call deadline: the request may have been processed.
    #[error("timed out")]
    Timeout,
    /// Could not connect: the request was not sent.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The connection broke mid-exchange: the request may have been processed.
    #[error("transport error: {0}")]
    Io(String),
    /// The request could not be built (bad base URL): a configuration error.
    #[error("invalid request: {0}")]
    Build(String),
}

/// An HTTP answer, any status. `body` has had the adapter's credentials scrubbed out.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) retry_after: Option<Duration>,
}

impl RawResponse {
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body, for error messages.
    pub(crate) fn snippet(&self) -> String {
        truncate(&self.body, 300)
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.body)
            .map_err(|e| format!("{e} in HTTP {} body {:?}", self.status, self.snippet()))
    }
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Default retry rule: HTTP 5xx and 429 are worth another attempt inside the same call.
pub(crate) fn retry_5xx_429(r: &RawResponse) -> bool {
    r.status >= 500 || r.status == 429
}

/// One adapter's HTTP client. Cheap to clone; clones share the connection pool and the pacing.
#[derive(Clone)]
pub(crate) struct HttpClient {
    service: &'static str,
    client: reqwest::Client,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    cfg: HttpConfig,
    /// Values that must never leave in an error or a log line.
    secrets: Arc<Vec<Secret>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("service", &self.service)
            .field("cfg", &self.cfg)
            .finish()
    }
}

impl HttpClient {
    /// Build the client. Needs a process-wide rustls `CryptoProvider` (reqwest is built with
    /// `rustls-no-provider`): the binary installs one at startup.
    pub(crate) fn new(
        service: &'static str,
        cfg: &HttpConfig,
        secrets: Vec<Secret>,
    ) -> Result<Self, BuildError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms.max(1)))
            .timeout(Duration::from_millis(cfg.request_timeout_ms.max(1)))
            .user_agent(concat!("procure/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError {
                service,
                reason: error_chain(&e),
            })?;
        let limiter = NonZeroU32::new(cfg.requests_per_second)
            .map(|rps| Arc::new(RateLimiter::direct(Quota::per_second(rps))));
        // Short values would scrub ordinary words; real credentials are long.
        let secrets = secrets
            .into_iter()
            .filter(|s| s.expose().len() >= 6)
            .collect();
        Ok(HttpClient {
            service,
            client,
            limiter,
            cfg: cfg.clone(),
            secrets: Arc::new(secrets),
        })
    }

    /// Replace every credential of this adapter found in `text` by `[redacted]`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        scrub_secrets(text, &self.secrets)
    }

    /// Send the request built by `make` (called again for every attempt, so signatures and
    /// timestamps are fresh), retrying transport-level connection failures and the answers
    /// `retry_on` accepts, within the call deadline. Timeouts are never retried here: a timed-out
    /// request may have taken effect, and deciding what to do next is the caller's business.
    pub(crate) async fn execute(
        &self,
        op: &str,
        make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        retry_on: impl Fn(&RawResponse) -> bool,
    ) -> Result<RawResponse, Transport> {
        let deadline = Duration::from_millis(self.cfg.call_deadline_ms.max(1));
        let started = Instant::now();
        let attempts = async {
            let mut delays = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(self.cfg.backoff_min_ms))
                .with_max_delay(Duration::from_millis(
                    self.cfg.backoff_max_ms.max(self.cfg.backoff_min_ms),
                ))
                .with_max_times(self.cfg.max_attempts.saturating_sub(1) as usize)
                .with_jitter()
                .build();
            let mut attempt = 1u32;
            loop {
                let outcome = self
                    .attempt(&make, deadline.saturating_sub(started.elapsed()))
                    .await;
                let retryable = match &outcome {
                    Ok(r) => retry_on(r),
                    Err(Transport::Connect(_)) => true,
                    Err(_) => false,
                };
                let Some(mut delay) = retryable.then(|| delays.next()).flatten() else {
                    return outcome;
                };
                if let Ok(RawResponse {
                    retry_after: Some(ra),
                    ..
                }) = &outcome
                {
                    delay = delay.max(*ra);
                }
                if started.elapsed() + delay >= deadline {
                    return outcome;
                }
                tracing::warn!(
                    service = self.service,
                    op,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    outcome = %describe(&outcome),
                    "retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        };
        let result = tokio::time::timeout(deadline, attempts)
            .await
            .unwrap_or(Err(Transport::Timeout));
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(r) => CallOutcome::of_status(r.status),
            Err(Transport::Timeout) => CallOutcome::Timeout,
            Err(Transport::Connect(_)) => CallOutcome::Unreachable,
            Err(Transport::Io(_)) => CallOutcome::Broken,
            Err(Transport::Build(_)) => CallOutcome::Invalid,
        };
        procure_metrics::global().adapter_call(self.service, op, outcome, elapsed);
        let elapsed_ms = elapsed.as_millis() as u64;
        match &result {
            Ok(r) => tracing::debug!(
                service = self.service,
                op,
                status = r.status,
                elapsed_ms,
                "call done"
            ),
            Err(e) => {
                tracing::warn!(service = self.service, op, error = %e, elapsed_ms, "call failed")
            }
        }
        result
    }

    async fn attempt(
        &self,
        make: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        remaining: Duration,
    ) -> Result<RawResponse, Transport> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let per_attempt = Duration::from_millis(self.cfg.request_timeout_ms.max(1)).min(remaining);
        if per_attempt.is_zero() {
            return Err(Transport::Timeout);
        }
        let resp = make(&self.client)
            .timeout(per_attempt)
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = resp.text().await.map_err(|e| self.transport(&e))?;
        Ok(RawResponse {
            status,
            body: self.scrub(&body),
            retry_after,
        })
    }

    fn transport(&self, e: &reqwest::Error) -> Transport {
        // Timeout first: a connect timeout is reported as both, and "maybe done" is the safe
        // reading of an ambiguous failure.
        if e.is_timeout() {
            return Transport::Timeout;
        }
        let text = self.scrub(&error_chain(e));
        if e.is_connect() {
            Transport::Connect(text)
        } else if e.is_builder() {
            Transport::Build(text)
        } else {
            Transport::Io(text)
        }
    }
}

fn describe(outcome: &Result<RawResponse, Transport>) -> String {
    match outcome {
        Ok(r) => format!("HTTP {}", r.status),
        Err(e) => e.to_string(),
    }
}

/// An error and its causes on one line, without the URL reqwest appends (query strings can
/// carry tokens and a 1688 path carries the app key).
fn error_chain(e: &reqwest::Error) -> String {
    let top = e.to_string();
    let mut text = top.split(" for url (").next().unwrap_or(&top).to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    strip_urls(&text)
}

/// Cut the query string and fragment off anything that looks like a URL in `text`.
pub(crate) fn strip_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        // Copy up to and including the scheme separator, then the URL up to its query.
        out.push_str(&rest[..pos + 3]);
        rest = &rest[pos + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>'))
            .unwrap_or(rest.len());
        let url = &rest[..end];
        out.push_str(url.split(['?', '#']).next().unwrap_or(url));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

pub(crate) fn scrub_secrets(text: &str, secrets: &[Secret]) -> String {
    let mut out = strip_urls(text);
    for s in secrets {
        if s.expose().len() >= 6 && out.contains(s.expose()) {
            out = out.replace(s.expose(), "[redacted]");
        }
    }
    out
}

/// Join a configured base URL and a path without doubling or dropping the slash.
pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MockServer, Reply, refused_base_url};

    fn fast_cfg() -> HttpConfig {
        HttpConfig {
            connect_timeout_ms: 500,
            request_timeout_ms: 300,
            call_deadline_ms: 5_000,
            max_attempts: 3,
            backoff_min_ms: 1,
            backoff_max_ms: 5,
            requests_per_second: 0,
        }
    }

    #[test]
    fn strips_query_strings_and_scrubs_secrets() {
        let text = "error for url (http://h:1/track?token=abc123456&x=1): boom http://a/b#frag";
        assert_eq!(
            strip_urls(text),
            "error for url (http://h:1/track): boom http://a/b"
        );
        let s = scrub_secrets(
            "bad token demo17token at http://h/p?k=v",
            &[Secret::new("demo17token")],
        );
        assert_eq!(s, "bad token [redacted] at http://h/p");
        assert_eq!(scrub_secrets("abc", &[Secret::new("")]), "abc");
    }

    #[test]
    fn joins_urls() {
        assert_eq!(join_url("http://h:1/", "/v1/x"), "http://h:1/v1/x");
        assert_eq!(join_url("http://h:1", "v1/x"), "http://h:1/v1/x");
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }

    #[test]
    fn classifies_status_codes() {
        let r = |status| RawResponse {
            status,
            body: String::new(),
            retry_after: None,
        };
        assert_eq!(
            ApiError::from_status(&r(429), "c".into(), "m".into()),
            ApiError::RateLimited
        );
        assert!(matches!(
            ApiError::from_status(&r(401), "c".into(), "m".into()),
            ApiError::Unauthorized(_)
        ));
        assert!(ApiError::from_status(&r(503), "c".into(), "m".into()).is_retryable());
        assert!(ApiError::from_status(&r(409), "c".into(), "m".into()).is_retryable());
        let rejected = ApiError::from_status(&r(400), "amount_too_large".into(), "m".into());
        assert!(!rejected.is_retryable());
        assert_eq!(rejected.code(), Some("amount_too_large"));
        assert!(ApiError::from_transport(Transport::Timeout).is_retryable());
    }

    #[tokio::test]
    async fn retries_5xx_then_succeeds() {
        let server = MockServer::start(|req| {
            if req.seq < 2 {
                Reply::json(503, "{}")
            } else {
                Reply::json(200, r#"{"ok":true}"#)
            }
        })
        .await;
        let http = HttpClient::new("test", &fast_cfg(), vec![]).unwrap();
        let url = server.url("/x");
        let r = http
            .execute("x", |c| c.get(&url), retry_5xx_429)
            .await
            .unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, r#"{"ok":true}"#));
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_returns_last_answer() {
        let server = MockServer::start(|_| Reply::json(500, r#"{"e":1}"#)).await;
        let http = HttpClient::new("test", &fast_cfg(), vec![]).unwrap();
        let url = server.url("/x");
        let r = http
            .execute("x", |c| c.get(&url), retry_5xx_429)
            .await
            .unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn does_not_retry_4xx() {
        let server = MockServer::start(|_| Reply::json(400, "{}")).await;
        let http = HttpClient::new("test", &fast_cfg(), vec![]).unwrap();
        let url = server.url("/x");
        let r = http
            .execute("x", |c| c.get(&url), retry_5xx_429)
            .await
            .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_hung_request_is_a_timeout_and_is_not_retried() {
        let server = MockServer::start(|_| Reply::Hang).await;
        let http = HttpClient::new("test", &fast_cfg(), vec![]).unwrap();
        let url = server.url("/x");
        let r = http.execute("x", |c| c.post(&url), retry_5xx_429).await;
        assert_eq!(r.unwrap_err(), Transport::Timeout);
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn connection_refused_is_retried_and_reported_without_secrets() {
        let base = refused_base_url().await;
        let token = Secret::new("super-secret-token");
        let http = HttpClient::new("test", &fast_cfg(), vec![token.clone()]).unwrap();
        let url = format!("{base}/x?token={}", token.expose());
        let err = http
            .execute("x", |c| c.get(&url), retry_5xx_429)
            .await
            .unwrap_err();
        let Transport::Connect(text) = &err else {
            panic!("expected a connect error, got {err:?}")
        };
        assert!(!text.contains(token.expose()), "{text}");
        assert!(!text.contains("?token"), "{text}");
    }

    #[tokio::test]
    async fn response_bodies_are_scrubbed() {
        let server =
            MockServer::start(|_| Reply::json(401, r#"{"msg":"bad token super-secret-token"}"#))
                .await;
        let http =
            HttpClient::new("test", &fast_cfg(), vec![Secret::new("super-secret-token")]).unwrap();
        let url = server.url("/x");
        let r = http
            .execute("x", |c| c.get(&url), retry_5xx_429)
            .await
            .unwrap();
        assert_eq!(r.body, r#"{"msg":"bad token [redacted]"}"#);
    }
}
