//! The buyer-account pool (admin) and the assisted channel's purchaser tasks. An account's
//! view has no field for its credentials: they are write-only.

use procure_domain::{
    order::Platform,
    status::{AccountStatus, PurchaserTaskStatus},
};
use procure_store::accounts::{BuyerAccount, PurchaserTask};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct AccountView {
    pub id: String,
    pub platform: Platform,
    pub label: String,
    pub weight: i64,
    pub daily_cap: i64,
    pub per_minute: i64,
    pub status: AccountStatus,
    pub cooling_until_ms: i64,
    pub successes: i64,
    pub failures: i64,
    pub risk_events: i64,
}

impl From<BuyerAccount> for AccountView {
    fn from(a: BuyerAccount) -> Self {
        let BuyerAccount {
            id,
            platform,
            label,
            weight,
            daily_cap,
            per_minute,
            status,
            cooling_until_ms,
            successes,
            failures,
            risk_events,
        } = a;
        AccountView {
            id,
            platform,
            label,
            weight,
            daily_cap,
            per_minute,
            status,
            cooling_until_ms,
            successes,
            failures,
            risk_events,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
}

impl From<Vec<BuyerAccount>> for AccountList {
    fn from(rows: Vec<BuyerAccount>) -> Self {
        AccountList {
            accounts: rows.into_iter().map(Into::into).collect(),
        }
    }
}

/// What a purchaser buys by hand, where, for at most how much, by when; and what they reported.
#[derive(Clone, Debug, Serialize)]
pub struct PurchaserTaskView {
    pub id: String,
    pub order_id: String,
    pub line_no: i64,
    pub platform: String,
    pub offer_id: String,
    pub quantity: i64,
    pub max_total_fen: i64,
    pub status: PurchaserTaskStatus,
    pub marketplace_order_id: Option<String>,
    pub paid_fen: Option<i64>,
    pub due_at_ms: i64,
    pub created_at_ms: i64,
}

impl From<PurchaserTask> for PurchaserTaskView {
    fn from(t: PurchaserTask) -> Self {
        let PurchaserTask {
            id,
            order_id,
            line_no,
            platform,
            offer_id,
            quantity,
            max_total_fen,
            status,
            marketplace_order_id,
            paid_fen,
            due_at_ms,
            created_at_ms,
        } = t;
        PurchaserTaskView {
            id,
            order_id,
            line_no,
            platform,
            offer_id,
            quantity,
            max_total_fen,
            status,
            marketplace_order_id,
            paid_fen,
            due_at_ms,
            created_at_ms,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct TaskList {
    pub tasks: Vec<PurchaserTaskView>,
}

impl From<Vec<PurchaserTask>> for TaskList {
    fn from(rows: Vec<PurchaserTask>) -> Self {
        TaskList {
            tasks: rows.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::{Value, json};

    fn account() -> BuyerAccount {
        BuyerAccount {
            id: "acc_1".into(),
            platform: Platform::Alibaba1688,
            label: "main".into(),
            weight: 10,
            daily_cap: 200,
            per_minute: 5,
            status: AccountStatus::Disabled,
            cooling_until_ms: 0,
            successes: 3,
            failures: 1,
            risk_events: 0,
        }
    }

    fn account_json() -> Value {
        json!({
            "id": "acc_1",
            "platform": Platform::Alibaba1688,
            "label": "main",
            "weight": 10,
            "daily_cap": 200,
            "per_minute": 5,
            "status": "disabled",
            "cooling_until_ms": 0,
            "successes": 3,
            "failures": 1,
            "risk_events": 0,
        })
    }

    fn task() -> PurchaserTask {
        PurchaserTask {
            id: "pt_1".into(),
            order_id: "ord_1".into(),
            line_no: 2,
            platform: "pinduoduo".into(),
            offer_id: "pdd-9".into(),
            quantity: 3,
            max_total_fen: 9_000,
            status: PurchaserTaskStatus::Completed,
            marketplace_order_id: Some("mo_1".into()),
            paid_fen: Some(8_700),
            due_at_ms: 1_700_000_900_000,
            created_at_ms: 1_700_000_000_000,
        }
    }

    fn task_json() -> Value {
        json!({
            "id": "pt_1",
            "order_id": "ord_1",
            "line_no": 2,
            "platform": "pinduoduo",
            "offer_id": "pdd-9",
            "quantity": 3,
            "max_total_fen": 9_000,
            "status": "completed",
            "marketplace_order_id": "mo_1",
            "paid_fen": 8_700,
            "due_at_ms": 1_700_000_900_000i64,
            "created_at_ms": 1_700_000_000_000i64,
        })
    }

    #[test]
    fn an_account_view_is_the_row_on_the_wire() {
        let a = account();
        assert_wire(&AccountView::from(a), account_json());
        assert_wire(
            &AccountList::from(vec![account()]),
            json!({"accounts": [account_json()]}),
        );
    }

    #[test]
    fn a_purchaser_task_view_is_the_row_on_the_wire() {
        let t = task();
        assert_wire(&PurchaserTaskView::from(t), task_json());
        assert_wire(
            &TaskList::from(vec![task()]),
            json!({"tasks": [task_json()]}),
        );
    }
}
