//! Price changes: a supplier's price rose beyond the customer's tolerance, so the order waits for
//! the customer (`AwaitingCustomer`). Each change carries the supplement in the customer's
//! currency and its own payment intent; the customer accepts by paying it or declines, and the
//! workflow withdraws it at the deadline. Who decided is settled by conditional updates, so a
//! payment, a decline and the deadline racing each other leave exactly one outcome.

use crate::{
    db::{Result, Store, StoreError, money, parse},
    events::{NewEvent, append},
    orders::order_in,
    outbox::{OrderSignal, OutboxMessage, enqueue},
    payments::{RefundRecord, refund_event},
};
use procure_domain::{
    Currency, Money, clock::now_ms, events::PriceChangeAwaitingDecision, status::PriceChangeStatus,
};
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
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
    pub status: PriceChangeStatus,
    pub refunded_minor: i64,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl PriceChange {
    /// Still open to the customer's decision.
    pub fn is_open(&self) -> bool {
        self.status.is_open()
    }
}

const COLUMNS: &str = "id, order_id, line_no, platform, offer_id, quantity, quoted_unit_fen, new_unit_fen, \
     amount_minor, currency, intent_id, status, refunded_minor, due_at_ms, created_at_ms, decided_at_ms";

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    order_id: String,
    line_no: i64,
    platform: String,
    offer_id: String,
    quantity: i64,
    quoted_unit_fen: i64,
    new_unit_fen: i64,
    amount_minor: i64,
    currency: String,
    intent_id: Option<String>,
    status: String,
    refunded_minor: i64,
    due_at_ms: i64,
    created_at_ms: i64,
    decided_at_ms: Option<i64>,
}

impl TryFrom<Row> for PriceChange {
    type Error = StoreError;

    fn try_from(r: Row) -> Result<PriceChange> {
        Ok(PriceChange {
            amount: money(r.amount_minor, &r.currency)?,
            status: parse(&r.status)?,
            id: r.id,
            order_id: r.order_id,
            line_no: r.line_no,
            platform: r.platform,
            offer_id: r.offer_id,
            quantity: r.quantity,
            quoted_unit_fen: r.quoted_unit_fen,
            new_unit_fen: r.new_unit_fen,
            intent_id: r.intent_id,
            refunded_minor: r.refunded_minor,
            due_at_ms: r.due_at_ms,
            created_at_ms: r.created_at_ms,
            decided_at_ms: r.decided_at_ms,
        })
    }
}

/// `status IN (…)` of the changes still open to the customer's decision.
fn open_statuses() -> String {
    format!(
        "('{}', '{}')",
        PriceChangeStatus::Pending,
        PriceChangeStatus::Accepted
    )
}

