//! The sellers' domestic shipments to the consolidation warehouse: one row per bought line and
//! waybill (table `seller_shipments`), recorded when a logistics poll finds it or a purchaser's
//! completion carries it, each with its `order.seller_shipped` event in the same transaction.
//! The warehouse looks orders up by the waybill printed on a parcel.

use crate::{
    db::{Result, Store, u32_of},
    events::{NewEvent, append},
};
use procure_domain::{clock::now_ms, events::OrderSellerShipped};
use sqlx::{Any, Transaction};

/// Who told us of a shipment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShipmentSource {
    /// The marketplace's logistics API.
    Marketplace,
    /// The purchaser who bought the line by hand, with the completion.
    Purchaser,
}

impl ShipmentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentSource::Marketplace => "marketplace",
            ShipmentSource::Purchaser => "purchaser",
        }
    }
}

/// A shipment to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSellerShipment {
    pub order_id: String,
    pub line_no: u32,
    pub platform: String,
    pub marketplace_order_id: String,
    pub carrier: String,
    pub waybill: String,
    pub source: ShipmentSource,
}

/// A shipment as recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct SellerShipmentRecord {
    pub order_id: String,
    pub line_no: u32,
    pub platform: String,
    pub marketplace_order_id: String,
    pub carrier: String,
    pub waybill: String,
    pub source: String,
    pub recorded_at_ms: i64,
}

type Row = (String, i64, String, String, String, String, String, i64);

fn record(
    (order_id, line_no, platform, mid, carrier, waybill, source, at): Row,
) -> SellerShipmentRecord {
    SellerShipmentRecord {
        order_id,
        line_no: u32_of(line_no),
        platform,
        marketplace_order_id: mid,
        carrier,
        waybill,
        source,
        recorded_at_ms: at,
    }
}

const SELECT: &str = "SELECT order_id, line_no, platform, marketplace_order_id, carrier, waybill, \
                      source, recorded_at_ms FROM seller_shipments";

impl Store {
    /// Record a line's domestic shipment; `Ok(true)` the first time (its `order.seller_shipped`
    /// event commits with it), `Ok(false)` when that line and waybill are known already.
    pub async fn record_seller_shipment(&self, s: &NewSellerShipment) -> Result<bool> {
        let order = self.order(&s.order_id).await?;
        let mut tx = self.pool().begin().await?;
        let Some(event) = insert_shipment(&mut tx, s, &order.customer_id).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Insert a shipment row in `tx`; the event to append last in that transaction when the row is
/// new, `None` when that line and waybill are known already.
pub(crate) async fn insert_shipment(
    tx: &mut Transaction<'_, Any>,
    s: &NewSellerShipment,
    customer_id: &str,
) -> Result<Option<NewEvent>> {
    let now = now_ms();
    let n = sqlx::query(
        "INSERT INTO seller_shipments (order_id, line_no, platform, marketplace_order_id, \
         carrier, waybill, source, recorded_at_ms) VALUES ($1,$2,$3,$4,$5,$6,$7,$8) \
         ON CONFLICT (order_id, line_no, waybill) DO NOTHING",
    )
    .bind(&s.order_id)
    .bind(i64::from(s.line_no))
    .bind(&s.platform)
    .bind(&s.marketplace_order_id)
    .bind(&s.carrier)
    .bind(&s.waybill)
    .bind(s.source.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(None);
    }
    let shipped = OrderSellerShipped {
        order_id: s.order_id.clone(),
        line_no: s.line_no,
        carrier: s.carrier.clone(),
        tracking_number: s.waybill.clone(),
        shipped_at_ms: now,
    };
    Ok(Some(
        NewEvent::order(&s.order_id, customer_id, &shipped).dedupe(format!(
            "order:{}:seller_shipped:{}:{}",
            s.order_id, s.line_no, s.waybill
        )),
    ))
}

impl Store {
    /// The order's recorded shipments, by line and then as recorded.
    pub async fn seller_shipments(&self, order_id: &str) -> Result<Vec<SellerShipmentRecord>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{SELECT} WHERE order_id = $1 ORDER BY line_no, recorded_at_ms, waybill"
        ))
        .bind(order_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    /// The orders a waybill was recorded for (several: an exception for an operator).
    pub async fn orders_by_waybill(&self, waybill: &str) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT DISTINCT order_id FROM seller_shipments WHERE waybill = $1 ORDER BY order_id",
        )
        .bind(waybill)
        .fetch_all(self.pool())
        .await
        .map_err(Into::into)
    }
}
