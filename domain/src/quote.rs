//! The all-in quote: goods + domestic shipping + service fee + international shipping by
//! chargeable weight + duty, summed in CNY and converted once at a locked rate.

use crate::money::{Currency, FxRate, Money, MoneyError};
use serde::{Deserialize, Serialize};

/// Outer dimensions of an item or parcel, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub l_mm: u32,
    pub w_mm: u32,
    pub h_mm: u32,
}

impl Dimensions {
    pub fn volume_mm3(self) -> u64 {
        u64::from(self.l_mm) * u64::from(self.w_mm) * u64::from(self.h_mm)
    }
}

/// Volumetric weight in grams for a divisor given in cm³/kg (5000 or 6000 for most lines):
/// `L×W×H[cm] / divisor` kg equals `L×W×H[mm] / divisor` g. Rounded up: carriers never round down.
pub fn volumetric_weight_g(volume_mm3: u64, divisor_cm3_per_kg: u32) -> u64 {
    volume_mm3.div_ceil(u64::from(divisor_cm3_per_kg.max(1)))
}

/// Chargeable weight = max(actual, volumetric).
pub fn chargeable_weight_g(actual_g: u64, volume_mm3: u64, divisor_cm3_per_kg: u32) -> u64 {
    actual_g.max(volumetric_weight_g(volume_mm3, divisor_cm3_per_kg))
}

/// An international shipping line's tariff (CNY).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingLine {
    pub code: String,
    pub first_weight_g: u32,
    pub first_price: Money,
    pub step_g: u32,
    pub step_price: Money,
    pub divisor_cm3_per_kg: u32,
}

impl ShippingLine {
    /// Fee for a chargeable weight: the first-weight price, then every started step.
    pub fn fee(&self, chargeable_g: u64) -> Result<Money, MoneyError> {
        let extra = chargeable_g.saturating_sub(u64::from(self.first_weight_g));
        let steps = extra.div_ceil(u64::from(self.step_g.max(1)));
        let steps = u32::try_from(steps).map_err(|_| MoneyError::Overflow)?;
        self.first_price.checked_add(self.step_price.times(steps)?)
    }
}

/// Import duty rule of a destination: nothing below the de-minimis value, else a flat rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyRule {
    pub country: String,
    /// De-minimis threshold in the destination's currency.
    pub de_minimis: Money,
    pub rate_bps: u32,
}

/// Our fee for buying on the customer's behalf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFee {
    pub rate_bps: u32,
    pub minimum: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteItem {
    pub unit_price: Money,
    pub quantity: u32,
    pub unit_weight_g: u32,
    pub unit_dims: Dimensions,
    pub domestic_shipping: Money,
}

/// Everything a quote depends on; the caller supplies rates already locked.
#[derive(Clone, Debug)]
pub struct QuoteRequest<'a> {
    pub items: &'a [QuoteItem],
    pub service_fee: &'a ServiceFee,
    pub line: &'a ShippingLine,
    pub duty: &'a DutyRule,
    /// CNY → customer currency.
    pub fx: &'a FxRate,
    /// CNY → destination currency (to compare with the de-minimis threshold).
    pub fx_destination: &'a FxRate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteBreakdown {
    pub goods: Money,
    pub domestic_shipping: Money,
    pub service_fee: Money,
    pub actual_weight_g: u64,
    pub chargeable_weight_g: u64,
    pub international_shipping: Money,
    pub duty: Money,
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
    #[error(transparent)]
    Money(#[from] MoneyError),
}

