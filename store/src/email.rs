//! The email channel's rows: a customer's contact (the address sealed with the data keys,
//! whether they want notification emails, their locale), the loop's cursor in the event log, one
//! delivery per customer notification event, and every attempt. The API's email loop works from
//! these rows, so several API replicas share the work: fan-out is idempotent, a replica claims
//! due deliveries with a lease ([`Store::claim_emails`]) and records each attempt under it.
//!
//! Invariants kept here, not in callers:
//! - Fan-out reads the log in cursor order and creates at most one delivery per event; a
//!   customer without a contact, or with notifications off, gets a `skipped` delivery (recorded,
//!   never retried).
//! - A delivery is claimed by one replica at a time, and a late finisher whose lease was taken
//!   over records its attempt but does not overwrite the delivery.
//! - Nothing retries out of sight: a delivery ends `sent` or, after its bounded attempts,
//!   `failed`, and both are listed with every attempt.

use crate::db::{Result, Store, StoreError};
use procure_domain::{clock::now_ms, events::EventType};

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
pub const SKIPPED: &str = "skipped";
/// Every delivery status, for listing filters.
pub const STATUSES: &[&str] = &[PENDING, SENT, FAILED, SKIPPED];

/// A customer's contact. The address is sealed (`procure_domain::seal`): open it only to send
/// or to show it to the customer and staff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    pub customer_id: String,
    pub email_sealed: String,
    pub email_notifications: bool,
    pub locale: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ContactRow {
    customer_id: String,
    email_sealed: String,
    email_notifications: i64,
    locale: String,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            customer_id: r.customer_id,
            email_sealed: r.email_sealed,
            email_notifications: r.email_notifications != 0,
            locale: r.locale,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        }
    }
}

const CONTACT_COLUMNS: &str =
    "customer_id, email_sealed, email_notifications, locale, created_at_ms, updated_at_ms";

/// A delivery a replica holds the lease of.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ClaimedEmail {
    pub id: i64,
    pub event_id: i64,
    pub customer_id: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// How one attempt ended, as the loop decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailOutcome {
    Sent,
    /// Try again at this time.
    Retry {
        at_ms: i64,
    },
    /// Given up: the attempts are spent.
    Failed,
    /// Nothing to send after all (the contact was removed or notifications turned off since
    /// fan-out); the reason is the attempt's error.
    Skipped,
}

/// One attempt, to record.
#[derive(Clone, Debug)]
pub struct EmailAttempt<'a> {
    pub delivery: &'a ClaimedEmail,
    pub owner: &'a str,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    /// What went wrong, one line, no address.
    pub error: Option<String>,
    pub outcome: EmailOutcome,
}

/// One delivery as listed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailDelivery {
    pub id: i64,
    pub event_id: i64,
    pub customer_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at_ms: i64,
    pub last_error: Option<String>,
    pub sent_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

const DELIVERY_COLUMNS: &str = "id, event_id, customer_id, event_type, status, attempts, \
     next_attempt_at_ms, last_error, sent_at_ms, created_at_ms, updated_at_ms";

/// One attempt as listed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailAttemptRow {
    pub attempt: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
}

