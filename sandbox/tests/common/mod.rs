//! Shared harness of the sandbox's HTTP tests: a sandbox on a random loopback port that stops
//! when the harness is dropped.
#![allow(dead_code)]

use procure_sandbox::{LedgerEntry, Sandbox, SandboxConfig};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::{net::TcpListener, sync::oneshot};

pub(crate) struct Harness {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) sandbox: Sandbox,
    _stop: oneshot::Sender<()>,
}

pub(crate) fn install_crypto() {
    // reqwest is built with `rustls-no-provider`: a client cannot be built without one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) async fn start(cfg: SandboxConfig) -> Harness {
    install_crypto();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let sandbox = Sandbox::new(cfg);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(procure_sandbox::serve(
        listener,
        sandbox.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    Harness {
        base,
        http: reqwest::Client::new(),
        sandbox,
        _stop: stop,
    }
}

pub(crate) async fn start_default() -> Harness {
    start(SandboxConfig::default()).await
}

/// How long a test waits for an asynchronous effect.
pub(crate) const DEADLINE: Duration = Duration::from_secs(15);

impl Harness {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        r.json().await.unwrap()
    }

    pub(crate) async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    pub(crate) async fn fault(&self, spec: Value) {
        let (s, v) = self.post_json("/_sandbox/faults", spec).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(v["id"].is_string());
    }

    pub(crate) async fn clear_faults(&self) {
        let r = self
            .http
            .delete(self.url("/_sandbox/faults"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    pub(crate) fn ledger_of(&self, kind: &str) -> Vec<LedgerEntry> {
        self.sandbox
            .ledger()
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    pub(crate) async fn await_ledger(&self, kind: &str, n: usize) -> Vec<LedgerEntry> {
        let start = Instant::now();
        loop {
            let entries = self.ledger_of(kind);
            if entries.len() >= n {
                return entries;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{n} {kind} ledger entries within the deadline"
            );
            tokio::task::yield_now().await;
        }
    }
}

/// Milliseconds since the Unix epoch, as the vendors' timestamps count them.
pub(crate) fn now_ms() -> i64 {
    procure_domain::clock::now_ms()
}

/// Request parameters as owned pairs.
pub(crate) fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
