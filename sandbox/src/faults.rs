//! Runtime fault injection (`POST /_sandbox/faults`). A fault names a platform, an api (the 1688
//! `apiName`, or a request-path suffix such as `confirm`, `refunds`, `register`, `shipments`,
//! `eurofxref-daily.xml`; `webhook` for outgoing webhooks; `*` for all), a kind, a firing
//! probability `rate` and an optional `count` of firings after which it is spent.
//!
//! Matching: `api == "*"` or the request's api name ends with `api`. A fault only fires (and only
//! uses up its count) on a call where its kind means something: `out_of_stock` only on 1688 /
//! Taobao, `price_jump` on 1688 / Taobao / Pinduoduo, `delisted` on product reads only (1688
//! `alibaba.cross.productInfo`, Taobao `/product/get`, Pinduoduo's goods detail and search), `bad_signature` on 1688 / Taobao /
//! Pinduoduo requests (the gateway rejects a correct signature, as after a secret rotation) and
//! on Stripe / 17TRACK outgoing webhooks (signed with a wrong key). Taobao's `api` is the
//! apiPath (`/purchase/order/create`), Pinduoduo's the `type` (`pdd.ddk.goods.detail`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) enum Platform {
    #[serde(rename = "1688")]
    Aop,
    #[serde(rename = "stripe")]
    Stripe,
    #[serde(rename = "17track")]
    Track17,
    #[serde(rename = "carrier")]
    Carrier,
    #[serde(rename = "ecb")]
    Ecb,
    #[serde(rename = "taobao")]
    Taobao,
    #[serde(rename = "pinduoduo")]
    Pinduoduo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultKind {
    Error,
    Latency,
    TimeoutAfterCommit,
    OutOfStock,
    PriceJump,
    RateLimit,
    AccountRestricted,
    BadSignature,
    /// The listing is taken off the shelf on this call: product reads only (1688
    /// `alibaba.cross.productInfo`, Taobao `/product/get`, Pinduoduo `pdd.ddk.goods.detail` and
    /// `pdd.ddk.goods.search`).
    Delisted,
}

/// Kinds that make sense on an ordinary inbound request of a non-marketplace platform.
pub(crate) const REQUEST_KINDS: &[FaultKind] = &[
    FaultKind::Error,
    FaultKind::Latency,
    FaultKind::TimeoutAfterCommit,
    FaultKind::RateLimit,
    FaultKind::AccountRestricted,
];
/// Kinds that make sense on an outgoing webhook delivery.
pub(crate) const WEBHOOK_KINDS: &[FaultKind] = &[FaultKind::Latency, FaultKind::BadSignature];
/// Every kind applies to 1688 and Taobao (IOP) requests.
pub(crate) const AOP_KINDS: &[FaultKind] = &[
    FaultKind::Error,
    FaultKind::Latency,
    FaultKind::TimeoutAfterCommit,
    FaultKind::OutOfStock,
    FaultKind::PriceJump,
    FaultKind::RateLimit,
    FaultKind::AccountRestricted,
    FaultKind::BadSignature,
];

/// The 1688 and Taobao product reads: every kind, `delisted` too.
pub(crate) const AOP_PRODUCT_KINDS: &[FaultKind] = &[
    FaultKind::Error,
    FaultKind::Latency,
    FaultKind::TimeoutAfterCommit,
    FaultKind::OutOfStock,
    FaultKind::PriceJump,
    FaultKind::RateLimit,
    FaultKind::AccountRestricted,
    FaultKind::BadSignature,
    FaultKind::Delisted,
];

/// Pinduoduo only answers product reads: no stock to run out of, no effect to commit (a
/// `timeout_after_commit` there just holds the answer back past the client's timeout).
pub(crate) const PDD_KINDS: &[FaultKind] = &[
    FaultKind::Error,
    FaultKind::Latency,
    FaultKind::TimeoutAfterCommit,
    FaultKind::PriceJump,
    FaultKind::RateLimit,
    FaultKind::AccountRestricted,
    FaultKind::BadSignature,
    FaultKind::Delisted,
];

/// Default sleep of `timeout_after_commit`: past any sane client timeout.
const DEFAULT_TIMEOUT_AFTER_COMMIT_MS: u64 = 30_000;
const DEFAULT_LATENCY_MS: u64 = 1_000;
const DEFAULT_PRICE_JUMP_PERCENT: u32 = 10;
const MAX_LATENCY_MS: u64 = 600_000;

/// Body of `POST /_sandbox/faults`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    platform: Platform,
    #[serde(default = "star")]
    api: String,
    kind: FaultKind,
    #[serde(default = "one")]
    rate: f64,
    latency_ms: Option<u64>,
    percent: Option<u32>,
    count: Option<u64>,
}

fn star() -> String {
    "*".to_owned()
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Fault {
    id: String,
    platform: Platform,
    api: String,
    kind: FaultKind,
    rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    percent: Option<u32>,
    /// Firings left; `None` = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u64>,
}

/// What fired on one call.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fired {
    pub(crate) latency: Duration,
    pub(crate) error: bool,
    pub(crate) rate_limit: bool,
    pub(crate) account_restricted: bool,
    pub(crate) bad_signature: bool,
    pub(crate) out_of_stock: bool,
    /// The listing answers as taken off the shelf (a product read).
    pub(crate) delisted: bool,
    pub(crate) price_jump_percent: Option<u32>,
    pub(crate) timeout_after_commit: Option<Duration>,
}

#[derive(Default)]
pub(crate) struct Faults {
    next_id: u64,
    active: Vec<Fault>,
}

