//! Webhook subscriptions: the endpoints an admin subscribed to the event log, one delivery row
//! per event and endpoint, and every attempt. The API's delivery loop works from these rows,
//! so several API replicas share the work: a replica claims due deliveries of one endpoint with
//! a lease ([`Store::claim_deliveries`]) and records each attempt's outcome under it.
//!
//! Invariants kept here, not in callers:
//! - Fan-out reads the log in cursor order, so an endpoint's deliveries of one subject are
//!   created in the subject's order; a delivery is claimable only while no earlier delivery of
//!   the same subject is pending for that endpoint (in order per order and endpoint).
//! - A delivery is claimed by one replica at a time (lease), and a late finisher whose lease
//!   was taken over records its attempt but does not overwrite the delivery.
//! - An endpoint whose deliveries have all failed for `disable_after` is disabled with the
//!   reason; nothing retries out of sight (attempts and counts are listed).

use crate::db::{Result, Store, StoreError, corrupt, json, parse};
use procure_domain::{clock::now_ms, events::EventType};
use sqlx::{Any, Transaction};

/// A subscribed endpoint. The secrets are sealed (`procure_domain::seal`): open them only to
/// sign a delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<EventType>,
    pub secret_sealed: String,
    /// The secret before the last rotation, signing beside the current one until
    /// `previous_secret_until_ms`.
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_until_ms: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at_ms: Option<i64>,
    /// Since when every attempt failed (none since the last success).
    pub failing_since_ms: Option<i64>,
    pub last_success_at_ms: Option<i64>,
    /// The last event considered for this endpoint.
    pub fanout_cursor: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl Endpoint {
    pub fn wants(&self, t: EventType) -> bool {
        self.event_types.contains(&t)
    }
}

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    event_types: String,
    secret_sealed: String,
    previous_secret_sealed: Option<String>,
    previous_secret_until_ms: Option<i64>,
    enabled: i64,
    disabled_reason: Option<String>,
    disabled_at_ms: Option<i64>,
    failing_since_ms: Option<i64>,
    last_success_at_ms: Option<i64>,
    fanout_cursor: i64,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = StoreError;

    fn try_from(r: EndpointRow) -> Result<Endpoint> {
        let names: Vec<String> = json(&r.event_types)?;
        Ok(Endpoint {
            event_types: names.iter().map(|n| parse(n)).collect::<Result<_>>()?,
            enabled: r.enabled != 0,
            id: r.id,
            url: r.url,
            description: r.description,
            secret_sealed: r.secret_sealed,
            previous_secret_sealed: r.previous_secret_sealed,
            previous_secret_until_ms: r.previous_secret_until_ms,
            disabled_reason: r.disabled_reason,
            disabled_at_ms: r.disabled_at_ms,
            failing_since_ms: r.failing_since_ms,
            last_success_at_ms: r.last_success_at_ms,
            fanout_cursor: r.fanout_cursor,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret_sealed, previous_secret_sealed, \
     previous_secret_until_ms, enabled, disabled_reason, disabled_at_ms, failing_since_ms, last_success_at_ms, \
     fanout_cursor, created_at_ms, updated_at_ms";

fn types_json(types: &[EventType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .expect("a list of names serializes")
}

/// A new endpoint, its secret sealed already.
#[derive(Clone, Debug)]
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub url: &'a str,
    pub description: &'a str,
    pub event_types: &'a [EventType],
    pub secret_sealed: &'a str,
    pub enabled: bool,
}

/// What a `PATCH` changes; `None` keeps the field.
#[derive(Clone, Debug, Default)]
pub struct EndpointChange<'a> {
    pub url: Option<&'a str>,
    pub description: Option<&'a str>,
    pub event_types: Option<&'a [EventType]>,
    pub enabled: Option<bool>,
}

/// A delivery a replica holds the lease of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub event_id: i64,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When its retry window opened (its first failed attempt), if it failed before.
    pub first_attempt_at_ms: Option<i64>,
    /// Times it was replayed.
    pub replays: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: i64,
    event_id: i64,
    attempts: i64,
    first_attempt_at_ms: Option<i64>,
    replays: i64,
}

/// How one attempt ended, as the delivery loop decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx.
    Delivered,
    /// Anything else: retry at `retry_at_ms`, or give up (`None`, the retry window is over).
    /// `disable` disables the endpoint at once with that reason (it answered `410 Gone`).
    Failed {
        retry_at_ms: Option<i64>,
        disable: Option<String>,
    },
}

