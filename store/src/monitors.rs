//! Price monitors and what they observed: the monitors themselves (each mirrored to a Temporal
//! Schedule through the outbox), price snapshots with landed cost, alerts, and the recording of
//! a run, which also moves the offers procurement ranks and the listing price quotes use.

use crate::{
    catalogue::candidates_in,
    db::{Result, Store, StoreError, corrupt, json, money, parse},
    outbox::{OutboxMessage, enqueue},
};
pub use procure_domain::status::MonitorStatus;
use procure_domain::{
    Money,
    clock::now_ms,
    money::Currency,
    monitor::{AlertKind, OfferRef, Seen, assess},
    order::Platform,
    procurement::{Candidate, rank},
};
use procure_workflows::monitor::{Observation, Observed, RecordRun, RunSummary, WatchedOffer};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitor {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub threshold_bps: u32,
    pub destination_country: String,
    pub status: MonitorStatus,
    pub skus: Vec<String>,
    /// Changes made; the schedule reflects them once `synced_version` catches up.
    pub version: i64,
    pub synced_version: i64,
    pub sync_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct NewMonitor {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub threshold_bps: u32,
    pub destination_country: String,
    pub paused: bool,
    /// Products, each with offers to add to its candidates (may be empty: the product's
    /// known offers are watched).
    pub products: Vec<(String, Vec<OfferRef>)>,
}

/// The landed cost of one unit from an offer, as a run computed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landed {
    pub domestic_shipping_fen: i64,
    pub cost_fen: i64,
    pub cost: Money,
    pub line: String,
}

/// One row of a product's price history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub observed_at_ms: i64,
    pub listed: bool,
    pub price_fen: Option<i64>,
    pub stock: Option<i64>,
    pub landed: Option<Landed>,
    pub destination_country: String,
    pub monitor_id: String,
    pub run_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Alert {
    pub id: i64,
    pub monitor_id: String,
    pub run_key: String,
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub alert: AlertKind,
    pub observed_at_ms: i64,
}

const MONITOR_COLUMNS: &str = "id, name, cron, threshold_bps, destination_country, status, version, \
     synced_version, sync_error, created_at_ms, updated_at_ms";

