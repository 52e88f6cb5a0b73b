//! procure's own Prometheus series: one registry per process, the names and labels in one
//! place, and the text exposition a scrape reads. Recording sites call the typed methods of
//! [`Metrics`] on [`global()`]; nothing else registers a metric.
//!
//! Two kinds of series:
//! - **Events** (counters and histograms) are recorded where they happen: purchase attempts in
//!   the worker, adapter calls in every process that calls a vendor, webhook deliveries in the
//!   API (the providers' to us, and ours to subscribers).
//! - **Levels** (gauges: orders by state, the outbox, the buyer-account pool) are read from the
//!   store when a scrape arrives ([`Metrics::set_levels`]), by the API process only, so that a
//!   deployment with many workers does not report the same rows many times.
//!
//! The catalogue of series, with their labels, is `docs/observability.md`.

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use std::{sync::OnceLock, time::Duration};

/// Seconds from an order's acceptance to a purchase: minutes while orders wait for payment,
/// hours when a person buys.
const ORDER_TO_PURCHASE_BUCKETS: &[f64] = &[
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    24.0 * 3600.0,
];
/// Seconds of one vendor call, retries and backoff included.
const ADAPTER_CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// The series of one process.
pub struct Metrics {
    registry: Registry,
    orders: IntGaugeVec,
    order_to_purchase: HistogramVec,
    purchase_attempts: IntCounterVec,
    adapter_calls: HistogramVec,
    outbox_backlog: IntGauge,
    outbox_oldest_age: Gauge,
    outbox_dead_letters: IntGauge,
    webhook_deliveries: IntCounterVec,
    event_webhook_attempts: HistogramVec,
    event_webhook_endpoints_disabled: IntCounterVec,
    buyer_accounts: IntGaugeVec,
    monitor_runs: IntCounterVec,
    monitor_alerts: IntCounterVec,
    /// One handle per level, so a cached read costs one atomic add.
    product_reads: [IntCounter; 4],
    product_cache_shared_errors: IntCounter,
}

/// The process's series, created on first use.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// What a purchase attempt came to (`procure_purchase_attempts_total{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PurchaseOutcome {
    Purchased,
    /// The buyer account was restricted by the marketplace's risk control; another is tried.
    AccountRestricted,
    /// No buyer account could take the order (capped, cooling down, restricted).
    NoAccount,
    /// Out of stock or the listing is gone: the next supplier is tried.
    Unavailable,
    /// The price is above the customer's tolerance: the customer is asked.
    PriceAbove,
    /// A transient failure: the activity is retried.
    Retryable,
    /// Refused for good: the next supplier is tried.
    Rejected,
    /// A platform bought by a person: a purchaser task was opened (Pinduoduo).
    Assisted,
    /// The purchaser task's deadline passed without a purchase.
    Expired,
}

impl PurchaseOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseOutcome::Purchased => "purchased",
            PurchaseOutcome::AccountRestricted => "account_restricted",
            PurchaseOutcome::NoAccount => "no_account",
            PurchaseOutcome::Unavailable => "unavailable",
            PurchaseOutcome::PriceAbove => "price_above",
            PurchaseOutcome::Retryable => "retryable",
            PurchaseOutcome::Rejected => "rejected",
            PurchaseOutcome::Assisted => "assisted",
            PurchaseOutcome::Expired => "expired",
        }
    }
}

/// Where a product read was answered from (`procure_product_reads_total{level}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLevel {
    /// This replica's in-process cache.
    Memory,
    /// The cache shared between replicas (Redis).
    Shared,
    /// The store: no cache held it.
    Store,
    /// No such product.
    Missing,
}

impl ReadLevel {
    pub const ALL: [ReadLevel; 4] = [
        ReadLevel::Memory,
        ReadLevel::Shared,
        ReadLevel::Store,
        ReadLevel::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReadLevel::Memory => "memory",
            ReadLevel::Shared => "shared",
            ReadLevel::Store => "store",
            ReadLevel::Missing => "missing",
        }
    }
}

