//! A parcel: the orders it ships, its measures once packed, each order's settlement against
//! its quote, and the charges it raised.

use super::payments::ChargeView;
use procure_domain::{
    Currency, Money,
    quote::Dimensions,
    status::{ParcelStatus, SettlementOutcome},
};
use procure_store::parcels::{Parcel, ParcelSettlement};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ParcelView {
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
    pub settlements: Vec<SettlementView>,
    pub charges: Vec<ChargeView>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<Parcel> for ParcelView {
    fn from(p: Parcel) -> Self {
        let Parcel {
            id,
            customer_id,
            destination_country,
            shipping_line,
            currency,
            status,
            estimated,
            actual,
            weight_g,
            dims,
            carrier,
            tracking_number,
            order_ids,
            settlements,
            charges,
            created_at_ms,
            updated_at_ms,
        } = p;
        ParcelView {
            id,
            customer_id,
            destination_country,
            shipping_line,
            currency,
            status,
            estimated,
            actual,
            weight_g,
            dims,
            carrier,
            tracking_number,
            order_ids,
            settlements: settlements.into_iter().map(Into::into).collect(),
            charges: charges.into_iter().map(Into::into).collect(),
            created_at_ms,
            updated_at_ms,
        }
    }
}

/// One order's quoted estimate against its share of the parcel's actual cost.
#[derive(Clone, Debug, Serialize)]
pub struct SettlementView {
    pub order_id: String,
    pub guaranteed: bool,
    pub estimated: Money,
    pub actual: Money,
    pub outcome: SettlementOutcome,
    pub amount: Money,
    pub refund_id: Option<String>,
}

impl From<ParcelSettlement> for SettlementView {
    fn from(s: ParcelSettlement) -> Self {
        let ParcelSettlement {
            order_id,
            guaranteed,
            estimated,
            actual,
            outcome,
            amount,
            refund_id,
        } = s;
        SettlementView {
            order_id,
            guaranteed,
            estimated,
            actual,
            outcome,
            amount,
            refund_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{assert_wire, payments::tests as charges};
    use serde_json::{Value, json};

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::EUR)
    }

    fn requested() -> Parcel {
        Parcel {
            id: "pcl_1".into(),
            customer_id: "cus_1".into(),
            destination_country: "DE".into(),
            shipping_line: "air-standard".into(),
            currency: Currency::EUR,
            status: ParcelStatus::Requested,
            estimated: eur(1_500),
            actual: None,
            weight_g: None,
            dims: None,
            carrier: None,
            tracking_number: None,
            order_ids: vec!["ord_1".into(), "ord_2".into()],
            settlements: vec![],
            charges: vec![],
            created_at_ms: 1_700_000_000_000,
            updated_at_ms: 1_700_000_000_000,
        }
    }

    fn requested_json() -> Value {
        json!({
            "id": "pcl_1",
            "customer_id": "cus_1",
            "destination_country": "DE",
            "shipping_line": "air-standard",
            "currency": Currency::EUR,
            "status": "requested",
            "estimated": eur(1_500),
            "actual": null,
            "weight_g": null,
            "dims": null,
            "carrier": null,
            "tracking_number": null,
            "order_ids": ["ord_1", "ord_2"],
            "settlements": [],
            "charges": [],
            "created_at_ms": 1_700_000_000_000i64,
            "updated_at_ms": 1_700_000_000_000i64,
        })
    }

    #[test]
    fn a_requested_parcel_view_is_the_row_on_the_wire() {
        let p = requested();
        assert_wire(&ParcelView::from(p), requested_json());
    }

    #[test]
    fn a_shipped_parcel_view_carries_its_settlements_and_charges() {
        let p = Parcel {
            status: ParcelStatus::Shipped,
            actual: Some(eur(1_800)),
            weight_g: Some(2_400),
            dims: Some(Dimensions {
                l_mm: 400,
                w_mm: 300,
                h_mm: 200,
            }),
            carrier: Some("yunexpress".into()),
            tracking_number: Some("YT123".into()),
            settlements: vec![
                ParcelSettlement {
                    order_id: "ord_1".into(),
                    guaranteed: false,
                    estimated: eur(1_000),
                    actual: eur(1_300),
                    outcome: SettlementOutcome::Charge,
                    amount: eur(300),
                    refund_id: None,
                },
                ParcelSettlement {
                    order_id: "ord_2".into(),
                    guaranteed: true,
                    estimated: eur(500),
                    actual: eur(500),
                    outcome: SettlementOutcome::Even,
                    amount: eur(0),
                    refund_id: Some("re_1".into()),
                },
            ],
            charges: vec![charges::charge()],
            ..requested()
        };
        let mut want = requested_json();
        let changed = json!({
            "status": "shipped",
            "actual": eur(1_800),
            "weight_g": 2_400,
            "dims": {"l_mm": 400, "w_mm": 300, "h_mm": 200},
            "carrier": "yunexpress",
            "tracking_number": "YT123",
            "settlements": [
                {"order_id": "ord_1", "guaranteed": false, "estimated": eur(1_000),
                 "actual": eur(1_300), "outcome": "charge", "amount": eur(300), "refund_id": null},
                {"order_id": "ord_2", "guaranteed": true, "estimated": eur(500),
                 "actual": eur(500), "outcome": "even", "amount": eur(0), "refund_id": "re_1"},
            ],
            "charges": [charges::charge_json()],
        });
        want.as_object_mut()
            .unwrap()
            .extend(changed.as_object().unwrap().clone());
        assert_wire(&ParcelView::from(p), want);
    }
}