#[derive(sqlx::FromRow)]
struct MonitorRow {
    id: String,
    name: String,
    cron: String,
    threshold_bps: i64,
    destination_country: String,
    status: String,
    version: i64,
    synced_version: i64,
    sync_error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl MonitorRow {
    fn with_skus(self, skus: Vec<String>) -> Result<Monitor> {
        Ok(Monitor {
            threshold_bps: u32::try_from(self.threshold_bps).map_err(corrupt)?,
            status: parse(&self.status)?,
            skus,
            id: self.id,
            name: self.name,
            cron: self.cron,
            destination_country: self.destination_country,
            version: self.version,
            synced_version: self.synced_version,
            sync_error: self.sync_error,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: i64,
    monitor_id: String,
    run_key: String,
    sku: String,
    platform: String,
    offer_id: String,
    detail: String,
    observed_at_ms: i64,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(r: AlertRow) -> Result<Alert> {
        Ok(Alert {
            platform: parse(&r.platform)?,
            alert: json(&r.detail)?,
            id: r.id,
            monitor_id: r.monitor_id,
            run_key: r.run_key,
            sku: r.sku,
            offer_id: r.offer_id,
            observed_at_ms: r.observed_at_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SnapshotRow {
    platform: String,
    offer_id: String,
    spec_id: String,
    observed_at_ms: i64,
    listed: i64,
    price_fen: Option<i64>,
    stock: Option<i64>,
    domestic_shipping_fen: Option<i64>,
    landed_cost_fen: Option<i64>,
    landed_cost_minor: Option<i64>,
    landed_currency: Option<String>,
    shipping_line: Option<String>,
    destination_country: String,
    monitor_id: String,
    run_key: String,
}

impl TryFrom<SnapshotRow> for Snapshot {
    type Error = StoreError;

    fn try_from(r: SnapshotRow) -> Result<Snapshot> {
        let landed = match (
            r.landed_cost_fen,
            r.landed_cost_minor,
            r.landed_currency,
            r.shipping_line,
        ) {
            (Some(cost_fen), Some(minor), Some(currency), Some(line)) => Some(Landed {
                domestic_shipping_fen: r.domestic_shipping_fen.unwrap_or_default(),
                cost_fen,
                cost: money(minor, &currency)?,
                line,
            }),
            _ => None,
        };
        Ok(Snapshot {
            platform: parse(&r.platform)?,
            offer_id: r.offer_id,
            spec_id: r.spec_id,
            observed_at_ms: r.observed_at_ms,
            listed: r.listed != 0,
            price_fen: r.price_fen,
            stock: r.stock,
            landed,
            destination_country: r.destination_country,
            monitor_id: r.monitor_id,
            run_key: r.run_key,
        })
    }
}

impl Store {
    // ----- monitors ----------------------------------------------------------------------

    /// Create a monitor with its products (each must be a listing), register any new offers
    /// as candidates (unpriced until the first run), and queue the schedule's creation.
    pub async fn create_monitor(&self, m: &NewMonitor) -> Result<Monitor> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // Roll back explicitly on a refusal: a dropped transaction is rolled back later, and
        // SQLite's writer lock would be held until then.
        let inserted: Result<()> = async {
            let status = if m.paused {
                MonitorStatus::Paused
            } else {
                MonitorStatus::Active
            };
            sqlx::query(
                "INSERT INTO price_monitors (id, name, cron, threshold_bps, destination_country, status, version, \
                 synced_version, created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,1,0,$7,$7)",
            )
            .bind(&m.id)
            .bind(&m.name)
            .bind(&m.cron)
            .bind(i64::from(m.threshold_bps))
            .bind(&m.destination_country)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (sku, offers) in &m.products {
                let (domestic,): (i64,) =
                    sqlx::query_as("SELECT domestic_shipping_fen FROM listings WHERE sku = $1")
                        .bind(sku)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| StoreError::UnknownSku(sku.clone()))?;
                sqlx::query("INSERT INTO price_monitor_products (monitor_id, sku) VALUES ($1,$2)")
                    .bind(&m.id)
                    .bind(sku)
                    .execute(&mut *tx)
                    .await?;
                for o in offers {
                    // An offer's SKUs may belong to different products; an empty spec names the
                    // listing's only one, so it collides with any spec of another product.
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT sku, spec_id FROM offers WHERE platform = $1 AND offer_id = $2",
                    )
                    .bind(o.platform.as_str())
                    .bind(&o.offer_id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let same = |spec: &str| spec == o.spec_id || spec.is_empty() || o.spec_id.is_empty();
                    if let Some((owner, _)) = rows.iter().find(|(owner, spec)| owner != sku && same(spec)) {
                        return Err(StoreError::StateConflict(format!(
                            "{} offer {} already belongs to product {owner}",
                            o.platform.as_str(),
                            o.offer_id
                        )));
                    }
                    let owner = rows.iter().find(|(_, spec)| *spec == o.spec_id);
                    match owner {
                        Some(_) => {}
                        None => {
                            sqlx::query(
                                "INSERT INTO offers (platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, \
                                 stock, active, updated_at_ms) VALUES ($1,$2,$3,$4,0,$5,NULL,1,$6)",
                            )
                            .bind(o.platform.as_str())
                            .bind(&o.offer_id)
                            .bind(sku)
                            .bind(&o.spec_id)
                            .bind(domestic)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
            }
            enqueue(&mut tx, &m.id, &OutboxMessage::SyncSchedule { version: 1 }).await?;
            Ok(())
        }
        .await;
        if let Err(e) = inserted {
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await?;
        self.monitor(&m.id).await
    }

    /// A monitor, including one being deleted (the dispatcher still has to remove its
    /// schedule).
    pub async fn monitor_any(&self, id: &str) -> Result<Monitor> {
        let row: MonitorRow = sqlx::query_as(&format!(
            "SELECT {MONITOR_COLUMNS} FROM price_monitors WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        let skus = self.monitor_skus(id).await?;
        row.with_skus(skus)
    }

    /// A monitor that has not been deleted.
    pub async fn monitor(&self, id: &str) -> Result<Monitor> {
        let m = self.monitor_any(id).await?;
        if m.status == MonitorStatus::Deleted {
            return Err(StoreError::NotFound);
        }
        Ok(m)
    }

    async fn monitor_skus(&self, id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT sku FROM price_monitor_products WHERE monitor_id = $1 ORDER BY sku",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|(sku,)| sku).collect())
    }

    /// Every monitor that has not been deleted, oldest first.
    pub async fn monitors(&self) -> Result<Vec<Monitor>> {
        let rows: Vec<MonitorRow> = sqlx::query_as(&format!(
            "SELECT {MONITOR_COLUMNS} FROM price_monitors WHERE status <> '{deleted}' ORDER BY created_at_ms, id",
            deleted = MonitorStatus::Deleted,
        ))
        .fetch_all(self.pool())
        .await?;
        let products: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT p.monitor_id, p.sku FROM price_monitor_products p \
             JOIN price_monitors m ON m.id = p.monitor_id WHERE m.status <> '{deleted}' ORDER BY p.sku",
            deleted = MonitorStatus::Deleted,
        ))
        .fetch_all(self.pool())
        .await?;
        let mut skus: HashMap<String, Vec<String>> = HashMap::new();
        for (monitor_id, sku) in products {
            skus.entry(monitor_id).or_default().push(sku);
        }
        rows.into_iter()
            .map(|r| {
                let mine = skus.remove(&r.id).unwrap_or_default();
                r.with_skus(mine)
            })
            .collect()
    }

    /// Pause, resume or delete: one version further, and the schedule follows through the
    /// outbox. Setting the status it already has changes nothing. A deleted monitor is gone.
    pub async fn set_monitor_status(&self, id: &str, status: MonitorStatus) -> Result<Monitor> {
        let mut tx = self.pool().begin().await?;
        let (current, version): (String, i64) =
            sqlx::query_as("SELECT status, version FROM price_monitors WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let current: MonitorStatus = parse(&current)?;
        if current == MonitorStatus::Deleted {
            return Err(StoreError::NotFound);
        }
        if current != status {
            sqlx::query(
                "UPDATE price_monitors SET status = $1, version = $2, updated_at_ms = $3 WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(version + 1)
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let sync = OutboxMessage::SyncSchedule {
                version: version + 1,
            };
            enqueue(&mut tx, id, &sync).await?;
        }
        tx.commit().await?;
        self.monitor_any(id).await
    }

    /// Queue a run now (the schedule's trigger), whatever the cron says.
    pub async fn trigger_monitor(&self, id: &str) -> Result<Monitor> {
        let m = self.monitor(id).await?;
        self.enqueue(id, &OutboxMessage::TriggerSchedule {}).await?;
        Ok(m)
    }

    /// Queue a schedule sync for every monitor that has, or still needs to lose, a schedule:
    /// run when the API starts, so schedules lost with a Temporal database (or deleted by hand)
    /// come back. Returns how many were queued.
    pub async fn resync_schedules(&self) -> Result<usize> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT id, version FROM price_monitors WHERE status <> '{deleted}' OR synced_version < version",
            deleted = MonitorStatus::Deleted,
        ))
        .fetch_all(self.pool())
        .await?;
        let mut tx = self.pool().begin().await?;
        for (id, version) in &rows {
            let sync = OutboxMessage::SyncSchedule { version: *version };
            enqueue(&mut tx, id, &sync).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// The schedule now reflects `version` (never moves backwards).
    pub async fn mark_schedule_synced(&self, id: &str, version: i64) -> Result<()> {
        sqlx::query(
            "UPDATE price_monitors SET synced_version = $1, sync_error = NULL \
             WHERE id = $2 AND synced_version < $1",
        )
        .bind(version)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_schedule_error(&self, id: &str, error: &str) -> Result<()> {
        sqlx::query("UPDATE price_monitors SET sync_error = $1 WHERE id = $2")
            .bind(error.chars().take(500).collect::<String>())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every offer (active or not, so a listing that comes back is noticed) of the monitor's
    /// products; `None` when the monitor does not exist or was deleted.
    pub async fn monitor_offers(&self, id: &str) -> Result<Option<Vec<WatchedOffer>>> {
        match self.monitor(id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        }
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT o.sku, o.platform, o.offer_id, o.spec_id FROM offers o \
             JOIN price_monitor_products p ON p.sku = o.sku WHERE p.monitor_id = $1 \
             ORDER BY o.sku, o.platform, o.offer_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(sku, platform, offer_id, spec_id)| {
                Ok(WatchedOffer {
                    sku,
                    offer: OfferRef {
                        platform: parse(&platform)?,
                        offer_id,
                        spec_id,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    // ----- runs --------------------------------------------------------------------------

    /// Record a run in one transaction: a snapshot per observed offer, alerts against what
    /// was known before, the offers procurement ranks (price, stock, listed or not) and each
    /// product's listing price (its best channel now). Recording a run key twice returns the
    /// first recording's summary and changes nothing. `landed` holds the landed cost of each
    /// listed offer, by offer id, where it could be computed.
    pub async fn record_run(
        &self,
        run: &RecordRun,
        landed: &HashMap<(Platform, String), Landed>,
    ) -> Result<RunSummary> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO price_monitor_runs (run_key, monitor_id, summary, recorded_at_ms) VALUES ($1,$2,'{}',$3) \
             ON CONFLICT (run_key) DO NOTHING",
        )
        .bind(&run.run_key)
        .bind(&run.monitor_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            let (summary,): (String,) =
                sqlx::query_as("SELECT summary FROM price_monitor_runs WHERE run_key = $1")
                    .bind(&run.run_key)
                    .fetch_one(self.pool())
                    .await?;
            return json(&summary);
        }
        let (threshold, destination): (i64, String) = sqlx::query_as(
            "SELECT threshold_bps, destination_country FROM price_monitors WHERE id = $1",
        )
        .bind(&run.monitor_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let threshold = u32::try_from(threshold).map_err(corrupt)?;

        let skus: BTreeSet<&str> = run.observations.iter().map(|o| o.sku.as_str()).collect();
        let mut best_before = BTreeMap::new();
        for sku in &skus {
            best_before.insert(*sku, best_candidate(&mut tx, sku).await?);
        }

        let mut summary = RunSummary {
            monitor_id: run.monitor_id.clone(),
            run_key: run.run_key.clone(),
            offers: run.observations.len() as u32,
            ..Default::default()
        };
        for obs in &run.observations {
            let seen = match &obs.outcome {
                Observed::Seen(seen) => *seen,
                Observed::Failed { .. } => {
                    summary.failed += 1;
                    continue;
                }
            };
            let before = known_state(&mut tx, &obs.offer).await?;
            // An imported product's answer shows its offers' prices: it has changed.
            crate::products::touch(&mut tx, obs.offer.platform, &obs.offer.offer_id, now).await?;
            let key = (obs.offer.platform, obs.offer.offer_id.clone());
            insert_snapshot(&mut tx, run, obs, seen, landed.get(&key), &destination).await?;
            match seen {
                Seen::Listed { price_fen, stock } => {
                    summary.listed += 1;
                    if matches!(before, Some(Seen::Listed { price_fen: p, .. }) if p != price_fen) {
                        summary.price_changes += 1;
                    }
                    sqlx::query(
                        "UPDATE offers SET price_fen = $1, stock = $2, active = 1, updated_at_ms = $3 \
                         WHERE platform = $4 AND offer_id = $5 AND spec_id = $6",
                    )
                    .bind(price_fen)
                    .bind(stock)
                    .bind(now)
                    .bind(obs.offer.platform.as_str())
                    .bind(&obs.offer.offer_id)
                    .bind(&obs.offer.spec_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Seen::Gone => {
                    summary.gone += 1;
                    sqlx::query(
                        "UPDATE offers SET active = 0, updated_at_ms = $1 WHERE platform = $2 AND offer_id = $3 \
                         AND spec_id = $4",
                    )
                    .bind(now)
                    .bind(obs.offer.platform.as_str())
                    .bind(&obs.offer.offer_id)
                    .bind(&obs.offer.spec_id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for alert in assess(before, seen, threshold) {
                sqlx::query(
                    "INSERT INTO price_alerts (run_key, monitor_id, sku, platform, offer_id, kind, detail, observed_at_ms) \
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
                )
                .bind(&run.run_key)
                .bind(&run.monitor_id)
                .bind(&obs.sku)
                .bind(obs.offer.platform.as_str())
                .bind(&obs.offer.offer_id)
                .bind(alert.name())
                .bind(serde_json::to_string(&alert).map_err(corrupt)?)
                .bind(obs.observed_at_ms)
                .execute(&mut *tx)
                .await?;
                summary
                    .alerts
                    .push(describe_alert(&obs.sku, &obs.offer, &alert));
            }
        }

        for sku in &skus {
            let had_channel = best_before.remove(sku).flatten().is_some();
            let Some(best) = best_candidate(&mut tx, sku).await? else {
                if had_channel {
                    summary
                        .ranking
                        .push(format!("{sku}: no channel can supply it any more"));
                }
                continue;
            };
            // Quotes follow the channel procurement will try first.
            let was: Option<(String, String, i64)> =
                sqlx::query_as("SELECT platform, offer_id, price_fen FROM listings WHERE sku = $1")
                    .bind(*sku)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((was_platform, was_offer, was_price)) = was else {
                continue;
            };
            if (was_platform.as_str(), was_offer.as_str(), was_price)
                == (
                    best.platform.as_str(),
                    best.offer_id.as_str(),
                    best.unit_price_fen,
                )
            {
                continue;
            }
            sqlx::query(
                "UPDATE listings SET platform = $1, offer_id = $2, spec_id = $3, price_fen = $4, updated_at_ms = $5 \
                 WHERE sku = $6",
            )
            .bind(best.platform.as_str())
            .bind(&best.offer_id)
            .bind(&best.spec_id)
            .bind(best.unit_price_fen)
            .bind(now)
            .bind(*sku)
            .execute(&mut *tx)
            .await?;
            summary.ranking.push(format!(
                "{sku}: quoted from {} {} at {} (was {was_platform} {was_offer} at {})",
                best.platform.as_str(),
                best.offer_id,
                Money::new(best.unit_price_fen, Currency::CNY),
                Money::new(was_price, Currency::CNY)
            ));
        }

        sqlx::query("UPDATE price_monitor_runs SET summary = $1 WHERE run_key = $2")
            .bind(serde_json::to_string(&summary).map_err(corrupt)?)
            .bind(&run.run_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(summary)
    }

    /// The runs of a monitor, newest first.
    pub async fn monitor_runs(&self, id: &str, limit: i64) -> Result<Vec<(i64, RunSummary)>> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT recorded_at_ms, summary FROM price_monitor_runs WHERE monitor_id = $1 \
             ORDER BY recorded_at_ms DESC, run_key DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|(at_ms, summary)| Ok((at_ms, json(&summary)?)))
            .collect()
    }

    /// A product's price history, newest first, at most `limit` rows (all offers).
    pub async fn price_history(&self, sku: &str, limit: i64) -> Result<Vec<Snapshot>> {
        let rows: Vec<SnapshotRow> = sqlx::query_as(
            "SELECT platform, offer_id, spec_id, observed_at_ms, listed, price_fen, stock, domestic_shipping_fen, \
             landed_cost_fen, landed_cost_minor, landed_currency, shipping_line, destination_country, monitor_id, run_key \
             FROM price_snapshots WHERE sku = $1 ORDER BY observed_at_ms DESC, id DESC LIMIT $2",
        )
        .bind(sku)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Snapshot::try_from).collect()
    }

    /// Alerts, newest first, of one monitor or one product (or all).
    pub async fn price_alerts(
        &self,
        monitor_id: Option<&str>,
        sku: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Alert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(
            "SELECT id, monitor_id, run_key, sku, platform, offer_id, detail, observed_at_ms FROM price_alerts \
             WHERE ($1 IS NULL OR monitor_id = $1) AND ($2 IS NULL OR sku = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(monitor_id)
        .bind(sku)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Alert::try_from).collect()
    }
}

/// The offer procurement would try first for one unit, from the offers as they stand in `tx`.
async fn best_candidate(tx: &mut Transaction<'_, Any>, sku: &str) -> Result<Option<Candidate>> {
    let candidates = candidates_in(tx, sku).await?;
    Ok(rank(&candidates, 1).into_iter().next())
}

/// What was known of an offer before this run: its last snapshot, else the offers table
/// (priced and active = listed; inactive = gone), else nothing.
async fn known_state(tx: &mut Transaction<'_, Any>, offer: &OfferRef) -> Result<Option<Seen>> {
    let last: Option<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT listed, price_fen, stock FROM price_snapshots WHERE platform = $1 AND offer_id = $2 \
         AND spec_id = $3 ORDER BY id DESC LIMIT 1",
    )
    .bind(offer.platform.as_str())
    .bind(&offer.offer_id)
    .bind(&offer.spec_id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((listed, price, stock)) = last {
        return Ok(Some(match (listed, price) {
            (0, _) | (_, None) => Seen::Gone,
            (_, Some(price_fen)) => Seen::Listed { price_fen, stock },
        }));
    }
    let row: Option<(i64, Option<i64>, i64)> = sqlx::query_as(
        "SELECT price_fen, stock, active FROM offers WHERE platform = $1 AND offer_id = $2 AND spec_id = $3",
    )
    .bind(offer.platform.as_str())
    .bind(&offer.offer_id)
    .bind(&offer.spec_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        None => None,
        Some((_, _, 0)) => Some(Seen::Gone),
        Some((price_fen, stock, _)) if price_fen > 0 => Some(Seen::Listed { price_fen, stock }),
        Some(_) => None,
    })
}

async fn insert_snapshot(
    tx: &mut Transaction<'_, Any>,
    run: &RecordRun,
    obs: &Observation,
    seen: Seen,
    landed: Option<&Landed>,
    destination: &str,
) -> Result<()> {
    let (listed, price, stock) = match seen {
        Seen::Listed { price_fen, stock } => (1i64, Some(price_fen), stock),
        Seen::Gone => (0, None, None),
    };
    let landed = landed.filter(|_| listed == 1);
    sqlx::query(
        "INSERT INTO price_snapshots (run_key, monitor_id, sku, platform, offer_id, spec_id, observed_at_ms, listed, \
         price_fen, stock, domestic_shipping_fen, landed_cost_fen, landed_cost_minor, landed_currency, shipping_line, \
         destination_country) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)",
    )
    .bind(&run.run_key)
    .bind(&run.monitor_id)
    .bind(&obs.sku)
    .bind(obs.offer.platform.as_str())
    .bind(&obs.offer.offer_id)
    .bind(&obs.offer.spec_id)
    .bind(obs.observed_at_ms)
    .bind(listed)
    .bind(price)
    .bind(stock)
    .bind(landed.map(|l| l.domestic_shipping_fen))
    .bind(landed.map(|l| l.cost_fen))
    .bind(landed.map(|l| l.cost.minor))
    .bind(landed.map(|l| l.cost.currency.code().to_owned()))
    .bind(landed.map(|l| l.line.clone()))
    .bind(destination)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// "S1 1688 6001: price_up 17.80 → 26.70 CNY (+50.00 %)".
fn describe_alert(sku: &str, offer: &OfferRef, alert: &AlertKind) -> String {
    let at = format!("{sku} {} {}", offer.platform.as_str(), offer.offer_id);
    match alert {
        AlertKind::PriceUp {
            from_fen,
            to_fen,
            change_bps,
        }
        | AlertKind::PriceDown {
            from_fen,
            to_fen,
            change_bps,
        } => format!(
            "{at}: {} {} → {} ({}{}.{:02} %)",
            alert.name(),
            Money::new(*from_fen, Currency::CNY),
            Money::new(*to_fen, Currency::CNY),
            if *change_bps < 0 { '-' } else { '+' },
            change_bps.abs() / 100,
            change_bps.abs() % 100
        ),
        other => format!("{at}: {}", other.name()),
    }
}
