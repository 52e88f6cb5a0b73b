//! Price monitors: a monitor with its schedule, its detail (offers, recent runs and alerts), a
//! product's price history, and alerts.

use crate::quotes::MoneyView;
use procure_domain::{monitor::AlertKind, order::Platform, status::MonitorStatus};
use procure_store::{catalogue::Offer, monitors::Alert};
use procure_workflows::monitor::RunSummary;
use serde::Serialize;

/// An offer of a product as procurement ranks it now.
#[derive(Clone, Debug, Serialize)]
pub struct OfferView {
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub price_fen: i64,
    pub domestic_shipping_fen: i64,
    pub stock: Option<i64>,
    /// Taken out of procurement (its listing disappeared).
    pub active: bool,
}

impl From<Offer> for OfferView {
    fn from(o: Offer) -> Self {
        let Offer {
            sku,
            platform,
            offer_id,
            spec_id,
            price_fen,
            domestic_shipping_fen,
            stock,
            active,
        } = o;
        OfferView {
            sku,
            platform,
            offer_id,
            spec_id,
            price_fen,
            domestic_shipping_fen,
            stock,
            active,
        }
    }
}

/// A price move worth telling a merchandiser, as a monitor's run found it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertView {
    pub id: i64,
    pub monitor_id: String,
    pub run_key: String,
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub alert: AlertKind,
    pub observed_at_ms: i64,
}

impl From<Alert> for AlertView {
    fn from(a: Alert) -> Self {
        let Alert {
            id,
            monitor_id,
            run_key,
            sku,
            platform,
            offer_id,
            alert,
            observed_at_ms,
        } = a;
        AlertView {
            id,
            monitor_id,
            run_key,
            sku,
            platform,
            offer_id,
            alert,
            observed_at_ms,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ScheduleView {
    pub schedule_id: String,
    /// Whether Temporal already reflects the monitor's last change.
    pub in_sync: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub overlap_policy: String,
    pub catchup_window_secs: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct MonitorView {
    pub monitor_id: String,
    pub name: String,
    pub cron: String,
    pub threshold_bps: u32,
    pub destination_country: String,
    pub status: MonitorStatus,
    pub skus: Vec<String>,
    pub schedule: ScheduleView,
    /// The next scheduled runs (ms since the epoch, UTC); none while paused.
    pub next_runs_ms: Vec<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A run of a monitor: when it was recorded and what the workflow found.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub recorded_at_ms: i64,
    #[serde(flatten)]
    pub summary: RunSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct MonitorDetail {
    #[serde(flatten)]
    pub monitor: MonitorView,
    /// Every offer of the monitor's products as procurement ranks them now.
    pub offers: Vec<OfferView>,
    pub recent_runs: Vec<RunView>,
    pub recent_alerts: Vec<AlertView>,
}

#[derive(Debug, Serialize)]
pub struct MonitorList {
    pub monitors: Vec<MonitorView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LandedView {
    /// All in for one unit, CNY fen.
    pub cost_fen: i64,
    /// The same in the destination's currency.
    pub cost: MoneyView,
    pub shipping_line: String,
    pub destination_country: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PricePoint {
    pub observed_at_ms: i64,
    pub listed: bool,
    pub price_fen: Option<i64>,
    pub stock: Option<i64>,
    pub landed: Option<LandedView>,
    pub monitor_id: String,
    pub run_key: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct OfferHistory {
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    /// Where procurement stands now (absent for offers no longer known).
    pub current: Option<OfferView>,
    /// Newest first.
    pub history: Vec<PricePoint>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProductPrices {
    pub sku: String,
    pub title: String,
    /// The channel and unit price quotes use now (the best-ranked offer).
    pub quoted_platform: String,
    pub quoted_offer_id: String,
    pub quoted_price_fen: i64,
    pub offers: Vec<OfferHistory>,
    pub alerts: Vec<AlertView>,
}

#[derive(Debug, Serialize)]
pub struct AlertList {
    pub alerts: Vec<AlertView>,
}

impl From<Vec<Alert>> for AlertList {
    fn from(rows: Vec<Alert>) -> Self {
        AlertList {
            alerts: rows.into_iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::assert_wire;
    use serde_json::{Value, json};

    fn offer(active: bool, stock: Option<i64>) -> Offer {
        Offer {
            sku: "S1".into(),
            platform: Platform::Pinduoduo,
            offer_id: "pdd-1".into(),
            spec_id: "red".into(),
            price_fen: 1_780,
            domestic_shipping_fen: 600,
            stock,
            active,
        }
    }

    fn alert(kind: AlertKind) -> Alert {
        Alert {
            id: 3,
            monitor_id: "pm_1".into(),
            run_key: "2026-12-01T12:00".into(),
            sku: "S1".into(),
            platform: Platform::Alibaba1688,
            offer_id: "6001".into(),
            alert: kind,
            observed_at_ms: 1_700_000_000_000,
        }
    }

    fn alert_json(kind: Value) -> Value {
        json!({
            "id": 3,
            "monitor_id": "pm_1",
            "run_key": "2026-12-01T12:00",
            "sku": "S1",
            "platform": "1688",
            "offer_id": "6001",
            "alert": kind,
            "observed_at_ms": 1_700_000_000_000i64,
        })
    }

    #[test]
    fn an_offer_view_is_the_row_on_the_wire() {
        for (active, stock) in [(true, Some(12)), (false, None)] {
            let o = offer(active, stock);
            let want = json!({
                "sku": "S1",
                "platform": "pinduoduo",
                "offer_id": "pdd-1",
                "spec_id": "red",
                "price_fen": 1_780,
                "domestic_shipping_fen": 600,
                "stock": stock,
                "active": active,
            });
            assert_wire(&OfferView::from(o), want);
        }
    }

    #[test]
    fn an_alert_view_is_the_row_on_the_wire() {
        let kinds = [
            (
                AlertKind::PriceUp {
                    from_fen: 1_780,
                    to_fen: 2_670,
                    change_bps: 5_000,
                },
                json!({"kind": "price_up", "from_fen": 1_780, "to_fen": 2_670, "change_bps": 5_000}),
            ),
            (
                AlertKind::PriceDown {
                    from_fen: 2_670,
                    to_fen: 1_780,
                    change_bps: -3_333,
                },
                json!({"kind": "price_down", "from_fen": 2_670, "to_fen": 1_780, "change_bps": -3_333}),
            ),
            (AlertKind::Disappeared, json!({"kind": "disappeared"})),
            (AlertKind::Reappeared, json!({"kind": "reappeared"})),
            (AlertKind::OutOfStock, json!({"kind": "out_of_stock"})),
        ];
        for (kind, kind_json) in kinds {
            let a = alert(kind);
            let want = alert_json(kind_json);
            assert_wire(&AlertView::from(a), want);
        }
        assert_wire(
            &AlertList::from(vec![alert(AlertKind::Disappeared)]),
            json!({"alerts": [alert_json(json!({"kind": "disappeared"}))]}),
        );
    }
}
