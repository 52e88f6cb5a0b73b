//! The all-in quote: goods + domestic shipping + service fee + international shipping on the
//! chosen line + duty + optional insurance and guarantee fee, summed in CNY and converted once
//! at a locked rate. Also the rules behind it: duty by destination and category, the insurance
//! premium, the guarantee fee and how an estimate settles against the actual cost.

use crate::money::{Currency, FxRate, Money, MoneyError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use crate::shipping::{
    Dimensions, Ineligible, LineOption, ShippingLine, chargeable_weight_g, line_options,
    volumetric_weight_g,
};

/// What the customs value of a shipment includes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclaredBasis {
    /// FOB-like: the goods and their domestic shipping to our warehouse.
    Goods,
    /// CIF-like: also the international shipping and the insurance.
    GoodsAndShipping,
}

/// Import duty rule of a destination: nothing up to the de-minimis value, else each item at its
/// category's rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyRule {
    pub country: String,
    /// De-minimis threshold in the destination's currency.
    pub de_minimis: Money,
    /// Rate of categories not listed in `category_rates_bps`, and of shipping on a CIF basis.
    pub default_rate_bps: u32,
    pub category_rates_bps: BTreeMap<String, u32>,
    pub basis: DeclaredBasis,
}

impl DutyRule {
    pub fn rate_bps(&self, category: &str) -> u32 {
        self.category_rates_bps
            .get(category)
            .copied()
            .unwrap_or(self.default_rate_bps)
    }
}

/// One declared line of a shipment: goods value plus their domestic shipping (CNY).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredItem {
    pub category: String,
    pub value: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyAssessment {
    /// Customs value on the rule's basis (CNY).
    pub declared: Money,
    /// The same, in the destination's currency, as compared with the de-minimis value.
    pub declared_at_destination: Money,
    pub dutiable: bool,
    /// CNY; zero unless dutiable.
    pub duty: Money,
}

/// Duty on a shipment. The threshold applies to the whole shipment, so orders each below de
/// minimis may be dutiable once consolidated. Values are grouped by rate and each group rounds
/// once: splitting an item in two never changes the duty.
pub fn assess_duty(
    rule: &DutyRule,
    items: &[DeclaredItem],
    shipping_and_insurance: Money,
    fx_destination: &FxRate,
) -> Result<DutyAssessment, QuoteError> {
    let cny = Currency::CNY;
    if fx_destination.from != cny {
        return Err(QuoteError::Rate("rates must convert from CNY".into()));
    }
    if fx_destination.to != rule.de_minimis.currency {
        return Err(QuoteError::Rate(
            "destination rate must match the duty currency".into(),
        ));
    }
    if shipping_and_insurance.currency != cny {
        return Err(QuoteError::NotCny);
    }
    let mut by_rate: BTreeMap<u32, Money> = BTreeMap::new();
    let mut add = |bps: u32, value: Money| -> Result<(), MoneyError> {
        let slot = by_rate.entry(bps).or_insert(Money::zero(cny));
        *slot = slot.checked_add(value)?;
        Ok(())
    };
    let mut declared = Money::zero(cny);
    for item in items {
        if item.value.currency != cny {
            return Err(QuoteError::NotCny);
        }
        declared = declared.checked_add(item.value)?;
        add(rule.rate_bps(&item.category), item.value)?;
    }
    if rule.basis == DeclaredBasis::GoodsAndShipping {
        declared = declared.checked_add(shipping_and_insurance)?;
        add(rule.default_rate_bps, shipping_and_insurance)?;
    }
    let declared_at_destination = declared.convert(fx_destination)?;
    let dutiable = declared_at_destination.minor > rule.de_minimis.minor;
    let mut duty = Money::zero(cny);
    if dutiable {
        for (bps, value) in by_rate {
            duty = duty.checked_add(value.basis_points(bps)?)?;
        }
    }
    Ok(DutyAssessment {
        declared,
        declared_at_destination,
        dutiable,
        duty,
    })
}

/// Transit insurance, optional for the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insurance {
    pub rate_bps: u32,
    pub minimum: Money,
}

