//! Email delivery: the customer notifications of the event log (the types marked so in the
//! catalogue: price change awaiting decision, storage reminder and expiry, charge due,
//! cancellation) to the customers who gave a contact and want them. Runs in the API process
//! beside the webhook delivery loop, built the same way, and stops with it; off unless
//! `email.smtp_url` is set.
//!
//! - **Fan-out.** The loop reads the log after its own cursor (`procure_store::email`); each
//!   customer notification becomes a delivery, `pending` for a customer with a contact and
//!   notifications on, `skipped` (recorded, never retried) otherwise.
//! - **Rendering.** A template per event type and locale (`procure_domain::email`): subject and
//!   plain text with the items, the amounts, the deadline in UTC, the ids and the storefront's
//!   link (`email.action_url_base`).
//! - **Bounded retries.** A failed attempt is retried with exponential backoff
//!   ([`EmailConfig::retry_delay`]) until `max_attempts`, then the delivery is `failed`, listed
//!   at `GET /api/v1/admin/email-deliveries?status=failed`. A permanent refusal of the message
//!   (an SMTP 5xx answer, RFC 5321 §4.2.1, other than the 53x of authentication) fails it at
//!   once, so a relay that will never take the message is not asked again for hours. Every
//!   attempt is stored.
//! - **Several replicas.** Deliveries are claimed with a lease, so API replicas share the work.
//! - **Personal data.** The address is opened from its seal only to send; it is never logged,
//!   and errors carry the server's answer without it.

use procure_domain::{
    clock::now_ms,
    email::{self, Locale},
    ports::{EmailSender, OutgoingEmail, PortError},
    seal::Sealer,
};
use procure_store::{
    Store, StoreError,
    email::{ClaimedEmail, EmailAttempt, EmailOutcome},
};
use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{sync::Notify, task::JoinSet};

/// The channel's knobs (settings `email.*`, procure.example.toml).
#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// How often the loop looks for new events and due retries.
    pub poll_interval: Duration,
    /// One message, connecting to the server's answer after it.
    pub send_timeout: Duration,
    /// The wait after a message's first failure; it doubles per failure up to
    /// `max_retry_interval`.
    pub first_retry: Duration,
    pub max_retry_interval: Duration,
    /// Attempts of one message before it is given up (`failed`).
    pub max_attempts: u32,
    /// Messages in flight per replica.
    pub concurrency: usize,
    /// The storefront's link to an order, `{order_id}` replaced
    /// (`https://shop.example/orders/{order_id}`); none: the messages carry the ids only.
    pub action_url_base: Option<String>,
    /// The domain of the `Message-ID`s (the sender's).
    pub message_id_domain: String,
    /// Finished deliveries and their attempts older than this are forgotten.
    pub keep: Duration,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            poll_interval: Duration::from_secs(1),
            send_timeout: Duration::from_secs(30),
            first_retry: Duration::from_secs(60),
            max_retry_interval: Duration::from_secs(3600),
            max_attempts: 8,
            concurrency: 4,
            action_url_base: None,
            message_id_domain: "procure.invalid".into(),
            keep: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl EmailConfig {
    /// The wait after a message's `failures`-th failed attempt (1-based): `first_retry`
    /// doubling, at most `max_retry_interval`.
    pub fn retry_delay(&self, failures: i64) -> Duration {
        let doublings = (failures.max(1) - 1).min(30) as u32;
        self.first_retry
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(self.max_retry_interval)
    }

    /// What an attempt that failed after `attempts_before` earlier ones means: retry at a time
    /// after `now_ms`, or give up when the attempts are spent or the failure is permanent
    /// (`retryable` false).
    pub fn after_failure(
        &self,
        attempts_before: i64,
        now_ms: i64,
        retryable: bool,
    ) -> EmailOutcome {
        let made = attempts_before + 1;
        if !retryable || made >= i64::from(self.max_attempts.max(1)) {
            EmailOutcome::Failed
        } else {
            EmailOutcome::Retry {
                at_ms: now_ms + self.retry_delay(made).as_millis() as i64,
            }
        }
    }

    fn lease(&self) -> Duration {
        self.send_timeout * 2 + Duration::from_secs(5)
    }
}

