//! Matching suggestions: does product B look like the same product as product A? Operators link
//! the same product found on another platform as an alternative offer so procurement can fail
//! over; this scores a candidate so the operator sees how sure the suggestion is and why. Pure,
//! deterministic (no hash maps, no floats), every figure in basis points (0..=10 000).
//!
//! The title carries most of the evidence, because it is the only field every platform fills the
//! same way; the variants decide whether the link is usable for failover (a line is bought by
//! SKU), so they raise or lower the title's score rather than stand beside it: two unrelated
//! products that both sell one variant must not look alike.

use std::{cmp::Reverse, collections::BTreeSet};

use serde::{Deserialize, Serialize};

use crate::product::{Attribute, ProductDetail, SkuDetail};

/// At or above this, [`Confidence::High`].
pub const HIGH_MIN_BPS: u32 = 8_000;
/// At or above this (and below [`HIGH_MIN_BPS`]), [`Confidence::Medium`].
pub const MEDIUM_MIN_BPS: u32 = 5_000;
/// The least confidence worth showing an operator: below it the titles share a word or two.
pub const SUGGEST_MIN_BPS: u32 = 3_000;
/// At most this many grams per title, so the inverted index of candidates stays small.
pub const MAX_TITLE_GRAMS: usize = 48;
/// A SKU of A pairs with a SKU of B when their variant values are at least this alike (Dice):
/// both of two values (白色 + L), one of one, or two of three when B lacks a dimension; one of
/// two (白色 L vs 白色 XL) is another variant, not the same one.
pub const SKU_PAIR_MIN_BPS: u32 = 6_000;
/// Lowest SKU prices further apart than this factor lower the confidence by three tenths: a
/// same-looking listing at a third of the price is usually a different grade or a part.
pub const PRICE_GAP_FACTOR: i64 = 3;

/// How sure a suggestion is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    High,
    Medium,
    Low,
}

impl Confidence {
    pub fn from_bps(bps: u32) -> Self {
        match bps {
            b if b >= HIGH_MIN_BPS => Confidence::High,
            b if b >= MEDIUM_MIN_BPS => Confidence::Medium,
            _ => Confidence::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }
}

/// How much product B looks like product A, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// Overall, 0..=10 000.
    pub confidence_bps: u32,
    /// [`Confidence::from_bps`] of `confidence_bps`.
    pub confidence: Confidence,
    /// Dice coefficient of the two titles' [`title_grams`]; symmetric.
    pub title_bps: u32,
    /// Dice coefficient of the normalized product attribute values (names ignored: 颜色 and
    /// 颜色分类 name the same thing); `None` when either side has none.
    pub attributes_bps: Option<u32>,
    /// For each SKU of A, in A's order, the best SKU of B when one pairs.
    pub skus: Vec<SkuMatch>,
    /// Short English phrases for the operator, e.g. "titles 87% alike".
    pub reasons: Vec<String>,
}

/// A SKU of A and the SKU of B whose variant values are most alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuMatch {
    pub spec_id: String,
    pub alternative_spec_id: String,
    /// Dice coefficient of the two SKUs' normalized variant values.
    pub bps: u32,
}

/// Marketing words sellers add to titles, removed before grams are cut so that neither they nor
/// the bigrams straddling them count ("新款纯棉" gives 纯棉, not 款纯). Longest first, since
/// 旗舰店 is inside 官方旗舰店. Kept short on purpose: a word that describes the product (夏季,
/// 男款) stays.
const CJK_NOISE: &str = "官方旗舰店 厂家直销 一件代发 旗舰店 包邮 新款 热卖 热销 爆款 正品 特价 现货 清仓 促销 秒杀 特惠 同款 网红 批发";
/// The same for Latin-script titles, plus a few words that carry nothing.
const ASCII_NOISE: &[&str] = &[
    "new", "hot", "sale", "free", "shipping", "the", "and", "for", "with", "ins",
];
/// Units a bare number before them joins ("350 ml" is the token of "350ml").
const UNITS: &[&str] = &["ml", "g", "kg", "cm", "mm", "mah", "w", "v"];

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}'
        | '\u{f900}'..='\u{faff}' | '\u{20000}'..='\u{2ffff}')
}

