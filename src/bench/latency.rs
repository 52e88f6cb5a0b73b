//! Latency samples and their percentiles. Samples are kept whole (a bench run records at most a
//! few hundred thousand), sorted once, and read by the nearest-rank rule, so P99.9 of 1,000
//! samples is the 999th smallest and the maximum is always a sample that happened.
//!
//! Open-loop latency is measured from each request's *intended* send time, not from when the
//! generator got round to sending it: a generator that waits for a slow server before sending
//! the next request (coordinated omission) would otherwise hide exactly the stalls it should
//! report.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Latency of one request sent open-loop: from when the schedule said to send it to when its
/// answer arrived. A request sent late (the generator or its connection pool was behind)
/// counts its wait; a request sent early (never happens with a timer) counts zero.
pub fn corrected(intended: Duration, answered: Duration) -> Duration {
    answered.saturating_sub(intended)
}

/// When the `i`-th request of an open-loop run at `rate` per second is due, from the start.
pub fn intended_send(i: u64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(i as f64 / rate)
}

/// A set of latency samples in milliseconds (fractions kept).
#[derive(Clone, Debug, Default)]
pub struct Samples {
    ms: Vec<f64>,
    sorted: bool,
}

/// The figures of one set of samples, as they go into a result file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    pub fn push(&mut self, d: Duration) {
        self.push_ms(d.as_secs_f64() * 1000.0);
    }

    pub fn push_ms(&mut self, ms: f64) {
        self.ms.push(ms.max(0.0));
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.ms.sort_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    /// The `q`-quantile (0 < q ≤ 1) by nearest rank: the smallest sample with at least
    /// `q · n` samples at or below it. 0 when there are none.
    pub fn quantile(&mut self, q: f64) -> f64 {
        self.sort();
        nearest_rank(&self.ms, q)
    }

    pub fn percentiles(&mut self) -> Percentiles {
        self.sort();
        let n = self.ms.len();
        Percentiles {
            count: n,
            p50_ms: nearest_rank(&self.ms, 0.50),
            p90_ms: nearest_rank(&self.ms, 0.90),
            p99_ms: nearest_rank(&self.ms, 0.99),
            p999_ms: nearest_rank(&self.ms, 0.999),
            max_ms: self.ms.last().copied().unwrap_or(0.0),
            mean_ms: if n == 0 {
                0.0
            } else {
                self.ms.iter().sum::<f64>() / n as f64
            },
        }
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = Samples::new();
        for ms in iter {
            s.push_ms(ms);
        }
        s
    }
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let n = sorted.len();
    let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_sample_that_happened() {
        let mut s: Samples = (1..=1000).map(f64::from).collect();
        let p = s.percentiles();
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_ms, 500.0);
        assert_eq!(p.p90_ms, 900.0);
        assert_eq!(p.p99_ms, 990.0);
        assert_eq!(p.p999_ms, 999.0);
        assert_eq!(p.max_ms, 1000.0);
        assert_eq!(p.mean_ms, 500.5);
    }

    #[test]
    fn few_samples_and_none() {
        let mut s: Samples = [30.0, 10.0, 20.0].into_iter().collect();
        assert_eq!(s.quantile(0.5), 20.0);
        assert_eq!(s.quantile(0.99), 30.0, "the top rank is the maximum");
        assert_eq!(
            s.quantile(0.0),
            10.0,
            "rank 0 rounds up to the first sample"
        );
        let mut empty = Samples::new();
        assert_eq!(empty.percentiles(), Percentiles::default());
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        let mut a: Samples = [5.0, 1.0, 9.0, 3.0].into_iter().collect();
        let mut b: Samples = [1.0, 3.0, 5.0, 9.0].into_iter().collect();
        assert_eq!(a.percentiles(), b.percentiles());
        a.push_ms(100.0);
        assert_eq!(a.quantile(1.0), 100.0, "a push after reading re-sorts");
    }

    #[test]
    fn the_schedule_spaces_requests_by_the_rate() {
        assert_eq!(intended_send(0, 1000.0), Duration::ZERO);
        assert_eq!(intended_send(500, 1000.0), Duration::from_millis(500));
        assert_eq!(intended_send(3, 2.0), Duration::from_millis(1500));
        assert_eq!(intended_send(7, 0.0), Duration::ZERO);
    }

    /// A server that stalls for a second: a closed-loop view sees one slow answer, the
    /// corrected view sees every request that was due during the stall wait for it.
    #[test]
    fn a_stall_counts_for_every_request_due_during_it() {
        let rate = 100.0; // one request every 10 ms
        let mut open = Samples::new();
        let mut closed = Samples::new();
        // The server answers in 1 ms except that it is frozen from 100 ms to 1100 ms; the
        // generator is held back by it (one connection) and sends each request when it can.
        let mut free_at = Duration::ZERO;
        for i in 0..200u64 {
            let due = intended_send(i, rate);
            let sent = due.max(free_at);
            let start = if (Duration::from_millis(100)..Duration::from_millis(1100)).contains(&sent)
            {
                Duration::from_millis(1100)
            } else {
                sent
            };
            let answered = start + Duration::from_millis(1);
            free_at = answered;
            open.push(corrected(due, answered));
            closed.push(answered - sent);
        }
        assert!(
            closed.quantile(0.99) < 2.0,
            "the closed-loop view hides the stall"
        );
        // 100 requests were due during the stall: a tenth of them waited most of a second.
        assert!(open.quantile(0.99) > 900.0, "{}", open.quantile(0.99));
        assert!(open.quantile(0.5) > 100.0, "{}", open.quantile(0.5));
        assert_eq!(
            corrected(Duration::from_millis(5), Duration::from_millis(3)),
            Duration::ZERO
        );
    }
}
