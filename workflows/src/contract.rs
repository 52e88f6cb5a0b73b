//! The activity contract: names, inputs and outputs of every activity a workflow calls. The
//! worker registers implementations under these names (`#[activity(definition = …)]`), so the
//! compiler checks both sides against one declaration. Payloads carry ids and amounts, never
//! addresses or credentials: activities read those from the store themselves.

#![allow(clippy::unused_unit)]

use procure_domain::{Money, OrderState, order::OrderLine, procurement::Candidate};
use serde::{Deserialize, Serialize};
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

/// What the workflow needs to know about an order (no personal data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlan {
    pub order_id: String,
    pub lines: Vec<OrderLine>,
    /// What the customer pays, in their currency.
    pub total: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReserveOutcome {
    Reserved,
    Insufficient {
        sku: String,
        requested: u32,
        available: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub order_id: String,
    /// Position in the timeline: makes the read-model write idempotent.
    pub seq: u32,
    pub from: OrderState,
    pub to: OrderState,
    pub at_ms: i64,
    pub reason: String,
}

/// What `open_order` is asked: the order, and the timeline's first event (already on the
/// workflow's timeline) to write to the read-model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub order_id: String,
    pub accepted: TransitionRecord,
}

/// The order opened in one step: its plan, its stock held, and either its payment intent with
/// the `PendingPayment` event already written to the read-model (the workflow adopts it), or
/// the line that could not be held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Opened {
    Payable {
        plan: OrderPlan,
        payment: PaymentCreated,
        pending: TransitionRecord,
    },
    OutOfStock {
        plan: OrderPlan,
        sku: String,
        requested: u32,
        available: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCreated {
    pub intent_id: String,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub order_id: String,
    pub amount: Money,
    pub reason: String,
    /// Which refund of the order this is: none for the full refund (one per order), `L{n}`
    /// for the share of a line dropped or cancelled on its own. Part of the idempotency key.
    #[serde(default)]
    pub part: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundDone {
    pub refund_id: String,
    pub amount: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentBooked {
    pub carrier: String,
    pub tracking_number: String,
}

/// Parcel status as the tracking provider reports it (17TRACK's vocabulary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelStatus {
    pub status: String,
    pub description: String,
}

impl ParcelStatus {
    pub fn is_delivered(&self) -> bool {
        self.status == "Delivered"
    }

    pub fn is_exception(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Exception" | "DeliveryFailure" | "Expired"
        )
    }
}

/// Marker types of the order activities, for `#[activity(definition = …)]` in the worker.
pub mod defs {
    pub use super::noop_activities::Noop;
    pub use super::order_activities::{
        CancelPayment, CancelPurchase, CreatePayment, ExpirePurchaserTask, LoadOrder, OpenOrder,
        OpenPurchaserTask, ProcurementCandidates, ProposePriceChange, PurchaseOffer,
        RecordTransition, RecordTransitions, RefundPayment, RefundSupplements, ReleaseStock,
        ReserveStock, SellerShipments, SettleExisting, TrackParcel, VerifyPayment,
        WithdrawPriceChange,
    };
}

/// Which offers of a line to try, best first; an operator's override narrows the choice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidatesRequest {
    pub order_id: String,
    pub line_no: u32,
    #[serde(default)]
    pub only_offer: Option<String>,
    #[serde(default)]
    pub max_unit_fen: Option<i64>,
}

/// One purchase attempt on one offer (the activity picks the buyer account unless told).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferPurchase {
    pub order_id: String,
    pub line_no: u32,
    pub candidate: Candidate,
    pub quantity: u32,
    pub max_unit_fen: i64,
    #[serde(default)]
    pub account: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfferOutcome {
    Purchased {
        platform: String,
        marketplace_order_id: String,
        paid: Money,
        adopted: bool,
        account: String,
    },
    /// This supplier cannot serve the line (out of stock, listing gone…): try the next one.
    MoveOn { reason: String },
    /// The supplier asks more than the customer's tolerance.
    PriceAbove {
        quoted_unit_fen: i64,
        reason: String,
    },
    /// No buyer account of the platform can take an order now.
    NoAccount { reason: String },
}

