//! Tariffs the quote uses: service fee, the catalogue of international shipping lines,
//! insurance, the guarantee fee and duty rules by destination. Demo values, configurable; the
//! arithmetic lives in `crate::{shipping, quote}`.

use crate::{
    Currency, Money,
    quote::{DeclaredBasis, DutyRule, GuaranteeFee, Insurance, ServiceFee, ShippingLine},
};

#[derive(Clone, Debug)]
pub struct Destination {
    pub duty: DutyRule,
}

#[derive(Clone, Debug)]
pub struct Pricing {
    pub service_fee: ServiceFee,
    /// Shipping lines on offer; the first is the default line.
    pub lines: Vec<ShippingLine>,
    pub insurance: Insurance,
    pub guarantee: GuaranteeFee,
    pub destinations: Vec<Destination>,
}

impl Pricing {
    pub fn destination(&self, country: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.duty.country == country)
    }

    pub fn line(&self, code: &str) -> Option<&ShippingLine> {
        self.lines.iter().find(|l| l.code == code)
    }

    /// The line used before there was a choice (express).
    pub fn default_line(&self) -> Option<&ShippingLine> {
        self.lines.first()
    }
}

/// Every destination of the demo tariff.
const DEMO_COUNTRIES: [&str; 8] = ["US", "GB", "DE", "FR", "NL", "AU", "CA", "JP"];

fn countries(codes: &[&str]) -> Vec<String> {
    codes.iter().map(|&c| c.to_owned()).collect()
}

/// Duty of one destination: `rates` are (default, electronics, apparel, cosmetics) in basis
/// points; "general" goods pay the default rate.
fn duty(
    country: &str,
    currency: Currency,
    de_minimis_minor: i64,
    basis: DeclaredBasis,
    (default, electronics, apparel, cosmetics): (u32, u32, u32, u32),
) -> Destination {
    Destination {
        duty: DutyRule {
            country: country.into(),
            de_minimis: Money::new(de_minimis_minor, currency),
            default_rate_bps: default,
            category_rates_bps: [
                ("electronics", electronics),
                ("apparel", apparel),
                ("cosmetics", cosmetics),
                ("general", default),
            ]
            .into_iter()
            .map(|(c, r)| (c.to_owned(), r))
            .collect(),
            basis,
        },
    }
}