/// How one vendor call ended at the HTTP level (`procure_adapter_call_seconds{outcome}`); a
/// business error inside a 200 answer is `ok` here and shows in the purchase outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    Ok,
    /// A 4xx answer.
    ClientError,
    /// A 5xx answer (after the in-call retries).
    ServerError,
    /// No answer within the deadline: the outcome is unknown.
    Timeout,
    /// No connection.
    Unreachable,
    /// The connection broke mid-exchange: the request may have been processed.
    Broken,
    /// The request could not be built (a configuration error).
    Invalid,
}

impl CallOutcome {
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=399 => CallOutcome::Ok,
            400..=499 => CallOutcome::ClientError,
            _ => CallOutcome::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Ok => "ok",
            CallOutcome::ClientError => "client_error",
            CallOutcome::ServerError => "server_error",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Unreachable => "unreachable",
            CallOutcome::Broken => "broken",
            CallOutcome::Invalid => "invalid",
        }
    }
}

/// What the API did with one inbound provider webhook
/// (`procure_webhook_deliveries_total{source, outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Verified and acted on.
    Handled,
    /// Verified, but about nothing we act on (another event type, an unknown intent).
    Ignored,
    /// Verified, and already handled before.
    Duplicate,
    /// The signature (or its timestamp) was refused.
    Rejected,
    /// The same signed delivery again within the replay window.
    Replayed,
    /// Not processed (bad body, provider unreachable, store error): the provider retries.
    Failed,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Handled => "handled",
            WebhookOutcome::Ignored => "ignored",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::Rejected => "rejected",
            WebhookOutcome::Replayed => "replayed",
            WebhookOutcome::Failed => "failed",
        }
    }
}

/// How one attempt to deliver an event to a subscriber's endpoint ended
/// (`procure_event_webhook_attempt_seconds{outcome}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventWebhookOutcome {
    /// Answered 2xx.
    Delivered,
    /// Failed; the delivery is retried later.
    Failed,
    /// Failed, and the delivery's retry window is over: it is given up (a replay sends it again).
    GaveUp,
}

impl EventWebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EventWebhookOutcome::Delivered => "delivered",
            EventWebhookOutcome::Failed => "failed",
            EventWebhookOutcome::GaveUp => "gave_up",
        }
    }
}

/// The levels read from the store for one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Levels {
    /// Orders per state name (every state the store knows, zeros included).
    pub orders_by_state: Vec<(String, i64)>,
    /// Outbox rows not delivered yet (dead letters excluded).
    pub outbox_backlog: i64,
    /// Age of the oldest undelivered outbox row; zero when there is none.
    pub outbox_oldest_age: Duration,
    /// Dead letters awaiting an operator.
    pub outbox_dead_letters: i64,
    /// Buyer accounts per (platform, status), status one of `active`, `cooling_down`,
    /// `at_cap`, `disabled`.
    pub buyer_accounts: Vec<(String, &'static str, i64)>,
}

