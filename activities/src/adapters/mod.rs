//! Clients of the external systems, one module per system, speaking the vendors' real protocols
//! (docs/sandbox-wire.md). Every `…Config::default()` points at the sandbox with its demo
//! credentials; real endpoints are a matter of configuration.
//!
//! reqwest is built with `rustls-no-provider`: the process must install a rustls
//! `CryptoProvider` before it builds any adapter (reqwest panics otherwise).

pub mod alibaba;
pub mod carrier;
pub mod failure;
pub mod fx;
pub mod http;
pub mod market;
pub mod payments;
pub mod pdd;
pub mod taobao;
pub mod tracking;

#[cfg(test)]
mod testing;

pub use alibaba::{Alibaba1688, AlibabaConfig, MarketError, PurchaseRequest, Purchased};
pub use carrier::{Carrier, CarrierConfig, Shipment};
pub use failure::adapter_err;
pub use fx::{EcbConfig, EcbFx, FxError, LockedRate};
pub use http::{ApiError, BuildError, HttpConfig};
pub use market::CancelOutcome;
pub use payments::{PaymentIntent, Payments, PaymentsConfig, Refund};
pub use pdd::{Pdd, PddConfig, PddGoods};
pub use taobao::{Taobao, TaobaoConfig};
pub use tracking::{ParcelStatus, TrackRef, TrackStatus, Tracking, TrackingConfig};

use procure_domain::order::Platform;

/// The sandbox's address: the default base URL of every adapter.
pub const SANDBOX_BASE_URL: &str = "http://127.0.0.1:8790";

/// An offer's current unit price (fen) and units on sale, where the platform reports them.
pub type OfferPrice = (i64, Option<i64>);

/// The marketplaces we price (and, where an API allows, buy) on, behind one platform-neutral
/// price lookup for price monitors and procurement ranking. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Marketplaces {
    pub alibaba: Alibaba1688,
    pub taobao: Taobao,
    pub pdd: Pdd,
}

impl Marketplaces {
    pub fn new(
        alibaba: AlibabaConfig,
        taobao: TaobaoConfig,
        pdd: PddConfig,
    ) -> Result<Self, BuildError> {
        Ok(Marketplaces {
            alibaba: Alibaba1688::new(alibaba)?,
            taobao: Taobao::new(taobao)?,
            pdd: Pdd::new(pdd)?,
        })
    }

    /// The current unit price (fen) of one offer and, where the platform reports it, the
    /// units on sale. `Ok(None)`: the listing (or that spec of it) is gone or not buyable.
    /// `spec_id` is the 1688 spec / Taobao sku; PDD prices a listing as a whole and ignores it
    /// (its price is the group-buy price, see [`PddGoods::best_price_fen`]). An empty
    /// `spec_id` matches a listing's only spec.
    pub async fn offer_price(
        &self,
        platform: Platform,
        offer_id: &str,
        spec_id: &str,
    ) -> Result<Option<OfferPrice>, MarketError> {
        let gone_is_none = |r: Result<Option<OfferPrice>, MarketError>| match r {
            Err(MarketError::ListingGone) => Ok(None),
            other => other,
        };
        match platform {
            Platform::Alibaba1688 => gone_is_none(
                async {
                    let info = self.alibaba.product_info(offer_id).await?;
                    // 1688 lists withdrawn offers with another status; a missing status is buyable.
                    if !info.status.is_empty() && info.status != "published" {
                        return Ok(None);
                    }
                    let skus: Vec<_> = info.skus.iter().map(|s| (s.spec_id.as_str(), s)).collect();
                    Ok(pick_spec(&skus, spec_id).map(|s| (s.price_fen, Some(s.amount_on_sale))))
                }
                .await,
            ),
            Platform::Taobao => gone_is_none(
                async {
                    let item = self.taobao.product(offer_id).await?;
                    let skus: Vec<_> = item.skus.iter().map(|s| (s.sku_id.as_str(), s)).collect();
                    Ok(pick_spec(&skus, spec_id).map(|s| (s.price_fen, Some(s.quantity))))
                }
                .await,
            ),
            Platform::Pinduoduo => Ok(self
                .pdd
                .goods_detail(offer_id)
                .await?
                .map(|g| (g.best_price_fen(), None))),
        }
    }
}

/// The spec asked for, or the only spec when none is named.
fn pick_spec<'a, T>(specs: &[(&str, &'a T)], spec_id: &str) -> Option<&'a T> {
    match specs {
        [(_, only)] if spec_id.is_empty() => Some(only),
        _ => specs.iter().find(|(id, _)| *id == spec_id).map(|(_, s)| *s),
    }
}

