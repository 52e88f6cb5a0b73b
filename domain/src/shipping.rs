//! International shipping lines: chargeable weight, the tariff of a line, which parcels a line
//! may carry (destination, banned categories, weight band) and the ranked options for a parcel.
//! Duty, insurance and the all-in quote built on top of a chosen line live in [`crate::quote`].

use crate::money::{Currency, Money, MoneyError};
use serde::{Deserialize, Serialize};

/// Outer dimensions of an item or parcel, in millimetres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimensions {
    pub l_mm: u32,
    pub w_mm: u32,
    pub h_mm: u32,
}

impl Dimensions {
    /// Saturates instead of overflowing: an absurd size must price as "too heavy", not panic.
    pub fn volume_mm3(self) -> u64 {
        u64::from(self.l_mm)
            .saturating_mul(u64::from(self.w_mm))
            .saturating_mul(u64::from(self.h_mm))
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

/// An international shipping line: its tariff (CNY) and what it may carry where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippingLine {
    pub code: String,
    pub name: String,
    pub first_weight_g: u32,
    pub first_price: Money,
    pub step_g: u32,
    pub step_price: Money,
    /// Volumetric divisor in cm³/kg; every line sets its own.
    pub divisor_cm3_per_kg: u32,
    /// Accepted chargeable weight, both bounds inclusive.
    pub min_weight_g: u32,
    pub max_weight_g: u32,
    /// ISO-3166 alpha-2 codes the line delivers to; any other destination is refused.
    pub destinations: Vec<String>,
    /// Item categories the line refuses (e.g. "battery", "liquid").
    pub banned_categories: Vec<String>,
    pub transit_days_min: u16,
    pub transit_days_max: u16,
}

/// Why a line cannot carry a parcel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Ineligible {
    #[error("does not deliver to this destination")]
    Destination,
    #[error("does not carry {0:?} items")]
    Category(String),
    #[error("parcel below the line's minimum chargeable weight of {min_g} g")]
    TooLight { min_g: u32 },
    #[error("parcel above the line's maximum chargeable weight of {max_g} g")]
    TooHeavy { max_g: u32 },
}

impl ShippingLine {
    /// Fee for a chargeable weight: the first-weight price, then every started step.
    pub fn fee(&self, chargeable_g: u64) -> Result<Money, MoneyError> {
        let extra = chargeable_g.saturating_sub(u64::from(self.first_weight_g));
        let steps = extra.div_ceil(u64::from(self.step_g.max(1)));
        let steps = u32::try_from(steps).map_err(|_| MoneyError::Overflow)?;
        self.first_price.checked_add(self.step_price.times(steps)?)
    }

    /// Chargeable weight of a parcel by this line's own divisor.
    pub fn chargeable_weight_g(&self, actual_g: u64, volume_mm3: u64) -> u64 {
        chargeable_weight_g(actual_g, volume_mm3, self.divisor_cm3_per_kg)
    }

    /// Whether the line may carry a parcel of these categories to `country`. Reports the first
    /// obstacle in the order destination, category, weight.
    pub fn check(
        &self,
        country: &str,
        categories: &[&str],
        chargeable_g: u64,
    ) -> Result<(), Ineligible> {
        if !self.destinations.iter().any(|d| d == country) {
            return Err(Ineligible::Destination);
        }
        if let Some(banned) = categories
            .iter()
            .find(|c| self.banned_categories.iter().any(|b| b == *c))
        {
            return Err(Ineligible::Category((*banned).to_owned()));
        }
        if chargeable_g < u64::from(self.min_weight_g) {
            return Err(Ineligible::TooLight {
                min_g: self.min_weight_g,
            });
        }
        if chargeable_g > u64::from(self.max_weight_g) {
            return Err(Ineligible::TooHeavy {
                max_g: self.max_weight_g,
            });
        }
        Ok(())
    }
}

/// One line that can carry the parcel, priced for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineOption {
    pub code: String,
    pub name: String,
    pub chargeable_g: u64,
    /// CNY.
    pub fee: Money,
    pub transit_days_min: u16,
    pub transit_days_max: u16,
}

