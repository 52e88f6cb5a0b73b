//! The consolidation warehouse and what leaves it: stored items with their storage clock,
//! unmatched parcels (exceptions), customer parcels with their per-order settlement, charges
//! beyond an order's total (each with its own payment intent) and storage reminders.
//!
//! Every change that must reach a workflow commits together with its outbox row; races (a
//! parcel request against a disposal, a payment against a withdrawal) are settled by
//! conditional updates.

use crate::store::{Result, Store, StoreError, enqueue, money, now_ms};
use procure_domain::{Currency, Money, quote::Dimensions};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::str::FromStr;

/// Outbox kinds for parcel workflows (the outbox's `order_id` column then holds the parcel id).
pub const START_PARCEL: &str = "start_parcel";
pub const SIGNAL_PARCEL: &str = "signal_parcel";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseItem {
    pub order_id: String,
    pub customer_id: String,
    pub destination_country: String,
    pub weight_g: i64,
    pub dims: Dimensions,
    pub photo_urls: Vec<String>,
    /// stored, in_parcel, shipped or disposed.
    pub status: String,
    pub parcel_id: Option<String>,
    pub received_at_ms: i64,
    pub stored_until_ms: i64,
}

/// What a warehouse scan found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    pub weight_g: u32,
    pub dims: Dimensions,
    pub photo_urls: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseException {
    pub id: i64,
    pub reference: String,
    pub weight_g: i64,
    pub dims: Dimensions,
    pub photo_urls: Vec<String>,
    pub status: String,
    /// Why it could not be applied (no such order, or nothing of that order bought yet).
    pub reason: String,
    pub resolved_order_id: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    pub id: String,
    pub customer_id: String,
    pub destination_country: String,
    pub shipping_line: String,
    pub currency: Currency,
    /// requested, packed, awaiting_payment, booked, shipped, delivered or exception.
    pub status: String,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelSettlement {
    pub order_id: String,
    pub guaranteed: bool,
    pub estimated: Money,
    pub actual: Money,
    /// even, charge, refund or absorbed.
    pub outcome: String,
    pub amount: Money,
    pub refund_id: Option<String>,
}

/// A charge beyond an order's total, paid through its own payment intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    /// The workflow told when it is paid (`order-…` or `parcel-…`).
    pub workflow_id: String,
    /// shipping_settlement or storage_extension.
    pub kind: String,
    pub amount: Money,
    pub intent_id: Option<String>,
    /// pending, paid, withdrawn or refunded.
    pub status: String,
    pub detail: String,
    pub created_at_ms: i64,
}

pub struct NewParcel<'a> {
    pub id: &'a str,
    pub customer_id: &'a str,
    pub destination_country: &'a str,
    pub shipping_line: &'a str,
    pub estimated: Money,
    pub order_ids: &'a [String],
}

/// Order of a parcel's statuses; `exception` may come and go while tracking.
fn parcel_rank(status: &str) -> u8 {
    match status {
        "requested" => 0,
        "packed" => 1,
        "awaiting_payment" => 2,
        "payment_overdue" => 3,
        "shipped" => 4,
        "exception" => 5,
        "delivered" => 6,
        _ => 0,
    }
}

fn dims(r: &sqlx::any::AnyRow) -> Result<Dimensions> {
    let d =
        |c: &str| -> Result<u32> { Ok(u32::try_from(r.try_get::<i64, _>(c)?).unwrap_or(u32::MAX)) };
    Ok(Dimensions {
        l_mm: d("l_mm")?,
        w_mm: d("w_mm")?,
        h_mm: d("h_mm")?,
    })
}

