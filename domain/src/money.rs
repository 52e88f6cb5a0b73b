//! Exact money: integer minor units plus an ISO-4217 currency. Every rounding in the system goes
//! through [`round_half_even`], so there is exactly one rounding rule to audit.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Currencies we quote, charge or buy in. Adding one means adding its minor-unit exponent here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Currency {
    CNY,
    EUR,
    USD,
    GBP,
    JPY,
    AUD,
    CAD,
    CHF,
    HKD,
    NZD,
    SGD,
    KRW,
    SEK,
    NOK,
    DKK,
    PLN,
}

impl Currency {
    pub const ALL: [Currency; 16] = [
        Currency::CNY,
        Currency::EUR,
        Currency::USD,
        Currency::GBP,
        Currency::JPY,
        Currency::AUD,
        Currency::CAD,
        Currency::CHF,
        Currency::HKD,
        Currency::NZD,
        Currency::SGD,
        Currency::KRW,
        Currency::SEK,
        Currency::NOK,
        Currency::DKK,
        Currency::PLN,
    ];

    /// Number of decimal digits of the minor unit (ISO 4217).
    pub fn exponent(self) -> u32 {
        match self {
            Currency::JPY | Currency::KRW => 0,
            _ => 2,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Currency::CNY => "CNY",
            Currency::EUR => "EUR",
            Currency::USD => "USD",
            Currency::GBP => "GBP",
            Currency::JPY => "JPY",
            Currency::AUD => "AUD",
            Currency::CAD => "CAD",
            Currency::CHF => "CHF",
            Currency::HKD => "HKD",
            Currency::NZD => "NZD",
            Currency::SGD => "SGD",
            Currency::KRW => "KRW",
            Currency::SEK => "SEK",
            Currency::NOK => "NOK",
            Currency::DKK => "DKK",
            Currency::PLN => "PLN",
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| MoneyError::UnsupportedCurrency(s.chars().take(8).collect()))
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency mismatch: {0} vs {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount overflow")]
    Overflow,
    #[error("unsupported currency {0:?}")]
    UnsupportedCurrency(String),
    #[error("invalid decimal {0:?}")]
    InvalidDecimal(String),
    #[error("exchange rate is for {0}->{1}, not {2}")]
    WrongRate(Currency, Currency, Currency),
    #[error("amount {0:?} is finer than the minor unit (at most {1} decimals)")]
    FinerThanMinorUnit(String, u32),
    #[error("amount {0:?} is negative")]
    Negative(String),
}

/// An exact amount: `minor` units of `currency` (fen for CNY, cents for USD, yen for JPY).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// Divide `num / den` rounding half to even ("banker's rounding"): the single rounding rule.
/// `den` must be positive.
pub fn round_half_even(num: i128, den: i128) -> i128 {
    assert!(den > 0, "rounding denominator must be positive");
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => {
            if q % 2 == 0 {
                q
            } else {
                q + 1
            }
        }
    }
}

fn narrow(v: i128) -> Result<i64, MoneyError> {
    i64::try_from(v).map_err(|_| MoneyError::Overflow)
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    pub const fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn times(self, qty: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(qty))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// `self × bps / 10 000`, rounded by the one rule.
    pub fn basis_points(self, bps: u32) -> Result<Money, MoneyError> {
        let v = round_half_even(i128::from(self.minor) * i128::from(bps), 10_000);
        Ok(Money::new(narrow(v)?, self.currency))
    }

    pub fn max(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        Ok(if other.minor > self.minor {
            other
        } else {
            self
        })
    }

    pub fn sum(
        currency: Currency,
        items: impl IntoIterator<Item = Money>,
    ) -> Result<Money, MoneyError> {
        items
            .into_iter()
            .try_fold(Money::zero(currency), Money::checked_add)
    }

    /// Split this amount in proportion to `weights` (e.g. a parcel's cost across its orders by
    /// their estimates): each share rounds down and the minor units left over go, one each, to
    /// the largest remainders, so the shares always add up to the whole. Equal weights when all
    /// are zero.
    pub fn allocate(self, weights: &[i64]) -> Result<Vec<Money>, MoneyError> {
        if weights.is_empty() {
            return Ok(Vec::new());
        }
        if weights.iter().any(|w| *w < 0) {
            return Err(MoneyError::Overflow);
        }
        let ones;
        let weights = if weights.iter().all(|w| *w == 0) {
            ones = vec![1i64; weights.len()];
            &ones[..]
        } else {
            weights
        };
        let total: i128 = weights.iter().map(|w| i128::from(*w)).sum();
        let amount = i128::from(self.minor);
        let mut shares: Vec<(usize, i128, i128)> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let num = amount * i128::from(*w);
                (i, num.div_euclid(total), num.rem_euclid(total))
            })
            .collect();
        let mut left = amount - shares.iter().map(|s| s.1).sum::<i128>();
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2).then(a.cmp(b)));
        for i in order {
            if left <= 0 {
                break;
            }
            shares[i].1 += 1;
            left -= 1;
        }
        shares
            .into_iter()
            .map(|(_, v, _)| Ok(Money::new(narrow(v)?, self.currency)))
            .collect()
    }

    /// Convert with a locked rate; rounds once, by the one rule.
    pub fn convert(self, rate: &FxRate) -> Result<Money, MoneyError> {
        if rate.from != self.currency {
            return Err(MoneyError::WrongRate(rate.from, rate.to, self.currency));
        }
        let exp_diff = i64::from(rate.to.exponent()) - i64::from(rate.from.exponent());
        let mut num = i128::from(self.minor) * i128::from(rate.num);
        let mut den = i128::from(rate.den);
        if exp_diff >= 0 {
            num *= 10i128.pow(exp_diff as u32);
        } else {
            den *= 10i128.pow((-exp_diff) as u32);
        }
        Ok(Money::new(narrow(round_half_even(num, den))?, rate.to))
    }

    fn same(self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            write!(f, "{sign}{abs} {}", self.currency)
        } else {
            let scale = 10u64.pow(exp);
            write!(
                f,
                "{sign}{}.{:0width$} {}",
                abs / scale,
                abs % scale,
                self.currency,
                width = exp as usize
            )
        }
    }
}

