//! Price changes: a supplier's price rose beyond the customer's tolerance, so the order waits for
//! the customer (`AwaitingCustomer`). Each change carries the supplement in the customer's
//! currency and its own payment intent; the customer accepts by paying it or declines, and the
//! workflow withdraws it at the deadline. Who decided is settled by conditional updates, so a
//! payment, a decline and the deadline racing each other leave exactly one outcome.

use crate::store::{Result, Store, StoreError, enqueue, money, now_ms};
use procure_domain::Money;
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChange {
    pub id: String,
    pub order_id: String,
    pub line_no: i64,
    pub platform: String,
    pub offer_id: String,
    pub quantity: i64,
    /// The unit price already paid for (the quote's, or an earlier accepted change's).
    pub quoted_unit_fen: i64,
    pub new_unit_fen: i64,
    /// The supplement, in the order's currency.
    pub amount: Money,
    /// The payment intent the customer confirms to accept.
    pub intent_id: Option<String>,
    /// pending, accepted, paid, refunded, declined or withdrawn.
    pub status: String,
    pub refunded_minor: i64,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl PriceChange {
    /// Still open to the customer's decision.
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "pending" | "accepted")
    }
}

/// Who a payment intent belongs to: an order's main charge or one of its supplements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntentOwner {
    Order {
        order_id: String,
    },
    Supplement {
        order_id: String,
        change_id: String,
    },
    /// A shipping settlement or storage extension (`crate::warehouse::Charge`).
    Charge(crate::warehouse::Charge),
}

const COLUMNS: &str = "id, order_id, line_no, platform, offer_id, quantity, quoted_unit_fen, new_unit_fen, \
     amount_minor, currency, intent_id, status, refunded_minor, due_at_ms, created_at_ms, decided_at_ms";

fn from_row(r: &sqlx::any::AnyRow) -> Result<PriceChange> {
    Ok(PriceChange {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        line_no: r.try_get("line_no")?,
        platform: r.try_get("platform")?,
        offer_id: r.try_get("offer_id")?,
        quantity: r.try_get("quantity")?,
        quoted_unit_fen: r.try_get("quoted_unit_fen")?,
        new_unit_fen: r.try_get("new_unit_fen")?,
        amount: money(r, "amount_minor", "currency")?,
        intent_id: r.try_get("intent_id")?,
        status: r.try_get("status")?,
        refunded_minor: r.try_get("refunded_minor")?,
        due_at_ms: r.try_get("due_at_ms")?,
        created_at_ms: r.try_get("created_at_ms")?,
        decided_at_ms: r.try_get("decided_at_ms")?,
    })
}

impl Store {
    /// Record a proposed change; idempotent on its id (a retried activity gets the first row).
    pub async fn insert_price_change(&self, c: &PriceChange) -> Result<PriceChange> {
        sqlx::query(
            "INSERT INTO price_changes (id, order_id, line_no, platform, offer_id, quantity, quoted_unit_fen, new_unit_fen, \
             amount_minor, currency, status, due_at_ms, created_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'pending',$11,$12) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&c.id)
        .bind(&c.order_id)
        .bind(c.line_no)
        .bind(&c.platform)
        .bind(&c.offer_id)
        .bind(c.quantity)
        .bind(c.quoted_unit_fen)
        .bind(c.new_unit_fen)
        .bind(c.amount.minor)
        .bind(c.amount.currency.code())
        .bind(c.due_at_ms)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.price_change(&c.id).await
    }

    pub async fn set_price_change_intent(&self, id: &str, intent_id: &str) -> Result<()> {
        sqlx::query("UPDATE price_changes SET intent_id = $1 WHERE id = $2 AND intent_id IS NULL")
            .bind(intent_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn price_change(&self, id: &str) -> Result<PriceChange> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM price_changes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        from_row(&row)
    }

    /// An order's price changes, oldest first.
    pub async fn price_changes(&self, order_id: &str) -> Result<Vec<PriceChange>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM price_changes WHERE order_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(order_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn intent_owner(&self, intent_id: &str) -> Result<Option<IntentOwner>> {
        if let Some(order_id) = self.order_for_intent(intent_id).await? {
            return Ok(Some(IntentOwner::Order { order_id }));
        }
        let row = sqlx::query("SELECT id, order_id FROM price_changes WHERE intent_id = $1")
            .bind(intent_id)
            .fetch_optional(self.pool())
            .await?;
        if let Some(r) = row {
            return Ok(Some(IntentOwner::Supplement {
                order_id: r.try_get("order_id")?,
                change_id: r.try_get("id")?,
            }));
        }
        Ok(self
            .charge_for_intent(intent_id)
            .await?
            .map(IntentOwner::Charge))
    }

    /// The customer accepts: allowed once, while the change is pending and before its deadline.
    pub async fn accept_price_change(&self, order_id: &str, id: &str) -> Result<PriceChange> {
        let n = sqlx::query(
            "UPDATE price_changes SET status = 'accepted', decided_at_ms = $1 \
             WHERE id = $2 AND order_id = $3 AND status = 'pending' AND due_at_ms > $1",
        )
        .bind(now_ms())
        .bind(id)
        .bind(order_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        let change = self.order_price_change(order_id, id).await?;
        if n == 0 && change.status != "accepted" {
            return Err(closed(&change));
        }
        Ok(change)
    }

    /// The customer declines: the change closes and the workflow is told to cancel the order,
    /// in one transaction.
    pub async fn decline_price_change(&self, order_id: &str, id: &str) -> Result<PriceChange> {
        let change = self.order_price_change(order_id, id).await?;
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE price_changes SET status = 'declined', decided_at_ms = $1 \
             WHERE id = $2 AND status IN ('pending', 'accepted')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(closed(&change));
        }
        let signal = serde_json::json!({
            "signal": "cancel_order",
            "args": format!("customer declined price change {id}"),
        });
        enqueue(&mut tx, "signal", order_id, &signal).await?;
        tx.commit().await?;
        self.price_change(id).await
    }

    /// Close a change the customer did not pay for (deadline passed, or declined); a paid
    /// change stays paid. Returns the row as it ends up.
    pub async fn withdraw_price_change(&self, id: &str) -> Result<PriceChange> {
        sqlx::query(
            "UPDATE price_changes SET status = 'withdrawn', decided_at_ms = COALESCE(decided_at_ms, $1) \
             WHERE id = $2 AND status IN ('pending', 'accepted')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        self.price_change(id).await
    }

    /// The provider says the supplement's intent succeeded (found while withdrawing it).
    pub async fn mark_price_change_paid(&self, id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE price_changes SET status = 'paid' WHERE id = $1 AND status <> 'refunded'",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn mark_price_change_refunded(&self, id: &str, refunded_minor: i64) -> Result<()> {
        sqlx::query(
            "UPDATE price_changes SET status = 'refunded', refunded_minor = $1 WHERE id = $2",
        )
        .bind(refunded_minor)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn order_price_change(&self, order_id: &str, id: &str) -> Result<PriceChange> {
        let change = self.price_change(id).await?;
        if change.order_id != order_id {
            return Err(StoreError::NotFound);
        }
        Ok(change)
    }
}

fn closed(c: &PriceChange) -> StoreError {
    if c.is_open() {
        StoreError::StateConflict("the price change's deadline has passed".into())
    } else {
        StoreError::StateConflict(format!("the price change is {}", c.status))
    }
}