impl Insurance {
    /// `max(declared × rate, minimum)`.
    pub fn premium(&self, declared: Money) -> Result<Money, MoneyError> {
        declared.basis_points(self.rate_bps)?.max(self.minimum)
    }
}

/// Our fee for buying on the customer's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFee {
    pub rate_bps: u32,
    pub minimum: Money,
}

/// Price of a guaranteed all-in quote: a share of the costs we take the risk on (international
/// shipping, duty and insurance), at least `minimum`. See [`settle`] for what it buys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuaranteeFee {
    pub rate_bps: u32,
    pub minimum: Money,
}

impl GuaranteeFee {
    /// `max(at_risk × rate, minimum)`, `at_risk` = international shipping + duty + insurance.
    pub fn fee(&self, at_risk: Money) -> Result<Money, MoneyError> {
        at_risk.basis_points(self.rate_bps)?.max(self.minimum)
    }
}

/// Outcome of settling a quoted estimate against the actual cost. Amounts are never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "amount")]
pub enum Settlement {
    /// The actual cost equals the estimate.
    Even,
    /// The customer owes the difference.
    Charge(Money),
    /// The customer gets the difference back.
    Refund(Money),
    /// The cost rose on a guaranteed quote: the difference is ours to pay.
    Absorbed(Money),
}

/// Settles an estimate (e.g. the quoted shipping and duty) against the actual cost once known.
///
/// Policy: a standard quote is an estimate and settles both ways — if the actual cost is above
/// the estimate the customer is charged the difference, if below the difference is refunded. A
/// guaranteed quote (the customer paid the [`GuaranteeFee`]) is a ceiling: the customer is
/// never charged more than quoted, an increase is absorbed by us, and a decrease is still
/// refunded. Equal amounts settle even. Both amounts must be in the same currency.
pub fn settle(estimated: Money, actual: Money, guaranteed: bool) -> Result<Settlement, MoneyError> {
    let increase = actual.checked_sub(estimated)?;
    Ok(match increase.minor.cmp(&0) {
        std::cmp::Ordering::Equal => Settlement::Even,
        std::cmp::Ordering::Greater if guaranteed => Settlement::Absorbed(increase),
        std::cmp::Ordering::Greater => Settlement::Charge(increase),
        std::cmp::Ordering::Less => Settlement::Refund(estimated.checked_sub(actual)?),
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteItem {
    pub unit_price: Money,
    pub quantity: u32,
    pub unit_weight_g: u32,
    pub unit_dims: Dimensions,
    pub domestic_shipping: Money,
    /// Duty and shipping-line category, e.g. "electronics", "battery", "general".
    pub category: String,
}

/// The consolidated parcel of a quote's items, as shipping lines see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parcel<'a> {
    pub actual_g: u64,
    pub volume_mm3: u64,
    /// Distinct item categories, sorted.
    pub categories: Vec<&'a str>,
}

impl<'a> Parcel<'a> {
    pub fn of(items: &'a [QuoteItem]) -> Self {
        let (mut actual_g, mut volume_mm3) = (0u64, 0u64);
        let mut categories = Vec::new();
        for item in items {
            let qty = u64::from(item.quantity);
            actual_g = actual_g.saturating_add(u64::from(item.unit_weight_g).saturating_mul(qty));
            volume_mm3 = volume_mm3.saturating_add(item.unit_dims.volume_mm3().saturating_mul(qty));
            categories.push(item.category.as_str());
        }
        categories.sort_unstable();
        categories.dedup();
        Parcel {
            actual_g,
            volume_mm3,
            categories,
        }
    }
}

/// Everything a quote depends on; the caller supplies rates already locked.
#[derive(Clone, Debug)]
pub struct QuoteRequest<'a> {
    pub items: &'a [QuoteItem],
    pub service_fee: &'a ServiceFee,
    /// The line the customer chose (see [`line_options`]); it must be able to carry the parcel.
    pub line: &'a ShippingLine,
    pub duty: &'a DutyRule,
    /// CNY → customer currency.
    pub fx: &'a FxRate,
    /// CNY → destination currency (to compare with the de-minimis threshold).
    pub fx_destination: &'a FxRate,
    /// Transit insurance, when the customer takes it.
    pub insurance: Option<&'a Insurance>,
    /// The guarantee fee, when the customer picks a guaranteed quote.
    pub guarantee: Option<&'a GuaranteeFee>,
}

fn zero_cny() -> Money {
    Money::zero(Currency::CNY)
}

/// All amounts in CNY except `total`. Fields added after the first release default when absent,
/// so quotes stored before them still read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteBreakdown {
    pub goods: Money,
    pub domestic_shipping: Money,
    pub service_fee: Money,
    pub actual_weight_g: u64,
    pub chargeable_weight_g: u64,
    pub international_shipping: Money,
    /// Customs value on the destination's basis.
    #[serde(default = "zero_cny")]
    pub declared: Money,
    #[serde(default)]
    pub dutiable: bool,
    pub duty: Money,
    #[serde(default = "zero_cny")]
    pub insurance: Money,
    #[serde(default = "zero_cny")]
    pub guarantee_fee: Money,
    pub total_cny: Money,
    pub total: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("a quote needs at least one item")]
    Empty,
    #[error("item prices must be in CNY")]
    NotCny,
    #[error("exchange rate does not match the quote: {0}")]
    Rate(String),
    #[error("shipping line {code} cannot carry this parcel: {reason}")]
    Line { code: String, reason: Ineligible },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

