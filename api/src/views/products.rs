//! An imported product as the storefront shows it: the marketplace's description, the measures
//! shipping is quoted with (and whether they are estimated), and each SKU with the `sku` a quote
//! names and whether it can be quoted now (`ProductView`, `ProductList`).

use procure_domain::{
    Currency, Money,
    order::Platform,
    product::{Attribute, Seller},
    quote::Dimensions,
};
use procure_store::alternatives::SkuAlternative;
use procure_store::products::{ProductPage, ProductStatus, StoredProduct};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ProductView {
    /// `{platform}-{product id}`: `GET /api/v1/products/{id}`.
    pub id: String,
    pub platform: Platform,
    /// The marketplace's id of it (1688 offer id, Taobao item id, Pinduoduo `goods_sign`).
    pub product_id: String,
    pub title: String,
    pub image_urls: Vec<String>,
    pub attributes: Vec<Attribute>,
    pub seller: Seller,
    pub min_order_quantity: Option<u32>,
    pub measures: MeasuresView,
    pub status: ProductStatus,
    pub skus: Vec<SkuView>,
    /// When the marketplace was last read for it (ms since the epoch).
    pub fetched_at_ms: i64,
    pub imported_at_ms: i64,
}

/// Weight and size of one unit, as quoted.
#[derive(Clone, Debug, Serialize)]
pub struct MeasuresView {
    pub weight_g: u32,
    pub dimensions: Dimensions,
    /// The marketplace gave none (or not all): procure's estimate, replaced by the warehouse's
    /// measure when the goods arrive.
    pub estimated: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SkuView {
    /// What `POST /api/v1/quotes` names.
    pub sku: String,
    pub spec_id: String,
    pub attributes: Vec<Attribute>,
    /// The marketplace's unit price, in CNY.
    pub price: Money,
    pub stock: Option<i64>,
    pub image_url: Option<String>,
    /// Listed by the marketplace now and in stock where it reports stock: a quote can name it.
    pub quote_ready: bool,
    /// The same product elsewhere, linked by an operator: procurement also buys there.
    pub alternatives: Vec<AlternativeView>,
}

/// A listing linked to a SKU as the same product on another platform or from another seller.
#[derive(Clone, Debug, Serialize)]
pub struct AlternativeView {
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub title: String,
    /// Its channel's unit price now, in CNY.
    pub price: Money,
    pub linked_at_ms: i64,
}

impl From<&SkuAlternative> for AlternativeView {
    fn from(a: &SkuAlternative) -> Self {
        AlternativeView {
            sku: a.alternative_sku.clone(),
            platform: a.platform,
            offer_id: a.offer_id.clone(),
            spec_id: a.spec_id.clone(),
            title: a.title.clone(),
            price: Money::new(a.price_fen, Currency::CNY),
            linked_at_ms: a.linked_at_ms,
        }
    }
}

impl From<StoredProduct> for ProductView {
    fn from(p: StoredProduct) -> Self {
        let active = p.status == ProductStatus::Active;
        let skus = p
            .skus
            .iter()
            .map(|k| {
                let current = p.detail.skus.iter().find(|s| s.spec_id == k.spec_id);
                SkuView {
                    sku: k.sku.clone(),
                    spec_id: k.spec_id.clone(),
                    attributes: current.map(|s| s.attributes.clone()).unwrap_or_default(),
                    price: Money::new(current.map_or(0, |s| s.price_fen), Currency::CNY),
                    stock: current.and_then(|s| s.stock),
                    image_url: current.and_then(|s| s.image_url.clone()),
                    quote_ready: active
                        && current
                            .is_some_and(|s| s.stock.is_none_or(|n| n > 0) && s.price_fen > 0),
                    alternatives: p
                        .alternatives
                        .iter()
                        .filter(|a| a.sku == k.sku)
                        .map(AlternativeView::from)
                        .collect(),
                }
            })
            .collect();
        let d = p.detail;
        ProductView {
            id: p.id,
            platform: d.platform,
            product_id: d.product_id,
            title: d.title,
            image_urls: d.image_urls,
            attributes: d.attributes,
            seller: d.seller,
            min_order_quantity: d.min_order_quantity,
            measures: MeasuresView {
                weight_g: p.measures.weight_g,
                dimensions: p.measures.dimensions,
                estimated: p.measures.estimated,
            },
            status: p.status,
            skus,
            fetched_at_ms: p.fetched_at_ms,
            imported_at_ms: p.imported_at_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ProductList {
    pub products: Vec<ProductView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<ProductPage> for ProductList {
    fn from(p: ProductPage) -> Self {
        ProductList {
            products: p.products.into_iter().map(Into::into).collect(),
            next_cursor: p.next,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::views::assert_wire;
    use procure_domain::product::{Measures, ProductDetail, SkuDetail};
    use procure_store::products::ProductSku;
    use serde_json::json;

    fn product() -> StoredProduct {
        StoredProduct {
            id: "1688-610001".into(),
            detail: ProductDetail {
                platform: Platform::Alibaba1688,
                product_id: "610001".into(),
                title: "Mug".into(),
                image_urls: vec!["https://cbu01.alicdn.com/a.jpg".into()],
                attributes: vec![Attribute::new("材质", "陶瓷")],
                skus: vec![
                    SkuDetail {
                        spec_id: "s1".into(),
                        attributes: vec![Attribute::new("颜色", "白色")],
                        price_fen: 1_250,
                        stock: Some(40),
                        image_url: None,
                    },
                    SkuDetail {
                        spec_id: "s2".into(),
                        attributes: vec![Attribute::new("颜色", "黑色")],
                        price_fen: 1_300,
                        stock: Some(0),
                        image_url: None,
                    },
                ],
                min_order_quantity: Some(2),
                seller: Seller {
                    id: Some("b2b-1".into()),
                    name: Some("mugs".into()),
                },
                weight_g: None,
                dimensions: None,
            },
            skus: vec![
                ProductSku {
                    sku: "1688-610001-aaaaaaaa".into(),
                    spec_id: "s1".into(),
                },
                ProductSku {
                    sku: "1688-610001-bbbbbbbb".into(),
                    spec_id: "s2".into(),
                },
                ProductSku {
                    sku: "1688-610001-cccccccc".into(),
                    spec_id: "gone".into(),
                },
            ],
            measures: Measures {
                weight_g: 500,
                dimensions: Dimensions {
                    l_mm: 250,
                    w_mm: 200,
                    h_mm: 100,
                },
                estimated: true,
            },
            status: ProductStatus::Active,
            fetched_at_ms: 1_700_000_000_000,
            imported_at_ms: 1_699_000_000_000,
            updated_at_ms: 1_700_000_000_000,
            version: 1,
            alternatives: vec![SkuAlternative {
                sku: "1688-610001-aaaaaaaa".into(),
                alternative_sku: "taobao-695028137746-0".into(),
                platform: Platform::Taobao,
                offer_id: "695028137746".into(),
                spec_id: "5123456789012".into(),
                title: "Mug (white)".into(),
                price_fen: 1390,
                confidence_bps: Some(8540),
                linked_by: "op-1".into(),
                linked_at_ms: 1_700_000_000_000,
            }],
        }
    }

    #[test]
    fn a_product_view_lists_every_sku_with_whether_it_can_be_quoted() {
        let sku = |sku: &str, spec: &str, attrs: Value, fen: i64, stock: Value, ready: bool| {
            json!({"sku": sku, "spec_id": spec, "attributes": attrs,
                "price": {"minor": fen, "currency": "CNY"}, "stock": stock, "image_url": null,
                "quote_ready": ready, "alternatives": []})
        };
        let mut first = sku(
            "1688-610001-aaaaaaaa",
            "s1",
            json!([{"name": "颜色", "value": "白色"}]),
            1_250,
            json!(40),
            true,
        );
        first["alternatives"] = json!([{"sku": "taobao-695028137746-0", "platform": "taobao",
            "offer_id": "695028137746", "spec_id": "5123456789012", "title": "Mug (white)",
            "price": {"minor": 1390, "currency": "CNY"},
            "linked_at_ms": 1_700_000_000_000_i64}]);
        use serde_json::Value;
        assert_wire(
            &ProductView::from(product()),
            json!({
                "id": "1688-610001", "platform": "1688", "product_id": "610001", "title": "Mug",
                "image_urls": ["https://cbu01.alicdn.com/a.jpg"],
                "attributes": [{"name": "材质", "value": "陶瓷"}],
                "seller": {"id": "b2b-1", "name": "mugs"},
                "min_order_quantity": 2,
                "measures": {"weight_g": 500, "dimensions": {"l_mm": 250, "w_mm": 200, "h_mm": 100}, "estimated": true},
                "status": "active",
                "skus": [
                    first,
                    sku("1688-610001-bbbbbbbb", "s2", json!([{"name": "颜色", "value": "黑色"}]), 1_300, json!(0), false),
                    sku("1688-610001-cccccccc", "gone", json!([]), 0, Value::Null, false),
                ],
                "fetched_at_ms": 1_700_000_000_000_i64,
                "imported_at_ms": 1_699_000_000_000_i64,
            }),
        );
        let mut delisted = product();
        delisted.status = ProductStatus::Delisted;
        let v = ProductView::from(delisted);
        assert!(v.skus.iter().all(|s| !s.quote_ready));
        assert_wire(
            &ProductList::from(ProductPage {
                products: vec![],
                next: None,
            }),
            json!({"products": []}),
        );
    }
}