impl Faults {
    pub(crate) fn add(&mut self, spec: FaultSpec) -> Result<Fault, String> {
        if !spec.rate.is_finite() || !(0.0..=1.0).contains(&spec.rate) {
            return Err("rate must be between 0 and 1".into());
        }
        if spec.api.is_empty() || spec.api.len() > 200 {
            return Err("api must be 1..=200 characters (or \"*\")".into());
        }
        if spec.latency_ms.is_some_and(|l| l > MAX_LATENCY_MS) {
            return Err(format!("latency_ms must be at most {MAX_LATENCY_MS}"));
        }
        if spec.percent.is_some_and(|p| p == 0 || p > 1000) {
            return Err("percent must be 1..=1000".into());
        }
        if spec.count == Some(0) {
            return Err("count must be at least 1 (omit it for unlimited)".into());
        }
        self.next_id += 1;
        let fault = Fault {
            id: format!("flt_{}", self.next_id),
            platform: spec.platform,
            api: spec.api,
            kind: spec.kind,
            rate: spec.rate,
            latency_ms: spec.latency_ms,
            percent: spec.percent,
            count: spec.count,
        };
        self.active.push(fault.clone());
        Ok(fault)
    }

    pub(crate) fn id(f: &Fault) -> &str {
        &f.id
    }

    pub(crate) fn list(&self) -> Vec<Fault> {
        self.active.clone()
    }

    pub(crate) fn clear(&mut self) -> usize {
        std::mem::take(&mut self.active).len()
    }

    pub(crate) fn remove(&mut self, id: &str) -> bool {
        let before = self.active.len();
        self.active.retain(|f| f.id != id);
        before != self.active.len()
    }

    /// Decide which faults fire on a call of `api` on `platform`, using up their counts.
    pub(crate) fn fire(&mut self, platform: Platform, api: &str, relevant: &[FaultKind]) -> Fired {
        let mut fired = Fired::default();
        for f in &mut self.active {
            let matches = f.platform == platform && (f.api == "*" || api.ends_with(f.api.as_str()));
            if !matches || !relevant.contains(&f.kind) {
                continue;
            }
            if f.rate < 1.0 && fastrand::f64() >= f.rate {
                continue;
            }
            if let Some(c) = f.count.as_mut() {
                *c -= 1;
            }
            match f.kind {
                FaultKind::Error => fired.error = true,
                FaultKind::Latency => {
                    fired.latency +=
                        Duration::from_millis(f.latency_ms.unwrap_or(DEFAULT_LATENCY_MS));
                }
                FaultKind::TimeoutAfterCommit => {
                    let ms = f.latency_ms.unwrap_or(DEFAULT_TIMEOUT_AFTER_COMMIT_MS);
                    fired.timeout_after_commit = Some(Duration::from_millis(ms));
                }
                FaultKind::OutOfStock => fired.out_of_stock = true,
                FaultKind::PriceJump => {
                    fired.price_jump_percent =
                        Some(f.percent.unwrap_or(DEFAULT_PRICE_JUMP_PERCENT));
                }
                FaultKind::RateLimit => fired.rate_limit = true,
                FaultKind::AccountRestricted => fired.account_restricted = true,
                FaultKind::BadSignature => fired.bad_signature = true,
                FaultKind::Delisted => fired.delisted = true,
            }
        }
        self.active.retain(|f| f.count != Some(0));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> FaultSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counts_matching_and_relevance() {
        let mut f = Faults::default();
        f.add(spec(
            r#"{"platform":"1688","api":"createCrossOrder","kind":"out_of_stock","count":1}"#,
        ))
        .unwrap();
        f.add(spec(r#"{"platform":"stripe","kind":"bad_signature"}"#))
            .unwrap();
        // Wrong api: nothing fires, nothing is used up.
        assert!(
            !f.fire(Platform::Aop, "alibaba.cross.productInfo", AOP_KINDS)
                .out_of_stock
        );
        assert!(
            f.fire(Platform::Aop, "alibaba.trade.createCrossOrder", AOP_KINDS)
                .out_of_stock
        );
        assert!(
            !f.fire(Platform::Aop, "alibaba.trade.createCrossOrder", AOP_KINDS)
                .out_of_stock
        );
        // bad_signature is irrelevant to a Stripe request but fires on its webhook.
        assert!(
            !f.fire(Platform::Stripe, "/v1/payment_intents", REQUEST_KINDS)
                .bad_signature
        );
        assert!(
            f.fire(Platform::Stripe, "webhook", WEBHOOK_KINDS)
                .bad_signature
        );
        assert_eq!(f.list().len(), 1);
        assert_eq!(f.clear(), 1);
        // delisted: product reads only.
        f.add(spec(r#"{"platform":"1688","kind":"delisted","count":1}"#))
            .unwrap();
        assert!(
            !f.fire(Platform::Aop, "alibaba.createOrder.preview", AOP_KINDS)
                .delisted
        );
        assert!(
            f.fire(
                Platform::Aop,
                "alibaba.cross.productInfo",
                AOP_PRODUCT_KINDS
            )
            .delisted
        );
        assert!(f.list().is_empty(), "spent");
    }

    #[test]
    fn rejects_bad_specs() {
        let mut f = Faults::default();
        assert!(
            f.add(spec(r#"{"platform":"1688","kind":"error","rate":1.5}"#))
                .is_err()
        );
        assert!(
            f.add(spec(r#"{"platform":"1688","kind":"error","count":0}"#))
                .is_err()
        );
        assert!(
            serde_json::from_str::<FaultSpec>(r#"{"platform":"ebay","kind":"error"}"#).is_err()
        );
        assert!(
            serde_json::from_str::<FaultSpec>(r#"{"platform":"1688","kind":"error","typo":1}"#)
                .is_err()
        );
    }
}