impl Metrics {
    fn new() -> Self {
        let registry = Registry::new();
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("procure's metric names are unique");
            c
        }
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"),
            )
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(
                &registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"),
            )
        };
        let histogram_vec = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                    labels,
                )
                .expect("valid histogram"),
            )
        };
        Metrics {
            orders: gauge_vec("procure_orders", "Orders by state.", &["state"]),
            order_to_purchase: histogram_vec(
                "procure_order_to_purchase_seconds",
                "Seconds from an order's acceptance to the purchase of one of its lines.",
                &["platform"],
                ORDER_TO_PURCHASE_BUCKETS,
            ),
            purchase_attempts: counter_vec(
                "procure_purchase_attempts_total",
                "Purchase attempts by platform and outcome.",
                &["platform", "outcome"],
            ),
            adapter_calls: histogram_vec(
                "procure_adapter_call_seconds",
                "Vendor calls (in-call retries included) by vendor, operation and outcome.",
                &["vendor", "operation", "outcome"],
                ADAPTER_CALL_BUCKETS,
            ),
            outbox_backlog: reg(
                &registry,
                IntGauge::new(
                    "procure_outbox_backlog",
                    "Outbox rows not delivered to Temporal yet (dead letters excluded).",
                )
                .expect("valid gauge"),
            ),
            outbox_oldest_age: reg(
                &registry,
                Gauge::new(
                    "procure_outbox_oldest_age_seconds",
                    "Age of the oldest undelivered outbox row (0 when none).",
                )
                .expect("valid gauge"),
            ),
            outbox_dead_letters: reg(
                &registry,
                IntGauge::new(
                    "procure_outbox_dead_letters",
                    "Outbox dead letters awaiting an operator.",
                )
                .expect("valid gauge"),
            ),
            webhook_deliveries: counter_vec(
                "procure_webhook_deliveries_total",
                "Inbound provider webhooks by source and outcome.",
                &["source", "outcome"],
            ),
            event_webhook_attempts: histogram_vec(
                "procure_event_webhook_attempt_seconds",
                "Attempts to deliver an event to a subscriber's webhook endpoint, by outcome (delivered, failed, gave_up).",
                &["outcome"],
                ADAPTER_CALL_BUCKETS,
            ),
            event_webhook_endpoints_disabled: counter_vec(
                "procure_event_webhook_endpoints_disabled_total",
                "Webhook endpoints disabled after failing for days or answering 410 Gone.",
                &[],
            ),
            buyer_accounts: gauge_vec(
                "procure_buyer_accounts",
                "Buyer accounts by platform and status (active, cooling_down, at_cap, disabled).",
                &["platform", "status"],
            ),
            monitor_runs: counter_vec(
                "procure_price_monitor_runs_total",
                "Price-monitor runs by outcome (recorded, skipped).",
                &["outcome"],
            ),
            monitor_alerts: counter_vec(
                "procure_price_monitor_alerts_total",
                "Price-monitor alerts raised.",
                &[],
            ),
            product_reads: {
                let reads = counter_vec(
                    "procure_product_reads_total",
                    "Product reads by where they were answered from (memory, shared, store, missing).",
                    &["level"],
                );
                ReadLevel::ALL.map(|l| reads.with_label_values(&[l.as_str()]))
            },
            product_cache_shared_errors: reg(
                &registry,
                IntCounter::new(
                    "procure_product_cache_shared_errors_total",
                    "Calls to the shared product cache (Redis) that failed or timed out; reads went on to the store.",
                )
                .expect("valid counter"),
            ),
            registry,
        }
    }

    pub fn product_read(&self, level: ReadLevel) {
        self.product_reads[level as usize].inc();
    }

    pub fn product_cache_shared_error(&self) {
        self.product_cache_shared_errors.inc();
    }

    pub fn purchase_attempt(&self, platform: &str, outcome: PurchaseOutcome) {
        self.purchase_attempts
            .with_label_values(&[platform, outcome.as_str()])
            .inc();
    }

    /// A line was bought on `platform` at `now_ms`, for an order accepted at `accepted_at_ms`
    /// (`None`: unknown, the latency sample is lost but the purchase is counted).
    pub fn purchased(&self, platform: &str, accepted_at_ms: Option<i64>, now_ms: i64) {
        self.purchase_attempt(platform, PurchaseOutcome::Purchased);
        if let Some(accepted) = accepted_at_ms {
            let waited = now_ms.saturating_sub(accepted).max(0) as f64 / 1000.0;
            self.order_to_purchase
                .with_label_values(&[platform])
                .observe(waited);
        }
    }

    pub fn adapter_call(
        &self,
        vendor: &str,
        operation: &str,
        outcome: CallOutcome,
        elapsed: Duration,
    ) {
        self.adapter_calls
            .with_label_values(&[vendor, operation, outcome.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    pub fn webhook_delivery(&self, source: &str, outcome: WebhookOutcome) {
        self.webhook_deliveries
            .with_label_values(&[source, outcome.as_str()])
            .inc();
    }

    /// One attempt to deliver an event to a subscriber, with how long it took.
    pub fn event_webhook_attempt(&self, outcome: EventWebhookOutcome, elapsed: Duration) {
        self.event_webhook_attempts
            .with_label_values(&[outcome.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// A subscriber's endpoint was disabled by its failures.
    pub fn event_webhook_endpoint_disabled(&self) {
        self.event_webhook_endpoints_disabled
            .with_label_values(&[] as &[&str])
            .inc();
    }

    pub fn monitor_run(&self, recorded: bool, alerts: usize) {
        let outcome = if recorded { "recorded" } else { "skipped" };
        self.monitor_runs.with_label_values(&[outcome]).inc();
        self.monitor_alerts
            .with_label_values(&[] as &[&str])
            .inc_by(alerts as u64);
    }

    /// Replace the levels with a fresh reading from the store. Labels that disappeared (an
    /// account's platform gone) are dropped, so a gauge never reports a stale level.
    pub fn set_levels(&self, levels: &Levels) {
        self.orders.reset();
        for (state, n) in &levels.orders_by_state {
            self.orders.with_label_values(&[state.as_str()]).set(*n);
        }
        self.outbox_backlog.set(levels.outbox_backlog);
        self.outbox_oldest_age
            .set(levels.outbox_oldest_age.as_secs_f64());
        self.outbox_dead_letters.set(levels.outbox_dead_letters);
        self.buyer_accounts.reset();
        for (platform, status, n) in &levels.buyer_accounts {
            self.buyer_accounts
                .with_label_values(&[platform.as_str(), status])
                .set(*n);
        }
    }

    /// The text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn events_are_counted_with_their_labels() {
        let m = Metrics::new();
        m.purchase_attempt("1688", PurchaseOutcome::Purchased);
        m.purchase_attempt("taobao", PurchaseOutcome::AccountRestricted);
        m.webhook_delivery("stripe", WebhookOutcome::Rejected);
        m.adapter_call(
            "1688",
            "preview",
            CallOutcome::of_status(503),
            Duration::from_millis(30),
        );
        m.purchased("1688", Some(10_000), 13_000);
        m.monitor_run(true, 2);
        let text = m.render();
        assert_eq!(
            sample(
                &text,
                r#"procure_purchase_attempts_total{outcome="purchased",platform="1688"}"#
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_purchase_attempts_total{outcome="account_restricted",platform="taobao"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_webhook_deliveries_total{outcome="rejected",source="stripe"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_adapter_call_seconds_bucket{operation="preview",outcome="server_error",vendor="1688",le="0.05"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_order_to_purchase_seconds_bucket{platform="1688",le="2"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_order_to_purchase_seconds_bucket{platform="1688",le="5"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_price_monitor_runs_total{outcome="recorded"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "procure_price_monitor_alerts_total"),
            Some(2.0)
        );
    }

    #[test]
    fn levels_replace_the_previous_reading() {
        let m = Metrics::new();
        m.set_levels(&Levels {
            orders_by_state: vec![("AwaitingPayment".into(), 3), ("Completed".into(), 1)],
            outbox_backlog: 4,
            outbox_oldest_age: Duration::from_millis(2500),
            outbox_dead_letters: 1,
            buyer_accounts: vec![("1688".into(), "active", 2), ("taobao".into(), "at_cap", 1)],
        });
        m.set_levels(&Levels {
            orders_by_state: vec![("Completed".into(), 4)],
            outbox_backlog: 0,
            outbox_oldest_age: Duration::ZERO,
            outbox_dead_letters: 0,
            buyer_accounts: vec![("1688".into(), "cooling_down", 2)],
        });
        let text = m.render();
        assert_eq!(
            sample(&text, r#"procure_orders{state="Completed"}"#),
            Some(4.0)
        );
        assert_eq!(
            sample(&text, r#"procure_orders{state="AwaitingPayment"}"#),
            None,
            "{text}"
        );
        assert_eq!(sample(&text, "procure_outbox_backlog"), Some(0.0));
        assert_eq!(
            sample(&text, "procure_outbox_oldest_age_seconds"),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_buyer_accounts{platform="1688",status="cooling_down"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"procure_buyer_accounts{platform="1688",status="active"}"#
            ),
            None
        );
    }
}
