//! When each order reached the milestones `procure bench` measures, read in one pass: accepted
//! (`orders.created_at_ms`), payable (`payments.created_at_ms`, the intent stored), paid,
//! purchased and completed (the first `order_events` entry into each state) and the first
//! purchase recorded (`purchases.created_at_ms`). Read-only, for measurement; both backends.

use crate::{Result, Store};

/// One order's milestones, epoch ms; `None` where the order has not got there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Milestones {
    pub order_id: String,
    pub state: String,
    pub accepted_ms: i64,
    /// The payment intent was stored (`None` before it was, and for rows written before the
    /// column existed, which hold 0).
    pub payable_ms: Option<i64>,
    /// The workflow recorded the order Paid.
    pub paid_ms: Option<i64>,
    /// The first purchase of any of its lines was recorded.
    pub first_purchase_ms: Option<i64>,
    pub completed_ms: Option<i64>,
}

/// Counts of orders past each milestone, cheap enough to poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MilestoneCounts {
    pub orders: i64,
    pub payable: i64,
    pub purchased: i64,
    pub completed: i64,
}

/// id, state, accepted, payable, paid, first purchase, completed.
type MilestoneRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

impl Store {
    /// Milestones of every order accepted at or after `since_ms`, oldest first.
    pub async fn milestones(&self, since_ms: i64) -> Result<Vec<Milestones>> {
        let with_payable = self.has_payment_created_at().await;
        let payable = if with_payable {
            "(SELECT NULLIF(p.created_at_ms, 0) FROM payments p WHERE p.order_id = o.id)"
        } else {
            "CAST(NULL AS BIGINT)"
        };
        let sql = format!(
            "SELECT o.id, o.state, o.created_at_ms, {payable} AS payable_ms, \
             (SELECT MIN(e.at_ms) FROM order_events e WHERE e.order_id = o.id AND e.state = 'Paid') AS paid_ms, \
             (SELECT MIN(u.created_at_ms) FROM purchases u WHERE u.order_id = o.id) AS purchase_ms, \
             (SELECT MIN(e.at_ms) FROM order_events e WHERE e.order_id = o.id AND e.state = 'Completed') AS completed_ms \
             FROM orders o WHERE o.created_at_ms >= $1 ORDER BY o.created_at_ms, o.id"
        );
        let rows: Vec<MilestoneRow> = sqlx::query_as(&sql)
            .bind(since_ms)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    order_id,
                    state,
                    accepted_ms,
                    payable_ms,
                    paid_ms,
                    first_purchase_ms,
                    completed_ms,
                )| {
                    Milestones {
                        order_id,
                        state,
                        accepted_ms,
                        payable_ms,
                        paid_ms,
                        first_purchase_ms,
                        completed_ms,
                    }
                },
            )
            .collect())
    }

    /// How many orders accepted at or after `since_ms` are payable, purchased, completed.
    pub async fn milestone_counts(&self, since_ms: i64) -> Result<MilestoneCounts> {
        let payable = if self.has_payment_created_at().await {
            "(SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id \
              WHERE o.created_at_ms >= $1 AND p.created_at_ms > 0)"
        } else {
            "(SELECT COUNT(*) FROM payments p JOIN orders o ON o.id = p.order_id \
              WHERE o.created_at_ms >= $1)"
        };
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM orders WHERE created_at_ms >= $1), {payable}, \
             (SELECT COUNT(DISTINCT u.order_id) FROM purchases u JOIN orders o ON o.id = u.order_id \
              WHERE o.created_at_ms >= $1), \
             (SELECT COUNT(*) FROM orders WHERE created_at_ms >= $1 AND state = 'Completed')"
        );
        let (orders, payable, purchased, completed): (i64, i64, i64, i64) = sqlx::query_as(&sql)
            .bind(since_ms)
            .fetch_one(self.pool())
            .await?;
        Ok(MilestoneCounts {
            orders,
            payable,
            purchased,
            completed,
        })
    }

    /// Whether `payments.created_at_ms` exists (migration 0013 on).
    async fn has_payment_created_at(&self) -> bool {
        sqlx::query("SELECT created_at_ms FROM payments WHERE 1 = 0")
            .fetch_all(self.pool())
            .await
            .is_ok()
    }
}