/// Operator override sent with `retry_procurement` (unknown fields are refused, so a
/// misspelt override is never silently dropped).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "JsonObject")]
pub struct RetryProcurement {
    #[serde(default)]
    pub offer_id: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    /// Highest unit price (fen) the operator allows.
    #[serde(default)]
    pub max_unit_fen: Option<i64>,
}

/// Operator inputs are JSON objects only: serde would otherwise also fill a struct of
/// optional fields from an array (`[]` would mean "no overrides").
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

impl TryFrom<JsonObject> for RetryProcurement {
    type Error = String;
    fn try_from(m: JsonObject) -> Result<Self, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            #[serde(default)]
            offer_id: Option<String>,
            #[serde(default)]
            account: Option<String>,
            #[serde(default)]
            max_unit_fen: Option<i64>,
        }
        let f: Fields =
            serde_json::from_value(serde_json::Value::Object(m)).map_err(|e| e.to_string())?;
        Ok(RetryProcurement {
            offer_id: f.offer_id,
            account: f.account,
            max_unit_fen: f.max_unit_fen,
        })
    }
}

/// Opening a purchaser task for an assisted line (no personal data: the purchaser ships to our
/// warehouse, whose address is configuration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaserTaskRequest {
    pub order_id: String,
    pub line_no: u32,
    pub platform: String,
    pub offer_id: String,
    pub spec_id: String,
    pub quantity: u32,
    pub max_total_fen: i64,
    pub due_at_ms: i64,
}

/// Signal payload: a purchaser completed a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaserResult {
    pub task_id: String,
    pub marketplace_order_id: String,
    pub paid_fen: i64,
}

/// The cheapest supplier left asks more than the customer's tolerance: ask the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChangeRequest {
    /// Deterministic (order, line, n-th change of the order): a retried activity finds its row.
    pub change_id: String,
    pub order_id: String,
    pub line_no: u32,
    pub platform: String,
    pub offer_id: String,
    pub quantity: u32,
    pub new_unit_fen: i64,
    /// The unit price the customer has already paid for (the quote's, or an earlier accepted
    /// change's): the supplement covers only the rise above it.
    pub covered_unit_fen: i64,
    pub due_at_ms: i64,
}

/// The change as put to the customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChangeProposal {
    pub change_id: String,
    /// In the order's currency; zero when the rise vanished in conversion (then no question).
    pub supplement: Money,
    /// The payment intent the customer confirms to accept; none when there is nothing to pay.
    pub intent_id: Option<String>,
}

/// Read a payment back from the provider: a webhook (or a hand-sent signal) only says that
/// something happened; the provider's intent decides whether we were paid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCheck {
    /// The intent we created for this payment (never the one a signal names).
    pub intent_id: String,
    /// Exactly what is owed, amount and currency.
    pub expected: Money,
    /// The `metadata[order_id]` we gave the intent.
    pub reference: String,
}