/// The loop; see the module docs.
pub struct EmailDelivery {
    pub store: Store,
    pub sender: Arc<dyn EmailSender>,
    /// Opens the sealed addresses.
    pub sealer: Arc<Sealer>,
    pub config: EmailConfig,
    /// Wakes the loop early (each finished message).
    pub wake: Arc<Notify>,
}

/// Events read per fan-out pass.
const FAN_OUT_BATCH: i64 = 500;

struct Shared {
    store: Store,
    sender: Arc<dyn EmailSender>,
    sealer: Arc<Sealer>,
    config: EmailConfig,
    owner: String,
    wake: Arc<Notify>,
    in_flight: AtomicUsize,
}

impl EmailDelivery {
    /// Deliver until `shutdown`; then claim nothing more, let the messages in flight finish
    /// (each within its timeout) and return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = Arc::new(Shared {
            owner: format!("replica-{}", uuid::Uuid::new_v4().simple()),
            store: self.store,
            sender: self.sender,
            sealer: self.sealer,
            config: self.config,
            wake: self.wake,
            in_flight: AtomicUsize::new(0),
        });
        let pace = crate::delivery_loop::Pace {
            wake: shared.wake.clone(),
            poll_interval: shared.config.poll_interval,
            keep: shared.config.keep,
            send_timeout: shared.config.send_timeout,
        };
        crate::delivery_loop::run(shared, pace, shutdown).await;
    }
}

impl crate::delivery_loop::Deliveries for Shared {
    const KIND: &'static str = "email";

    async fn pass(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        self.claim_and_send(tasks).await
    }

    async fn prune(&self, horizon_ms: i64) -> anyhow::Result<()> {
        self.store.prune_emails(horizon_ms).await?;
        Ok(())
    }
}

