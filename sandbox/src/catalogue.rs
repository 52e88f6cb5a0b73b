//! The seeded demo catalogue: realistic 1688 listings (one spec each) the demo flow buys from.
//! `GET /_sandbox/catalogue` serves the current state of these listings (price and stock change
//! as orders are placed or `POST /_sandbox/products/{offer_id}` edits them).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Our stock-keeping unit.
    pub sku: String,
    /// Always `"1688"` in the demo catalogue.
    pub platform: String,
    /// 1688 `productId` / `offerId`.
    pub offer_id: String,
    /// 1688 `specId` of the listing's only spec.
    pub spec_id: String,
    pub title: String,
    /// Unit price in fen (1/100 CNY).
    pub price_fen: i64,
    /// Units the seller can still sell (`amountOnSale`).
    pub amount_on_sale: i64,
    pub weight_g: u32,
    pub l_mm: u32,
    pub w_mm: u32,
    pub h_mm: u32,
    /// Seller's domestic carriage to the consolidation warehouse, per order line, in fen.
    pub domestic_shipping_fen: i64,
}

#[allow(clippy::too_many_arguments)]
fn p(
    sku: &str,
    offer_id: &str,
    spec_id: &str,
    title: &str,
    price_fen: i64,
    amount_on_sale: i64,
    weight_g: u32,
    (l_mm, w_mm, h_mm): (u32, u32, u32),
    domestic_shipping_fen: i64,
) -> Product {
    Product {
        sku: sku.to_owned(),
        platform: "1688".to_owned(),
        offer_id: offer_id.to_owned(),
        spec_id: spec_id.to_owned(),
        title: title.to_owned(),
        price_fen,
        amount_on_sale,
        weight_g,
        l_mm,
        w_mm,
        h_mm,
        domestic_shipping_fen,
    }
}

/// The demo catalogue the sandbox starts with.
pub fn demo() -> Vec<Product> {
    vec![
        p(
            "MUG-CER-350-WHT",
            "623718945102",
            "b266e0726506185beaf205cbae88530d",
            "Ceramic coffee mug 350 ml, matte white, gift box",
            1280,
            5000,
            380,
            (120, 95, 100),
            500,
        ),
        p(
            "BTL-SS-500-BLK",
            "647201938465",
            "0f6b4e2a9c1d83f5e7a2b4c6d8e0f1a3",
            "Stainless steel vacuum insulated bottle 500 ml, black",
            2990,
            3200,
            320,
            (75, 75, 260),
            600,
        ),
        p(
            "EAR-TWS-BT53",
            "652983741026",
            "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3",
            "TWS wireless earbuds Bluetooth 5.3 with charging case",
            4550,
            1200,
            180,
            (100, 80, 40),
            800,
        ),
        p(
            "TSH-COT-L-WHT",
            "589304721563",
            "3e8d1c5a7b9f2046d1e3c5a7b9f1d3e5",
            "Cotton crew-neck T-shirt 180 g/m², white, size L",
            1850,
            8000,
            200,
            (300, 250, 20),
            500,
        ),
        p(
            "LMP-LED-FOLD",
            "671045829317",
            "9a4c6e8f0b2d4163a5c7e9f1b3d5a7c9",
            "Foldable LED desk lamp, 3 colour temperatures, USB-C",
            6800,
            650,
            900,
            (380, 150, 80),
            1000,
        ),
        p(
            "YOG-TPE-6MM",
            "604827195330",
            "e1f3a5c7b9d2e4f6a8c0b2d4e6f8a1c3",
            "TPE yoga mat 6 mm, non-slip, with carry strap",
            5900,
            900,
            1100,
            (620, 150, 150),
            1200,
        ),
        p(
            "CSE-SIL-IP15",
            "635190274846",
            "5b7d9f1a3c5e7092b4d6f8a0c2e4b6d8",
            "Liquid silicone phone case for iPhone 15, assorted colours",
            650,
            10000,
            50,
            (180, 100, 15),
            300,
        ),
        p(
            "KBD-MECH-87",
            "660372918405",
            "c8e0a2b4d6f81357e9b1d3f5a7c9e2b4",
            "87-key hot-swap mechanical keyboard, brown switches",
            23900,
            300,
            1100,
            (380, 150, 50),
            1500,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_catalogue_is_plausible() {
        let d = demo();
        assert!((6..=8).contains(&d.len()));
        let mut ids: Vec<&str> = d.iter().map(|p| p.offer_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), d.len(), "offer ids are unique");
        for p in &d {
            assert_eq!(p.platform, "1688");
            assert!((500..=30_000).contains(&p.price_fen), "{}", p.sku);
            assert!((100..=10_000).contains(&p.amount_on_sale), "{}", p.sku);
            assert!(p.weight_g > 0 && p.l_mm > 0 && p.w_mm > 0 && p.h_mm > 0);
        }
    }
}