impl Default for Pricing {
    fn default() -> Self {
        let cny = |v| Money::new(v, Currency::CNY);
        // The EU and the UK value imports CIF (goods, freight and insurance); the others FOB.
        let (cif, fob) = (DeclaredBasis::GoodsAndShipping, DeclaredBasis::Goods);
        Pricing {
            service_fee: ServiceFee {
                rate_bps: 500,
                minimum: cny(1_000),
            },
            lines: vec![
                ShippingLine {
                    code: "SANDBOX-EXP".into(),
                    name: "Sandbox Express".into(),
                    first_weight_g: 500,
                    first_price: cny(9_000),
                    step_g: 500,
                    step_price: cny(3_000),
                    divisor_cm3_per_kg: 6_000,
                    min_weight_g: 100,
                    max_weight_g: 30_000,
                    destinations: countries(&DEMO_COUNTRIES),
                    banned_categories: vec![],
                    transit_days_min: 5,
                    transit_days_max: 8,
                },
                ShippingLine {
                    code: "SANDBOX-ECO".into(),
                    name: "Sandbox Economy".into(),
                    first_weight_g: 500,
                    first_price: cny(6_000),
                    step_g: 500,
                    step_price: cny(1_800),
                    divisor_cm3_per_kg: 8_000,
                    min_weight_g: 0,
                    max_weight_g: 20_000,
                    destinations: countries(&["US", "GB", "DE", "FR", "NL", "AU", "CA"]),
                    banned_categories: vec!["battery".into(), "liquid".into()],
                    transit_days_min: 12,
                    transit_days_max: 20,
                },
                ShippingLine {
                    code: "SANDBOX-SEA".into(),
                    name: "Sandbox Sea Freight".into(),
                    first_weight_g: 3_000,
                    first_price: cny(20_000),
                    step_g: 500,
                    step_price: cny(800),
                    divisor_cm3_per_kg: 6_000,
                    min_weight_g: 3_000,
                    max_weight_g: 100_000,
                    destinations: countries(&["US", "GB", "DE", "FR", "NL", "AU", "CA"]),
                    banned_categories: vec![],
                    transit_days_min: 35,
                    transit_days_max: 50,
                },
            ],
            insurance: Insurance {
                rate_bps: 100,
                minimum: cny(500),
            },
            guarantee: GuaranteeFee {
                rate_bps: 400,
                minimum: cny(800),
            },
            destinations: vec![
                duty("US", Currency::USD, 80_000, fob, (1_000, 250, 1_600, 500)),
                duty(
                    "GB",
                    Currency::GBP,
                    13_500,
                    cif,
                    (2_000, 2_000, 3_200, 2_000),
                ),
                duty(
                    "DE",
                    Currency::EUR,
                    15_000,
                    cif,
                    (1_900, 1_900, 3_100, 1_900),
                ),
                duty(
                    "FR",
                    Currency::EUR,
                    15_000,
                    cif,
                    (2_000, 2_000, 3_200, 2_000),
                ),
                duty(
                    "NL",
                    Currency::EUR,
                    15_000,
                    cif,
                    (2_100, 2_100, 3_300, 2_100),
                ),
                duty(
                    "AU",
                    Currency::AUD,
                    100_000,
                    fob,
                    (1_000, 1_000, 1_500, 1_000),
                ),
                duty("CA", Currency::CAD, 15_000, fob, (500, 500, 1_800, 650)),
                duty(
                    "JP",
                    Currency::JPY,
                    10_000,
                    fob,
                    (1_000, 1_000, 1_900, 1_000),
                ),
            ],
        }
    }
}

impl Pricing {
    /// What one customer in `country` would pay, all in, for `item` alone: goods, domestic
    /// shipping, service fee, the cheapest line that can carry it, and duty (no insurance, no
    /// guarantee). `fx_destination` converts CNY into the destination's currency, in which
    /// the total is given. `Ok(None)`: the destination is not served or no line can carry it.
    pub fn landed_cost(
        &self,
        item: &crate::quote::QuoteItem,
        country: &str,
        fx_destination: &crate::FxRate,
    ) -> Result<Option<(String, crate::quote::QuoteBreakdown)>, crate::quote::QuoteError> {
        use crate::quote::{Parcel, QuoteRequest, line_options, quote};
        let Some(dest) = self.destination(country) else {
            return Ok(None);
        };
        let items = std::slice::from_ref(item);
        let parcel = Parcel::of(items);
        let options = line_options(
            &self.lines,
            country,
            &parcel.categories,
            parcel.actual_g,
            parcel.volume_mm3,
        )?;
        let Some(line) = options.first().and_then(|o| self.line(&o.code)) else {
            return Ok(None);
        };
        let breakdown = quote(&QuoteRequest {
            items,
            service_fee: &self.service_fee,
            line,
            duty: &dest.duty,
            fx: fx_destination,
            fx_destination,
            insurance: None,
            guarantee: None,
        })?;
        Ok(Some((line.code.clone(), breakdown)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_tariff_is_consistent() {
        let p = Pricing::default();
        assert_eq!(p.default_line().unwrap().code, "SANDBOX-EXP");
        for line in &p.lines {
            assert_eq!(line.first_price.currency, Currency::CNY, "{}", line.code);
            for c in &line.destinations {
                assert!(
                    p.destination(c).is_some(),
                    "{} serves unknown {c}",
                    line.code
                );
            }
        }
        for d in &p.destinations {
            assert!(
                p.line("SANDBOX-EXP")
                    .unwrap()
                    .destinations
                    .contains(&d.duty.country)
            );
            assert_eq!(d.duty.rate_bps("general"), d.duty.default_rate_bps);
        }
        assert!(
            p.line("SANDBOX-ECO")
                .unwrap()
                .check("JP", &[], 1_000)
                .is_err()
        );
    }
}