/// Scale of the integers that hold exchange rates: 10^-6 (ECB publishes at most 4 decimals).
pub const RATE_SCALE: u64 = 1_000_000;

/// Parse a non-negative decimal such as `"7.8120"` into millionths, exactly.
pub fn parse_rate_e6(s: &str) -> Result<u64, MoneyError> {
    let bad = || MoneyError::InvalidDecimal(s.chars().take(32).collect());
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty()
        || frac.len() > 6
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let int: u64 = int.parse().map_err(|_| bad())?;
    let frac_v: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let frac_v = frac_v * 10u64.pow(6 - frac.len() as u32);
    int.checked_mul(RATE_SCALE)
        .and_then(|v| v.checked_add(frac_v))
        .ok_or_else(bad)
}

/// Parse a vendor's decimal amount in major units (`"6.15"` yuan) into minor units (615 fen) of
/// a currency with `exponent` decimals, exactly: no floating point, no rounding. Digits finer than
/// the minor unit are refused unless they are zeros (`"6.150"` is 615, `"6.155"` an error); so is
/// a sign, an exponent, a grouping separator, or anything that is not a plain decimal. This is
/// the one place a vendor amount text becomes an integer.
pub fn parse_major(text: &str, exponent: u32) -> Result<i64, MoneyError> {
    let shown = || text.chars().take(32).collect::<String>();
    let s = text.trim();
    if let Some(rest) = s.strip_prefix('-')
        && !rest.is_empty()
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    {
        return Err(MoneyError::Negative(shown()));
    }
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(MoneyError::InvalidDecimal(shown()));
    }
    let cut = frac.len().min(exponent as usize);
    let (kept, finer) = frac.split_at(cut);
    if finer.bytes().any(|b| b != b'0') {
        return Err(MoneyError::FinerThanMinorUnit(shown(), exponent));
    }
    let scale = 10i64.pow(exponent);
    let int: i64 = int.parse().map_err(|_| MoneyError::Overflow)?;
    let kept_v: i64 = if kept.is_empty() {
        0
    } else {
        kept.parse()
            .map_err(|_| MoneyError::InvalidDecimal(shown()))?
    };
    let kept_v = kept_v * 10i64.pow(exponent - kept.len() as u32);
    int.checked_mul(scale)
        .and_then(|v| v.checked_add(kept_v))
        .ok_or(MoneyError::Overflow)
}

/// A locked exchange rate: 1 unit of `from` = `num / den` units of `to` (major units).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxRate {
    pub from: Currency,
    pub to: Currency,
    pub num: u64,
    pub den: u64,
}

impl FxRate {
    pub fn identity(c: Currency) -> Self {
        FxRate {
            from: c,
            to: c,
            num: 1,
            den: 1,
        }
    }

