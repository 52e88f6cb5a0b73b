//! Price monitors: when they run (a cron expression, checked here once so the API, the
//! schedule and the preview agree) and what a run's observations mean (price moves beyond the
//! monitor's threshold, listings that disappear or come back, stock that runs out).
//!
//! Cron syntax is the crontab one Temporal Schedules accept: five fields
//! `minute hour day-of-month month day-of-week` (day of week 0-7, 0 and 7 both Sunday, or
//! names), seven fields `second minute hour day-of-month month day-of-week year`, or one of
//! `@yearly @annually @monthly @weekly @daily @midnight @hourly`. (Six fields are refused:
//! Temporal reads them as ending in a year, other tools as starting with seconds.) It is
//! validated with the `cron` crate, whose own syntax adds a seconds field and numbers the days
//! of the week from 1 (Sunday); [`CronSpec::parse`] translates one into the other.

use crate::order::Platform;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Longest cron expression accepted (the longest sensible crontab line is far shorter).
pub const MAX_CRON_LEN: usize = 120;

/// A validated cron expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSpec {
    /// As the user wrote it, normalised to single spaces: what Temporal receives.
    text: String,
    schedule: cron::Schedule,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(pub String);

const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl CronSpec {
    pub fn parse(expr: &str) -> Result<CronSpec, CronError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(CronError("cron expression is empty".into()));
        }
        if trimmed.len() > MAX_CRON_LEN {
            return Err(CronError(format!(
                "cron expression is longer than {MAX_CRON_LEN} characters"
            )));
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let (text, crate_expr) = if let [shorthand] = fields.as_slice()
            && shorthand.starts_with('@')
        {
            let lower = shorthand.to_ascii_lowercase();
            let expanded = match lower.as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(CronError(format!(
                        "unknown shorthand {shorthand:?}: use @yearly, @monthly, @weekly, \
                         @daily or @hourly, or five fields"
                    )));
                }
            };
            (lower, crate_syntax(expanded)?)
        } else if fields.len() == 5 || fields.len() == 7 {
            (fields.join(" "), crate_syntax(&fields.join(" "))?)
        } else {
            return Err(CronError(format!(
                "expected five fields (minute hour day-of-month month day-of-week) or seven \
                 (second minute hour day-of-month month day-of-week year), got {}",
                fields.len()
            )));
        };
        let schedule = cron::Schedule::from_str(&crate_expr)
            .map_err(|e| CronError(format!("invalid cron expression {trimmed:?}: {e}")))?;
        // Without a year field an expression that fires once fires after the epoch; reading no
        // clock keeps this module pure.
        if schedule
            .after(&chrono::DateTime::UNIX_EPOCH)
            .next()
            .is_none()
        {
            return Err(CronError(format!(
                "cron expression {trimmed:?} never fires"
            )));
        }
        Ok(CronSpec { text, schedule })
    }

    /// The expression as Temporal's `cron_string` takes it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The next `n` fire times (UTC, ms since the epoch) strictly after `after_ms`.
    pub fn next_runs(&self, after_ms: i64, n: usize) -> Vec<i64> {
        use chrono::TimeZone;
        let Some(after) = chrono::Utc.timestamp_millis_opt(after_ms).single() else {
            return Vec::new();
        };
        self.schedule
            .after(&after)
            .take(n)
            .map(|t| t.timestamp_millis())
            .collect()
    }

    /// The shortest gap between consecutive runs over the next few runs: how far behind a run
    /// may start and still be worth running (the schedule's catch-up window).
    pub fn period_ms(&self, after_ms: i64) -> i64 {
        let runs = self.next_runs(after_ms, 8);
        runs.windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or(24 * 3_600_000)
    }
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Five or seven crontab fields → the `cron` crate's seven (seconds first, year last), with
/// the day of week spelled as names so the two numberings cannot be confused.
fn crate_syntax(fields: &str) -> Result<String, CronError> {
    let f: Vec<&str> = fields.split(' ').collect();
    let (second, rest, year) = match f.as_slice() {
        [_, _, _, _, _] => ("0", &f[..], "*"),
        [second, rest @ .., year] if rest.len() == 5 => (*second, rest, *year),
        _ => return Err(CronError("expected five or seven fields".into())),
    };
    let dow = day_of_week_names(rest[4])?;
    Ok(format!(
        "{second} {} {} {} {} {dow} {year}",
        rest[0], rest[1], rest[2], rest[3]
    ))
}

