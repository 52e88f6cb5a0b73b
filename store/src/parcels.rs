//! Customer parcels: the stored items a customer sends together, the parcel's measures and
//! cost once packed, each order's settlement of its share against its quote, and the shipment.
//! Every change that must reach the parcel's workflow commits with its outbox row; races (a
//! parcel request against a disposal) are settled by conditional updates.

use crate::{
    db::{Result, Store, StoreError, money, parse, u32_of},
    outbox::{OutboxMessage, ParcelSignal, enqueue},
    payments::Charge,
};
use procure_domain::{
    Currency, Money,
    clock::now_ms,
    quote::Dimensions,
    status::{ParcelStatus, SettlementOutcome, WarehouseItemStatus},
};
use procure_workflows::parcel::ParcelPacked;
use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Parcel {
    pub id: String,
    pub customer_id: String,
    pub destination_country: String,
    pub shipping_line: String,
    pub currency: Currency,
    pub status: ParcelStatus,
    /// Shipping, duty and insurance as the orders' quotes estimated them (customer currency).
    pub estimated: Money,
    pub actual: Option<Money>,
    pub weight_g: Option<i64>,
    pub dims: Option<Dimensions>,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub order_ids: Vec<String>,
    pub settlements: Vec<ParcelSettlement>,
    pub charges: Vec<Charge>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One order's share of a packed parcel and how its difference to the quote was settled.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ParcelSettlement {
    pub order_id: String,
    pub guaranteed: bool,
    pub estimated: Money,
    pub actual: Money,
    pub outcome: SettlementOutcome,
    pub amount: Money,
    pub refund_id: Option<String>,
}

pub struct NewParcel<'a> {
    pub id: &'a str,
    pub customer_id: &'a str,
    pub destination_country: &'a str,
    pub shipping_line: &'a str,
    pub estimated: Money,
    pub order_ids: &'a [String],
}

#[derive(sqlx::FromRow)]
struct ParcelRow {
    id: String,
    customer_id: String,
    destination_country: String,
    shipping_line: String,
    currency: String,
    status: String,
    estimated_minor: i64,
    actual_minor: Option<i64>,
    weight_g: Option<i64>,
    l_mm: Option<i64>,
    w_mm: Option<i64>,
    h_mm: Option<i64>,
    carrier: Option<String>,
    tracking_number: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct SettlementRow {
    order_id: String,
    guaranteed: i64,
    estimated_minor: i64,
    actual_minor: i64,
    outcome: String,
    amount_minor: i64,
    currency: String,
    refund_id: Option<String>,
}

impl TryFrom<SettlementRow> for ParcelSettlement {
    type Error = StoreError;

    fn try_from(s: SettlementRow) -> Result<ParcelSettlement> {
        Ok(ParcelSettlement {
            guaranteed: s.guaranteed != 0,
            estimated: money(s.estimated_minor, &s.currency)?,
            actual: money(s.actual_minor, &s.currency)?,
            outcome: parse(&s.outcome)?,
            amount: money(s.amount_minor, &s.currency)?,
            order_id: s.order_id,
            refund_id: s.refund_id,
        })
    }
}

impl Store {
    /// Take the customer's stored items into a new parcel and queue its workflow's start. Fails
    /// with a conflict, changing nothing, unless every item is still stored and theirs.
    pub async fn create_parcel(&self, p: &NewParcel<'_>) -> Result<Parcel> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO parcels (id, customer_id, destination_country, shipping_line, currency, status, estimated_minor, \
             created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$8)",
        )
        .bind(p.id)
        .bind(p.customer_id)
        .bind(p.destination_country)
        .bind(p.shipping_line)
        .bind(p.estimated.currency.code())
        .bind(ParcelStatus::Requested.as_str())
        .bind(p.estimated.minor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for order_id in p.order_ids {
            let n = sqlx::query(
                "UPDATE warehouse_items SET status = $1, parcel_id = $2, updated_at_ms = $3 \
                 WHERE order_id = $4 AND customer_id = $5 AND destination_country = $6 AND status = $7",
            )
            .bind(WarehouseItemStatus::InParcel.as_str())
            .bind(p.id)
            .bind(now)
            .bind(order_id)
            .bind(p.customer_id)
            .bind(p.destination_country)
            .bind(WarehouseItemStatus::Stored.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Err(StoreError::StateConflict(format!(
                    "order {order_id} has no goods stored for this customer and destination"
                )));
            }
        }
        let start = OutboxMessage::StartParcel {
            order_ids: p.order_ids.to_vec(),
        };
        enqueue(&mut tx, p.id, &start).await?;
        tx.commit().await?;
        self.parcel(p.id).await
    }