/// Every line that may carry the parcel, each with its own chargeable weight and fee, cheapest
/// first; equal fees put the faster line (by `transit_days_max`) first, then catalogue order.
/// Tariffs must be in CNY so that fees compare.
pub fn line_options(
    lines: &[ShippingLine],
    country: &str,
    categories: &[&str],
    actual_g: u64,
    volume_mm3: u64,
) -> Result<Vec<LineOption>, MoneyError> {
    let mut options = Vec::new();
    for line in lines {
        let chargeable_g = line.chargeable_weight_g(actual_g, volume_mm3);
        if line.check(country, categories, chargeable_g).is_err() {
            continue;
        }
        let fee = line.fee(chargeable_g)?;
        if fee.currency != Currency::CNY {
            return Err(MoneyError::CurrencyMismatch(Currency::CNY, fee.currency));
        }
        options.push(LineOption {
            code: line.code.clone(),
            name: line.name.clone(),
            chargeable_g,
            fee,
            transit_days_min: line.transit_days_min,
            transit_days_max: line.transit_days_max,
        });
    }
    // Stable: lines equal on both keys keep their catalogue order.
    options.sort_by_key(|o| (o.fee.minor, o.transit_days_max));
    Ok(options)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cny(v: i64) -> Money {
        Money::new(v, Currency::CNY)
    }

    /// An express line with no weight band or destination limits worth hitting in tests.
    pub(crate) fn express() -> ShippingLine {
        ShippingLine {
            code: "EXP".into(),
            name: "Express".into(),
            first_weight_g: 500,
            first_price: cny(9_000),
            step_g: 500,
            step_price: cny(3_000),
            divisor_cm3_per_kg: 6000,
            min_weight_g: 0,
            max_weight_g: u32::MAX,
            destinations: ["US", "GB", "DE", "FR", "NL", "AU", "CA", "JP"]
                .map(String::from)
                .to_vec(),
            banned_categories: vec![],
            transit_days_min: 5,
            transit_days_max: 8,
        }
    }

    fn economy() -> ShippingLine {
        ShippingLine {
            code: "ECO".into(),
            name: "Economy".into(),
            first_price: cny(6_000),
            step_price: cny(1_800),
            divisor_cm3_per_kg: 8000,
            max_weight_g: 20_000,
            destinations: ["US", "GB", "DE"].map(String::from).to_vec(),
            banned_categories: vec!["battery".into(), "liquid".into()],
            transit_days_min: 12,
            transit_days_max: 20,
            ..express()
        }
    }

    fn sea() -> ShippingLine {
        ShippingLine {
            code: "SEA".into(),
            name: "Sea".into(),
            first_weight_g: 3_000,
            first_price: cny(20_000),
            step_price: cny(800),
            min_weight_g: 3_000,
            max_weight_g: 100_000,
            destinations: ["US", "GB"].map(String::from).to_vec(),
            transit_days_min: 35,
            transit_days_max: 50,
            ..express()
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
    fn chargeable_weight_depends_on_the_line_divisor() {
        // 24 000 cm³: 4 kg at 6000 cm³/kg, 3 kg at 8000 cm³/kg.
        let v = 400 * 300 * 200;
        assert_eq!(express().chargeable_weight_g(1_200, v), 4_000);
        assert_eq!(economy().chargeable_weight_g(1_200, v), 3_000);
        assert_eq!(
            Dimensions {
                l_mm: u32::MAX,
                w_mm: u32::MAX,
                h_mm: u32::MAX
            }
            .volume_mm3(),
            u64::MAX,
            "saturates"
        );
    }

    #[test]
    fn line_fee_counts_started_steps() {
        let l = express();
        assert_eq!(l.fee(0).unwrap(), cny(9_000));
        assert_eq!(l.fee(500).unwrap(), cny(9_000));
        assert_eq!(l.fee(501).unwrap(), cny(12_000));
        assert_eq!(l.fee(1_500).unwrap(), cny(15_000));
        let s = sea();
        assert_eq!(s.fee(3_000).unwrap(), cny(20_000), "3 kg first weight");
        assert_eq!(s.fee(3_001).unwrap(), cny(20_800));
    }

    #[test]
    fn eligibility_reports_the_first_obstacle() {
        let eco = economy();
        assert_eq!(eco.check("US", &["general"], 1_000), Ok(()));
        assert_eq!(
            eco.check("JP", &["battery"], 1_000),
            Err(Ineligible::Destination)
        );
        assert_eq!(
            eco.check("US", &["general", "liquid", "battery"], 1_000),
            Err(Ineligible::Category("liquid".into()))
        );
        assert_eq!(
            eco.check("US", &["general"], 20_001),
            Err(Ineligible::TooHeavy { max_g: 20_000 })
        );
        assert_eq!(eco.check("US", &[], 20_000), Ok(()), "bounds inclusive");
        let s = sea();
        assert_eq!(
            s.check("GB", &["general"], 2_999),
            Err(Ineligible::TooLight { min_g: 3_000 })
        );
        assert_eq!(s.check("GB", &["general"], 3_000), Ok(()));
        assert_eq!(
            Ineligible::Category("liquid".into()).to_string(),
            "does not carry \"liquid\" items"
        );
        assert_eq!(
            Ineligible::TooLight { min_g: 3_000 }.to_string(),
            "parcel below the line's minimum chargeable weight of 3000 g"
        );
    }

    #[test]
    fn options_are_eligible_lines_cheapest_first() {
        let lines = [express(), economy(), sea()];
        // 1 kg, small: sea is too light, economy is cheapest.
        let o = line_options(&lines, "US", &["general"], 1_000, 1_000_000).unwrap();
        let codes: Vec<&str> = o.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes, ["ECO", "EXP"]);
        assert_eq!(o[0].fee, cny(6_000 + 1_800));
        assert_eq!(o[1].fee, cny(12_000));
        // 5 kg actual, 48 000 cm³: each line weighs the parcel with its own divisor.
        let v = 400 * 400 * 300;
        let o = line_options(&lines, "GB", &["general"], 5_000, v).unwrap();
        let by_code = |c: &str| o.iter().find(|o| o.code == c).unwrap().chargeable_g;
        assert_eq!(by_code("EXP"), 8_000);
        assert_eq!(by_code("ECO"), 6_000);
        assert_eq!(by_code("SEA"), 8_000);
        assert_eq!(o[0].code, "ECO");
        assert_eq!(o[0].fee, cny(6_000 + 11 * 1_800));
        // 15 kg: sea is cheapest.
        let o = line_options(&lines, "GB", &["general"], 15_000, 0).unwrap();
        let codes: Vec<&str> = o.iter().map(|o| o.code.as_str()).collect();
        assert_eq!(codes, ["SEA", "ECO", "EXP"]);
        // Batteries to Japan: only express.
        let o = line_options(&lines, "JP", &["battery"], 1_000, 0).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].code, "EXP");
        assert!(
            line_options(&lines, "ZZ", &[], 1_000, 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn equal_fees_rank_the_faster_line_first() {
        let slow = ShippingLine {
            code: "SLOW".into(),
            transit_days_max: 30,
            ..express()
        };
        let o = line_options(&[slow, express()], "US", &[], 100, 0).unwrap();
        assert_eq!(o[0].code, "EXP");
        let usd = ShippingLine {
            first_price: Money::new(1, Currency::USD),
            step_price: Money::new(1, Currency::USD),
            ..express()
        };
        assert!(line_options(&[usd], "US", &[], 100, 0).is_err());
    }

    proptest! {
        #[test]
        fn chargeable_weight_is_the_max_and_shrinks_with_the_divisor(
            actual in 0u64..1_000_000, volume in 0u64..1_000_000_000_000,
            d1 in 1u32..20_000, d2 in 1u32..20_000,
        ) {
            let (small, large) = (d1.min(d2), d1.max(d2));
            let c = chargeable_weight_g(actual, volume, small);
            prop_assert!(c >= actual);
            prop_assert!(c >= volumetric_weight_g(volume, small));
            prop_assert!(c == actual || c == volumetric_weight_g(volume, small));
            prop_assert!(chargeable_weight_g(actual, volume, large) <= c);
            // Rounded up, never down: the volumetric grams cover the volume.
            prop_assert!(volumetric_weight_g(volume, small) * u64::from(small) >= volume);
        }

        #[test]
        fn each_step_adds_the_step_price(
            first in 1u32..5_000, step in 1u32..2_000, w in 0u64..200_000,
            first_price in 0i64..100_000, step_price in 0i64..10_000,
        ) {
            let l = ShippingLine { first_weight_g: first, step_g: step,
                first_price: cny(first_price), step_price: cny(step_price), ..express() };
            let w = w.max(u64::from(first));
            prop_assert_eq!(l.fee(u64::from(first)).unwrap(), cny(first_price));
            prop_assert_eq!(
                l.fee(w + u64::from(step)).unwrap().minor,
                l.fee(w).unwrap().minor + step_price
            );
            prop_assert!(l.fee(w + 1).unwrap().minor >= l.fee(w).unwrap().minor);
        }

        #[test]
        fn options_are_sorted_and_all_eligible(
            actual in 0u64..150_000, volume in 0u64..500_000_000,
            battery in any::<bool>(),
            country in prop::sample::select(vec!["US", "GB", "DE", "JP", "ZZ"]),
        ) {
            let lines = [express(), economy(), sea()];
            let cats: &[&str] = if battery { &["general", "battery"] } else { &["general"] };
            let o = line_options(&lines, country, cats, actual, volume).unwrap();
            for pair in o.windows(2) {
                let key = |o: &LineOption| (o.fee.minor, o.transit_days_max);
                prop_assert!(key(&pair[0]) <= key(&pair[1]));
            }
            for line in &lines {
                let c = line.chargeable_weight_g(actual, volume);
                let listed = o.iter().find(|o| o.code == line.code);
                prop_assert_eq!(listed.is_some(), line.check(country, cats, c).is_ok());
                if let Some(opt) = listed {
                    prop_assert_eq!(opt.chargeable_g, c);
                    prop_assert_eq!(opt.fee, line.fee(c).unwrap());
                }
            }
        }
    }
}
