//! Charges beyond an order's total (storage extensions, shipping settlements), as an order's
//! and a parcel's answers show them.

use procure_domain::{
    Money,
    status::{ChargeKind, ChargeStatus},
};
use procure_store::payments::Charge;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ChargeView {
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

impl From<Charge> for ChargeView {
    fn from(c: Charge) -> Self {
        let Charge {
            id,
            workflow_id,
            kind,
            amount,
            intent_id,
            status,
            detail,
            created_at_ms,
        } = c;
        ChargeView {
            id,
            workflow_id,
            kind,
            amount,
            intent_id,
            status,
            detail,
            created_at_ms,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::views::assert_wire;
    use procure_domain::Currency;
    use serde_json::json;

    pub(crate) fn charge() -> Charge {
        Charge {
            id: "chg_1".into(),
            workflow_id: "order-ord_1".into(),
            kind: ChargeKind::StorageExtension,
            amount: Money::new(1_250, Currency::EUR),
            intent_id: None,
            status: ChargeStatus::Pending,
            detail: "storage 30 days".into(),
            created_at_ms: 1_700_000_000_000,
        }
    }

    pub(crate) fn charge_json() -> serde_json::Value {
        json!({
            "id": "chg_1",
            "workflow_id": "order-ord_1",
            "kind": "storage_extension",
            "amount": Money::new(1_250, Currency::EUR),
            "intent_id": null,
            "status": "pending",
            "detail": "storage 30 days",
            "created_at_ms": 1_700_000_000_000i64,
        })
    }

    #[test]
    fn a_charge_view_is_the_row_on_the_wire() {
        let c = charge();
        assert_wire(&ChargeView::from(c), charge_json());
    }
}
