//! Payments and charges: which payment intent belongs to whom (an order's main charge, one of
//! its price-change supplements, or a charge beyond its total), the charges themselves
//! (shipping settlements and storage extensions, each with its own intent), and the handling of
//! a payment-succeeded event exactly once.

use crate::{
    db::{Result, Store, StoreError, money, parse, placeholders},
    events::{NewEvent, append},
    outbox::{OrderSignal, OutboxMessage, ParcelSignal, enqueue},
};
use procure_domain::{
    Money,
    clock::now_ms,
    events::{ChargeDue, RefundIssued, RefundKind},
    status::{ChargeKind, ChargeStatus, PriceChangeStatus},
};
use procure_workflows::contract::ChargePaid;
use serde::Deserialize;
use sqlx::{Any, Transaction};

/// A charge beyond an order's total, paid through its own payment intent.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Charge {
    pub id: String,
    /// The workflow told when it is paid (`order-…` or `parcel-…`).
    pub workflow_id: String,
    pub kind: ChargeKind,
    pub amount: Money,
    pub intent_id: Option<String>,
    pub status: ChargeStatus,
    pub detail: String,
    pub created_at_ms: i64,
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
    /// A shipping settlement or storage extension.
    Charge(Charge),
}

#[derive(sqlx::FromRow)]
struct ChargeRow {
    id: String,
    workflow_id: String,
    kind: String,
    amount_minor: i64,
    currency: String,
    intent_id: Option<String>,
    status: String,
    detail: String,
    created_at_ms: i64,
}

impl TryFrom<ChargeRow> for Charge {
    type Error = StoreError;

    fn try_from(r: ChargeRow) -> Result<Charge> {
        Ok(Charge {
            kind: parse(&r.kind)?,
            amount: money(r.amount_minor, &r.currency)?,
            status: parse(&r.status)?,
            id: r.id,
            workflow_id: r.workflow_id,
            intent_id: r.intent_id,
            detail: r.detail,
            created_at_ms: r.created_at_ms,
        })
    }
}

const CHARGE_COLUMNS: &str =
    "id, workflow_id, kind, amount_minor, currency, intent_id, status, detail, created_at_ms";

