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
    OfferPrice, PriceSource, ProductDetail, ProductSource, PurchaseRequest, Purchased, purchase,
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

    /// Vendor answers in each documented detail shape (docs/vendors/), told apart by path.
    fn handle_detail(req: &Recorded) -> Reply {
        let form = req.form();
        let body = match req.path() {
            p if p.starts_with("/openapi/") => match form["productId"].as_str() {
                "610001" => json!({"success": true, "productInfo": {
                    "productID": 610001, "subject": "Mug", "status": "published",
                    "attributes": [{"attributeID": 1, "attributeName": "材质", "value": "陶瓷"},
                                   {"attributeID": 2, "attributeName": "", "value": "x"}],
                    "image": {"images": ["img/ibank/1.jpg", "//cbu01.alicdn.com/img/2.jpg", "img/ibank/1.jpg"]},
                    "skuInfos": [
                        {"specId": "s1", "price": 45.5, "amountOnSale": 120,
                         "attributes": [{"attributeID": 3216, "attributeValue": "白色", "attributeDisplayName": "颜色",
                                         "skuImageUrl": "img/ibank/s1.jpg"}]},
                        {"specId": "s2", "amountOnSale": 0,
                         "attributes": [{"attributeID": 3216, "attributeValue": "黑色", "attributeName": "颜色"}]}],
                    "saleInfo": {"minOrderQuantity": 3, "priceRanges": [{"startQuantity": 10, "price": 40}, {"startQuantity": 3, "price": 42.1}]},
                    "shippingInfo": {"unitWeight": 0.385, "length": 12, "width": 9.5, "height": 10},
                    "supplierUserId": "2207", "sellerLoginId": "mug factory"}}),
                "610003" => {
                    json!({"success": true, "productInfo": {"productID": 610003, "subject": "Bare",
                    "saleInfo": {"amountOnSale": 7.0, "priceRanges": [{"startQuantity": 2, "price": "1.05"}]},
                    "shippingInfo": {"unitWeight": 0.2}}})
                }
                "610002" => {
                    json!({"success": true, "productInfo": {"productID": "610002", "status": "expired", "skuInfos": []}})
                }
                "610500" => json!({"error_code": "gw.APIACLDecline", "error_message": "no"}),
                _ => json!({"success": false, "message": "商品[610404]不存在"}),
            },
            "/rest/product/get" => match form["item_id"].as_str() {
                "1001" => json!({"code": "0", "request_id": "r", "success": true, "data": {
                    "item_id": 1001, "title": "Mug", "shop_id": 77, "shop_name": "", "user_nick": "mug shop",
                    "begin_amount": 2, "pic_urls": ["//img.alicdn.com/a.jpg", "https://img.alicdn.com/b.jpg"],
                    "sku_list": [{"sku_id": 5001, "price": 4500, "promotion_price": 4200, "quantity": 300,
                        "pic_url": "", "properties": [{"prop_id": 1627207, "prop_name": "颜色分类", "value_id": 1, "value_name": "白色"}]},
                        {"sku_id": "5002", "price": 4600, "promotion_price": 0, "quantity": "4", "properties": []}]}}),
                "1002" => json!({"code": "0", "request_id": "r", "success": true, "data": {
                    "item_id": "1002", "title": "Plain", "price": 990, "quantity": 5}}),
                _ => {
                    json!({"code": "0", "request_id": "r", "success": false, "error_code": "ITEM_NOT_FOUND", "error_msg": "gone"})
                }
            },
            "/api/router" => match (
                form["type"].as_str(),
                form.get("goods_sign").map(String::as_str),
                form.get("keyword").map(String::as_str),
            ) {
                ("pdd.ddk.goods.detail", Some("sign-one"), _) => {
                    assert_eq!(form["need_sku_info"], "true");
                    json!({"goods_detail_response": {"goods_details": [{
                        "goods_sign": "sign-one", "goods_name": "Mug", "goods_image_url": "https://img.pddpic.com/m.jpg",
                        "goods_gallery_urls": ["https://img.pddpic.com/m.jpg", "https://img.pddpic.com/g.jpg"],
                        "mall_id": 9001, "mall_name": "Mug mall", "min_group_price": 3900, "min_normal_price": 4500,
                        "sku_list": [
                            {"is_onsale": 1, "min_group_price": 3900, "sku_thumb_url": "https://img.pddpic.com/s.jpg",
                             "spec_list": [{"parent_spec_id": 1, "parent_spec_value": "颜色", "spec_id": 11, "spec_value": "白"},
                                           {"parent_spec_id": 2, "parent_spec_value": "容量", "spec_id": 21, "spec_value": "350ml"}]},
                            {"is_onsale": 0, "spec_list": [{"parent_spec_value": "颜色", "spec_id": 12, "spec_value": "黑"}]}]}]}})
                }
                ("pdd.ddk.goods.detail", Some("sign-plain"), _) => {
                    json!({"goods_detail_response": {"goods_details": [{
                    "goods_sign": "sign-plain", "goods_name": "Plain", "min_group_price": 0, "min_normal_price": 500}]}})
                }
                ("pdd.ddk.goods.detail", _, _) => {
                    json!({"goods_detail_response": {"goods_details": []}})
                }
                ("pdd.ddk.goods.search", _, Some("279384713802")) => {
                    json!({"goods_search_response": {
                    "goods_list": [{"goods_sign": "sign-one", "goods_name": "Mug"}], "total_count": 1}})
                }
                ("pdd.ddk.goods.search", _, Some("3")) => json!({"goods_search_response": {
                    "goods_list": [{"goods_sign": "a"}, {"goods_sign": "b", "goods_id": 3}]}}),
                ("pdd.ddk.goods.search", _, Some("4")) => json!({"goods_search_response": {
                    "goods_list": [{"goods_sign": "a"}, {"goods_sign": "b"}]}}),
                ("pdd.ddk.goods.search", _, _) => {
                    json!({"goods_search_response": {"goods_list": []}})
                }
                other => panic!("unexpected call {other:?}"),
            },
            p => panic!("unexpected path {p}"),
        };
        Reply::json(200, body.to_string())
    }

    async fn marketplaces(server: &MockServer) -> Marketplaces {
        let base_url = server.base_url();
        Marketplaces::new(
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
        .unwrap()
    }

    #[tokio::test]
    async fn product_detail_reads_every_documented_field() {
        use market::{Attribute, Dimensions, SkuDetail};
        let server = MockServer::start(handle_detail).await;
        let m = marketplaces(&server).await;
        use Platform::*;

        let p = m.product(Alibaba1688, "610001").await.unwrap();
        assert_eq!(p.product_id, "610001");
        assert_eq!(p.title, "Mug");
        assert_eq!(
            p.image_urls,
            [
                "https://cbu01.alicdn.com/img/ibank/1.jpg",
                "https://cbu01.alicdn.com/img/2.jpg"
            ]
        );
        assert_eq!(p.attributes, [Attribute::new("材质", "陶瓷")]);
        assert_eq!(
            p.skus,
            [
                SkuDetail {
                    spec_id: "s1".into(),
                    attributes: vec![Attribute::new("颜色", "白色")],
                    price_fen: 4550,
                    stock: Some(120),
                    image_url: Some("https://cbu01.alicdn.com/img/ibank/s1.jpg".into()),
                },
                // Priced by quantity: the tier at the smallest quantity (3 → 42.10 yuan).
                SkuDetail {
                    spec_id: "s2".into(),
                    attributes: vec![Attribute::new("颜色", "黑色")],
                    price_fen: 4210,
                    stock: Some(0),
                    image_url: None,
                },
            ]
        );
        assert_eq!(p.min_order_quantity, Some(3));
        assert_eq!(p.seller.id.as_deref(), Some("2207"));
        assert_eq!(p.seller.name.as_deref(), Some("mug factory"));
        assert_eq!(p.weight_g, Some(385));
        assert_eq!(
            p.dimensions,
            Some(Dimensions {
                l_mm: 120,
                w_mm: 95,
                h_mm: 100
            })
        );
        let bare = m.product(Alibaba1688, "610003").await.unwrap();
        assert_eq!(bare.skus.len(), 1);
        assert_eq!(
            (
                bare.skus[0].spec_id.as_str(),
                bare.skus[0].price_fen,
                bare.skus[0].stock
            ),
            ("", 105, Some(7))
        );
        assert_eq!(bare.min_order_quantity, Some(2));
        assert_eq!((bare.weight_g, bare.dimensions), (Some(200), None));
        assert_eq!(bare.seller, market::Seller::default());

        let t = m.product(Taobao, "1001").await.unwrap();
        assert_eq!((t.product_id.as_str(), t.title.as_str()), ("1001", "Mug"));
        assert_eq!(
            t.image_urls,
            [
                "https://img.alicdn.com/a.jpg",
                "https://img.alicdn.com/b.jpg"
            ]
        );
        assert_eq!(t.skus[0].spec_id, "5001");
        assert_eq!(t.skus[0].price_fen, 4200, "the promotion price");
        assert_eq!(t.skus[0].attributes, [Attribute::new("颜色分类", "白色")]);
        assert_eq!(t.skus[0].stock, Some(300));
        assert_eq!(
            (
                t.skus[1].spec_id.as_str(),
                t.skus[1].price_fen,
                t.skus[1].stock
            ),
            ("5002", 4600, Some(4))
        );
        assert_eq!(t.min_order_quantity, Some(2));
        assert_eq!(t.seller.id.as_deref(), Some("77"));
        assert_eq!(t.seller.name.as_deref(), Some("mug shop"));
        assert_eq!((t.weight_g, t.dimensions), (None, None));
        let plain = m.product(Taobao, "1002").await.unwrap();
        assert_eq!(
            (
                plain.skus.len(),
                plain.skus[0].spec_id.as_str(),
                plain.skus[0].price_fen
            ),
            (1, "", 990)
        );

        let d = m.product(Pinduoduo, "sign-one").await.unwrap();
        assert_eq!(d.product_id, "sign-one");
        assert_eq!(
            d.image_urls,
            [
                "https://img.pddpic.com/m.jpg",
                "https://img.pddpic.com/g.jpg"
            ]
        );
        assert_eq!(d.skus[0].spec_id, "11_21");
        assert_eq!(
            d.skus[0].attributes,
            [
                Attribute::new("颜色", "白"),
                Attribute::new("容量", "350ml")
            ]
        );
        assert_eq!((d.skus[0].price_fen, d.skus[0].stock), (3900, None));
        assert_eq!(
            (
                d.skus[1].spec_id.as_str(),
                d.skus[1].price_fen,
                d.skus[1].stock
            ),
            ("12", 3900, Some(0))
        );
        assert_eq!(d.min_order_quantity, None);
        assert_eq!(d.seller.id.as_deref(), Some("9001"));
        let plain = m.product(Pinduoduo, "sign-plain").await.unwrap();
        assert_eq!(
            plain.skus[0].price_fen, 500,
            "no group price: the single-buy price"
        );
    }

    #[tokio::test]
    async fn a_gone_listing_and_a_vendor_error_are_distinct() {
        let server = MockServer::start(handle_detail).await;
        let m = marketplaces(&server).await;
        use Platform::*;
        for (platform, id) in [
            (Alibaba1688, "610404"),
            (Alibaba1688, "610002"),
            (Taobao, "1404"),
            (Pinduoduo, "sign-gone"),
        ] {
            assert_eq!(
                m.product(platform, id).await.unwrap_err(),
                MarketError::ListingGone,
                "{platform:?} {id}"
            );
        }
        assert!(matches!(
            m.product(Alibaba1688, "610500").await.unwrap_err(),
            MarketError::Rejected { code, .. } if code == "gw.APIACLDecline"
        ));
    }

    #[tokio::test]
    async fn a_pdd_goods_id_resolves_to_its_goods_sign() {
        use procure_domain::product_link::parse_link;
        let server = MockServer::start(handle_detail).await;
        let m = marketplaces(&server).await;
        let link =
            parse_link("https://mobile.yangkeduo.com/goods.html?goods_id=279384713802").unwrap();
        assert_eq!(m.resolve(&link).await.unwrap(), "sign-one");
        let p = m.product_by_ref(&link).await.unwrap();
        assert_eq!(
            (p.product_id.as_str(), p.title.as_str()),
            ("sign-one", "Mug")
        );
        let pdd = Pdd::new(PddConfig {
            base_url: server.base_url(),
            ..PddConfig::default()
        })
        .unwrap();
        assert_eq!(
            pdd.resolve_goods_id("3").await.unwrap(),
            "b",
            "the entry with its id"
        );
        assert!(matches!(
            pdd.resolve_goods_id("4").await.unwrap_err(),
            MarketError::Rejected { code, .. } if code == "AMBIGUOUS_GOODS_ID"
        ));
        assert_eq!(
            pdd.resolve_goods_id("5").await.unwrap_err(),
            MarketError::ListingGone
        );
        // Other ids are used as they are.
        let offer = parse_link("https://detail.1688.com/offer/610001.html").unwrap();
        assert_eq!(m.resolve(&offer).await.unwrap(), "610001");
        assert_eq!(m.product_by_ref(&offer).await.unwrap().skus.len(), 2);
    }
}