/// One attempt, to record.
#[derive(Clone, Debug)]
pub struct AttemptRecord<'a> {
    pub delivery: &'a ClaimedDelivery,
    pub endpoint_id: &'a str,
    /// The lease owner that made it.
    pub owner: &'a str,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    /// What went wrong, one line, no secrets (`HTTP 500`, `timed out after 10 s`, …).
    pub error: Option<String>,
    pub outcome: AttemptOutcome,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after_ms: i64,
}

/// What recording an attempt did to its endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct EndpointHealth {
    /// The endpoint was disabled by this attempt, with this reason.
    pub disabled: Option<String>,
}

/// One attempt as listed.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Attempt {
    pub id: i64,
    pub event_id: i64,
    pub event_type: String,
    pub attempt: i64,
    pub replay: i64,
    pub started_at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub outcome: String,
}

/// An endpoint's deliveries by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    pub pending: i64,
    pub delivered: i64,
    /// Given up after the retry window.
    pub failed: i64,
}

/// An endpoint's attempts, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttemptCounts {
    /// Requests made.
    pub sent: i64,
    /// Answered 2xx.
    pub delivered: i64,
    pub failed: i64,
    /// Attempts after a failed one (the second and later of a delivery).
    pub retried: i64,
    /// Attempts of replayed deliveries.
    pub replayed: i64,
}

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