impl Store {
    /// Record a proposed change; idempotent on its id (a retried activity gets the first row).
    pub async fn insert_price_change(&self, c: &PriceChange) -> Result<PriceChange> {
        sqlx::query(
            "INSERT INTO price_changes (id, order_id, line_no, platform, offer_id, quantity, quoted_unit_fen, new_unit_fen, \
             amount_minor, currency, status, due_at_ms, created_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) \
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
        .bind(PriceChangeStatus::Pending.as_str())
        .bind(c.due_at_ms)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.price_change(&c.id).await
    }

    /// Attach the supplement's payment intent, once: from then on the customer can answer,
    /// so the change's `price_change.awaiting_decision` event commits with it.
    pub async fn set_price_change_intent(&self, id: &str, intent_id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE price_changes SET intent_id = $1 WHERE id = $2 AND intent_id IS NULL",
        )
        .bind(intent_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let change: PriceChange = sqlx::query_as::<_, Row>(&format!(
            "SELECT {COLUMNS} FROM price_changes WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_into()?;
        let order = order_in(&mut tx, &change.order_id).await?;
        let line_no = u32::try_from(change.line_no).unwrap_or_default();
        let sku = order
            .lines
            .iter()
            .find(|l| l.line_no == line_no)
            .map(|l| l.sku.clone())
            .unwrap_or_default();
        let awaiting = PriceChangeAwaitingDecision {
            order_id: change.order_id.clone(),
            price_change_id: change.id.clone(),
            line_no,
            sku,
            quantity: u32::try_from(change.quantity).unwrap_or_default(),
            paid_unit_price: Money::new(change.quoted_unit_fen, Currency::CNY),
            new_unit_price: Money::new(change.new_unit_fen, Currency::CNY),
            supplement: change.amount,
            payment_intent_id: intent_id.to_owned(),
            decide_by_ms: change.due_at_ms,
        };
        let event = NewEvent::order(&change.order_id, &order.customer_id, &awaiting)
            .dedupe(format!("price_change:{id}:awaiting"));
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn price_change(&self, id: &str) -> Result<PriceChange> {
        let row: Row = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM price_changes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// An order's price changes, oldest first.
    pub async fn price_changes(&self, order_id: &str) -> Result<Vec<PriceChange>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM price_changes WHERE order_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(order_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(PriceChange::try_from).collect()
    }

    /// The customer accepts: allowed once, while the change is pending and before its deadline.
    pub async fn accept_price_change(&self, order_id: &str, id: &str) -> Result<PriceChange> {
        let n = sqlx::query(
            "UPDATE price_changes SET status = $1, decided_at_ms = $2 \
             WHERE id = $3 AND order_id = $4 AND status = $5 AND due_at_ms > $2",
        )
        .bind(PriceChangeStatus::Accepted.as_str())
        .bind(now_ms())
        .bind(id)
        .bind(order_id)
        .bind(PriceChangeStatus::Pending.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        let change = self.order_price_change(order_id, id).await?;
        if n == 0 && change.status != PriceChangeStatus::Accepted {
            return Err(closed(&change));
        }
        Ok(change)
    }

    /// The customer declines: the change closes and the workflow is told to cancel the order,
    /// in one transaction.
    pub async fn decline_price_change(&self, order_id: &str, id: &str) -> Result<PriceChange> {
        let change = self.order_price_change(order_id, id).await?;
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(&format!(
            "UPDATE price_changes SET status = $1, decided_at_ms = $2 WHERE id = $3 AND status IN {}",
            open_statuses()
        ))
        .bind(PriceChangeStatus::Declined.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Err(closed(&change));
        }
        let signal = OrderSignal::CancelOrder(format!("customer declined price change {id}"));
        enqueue(&mut tx, order_id, &OutboxMessage::SignalOrder(signal)).await?;
        tx.commit().await?;
        self.price_change(id).await
    }

    /// Close a change the customer did not pay for (deadline passed, or declined); a paid
    /// change stays paid. Returns the row as it ends up.
    pub async fn withdraw_price_change(&self, id: &str) -> Result<PriceChange> {
        sqlx::query(&format!(
            "UPDATE price_changes SET status = $1, decided_at_ms = COALESCE(decided_at_ms, $2) \
             WHERE id = $3 AND status IN {}",
            open_statuses()
        ))
        .bind(PriceChangeStatus::Withdrawn.as_str())
        .bind(now_ms())
        .bind(id)
        .execute(self.pool())
        .await?;
        self.price_change(id).await
    }

    /// The provider says the supplement's intent succeeded (found while withdrawing it).
    pub async fn mark_price_change_paid(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE price_changes SET status = $1 WHERE id = $2 AND status <> $3")
            .bind(PriceChangeStatus::Paid.as_str())
            .bind(id)
            .bind(PriceChangeStatus::Refunded.as_str())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The supplement was refunded: the change is refunded, with its `refund.issued` event.
    pub async fn mark_price_change_refunded(
        &self,
        id: &str,
        refund: &RefundRecord<'_>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let order: Option<(String,)> =
            sqlx::query_as("UPDATE price_changes SET status = $1, refunded_minor = $2 WHERE id = $3 RETURNING order_id")
                .bind(PriceChangeStatus::Refunded.as_str())
                .bind(refund.amount.minor)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((order_id,)) = order {
            let event = refund_event(&mut tx, &order_id, refund).await?;
            append(&mut tx, self.backend(), &event).await?;
        }
        tx.commit().await?;
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