/// Crontab day-of-week field (0-7, Sunday 0 or 7, names, lists, ranges, steps) with every
/// number replaced by its name. A range ending at 7 (`5-7`) becomes `FRI-SAT,SUN`.
fn day_of_week_names(field: &str) -> Result<String, CronError> {
    let day = |s: &str| -> Result<String, CronError> {
        match s.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(DAY_NAMES[(n % 7) as usize].to_owned()),
            Ok(n) => Err(CronError(format!(
                "day of week {n} is out of range (0-7, Sunday is 0 or 7)"
            ))),
            Err(_) => Ok(s.to_owned()),
        }
    };
    let mut parts = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let step = step.map(|s| format!("/{s}")).unwrap_or_default();
        match range.split_once('-') {
            Some((a, "7")) if step.is_empty() => {
                let a = day(a)?;
                if a == "SUN" {
                    parts.push("SUN-SAT".to_owned());
                } else {
                    parts.push(format!("{a}-SAT"));
                    parts.push("SUN".to_owned());
                }
            }
            Some((a, b)) => parts.push(format!("{}-{}{step}", day(a)?, day(b)?)),
            None if range == "*" || range == "?" => parts.push(format!("{range}{step}")),
            None => parts.push(format!("{}{step}", day(range)?)),
        }
    }
    Ok(parts.join(","))
}

/// One offer's state as a monitor run saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    /// Listed: unit price (fen) and units on sale where the platform reports them.
    Listed { price_fen: i64, stock: Option<i64> },
    /// Withdrawn, deleted, or that spec no longer sold.
    Gone,
}

/// What deserves a merchandiser's attention in one offer's new observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertKind {
    PriceUp {
        from_fen: i64,
        to_fen: i64,
        change_bps: i64,
    },
    PriceDown {
        from_fen: i64,
        to_fen: i64,
        change_bps: i64,
    },
    Disappeared,
    Reappeared,
    OutOfStock,
}

impl AlertKind {
    pub fn name(&self) -> &'static str {
        match self {
            AlertKind::PriceUp { .. } => "price_up",
            AlertKind::PriceDown { .. } => "price_down",
            AlertKind::Disappeared => "disappeared",
            AlertKind::Reappeared => "reappeared",
            AlertKind::OutOfStock => "out_of_stock",
        }
    }
}

/// Relative change from `from` to `to` in basis points, rounded toward zero.
pub fn change_bps(from_fen: i64, to_fen: i64) -> i64 {
    if from_fen <= 0 {
        return 0;
    }
    let diff = i128::from(to_fen) - i128::from(from_fen);
    (diff * 10_000 / i128::from(from_fen)) as i64
}

/// Whether the move from `from` to `to` exceeds `threshold_bps` of `from`, exactly (no
/// rounding: 10.01 % is beyond a 10 % threshold, 10 % is not).
pub fn moved_beyond(from_fen: i64, to_fen: i64, threshold_bps: u32) -> bool {
    if from_fen <= 0 || from_fen == to_fen {
        return from_fen != to_fen;
    }
    let diff = (i128::from(to_fen) - i128::from(from_fen)).abs();
    diff * 10_000 > i128::from(threshold_bps) * i128::from(from_fen)
}