/// Full-width ASCII (Ｔ, ０-９, （）) to half-width, the ideographic space to a space, and
/// Unicode lowercase.
fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// A year as sellers stamp it ("2024新款", "2025年"), which says when it was listed, not what.
fn is_year(t: &str) -> bool {
    t.len() == 4 && t.parse::<u32>().is_ok_and(|y| (1990..=2039).contains(&y))
}

enum Run {
    Cjk(String),
    Alnum(String),
}

/// Splits a normalized title into CJK runs and alphanumeric tokens; everything else (spaces,
/// punctuation, 【】（）/，、) separates, except that spaces between CJK characters do not:
/// sellers space Chinese words at whim ("T恤 男款" and "T恤男款" are one title), and a bigram
/// across a seller's space costs little. Inside a token a hyphen or underscore between
/// alphanumerics is dropped, so the model number "M-204" is the token "m204" however a seller
/// writes it, and a dot between digits stays ("1.5l" is not "15l"). A year token is dropped with
/// the 年 after it.
fn runs(s: &str) -> Vec<Run> {
    let chars: Vec<char> = s.chars().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < chars.len() {
        let c = chars[i];
        if is_cjk(c) {
            let mut r = String::new();
            while i < chars.len() && is_cjk(chars[i]) {
                r.push(chars[i]);
                i += 1;
                let gap = chars[i..].iter().take_while(|c| c.is_whitespace()).count();
                if chars.get(i + gap).is_some_and(|&c| is_cjk(c)) {
                    i += gap;
                }
            }
            out.push(Run::Cjk(r));
        } else if c.is_alphanumeric() {
            let mut t = String::new();
            while i < chars.len() {
                let (c, next) = (chars[i], chars.get(i + 1).copied());
                let next_alnum = next.is_some_and(|n| n.is_alphanumeric() && !is_cjk(n));
                if c.is_alphanumeric() && !is_cjk(c) {
                    t.push(c);
                } else if matches!(c, '-' | '_') && next_alnum {
                    // Joined: "m-204" is "m204".
                } else if c == '.'
                    && t.ends_with(|p: char| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit())
                {
                    t.push(c);
                } else {
                    break;
                }
                i += 1;
            }
            if is_year(&t) {
                i += usize::from(chars.get(i) == Some(&'年'));
            } else {
                out.push(Run::Alnum(t));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The normalized search grams of a title, sorted and deduplicated: used both for the score and
/// for a database inverted index that finds candidates. CJK runs give character bigrams (a lone
/// CJK character gives itself); alphanumeric runs give whole tokens, a bare number joined with a
/// unit after it; marketing words (`CJK_NOISE`, `ASCII_NOISE`) and years are dropped. At most
/// [`MAX_TITLE_GRAMS`]: the first ones in title order, since sellers lead with what the product
/// is and pile search bait at the end.
pub fn title_grams(title: &str) -> Vec<String> {
    let mut s = normalize(title);
    for w in CJK_NOISE.split(' ') {
        s = s.replace(w, "|"); // a separator even between CJK characters
    }
    let runs = runs(&s);
    let mut in_order: Vec<String> = Vec::new();
    let mut push = |g: String| {
        if in_order.len() < MAX_TITLE_GRAMS && !in_order.contains(&g) {
            in_order.push(g);
        }
    };
    let mut k = 0;
    while k < runs.len() {
        match &runs[k] {
            Run::Cjk(r) => {
                let cs: Vec<char> = r.chars().collect();
                if cs.len() == 1 {
                    push(r.clone());
                }
                cs.windows(2).for_each(|w| push(w.iter().collect()));
            }
            Run::Alnum(t) if ASCII_NOISE.contains(&t.as_str()) => {}
            Run::Alnum(t) => match runs.get(k + 1) {
                Some(Run::Alnum(u))
                    if t.chars().all(|c| c.is_ascii_digit()) && UNITS.contains(&u.as_str()) =>
                {
                    push(format!("{t}{u}"));
                    k += 1;
                }
                _ => push(t.clone()),
            },
        }
        k += 1;
    }
    in_order.sort();
    in_order
}

/// 2·|A∩B| / (|A|+|B|) in basis points; two empty sets are alike (nothing differs).
fn dice<T: Ord>(a: &BTreeSet<T>, b: &BTreeSet<T>) -> u32 {
    let total = a.len() + b.len();
    if total == 0 {
        return 10_000;
    }
    let common = a.intersection(b).count();
    u32::try_from(common * 20_000 / total).unwrap_or(10_000)
}

/// An attribute value as comparable across platforms: normalized, only its letters, digits and
/// decimal dots ("350 ML" is "350ml"), and without a trailing 色/码/号 (白色 and 白, L码 and L
/// are the same value written two ways).
fn value_key(v: &str) -> Option<String> {
    let mut k: String = normalize(v)
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '.')
        .collect();
    if k.chars().count() > 1 && k.ends_with(['色', '码', '号']) {
        k.pop();
    }
    (!k.is_empty()).then_some(k)
}

fn values(attrs: &[Attribute]) -> BTreeSet<String> {
    attrs.iter().filter_map(|a| value_key(&a.value)).collect()
}

/// Pairs each SKU of A with the SKU of B whose variant values are most alike (ties: B's first),
/// when they are at least [`SKU_PAIR_MIN_BPS`] alike. Two SKUs without variant values (products
/// without variants) pair.
fn pair_skus(a: &[SkuDetail], b: &[SkuDetail]) -> Vec<SkuMatch> {
    let bv: Vec<BTreeSet<String>> = b.iter().map(|s| values(&s.attributes)).collect();
    a.iter()
        .filter_map(|sa| {
            let va = values(&sa.attributes);
            let (best, bps) = (bv.iter().enumerate())
                .map(|(j, vb)| (j, dice(&va, vb)))
                .max_by_key(|&(j, d)| (d, Reverse(j)))?;
            (bps >= SKU_PAIR_MIN_BPS).then(|| SkuMatch {
                spec_id: sa.spec_id.clone(),
                alternative_spec_id: b[best].spec_id.clone(),
                bps,
            })
        })
        .collect()
}

fn lowest_price(p: &ProductDetail) -> Option<i64> {
    p.skus.iter().map(|s| s.price_fen).filter(|&f| f > 0).min()
}

/// How much `b` looks like the same product as `a`.
///
/// The title's Dice coefficient `T` is scaled by the agreement `E` of the rest: `E` is the share
/// of A's SKUs that paired, weighted by how well, and where both sides have product attributes,
/// one third their overlap. The confidence is `T × (0.6 + 0.5·E)`, capped at 10 000: full
/// agreement raises the title's figure by a tenth, none lowers it by two fifths, and whatever the
/// variants say, unrelated titles stay unrelated. Lowest prices more than
/// [`PRICE_GAP_FACTOR`] apart then take off three tenths.
pub fn score(a: &ProductDetail, b: &ProductDetail) -> Match {
    let ga: BTreeSet<String> = title_grams(&a.title).into_iter().collect();
    let gb: BTreeSet<String> = title_grams(&b.title).into_iter().collect();
    // No words on one side is no evidence, not a perfect match.
    let title_bps = if ga.is_empty() || gb.is_empty() {
        0
    } else {
        dice(&ga, &gb)
    };
    let (va, vb) = (values(&a.attributes), values(&b.attributes));
    let attributes_bps = (!va.is_empty() && !vb.is_empty()).then(|| dice(&va, &vb));
    let skus = pair_skus(&a.skus, &b.skus);
    let skus_bps = match a.skus.len() {
        0 => 0,
        n => u32::try_from(skus.iter().map(|m| u64::from(m.bps)).sum::<u64>() / n as u64)
            .unwrap_or(0),
    };
    let agreement = match attributes_bps {
        Some(attr) => (2 * skus_bps + attr) / 3,
        None => skus_bps,
    };
    let mut bps = (u64::from(title_bps) * u64::from(6_000 + agreement / 2) / 10_000).min(10_000);

    let mut reasons = vec![format!("titles {}% alike", title_bps / 100)];
    if let Some(attr) = attributes_bps {
        reasons.push(format!("attribute values {}% alike", attr / 100));
    }
    let mut dims: Vec<&str> = Vec::new();
    for name in a
        .skus
        .iter()
        .flat_map(|s| &s.attributes)
        .map(|x| x.name.as_str())
    {
        if !dims.contains(&name) {
            dims.push(name);
        }
    }
    reasons.push(match (skus.len(), dims.is_empty()) {
        (0, _) => "no variants match".to_owned(),
        (_, true) => "single variants paired".to_owned(),
        (n, false) => format!(
            "{n} of {} variants match by {} values",
            a.skus.len(),
            dims.join("/")
        ),
    });
    if let (Some(pa), Some(pb)) = (lowest_price(a), lowest_price(b)) {
        let (lo, hi) = (pa.min(pb), pa.max(pb));
        let tenths = i128::from(hi) * 10 / i128::from(lo);
        if tenths >= 20 {
            reasons.push(format!("prices {}.{}x apart", tenths / 10, tenths % 10));
        }
        if i128::from(hi) > i128::from(lo) * i128::from(PRICE_GAP_FACTOR) {
            bps = bps * 7 / 10;
        }
    }
    let confidence_bps = u32::try_from(bps).unwrap_or(10_000);
    Match {
        confidence_bps,
        confidence: Confidence::from_bps(confidence_bps),
        title_bps,
        attributes_bps,
        skus,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{order::Platform, product::Seller};
    use proptest::prelude::*;

    fn sku(id: &str, attrs: &[(&str, &str)], price_fen: i64) -> SkuDetail {
        SkuDetail {
            spec_id: id.into(),
            attributes: attrs.iter().map(|(n, v)| Attribute::new(*n, *v)).collect(),
            price_fen,
            stock: None,
            image_url: None,
        }
    }

    fn product(title: &str, attrs: &[(&str, &str)], skus: Vec<SkuDetail>) -> ProductDetail {
        ProductDetail {
            platform: Platform::Alibaba1688,
            product_id: "1".into(),
            title: title.into(),
            image_urls: vec![],
            attributes: attrs.iter().map(|(n, v)| Attribute::new(*n, *v)).collect(),
            skus,
            min_order_quantity: None,
            seller: Seller::default(),
            weight_g: None,
            dimensions: None,
        }
    }

    fn one(price_fen: i64) -> Vec<SkuDetail> {
        vec![sku("", &[], price_fen)]
    }

    fn pairs(m: &Match) -> Vec<(&str, &str)> {
        (m.skus.iter())
            .map(|s| (s.spec_id.as_str(), s.alternative_spec_id.as_str()))
            .collect()
    }

    fn says(m: &Match, reason: &str) -> bool {
        m.reasons.iter().any(|r| r == reason)
    }

    fn tee() -> ProductDetail {
        let skus = [("白色", "L"), ("白色", "XL"), ("黑色", "L"), ("黑色", "XL")]
            .iter()
            .enumerate()
            .map(|(i, (c, s))| sku(&format!("a{i}"), &[("颜色", c), ("尺码", s)], 2_500))
            .collect();
        product(
            "纯棉短袖T恤 男款 圆领",
            &[("材质", "纯棉"), ("袖长", "短袖")],
            skus,
        )
    }

    #[test]
    fn grams_are_bigrams_tokens_and_no_marketing() {
        assert_eq!(
            title_grams("陶瓷马克杯 350ml"),
            ["350ml", "克杯", "瓷马", "陶瓷", "马克"]
        );
        assert_eq!(
            title_grams("Classic Mug M-204 (ceramic)"),
            ["ceramic", "classic", "m204", "mug"]
        );
        assert_eq!(title_grams("【包邮】2024年新款 杯 350 ML"), ["350ml", "杯"]);
        assert_eq!(
            title_grams("ＴＥＡ　ｃｕｐ（１.５L）"),
            ["1.5l", "cup", "tea"]
        );
        assert_eq!(title_grams("Ｔ恤"), title_grams("t恤"));
        assert_eq!(
            title_grams("classic mug m204, ceramic, NEW"),
            title_grams("Classic Mug M-204 (ceramic)")
        );
        assert_eq!(title_grams("短袖 男款"), ["男款", "短袖", "袖男"]);
        assert_eq!(title_grams("短袖【新款】男款"), ["男款", "短袖"]);
        assert!(title_grams("  【】（）/，、 ").is_empty());
    }

    #[test]
    fn identical_products_are_high_with_every_sku_paired() {
        let m = score(&tee(), &tee());
        assert_eq!(
            (m.confidence, m.confidence_bps, m.title_bps),
            (Confidence::High, 10_000, 10_000)
        );
        assert_eq!(m.attributes_bps, Some(10_000));
        assert_eq!(
            pairs(&m),
            [("a0", "a0"), ("a1", "a1"), ("a2", "a2"), ("a3", "a3")]
        );
        assert!(
            says(&m, "4 of 4 variants match by 颜色/尺码 values"),
            "{:?}",
            m.reasons
        );
    }

    #[test]
    fn a_taobao_relisting_with_marketing_words_and_other_names_pairs_by_value() {
        let skus = vec![
            sku("t-black-xl", &[("颜色分类", "黑"), ("尺寸", "XL码")], 2_900),
            sku("t-white-l", &[("颜色分类", "白色"), ("尺寸", "L")], 2_900),
            sku("t-white-xl", &[("颜色分类", "白色"), ("尺寸", "XL")], 2_900),
        ];
        let b = product(
            "【包邮】2024新款 夏季纯棉短袖Ｔ恤男款圆领 热卖",
            &[("面料", "纯棉")],
            skus,
        );
        let m = score(&tee(), &b);
        assert!(m.confidence_bps >= MEDIUM_MIN_BPS, "{m:?}");
        assert_eq!(
            pairs(&m),
            [
                ("a0", "t-white-l"),
                ("a1", "t-white-xl"),
                ("a3", "t-black-xl")
            ]
        );
        assert!(says(&m, "3 of 4 variants match by 颜色/尺码 values"));
    }

    #[test]
    fn unrelated_products_are_low_even_when_both_have_one_variant() {
        let a = product("陶瓷马克杯 350ml", &[("材质", "陶瓷")], one(1_200));
        let b = product(
            "Classic Mug M-204 (ceramic)",
            &[("材质", "陶瓷")],
            one(1_300),
        );
        let m = score(&a, &b);
        assert_eq!((m.confidence, m.title_bps), (Confidence::Low, 0));
        assert!(m.confidence_bps < SUGGEST_MIN_BPS);
        let t = score(&tee(), &a);
        assert_eq!(t.confidence, Confidence::Low);
        assert!(says(&t, "no variants match"));
    }

    #[test]
    fn a_price_gap_lowers_the_confidence_and_says_so() {
        let a = product("陶瓷马克杯 350ml 白色", &[], one(1_000));
        let near = score(&a, &product("陶瓷马克杯 350ml 白色", &[], one(2_400)));
        assert_eq!(near.confidence_bps, 10_000);
        assert!(says(&near, "prices 2.4x apart"));
        let far = score(&a, &product("陶瓷马克杯 350ml 白色", &[], one(3_400)));
        assert_eq!(far.confidence_bps, 7_000);
        assert!(says(&far, "prices 3.4x apart"));
        assert!(says(&far, "single variants paired"));
    }

    // Titles lead with a character of U+4E00..U+4EFF, which no marketing word uses, so every
    // title has a gram.
    fn any_product() -> impl Strategy<Value = ProductDetail> {
        let attr = prop::sample::select(vec![
            ("颜色", "白色"),
            ("颜色分类", "白"),
            ("尺码", "L"),
            ("尺寸", "XL"),
            ("容量", "350ml"),
        ]);
        let attrs = prop::collection::vec(attr, 0..3);
        let skus = prop::collection::vec((attrs.clone(), 1i64..10_000), 1..5);
        ("[一-仿][a-z0-9一-龥 【】()-]{0,60}", attrs, skus).prop_map(|(title, attrs, skus)| {
            let skus = (skus.iter().enumerate())
                .map(|(i, (vs, price))| sku(&i.to_string(), vs, *price))
                .collect();
            product(&title, &attrs, skus)
        })
    }

    proptest! {
        #[test]
        fn scores_are_bounded_deterministic_and_self_high(a in any_product(), b in any_product()) {
            let m = score(&a, &b);
            prop_assert!(m.confidence_bps <= 10_000 && m.title_bps <= 10_000);
            prop_assert_eq!(m.confidence, Confidence::from_bps(m.confidence_bps));
            prop_assert_eq!(&score(&a, &b), &m);
            prop_assert_eq!(score(&b, &a).title_bps, m.title_bps);
            prop_assert!(m.skus.iter().all(|s| (SKU_PAIR_MIN_BPS..=10_000).contains(&s.bps)));
            let own = score(&a, &a);
            prop_assert_eq!(own.confidence, Confidence::High);
            prop_assert_eq!(own.skus.len(), a.skus.len());
        }

        #[test]
        fn title_grams_are_sorted_deduplicated_and_bounded(t in "\\PC{0,300}") {
            let g = title_grams(&t);
            prop_assert!(g.len() <= MAX_TITLE_GRAMS);
            prop_assert!(g.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(g.iter().all(|x| !x.is_empty()));
            prop_assert_eq!(title_grams(&t), g);
        }
    }
}