/// Tests that drive a real reqwest client install ring's provider, as the binaries do.
#[cfg(test)]
fn install_test_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Why an incoming webhook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("webhook signature is too old")]
    Stale,
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

impl From<procure_domain::signing::WebhookSignatureError> for WebhookError {
    fn from(e: procure_domain::signing::WebhookSignatureError) -> Self {
        use procure_domain::signing::WebhookSignatureError as E;
        match e {
            E::Mismatch => WebhookError::BadSignature,
            E::Stale => WebhookError::Stale,
            E::Malformed => WebhookError::Malformed("signature header".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use testing::{MockServer, Recorded, Reply};

    /// One fake for all three platforms, told apart by path; signing is tested per adapter.
    fn handle(req: &Recorded) -> Reply {
        let form = req.form();
        let path = req.path();
        let body = if path.starts_with("/openapi/") {
            match form["productId"].as_str() {
                "610001" => {
                    json!({"success": true, "productInfo": {"productID": "610001", "subject": "Mug", "status": "published",
                    "skuInfos": [{"specId": "s1", "price": "45.50", "amountOnSale": 120}, {"specId": "s2", "price": "47.00", "amountOnSale": 0}]}})
                }
                "610002" => {
                    json!({"success": true, "productInfo": {"productID": "610002", "status": "deleted", "skuInfos": []}})
                }
                _ => json!({"success": false, "code": "PRODUCT_NOT_EXIST", "message": "gone"}),
            }
        } else if path == "/rest/product/get" {
            match form["item_id"].as_str() {
                "tb1001" => {
                    json!({"code": "0", "request_id": "r", "data": {"item_id": "tb1001", "title": "Mug",
                    "skus": [{"sku_id": "tbs1", "price": 4200, "quantity": 300}]}})
                }
                "tb-limited" => {
                    json!({"code": "InvalidParameter", "message": "bad id", "request_id": "r"})
                }
                _ => json!({"code": "ITEM_NOT_FOUND", "message": "gone", "request_id": "r"}),
            }
        } else if path == "/api/router" {
            match form["goods_id_list"].as_str() {
                r#"["pdd2001"]"# => json!({"goods_detail_response": {"goods_details": [
                    {"goods_id": "pdd2001", "goods_name": "Mug", "min_group_price": 3900, "min_normal_price": 4500}]}}),
                r#"["pdd-risky"]"# => {
                    json!({"error_response": {"error_code": 70035, "error_msg": "risky"}})
                }
                _ => json!({"goods_detail_response": {"goods_details": []}}),
            }
        } else {
            panic!("unexpected path {path}")
        };
        Reply::json(200, body.to_string())
    }

    #[tokio::test]
    async fn offer_price_is_platform_neutral() {
        let server = MockServer::start(handle).await;
        let base_url = server.base_url();
        let m = Marketplaces::new(
            AlibabaConfig {
                base_url: base_url.clone(),
                ..AlibabaConfig::default()
            },
            TaobaoConfig {
                base_url: base_url.clone(),
                ..TaobaoConfig::default()
            },
            PddConfig {
                base_url,
                ..PddConfig::default()
            },
        )
        .unwrap();
        use Platform::*;
        let cases = [
            (Alibaba1688, "610001", "s1", Some((4550, Some(120)))),
            (Alibaba1688, "610001", "s2", Some((4700, Some(0)))),
            (Alibaba1688, "610001", "s9", None),
            (Alibaba1688, "610001", "", None),
            (Alibaba1688, "610002", "", None),
            (Alibaba1688, "610404", "s1", None),
            (Taobao, "tb1001", "tbs1", Some((4200, Some(300)))),
            (Taobao, "tb1001", "", Some((4200, Some(300)))),
            (Taobao, "tb404", "tbs1", None),
            (Pinduoduo, "pdd2001", "", Some((3900, None))),
        ];
        for (platform, offer, spec, expected) in cases {
            assert_eq!(
                m.offer_price(platform, offer, spec).await.unwrap(),
                expected,
                "{platform:?} {offer} {spec}"
            );
        }
        assert_eq!(m.offer_price(Pinduoduo, "pdd404", "").await.unwrap(), None);
        assert_eq!(
            m.offer_price(Pinduoduo, "pdd-risky", "").await.unwrap_err(),
            MarketError::AccountRestricted
        );
        assert!(matches!(
            m.offer_price(Taobao, "tb-limited", "x").await,
            Err(MarketError::Rejected { code, .. }) if code == "InvalidParameter"
        ));
    }
}
