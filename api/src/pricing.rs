//! Tariffs the quote uses: service fee, the default international line and duty rules by
//! destination. Demo values, configurable; the arithmetic lives in `procure_domain::quote`.

use procure_domain::{
    Currency, Money,
    quote::{DutyRule, ServiceFee, ShippingLine},
};

#[derive(Clone, Debug)]
pub struct Destination {
    pub duty: DutyRule,
}

#[derive(Clone, Debug)]
pub struct Pricing {
    pub service_fee: ServiceFee,
    pub line: ShippingLine,
    pub destinations: Vec<Destination>,
}

impl Pricing {
    pub fn destination(&self, country: &str) -> Option<&Destination> {
        self.destinations.iter().find(|d| d.duty.country == country)
    }
}

fn duty(country: &str, currency: Currency, de_minimis_minor: i64, rate_bps: u32) -> Destination {
    Destination {
        duty: DutyRule {
            country: country.into(),
            de_minimis: Money::new(de_minimis_minor, currency),
            rate_bps,
        },
    }
}

impl Default for Pricing {
    fn default() -> Self {
        let cny = |v| Money::new(v, Currency::CNY);
        Pricing {
            service_fee: ServiceFee {
                rate_bps: 500,
                minimum: cny(1_000),
            },
            line: ShippingLine {
                code: "SANDBOX-EXP".into(),
                first_weight_g: 500,
                first_price: cny(9_000),
                step_g: 500,
                step_price: cny(3_000),
                divisor_cm3_per_kg: 6_000,
            },
            destinations: vec![
                duty("US", Currency::USD, 80_000, 1_000),
                duty("GB", Currency::GBP, 13_500, 2_000),
                duty("DE", Currency::EUR, 15_000, 1_900),
                duty("FR", Currency::EUR, 15_000, 2_000),
                duty("NL", Currency::EUR, 15_000, 2_100),
                duty("AU", Currency::AUD, 100_000, 1_000),
                duty("CA", Currency::CAD, 15_000, 500),
                duty("JP", Currency::JPY, 10_000, 1_000),
            ],
        }
    }
}