pub fn quote(req: &QuoteRequest<'_>) -> Result<QuoteBreakdown, QuoteError> {
    if req.items.is_empty() {
        return Err(QuoteError::Empty);
    }
    if req.fx.from != Currency::CNY {
        return Err(QuoteError::Rate("rates must convert from CNY".into()));
    }
    let cny = Currency::CNY;
    let mut goods = Money::zero(cny);
    let mut domestic = Money::zero(cny);
    let mut declared_items = Vec::with_capacity(req.items.len());
    for item in req.items {
        if item.unit_price.currency != cny || item.domestic_shipping.currency != cny {
            return Err(QuoteError::NotCny);
        }
        let value = item.unit_price.times(item.quantity)?;
        goods = goods.checked_add(value)?;
        domestic = domestic.checked_add(item.domestic_shipping)?;
        declared_items.push(DeclaredItem {
            category: item.category.clone(),
            value: value.checked_add(item.domestic_shipping)?,
        });
    }
    let parcel = Parcel::of(req.items);
    let chargeable = req
        .line
        .chargeable_weight_g(parcel.actual_g, parcel.volume_mm3);
    req.line
        .check(&req.duty.country, &parcel.categories, chargeable)
        .map_err(|reason| QuoteError::Line {
            code: req.line.code.clone(),
            reason,
        })?;
    let international = req.line.fee(chargeable)?;
    if international.currency != cny {
        return Err(QuoteError::NotCny);
    }
    let service_fee = goods
        .basis_points(req.service_fee.rate_bps)?
        .max(req.service_fee.minimum)?;
    // Insured value is what we hand to the carrier: goods and what it cost to get them to us.
    let insurance = match req.insurance {
        Some(i) => i.premium(goods.checked_add(domestic)?)?,
        None => Money::zero(cny),
    };
    let assessment = assess_duty(
        req.duty,
        &declared_items,
        international.checked_add(insurance)?,
        req.fx_destination,
    )?;
    let duty = assessment.duty;
    let guarantee_fee = match req.guarantee {
        Some(g) => g.fee(Money::sum(cny, [international, duty, insurance])?)?,
        None => Money::zero(cny),
    };
    let total_cny = Money::sum(
        cny,
        [
            goods,
            domestic,
            service_fee,
            international,
            duty,
            insurance,
            guarantee_fee,
        ],
    )?;
    Ok(QuoteBreakdown {
        goods,
        domestic_shipping: domestic,
        service_fee,
        actual_weight_g: parcel.actual_g,
        chargeable_weight_g: chargeable,
        international_shipping: international,
        declared: assessment.declared,
        dutiable: assessment.dutiable,
        duty,
        insurance,
        guarantee_fee,
        total_cny,
        total: total_cny.convert(req.fx)?,
    })
}

