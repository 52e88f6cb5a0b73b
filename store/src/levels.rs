//! Levels an operator watches, read in one pass for a metrics scrape: orders by state, the
//! outbox's backlog and dead letters, and the buyer-account pool. Read-only; every query is an
//! aggregate over an indexed or small table.

use crate::{Result, Store, accounts::buckets};
use procure_domain::{OrderState, status::AccountStatus};

/// One reading of the levels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Levels {
    /// Orders per state, only the states that have orders.
    pub orders_by_state: Vec<(OrderState, i64)>,
    /// Outbox rows not delivered yet (dead letters excluded).
    pub outbox_backlog: i64,
    /// When the oldest undelivered row was written (epoch ms); `None` when there is none.
    pub outbox_oldest_created_ms: Option<i64>,
    pub outbox_dead_letters: i64,
    /// Buyer accounts per platform and pool status.
    pub accounts: Vec<AccountLevel>,
}

/// How many accounts of one platform are in one pool status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLevel {
    pub platform: String,
    pub status: PoolStatus,
    pub count: i64,
}

/// Where an account stands in the pool at one instant. An account is counted once, in the
/// first status that applies: disabled, cooling down, at its daily or per-minute cap, active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolStatus {
    Active,
    CoolingDown,
    AtCap,
    Disabled,
}

impl PoolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Active => "active",
            PoolStatus::CoolingDown => "cooling_down",
            PoolStatus::AtCap => "at_cap",
            PoolStatus::Disabled => "disabled",
        }
    }
}

impl Store {
    /// The levels at `at_ms` (the clock decides which accounts are cooling down and which
    /// budget buckets count).
    pub async fn levels(&self, at_ms: i64) -> Result<Levels> {
        let orders_by_state = self.count_by_state().await?;
        let (outbox_backlog, outbox_oldest_created_ms): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*) AS n, MIN(created_at_ms) AS oldest FROM outbox \
             WHERE dispatched_at_ms IS NULL AND dead_at_ms IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        let outbox_dead_letters = self.outbox_dead_count().await?;
        let (day, minute) = buckets(at_ms);
        let rows: Vec<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT platform, status, cooling_until_ms, daily_cap, per_minute, \
             COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $1), 0) AS day_used, \
             COALESCE((SELECT used FROM account_budget WHERE account_id = a.id AND bucket = $2), 0) AS minute_used \
             FROM buyer_accounts a",
        )
        .bind(&day)
        .bind(&minute)
        .fetch_all(self.pool())
        .await?;
        let mut counts = std::collections::BTreeMap::<(String, PoolStatus), i64>::new();
        for (platform, status, cooling_until_ms, daily_cap, per_minute, day_used, minute_used) in
            rows
        {
            let pool = if status != AccountStatus::Active.as_str() {
                PoolStatus::Disabled
            } else if cooling_until_ms > at_ms {
                PoolStatus::CoolingDown
            } else if day_used >= daily_cap || minute_used >= per_minute {
                PoolStatus::AtCap
            } else {
                PoolStatus::Active
            };
            *counts.entry((platform, pool)).or_default() += 1;
        }
        Ok(Levels {
            orders_by_state,
            outbox_backlog,
            outbox_oldest_created_ms,
            outbox_dead_letters,
            accounts: counts
                .into_iter()
                .map(|((platform, status), count)| AccountLevel {
                    platform,
                    status,
                    count,
                })
                .collect(),
        })
    }
}
