//! A marketplace product as procure imports it: vendor-neutral ([`ProductDetail`]), read by the
//! adapters from each platform's detail API (which field is which is on each vendor's page in
//! docs/vendors/), stored in the catalogue and served to the storefront. What a marketplace does
//! not give is `None`, never a guess; [`estimate_measures`] is the one place a missing weight or
//! size is estimated, and the result says so.

use serde::{Deserialize, Serialize};

use crate::{order::Platform, quote::Dimensions};

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
    pub id: Option<String>,
    pub name: Option<String>,
}

/// One buyable variant of a product, named by `(product_id, spec_id)` when bought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuDetail {
    /// The marketplace's id of the variant (1688 `specId`, Taobao `sku_id`, Pinduoduo the
    /// variant's spec ids joined with `_`); empty for a product without variants.
    pub spec_id: String,
    /// The variant's dimensions (颜色: 白色, 尺码: L), in the marketplace's order.
    pub attributes: Vec<Attribute>,
    /// The unit price a buyer pays now, in fen.
    pub price_fen: i64,
    /// Units on sale; `None` where the marketplace reports no stock.
    pub stock: Option<i64>,
    pub image_url: Option<String>,
}

/// A product as its marketplace's detail API describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetail {
    pub platform: Platform,
    /// The id the detail API answers for and the product is bought by: the 1688 offer id, the
    /// Taobao item id, the Pinduoduo `goods_sign`.
    pub product_id: String,
    pub title: String,
    /// Absolute URLs, main image first.
    pub image_urls: Vec<String>,
    pub attributes: Vec<Attribute>,
    /// Every SKU, at least one.
    pub skus: Vec<SkuDetail>,
    /// The smallest quantity the seller sells in one order, where the marketplace states one.
    pub min_order_quantity: Option<u32>,
    pub seller: Seller,
    /// Weight of one unit, grams, when the marketplace gives it.
    pub weight_g: Option<u32>,
    /// Size of one unit, when the marketplace gives all three sides.
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

/// Weight and size of one unit for quoting, and whether they were estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measures {
    pub weight_g: u32,
    pub dimensions: Dimensions,
    /// The marketplace gave neither weight nor size (or only one): these are procure's estimate,
    /// to be replaced by the warehouse's measure when the goods arrive.
    pub estimated: bool,
}

/// The estimate for a unit the marketplace gives no measures for: 500 g in a
/// 250 × 200 × 100 mm box, a parcel-sized general-merchandise item. Volumetric weight
/// (5 kg per 5,000 cm³ divisor: 1 kg) stays above the weight, so an estimate never under-quotes
/// shipping for a bulky item by much. A given weight without a size gets the box; a given size
/// without a weight gets the weight of water filling a fifth of it (at least 100 g).
pub const ESTIMATED_WEIGHT_G: u32 = 500;
pub const ESTIMATED_DIMENSIONS: Dimensions = Dimensions {
    l_mm: 250,
    w_mm: 200,
    h_mm: 100,
};

/// Domestic shipping (seller to our warehouse) quoted for an imported product, in fen: ¥8, a
/// domestic express parcel. The detail APIs give no carriage for our address; the marketplace's
/// own figure is known at purchase (1688's preview `sumCarriage`), where a rise beyond the
/// customer's tolerance becomes a price change.
pub const ESTIMATED_DOMESTIC_SHIPPING_FEN: i64 = 800;

/// The measures to quote a product with: the marketplace's where it gives them, else the
/// estimate above, marked as such.
pub fn estimate_measures(p: &ProductDetail) -> Measures {
    match (p.weight_g, p.dimensions) {
        (Some(weight_g), Some(dimensions)) => Measures {
            weight_g,
            dimensions,
            estimated: false,
        },
        (Some(weight_g), None) => Measures {
            weight_g,
            dimensions: ESTIMATED_DIMENSIONS,
            estimated: true,
        },
        (None, Some(d)) => {
            let cm3 = u64::from(d.l_mm) * u64::from(d.w_mm) * u64::from(d.h_mm) / 1000;
            // 1 cm³ of water is 1 g; a fifth of the box.
            let weight_g = u32::try_from(cm3 / 5).unwrap_or(u32::MAX).max(100);
            Measures {
                weight_g,
                dimensions: d,
                estimated: true,
            }
        }
        (None, None) => Measures {
            weight_g: ESTIMATED_WEIGHT_G,
            dimensions: ESTIMATED_DIMENSIONS,
            estimated: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(weight_g: Option<u32>, dimensions: Option<Dimensions>) -> ProductDetail {
        ProductDetail {
            platform: Platform::Taobao,
            product_id: "1".into(),
            title: "t".into(),
            image_urls: vec![],
            attributes: vec![],
            skus: vec![SkuDetail {
                spec_id: "a".into(),
                attributes: vec![],
                price_fen: 1,
                stock: None,
                image_url: None,
            }],
            min_order_quantity: None,
            seller: Seller::default(),
            weight_g,
            dimensions,
        }
    }

    #[test]
    fn measures_are_the_marketplaces_or_an_estimate_that_says_so() {
        let d = Dimensions {
            l_mm: 100,
            w_mm: 100,
            h_mm: 100,
        };
        assert_eq!(
            estimate_measures(&product(Some(320), Some(d))),
            Measures {
                weight_g: 320,
                dimensions: d,
                estimated: false
            }
        );
        let w = estimate_measures(&product(Some(320), None));
        assert_eq!(
            (w.weight_g, w.dimensions, w.estimated),
            (320, ESTIMATED_DIMENSIONS, true)
        );
        // 1,000 cm³: a fifth of it in water is 200 g.
        let s = estimate_measures(&product(None, Some(d)));
        assert_eq!((s.weight_g, s.dimensions, s.estimated), (200, d, true));
        let tiny = Dimensions {
            l_mm: 10,
            w_mm: 10,
            h_mm: 10,
        };
        assert_eq!(estimate_measures(&product(None, Some(tiny))).weight_g, 100);
        let n = estimate_measures(&product(None, None));
        assert_eq!(
            (n.weight_g, n.dimensions, n.estimated),
            (ESTIMATED_WEIGHT_G, ESTIMATED_DIMENSIONS, true)
        );
    }

    #[test]
    fn an_empty_spec_matches_the_only_sku() {
        let p = product(None, None);
        assert_eq!(p.sku("").map(|s| s.spec_id.as_str()), Some("a"));
        assert_eq!(p.sku("a").map(|s| s.spec_id.as_str()), Some("a"));
        assert!(p.sku("b").is_none());
    }
}