/// Alerts raised by `now` given what was known before (`None`: never observed). A move counts
/// when it exceeds `threshold_bps` in either direction; a threshold of 0 reports every move.
pub fn assess(before: Option<Seen>, now: Seen, threshold_bps: u32) -> Vec<AlertKind> {
    let mut alerts = Vec::new();
    match (before, now) {
        (
            Some(Seen::Listed {
                price_fen: from,
                stock: was,
            }),
            Seen::Listed {
                price_fen: to,
                stock,
            },
        ) => {
            let bps = change_bps(from, to);
            if moved_beyond(from, to, threshold_bps) {
                alerts.push(if to > from {
                    AlertKind::PriceUp {
                        from_fen: from,
                        to_fen: to,
                        change_bps: bps,
                    }
                } else {
                    AlertKind::PriceDown {
                        from_fen: from,
                        to_fen: to,
                        change_bps: bps,
                    }
                });
            }
            if stock == Some(0) && was != Some(0) {
                alerts.push(AlertKind::OutOfStock);
            }
        }
        (Some(Seen::Listed { .. }), Seen::Gone) => alerts.push(AlertKind::Disappeared),
        (Some(Seen::Gone), Seen::Listed { stock, .. }) => {
            alerts.push(AlertKind::Reappeared);
            if stock == Some(0) {
                alerts.push(AlertKind::OutOfStock);
            }
        }
        (None, Seen::Listed { stock: Some(0), .. }) => alerts.push(AlertKind::OutOfStock),
        (None, Seen::Gone) => alerts.push(AlertKind::Disappeared),
        (Some(Seen::Gone), Seen::Gone) | (None, Seen::Listed { .. }) => {}
    }
    alerts
}