impl Shared {
    async fn claim_and_send(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> anyhow::Result<()> {
        while self.store.email_fan_out(FAN_OUT_BATCH).await? as i64 == FAN_OUT_BATCH {}
        let free = self
            .config
            .concurrency
            .saturating_sub(self.in_flight.load(Ordering::SeqCst));
        if free == 0 {
            return Ok(());
        }
        let now = now_ms();
        let claimed = self
            .store
            .claim_emails(
                &self.owner,
                now,
                now + self.config.lease().as_millis() as i64,
                free as i64,
            )
            .await?;
        self.in_flight.fetch_add(claimed.len(), Ordering::SeqCst);
        for d in claimed {
            let me = self.clone();
            tasks.spawn(async move {
                if let Err(err) = me.deliver(&d).await {
                    tracing::warn!(
                        event = d.event_id,
                        delivery = d.id,
                        error = format!("{err:#}"),
                        "recording an email attempt failed; the lease expires and it is tried again"
                    );
                }
                me.in_flight.fetch_sub(1, Ordering::SeqCst);
                me.wake.notify_one();
            });
        }
        Ok(())
    }

    /// One attempt of one delivery, recorded whatever happens.
    async fn deliver(&self, d: &ClaimedEmail) -> anyhow::Result<()> {
        let started_ms = now_ms();
        let clock = Instant::now();
        let (outcome, error) = match self.attempt(d).await {
            Ok(None) => (EmailOutcome::Sent, None),
            Ok(Some(skip)) => (EmailOutcome::Skipped, Some(skip)),
            Err(failure) => (
                self.config
                    .after_failure(d.attempts, now_ms(), failure.retryable),
                Some(failure.message),
            ),
        };
        let duration_ms = clock.elapsed().as_millis() as i64;
        self.store
            .record_email_attempt(&EmailAttempt {
                delivery: d,
                owner: &self.owner,
                started_at_ms: started_ms,
                duration_ms,
                error: error.clone(),
                outcome: outcome.clone(),
            })
            .await?;
        let attempt = d.attempts + 1;
        match (&outcome, &error) {
            (EmailOutcome::Sent, _) => {
                tracing::debug!(event = d.event_id, customer = %d.customer_id, attempt, duration_ms, "email sent")
            }
            (EmailOutcome::Failed, Some(e)) => {
                tracing::warn!(event = d.event_id, customer = %d.customer_id, attempt, error = %e, "email given up")
            }
            (_, Some(e)) => {
                tracing::info!(event = d.event_id, customer = %d.customer_id, attempt, error = %e, "email attempt failed or skipped")
            }
            _ => {}
        }
        Ok(())
    }

    /// Send the delivery's message: `Ok(None)` sent, `Ok(Some(why))` nothing to send after all,
    /// `Err` a failure (its message has no address): a fault of ours on the way (the store, the
    /// template, the seal) is retried; the sender says whether its own failure can pass (a
    /// recipient that is no address cannot, nor a 5xx answer about the message).
    async fn attempt(&self, d: &ClaimedEmail) -> Result<Option<String>, PortError> {
        self.prepare_and_send(d).await.map_err(|e| match e {
            Attempt::Ours(message) => PortError::new(message, true),
            Attempt::Server(e) => e,
        })
    }

    async fn prepare_and_send(&self, d: &ClaimedEmail) -> Result<Option<String>, Attempt> {
        let contact = match self.store.contact(&d.customer_id).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => {
                return Ok(Some("the customer removed their contact".into()));
            }
            Err(e) => return Err(format!("reading the contact: {e}").into()),
        };
        if !contact.email_notifications {
            return Ok(Some("the customer turned notification emails off".into()));
        }
        let event = self
            .store
            .event(d.event_id)
            .await
            .map_err(|e| format!("reading the event: {e}"))?;
        let locale = Locale::parse(&contact.locale).unwrap_or(Locale::En);
        let message = email::render(
            event.kind,
            &event.data,
            locale,
            self.config.action_url_base.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let address = self
            .sealer
            .open(&contact.email_sealed)
            .map_err(|e| format!("opening the sealed address: {e}"))?;
        let address =
            String::from_utf8(address).map_err(|_| "the sealed address is not text".to_owned())?;
        let message_id = format!(
            "<{}@{}>",
            crate::views::events::event_id(event.id),
            self.config.message_id_domain
        );
        self.sender
            .send(OutgoingEmail {
                to: &address,
                subject: &message.subject,
                text: &message.text,
                message_id: &message_id,
                timeout: self.config.send_timeout,
            })
            .await
            .map(|()| None)
            .map_err(Attempt::Server)
    }
}

/// How an attempt failed: on our side before anything was sent, or by the server's answer.
enum Attempt {
    Ours(String),
    Server(PortError),
}

impl From<String> for Attempt {
    fn from(message: String) -> Self {
        Attempt::Ours(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_bounded_and_back_off() {
        let c = EmailConfig {
            max_attempts: 3,
            ..EmailConfig::default()
        };
        assert_eq!(c.retry_delay(1), Duration::from_secs(60));
        assert_eq!(c.retry_delay(2), Duration::from_secs(120));
        assert_eq!(c.retry_delay(20), Duration::from_secs(3600));
        assert_eq!(
            c.after_failure(0, 0, true),
            EmailOutcome::Retry { at_ms: 60_000 }
        );
        assert_eq!(
            c.after_failure(1, 0, true),
            EmailOutcome::Retry { at_ms: 120_000 }
        );
        assert_eq!(c.after_failure(2, 0, true), EmailOutcome::Failed);
        assert_eq!(c.after_failure(0, 0, false), EmailOutcome::Failed);
    }
}
