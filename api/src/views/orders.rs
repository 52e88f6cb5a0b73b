//! An order: as accepted and listed (`OrderView`), and read one at a time with its timeline,
//! price changes, goods in the warehouse, charges and the sellers' shipments (`OrderDetailView`).

use super::{payments::ChargeView, price_changes::PriceChangeView, warehouse::WarehouseItemView};
use procure_domain::{
    Money, OrderState,
    order::{OrderLine, TimelineEvent},
};
use procure_store::{
    orders::OrderRecord, read_model::OrderDetail, shipments::SellerShipmentRecord,
};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct OrderView {
    pub id: String,
    pub customer_id: String,
    pub quote_id: String,
    pub state: OrderState,
    pub total: Money,
    pub lines: Vec<OrderLine>,
    pub destination_country: String,
    pub payment_intent_id: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<OrderRecord> for OrderView {
    fn from(o: OrderRecord) -> Self {
        let OrderRecord {
            id,
            customer_id,
            quote_id,
            state,
            total,
            lines,
            destination_country,
            payment_intent_id,
            created_at_ms,
            updated_at_ms,
        } = o;
        OrderView {
            id,
            customer_id,
            quote_id,
            state,
            total,
            lines,
            destination_country,
            payment_intent_id,
            created_at_ms,
            updated_at_ms,
        }
    }
}

/// One order with everything that happened to it: the order's fields, then the rest.
#[derive(Clone, Debug, Serialize)]
pub struct OrderDetailView {
    #[serde(flatten)]
    pub order: OrderView,
    pub timeline: Vec<TimelineEvent>,
    /// Supplier price rises beyond the tolerance, with the supplement each asks of the customer.
    pub price_changes: Vec<PriceChangeView>,
    /// The goods in the warehouse, once scanned in.
    pub warehouse: Option<WarehouseItemView>,
    /// Charges beyond the total (storage extensions).
    pub charges: Vec<ChargeView>,
    /// The sellers' domestic shipments to our warehouse, one per line and waybill.
    pub seller_shipments: Vec<SellerShipmentView>,
}

/// A seller's domestic parcel to our warehouse.
#[derive(Clone, Debug, Serialize)]
pub struct SellerShipmentView {
    pub line_no: u32,
    pub platform: String,
    pub marketplace_order_id: String,
    pub carrier: String,
    pub waybill: String,
    /// `marketplace` (its logistics API) or `purchaser` (entered with the completion).
    pub source: String,
    pub recorded_at_ms: i64,
}

impl From<SellerShipmentRecord> for SellerShipmentView {
    fn from(s: SellerShipmentRecord) -> Self {
        let SellerShipmentRecord {
            order_id: _,
            line_no,
            platform,
            marketplace_order_id,
            carrier,
            waybill,
            source,
            recorded_at_ms,
        } = s;
        SellerShipmentView {
            line_no,
            platform,
            marketplace_order_id,
            carrier,
            waybill,
            source,
            recorded_at_ms,
        }
    }
}

impl From<OrderDetail> for OrderDetailView {
    fn from(d: OrderDetail) -> Self {
        let OrderDetail {
            order,
            timeline,
            price_changes,
            warehouse,
            charges,
            seller_shipments,
        } = d;
        OrderDetailView {
            order: order.into(),
            timeline,
            price_changes: price_changes.into_iter().map(Into::into).collect(),
            warehouse: warehouse.map(Into::into),
            charges: charges.into_iter().map(Into::into).collect(),
            seller_shipments: seller_shipments.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OrderList {
    pub orders: Vec<OrderView>,
}

impl From<Vec<OrderRecord>> for OrderList {
    fn from(rows: Vec<OrderRecord>) -> Self {
        OrderList {
            orders: rows.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{
        assert_wire, payments::tests as charges, price_changes::tests as changes,
        warehouse::tests as items,
    };
    use procure_domain::{Currency, order::Platform};
    use serde_json::{Value, json};

    fn order() -> OrderRecord {
        OrderRecord {
            id: "ord_1".into(),
            customer_id: "cus_1".into(),
            quote_id: "qt_1".into(),
            state: OrderState::Procuring,
            total: Money::new(4_599, Currency::EUR),
            lines: vec![OrderLine {
                line_no: 1,
                sku: "S1".into(),
                platform: Platform::Taobao,
                offer_id: "6001".into(),
                spec_id: String::new(),
                quantity: 2,
                unit_price: Money::new(1_780, Currency::CNY),
                max_unit_price: Money::new(1_958, Currency::CNY),
            }],
            destination_country: "DE".into(),
            payment_intent_id: Some("pi_1".into()),
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_050_000,
        }
    }

    fn order_json() -> Value {
        json!({
            "id": "ord_1",
            "customer_id": "cus_1",
            "quote_id": "qt_1",
            "state": OrderState::Procuring,
            "total": Money::new(4_599, Currency::EUR),
            "lines": [{
                "line_no": 1,
                "sku": "S1",
                "platform": "taobao",
                "offer_id": "6001",
                "spec_id": "",
                "quantity": 2,
                "unit_price": Money::new(1_780, Currency::CNY),
                "max_unit_price": Money::new(1_958, Currency::CNY),
            }],
            "destination_country": "DE",
            "payment_intent_id": "pi_1",
            "created_at_ms": 1_700_000_000_000i64,
            "updated_at_ms": 1_700_000_050_000i64,
        })
    }

    #[test]
    fn an_order_view_is_the_row_on_the_wire() {
        let o = order();
        assert_wire(&OrderView::from(o), order_json());
        assert_wire(
            &OrderList::from(vec![order()]),
            json!({"orders": [order_json()]}),
        );
    }

    #[test]
    fn an_order_detail_view_flattens_the_order_beside_its_history() {
        let timeline = vec![TimelineEvent {
            at_ms: 1_700_000_000_000,
            state: OrderState::Paid,
            reason: "payment succeeded".into(),
        }];
        let full = OrderDetail {
            order: order(),
            timeline: timeline.clone(),
            price_changes: vec![changes::change()],
            warehouse: Some(items::item()),
            charges: vec![charges::charge()],
            seller_shipments: vec![SellerShipmentRecord {
                order_id: "ord_1".into(),
                line_no: 1,
                platform: "1688".into(),
                marketplace_order_id: "58218860983545941".into(),
                carrier: "YTO".into(),
                waybill: "YT1234567890123".into(),
                source: "marketplace".into(),
                recorded_at_ms: 1_700_000_100_000,
            }],
        };
        let mut want = order_json();
        let extra = json!({
            "timeline": timeline,
            "price_changes": [changes::change_json()],
            "warehouse": items::item_json(),
            "charges": [charges::charge_json()],
            "seller_shipments": [{"line_no": 1, "platform": "1688",
                "marketplace_order_id": "58218860983545941", "carrier": "YTO",
                "waybill": "YT1234567890123", "source": "marketplace",
                "recorded_at_ms": 1_700_000_100_000_i64}],
        });
        want.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_wire(&OrderDetailView::from(full), want);

        let bare = OrderDetail {
            order: order(),
            timeline: vec![],
            price_changes: vec![],
            warehouse: None,
            charges: vec![],
            seller_shipments: vec![],
        };
        let mut want = order_json();
        let extra = json!({"timeline": [], "price_changes": [], "warehouse": null, "charges": [],
            "seller_shipments": []});
        want.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_wire(&OrderDetailView::from(bare), want);
    }
}