impl PaymentCheck {
    /// The check to ask the provider for, or at once a mismatch when the confirmation names
    /// another intent than `ours` (the one we created for what is owed).
    pub fn of(
        claimed: &str,
        ours: &str,
        expected: Money,
        reference: &str,
    ) -> Result<PaymentCheck, PaymentVerdict> {
        if claimed != ours {
            return Err(PaymentVerdict::Mismatch {
                reason: format!("the confirmation names payment {claimed}, not this one ({ours})"),
            });
        }
        Ok(PaymentCheck {
            intent_id: ours.to_owned(),
            expected,
            reference: reference.to_owned(),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentVerdict {
    /// The provider holds a succeeded intent of ours for exactly what is owed.
    Verified { received: Money },
    /// Anything else, in words for the timeline.
    Mismatch { reason: String },
}

/// Declarations of the order activities; bodies are never called.
pub struct OrderActivities;

#[activity_definitions]
impl OrderActivities {
    #[activity(name = "load_order")]
    pub fn load_order(order_id: String) -> Result<OrderPlan, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "reserve_stock")]
    pub fn reserve_stock(order_id: String) -> Result<ReserveOutcome, ActivityError> {
        unimplemented!()
    }

    /// Load, hold the stock and make payable in one round trip (patch `one-step-open`).
    #[activity(name = "open_order")]
    pub fn open_order(req: OpenRequest) -> Result<Opened, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "release_stock")]
    pub fn release_stock(order_id: String) -> Result<u32, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "record_transition")]
    pub fn record_transition(record: TransitionRecord) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Several back-to-back moves, written in one local activity (patch `one-step-open`).
    #[activity(name = "record_transitions")]
    pub fn record_transitions(records: Vec<TransitionRecord>) -> Result<(), ActivityError> {
        unimplemented!()
    }

    #[activity(name = "create_payment")]
    pub fn create_payment(order_id: String) -> Result<PaymentCreated, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "cancel_payment")]
    pub fn cancel_payment(order_id: String) -> Result<(), ActivityError> {
        unimplemented!()
    }

    #[activity(name = "verify_payment")]
    pub fn verify_payment(check: PaymentCheck) -> Result<PaymentVerdict, ActivityError> {
        unimplemented!()
    }

    /// Cancel one bought line at its marketplace (see `MarketplaceCancelOutcome`).
    #[activity(name = "cancel_purchase")]
    pub fn cancel_purchase(
        req: MarketplaceCancelRequest,
    ) -> Result<MarketplaceCancelOutcome, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "refund_payment")]
    pub fn refund_payment(req: RefundRequest) -> Result<RefundDone, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "procurement_candidates")]
    pub fn procurement_candidates(req: CandidatesRequest) -> Result<Vec<Candidate>, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "purchase_offer")]
    pub fn purchase_offer(req: OfferPurchase) -> Result<OfferOutcome, ActivityError> {
        unimplemented!()
    }

    /// Adopt (and pay, within tolerance) an order our external id already holds at this
    /// supplier; `MoveOn` when the supplier confirms there is none.
    #[activity(name = "settle_existing")]
    pub fn settle_existing(req: OfferPurchase) -> Result<OfferOutcome, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "open_purchaser_task")]
    pub fn open_purchaser_task(req: PurchaserTaskRequest) -> Result<String, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "expire_purchaser_task")]
    pub fn expire_purchaser_task(task_id: String) -> Result<bool, ActivityError> {
        unimplemented!()
    }

    /// Record a price change and create the supplement's payment intent; idempotent.
    #[activity(name = "propose_price_change")]
    pub fn propose_price_change(
        req: PriceChangeRequest,
    ) -> Result<PriceChangeProposal, ActivityError> {
        unimplemented!()
    }

    /// Close an unanswered or declined price change: cancel its intent unless it was paid.
    #[activity(name = "withdraw_price_change")]
    pub fn withdraw_price_change(change_id: String) -> Result<ChargeWithdrawal, ActivityError> {
        unimplemented!()
    }

    /// Refund every paid supplement of an order (one refund each, idempotent).
    #[activity(name = "refund_supplements")]
    pub fn refund_supplements(order_id: String) -> Result<Vec<RefundDone>, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "track_parcel")]
    pub fn track_parcel(tracking_number: String) -> Result<ParcelStatus, ActivityError> {
        unimplemented!()
    }

    /// Follow the sellers' domestic shipments of the bought lines (patch `seller-shipment`).
    #[activity(name = "seller_shipments")]
    pub fn seller_shipments(
        req: SellerShipmentsRequest,
    ) -> Result<SellerShipmentReport, ActivityError> {
        unimplemented!()
    }
}

/// The baseline's activity: does nothing, so `procure bench` measures pure engine overhead.
pub struct NoopActivities;

#[activity_definitions]
impl NoopActivities {
    #[activity(name = "noop")]
    pub fn noop(step: u32) -> Result<u32, ActivityError> {
        unimplemented!()
    }
}

// ----- fulfilment: warehouse storage, parcels, charges ------------------------------------

/// A charge beyond an order's total (shipping settlement, storage extension).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeCreated {
    pub charge_id: String,
    pub intent_id: String,
    pub amount: Money,
}

/// Signal payload: the customer paid something beyond the order's total, with a payment intent
/// of its own (payment webhook → outbox → signal): a charge (storage extension, shipping
/// settlement) or a price change's supplement, whose charge id is the price change's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargePaid {
    /// The charge, or the price change (`change_id` is accepted as its name).
    #[serde(alias = "change_id")]
    pub charge_id: String,
    pub intent_id: String,
    pub amount: Money,
}