/// An offer a monitor watches: where it is listed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OfferRef {
    pub platform: Platform,
    pub offer_id: String,
    /// 1688 spec / Taobao sku id; empty for a listing's only spec and for Pinduoduo.
    #[serde(default)]
    pub spec_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MONDAY_2026_11_23_00_00: i64 = 1_795_392_000_000;

    #[test]
    fn five_fields_and_shorthands_parse() {
        for ok in [
            "*/5 * * * *",
            "0 3 * * *",
            "15 8,20 * * MON-FRI",
            "0 9 1 * *",
            "@hourly",
            "@Daily",
            "  0   4 * *   0 ",
            "*/2 * * * * * *",
            "0 30 9 * * MON-FRI 2026-2030",
        ] {
            CronSpec::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        assert_eq!(
            CronSpec::parse("  0   4 * *   0 ").unwrap().as_str(),
            "0 4 * * 0"
        );
        assert_eq!(CronSpec::parse("@Daily").unwrap().as_str(), "@daily");
    }

    #[test]
    fn bad_expressions_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("* * * *", "five fields"),
            ("0 0 * * * *", "seven"),
            ("61 * * * *", "invalid"),
            ("* 25 * * *", "invalid"),
            ("* * 32 * *", "invalid"),
            ("* * * 13 *", "invalid"),
            ("* * * * 8", "out of range"),
            ("* * * * FUNDAY", "invalid"),
            ("@fortnightly", "unknown shorthand"),
            ("0 0 30 2 *", "never fires"),
            ("not a cron", "five fields"),
        ] {
            let e = CronSpec::parse(bad).expect_err(bad).0;
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(
            CronSpec::parse(&"* ".repeat(80))
                .unwrap_err()
                .0
                .contains("longer")
        );
    }

    #[test]
    fn day_of_week_follows_crontab_numbering() {
        // 2026-11-23 is a Monday: crontab 1 = Monday, 0 and 7 = Sunday.
        let day = |expr: &str| {
            let t = CronSpec::parse(expr)
                .unwrap()
                .next_runs(MONDAY_2026_11_23_00_00, 1)[0];
            (t - MONDAY_2026_11_23_00_00) / 86_400_000
        };
        assert_eq!(day("0 12 * * 1"), 0);
        assert_eq!(day("0 12 * * 2"), 1);
        assert_eq!(day("0 12 * * 0"), 6);
        assert_eq!(day("0 12 * * 7"), 6);
        assert_eq!(day("0 12 * * SUN"), 6);
        assert_eq!(day("0 12 * * 5-7"), 4);
        assert_eq!(day("0 12 * * 6,0"), 5);
        let weekend = CronSpec::parse("0 12 * * 6-7")
            .unwrap()
            .next_runs(MONDAY_2026_11_23_00_00, 3);
        let days: Vec<i64> = weekend
            .iter()
            .map(|t| (t - MONDAY_2026_11_23_00_00) / 86_400_000)
            .collect();
        assert_eq!(days, vec![5, 6, 12]);
    }

    #[test]
    fn next_runs_and_period() {
        let every5 = CronSpec::parse("*/5 * * * *").unwrap();
        let runs = every5.next_runs(MONDAY_2026_11_23_00_00, 3);
        assert_eq!(
            runs,
            vec![
                MONDAY_2026_11_23_00_00 + 300_000,
                MONDAY_2026_11_23_00_00 + 600_000,
                MONDAY_2026_11_23_00_00 + 900_000
            ]
        );
        assert_eq!(every5.period_ms(MONDAY_2026_11_23_00_00), 300_000);
        let twice = CronSpec::parse("0 8,20 * * *").unwrap();
        assert_eq!(twice.period_ms(MONDAY_2026_11_23_00_00), 12 * 3_600_000);
        assert_eq!(CronSpec::parse("@hourly").unwrap().period_ms(0), 3_600_000);
        let seconds = CronSpec::parse("*/2 * * * * * *").unwrap();
        assert_eq!(seconds.period_ms(MONDAY_2026_11_23_00_00), 2_000);
        assert_eq!(
            seconds.next_runs(MONDAY_2026_11_23_00_00, 1),
            vec![MONDAY_2026_11_23_00_00 + 2_000]
        );
    }

    fn listed(price_fen: i64, stock: Option<i64>) -> Seen {
        Seen::Listed { price_fen, stock }
    }

    #[test]
    fn alerts_follow_threshold_and_listing_changes() {
        // 10 % threshold: +10 % exactly is not beyond it, +10.01 % is.
        assert!(assess(Some(listed(10_000, None)), listed(11_000, None), 1_000).is_empty());
        assert_eq!(
            assess(Some(listed(10_000, None)), listed(11_001, None), 1_000),
            vec![AlertKind::PriceUp {
                from_fen: 10_000,
                to_fen: 11_001,
                change_bps: 1_001
            }]
        );
        assert_eq!(
            assess(Some(listed(10_000, None)), listed(8_000, None), 1_000),
            vec![AlertKind::PriceDown {
                from_fen: 10_000,
                to_fen: 8_000,
                change_bps: -2_000
            }]
        );
        assert_eq!(
            assess(Some(listed(10_000, Some(5))), Seen::Gone, 1_000),
            vec![AlertKind::Disappeared]
        );
        assert_eq!(
            assess(Some(Seen::Gone), listed(10_000, Some(0)), 1_000),
            vec![AlertKind::Reappeared, AlertKind::OutOfStock]
        );
        assert_eq!(
            assess(
                Some(listed(10_000, Some(3))),
                listed(10_000, Some(0)),
                1_000
            ),
            vec![AlertKind::OutOfStock]
        );
        assert!(assess(Some(listed(10_000, Some(0))), listed(10_000, Some(0)), 0).is_empty());
        assert!(assess(Some(Seen::Gone), Seen::Gone, 0).is_empty());
        assert!(assess(None, listed(10_000, Some(9)), 0).is_empty());
        // Threshold 0 reports every move, however small.
        assert_eq!(
            assess(Some(listed(10_000, None)), listed(10_001, None), 0).len(),
            1
        );
    }

    proptest! {
        #[test]
        fn an_alert_is_raised_exactly_when_the_move_exceeds_the_threshold(
            from in 1i64..10_000_000,
            to in 1i64..10_000_000,
            threshold in 0u32..20_000,
        ) {
            let alerts = assess(Some(listed(from, None)), listed(to, None), threshold);
            let moved = from != to
                && (i128::from(to) - i128::from(from)).abs() * 10_000 > i128::from(threshold) * i128::from(from);
            prop_assert_eq!(alerts.len(), usize::from(moved));
            if let Some(AlertKind::PriceUp { change_bps: c, .. } | AlertKind::PriceDown { change_bps: c, .. }) = alerts.first() {
                prop_assert_eq!(c.signum(), (to - from).signum());
            }
        }

        #[test]
        fn every_valid_minute_hour_pair_parses_and_fires_daily(m in 0u32..60, h in 0u32..24) {
            let spec = CronSpec::parse(&format!("{m} {h} * * *")).unwrap();
            prop_assert_eq!(spec.period_ms(0), 86_400_000);
        }
    }
}
