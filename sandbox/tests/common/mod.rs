//! Shared harness of the sandbox's HTTP tests: a sandbox on a random loopback port that stops
//! when the harness is dropped.
#![allow(dead_code)]

use procure_sandbox::{Sandbox, SandboxConfig};
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