impl Store {
    /// Set a customer's contact (created or replaced).
    pub async fn put_contact(
        &self,
        customer_id: &str,
        email_sealed: &str,
        email_notifications: bool,
        locale: &str,
    ) -> Result<Contact> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO customer_contacts (customer_id, email_sealed, email_notifications, locale, created_at_ms, \
             updated_at_ms) VALUES ($1,$2,$3,$4,$5,$5) ON CONFLICT (customer_id) DO UPDATE SET \
             email_sealed = $2, email_notifications = $3, locale = $4, updated_at_ms = $5",
        )
        .bind(customer_id)
        .bind(email_sealed)
        .bind(i64::from(email_notifications))
        .bind(locale)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.contact(customer_id).await
    }

    pub async fn contact(&self, customer_id: &str) -> Result<Contact> {
        let row: ContactRow = sqlx::query_as(&format!(
            "SELECT {CONTACT_COLUMNS} FROM customer_contacts WHERE customer_id = $1"
        ))
        .bind(customer_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(row.into())
    }

    /// Forget a customer's contact.
    pub async fn delete_contact(&self, customer_id: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM customer_contacts WHERE customer_id = $1")
            .bind(customer_id)
            .execute(self.pool())
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Create the deliveries of the next at most `limit` events after the email cursor (the
    /// customer notifications among them: pending for a customer with notifications on,
    /// skipped otherwise) and move the cursor past them. Answers how many events were read
    /// (`limit`: there may be more). Idempotent: replicas fanning out the same range create
    /// each delivery once.
    pub async fn email_fan_out(&self, limit: i64) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let (cursor,): (i64,) =
            sqlx::query_as("SELECT last_event_id FROM email_cursor WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let events: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, type, customer_id FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(cursor)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = events.last().map(|(id, _, _)| *id) else {
            tx.rollback().await?;
            return Ok(0);
        };
        for (event_id, kind, customer_id) in &events {
            let Ok(kind) = kind.parse::<EventType>() else {
                continue;
            };
            if !kind.notifies_customer() {
                continue;
            }
            let wanted: Option<(i64,)> = sqlx::query_as(
                "SELECT email_notifications FROM customer_contacts WHERE customer_id = $1",
            )
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
            let (status, reason) = match wanted {
                Some((1,)) => (PENDING, None),
                Some(_) => (SKIPPED, Some("the customer turned notification emails off")),
                None => (SKIPPED, Some("the customer has no contact")),
            };
            sqlx::query(
                "INSERT INTO email_deliveries (event_id, customer_id, event_type, status, attempts, next_attempt_at_ms, \
                 last_error, created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,0,$5,$6,$5,$5) \
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(customer_id)
            .bind(kind.as_str())
            .bind(status)
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE email_cursor SET last_event_id = $1 WHERE id = 1 AND last_event_id < $1",
        )
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Claim at most `limit` due pending deliveries for `owner` until `lease_until_ms`, oldest
    /// events first.
    pub async fn claim_emails(
        &self,
        owner: &str,
        now: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedEmail>> {
        let mut rows: Vec<ClaimedEmail> = sqlx::query_as(
            "UPDATE email_deliveries SET lease_owner = $1, lease_until_ms = $2 \
             WHERE id IN (SELECT d.id FROM email_deliveries d \
                 WHERE d.status = $3 AND d.next_attempt_at_ms <= $4 \
                 AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $4) \
                 ORDER BY d.event_id LIMIT $5) \
             AND status = $3 AND (lease_until_ms IS NULL OR lease_until_ms <= $4) \
             RETURNING id, event_id, customer_id, attempts",
        )
        .bind(owner)
        .bind(lease_until_ms)
        .bind(PENDING)
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.sort_by_key(|r| r.event_id);
        Ok(rows)
    }

    /// Record one attempt and what it means for its delivery, in one transaction.
    pub async fn record_email_attempt(&self, a: &EmailAttempt<'_>) -> Result<()> {
        let now = now_ms();
        let d = a.delivery;
        let (status, next, sent_at, outcome) = match &a.outcome {
            EmailOutcome::Sent => (SENT, now, Some(now), SENT),
            EmailOutcome::Retry { at_ms } => (PENDING, *at_ms, None, FAILED),
            EmailOutcome::Failed => (FAILED, now, None, FAILED),
            EmailOutcome::Skipped => (SKIPPED, now, None, SKIPPED),
        };
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO email_delivery_attempts (delivery_id, attempt, started_at_ms, duration_ms, outcome, error) \
             VALUES ($1,$2,$3,$4,$5,$6)",
        )
        .bind(d.id)
        .bind(d.attempts + 1)
        .bind(a.started_at_ms)
        .bind(a.duration_ms)
        .bind(outcome)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE email_deliveries SET status = $1, attempts = attempts + 1, next_attempt_at_ms = $2, \
             sent_at_ms = $3, last_error = $4, lease_owner = NULL, lease_until_ms = NULL, updated_at_ms = $5 \
             WHERE id = $6 AND lease_owner = $7",
        )
        .bind(status)
        .bind(next)
        .bind(sent_at)
        .bind(&a.error)
        .bind(now)
        .bind(d.id)
        .bind(a.owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries, newest first, of one status or all, before delivery id `before` (paging).
    pub async fn email_deliveries(
        &self,
        status: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EmailDelivery>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM email_deliveries WHERE ($1 IS NULL OR status = $1) AND id < $2 \
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(status)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// A delivery's attempts, oldest first.
    pub async fn email_attempts(&self, delivery_id: i64) -> Result<Vec<EmailAttemptRow>> {
        Ok(sqlx::query_as(
            "SELECT attempt, started_at_ms, duration_ms, outcome, error FROM email_delivery_attempts \
             WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// Forget attempts and finished deliveries (sent or skipped) older than `horizon_ms`;
    /// failed ones stay listed until an admin has seen them age out the same way. Answers the
    /// deliveries removed.
    pub async fn prune_emails(&self, horizon_ms: i64) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "DELETE FROM email_delivery_attempts WHERE delivery_id IN \
             (SELECT id FROM email_deliveries WHERE status <> $1 AND updated_at_ms < $2)",
        )
        .bind(PENDING)
        .bind(horizon_ms)
        .execute(&mut *tx)
        .await?;
        let n =
            sqlx::query("DELETE FROM email_deliveries WHERE status <> $1 AND updated_at_ms < $2")
                .bind(PENDING)
                .bind(horizon_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        tx.commit().await?;
        Ok(n)
    }
}
