//! A supplier's price rise beyond the tolerance, with the supplement it asks of the customer:
//! in an order's answer and in the answer to the customer's decision.

use procure_domain::{Money, status::PriceChangeStatus};
use procure_store::price_changes::PriceChange;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct PriceChangeView {
    pub id: String,
    pub order_id: String,
    pub line_no: i64,
    pub platform: String,
    pub offer_id: String,
    pub quantity: i64,
    /// The unit price already paid for (the quote's, or an earlier accepted change's).
    pub quoted_unit_fen: i64,
    pub new_unit_fen: i64,
    /// The supplement, in the order's currency.
    pub amount: Money,
    /// The payment intent the customer confirms to accept.
    pub intent_id: Option<String>,
    pub status: PriceChangeStatus,
    pub refunded_minor: i64,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

impl From<PriceChange> for PriceChangeView {
    fn from(c: PriceChange) -> Self {
        let PriceChange {
            id,
            order_id,
            line_no,
            platform,
            offer_id,
            quantity,
            quoted_unit_fen,
            new_unit_fen,
            amount,
            intent_id,
            status,
            refunded_minor,
            due_at_ms,
            created_at_ms,
            decided_at_ms,
        } = c;
        PriceChangeView {
            id,
            order_id,
            line_no,
            platform,
            offer_id,
            quantity,
            quoted_unit_fen,
            new_unit_fen,
            amount,
            intent_id,
            status,
            refunded_minor,
            due_at_ms,
            created_at_ms,
            decided_at_ms,
        }
    }
}

/// The answer to a customer's decision on a price change.
#[derive(Debug, Serialize)]
pub struct DecisionResult {
    pub price_change: PriceChangeView,
    /// After accepting: the payment intent to confirm for the supplement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_intent_id: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::views::assert_wire;
    use procure_domain::Currency;
    use serde_json::json;

    pub(crate) fn change() -> PriceChange {
        PriceChange {
            id: "pc_1".into(),
            order_id: "ord_1".into(),
            line_no: 1,
            platform: "1688".into(),
            offer_id: "6001".into(),
            quantity: 2,
            quoted_unit_fen: 1_780,
            new_unit_fen: 2_670,
            amount: Money::new(240, Currency::EUR),
            intent_id: Some("pi_1".into()),
            status: PriceChangeStatus::Accepted,
            refunded_minor: 0,
            due_at_ms: 1_700_000_100_000,
            created_at_ms: 1_700_000_000_000,
            decided_at_ms: None,
        }
    }

    pub(crate) fn change_json() -> serde_json::Value {
        json!({
            "id": "pc_1",
            "order_id": "ord_1",
            "line_no": 1,
            "platform": "1688",
            "offer_id": "6001",
            "quantity": 2,
            "quoted_unit_fen": 1_780,
            "new_unit_fen": 2_670,
            "amount": Money::new(240, Currency::EUR),
            "intent_id": "pi_1",
            "status": "accepted",
            "refunded_minor": 0,
            "due_at_ms": 1_700_000_100_000i64,
            "created_at_ms": 1_700_000_000_000i64,
            "decided_at_ms": null,
        })
    }

    #[test]
    fn a_price_change_view_is_the_row_on_the_wire() {
        let c = change();
        assert_wire(&PriceChangeView::from(c), change_json());
    }

    #[test]
    fn a_decision_names_the_intent_only_after_accepting() {
        let accepted = DecisionResult {
            price_change: change().into(),
            pay_intent_id: Some("pi_1".into()),
        };
        assert_wire(
            &accepted,
            json!({"price_change": change_json(), "pay_intent_id": "pi_1"}),
        );
        let declined = DecisionResult {
            price_change: change().into(),
            pay_intent_id: None,
        };
        assert_wire(&declined, json!({"price_change": change_json()}));
    }
}
