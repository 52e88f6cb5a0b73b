//! A marketplace product as its detail API describes it, vendor-neutral ([`ProductDetail`]),
//! and the trait every platform's client reads it through ([`ProductSource`]). Each vendor
//! module maps its own answer (each vendor's page in docs/vendors/ says which field is which); what a
//! marketplace does not give is `None`, never a guess: the caller estimates weight and size.

use procure_domain::order::Platform;
use serde::{Deserialize, Serialize};

use super::MarketFuture;

/// One name/value pair: a product attribute (材质: 陶瓷) or one dimension of a SKU (颜色: 白色).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

impl Attribute {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Who sells the product, as far as the marketplace names them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    /// 1688 `supplierUserId` (else `sellerLoginId`), Taobao `shop_id`, PDD `mall_id`.
    pub id: Option<String>,
    /// 1688 `sellerLoginId` (else `supplierLoginId`), Taobao `shop_name` (else `user_nick`),
    /// PDD `mall_name`.
    pub name: Option<String>,
}

/// Outer size of one unit, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub length_mm: u32,
    pub width_mm: u32,
    pub height_mm: u32,
}

/// One buyable variant of a product: what a [`CargoLine`](super::CargoLine) names by
/// `(product_id, spec_id)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuDetail {
    /// 1688 `specId`, Taobao `sku_id`, PDD: the SKU's `spec_id`s joined with `_` (PDD names a
    /// SKU by no id of its own). Empty for a product without variants: the `spec_id` that
    /// [`PriceSource::offer_price`](super::PriceSource::offer_price) matches to the only spec.
    pub spec_id: String,
    /// The variant's dimensions (颜色: 白色, 尺码: L), in the marketplace's order.
    pub attributes: Vec<Attribute>,
    /// The unit price a buyer pays now, in fen (exact: read through `wire::Yuan` / `wire::Fen`).
    pub price_fen: i64,
    /// Units on sale; `None` where the marketplace reports no stock (Pinduoduo).
    pub stock: Option<i64>,
    pub image_url: Option<String>,
}

/// A product as its marketplace's detail API describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetail {
    pub platform: Platform,
    /// The id the detail API was asked by and answers for: the 1688 offer id, the Taobao item
    /// id, the Pinduoduo `goods_sign`. Every SKU's offer id.
    pub product_id: String,
    pub title: String,
    /// Absolute URLs, main image first.
    pub image_urls: Vec<String>,
    /// Product-level attributes (empty where the detail API lists none: Taobao, Pinduoduo).
    pub attributes: Vec<Attribute>,
    /// Every SKU, at least one.
    pub skus: Vec<SkuDetail>,
    /// The smallest quantity the seller sells in one order; `None` where the marketplace
    /// states none (Pinduoduo: one unit).
    pub min_order_quantity: Option<u32>,
    pub seller: Seller,
    /// Weight of one unit, grams, when the marketplace gives it (1688 `shippingInfo`).
    pub weight_g: Option<u32>,
    /// Size of one unit, when the marketplace gives all three sides (1688 `shippingInfo`).
    pub dimensions: Option<Dimensions>,
}

impl ProductDetail {
    /// The SKU with this spec id (an empty `spec_id` matches a product's only SKU).
    pub fn sku(&self, spec_id: &str) -> Option<&SkuDetail> {
        match self.skus.as_slice() {
            [only] if spec_id.is_empty() => Some(only),
            skus => skus.iter().find(|s| s.spec_id == spec_id),
        }
    }
}

/// One marketplace's product detail read.
pub trait ProductSource: Send + Sync {
    /// The product by the id its detail API takes (1688 offer id, Taobao item id, PDD
    /// `goods_sign`). A listing that is gone (delisted, deleted, unknown) is
    /// [`MarketError::ListingGone`](super::MarketError::ListingGone); every other failure is
    /// the vendor's error, classified as for any call.
    fn product<'a>(&'a self, product_id: &'a str) -> MarketFuture<'a, ProductDetail>;
}

/// An image path as a marketplace gives it, made absolute: `//host/p` gets `https:`, a
/// relative path gets `base` (1688 documents its image paths as relative to its CDN).
pub(crate) fn absolute_url(raw: &str, base: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    Some(
        if lower.starts_with("https://") || lower.starts_with("http://") {
            raw.to_owned()
        } else if let Some(rest) = raw.strip_prefix("//") {
            format!("https://{rest}")
        } else {
            format!(
                "{}/{}",
                base.trim_end_matches('/'),
                raw.trim_start_matches('/')
            )
        },
    )
}

/// The distinct non-empty URLs, in order.
pub(crate) fn distinct(urls: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for u in urls.into_iter().flatten() {
        if !out.contains(&u) {
            out.push(u);
        }
    }
    out
}

/// A non-empty, trimmed text.
pub(crate) fn some_text(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_image_paths_absolute() {
        let base = "https://cbu01.alicdn.com/";
        assert_eq!(
            absolute_url("img/ibank/2017/1.jpg", base).as_deref(),
            Some("https://cbu01.alicdn.com/img/ibank/2017/1.jpg")
        );
        assert_eq!(
            absolute_url("//img.alicdn.com/a.jpg", base).as_deref(),
            Some("https://img.alicdn.com/a.jpg")
        );
        assert_eq!(
            absolute_url("http://x.cn/a.jpg", base).as_deref(),
            Some("http://x.cn/a.jpg")
        );
        assert_eq!(absolute_url("  ", base), None);
        assert_eq!(
            distinct([Some("a".into()), None, Some("b".into()), Some("a".into())]),
            ["a", "b"]
        );
    }

    #[test]
    fn an_empty_spec_matches_the_only_sku() {
        let sku = |id: &str| SkuDetail {
            spec_id: id.into(),
            attributes: vec![],
            price_fen: 1,
            stock: None,
            image_url: None,
        };
        let mut p = ProductDetail {
            platform: Platform::Taobao,
            product_id: "1".into(),
            title: "t".into(),
            image_urls: vec![],
            attributes: vec![],
            skus: vec![sku("a")],
            min_order_quantity: None,
            seller: Seller::default(),
            weight_g: None,
            dimensions: None,
        };
        assert_eq!(p.sku("").unwrap().spec_id, "a");
        assert_eq!(p.sku("a").unwrap().spec_id, "a");
        p.skus.push(sku("b"));
        assert!(p.sku("").is_none());
        assert_eq!(p.sku("b").unwrap().spec_id, "b");
    }
}
