//! The consolidation warehouse: each order's goods as scanned in (with their storage clock),
//! parcels that could not be applied to an order (exceptions), and the messages sent to
//! customers about what they store (storage reminders, events of the log: [`crate::events`]).
//! Customer parcels are in [`crate::parcels`].
//!
//! A scan that reaches a workflow commits together with its outbox row and its
//! `order.in_warehouse` event.

use crate::{
    db::{Result, Store, StoreError, json, parse, u32_of},
    events::{NewEvent, append},
    outbox::{OrderSignal, OutboxMessage, enqueue},
};
use procure_domain::{
    clock::now_ms,
    events::{OrderInWarehouse, StorageReminder},
    quote::Dimensions,
    status::{WarehouseExceptionStatus, WarehouseItemStatus},
};
use procure_workflows::order::WarehouseInbound;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WarehouseItem {
    pub order_id: String,
    pub customer_id: String,
    pub destination_country: String,
    pub weight_g: i64,
    pub dims: Dimensions,
    pub photo_urls: Vec<String>,
    pub status: WarehouseItemStatus,
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

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WarehouseException {
    pub id: i64,
    pub reference: String,
    pub weight_g: i64,
    pub dims: Dimensions,
    pub photo_urls: Vec<String>,
    pub status: WarehouseExceptionStatus,
    /// Why it could not be applied (no such order, or nothing of that order bought yet).
    pub reason: String,
    pub resolved_order_id: Option<String>,
    pub created_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: String,
    customer_id: String,
    destination_country: String,
    weight_g: i64,
    l_mm: i64,
    w_mm: i64,
    h_mm: i64,
    photo_urls: String,
    status: String,
    parcel_id: Option<String>,
    received_at_ms: i64,
    stored_until_ms: i64,
}

impl TryFrom<ItemRow> for WarehouseItem {
    type Error = StoreError;

    fn try_from(r: ItemRow) -> Result<WarehouseItem> {
        Ok(WarehouseItem {
            dims: dims(r.l_mm, r.w_mm, r.h_mm),
            photo_urls: json(&r.photo_urls)?,
            status: parse(&r.status)?,
            order_id: r.order_id,
            customer_id: r.customer_id,
            destination_country: r.destination_country,
            weight_g: r.weight_g,
            parcel_id: r.parcel_id,
            received_at_ms: r.received_at_ms,
            stored_until_ms: r.stored_until_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ExceptionRow {
    id: i64,
    reference: String,
    weight_g: i64,
    l_mm: i64,
    w_mm: i64,
    h_mm: i64,
    photo_urls: String,
    status: String,
    reason: String,
    resolved_order_id: Option<String>,
    created_at_ms: i64,
}

impl TryFrom<ExceptionRow> for WarehouseException {
    type Error = StoreError;

    fn try_from(r: ExceptionRow) -> Result<WarehouseException> {
        Ok(WarehouseException {
            dims: dims(r.l_mm, r.w_mm, r.h_mm),
            photo_urls: json(&r.photo_urls)?,
            status: parse(&r.status)?,
            id: r.id,
            reference: r.reference,
            weight_g: r.weight_g,
            reason: r.reason,
            resolved_order_id: r.resolved_order_id,
            created_at_ms: r.created_at_ms,
        })
    }
}

fn dims(l: i64, w: i64, h: i64) -> Dimensions {
    Dimensions {
        l_mm: u32_of(l),
        w_mm: u32_of(w),
        h_mm: u32_of(h),
    }
}

const ITEM_COLUMNS: &str = "order_id, customer_id, destination_country, weight_g, l_mm, w_mm, h_mm, photo_urls, \
     status, parcel_id, received_at_ms, stored_until_ms";

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
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$10) ON CONFLICT (order_id) DO NOTHING",
        )
        .bind(order_id)
        .bind(&order.customer_id)
        .bind(&order.destination_country)
        .bind(i64::from(scan.weight_g))
        .bind(i64::from(scan.dims.l_mm))
        .bind(i64::from(scan.dims.w_mm))
        .bind(i64::from(scan.dims.h_mm))
        .bind(serde_json::to_string(&scan.photo_urls).unwrap_or_else(|_| "[]".into()))
        .bind(WarehouseItemStatus::Stored.as_str())
        .bind(now)
        .bind(stored_until_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let inbound = OrderSignal::WarehouseInbound(WarehouseInbound {
            weight_g: scan.weight_g,
            dims: scan.dims,
            photo_urls: scan.photo_urls.clone(),
        });
        enqueue(&mut tx, order_id, &OutboxMessage::SignalOrder(inbound)).await?;
        let arrived = OrderInWarehouse {
            order_id: order_id.to_owned(),
            weight_g: scan.weight_g,
            dimensions: scan.dims,
            qc_photo_urls: scan.photo_urls.clone(),
            received_at_ms: now,
            free_storage_until_ms: stored_until_ms,
        };
        let event = NewEvent::order(order_id, &order.customer_id, &arrived)
            .dedupe(format!("order:{order_id}:in_warehouse"));
        append(&mut tx, self.backend(), &[event]).await?;
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
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO warehouse_exceptions (reference, weight_g, l_mm, w_mm, h_mm, photo_urls, status, reason, created_at_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
        )
        .bind(reference)
        .bind(i64::from(scan.weight_g))
        .bind(i64::from(scan.dims.l_mm))
        .bind(i64::from(scan.dims.w_mm))
        .bind(i64::from(scan.dims.h_mm))
        .bind(serde_json::to_string(&scan.photo_urls).unwrap_or_else(|_| "[]".into()))
        .bind(WarehouseExceptionStatus::Open.as_str())
        .bind(reason)
        .bind(now_ms())
        .fetch_one(self.pool())
        .await?;
        Ok(id)
    }

    pub async fn warehouse_exceptions(
        &self,
        status: Option<WarehouseExceptionStatus>,
    ) -> Result<Vec<WarehouseException>> {
        let rows: Vec<ExceptionRow> = sqlx::query_as(
            "SELECT id, reference, weight_g, l_mm, w_mm, h_mm, photo_urls, status, reason, resolved_order_id, created_at_ms \
             FROM warehouse_exceptions WHERE ($1 = '' OR status = $1) ORDER BY id LIMIT 500",
        )
        .bind(status.map_or("", WarehouseExceptionStatus::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(WarehouseException::try_from).collect()
    }

    /// Match an exception to its order: the scan is applied as if it had matched on arrival.
    pub async fn resolve_warehouse_exception(
        &self,
        id: i64,
        order_id: &str,
        stored_until_ms: i64,
    ) -> Result<bool> {
        let ex = self
            .warehouse_exceptions(Some(WarehouseExceptionStatus::Open))
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
            "UPDATE warehouse_exceptions SET status = $1, resolved_order_id = $2 WHERE id = $3",
        )
        .bind(WarehouseExceptionStatus::Resolved.as_str())
        .bind(order_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(received)
    }

    // ----- storage -----------------------------------------------------------------------

    pub async fn warehouse_item(&self, order_id: &str) -> Result<WarehouseItem> {
        let row: ItemRow = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM warehouse_items WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_optional(self.pool())
        .await?
        .ok_or(StoreError::NotFound)?;
        row.try_into()
    }

    /// A customer's items, optionally only those with a status.
    pub async fn warehouse_items(
        &self,
        customer_id: &str,
        status: Option<WarehouseItemStatus>,
    ) -> Result<Vec<WarehouseItem>> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM warehouse_items WHERE customer_id = $1 AND ($2 = '' OR status = $2) \
             ORDER BY stored_until_ms, order_id"
        ))
        .bind(customer_id)
        .bind(status.map_or("", WarehouseItemStatus::as_str))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(WarehouseItem::try_from).collect()
    }

    /// Push an item's storage end (a paid extension); only while it is stored.
    pub async fn extend_storage(&self, order_id: &str, until_ms: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE warehouse_items SET stored_until_ms = $1, updated_at_ms = $2 \
             WHERE order_id = $3 AND status = $4 AND stored_until_ms < $1",
        )
        .bind(until_ms)
        .bind(now_ms())
        .bind(order_id)
        .bind(WarehouseItemStatus::Stored.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Dispose of a stored item; false when it is already on its way in a parcel (or gone).
    pub async fn dispose_item(&self, order_id: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE warehouse_items SET status = $1, updated_at_ms = $2 WHERE order_id = $3 AND status = $4",
        )
        .bind(WarehouseItemStatus::Disposed.as_str())
        .bind(now_ms())
        .bind(order_id)
        .bind(WarehouseItemStatus::Stored.as_str())
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1 || self.warehouse_item(order_id).await?.status == WarehouseItemStatus::Disposed)
    }

    /// Tell a customer their free storage ends soon, once per `key` (e.g. one reminder per
    /// customer, day and list of items, however many of their items expire): the
    /// `storage.reminder` event is the message. False when it was already sent.
    pub async fn storage_reminder_once(
        &self,
        key: &str,
        reminder: &StorageReminder,
    ) -> Result<bool> {
        let event = NewEvent::customer(&reminder.customer_id, reminder).dedupe(key);
        Ok(self.append_events(&[event]).await? == 1)
    }
}
