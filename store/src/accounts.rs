//! Procurement data: offers per sku (the latest price snapshot), the buyer-account pool with
//! database-backed budgets, and purchaser tasks for the assisted channel.
//!
//! Account choice is weighted-random among eligible accounts (active, not cooling down, under
//! today's cap and this minute's rate). A claim is a conditional increment of the account's
//! budget rows, so caps hold across any number of worker processes: a losing racer sees zero
//! rows affected and picks again.

use crate::{
    seal::Sealer,
    store::{Result, Store, StoreError, now_ms},
};
use procure_domain::{Secret, order::Platform, procurement::Candidate};
use procure_workflows::contract::PurchaserTaskRequest;
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub price_fen: i64,
    pub domestic_shipping_fen: i64,
    pub stock: Option<i64>,
    /// Taken out of procurement (its listing disappeared); stored offers are written active.
    #[serde(default = "yes")]
    pub active: bool,
}

fn yes() -> bool {
    true
}

/// A buyer account as operators see it; credentials never leave the store unsealed except to
/// the adapter that uses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuyerAccount {
    pub id: String,
    pub platform: Platform,
    pub label: String,
    pub weight: i64,
    pub daily_cap: i64,
    pub per_minute: i64,
    pub status: String,
    pub cooling_until_ms: i64,
    pub successes: i64,
    pub failures: i64,
    pub risk_events: i64,
}

#[derive(Clone, Debug)]
pub struct NewAccount {
    pub id: String,
    pub platform: Platform,
    pub label: String,
    pub weight: i64,
    pub daily_cap: i64,
    pub per_minute: i64,
    pub access_token: Secret,
}

/// How an attempt with an account went, for its health counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountOutcome {
    Success,
    Failure,
    /// The marketplace's risk control refused the account: cool it down.
    RiskControl {
        cool_for_ms: i64,
    },
}

const ACCOUNT_COLUMNS: &str = "id, platform, label, weight, daily_cap, per_minute, status, cooling_until_ms, \
     successes, failures, risk_events";

fn account_from_row(r: &sqlx::any::AnyRow) -> Result<BuyerAccount> {
    let platform: String = r.try_get("platform")?;
    Ok(BuyerAccount {
        id: r.try_get("id")?,
        platform: platform
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        label: r.try_get("label")?,
        weight: r.try_get("weight")?,
        daily_cap: r.try_get("daily_cap")?,
        per_minute: r.try_get("per_minute")?,
        status: r.try_get("status")?,
        cooling_until_ms: r.try_get("cooling_until_ms")?,
        successes: r.try_get("successes")?,
        failures: r.try_get("failures")?,
        risk_events: r.try_get("risk_events")?,
    })
}

/// A ranking candidate from an `offers` row (with `attempts` and `successes`): the supplier's
/// track record is Laplace-smoothed so a new supplier starts near, not at, perfect reliability.
pub(crate) fn candidate_from_row(r: &sqlx::any::AnyRow) -> Result<Candidate> {
    let platform: String = r.try_get("platform")?;
    let attempts: i64 = r.try_get("attempts")?;
    let successes: i64 = r.try_get("successes")?;
    Ok(Candidate {
        platform: platform
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        offer_id: r.try_get("offer_id")?,
        spec_id: r.try_get("spec_id")?,
        unit_price_fen: r.try_get("price_fen")?,
        domestic_shipping_fen: r.try_get("domestic_shipping_fen")?,
        reliability_bps: ((successes + 9) * 10_000 / (attempts + 10)).clamp(0, 10_000) as u32,
        stock: r.try_get("stock")?,
    })
}

/// Budget bucket names for a moment: today's order count and this minute's call count.
pub fn buckets(at_ms: i64) -> (String, String) {
    let day = at_ms.div_euclid(86_400_000);
    let minute = at_ms.div_euclid(60_000);
    (format!("d:{day}"), format!("m:{minute}"))
}

impl Store {
    // ----- offers ------------------------------------------------------------------------

