//! Webhook delivery: the event log to every subscribed endpoint, per the Standard Webhooks
//! specification (docs/vendors/standard-webhooks.md). Runs in the API process beside the
//! outbox dispatcher and stops with it.
//!
//! - **At least once.** Each event an endpoint wants becomes a delivery row
//!   (`procure_store::subscriptions`); a delivery is done when the endpoint answers 2xx, and
//!   retried otherwise with exponential backoff and jitter ([`DeliveryConfig::retry_delay`])
//!   until its retry window (`retry_for`, 3 days by default) is over, when it is marked failed
//!   (listed, and sent again by a replay).
//! - **In order per subject.** An order's later event is not sent to an endpoint before the
//!   earlier one was delivered to it (the store claims only the first pending delivery of each
//!   subject).
//! - **Isolation.** Each endpoint has its own slots (`concurrency_per_endpoint`) and every
//!   request its timeout, and the loop never waits for a request: a slow, failing or hanging
//!   endpoint holds only its own slots.
//! - **Several replicas.** Deliveries are claimed with a lease in the database, so API replicas
//!   share the work; a replica that dies leaves its leases to expire.
//! - **Nothing out of sight.** Every attempt is stored with its status code, error and
//!   duration; an endpoint that has failed without a success for `disable_after` (5 days by
//!   default), or answered `410 Gone`, is disabled with the reason.

use crate::views::events::{EventView, event_id};
use procure_domain::{
    Secret,
    clock::now_ms,
    ports::{OutgoingWebhook, WebhookSender},
    seal::Sealer,
    webhook_signing::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP},
};
use procure_metrics::EventWebhookOutcome;
use procure_store::{
    Store,
    subscriptions::{AttemptOutcome, AttemptRecord, ClaimedDelivery, Endpoint},
};
use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::{sync::Notify, task::JoinSet};

/// The delivery's knobs (settings `webhooks.*`, procure.example.toml).
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// How often the loop looks for new events and due retries.
    pub poll_interval: Duration,
    /// One request, connecting to the answer's headers (the specification recommends 15 to
    /// 30 s).
    pub request_timeout: Duration,
    /// The wait after a delivery's first failure; it doubles per failure up to
    /// `max_retry_interval`, each wait ±20 % jitter.
    pub first_retry: Duration,
    pub max_retry_interval: Duration,
    /// How long a delivery is retried from its first failure before it is given up.
    pub retry_for: Duration,
    /// An endpoint with no success for this long is disabled.
    pub disable_after: Duration,
    /// Requests in flight per endpoint and replica.
    pub concurrency_per_endpoint: usize,
    /// Attempts and delivered deliveries older than this are forgotten.
    pub keep_attempts: Duration,
    /// Targets on loopback and private networks are allowed (development and tests).
    pub allow_internal_targets: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            poll_interval: Duration::from_millis(500),
            request_timeout: Duration::from_secs(15),
            first_retry: Duration::from_secs(5),
            max_retry_interval: Duration::from_secs(4 * 3600),
            retry_for: Duration::from_secs(3 * 24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
            concurrency_per_endpoint: 4,
            keep_attempts: Duration::from_secs(30 * 24 * 3600),
            allow_internal_targets: false,
        }
    }
}

impl DeliveryConfig {
    /// The wait after a delivery's `failures`-th failed attempt (1-based), before jitter:
    /// `first_retry` doubling, at most `max_retry_interval`.
    pub fn retry_delay(&self, failures: i64) -> Duration {
        let doublings = (failures.max(1) - 1).min(30) as u32;
        self.first_retry
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_retry_interval)
    }

    /// When to try again after a failure at `now_ms`, or `None` when the retry window that
    /// opened at `window_opened_ms` is over. `retry_after` (the endpoint's own `Retry-After`)
    /// is honoured up to `max_retry_interval`; `jitter` is in [0, 1).
    pub fn next_attempt(
        &self,
        failures: i64,
        window_opened_ms: i64,
        now_ms: i64,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<i64> {
        let base = self.retry_delay(failures).as_millis() as f64;
        let mut wait = (base * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as i64;
        if let Some(ra) = retry_after {
            wait = wait.max(ra.min(self.max_retry_interval).as_millis() as i64);
        }
        let at = now_ms + wait.max(1);
        (at < window_opened_ms + self.retry_for.as_millis() as i64).then_some(at)
    }

    /// How long a claim is held: a request's time and a margin to record it.
    fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(5)
    }
}

/// The loop; see the module docs.
pub struct WebhookDelivery {
    pub store: Store,
    pub sender: Arc<dyn WebhookSender>,
    /// Opens the endpoints' sealed secrets.
    pub sealer: Arc<Sealer>,
    pub config: DeliveryConfig,
    /// Wakes the loop early (tests, and each finished request).
    pub wake: Arc<Notify>,
}

