//! The order as the API shows it: the order row with its timeline, price changes, goods in the
//! warehouse, charges beyond its total and the sellers' domestic shipments, read from the modules
//! that own each.

use crate::{
    db::{Result, Store, StoreError},
    orders::OrderRecord,
    payments::Charge,
    price_changes::PriceChange,
    shipments::SellerShipmentRecord,
    warehouse::WarehouseItem,
};
use procure_domain::order::TimelineEvent;
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: OrderRecord,
    pub timeline: Vec<TimelineEvent>,
    /// Supplier price rises beyond the tolerance, with the supplement each asks of the customer.
    pub price_changes: Vec<PriceChange>,
    /// The goods in the warehouse, once scanned in.
    pub warehouse: Option<WarehouseItem>,
    /// Charges beyond the total (storage extensions).
    pub charges: Vec<Charge>,
    /// The sellers' domestic shipments to the warehouse, as reported.
    #[serde(default)]
    pub seller_shipments: Vec<SellerShipmentRecord>,
}

impl Store {
    pub async fn order_detail(&self, id: &str) -> Result<OrderDetail> {
        let order = self.order(id).await?;
        let timeline = self.timeline(id).await?;
        let price_changes = self.price_changes(id).await?;
        let warehouse = match self.warehouse_item(id).await {
            Ok(i) => Some(i),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let charges = self
            .charges_of(&procure_workflows::order_workflow_id(id))
            .await?;
        let seller_shipments = self.seller_shipments(id).await?;
        Ok(OrderDetail {
            order,
            timeline,
            price_changes,
            warehouse,
            charges,
            seller_shipments,
        })
    }
}
