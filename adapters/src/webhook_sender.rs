//! Our own webhooks, sent to the endpoints subscribers registered
//! (`procure_domain::ports::WebhookSender`): one `POST` per attempt, the JSON body and the
//! Standard Webhooks headers as given (docs/vendors/standard-webhooks.md), no redirects followed
//! (the specification counts a 3xx as a failure), a timeout per request.
//!
//! Outside development, names that resolve to an internal address (loopback, private,
//! link-local, …: `procure_domain::ports::is_internal_address`) are refused when connecting,
//! as are such addresses written literally, so a subscriber's URL cannot reach into the
//! deployment's own network (SSRF). An egress proxy is still the stronger protection.

use procure_domain::ports::{
    OutgoingWebhook, PortError, PortFuture, WebhookAnswer, WebhookSender, is_internal_address,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::{net::SocketAddr, sync::Arc, time::Duration};

use crate::http::BuildError;

/// Sends webhooks; see the module docs.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    client: reqwest::Client,
    allow_internal: bool,
}

/// Resolves names and drops the internal addresses among the answers.
#[derive(Debug)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_internal_address(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} resolves to no public address").into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

impl WebhookClient {
    /// A client connecting within `connect_timeout`; `allow_internal` lets it reach internal
    /// addresses (development and tests, whose receivers are on loopback).
    pub fn new(connect_timeout: Duration, allow_internal: bool) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("procure-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_internal {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = builder.build().map_err(|e| BuildError {
            service: "webhooks",
            reason: e.to_string(),
        })?;
        Ok(WebhookClient {
            client,
            allow_internal,
        })
    }
}

/// What went wrong, in words an admin reads in the attempts list (no URL query, no header).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    let mut text = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

impl WebhookSender for WebhookClient {
    fn send<'a>(&'a self, req: OutgoingWebhook<'a>) -> PortFuture<'a, WebhookAnswer> {
        Box::pin(async move {
            let url = reqwest::Url::parse(req.url)
                .map_err(|e| PortError::new(format!("the endpoint's URL: {e}"), false))?;
            if !self.allow_internal
                && let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host()
                && let Ok(ip) = url
                    .host_str()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .parse()
                && is_internal_address(ip)
            {
                return Err(PortError::new("the endpoint's address is internal", false));
            }
            let mut builder = self
                .client
                .post(url)
                .timeout(req.timeout)
                .header("content-type", "application/json")
                .body(req.body.to_vec());
            for (name, value) in req.headers {
                builder = builder.header(*name, value);
            }
            let resp = builder
                .send()
                .await
                .map_err(|e| PortError::new(describe(&e, req.timeout), true))?;
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            Ok(WebhookAnswer {
                status: resp.status().as_u16(),
                retry_after,
            })
        })
    }
}