async fn endpoint_in(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Endpoint> {
    let row: EndpointRow = sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}

impl Store {
    /// Subscribe an endpoint. It hears events committed from now on (its cursor starts at the
    /// log's end); earlier ones are a replay away.
    pub async fn add_webhook_endpoint(&self, e: &NewEndpoint<'_>) -> Result<Endpoint> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let (cursor,): (i64,) =
            sqlx::query_as("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM events")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret_sealed, enabled, fanout_cursor, \
             created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)",
        )
        .bind(e.id)
        .bind(e.url)
        .bind(e.description)
        .bind(types_json(e.event_types))
        .bind(e.secret_sealed)
        .bind(i64::from(e.enabled))
        .bind(cursor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let added = endpoint_in(&mut tx, e.id).await?;
        tx.commit().await?;
        Ok(added)
    }

    pub async fn webhook_endpoint(&self, id: &str) -> Result<Endpoint> {
        let row: EndpointRow = sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// Every endpoint, oldest first.
    pub async fn webhook_endpoints(&self) -> Result<Vec<Endpoint>> {
        let rows: Vec<EndpointRow> = sqlx::query_as(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at_ms, id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Endpoint::try_from).collect()
    }

    /// Change an endpoint. Enabling one (again) clears its disabled reason and failure clock,
    /// and its pending deliveries are due at once with a fresh retry window.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        change: &EndpointChange<'_>,
    ) -> Result<Endpoint> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let before = endpoint_in(&mut tx, id).await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, description = $2, event_types = $3, updated_at_ms = $4 WHERE id = $5",
        )
        .bind(change.url.unwrap_or(&before.url))
        .bind(change.description.unwrap_or(&before.description))
        .bind(types_json(change.event_types.unwrap_or(&before.event_types)))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        match change.enabled {
            Some(true) if !before.enabled => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = 1, disabled_reason = NULL, disabled_at_ms = NULL, \
                     failing_since_ms = NULL WHERE id = $1",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE event_deliveries SET next_attempt_at_ms = $1, first_attempt_at_ms = NULL \
                     WHERE endpoint_id = $2 AND status = $3",
                )
                .bind(now)
                .bind(id)
                .bind(PENDING)
                .execute(&mut *tx)
                .await?;
            }
            Some(false) if before.enabled => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, disabled_at_ms = $2 WHERE id = $3",
                )
                .bind("disabled by an admin")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            _ => {}
        }
        let after = endpoint_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Remove an endpoint with its deliveries and attempts.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM event_delivery_attempts WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM event_deliveries WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rotate the secret: the new one signs from now on, the old one beside it until
    /// `previous_until_ms` (the overlap). A secret older than the current one is dropped.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        new_sealed: &str,
        previous_until_ms: i64,
    ) -> Result<Endpoint> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret_sealed = secret_sealed, previous_secret_until_ms = $1, \
             secret_sealed = $2, updated_at_ms = $3 WHERE id = $4",
        )
        .bind(previous_until_ms)
        .bind(new_sealed)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::NotFound);
        }
        let e = endpoint_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(e)
    }

    /// Create the endpoint's deliveries for the next at most `limit` events of the log it has
    /// not considered yet (those of the types it wants), and move its cursor past them.
    /// Answers how many events were read (`limit`: there may be more). Idempotent: replicas
    /// fanning out the same range create each delivery once.
    pub async fn fan_out(&self, endpoint_id: &str, limit: i64) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let e = endpoint_in(&mut tx, endpoint_id).await?;
        let events: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, type, subject FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(e.fanout_cursor)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = events.last().map(|(id, _, _)| *id) else {
            tx.rollback().await?;
            return Ok(0);
        };
        for (event_id, kind, subject) in &events {
            let Ok(kind) = kind.parse::<EventType>() else {
                continue;
            };
            if !e.wants(kind) {
                continue;
            }
            sqlx::query(
                "INSERT INTO event_deliveries (endpoint_id, event_id, subject, status, attempts, next_attempt_at_ms, \
                 replays, created_at_ms) VALUES ($1,$2,$3,$4,0,$5,0,$5) ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            )
            .bind(endpoint_id)
            .bind(event_id)
            .bind(subject)
            .bind(PENDING)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE webhook_endpoints SET fanout_cursor = $1 WHERE id = $2 AND fanout_cursor < $1",
        )
        .bind(last)
        .bind(endpoint_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Claim at most `limit` due deliveries of one endpoint for `owner` until `lease_until_ms`:
    /// pending, due, not leased by another replica, and first among the endpoint's pending
    /// deliveries of their subject. Oldest events first.
    pub async fn claim_deliveries(
        &self,
        endpoint_id: &str,
        owner: &str,
        now: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>> {
        let mut rows: Vec<ClaimRow> = sqlx::query_as(
            "UPDATE event_deliveries SET lease_owner = $1, lease_until_ms = $2 \
             WHERE id IN (SELECT d.id FROM event_deliveries d \
                 WHERE d.endpoint_id = $3 AND d.status = $4 AND d.next_attempt_at_ms <= $5 \
                 AND (d.lease_until_ms IS NULL OR d.lease_until_ms <= $5) \
                 AND NOT EXISTS (SELECT 1 FROM event_deliveries e WHERE e.endpoint_id = d.endpoint_id \
                     AND e.subject = d.subject AND e.status = $4 AND e.event_id < d.event_id) \
                 ORDER BY d.event_id LIMIT $6) \
             AND status = $4 AND (lease_until_ms IS NULL OR lease_until_ms <= $5) \
             RETURNING id, event_id, attempts, first_attempt_at_ms, replays",
        )
        .bind(owner)
        .bind(lease_until_ms)
        .bind(endpoint_id)
        .bind(PENDING)
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.sort_by_key(|r| r.event_id);
        Ok(rows
            .into_iter()
            .map(|r| ClaimedDelivery {
                id: r.id,
                event_id: r.event_id,
                attempts: r.attempts,
                first_attempt_at_ms: r.first_attempt_at_ms,
                replays: r.replays,
            })
            .collect())
    }

    /// Record one attempt and what it means for its delivery and its endpoint, in one
    /// transaction.
    pub async fn record_attempt(&self, a: &AttemptRecord<'_>) -> Result<EndpointHealth> {
        let now = now_ms();
        let d = a.delivery;
        let mut tx = self.pool().begin().await?;
        let delivered = a.outcome == AttemptOutcome::Delivered;
        sqlx::query(
            "INSERT INTO event_delivery_attempts (endpoint_id, delivery_id, event_id, attempt, replay, started_at_ms, \
             duration_ms, status_code, error, outcome) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
        )
        .bind(a.endpoint_id)
        .bind(d.id)
        .bind(d.event_id)
        .bind(d.attempts + 1)
        .bind(i64::from(d.replays > 0))
        .bind(a.started_at_ms)
        .bind(a.duration_ms)
        .bind(a.status_code.map(i64::from))
        .bind(&a.error)
        .bind(if delivered { DELIVERED } else { FAILED })
        .execute(&mut *tx)
        .await?;
        let mut health = EndpointHealth::default();
        match &a.outcome {
            AttemptOutcome::Delivered => {
                sqlx::query(
                    "UPDATE event_deliveries SET status = $1, attempts = attempts + 1, delivered_at_ms = $2, \
                     lease_owner = NULL, lease_until_ms = NULL, last_status_code = $3, last_error = NULL \
                     WHERE id = $4 AND lease_owner = $5",
                )
                .bind(DELIVERED)
                .bind(now)
                .bind(a.status_code.map(i64::from))
                .bind(d.id)
                .bind(a.owner)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET last_success_at_ms = $1, failing_since_ms = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(a.endpoint_id)
                .execute(&mut *tx)
                .await?;
            }
            AttemptOutcome::Failed {
                retry_at_ms,
                disable,
            } => {
                sqlx::query(
                    "UPDATE event_deliveries SET status = $1, attempts = attempts + 1, \
                     first_attempt_at_ms = COALESCE(first_attempt_at_ms, $2), next_attempt_at_ms = $3, \
                     lease_owner = NULL, lease_until_ms = NULL, last_status_code = $4, last_error = $5 \
                     WHERE id = $6 AND lease_owner = $7",
                )
                .bind(if retry_at_ms.is_some() { PENDING } else { FAILED })
                .bind(a.started_at_ms)
                .bind(retry_at_ms.unwrap_or(now))
                .bind(a.status_code.map(i64::from))
                .bind(&a.error)
                .bind(d.id)
                .bind(a.owner)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE webhook_endpoints SET failing_since_ms = COALESCE(failing_since_ms, $1) WHERE id = $2",
                )
                .bind(a.started_at_ms)
                .bind(a.endpoint_id)
                .execute(&mut *tx)
                .await?;
                let e = endpoint_in(&mut tx, a.endpoint_id).await?;
                let reason = disable.clone().or_else(|| {
                    e.failing_since_ms
                        .filter(|since| now - since >= a.disable_after_ms)
                        .map(|since| {
                            format!(
                                "every delivery failed for {} s (since {since} ms); last: {}",
                                (now - since) / 1000,
                                a.error.as_deref().unwrap_or("failed")
                            )
                        })
                });
                if let Some(reason) = reason.filter(|_| e.enabled) {
                    sqlx::query(
                        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $1, disabled_at_ms = $2 WHERE id = $3",
                    )
                    .bind(&reason)
                    .bind(now)
                    .bind(a.endpoint_id)
                    .execute(&mut *tx)
                    .await?;
                    health.disabled = Some(reason);
                }
            }
        }
        tx.commit().await?;
        Ok(health)
    }

    /// Deliver again every event of the endpoint's types committed at or after `since_ms`
    /// (up to its cursor, at most `limit`): delivered or failed ones become pending, due now,
    /// with a fresh retry window; events it never had (from before it was subscribed) get a
    /// delivery. Answers how many were queued. In order per subject like any delivery.
    pub async fn replay_deliveries(
        &self,
        endpoint_id: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<usize> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let e = endpoint_in(&mut tx, endpoint_id).await?;
        let types: Vec<String> = e
            .event_types
            .iter()
            .map(|t| format!("'{}'", t.as_str()))
            .collect();
        if types.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let events: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT id, subject FROM events WHERE occurred_at_ms >= $1 AND id <= $2 AND type IN ({}) \
             ORDER BY id LIMIT $3",
            types.join(", ")
        ))
        .bind(since_ms)
        .bind(e.fanout_cursor)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for (event_id, subject) in &events {
            sqlx::query(
                "INSERT INTO event_deliveries (endpoint_id, event_id, subject, status, attempts, next_attempt_at_ms, \
                 replays, created_at_ms) VALUES ($1,$2,$3,$4,0,$5,1,$5) \
                 ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = $4, attempts = 0, next_attempt_at_ms = $5, \
                 first_attempt_at_ms = NULL, lease_owner = NULL, lease_until_ms = NULL, \
                 replays = event_deliveries.replays + 1",
            )
            .bind(endpoint_id)
            .bind(event_id)
            .bind(subject)
            .bind(PENDING)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// The endpoint's attempts, newest first, before attempt id `before` (paging).
    pub async fn delivery_attempts(
        &self,
        endpoint_id: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Attempt>> {
        Ok(sqlx::query_as(
            "SELECT a.id, a.event_id, e.type AS event_type, a.attempt, a.replay, a.started_at_ms, a.duration_ms, \
             a.status_code, a.error, a.outcome FROM event_delivery_attempts a JOIN events e ON e.id = a.event_id \
             WHERE a.endpoint_id = $1 AND a.id < $2 ORDER BY a.id DESC LIMIT $3",
        )
        .bind(endpoint_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?)
    }

    /// The endpoint's deliveries by status.
    pub async fn delivery_counts(&self, endpoint_id: &str) -> Result<DeliveryCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM event_deliveries WHERE endpoint_id = $1 GROUP BY status",
        )
        .bind(endpoint_id)
        .fetch_all(self.pool())
        .await?;
        let mut c = DeliveryCounts::default();
        for (status, n) in rows {
            match status.as_str() {
                PENDING => c.pending = n,
                DELIVERED => c.delivered = n,
                FAILED => c.failed = n,
                other => return Err(corrupt(format!("delivery status {other:?}"))),
            }
        }
        Ok(c)
    }

    /// The endpoint's attempts, summed.
    pub async fn attempt_counts(&self, endpoint_id: &str) -> Result<AttemptCounts> {
        let (sent, delivered, retried, replayed): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), \
             CAST(COALESCE(SUM(CASE WHEN outcome = 'delivered' THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(CASE WHEN attempt > 1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             CAST(COALESCE(SUM(replay), 0) AS BIGINT) \
             FROM event_delivery_attempts WHERE endpoint_id = $1",
        )
        .bind(endpoint_id)
        .fetch_one(self.pool())
        .await?;
        Ok(AttemptCounts {
            sent,
            delivered,
            failed: sent - delivered,
            retried,
            replayed,
        })
    }

    /// Forget attempts made, and deliveries delivered, before `horizon_ms` (the log itself is
    /// kept: a replay recreates a delivery). Answers the attempts removed.
    pub async fn prune_deliveries(&self, horizon_ms: i64) -> Result<u64> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query("DELETE FROM event_delivery_attempts WHERE started_at_ms < $1")
            .bind(horizon_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "DELETE FROM event_delivery_attempts WHERE delivery_id IN \
             (SELECT id FROM event_deliveries WHERE status = $1 AND delivered_at_ms < $2)",
        )
        .bind(DELIVERED)
        .bind(horizon_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM event_deliveries WHERE status = $1 AND delivered_at_ms < $2")
            .bind(DELIVERED)
            .bind(horizon_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}