fn urls(r: &sqlx::any::AnyRow) -> Result<Vec<String>> {
    let raw: String = r.try_get("photo_urls")?;
    serde_json::from_str(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

const ITEM_COLUMNS: &str = "order_id, customer_id, destination_country, weight_g, l_mm, w_mm, h_mm, photo_urls, \
     status, parcel_id, received_at_ms, stored_until_ms";

fn item_from_row(r: &sqlx::any::AnyRow) -> Result<WarehouseItem> {
    Ok(WarehouseItem {
        order_id: r.try_get("order_id")?,
        customer_id: r.try_get("customer_id")?,
        destination_country: r.try_get("destination_country")?,
        weight_g: r.try_get("weight_g")?,
        dims: dims(r)?,
        photo_urls: urls(r)?,
        status: r.try_get("status")?,
        parcel_id: r.try_get("parcel_id")?,
        received_at_ms: r.try_get("received_at_ms")?,
        stored_until_ms: r.try_get("stored_until_ms")?,
    })
}

const CHARGE_COLUMNS: &str =
    "id, workflow_id, kind, amount_minor, currency, intent_id, status, detail, created_at_ms";

fn charge_from_row(r: &sqlx::any::AnyRow) -> Result<Charge> {
    Ok(Charge {
        id: r.try_get("id")?,
        workflow_id: r.try_get("workflow_id")?,
        kind: r.try_get("kind")?,
        amount: money(r, "amount_minor", "currency")?,
        intent_id: r.try_get("intent_id")?,
        status: r.try_get("status")?,
        detail: r.try_get("detail")?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

impl Store {
    // ----- inbound ---------------------------------------------------------------------

    /// Record an order's goods as received and signal its workflow, in one transaction. A
    /// repeated scan of the same order changes nothing and is reported as such (false).
    pub async fn receive_scan(
        &self,
        order_id: &str,
        scan: &Scan,
        stored_until_ms: i64,
    ) -> Result<bool> {
        let order = self.order(order_id).await?;
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let n = sqlx::query(
            "INSERT INTO warehouse_items (order_id, customer_id, destination_country, weight_g, l_mm, w_mm, h_mm, \
             photo_urls, status, received_at_ms, stored_until_ms, updated_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,'stored',$9,$10,$9) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(&order.customer_id)
        .bind(&order.destination_country)
        .bind(i64::from(scan.weight_g))
        .bind(i64::from(scan.dims.l_mm))
        .bind(i64::from(scan.dims.w_mm))
        .bind(i64::from(scan.dims.h_mm))
        .bind(serde_json::to_string(&scan.photo_urls).unwrap_or_else(|_| "[]".into()))
        .bind(now)
        .bind(stored_until_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let signal = serde_json::json!({
            "signal": "warehouse_inbound",
            "args": {"weight_g": scan.weight_g, "dims": scan.dims, "photo_urls": scan.photo_urls},
        });
        enqueue(&mut tx, "signal", order_id, &signal).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Keep a parcel that cannot be applied to an order, with why; nothing is signalled.
    pub async fn add_warehouse_exception(
        &self,
        reference: &str,
        scan: &Scan,
        reason: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO warehouse_exceptions (reference, weight_g, l_mm, w_mm, h_mm, photo_urls, status, reason, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,'open',$7,$8) RETURNING id",
        )
        .bind(reference)
        .bind(i64::from(scan.weight_g))
        .bind(i64::from(scan.dims.l_mm))
        .bind(i64::from(scan.dims.w_mm))
        .bind(i64::from(scan.dims.h_mm))
        .bind(serde_json::to_string(&scan.photo_urls).unwrap_or_else(|_| "[]".into()))
        .bind(reason)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("id")?)
    }

    pub async fn warehouse_exceptions(
        &self,
        status: Option<&str>,
    ) -> Result<Vec<WarehouseException>> {
        let rows = sqlx::query(
            "SELECT id, reference, weight_g, l_mm, w_mm, h_mm, photo_urls, status, reason, resolved_order_id, created_at_ms \
             FROM warehouse_exceptions WHERE ($1 = '' OR status = $1) ORDER BY id LIMIT 500",
        )
        .bind(status.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WarehouseException {
                    id: r.try_get("id")?,
                    reference: r.try_get("reference")?,
                    weight_g: r.try_get("weight_g")?,
                    dims: dims(r)?,
                    photo_urls: urls(r)?,
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    resolved_order_id: r.try_get("resolved_order_id")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                })
            })
            .collect()
    }

    /// Match an exception to its order: the scan is applied as if it had matched on arrival.
    pub async fn resolve_warehouse_exception(
        &self,
        id: i64,
        order_id: &str,
        stored_until_ms: i64,
    ) -> Result<bool> {
        let ex = self
            .warehouse_exceptions(Some("open"))
            .await?
            .into_iter()
            .find(|e| e.id == id)
            .ok_or(StoreError::NotFound)?;
        let scan = Scan {
            weight_g: u32::try_from(ex.weight_g).unwrap_or(u32::MAX),
            dims: ex.dims,
            photo_urls: ex.photo_urls,
        };
        let received = self.receive_scan(order_id, &scan, stored_until_ms).await?;
        sqlx::query(
            "UPDATE warehouse_exceptions SET status = 'resolved', resolved_order_id = $1 WHERE id = $2",
        )
        .bind(order_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(received)
    }

    // ----- storage -----------------------------------------------------------------------

    pub async fn warehouse_item(&self, order_id: &str) -> Result<WarehouseItem> {
        let row = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM warehouse_items WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        item_from_row(&row)
    }

    /// A customer's items, optionally only those with a status.
    pub async fn warehouse_items(
        &self,
        customer_id: &str,
        status: Option<&str>,
    ) -> Result<Vec<WarehouseItem>> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM warehouse_items WHERE customer_id = $1 AND ($2 = '' OR status = $2) \
             ORDER BY stored_until_ms, order_id"
        ))
        .bind(customer_id)
        .bind(status.unwrap_or(""))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Push an item's storage end (a paid extension); only while it is stored.
    pub async fn extend_storage(&self, order_id: &str, until_ms: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE warehouse_items SET stored_until_ms = $1, updated_at_ms = $2 \
             WHERE order_id = $3 AND status = 'stored' AND stored_until_ms < $1",
        )
        .bind(until_ms)
        .bind(now_ms())
        .bind(order_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Dispose of a stored item; false when it is already on its way in a parcel (or gone).
    pub async fn dispose_item(&self, order_id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE warehouse_items SET status = 'disposed', updated_at_ms = $1 WHERE order_id = $2 AND status = 'stored'",
        )
        .bind(now_ms())
        .bind(order_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1 || self.warehouse_item(order_id).await?.status == "disposed")
    }

    /// Record a message to a customer once per key (e.g. one storage reminder per customer and
    /// day, however many of their items expire); false when it was already sent.
    pub async fn notify_once(
        &self,
        id: &str,
        customer_id: &str,
        kind: &str,
        body: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO notifications (id, customer_id, kind, body, created_at_ms) VALUES ($1,$2,$3,$4,$5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(customer_id)
        .bind(kind)
        .bind(body)
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn notifications(&self, customer_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kind, body FROM notifications WHERE customer_id = $1 ORDER BY created_at_ms, id",
        )
        .bind(customer_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("body")?)))
            .collect()
    }

    // ----- parcels -----------------------------------------------------------------------

    /// Take the customer's stored items into a new parcel and queue its workflow's start. Fails
    /// with a conflict, changing nothing, unless every item is still stored and theirs.
    pub async fn create_parcel(&self, p: &NewParcel<'_>) -> Result<Parcel> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO parcels (id, customer_id, destination_country, shipping_line, currency, status, estimated_minor, \
             created_at_ms, updated_at_ms) VALUES ($1,$2,$3,$4,$5,'requested',$6,$7,$7)",
        )
        .bind(p.id)
        .bind(p.customer_id)
        .bind(p.destination_country)
        .bind(p.shipping_line)
        .bind(p.estimated.currency.code())
        .bind(p.estimated.minor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for order_id in p.order_ids {
            let n = sqlx::query(
                "UPDATE warehouse_items SET status = 'in_parcel', parcel_id = $1, updated_at_ms = $2 \
                 WHERE order_id = $3 AND customer_id = $4 AND destination_country = $5 AND status = 'stored'",
            )
            .bind(p.id)
            .bind(now)
            .bind(order_id)
            .bind(p.customer_id)
            .bind(p.destination_country)
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
        let start = serde_json::json!({"order_ids": p.order_ids});
        enqueue(&mut tx, START_PARCEL, p.id, &start).await?;
        tx.commit().await?;
        self.parcel(p.id).await
    }

    pub async fn parcel(&self, id: &str) -> Result<Parcel> {
        let r = sqlx::query(
            "SELECT id, customer_id, destination_country, shipping_line, currency, status, estimated_minor, actual_minor, \
             weight_g, l_mm, w_mm, h_mm, carrier, tracking_number, created_at_ms, updated_at_ms FROM parcels WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        let currency: String = r.try_get("currency")?;
        let currency =
            Currency::from_str(&currency).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let actual: Option<i64> = r.try_get("actual_minor")?;
        let weight_g: Option<i64> = r.try_get("weight_g")?;
        let order_ids = sqlx::query(
            "SELECT order_id FROM warehouse_items WHERE parcel_id = $1 ORDER BY order_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get("order_id"))
        .collect::<std::result::Result<Vec<String>, _>>()?;
        let settlements = sqlx::query(
            "SELECT order_id, guaranteed, estimated_minor, actual_minor, outcome, amount_minor, currency, refund_id \
             FROM parcel_settlements WHERE parcel_id = $1 ORDER BY order_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|s| {
            Ok(ParcelSettlement {
                order_id: s.try_get("order_id")?,
                guaranteed: s.try_get::<i64, _>("guaranteed")? != 0,
                estimated: money(s, "estimated_minor", "currency")?,
                actual: money(s, "actual_minor", "currency")?,
                outcome: s.try_get("outcome")?,
                amount: money(s, "amount_minor", "currency")?,
                refund_id: s.try_get("refund_id")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        let charges = self.charges_of(&format!("parcel-{id}")).await?;
        Ok(Parcel {
            id: r.try_get("id")?,
            customer_id: r.try_get("customer_id")?,
            destination_country: r.try_get("destination_country")?,
            shipping_line: r.try_get("shipping_line")?,
            currency,
            status: r.try_get("status")?,
            estimated: Money::new(r.try_get("estimated_minor")?, currency),
            actual: actual.map(|a| Money::new(a, currency)),
            weight_g,
            dims: if weight_g.is_some() {
                Some(dims(&r)?)
            } else {
                None
            },
            carrier: r.try_get("carrier")?,
            tracking_number: r.try_get("tracking_number")?,
            order_ids,
            settlements,
            charges,
            created_at_ms: r.try_get("created_at_ms")?,
            updated_at_ms: r.try_get("updated_at_ms")?,
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
            "UPDATE parcels SET status = 'packed', actual_minor = $1, weight_g = $2, l_mm = $3, w_mm = $4, h_mm = $5, \
             updated_at_ms = $6 WHERE id = $7 AND status = 'requested'",
        )
        .bind(actual.minor)
        .bind(i64::from(weight_g))
        .bind(i64::from(d.l_mm))
        .bind(i64::from(d.w_mm))
        .bind(i64::from(d.h_mm))
        .bind(now)
        .bind(parcel_id)
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
            .bind(&s.outcome)
            .bind(s.amount.minor)
            .bind(s.amount.currency.code())
            .execute(&mut *tx)
            .await?;
        }
        let signal = serde_json::json!({
            "signal": "parcel_packed",
            "args": {"weight_g": weight_g, "dims": d},
        });
        enqueue(&mut tx, SIGNAL_PARCEL, parcel_id, &signal).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a parcel's status forward; a report that would move it back (a retried or late
    /// activity) changes nothing. Compare-and-set, so concurrent writers cannot interleave.
    pub async fn set_parcel_status(&self, id: &str, status: &str) -> Result<()> {
        loop {
            let current = self.parcel(id).await?.status;
            if parcel_rank(status) <= parcel_rank(&current) && status != "exception" {
                return Ok(());
            }
            let n = sqlx::query(
                "UPDATE parcels SET status = $1, updated_at_ms = $2 WHERE id = $3 AND status = $4",
            )
            .bind(status)
            .bind(now_ms())
            .bind(id)
            .bind(&current)
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
            "UPDATE parcels SET status = 'shipped', carrier = $1, tracking_number = $2, updated_at_ms = $3 WHERE id = $4",
        )
        .bind(carrier)
        .bind(tracking)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE warehouse_items SET status = 'shipped', updated_at_ms = $1 WHERE parcel_id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn parcel_for_tracking(&self, tracking: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM parcels WHERE tracking_number = $1")
            .bind(tracking)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("id").map_err(StoreError::from))
            .transpose()
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

    // ----- charges -----------------------------------------------------------------------

    /// Record a charge; idempotent on its id.
    pub async fn insert_charge(
        &self,
        id: &str,
        workflow_id: &str,
        kind: &str,
        amount: Money,
        detail: &str,
    ) -> Result<Charge> {
        sqlx::query(
            "INSERT INTO charges (id, workflow_id, kind, amount_minor, currency, status, detail, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,'pending',$6,$7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(workflow_id)
        .bind(kind)
        .bind(amount.minor)
        .bind(amount.currency.code())
        .bind(detail)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.charge(id).await
    }

    pub async fn set_charge_intent(&self, id: &str, intent_id: &str) -> Result<()> {
        sqlx::query("UPDATE charges SET intent_id = $1 WHERE id = $2 AND intent_id IS NULL")
            .bind(intent_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn charge(&self, id: &str) -> Result<Charge> {
        let row = sqlx::query(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        charge_from_row(&row)
    }

    pub async fn charges_of(&self, workflow_id: &str) -> Result<Vec<Charge>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE workflow_id = $1 ORDER BY created_at_ms, id"
        ))
        .bind(workflow_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(charge_from_row).collect()
    }

    pub async fn charge_for_intent(&self, intent_id: &str) -> Result<Option<Charge>> {
        let row = sqlx::query(&format!(
            "SELECT {CHARGE_COLUMNS} FROM charges WHERE intent_id = $1"
        ))
        .bind(intent_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(charge_from_row).transpose()
    }

    /// Set a charge's status (paid, withdrawn, refunded); `only_from` guards the move.
    pub async fn set_charge_status(
        &self,
        id: &str,
        status: &str,
        only_from: &[&str],
    ) -> Result<Charge> {
        let placeholders: Vec<String> = (0..only_from.len())
            .map(|i| format!("${}", i + 4))
            .collect();
        let sql = format!(
            "UPDATE charges SET status = $1, paid_at_ms = COALESCE(paid_at_ms, $2) WHERE id = $3 AND status IN ({})",
            placeholders.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(status).bind(now_ms()).bind(id);
        for f in only_from {
            q = q.bind(*f);
        }
        q.execute(self.pool()).await?;
        self.charge(id).await
    }

    /// A payment webhook for a charge's intent: mark it paid and signal its workflow, once per
    /// event.
    pub async fn accept_charge_paid(
        &self,
        event_id: &str,
        charge: &Charge,
        signal: &serde_json::Value,
        provider_confirmed: bool,
    ) -> Result<bool> {
        let mut tx = self.pool().begin().await?;
        let new = sqlx::query("INSERT INTO webhook_events (event_id, received_at_ms) VALUES ($1,$2) ON CONFLICT (event_id) DO NOTHING")
            .bind(event_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if new == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if provider_confirmed {
            sqlx::query("UPDATE charges SET status = 'paid', paid_at_ms = $1 WHERE id = $2 AND status IN ('pending', 'withdrawn')")
                .bind(now_ms())
                .bind(&charge.id)
                .execute(&mut *tx)
                .await?;
        }
        let (kind, subject) = match charge.workflow_id.split_once('-') {
            Some(("parcel", id)) => (SIGNAL_PARCEL, id),
            Some((_, id)) => ("signal", id),
            None => ("signal", charge.workflow_id.as_str()),
        };
        enqueue(&mut tx, kind, subject, signal).await?;
        tx.commit().await?;
        Ok(true)
    }
}
