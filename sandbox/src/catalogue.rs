//! The seeded demo catalogue: realistic 1688 listings (one spec each) the demo flow buys from,
//! plus the same skus offered on Taobao and Pinduoduo at other prices ([`demo_offers`]).
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
        platform: PLATFORM_1688.to_owned(),
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

/// One sku's listing on one platform (`GET /_sandbox/catalogue` `"offers"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub sku: String,
    /// `1688` | `taobao` | `pinduoduo`
    pub platform: String,
    /// 1688 `offerId`, Taobao `item_id` (starts `tb`), Pinduoduo `goods_id` (starts `pdd`).
    pub offer_id: String,
    /// 1688 `specId`, Taobao `sku_id`, Pinduoduo sku id (not on the PDD wire).
    pub spec_id: String,
    /// Unit price in fen; on Pinduoduo the `min_group_price`.
    pub price_fen: i64,
    /// Units on sale (1688 `amountOnSale`, Taobao `quantity`; Pinduoduo reports no stock).
    pub stock: i64,
}

pub(crate) const PLATFORM_1688: &str = "1688";
pub(crate) const PLATFORM_TAOBAO: &str = "taobao";
pub(crate) const PLATFORM_PDD: &str = "pinduoduo";

impl From<&Product> for Offer {
    fn from(p: &Product) -> Self {
        Offer {
            sku: p.sku.clone(),
            platform: p.platform.clone(),
            offer_id: p.offer_id.clone(),
            spec_id: p.spec_id.clone(),
            price_fen: p.price_fen,
            stock: p.amount_on_sale,
        }
    }
}

/// Pinduoduo's single-buyer price shown next to the group price (`min_normal_price`): the group
/// price plus 15 %, rounded up to whole yuan. Derived so the offer list stays one price per offer.
pub(crate) fn pdd_normal_price(group_fen: i64) -> i64 {
    let raised = group_fen.saturating_mul(115).saturating_add(99) / 100;
    raised.saturating_add(99) / 100 * 100
}

fn o(
    sku: &str,
    platform: &str,
    offer_id: &str,
    spec_id: &str,
    price_fen: i64,
    stock: i64,
) -> Offer {
    Offer {
        sku: sku.to_owned(),
        platform: platform.to_owned(),
        offer_id: offer_id.to_owned(),
        spec_id: spec_id.to_owned(),
        price_fen,
        stock,
    }
}

/// The Taobao and Pinduoduo offers of the demo skus. The cheapest platform differs by sku:
/// Pinduoduo for the mug, earbuds and keyboard, Taobao for the bottle, lamp and phone case,
/// 1688 for the T-shirt and the yoga mat. The sandbox starts with these behind its Taobao and
/// Pinduoduo gateways.
pub(crate) fn demo_marketplace_offers() -> Vec<Offer> {
    const TB: &str = PLATFORM_TAOBAO;
    const PDD: &str = PLATFORM_PDD;
    vec![
        o(
            "MUG-CER-350-WHT",
            TB,
            "tb718204563391",
            "5102938475610",
            1350,
            2400,
        ),
        o(
            "MUG-CER-350-WHT",
            PDD,
            "pdd40571829364",
            "1184720395",
            1190,
            9000,
        ),
        o(
            "BTL-SS-500-BLK",
            TB,
            "tb720931845027",
            "5109384726151",
            2790,
            1500,
        ),
        o(
            "BTL-SS-500-BLK",
            PDD,
            "pdd40638217450",
            "1190387264",
            3090,
            6000,
        ),
        o(
            "EAR-TWS-BT53",
            TB,
            "tb695028137746",
            "4987301265501",
            4200,
            300,
        ),
        o(
            "EAR-TWS-BT53",
            PDD,
            "pdd39827104653",
            "1137264098",
            3900,
            2000,
        ),
        o(
            "TSH-COT-L-WHT",
            TB,
            "tb681739204518",
            "4920183746529",
            1990,
            5000,
        ),
        o(
            "TSH-COT-L-WHT",
            PDD,
            "pdd38492017365",
            "1128374650",
            1920,
            12000,
        ),
        o(
            "LMP-LED-FOLD",
            TB,
            "tb729384150672",
            "5118273640912",
            6450,
            400,
        ),
        o(
            "LMP-LED-FOLD",
            PDD,
            "pdd41029384756",
            "1201938475",
            6990,
            1500,
        ),
        o(
            "YOG-TPE-6MM",
            TB,
            "tb702817364509",
            "5047182930465",
            6200,
            700,
        ),
        o(
            "YOG-TPE-6MM",
            PDD,
            "pdd40182736450",
            "1163829470",
            6100,
            2500,
        ),
        o(
            "CSE-SIL-IP15",
            TB,
            "tb712098374615",
            "5082736491027",
            590,
            8000,
        ),
        o(
            "CSE-SIL-IP15",
            PDD,
            "pdd40928374615",
            "1178293746",
            620,
            30000,
        ),
        o(
            "KBD-MECH-87",
            TB,
            "tb725019283746",
            "5127364918203",
            24900,
            200,
        ),
        o(
            "KBD-MECH-87",
            PDD,
            "pdd41283746509",
            "1219384756",
            22800,
            800,
        ),
    ]
}

/// Every listing as an offer, grouped by sku in `products` order: the 1688 offer (from
/// `products`), then that sku's other offers in the order `others` holds them.
pub(crate) fn merge_offers(products: &[Product], others: &[Offer]) -> Vec<Offer> {
    let mut out = Vec::with_capacity(products.len() + others.len());
    for p in products {
        out.push(Offer::from(p));
        out.extend(others.iter().filter(|o| o.sku == p.sku).cloned());
    }
    out.extend(
        others
            .iter()
            .filter(|o| !products.iter().any(|p| p.sku == o.sku))
            .cloned(),
    );
    out
}

/// The multi-platform demo catalogue: for every [`demo`] product its 1688 offer (same ids, price
/// and stock), a Taobao offer and a Pinduoduo offer, grouped by sku.
pub fn demo_offers() -> Vec<Offer> {
    merge_offers(&demo(), &demo_marketplace_offers())
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

    #[test]
    fn demo_offers_cover_three_platforms_with_differing_cheapest() {
        let offers = demo_offers();
        let products = demo();
        assert_eq!(offers.len(), products.len() * 3);
        let mut ids: Vec<&str> = offers.iter().map(|o| o.offer_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), offers.len(), "offer ids unique across platforms");
        let mut cheapest = std::collections::HashSet::new();
        for p in &products {
            let of: Vec<&Offer> = offers.iter().filter(|o| o.sku == p.sku).collect();
            let platforms: Vec<&str> = of.iter().map(|o| o.platform.as_str()).collect();
            assert_eq!(platforms, [PLATFORM_1688, PLATFORM_TAOBAO, PLATFORM_PDD]);
            assert_eq!(*of[0], Offer::from(p), "1688 offer as in demo()");
            assert!(of[1].offer_id.starts_with("tb"));
            assert!(of[2].offer_id.starts_with("pdd"));
            let mut prices: Vec<i64> = of.iter().map(|o| o.price_fen).collect();
            prices.sort();
            prices.dedup();
            assert_eq!(prices.len(), 3, "{}: different prices", p.sku);
            let min = of.iter().min_by_key(|o| o.price_fen).unwrap();
            cheapest.insert(min.platform.clone());
            assert!(of.iter().all(|o| o.stock > 0));
        }
        assert_eq!(cheapest.len(), 3, "each platform is cheapest for some sku");
        assert_eq!(pdd_normal_price(3900), 4500);
        assert!(pdd_normal_price(650) > 650);
    }
}
