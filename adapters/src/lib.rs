//! Clients of the external systems, one module per system, speaking the vendors' real protocols
//! (docs/sandbox-wire.md). Every `…Config::default()` points at the sandbox with its demo
//! credentials; real endpoints are a matter of configuration.
//!
//! reqwest is built with `rustls-no-provider`: the process must install a rustls
//! `CryptoProvider` before it builds any adapter (reqwest panics otherwise).

pub mod alibaba;
pub mod carrier;
pub mod email_sender;
pub mod failure;
pub mod fx;
pub mod http;
pub mod market;
pub mod payments;
pub mod pdd;
pub mod ports;
pub mod registry;
pub mod taobao;
pub mod tracking;
pub mod webhook_sender;

#[cfg(test)]
mod testing;

pub use alibaba::{Alibaba1688, AlibabaConfig};
pub use carrier::{Carrier, CarrierConfig, Shipment};
pub use email_sender::{SmtpConfig, SmtpMailer, SmtpTls};
pub use failure::adapter_err;
pub use fx::{EcbConfig, EcbFx, FxError, LockedRate};
pub use http::{ApiError, BuildError, HttpConfig};
pub use market::{
    BuyerMarketplace, CancelOutcome, CargoLine, DeliveryAddress, LogisticsInfo, MarketError,
    OfferPrice, PriceSource, PurchaseRequest, Purchased, purchase,
};
pub use payments::{PaymentIntent, Payments, PaymentsConfig, Refund};
pub use pdd::{Pdd, PddConfig, PddGoods};
pub use registry::Marketplaces;
pub use taobao::{Taobao, TaobaoConfig};
pub use tracking::{ParcelStatus, TrackRef, TrackStatus, Tracking, TrackingConfig};
pub use webhook_sender::WebhookClient;

/// The sandbox's address: the default base URL of every adapter.
pub const SANDBOX_BASE_URL: &str = "http://127.0.0.1:8790";

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
    use procure_domain::order::Platform;
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
                    json!({"code": "0", "request_id": "r", "success": true, "data": {"item_id": "tb1001", "title": "Mug",
                    "sku_list": [{"sku_id": "tbs1", "price": 4200, "quantity": 300}]}})
                }
                "tb-limited" => {
                    json!({"code": "InvalidParameter", "message": "bad id", "request_id": "r"})
                }
                _ => json!({"code": "ITEM_NOT_FOUND", "message": "gone", "request_id": "r"}),
            }
        } else if path == "/api/router" {
            match form["goods_sign"].as_str() {
                "pdd2001" => json!({"goods_detail_response": {"goods_details": [
                    {"goods_sign": "pdd2001", "goods_id": 2001, "goods_name": "Mug", "min_group_price": 3900, "min_normal_price": 4500}]}}),
                "pdd-risky" => {
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
