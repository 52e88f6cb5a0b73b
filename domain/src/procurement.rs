//! Channel ranking for procurement: which offer of a line item to try first. Landed cost
//! (goods + domestic shipping) from the latest price snapshot, penalised by how unreliable the
//! supplier has been, so a slightly dearer seller who always ships beats a cheap one who often
//! cancels. Pure, so the ranking procurement uses is the ranking the tests check. `round` holds
//! the decisions of buying a line once the candidates are ranked.

use crate::order::Platform;
use serde::{Deserialize, Serialize};

pub mod round;

pub use round::{
    ATTEMPTS_PER_SUPPLIER, AfterAttempt, Attempt, Channel, CustomerTerms,
    MAX_PRICE_CHANGES_PER_LINE, Round, RoundEnd, after_attempt, channel,
};

/// One offer of a line item as procurement sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    /// Latest unit price (fen).
    pub unit_price_fen: i64,
    pub domestic_shipping_fen: i64,
    /// Share of past purchases from this supplier that succeeded, in basis points (0..=10 000).
    pub reliability_bps: u32,
    /// Known remaining stock, when the platform reports it.
    pub stock: Option<i64>,
}

impl Candidate {
    pub fn landed_cost_fen(&self, quantity: u32) -> i64 {
        self.unit_price_fen
            .saturating_mul(i64::from(quantity))
            .saturating_add(self.domestic_shipping_fen)
    }

    /// Cost used for ranking: landed cost plus half of it for every 100 % of unreliability.
    pub fn score(&self, quantity: u32) -> i128 {
        let cost = i128::from(self.landed_cost_fen(quantity));
        let unreliability = i128::from(10_000u32.saturating_sub(self.reliability_bps.min(10_000)));
        cost * (20_000 + unreliability) / 20_000
    }
}

fn platform_rank(p: Platform) -> u8 {
    match p {
        Platform::Alibaba1688 => 0,
        Platform::Taobao => 1,
        Platform::Pinduoduo => 2,
    }
}

/// Offers that can serve `quantity` units, best first; ties break by platform (1688 first: it
/// has the buyer API with the strongest guarantees) and then by offer id, so the order is total.
pub fn rank(candidates: &[Candidate], quantity: u32) -> Vec<Candidate> {
    let mut v: Vec<Candidate> = candidates
        .iter()
        .filter(|c| c.unit_price_fen > 0 && c.stock.is_none_or(|s| s >= i64::from(quantity)))
        .cloned()
        .collect();
    v.sort_by(|a, b| {
        a.score(quantity)
            .cmp(&b.score(quantity))
            .then(platform_rank(a.platform).cmp(&platform_rank(b.platform)))
            .then(a.offer_id.cmp(&b.offer_id))
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(platform: Platform, id: &str, price: i64, reliability_bps: u32) -> Candidate {
        Candidate {
            platform,
            offer_id: id.into(),
            spec_id: "s".into(),
            unit_price_fen: price,
            domestic_shipping_fen: 500,
            reliability_bps,
            stock: None,
        }
    }

    #[test]
    fn cheapest_reliable_first() {
        let ranked = rank(
            &[
                c(Platform::Taobao, "tb1", 4_200, 10_000),
                c(Platform::Alibaba1688, "a1", 4_550, 10_000),
                c(Platform::Pinduoduo, "pdd1", 3_900, 10_000),
            ],
            2,
        );
        let ids: Vec<_> = ranked.iter().map(|c| c.offer_id.as_str()).collect();
        assert_eq!(ids, ["pdd1", "tb1", "a1"]);
    }

    #[test]
    fn unreliable_suppliers_sink() {
        // 20 % cheaper but fails half the time: 0.8 × 1.25 = 1.0 → loses the tie to 1688.
        let ranked = rank(
            &[
                c(Platform::Pinduoduo, "p", 3_500, 5_000),
                c(Platform::Alibaba1688, "a", 4_500, 10_000),
            ],
            1,
        );
        assert_eq!(ranked[0].offer_id, "a");
    }

    #[test]
    fn out_of_stock_offers_are_not_candidates() {
        let mut short = c(Platform::Alibaba1688, "a", 100, 10_000);
        short.stock = Some(1);
        assert!(rank(&[short], 2).is_empty());
    }

    fn any_candidate() -> impl Strategy<Value = Candidate> {
        (
            0u8..3,
            "[a-z]{1,4}",
            1i64..100_000,
            0i64..2_000,
            0u32..=10_000,
            proptest::option::of(0i64..50),
        )
            .prop_map(|(p, id, price, ship, rel, stock)| Candidate {
                platform: [Platform::Alibaba1688, Platform::Taobao, Platform::Pinduoduo]
                    [p as usize],
                offer_id: id,
                spec_id: "s".into(),
                unit_price_fen: price,
                domestic_shipping_fen: ship,
                reliability_bps: rel,
                stock,
            })
    }

    proptest! {
        #[test]
        fn ranking_is_sorted_filtered_and_order_independent(
            mut cs in proptest::collection::vec(any_candidate(), 0..12), qty in 1u32..20
        ) {
            let a = rank(&cs, qty);
            for w in a.windows(2) {
                prop_assert!(w[0].score(qty) <= w[1].score(qty));
            }
            prop_assert!(a.iter().all(|c| c.stock.is_none_or(|s| s >= i64::from(qty))));
            cs.reverse();
            prop_assert_eq!(rank(&cs, qty), a);
        }

        #[test]
        fn at_equal_reliability_cheaper_never_ranks_lower(p1 in 1i64..100_000, p2 in 1i64..100_000, rel in 0u32..=10_000) {
            let r = rank(&[c(Platform::Taobao, "x", p1, rel), c(Platform::Taobao, "y", p2, rel)], 3);
            prop_assert!(r[0].unit_price_fen <= r[1].unit_price_fen);
        }
    }
}
