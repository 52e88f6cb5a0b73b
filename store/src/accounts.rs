//! Buyer accounts and purchaser tasks: the pool of marketplace accounts purchases are made
//! with, with database-backed budgets, and the tasks of the assisted channel (a person buys for
//! us on a platform without a buyer API).
//!
//! Account choice is weighted-random among eligible accounts (active, not cooling down, under
//! today's cap and this minute's rate). A claim is a conditional increment of the account's
//! budget rows, so caps hold across any number of worker processes: a losing racer sees zero
//! rows affected and picks again.

use crate::{
    db::{Result, Store, StoreError, parse},
    events::append,
    outbox::{OrderSignal, OutboxMessage, enqueue},
    shipments::{NewSellerShipment, ShipmentSource, insert_shipment},
};
use procure_domain::{
    Secret,
    clock::now_ms,
    order::Platform,
    seal::Sealer,
    status::{AccountStatus, PurchaserTaskStatus},
};
use procure_workflows::contract::{PurchaserResult, PurchaserTaskRequest};
use serde::{Deserialize, Serialize};

/// A buyer account as operators see it; credentials never leave the store unsealed except to
/// the adapter that uses them.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BuyerAccount {
    pub id: String,
    pub platform: Platform,
    pub label: String,
    pub weight: i64,
    pub daily_cap: i64,
    pub per_minute: i64,
    pub status: AccountStatus,
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

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: String,
    platform: String,
    label: String,
    weight: i64,
    daily_cap: i64,
    per_minute: i64,
    status: String,
    cooling_until_ms: i64,
    successes: i64,
    failures: i64,
    risk_events: i64,
}

impl TryFrom<AccountRow> for BuyerAccount {
    type Error = StoreError;

    fn try_from(r: AccountRow) -> Result<BuyerAccount> {
        Ok(BuyerAccount {
            platform: parse(&r.platform)?,
            status: parse(&r.status)?,
            id: r.id,
            label: r.label,
            weight: r.weight,
            daily_cap: r.daily_cap,
            per_minute: r.per_minute,
            cooling_until_ms: r.cooling_until_ms,
            successes: r.successes,
            failures: r.failures,
            risk_events: r.risk_events,
        })
    }
}

/// Budget bucket names for a moment: today's order count and this minute's call count.
pub fn buckets(at_ms: i64) -> (String, String) {
    let day = at_ms.div_euclid(86_400_000);
    let minute = at_ms.div_euclid(60_000);
    (format!("d:{day}"), format!("m:{minute}"))
}

impl Store {
    // ----- buyer accounts ----------------------------------------------------------------

    pub async fn add_account(&self, a: &NewAccount, sealer: &Sealer) -> Result<BuyerAccount> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO buyer_accounts (id, platform, label, weight, daily_cap, per_minute, status, credentials, created_at_ms, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$9)",
        )
        .bind(&a.id)
        .bind(a.platform.as_str())
        .bind(&a.label)
        .bind(a.weight)
        .bind(a.daily_cap)
        .bind(a.per_minute)
        .bind(AccountStatus::Active.as_str())
        .bind(sealer.seal_secret(&a.access_token))
        .bind(now)
        .execute(self.pool())
        .await?;
        self.account(&a.id).await
    }

    pub async fn account(&self, id: &str) -> Result<BuyerAccount> {
        let row: AccountRow = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    pub async fn accounts(&self, platform: Option<Platform>) -> Result<Vec<BuyerAccount>> {
        let rows: Vec<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts WHERE ($1 = '' OR platform = $1) ORDER BY platform, id"
        ))
        .bind(platform.map(|p| p.as_str()).unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(BuyerAccount::try_from).collect()
    }

    /// Change an account's settings; `None` leaves a field as it is.
    pub async fn update_account(
        &self,
        id: &str,
        weight: Option<i64>,
        daily_cap: Option<i64>,
        per_minute: Option<i64>,
        status: Option<AccountStatus>,
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
        .bind(status.map(AccountStatus::as_str))
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
        let (sealed,): (String,) =
            sqlx::query_as("SELECT credentials FROM buyer_accounts WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .ok_or(StoreError::NotFound)?;
        sealer
            .open_secret(&sealed)
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
            let rows: Vec<AccountRow> = sqlx::query_as(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM buyer_accounts a WHERE platform = $1 AND status = '{active}' \
                 AND cooling_until_ms <= $2 \
                 AND COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $3), 0) < daily_cap \
                 AND COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $4), 0) < per_minute \
                 ORDER BY id",
                active = AccountStatus::Active,
            ))
            .bind(platform.as_str())
            .bind(at_ms)
            .bind(&day)
            .bind(&minute)
            .fetch_all(self.pool())
            .await?;
            let eligible: Vec<BuyerAccount> = rows
                .into_iter()
                .map(BuyerAccount::try_from)
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
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT used FROM account_budget WHERE account_id = $1 AND bucket = $2")
                .bind(id)
                .bind(bucket)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map_or(0, |(used,)| used))
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
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PurchaserTask {
    pub id: String,
    pub order_id: String,
    pub line_no: i64,
    pub platform: String,
    pub offer_id: String,
    pub quantity: i64,
    pub max_total_fen: i64,
    pub status: PurchaserTaskStatus,
    pub marketplace_order_id: Option<String>,
    pub paid_fen: Option<i64>,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
}