pub fn quote(req: &QuoteRequest<'_>) -> Result<QuoteBreakdown, QuoteError> {
    if req.items.is_empty() {
        return Err(QuoteError::Empty);
    }
    if req.fx.from != Currency::CNY || req.fx_destination.from != Currency::CNY {
        return Err(QuoteError::Rate("rates must convert from CNY".into()));
    }
    if req.fx_destination.to != req.duty.de_minimis.currency {
        return Err(QuoteError::Rate(
            "destination rate must match the duty currency".into(),
        ));
    }
    let cny = Currency::CNY;
    let mut goods = Money::zero(cny);
    let mut domestic = Money::zero(cny);
    let (mut weight_g, mut volume) = (0u64, 0u64);
    for item in req.items {
        if item.unit_price.currency != cny || item.domestic_shipping.currency != cny {
            return Err(QuoteError::NotCny);
        }
        goods = goods.checked_add(item.unit_price.times(item.quantity)?)?;
        domestic = domestic.checked_add(item.domestic_shipping)?;
        weight_g += u64::from(item.unit_weight_g) * u64::from(item.quantity);
        volume += item.unit_dims.volume_mm3() * u64::from(item.quantity);
    }
    let service_fee = goods
        .basis_points(req.service_fee.rate_bps)?
        .max(req.service_fee.minimum)?;
    let chargeable = chargeable_weight_g(weight_g, volume, req.line.divisor_cm3_per_kg);
    let international = req.line.fee(chargeable)?;
    let declared = goods.checked_add(domestic)?;
    let declared_at_destination = declared.convert(req.fx_destination)?;
    let duty = if declared_at_destination.minor > req.duty.de_minimis.minor {
        declared.basis_points(req.duty.rate_bps)?
    } else {
        Money::zero(cny)
    };
    let total_cny = Money::sum(cny, [goods, domestic, service_fee, international, duty])?;
    Ok(QuoteBreakdown {
        goods,
        domestic_shipping: domestic,
        service_fee,
        actual_weight_g: weight_g,
        chargeable_weight_g: chargeable,
        international_shipping: international,
        duty,
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
    use proptest::prelude::*;

    fn cny(v: i64) -> Money {
        Money::new(v, Currency::CNY)
    }

    fn line() -> ShippingLine {
        ShippingLine {
            code: "EXP".into(),
            first_weight_g: 500,
            first_price: cny(9_000),
            step_g: 500,
            step_price: cny(3_000),
            divisor_cm3_per_kg: 6000,
        }
    }

    #[test]
    fn chargeable_weight_takes_the_larger() {
        // 400 × 300 × 200 mm = 24 000 cm³ / 6000 = 4 kg volumetric.
        let v = 400 * 300 * 200;
        assert_eq!(volumetric_weight_g(v, 6000), 4_000);
        assert_eq!(chargeable_weight_g(1_200, v, 6000), 4_000);
        assert_eq!(chargeable_weight_g(5_000, v, 6000), 5_000);
        assert_eq!(volumetric_weight_g(6001, 6000), 2, "rounded up");
    }

    #[test]
    fn line_fee_counts_started_steps() {
        let l = line();
        assert_eq!(l.fee(0).unwrap(), cny(9_000));
        assert_eq!(l.fee(500).unwrap(), cny(9_000));
        assert_eq!(l.fee(501).unwrap(), cny(12_000));
        assert_eq!(l.fee(1_500).unwrap(), cny(15_000));
    }

    #[test]
    fn worked_quote() {
        let items = [QuoteItem {
            unit_price: cny(4_550),
            quantity: 2,
            unit_weight_g: 300,
            unit_dims: Dimensions {
                l_mm: 200,
                w_mm: 150,
                h_mm: 100,
            },
            domestic_shipping: cny(800),
        }];
        let fee = ServiceFee {
            rate_bps: 500,
            minimum: cny(1_000),
        };
        let duty = DutyRule {
            country: "US".into(),
            de_minimis: Money::new(80_000, Currency::USD),
            rate_bps: 1_000,
        };
        let fx = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::USD, 1_086_800);
        let q = quote(&QuoteRequest {
            items: &items,
            service_fee: &fee,
            line: &line(),
            duty: &duty,
            fx: &fx,
            fx_destination: &fx,
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
        assert_eq!(q.duty, cny(0), "under de minimis");
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
        }];
        let fee = ServiceFee {
            rate_bps: 500,
            minimum: cny(1_000),
        };
        let duty = DutyRule {
            country: "GB".into(),
            de_minimis: Money::new(13_500, Currency::GBP),
            rate_bps: 2_000,
        };
        let fx = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::GBP, 845_000);
        let q = quote(&QuoteRequest {
            items: &items,
            service_fee: &fee,
            line: &line(),
            duty: &duty,
            fx: &fx,
            fx_destination: &fx,
        })
        .unwrap();
        // 2 000 CNY ≈ 216 GBP > 135 GBP de minimis
        assert_eq!(q.duty, cny(40_000));
        assert_eq!(q.service_fee, cny(10_000));
    }

    proptest! {
        #[test]
        fn total_is_sum_of_parts_and_grows_with_quantity(
            price in 1i64..1_000_000, qty in 1u32..50, w in 1u32..5_000,
            l in 1u32..600, wd in 1u32..600, h in 1u32..600,
        ) {
            let mk = |q| [QuoteItem { unit_price: cny(price), quantity: q, unit_weight_g: w,
                unit_dims: Dimensions { l_mm: l, w_mm: wd, h_mm: h }, domestic_shipping: cny(500) }];
            let fee = ServiceFee { rate_bps: 500, minimum: cny(1_000) };
            let duty = DutyRule { country: "DE".into(), de_minimis: Money::new(15_000, Currency::EUR), rate_bps: 1_900 };
            let fx = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::EUR, 1_000_000);
            let (a, b) = (mk(qty), mk(qty + 1));
            let l = line();
            let req = |items| QuoteRequest { items, service_fee: &fee, line: &l, duty: &duty, fx: &fx, fx_destination: &fx };
            let qa = quote(&req(&a)).unwrap();
            let qb = quote(&req(&b)).unwrap();
            let parts = qa.goods.minor + qa.domestic_shipping.minor + qa.service_fee.minor + qa.international_shipping.minor + qa.duty.minor;
            prop_assert_eq!(qa.total_cny.minor, parts);
            prop_assert!(qa.chargeable_weight_g >= qa.actual_weight_g);
            prop_assert!(qb.total_cny.minor > qa.total_cny.minor);
            prop_assert!(qb.total.minor >= qa.total.minor);
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