/// Events fanned out per endpoint and pass.
const FAN_OUT_BATCH: i64 = 500;

struct Shared {
    store: Store,
    sender: Arc<dyn WebhookSender>,
    sealer: Arc<Sealer>,
    config: DeliveryConfig,
    owner: String,
    wake: Arc<Notify>,
    /// Requests in flight per endpoint, in this replica.
    in_flight: Mutex<HashMap<String, usize>>,
}

impl WebhookDelivery {
    /// Deliver until `shutdown`; then claim nothing more, let the requests in flight finish
    /// (each within its timeout) and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = Arc::new(Shared {
            owner: format!("replica-{}", uuid::Uuid::new_v4().simple()),
            store: self.store,
            sender: self.sender,
            sealer: self.sealer,
            config: self.config,
            wake: self.wake,
            in_flight: Mutex::new(HashMap::new()),
        });
        let pace = crate::delivery_loop::Pace {
            wake: shared.wake.clone(),
            poll_interval: shared.config.poll_interval,
            keep: shared.config.keep_attempts,
            send_timeout: shared.config.request_timeout,
        };
        crate::delivery_loop::run(shared, pace, shutdown).await;
    }
}

impl crate::delivery_loop::Deliveries for Shared {
    const KIND: &'static str = "webhook";

    async fn pass(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        self.claim_and_send(tasks).await
    }

    async fn prune(&self, horizon_ms: i64) -> anyhow::Result<()> {
        self.store.prune_deliveries(horizon_ms).await?;
        Ok(())
    }
}

impl Shared {
    /// One pass: fan new events out to every enabled endpoint, then claim what each endpoint's
    /// free slots can take.
    async fn claim_and_send(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        for e in self.store.webhook_endpoints().await? {
            if !e.enabled {
                continue;
            }
            while self.store.fan_out(&e.id, FAN_OUT_BATCH).await? as i64 == FAN_OUT_BATCH {}
            let busy = self
                .in_flight
                .lock()
                .expect("in-flight map")
                .get(&e.id)
                .copied()
                .unwrap_or(0);
            let free = self.config.concurrency_per_endpoint.saturating_sub(busy);
            if free == 0 {
                continue;
            }
            let now = now_ms();
            let claimed = self
                .store
                .claim_deliveries(
                    &e.id,
                    &self.owner,
                    now,
                    now + self.config.lease().as_millis() as i64,
                    free as i64,
                )
                .await?;
            if claimed.is_empty() {
                continue;
            }
            *self
                .in_flight
                .lock()
                .expect("in-flight map")
                .entry(e.id.clone())
                .or_default() += claimed.len();
            let endpoint = Arc::new(e);
            for d in claimed {
                let (me, endpoint) = (self.clone(), endpoint.clone());
                tasks.spawn(async move {
                    if let Err(err) = me.deliver(&endpoint, &d).await {
                        tracing::warn!(endpoint = %endpoint.id, event = d.event_id, error = format!("{err:#}"),
                            "recording a webhook attempt failed; the lease expires and it is tried again");
                    }
                    if let Some(n) = me
                        .in_flight
                        .lock()
                        .expect("in-flight map")
                        .get_mut(&endpoint.id)
                    {
                        *n = n.saturating_sub(1);
                    }
                    me.wake.notify_one();
                });
            }
        }
        Ok(())
    }

    /// The secrets that sign now: the current one, and the previous one during its overlap.
    fn secrets(&self, e: &Endpoint, now: i64) -> anyhow::Result<Vec<Secret>> {
        let mut out = vec![self.sealer.open_secret(&e.secret_sealed)?];
        if let (Some(prev), Some(until)) = (&e.previous_secret_sealed, e.previous_secret_until_ms)
            && until > now
        {
            out.push(self.sealer.open_secret(prev)?);
        }
        Ok(out)
    }

