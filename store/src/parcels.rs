//! Customer parcels: the stored items a customer sends together, the parcel's measures and
//! cost once packed, each order's settlement of its share against its quote, and the shipment.
//! Every change that must reach the parcel's workflow commits with its outbox row; races (a
//! parcel request against a disposal) are settled by conditional updates.

use crate::{
    db::{Result, Store, StoreError, money, parse, u32_of},
    events::{NewEvent, append},
    outbox::{OutboxMessage, ParcelSignal, enqueue},
    payments::{Charge, RefundRecord, refund_event},
};
use procure_domain::{
    Currency, Money,
    clock::now_ms,
    events::{self, RefundKind},
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
        let (customer, line, estimated_minor): (String, String, i64) = sqlx::query_as(
            "SELECT customer_id, shipping_line, estimated_minor FROM parcels WHERE id = $1",
        )
        .bind(parcel_id)
        .fetch_one(&mut *tx)
        .await?;
        let order_ids = parcel_orders(&mut tx, parcel_id).await?;
        let data = events::ParcelPacked {
            parcel_id: parcel_id.to_owned(),
            order_ids,
            shipping_line: line,
            weight_g,
            dimensions: d,
            estimated_cost: Money::new(estimated_minor, actual.currency),
            actual_cost: actual,
            settlements: settlements
                .iter()
                .map(|s| events::Settlement {
                    order_id: s.order_id.clone(),
                    outcome: s.outcome,
                    amount: s.amount,
                })
                .collect(),
        };
        let event = NewEvent::parcel(parcel_id, &customer, &data)
            .dedupe(format!("parcel:{parcel_id}:packed"));
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a parcel's status forward; a report that would move it back (a retried or late
    /// activity) changes nothing. Compare-and-set, so concurrent writers cannot interleave.
    /// Reaching `delivered` or `exception` appends the parcel's event with the move.
    pub async fn set_parcel_status(&self, id: &str, status: ParcelStatus) -> Result<()> {
        loop {
            let current = self.parcel(id).await?;
            if status.rank() <= current.status.rank() && status != ParcelStatus::Exception {
                return Ok(());
            }
            let mut tx = self.pool().begin().await?;
            let n = sqlx::query(
                "UPDATE parcels SET status = $1, updated_at_ms = $2 WHERE id = $3 AND status = $4",
            )
            .bind(status.as_str())
            .bind(now_ms())
            .bind(id)
            .bind(current.status.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                continue;
            }
            let moved = status != current.status;
            let event = match status {
                ParcelStatus::Delivered if moved => Some(
                    NewEvent::parcel(
                        id,
                        &current.customer_id,
                        &parcel_move::<events::ParcelDelivered>(&current),
                    )
                    .dedupe(format!("parcel:{id}:delivered")),
                ),
                // Each move into an exception is one event (a parcel can recover and fail again).
                ParcelStatus::Exception if moved => Some(NewEvent::parcel(
                    id,
                    &current.customer_id,
                    &parcel_move::<events::ParcelException>(&current),
                )),
                _ => None,
            };
            append(&mut tx, self.backend(), event.as_slice()).await?;
            tx.commit().await?;
            return Ok(());
        }
    }

    /// The carrier booked the parcel: it is shipped, its goods with it, and its
    /// `parcel.shipped` event commits with the booking.
    pub async fn set_parcel_shipment(&self, id: &str, carrier: &str, tracking: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let customer: Option<(String,)> = sqlx::query_as(
            "UPDATE parcels SET status = $1, carrier = $2, tracking_number = $3, updated_at_ms = $4 WHERE id = $5 \
             RETURNING customer_id",
        )
        .bind(ParcelStatus::Shipped.as_str())
        .bind(carrier)
        .bind(tracking)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE warehouse_items SET status = $1, updated_at_ms = $2 WHERE parcel_id = $3",
        )
        .bind(WarehouseItemStatus::Shipped.as_str())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if let Some((customer,)) = customer {
            let shipped = events::ParcelShipped {
                parcel_id: id.to_owned(),
                order_ids: parcel_orders(&mut tx, id).await?,
                carrier: Some(carrier.to_owned()),
                tracking_number: Some(tracking.to_owned()),
            };
            let event =
                NewEvent::parcel(id, &customer, &shipped).dedupe(format!("parcel:{id}:shipped"));
            append(&mut tx, self.backend(), &[event]).await?;
        }
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

    /// Record the refund of an order's share of a packed parcel, with its `refund.issued`
    /// event.
    pub async fn set_settlement_refund(
        &self,
        parcel_id: &str,
        order_id: &str,
        refund_id: &str,
        amount: Money,
    ) -> Result<()> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE parcel_settlements SET refund_id = $1 WHERE parcel_id = $2 AND order_id = $3",
        )
        .bind(refund_id)
        .bind(parcel_id)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        let reason =
            format!("parcel {parcel_id}: shipping, duty and insurance below the quote's estimate");
        let event = refund_event(
            &mut tx,
            order_id,
            &RefundRecord {
                refund_id,
                amount,
                kind: RefundKind::ShippingSettlement,
                reason: &reason,
            },
        )
        .await?;
        append(&mut tx, self.backend(), &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The orders whose goods are in the parcel.
async fn parcel_orders(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    parcel_id: &str,
) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT order_id FROM warehouse_items WHERE parcel_id = $1 ORDER BY order_id",
    )
    .bind(parcel_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(o,)| o).collect())
}

/// A parcel move's payload: the parcel, its orders, carrier and tracking number.
fn parcel_move<P: From<ParcelMove>>(p: &Parcel) -> P {
    P::from(ParcelMove {
        parcel_id: p.id.clone(),
        order_ids: p.order_ids.clone(),
        carrier: p.carrier.clone(),
        tracking_number: p.tracking_number.clone(),
    })
}

struct ParcelMove {
    parcel_id: String,
    order_ids: Vec<String>,
    carrier: Option<String>,
    tracking_number: Option<String>,
}

macro_rules! from_move {
    ($($t:ty),*) => {$(
        impl From<ParcelMove> for $t {
            fn from(m: ParcelMove) -> Self {
                Self {
                    parcel_id: m.parcel_id,
                    order_ids: m.order_ids,
                    carrier: m.carrier,
                    tracking_number: m.tracking_number,
                }
            }
        }
    )*};
}

from_move!(events::ParcelDelivered, events::ParcelException);