/// What the customer pays on top of the order when the supplier's unit price rose beyond the
/// tolerance and the customer accepts the new price: the increase over the quoted unit price
/// times the quantity, converted at the rate locked in the quote (the one rounding rule of
/// `Money::convert`). Policy: no service fee, shipping or duty is added on the increase. Zero
/// when the price did not rise.
pub fn price_change_supplement(
    quoted_unit: Money,
    new_unit: Money,
    quantity: u32,
    fx: &FxRate,
) -> Result<Money, QuoteError> {
    if quoted_unit.currency != Currency::CNY || new_unit.currency != Currency::CNY {
        return Err(QuoteError::NotCny);
    }
    if fx.from != Currency::CNY {
        return Err(QuoteError::Rate("rate must convert from CNY".into()));
    }
    let increase = new_unit.checked_sub(quoted_unit)?;
    if increase.minor <= 0 {
        return Ok(Money::zero(fx.to));
    }
    Ok(increase.times(quantity)?.convert(fx)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipping::tests::express;
    use proptest::prelude::*;

    fn cny(v: i64) -> Money {
        Money::new(v, Currency::CNY)
    }

    fn line() -> ShippingLine {
        express()
    }

    fn flat_duty(country: &str, de_minimis: Money, rate_bps: u32) -> DutyRule {
        DutyRule {
            country: country.into(),
            de_minimis,
            default_rate_bps: rate_bps,
            category_rates_bps: BTreeMap::new(),
            basis: DeclaredBasis::Goods,
        }
    }

    fn item(price: i64, qty: u32, category: &str) -> QuoteItem {
        QuoteItem {
            unit_price: cny(price),
            quantity: qty,
            unit_weight_g: 300,
            unit_dims: Dimensions {
                l_mm: 200,
                w_mm: 150,
                h_mm: 100,
            },
            domestic_shipping: cny(800),
            category: category.into(),
        }
    }

    fn declared(category: &str, value: i64) -> DeclaredItem {
        DeclaredItem {
            category: category.into(),
            value: cny(value),
        }
    }

    /// US rule with category rates: electronics 5 %, apparel 12 %, anything else 10 %.
    fn us_rule(basis: DeclaredBasis) -> DutyRule {
        DutyRule {
            category_rates_bps: [
                ("electronics".to_owned(), 500),
                ("apparel".to_owned(), 1_200),
            ]
            .into_iter()
            .collect(),
            basis,
            ..flat_duty("US", Money::new(80_000, Currency::USD), 1_000)
        }
    }

    fn usd() -> FxRate {
        FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::USD, 1_086_800)
    }

    const FEE: ServiceFee = ServiceFee {
        rate_bps: 500,
        minimum: Money::new(1_000, Currency::CNY),
    };

    #[test]
    fn worked_quote() {
        let items = [item(4_550, 2, "general")];
        let duty = flat_duty("US", Money::new(80_000, Currency::USD), 1_000);
        let fx = usd();
        let q = quote(&QuoteRequest {
            items: &items,
            service_fee: &FEE,
            line: &line(),
            duty: &duty,
            fx: &fx,
            fx_destination: &fx,
            insurance: None,
            guarantee: None,
        })
        .unwrap();
        assert_eq!(q.goods, cny(9_100));
        assert_eq!(
            q.service_fee,
            cny(1_000),
            "5% of 91 CNY is below the minimum"
        );
        assert_eq!(q.actual_weight_g, 600);
        // 2 × 3 000 cm³ = 6 000 cm³ / 6000 = 1 000 g volumetric
        assert_eq!(q.chargeable_weight_g, 1_000);
        assert_eq!(q.international_shipping, cny(12_000));
        assert_eq!(q.declared, cny(9_900), "goods + domestic shipping (FOB)");
        assert!(!q.dutiable);
        assert_eq!(q.duty, cny(0), "under de minimis");
        assert_eq!((q.insurance, q.guarantee_fee), (cny(0), cny(0)));
        assert_eq!(q.total_cny, cny(9_100 + 800 + 1_000 + 12_000));
        // 229.00 CNY × 1.0868 / 7.8120 = 31.858... USD
        assert_eq!(q.total, Money::new(3_186, Currency::USD));
    }

    #[test]
    fn duty_applies_above_de_minimis() {
        let items = [QuoteItem {
            unit_price: cny(200_000),
            quantity: 1,
            unit_weight_g: 100,
            unit_dims: Dimensions {
                l_mm: 10,
                w_mm: 10,
                h_mm: 10,
            },
            domestic_shipping: cny(0),
            category: "general".into(),
        }];
        let duty = flat_duty("GB", Money::new(13_500, Currency::GBP), 2_000);
        let fx = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::GBP, 845_000);
        let q = quote(&QuoteRequest {
            items: &items,
            service_fee: &FEE,
            line: &line(),
            duty: &duty,
            fx: &fx,
            fx_destination: &fx,
            insurance: None,
            guarantee: None,
        })
        .unwrap();
        // 2 000 CNY ≈ 216 GBP > 135 GBP de minimis
        assert!(q.dutiable);
        assert_eq!(q.duty, cny(40_000));
        assert_eq!(q.service_fee, cny(10_000));
    }

    #[test]
    fn duty_rate_follows_the_category() {
        let items = [
            declared("electronics", 1_000_000),
            declared("apparel", 500_000),
            declared("toys", 200_000),
        ];
        let a = assess_duty(&us_rule(DeclaredBasis::Goods), &items, cny(30_000), &usd()).unwrap();
        assert_eq!(a.declared, cny(1_700_000), "FOB leaves shipping out");
        assert!(a.dutiable);
        // 5 % of 10 000 + 12 % of 5 000 + 10 % (default) of 2 000 CNY
        assert_eq!(a.duty, cny(50_000 + 60_000 + 20_000));
    }

    #[test]
    fn cif_basis_adds_shipping_and_insurance_at_the_default_rate() {
        let items = [
            declared("electronics", 1_000_000),
            declared("apparel", 500_000),
        ];
        let rule = us_rule(DeclaredBasis::GoodsAndShipping);
        let a = assess_duty(&rule, &items, cny(30_000), &usd()).unwrap();
        assert_eq!(a.declared, cny(1_530_000));
        assert_eq!(
            a.declared_at_destination,
            cny(1_530_000).convert(&usd()).unwrap()
        );
        assert_eq!(a.duty, cny(50_000 + 60_000 + 3_000));
        // CIF can push a shipment over de minimis that FOB keeps under: 7 800 + 600 CNY at 0.1
        // USD/CNY is 840 USD.
        let tenth = FxRate {
            from: Currency::CNY,
            to: Currency::USD,
            num: 1,
            den: 10,
        };
        let goods = [declared("general", 780_000)];
        let fob = assess_duty(&us_rule(DeclaredBasis::Goods), &goods, cny(60_000), &tenth);
        let cif = assess_duty(&rule, &goods, cny(60_000), &tenth);
        assert!(!fob.unwrap().dutiable);
        assert!(cif.unwrap().dutiable);
    }

    #[test]
    fn orders_under_de_minimis_can_be_dutiable_once_consolidated() {
        let rule = us_rule(DeclaredBasis::Goods);
        // 4 000 CNY ≈ 556 USD and 3 000 CNY ≈ 417 USD: each under 800 USD, together 973 USD.
        let first = [declared("electronics", 400_000)];
        let second = [declared("apparel", 300_000)];
        let consolidated = [first[0].clone(), second[0].clone()];
        let a = assess_duty(&rule, &first, cny(0), &usd()).unwrap();
        let b = assess_duty(&rule, &second, cny(0), &usd()).unwrap();
        let both = assess_duty(&rule, &consolidated, cny(0), &usd()).unwrap();
        assert!(!a.dutiable && !b.dutiable);
        assert_eq!((a.duty, b.duty), (cny(0), cny(0)));
        assert!(both.dutiable);
        assert_eq!(both.duty, cny(20_000 + 36_000));
    }

    #[test]
    fn de_minimis_itself_is_not_dutiable() {
        let tenth = FxRate {
            from: Currency::CNY,
            to: Currency::EUR,
            num: 1,
            den: 10,
        };
        let rule = flat_duty("DE", Money::new(15_000, Currency::EUR), 1_900);
        let at = assess_duty(&rule, &[declared("general", 150_000)], cny(0), &tenth).unwrap();
        assert_eq!(
            at.declared_at_destination,
            Money::new(15_000, Currency::EUR)
        );
        assert!(!at.dutiable);
        let over = assess_duty(&rule, &[declared("general", 150_010)], cny(0), &tenth).unwrap();
        assert!(over.dutiable);
        assert_eq!(over.duty, cny(28_502));
    }

    #[test]
    fn duty_refuses_foreign_amounts_and_mismatched_rates() {
        let rule = us_rule(DeclaredBasis::Goods);
        let eur = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::EUR, 1_000_000);
        assert!(matches!(
            assess_duty(&rule, &[], cny(0), &eur),
            Err(QuoteError::Rate(_))
        ));
        let foreign = [DeclaredItem {
            category: "general".into(),
            value: Money::new(1, Currency::USD),
        }];
        assert_eq!(
            assess_duty(&rule, &foreign, cny(0), &usd()),
            Err(QuoteError::NotCny)
        );
    }

    #[test]
    fn insurance_has_a_minimum() {
        let ins = Insurance {
            rate_bps: 100,
            minimum: cny(500),
        };
        assert_eq!(
            ins.premium(cny(10_000)).unwrap(),
            cny(500),
            "1 % of 100 CNY"
        );
        assert_eq!(ins.premium(cny(100_000)).unwrap(), cny(1_000));
        assert!(ins.premium(Money::new(1, Currency::USD)).is_err());
    }

    #[test]
    fn guaranteed_insured_quote_adds_premium_and_fee() {
        let items = [item(500_000, 2, "electronics")];
        let rule = us_rule(DeclaredBasis::GoodsAndShipping);
        let ins = Insurance {
            rate_bps: 100,
            minimum: cny(500),
        };
        let guarantee = GuaranteeFee {
            rate_bps: 400,
            minimum: cny(800),
        };
        let fx = usd();
        let q = quote(&QuoteRequest {
            items: &items,
            service_fee: &FEE,
            line: &line(),
            duty: &rule,
            fx: &fx,
            fx_destination: &fx,
            insurance: Some(&ins),
            guarantee: Some(&guarantee),
        })
        .unwrap();
        assert_eq!(q.international_shipping, cny(12_000));
        assert_eq!(
            q.insurance,
            cny(10_008),
            "1 % of goods + domestic 10 008 CNY"
        );
        assert_eq!(q.declared, cny(1_000_800 + 12_000 + 10_008), "CIF");
        assert!(q.dutiable);
        // 5 % of 10 008 CNY goods + 10 % of 220.08 CNY shipping and insurance (half even).
        assert_eq!(q.duty, cny(50_040 + 2_201));
        // 4 % of (120 + 522.41 + 100.08) CNY = 29.6996 CNY, above the 8 CNY minimum.
        assert_eq!(q.guarantee_fee, cny(2_970));
        assert_eq!(
            q.total_cny,
            cny(1_000_000 + 800 + 50_000 + 12_000 + 52_241 + 10_008 + 2_970)
        );
        // The minimum applies to small amounts at risk.
        assert_eq!(guarantee.fee(cny(12_000)).unwrap(), cny(800));
    }

    #[test]
    fn quote_refuses_a_line_that_cannot_carry_the_parcel() {
        let items = [item(1_000, 1, "battery")];
        let duty = flat_duty("US", Money::new(80_000, Currency::USD), 1_000);
        let no_batteries = ShippingLine {
            banned_categories: vec!["battery".into()],
            ..line()
        };
        let fx = usd();
        let e = quote(&QuoteRequest {
            items: &items,
            service_fee: &FEE,
            line: &no_batteries,
            duty: &duty,
            fx: &fx,
            fx_destination: &fx,
            insurance: None,
            guarantee: None,
        })
        .unwrap_err();
        assert_eq!(
            e,
            QuoteError::Line {
                code: "EXP".into(),
                reason: Ineligible::Category("battery".into())
            }
        );
    }

    #[test]
    fn settlement_follows_the_policy() {
        let s = |e, a, g| settle(cny(e), cny(a), g).unwrap();
        assert_eq!(s(1_000, 1_000, false), Settlement::Even);
        assert_eq!(s(1_000, 1_300, false), Settlement::Charge(cny(300)));
        assert_eq!(s(1_000, 800, false), Settlement::Refund(cny(200)));
        assert_eq!(s(1_000, 1_300, true), Settlement::Absorbed(cny(300)));
        assert_eq!(s(1_000, 800, true), Settlement::Refund(cny(200)));
        assert_eq!(s(1_000, 1_000, true), Settlement::Even);
        assert!(settle(cny(1), Money::new(1, Currency::USD), false).is_err());
    }

    proptest! {
        #[test]
        fn total_is_sum_of_parts_and_grows_with_quantity(
            price in 1i64..1_000_000, qty in 1u32..50, w in 1u32..5_000,
            l in 1u32..600, wd in 1u32..600, h in 1u32..600,
            insured in any::<bool>(), guaranteed in any::<bool>(), cif in any::<bool>(),
        ) {
            let mk = |q| [QuoteItem { unit_price: cny(price), quantity: q, unit_weight_g: w,
                unit_dims: Dimensions { l_mm: l, w_mm: wd, h_mm: h }, domestic_shipping: cny(500),
                category: "general".into() }];
            let mut duty = flat_duty("DE", Money::new(15_000, Currency::EUR), 1_900);
            if cif { duty.basis = DeclaredBasis::GoodsAndShipping; }
            let ins = Insurance { rate_bps: 100, minimum: cny(500) };
            let g = GuaranteeFee { rate_bps: 400, minimum: cny(800) };
            let fx = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::EUR, 1_000_000);
            let (a, b) = (mk(qty), mk(qty + 1));
            let l = line();
            let req = |items| QuoteRequest {
                items, service_fee: &FEE, line: &l, duty: &duty, fx: &fx, fx_destination: &fx,
                insurance: insured.then_some(&ins), guarantee: guaranteed.then_some(&g),
            };
            let qa = quote(&req(&a)).unwrap();
            let qb = quote(&req(&b)).unwrap();
            let parts = qa.goods.minor + qa.domestic_shipping.minor + qa.service_fee.minor
                + qa.international_shipping.minor + qa.duty.minor + qa.insurance.minor
                + qa.guarantee_fee.minor;
            prop_assert_eq!(qa.total_cny.minor, parts);
            prop_assert!(qa.chargeable_weight_g >= qa.actual_weight_g);
            prop_assert_eq!(qa.dutiable, qa.duty.minor > 0);
            prop_assert_eq!(insured, qa.insurance.minor >= 500);
            prop_assert_eq!(guaranteed, qa.guarantee_fee.minor >= 800);
            prop_assert!(qb.total_cny.minor > qa.total_cny.minor);
            prop_assert!(qb.total.minor >= qa.total.minor);
        }

        #[test]
        fn duty_ignores_item_splits_and_cif_never_costs_less(
            values in prop::collection::vec((0usize..4, 0i64..10_000_000), 1..8),
            split in 0i64..10_000_000, shipping in 0i64..1_000_000,
        ) {
            let cats = ["electronics", "apparel", "general", "toys"];
            let items: Vec<DeclaredItem> =
                values.iter().map(|(c, v)| declared(cats[*c], *v)).collect();
            let fob = us_rule(DeclaredBasis::Goods);
            let cif = us_rule(DeclaredBasis::GoodsAndShipping);
            let a = assess_duty(&fob, &items, cny(shipping), &usd()).unwrap();
            // Split the first item in two of the same category.
            let part = split.min(items[0].value.minor);
            let mut split_items = items.clone();
            split_items[0].value = cny(items[0].value.minor - part);
            split_items.push(declared(&items[0].category, part));
            prop_assert_eq!(&assess_duty(&fob, &split_items, cny(shipping), &usd()).unwrap(), &a);
            let c = assess_duty(&cif, &items, cny(shipping), &usd()).unwrap();
            prop_assert_eq!(c.declared.minor, a.declared.minor + shipping);
            prop_assert!(c.duty.minor >= a.duty.minor);
            prop_assert!(a.duty.minor >= 0);
            prop_assert_eq!(a.dutiable, a.declared_at_destination.minor > 80_000);
            if !a.dutiable { prop_assert_eq!(a.duty.minor, 0); }
        }

        #[test]
        fn insurance_premium_is_at_least_minimum_and_rate(
            declared in 0i64..1_000_000_000, bps in 0u32..1_000, min in 0i64..10_000,
        ) {
            let ins = Insurance { rate_bps: bps, minimum: cny(min) };
            let p = ins.premium(cny(declared)).unwrap();
            let by_rate = cny(declared).basis_points(bps).unwrap();
            prop_assert_eq!(p.minor, by_rate.minor.max(min));
        }

        #[test]
        fn settlement_is_never_negative_and_reconciles(
            estimated in 0i64..1_000_000_000, actual in 0i64..1_000_000_000,
            guaranteed in any::<bool>(),
        ) {
            let s = settle(cny(estimated), cny(actual), guaranteed).unwrap();
            match s {
                Settlement::Even => prop_assert_eq!(estimated, actual),
                Settlement::Charge(m) => {
                    prop_assert!(!guaranteed, "a guaranteed quote never charges more");
                    prop_assert!(m.minor > 0);
                    prop_assert_eq!(estimated + m.minor, actual);
                }
                Settlement::Refund(m) => {
                    prop_assert!(m.minor > 0);
                    prop_assert_eq!(estimated - m.minor, actual);
                }
                Settlement::Absorbed(m) => {
                    prop_assert!(guaranteed);
                    prop_assert!(m.minor > 0);
                    prop_assert_eq!(estimated + m.minor, actual);
                }
            }
        }
    }

    #[test]
    fn supplement_is_the_converted_increase_and_never_negative() {
        let eur = FxRate {
            from: Currency::CNY,
            to: Currency::EUR,
            num: 127_000,
            den: 1_000_000,
        };
        // 2 units, 12.00 → 19.50 CNY: 15.00 CNY increase at 0.127 = 1.905 → 1.90 EUR (half even).
        let s = price_change_supplement(cny(1_200), cny(1_950), 2, &eur).unwrap();
        assert_eq!(s, Money::new(190, Currency::EUR));
        let none = price_change_supplement(cny(1_950), cny(1_200), 2, &eur).unwrap();
        assert_eq!(none, Money::zero(Currency::EUR));
        assert!(matches!(
            price_change_supplement(Money::new(1, Currency::EUR), cny(2), 1, &eur),
            Err(QuoteError::NotCny)
        ));
    }

    proptest! {
        #[test]
        fn supplement_grows_with_the_increase(quoted in 1i64..1_000_000, a in 0i64..100_000, b in 0i64..100_000, qty in 1u32..100) {
            let rate = FxRate { from: Currency::CNY, to: Currency::USD, num: 138_000, den: 1_000_000 };
            let (lo, hi) = (a.min(b), a.max(b));
            let s_lo = price_change_supplement(cny(quoted), cny(quoted + lo), qty, &rate).unwrap();
            let s_hi = price_change_supplement(cny(quoted), cny(quoted + hi), qty, &rate).unwrap();
            prop_assert!(s_lo.minor >= 0 && s_lo.minor <= s_hi.minor);
            prop_assert_eq!(s_hi.currency, Currency::USD);
        }
    }
}