    /// One attempt of one delivery, recorded whatever happens.
    async fn deliver(&self, e: &Endpoint, d: &ClaimedDelivery) -> anyhow::Result<()> {
        let event = self.store.event(d.event_id).await?;
        let body = serde_json::to_vec(&EventView::from(event))?;
        let id = event_id(d.event_id);
        let started_ms = now_ms();
        let timestamp = started_ms / 1000;
        let secrets = self.secrets(e, started_ms)?;
        let refs: Vec<&Secret> = secrets.iter().collect();
        let signature = webhook_signing::signature_header(&refs, &id, timestamp, &body)?;
        let headers = [
            (HEADER_ID, id.clone()),
            (HEADER_TIMESTAMP, timestamp.to_string()),
            (HEADER_SIGNATURE, signature),
        ];
        let clock = Instant::now();
        let answer = self
            .sender
            .send(OutgoingWebhook {
                url: &e.url,
                headers: &headers,
                body: &body,
                timeout: self.config.request_timeout,
            })
            .await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let (status_code, error, retry_after) = match &answer {
            Ok(a) if (200..300).contains(&a.status) => (Some(a.status), None, None),
            Ok(a) => (
                Some(a.status),
                Some(format!("HTTP {}", a.status)),
                a.retry_after,
            ),
            Err(err) => (None, Some(err.message.clone()), None),
        };
        let outcome = match status_code {
            Some(200..=299) => AttemptOutcome::Delivered,
            _ => AttemptOutcome::Failed {
                retry_at_ms: self.config.next_attempt(
                    d.attempts + 1,
                    d.first_attempt_at_ms.unwrap_or(started_ms),
                    now_ms(),
                    retry_after,
                    rand_unit(),
                ),
                disable: (status_code == Some(410)).then(|| {
                    "the endpoint answered 410 Gone: it wants no more webhooks".to_owned()
                }),
            },
        };
        let metric = match &outcome {
            AttemptOutcome::Delivered => EventWebhookOutcome::Delivered,
            AttemptOutcome::Failed {
                retry_at_ms: None, ..
            } => EventWebhookOutcome::GaveUp,
            AttemptOutcome::Failed { .. } => EventWebhookOutcome::Failed,
        };
        procure_metrics::global().event_webhook_attempt(metric, clock.elapsed());
        let health = self
            .store
            .record_attempt(&AttemptRecord {
                delivery: d,
                endpoint_id: &e.id,
                owner: &self.owner,
                started_at_ms: started_ms,
                duration_ms,
                status_code,
                error: error.clone(),
                outcome,
                disable_after_ms: self.config.disable_after.as_millis() as i64,
            })
            .await?;
        match (&error, metric) {
            (None, _) => {
                tracing::debug!(endpoint = %e.id, event = %id, attempt = d.attempts + 1, duration_ms, "webhook delivered")
            }
            (Some(err), EventWebhookOutcome::GaveUp) => {
                tracing::warn!(endpoint = %e.id, event = %id, attempt = d.attempts + 1, error = %err, "webhook delivery given up after its retry window")
            }
            (Some(err), _) => {
                tracing::info!(endpoint = %e.id, event = %id, attempt = d.attempts + 1, error = %err, "webhook attempt failed; retrying later")
            }
        }
        if let Some(reason) = health.disabled {
            procure_metrics::global().event_webhook_endpoint_disabled();
            tracing::warn!(endpoint = %e.id, %reason, "webhook endpoint disabled");
        }
        Ok(())
    }
}

/// A number in [0, 1) for jitter (not for anything secret).
fn rand_unit() -> f64 {
    let bits = uuid::Uuid::new_v4().as_u128() as u64 >> 11;
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_stops_after_the_window() {
        let c = DeliveryConfig::default();
        assert_eq!(c.retry_delay(1), Duration::from_secs(5));
        assert_eq!(c.retry_delay(2), Duration::from_secs(10));
        assert_eq!(c.retry_delay(12), Duration::from_secs(10_240));
        assert_eq!(c.retry_delay(13), Duration::from_secs(4 * 3600));
        assert_eq!(c.retry_delay(10_000), Duration::from_secs(4 * 3600));
        // Jitter stays within ±20 %.
        let at = |j| c.next_attempt(1, 0, 0, None, j).unwrap();
        assert_eq!((at(0.0), at(0.999_999)), (4_000, 5_999));
        // A Retry-After longer than the backoff is honoured, up to the ceiling.
        assert_eq!(
            c.next_attempt(1, 0, 0, Some(Duration::from_secs(60)), 0.5),
            Some(60_000)
        );
        assert_eq!(
            c.next_attempt(1, 0, 0, Some(Duration::from_secs(86_400)), 0.5),
            Some(4 * 3600 * 1000)
        );
        // The window: 3 days from the first failure.
        let three_days = 3 * 24 * 3600 * 1000;
        assert!(
            c.next_attempt(20, 0, three_days - 3_600_000, None, 0.5)
                .is_none()
        );
        assert!(c.next_attempt(20, 0, 1_000, None, 0.5).is_some());
        // The whole schedule spans the window: count the attempts a dead endpoint gets.
        let (mut now, mut n) = (0i64, 1i64);
        while let Some(next) = c.next_attempt(n, 0, now, None, 0.5) {
            now = next;
            n += 1;
        }
        assert!(
            now > three_days - 4 * 3600 * 1000,
            "retried until near the end: {now}"
        );
        assert!((20..40).contains(&n), "{n} attempts in 3 days");
    }

    #[test]
    fn jitter_is_in_the_unit_interval() {
        for _ in 0..1_000 {
            let j = rand_unit();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