const TASK_COLUMNS: &str = "id, order_id, line_no, platform, offer_id, quantity, max_total_fen, status, \
     marketplace_order_id, paid_fen, due_at_ms, created_at_ms";

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    order_id: String,
    line_no: i64,
    platform: String,
    offer_id: String,
    quantity: i64,
    max_total_fen: i64,
    status: String,
    marketplace_order_id: Option<String>,
    paid_fen: Option<i64>,
    due_at_ms: i64,
    created_at_ms: i64,
}

impl TryFrom<TaskRow> for PurchaserTask {
    type Error = StoreError;

    fn try_from(r: TaskRow) -> Result<PurchaserTask> {
        Ok(PurchaserTask {
            status: parse(&r.status)?,
            id: r.id,
            order_id: r.order_id,
            line_no: r.line_no,
            platform: r.platform,
            offer_id: r.offer_id,
            quantity: r.quantity,
            max_total_fen: r.max_total_fen,
            marketplace_order_id: r.marketplace_order_id,
            paid_fen: r.paid_fen,
            due_at_ms: r.due_at_ms,
            created_at_ms: r.created_at_ms,
        })
    }
}

impl Store {
    /// Open (or reopen after expiry) the task for one line and offer; idempotent.
    pub async fn open_purchaser_task(&self, req: &PurchaserTaskRequest) -> Result<PurchaserTask> {
        let id = format!("pt_{}_{}_{}", req.order_id, req.line_no, req.offer_id);
        sqlx::query(
            "INSERT INTO purchaser_tasks (id, order_id, line_no, platform, offer_id, quantity, max_total_fen, status, due_at_ms, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10) ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
             due_at_ms = excluded.due_at_ms WHERE purchaser_tasks.status = $11",
        )
        .bind(&id)
        .bind(&req.order_id)
        .bind(i64::from(req.line_no))
        .bind(&req.platform)
        .bind(&req.offer_id)
        .bind(i64::from(req.quantity))
        .bind(req.max_total_fen)
        .bind(PurchaserTaskStatus::Open.as_str())
        .bind(req.due_at_ms)
        .bind(now_ms())
        .bind(PurchaserTaskStatus::Expired.as_str())
        .execute(self.pool())
        .await?;
        self.purchaser_task(&id).await
    }

    pub async fn purchaser_task(&self, id: &str) -> Result<PurchaserTask> {
        let row: TaskRow = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM purchaser_tasks WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    pub async fn purchaser_tasks(
        &self,
        status: Option<PurchaserTaskStatus>,
    ) -> Result<Vec<PurchaserTask>> {
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT {TASK_COLUMNS} FROM purchaser_tasks WHERE ($1 = '' OR status = $1) ORDER BY due_at_ms, id LIMIT 500"
        ))
        .bind(status.map_or("", PurchaserTaskStatus::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(PurchaserTask::try_from).collect()
    }

    /// Expire an open task; false when it was completed first (the completion stands).
    pub async fn expire_purchaser_task(&self, id: &str) -> Result<bool> {
        let n = sqlx::query("UPDATE purchaser_tasks SET status = $1 WHERE id = $2 AND status = $3")
            .bind(PurchaserTaskStatus::Expired.as_str())
            .bind(id)
            .bind(PurchaserTaskStatus::Open.as_str())
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Record a purchaser's completion exactly once: the task, the purchase and the workflow
    /// signal commit together; a second completion or one after expiry is a conflict.
    /// Complete a task with what the purchaser bought (and, when they have it, the seller's
    /// `(carrier, waybill)`, recorded as the line's shipment with its event), in one transaction.
    pub async fn complete_purchaser_task(
        &self,
        id: &str,
        marketplace_order_id: &str,
        paid_fen: i64,
        shipped: Option<(&str, &str)>,
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
            "UPDATE purchaser_tasks SET status = $1, marketplace_order_id = $2, paid_fen = $3, completed_at_ms = $4 \
             WHERE id = $5 AND status = $6",
        )
        .bind(PurchaserTaskStatus::Completed.as_str())
        .bind(marketplace_order_id)
        .bind(paid_fen)
        .bind(now)
        .bind(id)
        .bind(PurchaserTaskStatus::Open.as_str())
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
        let signal = OrderSignal::PurchaserCompleted(PurchaserResult {
            task_id: id.to_owned(),
            marketplace_order_id: marketplace_order_id.to_owned(),
            paid_fen,
        });
        enqueue(&mut tx, &task.order_id, &OutboxMessage::SignalOrder(signal)).await?;
        if let Some((carrier, waybill)) = shipped {
            let order = crate::orders::order_in(&mut tx, &task.order_id).await?;
            let shipment = NewSellerShipment {
                order_id: task.order_id.clone(),
                line_no: u32::try_from(task.line_no).unwrap_or_default(),
                platform: task.platform.clone(),
                marketplace_order_id: marketplace_order_id.to_owned(),
                carrier: carrier.to_owned(),
                waybill: waybill.to_owned(),
                source: ShipmentSource::Purchaser,
            };
            if let Some(event) = insert_shipment(&mut tx, &shipment, &order.customer_id).await? {
                append(&mut tx, self.backend(), &[event]).await?;
            }
        }
        tx.commit().await?;
        self.purchaser_task(id).await
    }
}