/// Remember a webhook event id in `tx`; false when it was handled before (a redelivery).
async fn first_delivery(tx: &mut Transaction<'_, Any>, event_id: &str) -> Result<bool> {
    let new = sqlx::query(
        "INSERT INTO webhook_events (event_id, received_at_ms) VALUES ($1,$2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(new == 1)
}

impl Store {
    pub async fn intent_owner(&self, intent_id: &str) -> Result<Option<IntentOwner>> {
        if let Some(order_id) = self.order_for_intent(intent_id).await? {
            return Ok(Some(IntentOwner::Order { order_id }));
        }
        let change: Option<(String, String)> =
            sqlx::query_as("SELECT id, order_id FROM price_changes WHERE intent_id = $1")
                .bind(intent_id)
                .fetch_optional(self.pool())
                .await?;
        if let Some((change_id, order_id)) = change {
            return Ok(Some(IntentOwner::Supplement {
                order_id,
                change_id,
            }));
        }
        Ok(self
            .charge_for_intent(intent_id)
            .await?
            .map(IntentOwner::Charge))
    }

    /// Handle a payment-succeeded event of an order's (or a supplement's) intent exactly once:
    /// remember the event id, mark the payment and queue the workflow signal in one transaction
    /// (a crash half-way loses nothing, and a redelivery of the same event does nothing).
    /// Returns false for a duplicate.
    pub async fn accept_payment_succeeded(
        &self,
        event_id: &str,
        intent_id: &str,
        order_id: &str,
        signal: &OrderSignal,
        provider_confirmed: bool,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        if !first_delivery(&mut tx, event_id).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let message = OutboxMessage::SignalOrder(signal.clone());
        // Only what the provider holds is recorded as paid; an event it does not confirm still
        // reaches the workflow, which parks the order with the reason.
        if !provider_confirmed {
            enqueue(&mut tx, order_id, &message).await?;
            tx.commit().await?;
            return Ok(true);
        }
        sqlx::query(
            "UPDATE payments SET status = 'succeeded', updated_at_ms = $1 WHERE intent_id = $2",
        )
        .bind(now_ms())
        .bind(intent_id)
        .execute(&mut *tx)
        .await?;
        // A supplement's intent: the customer accepted a price change by paying it.
        sqlx::query(&format!(
            "UPDATE price_changes SET status = $1, decided_at_ms = COALESCE(decided_at_ms, $2) \
             WHERE intent_id = $3 AND status IN ('{}', '{}', '{}', '{}')",
            PriceChangeStatus::Pending,
            PriceChangeStatus::Accepted,
            PriceChangeStatus::Declined,
            PriceChangeStatus::Withdrawn,
        ))
        .bind(PriceChangeStatus::Paid.as_str())
        .bind(now_ms())
        .bind(intent_id)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, order_id, &message).await?;
        tx.commit().await?;
        Ok(true)
    }

    // ----- charges -----------------------------------------------------------------------

    /// Record a charge; idempotent on its id.
    pub async fn insert_charge(
        &self,
        id: &str,
        workflow_id: &str,
        kind: ChargeKind,
        amount: Money,
        detail: &str,
    ) -> Result<Charge> {
        sqlx::query(
            "INSERT INTO charges (id, workflow_id, kind, amount_minor, currency, status, detail, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(workflow_id)
        .bind(kind.as_str())
        .bind(amount.minor)
        .bind(amount.currency.code())
        .bind(ChargeStatus::Pending.as_str())
        .bind(detail)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.charge(id).await
    }

    /// Attach the charge's payment intent, once: from then on the customer can pay it, so its
    /// `charge.due` event commits with it.
    pub async fn set_charge_intent(&self, id: &str, intent_id: &str) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        let n =
            sqlx::query("UPDATE charges SET intent_id = $1 WHERE id = $2 AND intent_id IS NULL")
                .bind(intent_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        let charge: Charge = sqlx::query_as::<_, ChargeRow>(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?
        .try_into()?;
        let event = match charge.workflow_id.split_once('-') {
            Some(("parcel", parcel_id)) => {
                let customer: Option<(String,)> =
                    sqlx::query_as("SELECT customer_id FROM parcels WHERE id = $1")
                        .bind(parcel_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let orders: Vec<(String,)> = sqlx::query_as(
                    "SELECT order_id FROM warehouse_items WHERE parcel_id = $1 ORDER BY order_id",
                )
                .bind(parcel_id)
                .fetch_all(&mut *tx)
                .await?;
                customer.map(|(c,)| {
                    NewEvent::parcel(
                        parcel_id,
                        &c,
                        &charge_due(
                            &charge,
                            intent_id,
                            orders.into_iter().map(|(o,)| o).collect(),
                            Some(parcel_id),
                        ),
                    )
                })
            }
            Some((_, order_id)) => {
                let customer: Option<(String,)> =
                    sqlx::query_as("SELECT customer_id FROM orders WHERE id = $1")
                        .bind(order_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                customer.map(|(c,)| {
                    NewEvent::order(
                        order_id,
                        &c,
                        &charge_due(&charge, intent_id, vec![order_id.to_owned()], None),
                    )
                })
            }
            None => None,
        };
        if let Some(e) = event {
            append(
                &mut tx,
                self.backend(),
                &[e.dedupe(format!("charge:{id}:due"))],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record a refund of the order's payment (`payments.status` refunded, what went back) and
    /// its `refund.issued` event, in one transaction; a second record of the same refund id
    /// (a retried activity) adds no event.
    pub async fn record_refund(
        &self,
        order_id: &str,
        intent_id: &str,
        refund: &RefundRecord<'_>,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE payments SET status = 'refunded', refunded_minor = $1, updated_at_ms = $2 WHERE intent_id = $3",
        )
        .bind(refund.amount.minor)
        .bind(now_ms())
        .bind(intent_id)
        .execute(&mut *tx)
        .await?;
        let event = refund_event(&mut tx, order_id, refund).await?;
        append(&mut tx, self.backend(), &event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn charge(&self, id: &str) -> Result<Charge> {
        let row: ChargeRow = sqlx::query_as(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    pub async fn charges_of(&self, workflow_id: &str) -> Result<Vec<Charge>> {
        let rows: Vec<ChargeRow> = sqlx::query_as(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE workflow_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(workflow_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(Charge::try_from).collect()
    }

    pub async fn charge_for_intent(&self, intent_id: &str) -> Result<Option<Charge>> {
        let row: Option<ChargeRow> = sqlx::query_as(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE intent_id = $1"
        ))
        .bind(intent_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(Charge::try_from).transpose()
    }

    /// Set a charge's status (paid, withdrawn, refunded); `only_from` guards the move.
    pub async fn set_charge_status(
        &self,
        id: &str,
        status: ChargeStatus,
        only_from: &[ChargeStatus],
    ) -> Result<Charge> {
        let sql = format!(
            "UPDATE charges SET status = $1, paid_at_ms = COALESCE(paid_at_ms, $2) WHERE id = $3 AND status IN ({})",
            placeholders(4, only_from.len())
        );
        let mut q = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(now_ms())
            .bind(id);
        for f in only_from {
            q = q.bind(f.as_str());
        }
        q.execute(self.pool()).await?;
        self.charge(id).await
    }

    /// A payment webhook for a charge's intent: mark it paid and signal its workflow (the
    /// order's or the parcel's), once per event.
    pub async fn accept_charge_paid(
        &self,
        event_id: &str,
        charge: &Charge,
        paid: &ChargePaid,
        provider_confirmed: bool,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        if !first_delivery(&mut tx, event_id).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        if provider_confirmed {
            sqlx::query(
                "UPDATE charges SET status = $1, paid_at_ms = $2 WHERE id = $3 AND status IN ($4, $5)",
            )
            .bind(ChargeStatus::Paid.as_str())
            .bind(now_ms())
            .bind(&charge.id)
            .bind(ChargeStatus::Pending.as_str())
            .bind(ChargeStatus::Withdrawn.as_str())
            .execute(&mut *tx)
            .await?;
        }
        let (subject, message) = match charge.workflow_id.split_once('-') {
            Some(("parcel", id)) => (
                id,
                OutboxMessage::SignalParcel(ParcelSignal::ChargePaid(paid.clone())),
            ),
            Some((_, id)) => (
                id,
                OutboxMessage::SignalOrder(OrderSignal::ChargePaid(paid.clone())),
            ),
            None => (
                charge.workflow_id.as_str(),
                OutboxMessage::SignalOrder(OrderSignal::ChargePaid(paid.clone())),
            ),
        };
        enqueue(&mut tx, subject, &message).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A refund the provider made, as recorded with its event.
#[derive(Clone, Copy, Debug)]
pub struct RefundRecord<'a> {
    /// The provider's refund id (the event's idempotency key).
    pub refund_id: &'a str,
    pub amount: Money,
    pub kind: RefundKind,
    pub reason: &'a str,
}

/// The `refund.issued` event of `refund` on `order_id` (none for an order the store does not
/// hold).
pub(crate) async fn refund_event(
    tx: &mut Transaction<'_, Any>,
    order_id: &str,
    refund: &RefundRecord<'_>,
) -> Result<Vec<NewEvent>> {
    let customer: Option<(String,)> =
        sqlx::query_as("SELECT customer_id FROM orders WHERE id = $1")
            .bind(order_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(customer
        .map(|(c,)| {
            let issued = RefundIssued {
                order_id: order_id.to_owned(),
                refund_id: refund.refund_id.to_owned(),
                kind: refund.kind,
                amount: refund.amount,
                reason: refund.reason.to_owned(),
            };
            NewEvent::order(order_id, &c, &issued).dedupe(format!("refund:{}", refund.refund_id))
        })
        .into_iter()
        .collect())
}

fn charge_due(
    charge: &Charge,
    intent_id: &str,
    order_ids: Vec<String>,
    parcel_id: Option<&str>,
) -> ChargeDue {
    ChargeDue {
        charge_id: charge.id.clone(),
        kind: charge.kind,
        amount: charge.amount,
        payment_intent_id: intent_id.to_owned(),
        description: charge.detail.clone(),
        order_ids,
        parcel_id: parcel_id.map(str::to_owned),
    }
}