    /// Cross rate through EUR from ECB "units per 1 EUR" quotes (in millionths); EUR itself is 1.
    pub fn cross_via_eur(
        from: Currency,
        from_per_eur_e6: u64,
        to: Currency,
        to_per_eur_e6: u64,
    ) -> Self {
        FxRate {
            from,
            to,
            num: to_per_eur_e6,
            den: from_per_eur_e6,
        }
    }

    /// The rate as a decimal string with 6 decimals, for people and receipts.
    pub fn decimal(&self) -> String {
        let v = round_half_even(
            i128::from(self.num) * i128::from(RATE_SCALE),
            i128::from(self.den),
        );
        format!(
            "{}.{:06}",
            v / i128::from(RATE_SCALE),
            v % i128::from(RATE_SCALE)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_major_units_exactly() {
        assert_eq!(parse_major("6.15", 2), Ok(615));
        assert_eq!(parse_major("6.1", 2), Ok(610));
        assert_eq!(parse_major("18", 2), Ok(1800));
        assert_eq!(parse_major("0.01", 2), Ok(1));
        assert_eq!(parse_major("6.150", 2), Ok(615));
        assert_eq!(parse_major(" 45.50 ", 2), Ok(4550));
        assert_eq!(parse_major("1200", 0), Ok(1200));
        // 6.15 has no exact binary form; a float path would give 614 or 615 by luck.
        assert_eq!(parse_major("0.29", 2), Ok(29));
        assert_eq!(parse_major("1.15", 2), Ok(115));
    }

    #[test]
    fn refuses_what_it_would_have_to_round_or_guess() {
        let finer = |s: &str| MoneyError::FinerThanMinorUnit(s.into(), 2);
        assert_eq!(parse_major("6.155", 2), Err(finer("6.155")));
        assert_eq!(
            parse_major("6.1500000000000001", 2),
            Err(finer("6.1500000000000001"))
        );
        assert_eq!(
            parse_major("1.5", 0),
            Err(MoneyError::FinerThanMinorUnit("1.5".into(), 0))
        );
        assert_eq!(parse_major("-1", 2), Err(MoneyError::Negative("-1".into())));
        assert_eq!(
            parse_major("-0.50", 2),
            Err(MoneyError::Negative("-0.50".into()))
        );
        for bad in [
            "", "abc", "6.", ".5", "6,15", "1e2", "+6.15", "6.1.5", "0x10", "--1", "NaN",
        ] {
            assert_eq!(
                parse_major(bad, 2),
                Err(MoneyError::InvalidDecimal(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_major("99999999999999999999", 2),
            Err(MoneyError::Overflow)
        );
        assert_eq!(
            parse_major("92233720368547758.08", 2),
            Err(MoneyError::Overflow)
        );
    }

    proptest! {
        #[test]
        fn every_fen_amount_round_trips_through_its_yuan_text(fen in 0i64..=i64::MAX / 100) {
            let text = format!("{}.{:02}", fen / 100, fen % 100);
            prop_assert_eq!(parse_major(&text, 2), Ok(fen));
        }
    }

    #[test]
    fn half_even_rounding() {
        assert_eq!(round_half_even(5, 2), 2); // 2.5 -> 2
        assert_eq!(round_half_even(7, 2), 4); // 3.5 -> 4
        assert_eq!(round_half_even(-5, 2), -2);
        assert_eq!(round_half_even(-7, 2), -4);
        assert_eq!(round_half_even(10, 3), 3);
        assert_eq!(round_half_even(11, 3), 4);
    }

    #[test]
    fn converts_cny_to_usd_and_jpy_through_eur() {
        // ECB: 1 EUR = 7.8120 CNY, 1.0868 USD, 162.47 JPY
        let cny = parse_rate_e6("7.8120").unwrap();
        let usd = parse_rate_e6("1.0868").unwrap();
        let jpy = parse_rate_e6("162.47").unwrap();
        let r = FxRate::cross_via_eur(Currency::CNY, cny, Currency::USD, usd);
        // 100.00 CNY = 100 * 1.0868 / 7.8120 = 13.9119... USD
        assert_eq!(
            Money::new(10_000, Currency::CNY).convert(&r).unwrap(),
            Money::new(1391, Currency::USD)
        );
        let r = FxRate::cross_via_eur(Currency::CNY, cny, Currency::JPY, jpy);
        // 100.00 CNY = 2079.76... JPY -> 2080 (exponent 0)
        assert_eq!(
            Money::new(10_000, Currency::CNY).convert(&r).unwrap(),
            Money::new(2080, Currency::JPY)
        );
        assert_eq!(r.decimal(), "20.797491");
    }

    #[test]
    fn refuses_mixed_currencies_and_bad_input() {
        let a = Money::new(1, Currency::CNY);
        let b = Money::new(1, Currency::USD);
        assert!(matches!(
            a.checked_add(b),
            Err(MoneyError::CurrencyMismatch(..))
        ));
        assert!("XXX".parse::<Currency>().is_err());
        assert!(parse_rate_e6("1.2345678").is_err());
        assert!(parse_rate_e6("-1").is_err());
        assert!(parse_rate_e6("").is_err());
        assert!(parse_rate_e6(".5").is_err());
        assert!(Money::new(i64::MAX, Currency::CNY).checked_add(a).is_err());
    }

    #[test]
    fn displays_minor_units() {
        assert_eq!(Money::new(-1234, Currency::USD).to_string(), "-12.34 USD");
        assert_eq!(Money::new(5, Currency::CNY).to_string(), "0.05 CNY");
        assert_eq!(Money::new(1500, Currency::JPY).to_string(), "1500 JPY");
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(a in -1_000_000_000_000i64..1_000_000_000_000, b in -1_000_000_000_000i64..1_000_000_000_000) {
            let x = Money::new(a, Currency::EUR);
            let y = Money::new(b, Currency::EUR);
            prop_assert_eq!(x.checked_add(y).unwrap().checked_sub(y).unwrap(), x);
            prop_assert_eq!(x.checked_add(y).unwrap(), y.checked_add(x).unwrap());
        }

        #[test]
        fn rounding_error_is_at_most_half_a_unit(num in -1_000_000_000_000i128..1_000_000_000_000, den in 1i128..1_000_000) {
            let q = round_half_even(num, den);
            prop_assert!((q * den - num).abs() * 2 <= den);
        }

        #[test]
        fn conversion_is_monotonic(a in 0i64..10_000_000_000, b in 0i64..10_000_000_000, rate in 1u64..500_000_000) {
            let r = FxRate::cross_via_eur(Currency::CNY, 7_812_000, Currency::USD, rate);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let lo = Money::new(lo, Currency::CNY).convert(&r).unwrap();
            let hi = Money::new(hi, Currency::CNY).convert(&r).unwrap();
            prop_assert!(lo.minor <= hi.minor);
        }

        #[test]
        fn basis_points_split_never_creates_money(a in 0i64..1_000_000_000_000, bps in 0u32..=10_000) {
            let m = Money::new(a, Currency::CNY);
            let part = m.basis_points(bps).unwrap();
            let rest = m.basis_points(10_000 - bps).unwrap();
            prop_assert!((part.minor + rest.minor - a).abs() <= 1);
        }

        #[test]
        fn rate_parse_roundtrip(int in 0u64..100_000, frac in 0u64..10_000) {
            let s = format!("{int}.{frac:04}");
            prop_assert_eq!(parse_rate_e6(&s).unwrap(), int * RATE_SCALE + frac * 100);
        }
    }

    #[test]
    fn allocation_adds_up_and_follows_the_weights() {
        let m = Money::new(1_000, Currency::USD);
        let parts = m.allocate(&[1, 1, 1]).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.minor).collect::<Vec<_>>(),
            [334, 333, 333]
        );
        let parts = m.allocate(&[3_000, 1_000]).unwrap();
        assert_eq!(
            parts.iter().map(|p| p.minor).collect::<Vec<_>>(),
            [750, 250]
        );
        assert_eq!(m.allocate(&[0, 0]).unwrap()[0].minor, 500);
        assert!(m.allocate(&[]).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn allocation_is_exact(amount in 0i64..10_000_000, weights in proptest::collection::vec(0i64..1_000_000, 1..8)) {
            let parts = Money::new(amount, Currency::EUR).allocate(&weights).unwrap();
            prop_assert_eq!(parts.len(), weights.len());
            prop_assert_eq!(parts.iter().map(|p| p.minor).sum::<i64>(), amount);
            let total: i64 = weights.iter().sum();
            if total > 0 {
                for (p, w) in parts.iter().zip(&weights) {
                    let exact = amount as f64 * *w as f64 / total as f64;
                    prop_assert!((p.minor as f64 - exact).abs() < 1.0 + 1e-9);
                }
            }
        }
    }
}