/// How withdrawing an unpaid charge or supplement ended at the payment provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeWithdrawal {
    /// The intent is cancelled; the customer was not charged.
    Withdrawn,
    /// Paid at the last moment: the money is ours to use or to return.
    Paid(ChargePaid),
}

/// Extending an order's storage by `days`, charged per day at the configured rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageExtension {
    pub charge_id: String,
    pub order_id: String,
    pub days: u32,
}

/// Remind the customer of their items whose free storage ends within `window_secs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageReminderRequest {
    pub order_id: String,
    pub window_secs: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendStorage {
    pub order_id: String,
    pub days: u32,
    /// The storage end the extension starts from (the workflow's view when it was paid), so a
    /// retried activity extends once, not twice.
    #[serde(default)]
    pub from_ms: i64,
}

/// What packing settled: refunds made to orders, and the charge still to pay, if any.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelSettled {
    pub refunds: Vec<RefundDone>,
    pub charge: Option<ChargeCreated>,
    /// Differences we absorbed for guaranteed quotes.
    pub absorbed: Option<Money>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelStatusUpdate {
    pub parcel_id: String,
    pub status: procure_domain::status::ParcelStage,
}

/// Marker types of the fulfilment activities.
pub mod fulfilment_defs {
    pub use super::fulfilment_activities::{
        BookParcel, CreateStorageCharge, DisposeItem, ExtendStorage, RecordParcelStatus,
        SettleParcel, StorageDeadline, StorageReminder, WithdrawCharge,
    };
}

/// Declarations of the warehouse and parcel activities; bodies are never called.
pub struct FulfilmentActivities;

#[activity_definitions]
impl FulfilmentActivities {
    /// When the order's goods stop being stored for free (ms since the epoch).
    #[activity(name = "storage_deadline")]
    pub fn storage_deadline(order_id: String) -> Result<i64, ActivityError> {
        unimplemented!()
    }

    /// Remind the customer of every item of theirs whose storage ends soon (one message per
    /// customer and day); false when today's reminder was already sent.
    #[activity(name = "storage_reminder")]
    pub fn storage_reminder(req: StorageReminderRequest) -> Result<bool, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "create_storage_charge")]
    pub fn create_storage_charge(req: StorageExtension) -> Result<ChargeCreated, ActivityError> {
        unimplemented!()
    }

    /// Push the storage end by `days`; returns the new end (ms).
    #[activity(name = "extend_storage")]
    pub fn extend_storage(req: ExtendStorage) -> Result<i64, ActivityError> {
        unimplemented!()
    }

    /// False when the goods already left in a parcel.
    #[activity(name = "dispose_item")]
    pub fn dispose_item(order_id: String) -> Result<bool, ActivityError> {
        unimplemented!()
    }

    /// Cancel an unpaid charge's intent; reports a payment that raced the withdrawal.
    #[activity(name = "withdraw_charge")]
    pub fn withdraw_charge(charge_id: String) -> Result<ChargeWithdrawal, ActivityError> {
        unimplemented!()
    }

    #[activity(name = "record_parcel_status")]
    pub fn record_parcel_status(update: ParcelStatusUpdate) -> Result<(), ActivityError> {
        unimplemented!()
    }

    /// Refund each order's overpaid estimate and open the charge for underpaid ones, as the
    /// packing report settled them; idempotent.
    #[activity(name = "settle_parcel")]
    pub fn settle_parcel(parcel_id: String) -> Result<ParcelSettled, ActivityError> {
        unimplemented!()
    }

    /// Book the carrier for the packed parcel and register its tracking number.
    #[activity(name = "book_parcel")]
    pub fn book_parcel(parcel_id: String) -> Result<ShipmentBooked, ActivityError> {
        unimplemented!()
    }
}

/// Cancel one bought line at its marketplace (`activities::cancel`). `account` is the buyer
/// account the purchase went through (`OfferOutcome::Purchased::account`): the purchase row
/// does not record it, so pass it when the platform has more than one pooled account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketplaceCancelRequest {
    pub order_id: String,
    pub line_no: u32,
    #[serde(default)]
    pub account: Option<String>,
    /// Sent to the marketplace as the cancel remark / refund description: 2 to 150
    /// characters, no personal data.
    pub reason: String,
}

