//! Workflow versions: the one list of the patches that guard changes to the commands of running
//! workflows.
//!
//! # 1.0, the baseline
//!
//! Nothing ran in production before 1.0, so 1.0 carries no patch: the order, parcel and monitor
//! workflows are what `order/`, `parcel.rs` and `monitor.rs` say, and the histories in
//! `tests/histories/` (replayed by `recorded_histories_replay` in `tests/e2e.rs`) were recorded
//! from this code: a completed order, a price change the customer accepted, a line dropped from
//! a two-line order, lying payment webhooks parking an order until the real payment verified,
//! a malformed signal noted and ignored, and a price monitor's run. Before 1.0, the markers
//! `procurement-v2`, `assisted-pdd`, `verify-before-failover`, `price-change`, `parcels`,
//! `verify-payments`, `cancel-anywhere`, `bounded-steps` and `line-outcomes` guarded histories
//! that existed only in test fixtures; their new paths are the baseline and their old paths are
//! gone. Those names are never used again.
//!
//! # After 1.0: how a change that alters commands lands
//!
//! Orders live for weeks, so a change that makes running histories replay differently (an
//! activity, timer, child or signal sent added, removed, reordered or renamed; not a changed
//! timeline text or activity option) is guarded:
//! 1. add a constant below, named for what it changes, with a doc line saying what it guards,
//!    and list it in `PATCHES`;
//! 2. branch on it with `ctx.patched(versions::ID)` in the workflow (the old path stays for histories that
//!    started before it);
//! 3. record a history of the new path into `tests/histories/` (run the scenario's test with
//!    `PROCURE_RECORD_HISTORIES=<kind>_<patch>.json`), add it to the list `recorded_histories_replay`
//!    asserts, and name that file in the constant's doc;
//! 4. once no running workflow predates the patch, `ctx.deprecate_patch(ID)`, then remove the
//!    old path in a later release, saying so here.
//!
//! # The patches
//!
//! - [`ONE_STEP_OPEN`] (after 1.0).
//! - [`SELLER_SHIPMENT`] (after 1.0).

/// An order opens in one activity round trip: `open_order` records the accepted event, loads
/// the plan, holds the stock and finds (or creates) the payment intent the dispatcher opened at
/// accept, and writes the `PendingPayment` event, which the workflow adopts. Before it: a local
/// activity for `Created`, then `load_order`, `reserve_stock` and `create_payment`, then a local
/// activity for `PendingPayment`. It also records back-to-back moves (`Paid` → `Procuring`,
/// `Purchased` → `InboundTransit`) with one local activity, `record_transitions`, instead of one
/// each. Recorded history: `tests/histories/order_completed_one_step_open.json`.
pub const ONE_STEP_OPEN: &str = "one-step-open";

/// While the goods travel to the warehouse, the order follows the sellers' domestic shipments:
/// an activity `seller_shipments` every `seller_ship_poll_secs` (a timer each), a timeline note
/// "seller shipped: <carrier> <waybill>" per parcel, and `NeedsOperator` with the marketplace's
/// status when a seller has not shipped within `seller_ship_deadline_secs`
/// (`workflows/src/order/shipment.rs`). Before it: one timer for the inbound timeout and a wait
/// for the scan. Recorded history: `tests/histories/order_seller_shipment.json`.
pub const SELLER_SHIPMENT: &str = "seller-shipment";

/// Every patch id in force, oldest first; a workflow may only call `patched` with one of these.
pub const PATCHES: &[&str] = &[ONE_STEP_OPEN, SELLER_SHIPMENT];

/// The baseline the patches above are counted from.
pub const BASELINE: &str = "1.0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_ids_are_unique_and_never_reuse_a_pre_baseline_marker() {
        const RETIRED: [&str; 9] = [
            "procurement-v2",
            "assisted-pdd",
            "verify-before-failover",
            "price-change",
            "parcels",
            "verify-payments",
            "cancel-anywhere",
            "bounded-steps",
            "line-outcomes",
        ];
        for (i, id) in PATCHES.iter().enumerate() {
            assert!(!RETIRED.contains(id), "{id} was retired at {BASELINE}");
            assert!(!PATCHES[..i].contains(id), "{id} is listed twice");
        }
    }

    /// Workflow code branches only on patch ids declared in this module (`versions::ID`).
    #[test]
    fn workflow_code_takes_patch_ids_only_from_this_module() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = vec![src];
        let mut files = 0;
        while let Some(path) = paths.pop() {
            if path.is_dir() {
                paths.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("versions.rs") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                for call in [".patched(", ".deprecate_patch("] {
                    if let Some(at) = line.find(call) {
                        let arg = line[at + call.len()..].trim_start();
                        assert!(
                            arg.starts_with("versions::") || arg.starts_with("crate::versions::"),
                            "{}:{}: {line:?}: patch ids are declared in versions.rs",
                            path.display(),
                            n + 1
                        );
                    }
                }
            }
        }
        assert!(files > 5, "sanity: the workflow sources were read");
    }
}