    pub async fn upsert_offer(&self, o: &Offer) -> Result<()> {
        sqlx::query(
            "INSERT INTO offers (platform, offer_id, sku, spec_id, price_fen, domestic_shipping_fen, stock, active, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8) ON CONFLICT (platform, offer_id) DO UPDATE SET sku = excluded.sku, \
             spec_id = excluded.spec_id, price_fen = excluded.price_fen, domestic_shipping_fen = excluded.domestic_shipping_fen, \
             stock = excluded.stock, active = 1, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(o.platform.as_str())
        .bind(&o.offer_id)
        .bind(&o.sku)
        .bind(&o.spec_id)
        .bind(o.price_fen)
        .bind(o.domestic_shipping_fen)
        .bind(o.stock)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every active offer, by sku then platform.
    pub async fn offers(&self) -> Result<Vec<Offer>> {
        Ok(self
            .offers_all()
            .await?
            .into_iter()
            .filter(|o| o.active)
            .collect())
    }

    /// Every offer, active or not, by sku then platform.
    pub async fn offers_all(&self) -> Result<Vec<Offer>> {
        let rows = sqlx::query(
            "SELECT sku, platform, offer_id, spec_id, price_fen, domestic_shipping_fen, stock, active \
             FROM offers ORDER BY sku, platform, offer_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let platform: String = r.try_get("platform")?;
                let active: i64 = r.try_get("active")?;
                Ok(Offer {
                    sku: r.try_get("sku")?,
                    platform: platform
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
                    offer_id: r.try_get("offer_id")?,
                    spec_id: r.try_get("spec_id")?,
                    price_fen: r.try_get("price_fen")?,
                    domestic_shipping_fen: r.try_get("domestic_shipping_fen")?,
                    stock: r.try_get("stock")?,
                    active: active != 0,
                })
            })
            .collect()
    }

    /// Take an offer out of (or back into) procurement, e.g. when its listing disappears.
    pub async fn set_offer_active(
        &self,
        platform: Platform,
        offer_id: &str,
        active: bool,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE offers SET active = $1, updated_at_ms = $2 WHERE platform = $3 AND offer_id = $4",
        )
        .bind(i64::from(active))
        .bind(now_ms())
        .bind(platform.as_str())
        .bind(offer_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Every active offer of a sku as a ranking candidate, with its supplier's track record.
    pub async fn candidates(&self, sku: &str) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT platform, offer_id, spec_id, price_fen, domestic_shipping_fen, stock, attempts, successes \
             FROM offers WHERE sku = $1 AND active = 1",
        )
        .bind(sku)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(candidate_from_row).collect()
    }

    /// Count one purchase attempt against a supplier's record.
    pub async fn record_offer_attempt(
        &self,
        platform: Platform,
        offer_id: &str,
        success: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE offers SET attempts = attempts + 1, successes = successes + $1 WHERE platform = $2 AND offer_id = $3")
            .bind(i64::from(success))
            .bind(platform.as_str())
            .bind(offer_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    // ----- buyer accounts ----------------------------------------------------------------

    pub async fn add_account(&self, a: &NewAccount, sealer: &Sealer) -> Result<BuyerAccount> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO buyer_accounts (id, platform, label, weight, daily_cap, per_minute, status, credentials, created_at_ms, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,'active',$7,$8,$8)",
        )
        .bind(&a.id)
        .bind(a.platform.as_str())
        .bind(&a.label)
        .bind(a.weight)
        .bind(a.daily_cap)
        .bind(a.per_minute)
        .bind(sealer.seal_secret(&a.access_token))
        .bind(now)
        .execute(self.pool())
        .await?;
        self.account(&a.id).await
    }

    pub async fn account(&self, id: &str) -> Result<BuyerAccount> {
        let row = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        account_from_row(&row)
    }