/// What cancelling one line at its marketplace achieved. Asking again is safe: a closed order
/// answers `Cancelled` again, an open refund or cancellation `Pending`, and nothing is asked
/// twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketplaceCancelOutcome {
    /// Closed at the marketplace; `refunded` is what the marketplace pays back to our buyer
    /// account (zero when the order was never paid).
    Cancelled {
        platform: String,
        marketplace_order_id: String,
        refunded: Money,
    },
    /// Asked for and accepted, not final yet: a 1688 refund waiting for the seller to agree, or
    /// a Taobao cancellation still being processed. Ask again later.
    Pending {
        platform: String,
        marketplace_order_id: String,
        requested: Money,
    },
    /// The marketplace no longer allows it (the seller shipped, the refund was refused);
    /// `status` is the marketplace's own status word.
    TooLate {
        platform: String,
        marketplace_order_id: String,
        status: String,
    },
    /// No buyer API can cancel this purchase (Pinduoduo, or a line a purchaser bought by hand).
    NotCancellable { platform: String, reason: String },
    /// The line has no purchase.
    NotBought,
}

/// Ask the marketplaces where the seller's domestic shipment of each bought line stands
/// (`activities::shipment`). `with_status`: also read the marketplace's status word of each
/// line not shipped yet (one more call each), for the operator when the deadline has passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerShipmentsRequest {
    pub order_id: String,
    /// The lines bought and not cancelled, with the buyer account that bought each.
    pub lines: Vec<(u32, Option<String>)>,
    #[serde(default)]
    pub with_status: bool,
}

/// Where the sellers' shipments stand: every shipment known so far (recorded in the store, the
/// `order.seller_shipped` event written once each), and the lines still waiting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerShipmentReport {
    pub shipped: Vec<SellerShipment>,
    pub waiting: Vec<UnshippedLine>,
}

/// One line's domestic parcel, as its marketplace (or the purchaser who bought it) reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerShipment {
    pub line_no: u32,
    pub platform: String,
    pub marketplace_order_id: String,
    pub carrier: String,
    /// The domestic waybill number.
    pub waybill: String,
}

/// A bought line whose seller has not shipped (as far as anyone can tell).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnshippedLine {
    pub line_no: u32,
    pub platform: String,
    pub marketplace_order_id: String,
    /// The marketplace's own status word when asked for (`with_status`), else what is known
    /// (e.g. "not shipped yet (500_2)", or that a purchaser bought it by hand).
    pub status: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use procure_domain::Currency;

    /// A supplement's payment (named by its price change) and a charge's decode to the same
    /// `ChargePaid`, so the webhook's payloads of both keep their shape.
    #[test]
    fn supplements_and_charges_are_paid_alike() {
        let paid = ChargePaid {
            charge_id: "pc_o1_1_1".into(),
            intent_id: "pi_1".into(),
            amount: Money::new(1_250, Currency::EUR),
        };
        let amount = serde_json::to_value(paid.amount).unwrap();
        for key in ["change_id", "charge_id"] {
            let v = serde_json::json!({key: "pc_o1_1_1", "intent_id": "pi_1", "amount": amount});
            assert_eq!(
                serde_json::from_value::<ChargePaid>(v).unwrap(),
                paid,
                "{key}"
            );
        }
        let back = serde_json::to_value(ChargeWithdrawal::Paid(paid.clone())).unwrap();
        assert_eq!(
            serde_json::from_value::<ChargeWithdrawal>(back).unwrap(),
            ChargeWithdrawal::Paid(paid)
        );
    }

    #[test]
    fn parcel_stages_are_stored_by_their_snake_case_names() {
        use procure_domain::status::ParcelStage;
        for stage in [
            ParcelStage::Requested,
            ParcelStage::Packed,
            ParcelStage::AwaitingPayment,
            ParcelStage::PaymentOverdue,
            ParcelStage::PaymentUnverified,
            ParcelStage::Shipped,
            ParcelStage::Delivered,
            ParcelStage::Exception,
        ] {
            assert_eq!(
                serde_json::to_value(stage).unwrap(),
                serde_json::Value::String(stage.as_str().into())
            );
        }
    }
}
