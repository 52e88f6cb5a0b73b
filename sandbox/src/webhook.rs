//! Outgoing webhooks (Stripe events, 17TRACK pushes): signed with `procure_domain::signing`,
//! delivered in the background and retried with exponential backoff until a 2xx answer.

use crate::{
    Sandbox,
    faults::{Platform, WEBHOOK_KINDS},
};
use procure_domain::signing;
use std::{sync::Arc, time::Duration};

/// Up to this many delivery attempts per event.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    Payments,
    Tracking,
}

/// reqwest is built with `rustls-no-provider`: `Client::new()` panics unless the process installed
/// a default crypto provider. Use the process default when there is one, else a ring-based
/// config of our own (no trust roots: the sandbox's webhook targets are plain-http loopback).
pub(crate) fn build_client() -> Option<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        .no_proxy();
    let built = if rustls::crypto::CryptoProvider::get_default().is_some() {
        builder.build()
    } else {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(cfg) => builder
                .tls_backend_preconfigured(
                    cfg.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                )
                .build(),
            Err(e) => {
                tracing::error!(error = %e, "cannot configure TLS for webhooks");
                return None;
            }
        }
    };
    match built {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client");
            None
        }
    }
}

/// Queue `body` for delivery to the current target of `target`. `what` names the event in logs.
pub(crate) fn dispatch(sb: &Sandbox, target: Target, body: Vec<u8>, what: String) {
    let url = sb.with(|s| match target {
        Target::Payments => s.webhooks.payments.clone(),
        Target::Tracking => s.webhooks.tracking.clone(),
    });
    let Some(url) = url else {
        tracing::debug!(event = %what, ?target, "no webhook target configured; event not sent");
        return;
    };
    let platform = match target {
        Target::Payments => Platform::Stripe,
        Target::Tracking => Platform::Track17,
    };
    let fired = sb.with(|s| s.faults.fire(platform, "webhook", WEBHOOK_KINDS));
    let sb = sb.clone();
    tokio::spawn(async move {
        sb.sleep(fired.latency).await;
        deliver(&sb, target, &url, &body, fired.bad_signature, &what).await;
    });
}

async fn deliver(
    sb: &Sandbox,
    target: Target,
    url: &str,
    body: &[u8],
    bad_signature: bool,
    what: &str,
) {
    let Some(client) = sb.client() else { return };
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        if sb.is_shut_down() {
            return;
        }
        let req = client
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        let req = match target {
            Target::Payments => {
                let secret = if bad_signature {
                    "whsec_sandbox_wrong_secret"
                } else {
                    sb.config().stripe_webhook_secret.as_str()
                };
                let t = crate::util::now_ms() / 1000;
                req.header(
                    "Stripe-Signature",
                    signing::stripe_signature_header(secret, t, body),
                )
            }
            Target::Tracking => {
                let key = if bad_signature {
                    "sandbox-wrong-token"
                } else {
                    sb.config().track17_token.as_str()
                };
                req.header("sign", signing::track17_signature(body, key))
            }
        };
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(event = %what, attempt, status = r.status().as_u16(), "webhook delivered");
                return;
            }
            Ok(r) => {
                tracing::warn!(event = %what, attempt, status = r.status().as_u16(), "webhook rejected");
            }
            Err(e) => {
                tracing::warn!(event = %what, attempt, error = %e.without_url(), "webhook delivery failed");
            }
        }
        if attempt < MAX_ATTEMPTS {
            sb.sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    tracing::error!(event = %what, "webhook given up after {MAX_ATTEMPTS} attempts");
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_builds_without_a_process_crypto_provider() {
        // Nothing in this test binary installs a default provider: the ring fallback is used.
        assert!(super::build_client().is_some());
    }
}