    pub async fn accounts(&self, platform: Option<Platform>) -> Result<Vec<BuyerAccount>> {
        let rows = sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts WHERE ($1 = '' OR platform = $1) ORDER BY platform, id"
        ))
        .bind(platform.map(|p| p.as_str()).unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Change an account's settings; `None` leaves a field as it is.
    pub async fn update_account(
        &self,
        id: &str,
        weight: Option<i64>,
        daily_cap: Option<i64>,
        per_minute: Option<i64>,
        status: Option<&str>,
        access_token: Option<(&Secret, &Sealer)>,
    ) -> Result<BuyerAccount> {
        let n = sqlx::query(
            "UPDATE buyer_accounts SET weight = COALESCE($1, weight), daily_cap = COALESCE($2, daily_cap), \
             per_minute = COALESCE($3, per_minute), status = COALESCE($4, status), credentials = COALESCE($5, credentials), \
             updated_at_ms = $6 WHERE id = $7",
        )
        .bind(weight)
        .bind(daily_cap)
        .bind(per_minute)
        .bind(status)
        .bind(access_token.map(|(s, sealer)| sealer.seal_secret(s)))
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.account(id).await
    }

    /// The access token of an account, unsealed for the adapter that calls the marketplace.
    pub async fn account_token(&self, id: &str, sealer: &Sealer) -> Result<Secret> {
        let row = sqlx::query("SELECT credentials FROM buyer_accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(StoreError::NotFound)?;
        sealer
            .open_secret(&row.try_get::<String, _>("credentials")?)
            .map_err(|e| StoreError::Corrupt(format!("account credentials: {e}")))
    }

    /// Claim one order's worth of budget on an eligible account of `platform`, chosen by
    /// weight with `pick` in [0, 1). `None` when every account is disabled, cooling down or
    /// out of budget (or in `exclude`).
    pub async fn claim_account(
        &self,
        platform: Platform,
        exclude: &[String],
        at_ms: i64,
        pick: f64,
    ) -> Result<Option<BuyerAccount>> {
        let (day, minute) = buckets(at_ms);
        for _ in 0..8 {
            let rows = sqlx::query(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts a WHERE platform = $1 AND status = 'active' \
                 AND cooling_until_ms <= $2 \
                 AND COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $3), 0) < daily_cap \
                 AND COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $4), 0) < per_minute \
                 ORDER BY id"
            ))
            .bind(platform.as_str())
            .bind(at_ms)
            .bind(&day)
            .bind(&minute)
            .fetch_all(self.pool())
            .await?;
            let eligible: Vec<BuyerAccount> = rows
                .iter()
                .map(account_from_row)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .filter(|a| !exclude.contains(&a.id))
                .collect();
            let total: i64 = eligible.iter().map(|a| a.weight).sum();
            if total <= 0 {
                return Ok(None);
            }
            let mut target = (pick.clamp(0.0, 0.999_999) * total as f64) as i64;
            let chosen = eligible
                .iter()
                .find(|a| {
                    target -= a.weight;
                    target < 0
                })
                .unwrap_or(&eligible[eligible.len() - 1])
                .clone();
            let mut tx = self.pool().begin().await?;
            let mut ok = true;
            for (bucket, cap) in [(&day, chosen.daily_cap), (&minute, chosen.per_minute)] {
                let n = sqlx::query(
                    "INSERT INTO account_budget (account_id, bucket, used) VALUES ($1, $2, 1) \
                     ON CONFLICT (account_id, bucket) DO UPDATE SET used = account_budget.used + 1 \
                     WHERE account_budget.used < $3",
                )
                .bind(&chosen.id)
                .bind(bucket)
                .bind(cap)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                ok &= n == 1;
            }
            if ok {
                tx.commit().await?;
                return Ok(Some(chosen));
            }
            tx.rollback().await?;
        }
        Ok(None)
    }

    /// Budget used by an account in a bucket (for tests and the admin view).
    pub async fn account_budget_used(&self, id: &str, bucket: &str) -> Result<i64> {
        let row =
            sqlx::query("SELECT used FROM account_budget WHERE account_id = $1 AND bucket = $2")
                .bind(id)
                .bind(bucket)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|r| r.try_get("used")).transpose()?.unwrap_or(0))
    }

    pub async fn record_account_outcome(&self, id: &str, outcome: AccountOutcome) -> Result<()> {
        let (s, f, r, cool_until) = match outcome {
            AccountOutcome::Success => (1, 0, 0, 0),
            AccountOutcome::Failure => (0, 1, 0, 0),
            AccountOutcome::RiskControl { cool_for_ms } => (0, 0, 1, now_ms() + cool_for_ms),
        };
        sqlx::query(
            "UPDATE buyer_accounts SET successes = successes + $1, failures = failures + $2, risk_events = risk_events + $3, \
             cooling_until_ms = CASE WHEN $4 > cooling_until_ms THEN $4 ELSE cooling_until_ms END, updated_at_ms = $5 WHERE id = $6",
        )
        .bind(s)
        .bind(f)
        .bind(r)
        .bind(cool_until)
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A purchase a person (or browser agent) makes for us on a platform without a buyer API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaserTask {
    pub id: String,
    pub order_id: String,
    pub line_no: i64,
    pub platform: String,
    pub offer_id: String,
    pub quantity: i64,
    pub max_total_fen: i64,
    pub status: String,
    pub marketplace_order_id: Option<String>,
    pub paid_fen: Option<i64>,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
}

const TASK_COLUMNS: &str = "id, order_id, line_no, platform, offer_id, quantity, max_total_fen, status, \
     marketplace_order_id, paid_fen, due_at_ms, created_at_ms";

fn task_from_row(r: &sqlx::any::AnyRow) -> Result<PurchaserTask> {
    Ok(PurchaserTask {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        line_no: r.try_get("line_no")?,
        platform: r.try_get("platform")?,
        offer_id: r.try_get("offer_id")?,
        quantity: r.try_get("quantity")?,
        max_total_fen: r.try_get("max_total_fen")?,
        status: r.try_get("status")?,
        marketplace_order_id: r.try_get("marketplace_order_id")?,
        paid_fen: r.try_get("paid_fen")?,
        due_at_ms: r.try_get("due_at_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

impl Store {
    /// Open (or reopen after expiry) the task for one line and offer; idempotent.
    pub async fn open_purchaser_task(&self, req: &PurchaserTaskRequest) -> Result<PurchaserTask> {
        let id = format!("pt_{}_{}_{}", req.order_id, req.line_no, req.offer_id);
        sqlx::query(
            "INSERT INTO purchaser_tasks (id, order_id, line_no, platform, offer_id, quantity, max_total_fen, status, due_at_ms, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,'open',$8,$9) ON CONFLICT (id) DO UPDATE SET status = 'open', due_at_ms = excluded.due_at_ms \
             WHERE purchaser_tasks.status = 'expired'",
        )
        .bind(&id)
        .bind(&req.order_id)
        .bind(i64::from(req.line_no))
        .bind(&req.platform)
        .bind(&req.offer_id)
        .bind(i64::from(req.quantity))
        .bind(req.max_total_fen)
        .bind(req.due_at_ms)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.purchaser_task(&id).await
    }

    pub async fn purchaser_task(&self, id: &str) -> Result<PurchaserTask> {
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM purchaser_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        task_from_row(&row)
    }

    pub async fn purchaser_tasks(&self, status: Option<&str>) -> Result<Vec<PurchaserTask>> {
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM purchaser_tasks WHERE ($1 = '' OR status = $1) ORDER BY due_at_ms, id LIMIT 500"
        ))
        .bind(status.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Expire an open task; false when it was completed first (the completion stands).
    pub async fn expire_purchaser_task(&self, id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE purchaser_tasks SET status = 'expired' WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Record a purchaser's completion exactly once: the task, the purchase and the workflow
    /// signal commit together; a second completion or one after expiry is a conflict.
    pub async fn complete_purchaser_task(
        &self,
        id: &str,
        marketplace_order_id: &str,
        paid_fen: i64,
    ) -> Result<PurchaserTask> {
        let task = self.purchaser_task(id).await?;
        if paid_fen > task.max_total_fen {
            return Err(StoreError::StateConflict(format!(
                "paid {paid_fen} fen is above the {} fen allowed for this task",
                task.max_total_fen
            )));
        }
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE purchaser_tasks SET status = 'completed', marketplace_order_id = $1, paid_fen = $2, completed_at_ms = $3 \
             WHERE id = $4 AND status = 'open'",
        )
        .bind(marketplace_order_id)
        .bind(paid_fen)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(StoreError::StateConflict(format!(
                "task is {}",
                task.status
            )));
        }
        sqlx::query(
            "INSERT INTO purchases (order_id, line_no, platform, marketplace_order_id, paid_fen, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (order_id, line_no) DO NOTHING",
        )
        .bind(&task.order_id)
        .bind(task.line_no)
        .bind(&task.platform)
        .bind(marketplace_order_id)
        .bind(paid_fen)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let signal = serde_json::json!({
            "signal": "purchaser_completed",
            "args": {"task_id": id, "marketplace_order_id": marketplace_order_id, "paid_fen": paid_fen},
        });
        crate::store::enqueue(&mut tx, "signal", &task.order_id, &signal).await?;
        tx.commit().await?;
        self.purchaser_task(id).await
    }
}
