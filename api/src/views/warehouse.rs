//! The consolidation warehouse: a customer's stored goods (also in an order's answer) and the
//! inbound parcels kept aside as exceptions.

use procure_domain::{
    quote::Dimensions,
    status::{WarehouseExceptionStatus, WarehouseItemStatus},
};
use procure_store::warehouse::{WarehouseException, WarehouseItem};
use serde::Serialize;

/// An order's goods in the warehouse.
#[derive(Clone, Debug, Serialize)]
pub struct WarehouseItemView {
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

impl From<WarehouseItem> for WarehouseItemView {
    fn from(i: WarehouseItem) -> Self {
        let WarehouseItem {
            order_id,
            customer_id,
            destination_country,
            weight_g,
            dims,
            photo_urls,
            status,
            parcel_id,
            received_at_ms,
            stored_until_ms,
        } = i;
        WarehouseItemView {
            order_id,
            customer_id,
            destination_country,
            weight_g,
            dims,
            photo_urls,
            status,
            parcel_id,
            received_at_ms,
            stored_until_ms,
        }
    }
}

/// An inbound parcel that could not be applied, with why.
#[derive(Clone, Debug, Serialize)]
pub struct WarehouseExceptionView {
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

impl From<WarehouseException> for WarehouseExceptionView {
    fn from(e: WarehouseException) -> Self {
        let WarehouseException {
            id,
            reference,
            weight_g,
            dims,
            photo_urls,
            status,
            reason,
            resolved_order_id,
            created_at_ms,
        } = e;
        WarehouseExceptionView {
            id,
            reference,
            weight_g,
            dims,
            photo_urls,
            status,
            reason,
            resolved_order_id,
            created_at_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ExceptionList {
    pub exceptions: Vec<WarehouseExceptionView>,
}

impl From<Vec<WarehouseException>> for ExceptionList {
    fn from(rows: Vec<WarehouseException>) -> Self {
        ExceptionList {
            exceptions: rows.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ItemList {
    pub items: Vec<WarehouseItemView>,
}

impl From<Vec<WarehouseItem>> for ItemList {
    fn from(rows: Vec<WarehouseItem>) -> Self {
        ItemList {
            items: rows.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::json;

    pub(crate) fn item() -> WarehouseItem {
        WarehouseItem {
            order_id: "ord_1".into(),
            customer_id: "cus_1".into(),
            destination_country: "DE".into(),
            weight_g: 850,
            dims: Dimensions {
                l_mm: 300,
                w_mm: 200,
                h_mm: 100,
            },
            photo_urls: vec!["https://photos.example/1.jpg".into()],
            status: WarehouseItemStatus::InParcel,
            parcel_id: Some("pcl_1".into()),
            received_at_ms: 1_700_000_000_000,
            stored_until_ms: 1_702_592_000_000,
        }
    }

    pub(crate) fn item_json() -> serde_json::Value {
        json!({
            "order_id": "ord_1",
            "customer_id": "cus_1",
            "destination_country": "DE",
            "weight_g": 850,
            "dims": {"l_mm": 300, "w_mm": 200, "h_mm": 100},
            "photo_urls": ["https://photos.example/1.jpg"],
            "status": "in_parcel",
            "parcel_id": "pcl_1",
            "received_at_ms": 1_700_000_000_000i64,
            "stored_until_ms": 1_702_592_000_000i64,
        })
    }

    fn exception() -> WarehouseException {
        WarehouseException {
            id: 7,
            reference: "ord_9-L1".into(),
            weight_g: 120,
            dims: Dimensions {
                l_mm: 10,
                w_mm: 20,
                h_mm: 30,
            },
            photo_urls: vec![],
            status: WarehouseExceptionStatus::Open,
            reason: "matches no order".into(),
            resolved_order_id: None,
            created_at_ms: 1_700_000_000_000,
        }
    }

    fn exception_json() -> serde_json::Value {
        json!({
            "id": 7,
            "reference": "ord_9-L1",
            "weight_g": 120,
            "dims": {"l_mm": 10, "w_mm": 20, "h_mm": 30},
            "photo_urls": [],
            "status": "open",
            "reason": "matches no order",
            "resolved_order_id": null,
            "created_at_ms": 1_700_000_000_000i64,
        })
    }

    #[test]
    fn a_warehouse_item_view_is_the_row_on_the_wire() {
        let i = item();
        assert_wire(&WarehouseItemView::from(i), item_json());
        assert_wire(
            &ItemList::from(vec![item()]),
            json!({"items": [item_json()]}),
        );
    }

    #[test]
    fn a_warehouse_exception_view_is_the_row_on_the_wire() {
        let e = exception();
        assert_wire(&WarehouseExceptionView::from(e), exception_json());
        assert_wire(
            &ExceptionList::from(vec![exception()]),
            json!({"exceptions": [exception_json()]}),
        );
    }
}