    pub async fn parcel(&self, id: &str) -> Result<Parcel> {
        let r: ParcelRow = sqlx::query_as(
            "SELECT id, customer_id, destination_country, shipping_line, currency, status, estimated_minor, actual_minor, \
             weight_g, l_mm, w_mm, h_mm, carrier, tracking_number, created_at_ms, updated_at_ms FROM parcels WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        let currency: Currency = parse(&r.currency)?;
        let order_ids: Vec<(String,)> = sqlx::query_as(
            "SELECT order_id FROM warehouse_items WHERE parcel_id = $1 ORDER BY order_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let settlements: Vec<SettlementRow> = sqlx::query_as(
            "SELECT order_id, guaranteed, estimated_minor, actual_minor, outcome, amount_minor, currency, refund_id \
             FROM parcel_settlements WHERE parcel_id = $1 ORDER BY order_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let charges = self.charges_of(&format!("parcel-{id}")).await?;
        let dim = |v: Option<i64>| u32_of(v.unwrap_or_default());
        Ok(Parcel {
            status: parse(&r.status)?,
            estimated: Money::new(r.estimated_minor, currency),
            actual: r.actual_minor.map(|a| Money::new(a, currency)),
            dims: r.weight_g.map(|_| Dimensions {
                l_mm: dim(r.l_mm),
                w_mm: dim(r.w_mm),
                h_mm: dim(r.h_mm),
            }),
            weight_g: r.weight_g,
            order_ids: order_ids.into_iter().map(|(id,)| id).collect(),
            settlements: settlements
                .into_iter()
                .map(ParcelSettlement::try_from)
                .collect::<Result<_>>()?,
            charges,
            currency,
            id: r.id,
            customer_id: r.customer_id,
            destination_country: r.destination_country,
            shipping_line: r.shipping_line,
            carrier: r.carrier,
            tracking_number: r.tracking_number,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
        })
    }

    /// The warehouse packed the parcel: record its measures, the actual cost and each order's
    /// settlement, and signal the parcel's workflow, once (a second report is a conflict).
    pub async fn record_packed(
        &self,
        parcel_id: &str,
        weight_g: u32,
        d: Dimensions,
        actual: Money,
        settlements: &[ParcelSettlement],
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "UPDATE parcels SET status = $1, actual_minor = $2, weight_g = $3, l_mm = $4, w_mm = $5, h_mm = $6, \
             updated_at_ms = $7 WHERE id = $8 AND status = $9",
        )
        .bind(ParcelStatus::Packed.as_str())
        .bind(actual.minor)
        .bind(i64::from(weight_g))
        .bind(i64::from(d.l_mm))
        .bind(i64::from(d.w_mm))
        .bind(i64::from(d.h_mm))
        .bind(now)
        .bind(parcel_id)
        .bind(ParcelStatus::Requested.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            let p = self.parcel(parcel_id).await?;
            return Err(StoreError::StateConflict(format!("parcel is {}", p.status)));
        }
        for s in settlements {
            sqlx::query(
                "INSERT INTO parcel_settlements (parcel_id, order_id, guaranteed, estimated_minor, actual_minor, outcome, \
                 amount_minor, currency) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            )
            .bind(parcel_id)
            .bind(&s.order_id)
            .bind(i64::from(s.guaranteed))
            .bind(s.estimated.minor)
            .bind(s.actual.minor)
            .bind(s.outcome.as_str())
            .bind(s.amount.minor)
            .bind(s.amount.currency.code())
            .execute(&mut *tx)
            .await?;
        }
        let packed = ParcelSignal::ParcelPacked(ParcelPacked { weight_g, dims: d });
        enqueue(&mut tx, parcel_id, &OutboxMessage::SignalParcel(packed)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a parcel's status forward; a report that would move it back (a retried or late
    /// activity) changes nothing. Compare-and-set, so concurrent writers cannot interleave.
    pub async fn set_parcel_status(&self, id: &str, status: ParcelStatus) -> Result<()> {
        loop {
            let current = self.parcel(id).await?.status;
            if status.rank() <= current.rank() && status != ParcelStatus::Exception {
                return Ok(());
            }
            let n = sqlx::query(
                "UPDATE parcels SET status = $1, updated_at_ms = $2 WHERE id = $3 AND status = $4",
            )
            .bind(status.as_str())
            .bind(now_ms())
            .bind(id)
            .bind(current.as_str())
            .execute(self.pool())
            .await?
            .rows_affected();
            if n == 1 {
                return Ok(());
            }
        }
    }

    pub async fn set_parcel_shipment(&self, id: &str, carrier: &str, tracking: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE parcels SET status = $1, carrier = $2, tracking_number = $3, updated_at_ms = $4 WHERE id = $5",
        )
        .bind(ParcelStatus::Shipped.as_str())
        .bind(carrier)
        .bind(tracking)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE warehouse_items SET status = $1, updated_at_ms = $2 WHERE parcel_id = $3",
        )
        .bind(WarehouseItemStatus::Shipped.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn parcel_for_tracking(&self, tracking: &str) -> Result<Option<String>> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT id FROM parcels WHERE tracking_number = $1")
                .bind(tracking)
                .fetch_optional(self.pool())
                .await?;
        Ok(row.map(|(id,)| id))
    }

    pub async fn set_settlement_refund(
        &self,
        parcel_id: &str,
        order_id: &str,
        refund_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE parcel_settlements SET refund_id = $1 WHERE parcel_id = $2 AND order_id = $3",
        )
        .bind(refund_id)
        .bind(parcel_id)
        .bind(order_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
