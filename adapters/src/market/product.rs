//! A marketplace product as its detail API describes it, vendor-neutral ([`ProductDetail`], a
//! `procure_domain::product` type so the API's port answers with it too), and the trait every
//! platform's client reads it through ([`ProductSource`]). Each vendor
//! module maps its own answer (each vendor's page in docs/vendors/ says which field is which); what a
//! marketplace does not give is `None`, never a guess: the caller estimates weight and size.

use super::MarketFuture;

pub use procure_domain::product::{Attribute, ProductDetail, Seller, SkuDetail};
pub use procure_domain::quote::Dimensions;

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
}
