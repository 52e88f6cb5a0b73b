//! The event catalogue: every business event procure tells the storefront about, its stable
//! type name (`order.paid`), the version of its payload and the payload itself, one struct per
//! type. The store appends them to the event log in the transaction of the change that causes
//! them; the API serves the log as a feed and delivers it to webhook endpoints, both in the
//! same envelope. `docs/events.md` is generated from this module (a test keeps it in step), and
//! the OpenAPI document's schemas are built from [`EventType::fields`].
//!
//! Payloads carry ids, amounts, items and deadlines, never a shipping address, a name, a phone
//! number or a credential: a subscriber that needs the customer's details has them already.
//! Adding a field keeps a type's version; removing or changing one is a new version.

use crate::{
    Money, OrderState,
    shipping::Dimensions,
    status::{ChargeKind, SettlementOutcome},
};
use serde::{Deserialize, Serialize};

/// What an event is about: its sequence numbers count per subject (an order's events are
/// numbered 1, 2, 3, … in the order they were committed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    Order,
    Parcel,
    /// A message to a customer about several of their orders at once.
    Customer,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Order => "order",
            SubjectKind::Parcel => "parcel",
            SubjectKind::Customer => "customer",
        }
    }

    /// The subject key of `id`: `order:ord_…`, `parcel:pcl_…`, `customer:cust-1`.
    pub fn key(self, id: &str) -> String {
        format!("{}:{id}", self.as_str())
    }
}

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $payload:ident, $subject:literal, $notify:literal, $summary:literal; )*) => {
        /// Every event type of the catalogue.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The stable type name, e.g. `order.paid`.
            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// What this type's events are about (their subject): `order`, `parcel`,
            /// `customer`, or `order or parcel`.
            pub fn subject_doc(self) -> &'static str {
                match self { $(EventType::$variant => $subject,)* }
            }

            /// Whether this type is a message to the customer (listed by
            /// `GET /api/v1/customers/{id}/notifications`).
            pub fn notifies_customer(self) -> bool {
                match self { $(EventType::$variant => $notify,)* }
            }

            /// One line on what happened.
            pub fn summary(self) -> &'static str {
                match self { $(EventType::$variant => $summary,)* }
            }

            /// The documented fields of the payload (`data`).
            pub fn fields(self) -> &'static [Field] {
                match self { $(EventType::$variant => $payload::FIELDS,)* }
            }

            /// The version of the payload this build writes.
            pub fn version(self) -> u32 {
                match self { $(EventType::$variant => $payload::VERSION,)* }
            }

            /// A sample payload as written, its fields in the order they are written.
            pub fn example_json(self) -> String {
                match self {
                    $(EventType::$variant => serde_json::to_string_pretty(&$payload::example())
                        .expect("a payload serializes"),)*
                }
            }

            /// A sample payload, as written (for the documentation).
            pub fn example(self) -> serde_json::Value {
                match self {
                    $(EventType::$variant => serde_json::to_value($payload::example())
                        .expect("a payload serializes"),)*
                }
            }
        }

        $( impl EventPayload for $payload { const TYPE: EventType = EventType::$variant; } )*
    };
}

event_types! {
    /// An order was accepted with its stock held; it waits for its payment.
    OrderAccepted = "order.accepted", OrderAccepted, "order", false,
        "The order was accepted: its stock is held and its payment is being opened.";
    /// The order's payment intent exists: the customer can pay.
    OrderPayable = "order.payable", OrderPayable, "order", false,
        "The order can be paid: its payment intent exists.";
    /// The order's payment was verified with the provider.
    OrderPaid = "order.paid", OrderPaid, "order", false,
        "The order's payment was verified with the payment provider.";
    /// One line was bought on its marketplace.
    OrderPurchased = "order.purchased", OrderPurchased, "order", false,
        "One line of the order was bought from a supplier (one event per line).";
    /// The seller sent one line to our warehouse (domestic shipment).
    OrderSellerShipped = "order.seller_shipped", OrderSellerShipped, "order", false,
        "The seller shipped one line to the consolidation warehouse, with the domestic waybill.";
    /// The goods arrived in the warehouse and were checked.
    OrderInWarehouse = "order.in_warehouse", OrderInWarehouse, "order", false,
        "The goods arrived in the warehouse: measured, photographed, stored.";
    /// A price rose beyond the customer's tolerance: the customer decides.
    PriceChangeAwaitingDecision = "price_change.awaiting_decision", PriceChangeAwaitingDecision, "order", true,
        "A supplier's price rose beyond the customer's tolerance: the customer accepts (pays the supplement) or declines by the deadline.";
    /// Free storage ends soon for some of a customer's stored goods.
    StorageReminder = "storage.reminder", StorageReminder, "customer", true,
        "Free storage ends soon for the customer's stored goods (every item that runs out soon, in one message).";
    /// Free storage ended: the customer ships, extends or disposes before the deadline.
    StorageExpiring = "storage.expiring", StorageExpiring, "order", true,
        "Free storage ended: the customer ships, extends storage or has the goods disposed before the deadline, else they are disposed.";
    /// Something beyond the order's total is to be paid.
    ChargeDue = "charge.due", ChargeDue, "order or parcel", true,
        "A charge beyond the order's total is due: a storage extension, or shipping above the quote (the parcel waits for it).";
    /// Money went back to the customer.
    RefundIssued = "refund.issued", RefundIssued, "order", false,
        "Money went back to the customer's payment.";
    /// The warehouse packed a parcel; its cost was settled against the quotes.
    ParcelPacked = "parcel.packed", ParcelPacked, "parcel", false,
        "A parcel was packed and priced; each order's share was settled against its quote.";
    /// A parcel left with the carrier.
    ParcelShipped = "parcel.shipped", ParcelShipped, "parcel", false,
        "A parcel left the warehouse with the carrier.";
    /// A parcel reached the customer.
    ParcelDelivered = "parcel.delivered", ParcelDelivered, "parcel", false,
        "The carrier delivered the parcel.";
    /// The carrier reported a problem.
    ParcelException = "parcel.exception", ParcelException, "parcel", false,
        "The carrier reported a delivery exception; an operator looks at it.";
    /// The order ended delivered.
    OrderCompleted = "order.completed", OrderCompleted, "order", false,
        "The order ended: delivered to the customer.";
    /// The order ended without being fulfilled (cancelled, refunded, expired, failed).
    OrderCancelled = "order.cancelled", OrderCancelled, "order", true,
        "The order ended unfulfilled: cancelled, refunded, unpaid past its deadline, or failed.";
    /// The order's stored goods were disposed of.
    OrderDisposed = "order.disposed", OrderDisposed, "order", false,
        "The order's stored goods were disposed of (at the customer's choice or by default).";
    /// The order waits for an operator.
    OrderNeedsOperator = "order.needs_operator", OrderNeedsOperator, "order", false,
        "The order waits for an operator, with the reason.";
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A type name the catalogue does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown event type {0:?}")]
pub struct UnknownEventType(pub String);

impl std::str::FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.chars().take(64).collect()))
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A payload of the catalogue: the type it is written as, and its documentation.
pub trait EventPayload: Serialize {
    const TYPE: EventType;
}

/// The kind of value a documented field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    String,
    Integer,
    Boolean,
    /// `{"minor": 1234, "currency": "USD"}`: integer minor units and an ISO 4217 code.
    Money,
    /// `{"l_mm", "w_mm", "h_mm"}`.
    Dimensions,
    /// A list of strings.
    Strings,
    /// A list of objects with these fields.
    List(&'static [Field]),
}

/// One documented field of a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub shape: Shape,
    /// Always present (never null).
    pub required: bool,
    pub doc: &'static str,
}

const fn f(name: &'static str, shape: Shape, doc: &'static str) -> Field {
    Field {
        name,
        shape,
        required: true,
        doc,
    }
}

const fn opt(name: &'static str, shape: Shape, doc: &'static str) -> Field {
    Field {
        name,
        shape,
        required: false,
        doc,
    }
}

const ORDER_ID: Field = f("order_id", Shape::String, "The order (`ord_…`).");

/// One line of an order, as the storefront listed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
}

const ITEM_FIELDS: &[Field] = &[
    f(
        "line_no",
        Shape::Integer,
        "The line's number in the order (1, 2, …).",
    ),
    f("sku", Shape::String, "The storefront's sku."),
    f("quantity", Shape::Integer, "Units."),
];

const ITEMS: Field = f(
    "items",
    Shape::List(ITEM_FIELDS),
    "The order's lines: line number, sku and quantity.",
);

impl Item {
    fn sample(line_no: u32, sku: &str, quantity: u32) -> Item {
        Item {
            line_no,
            sku: sku.into(),
            quantity,
        }
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, crate::Currency::USD)
}

fn cny(minor: i64) -> Money {
    Money::new(minor, crate::Currency::CNY)
}

const SAMPLE_ORDER: &str = "ord_01a2013808347269";
const SAMPLE_PARCEL: &str = "pcl_01a2013810fb70eb";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub quote_id: String,
    pub total: Money,
    pub items: Vec<Item>,
}

impl OrderAccepted {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("quote_id", Shape::String, "The quote it was placed from."),
        f(
            "total",
            Shape::Money,
            "What the customer pays, in the order's currency.",
        ),
        ITEMS,
    ];
    fn example() -> Self {
        OrderAccepted {
            order_id: SAMPLE_ORDER.into(),
            quote_id: "q_01a2013807d1".into(),
            total: usd(1_291),
            items: vec![Item::sample(1, "TSH-COT-L-WHT", 2)],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPayable {
    pub order_id: String,
    pub payment_intent_id: String,
    pub amount: Money,
}

impl OrderPayable {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f(
            "payment_intent_id",
            Shape::String,
            "The payment provider's intent the customer confirms to pay.",
        ),
        f(
            "amount",
            Shape::Money,
            "The amount to pay (the order's total).",
        ),
    ];
    fn example() -> Self {
        OrderPayable {
            order_id: SAMPLE_ORDER.into(),
            payment_intent_id: "pi_3QxT2a".into(),
            amount: usd(1_291),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: String,
    pub payment_intent_id: Option<String>,
    pub amount: Money,
}

impl OrderPaid {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        opt(
            "payment_intent_id",
            Shape::String,
            "The intent that was paid.",
        ),
        f(
            "amount",
            Shape::Money,
            "The amount paid (the order's total).",
        ),
    ];
    fn example() -> Self {
        OrderPaid {
            order_id: SAMPLE_ORDER.into(),
            payment_intent_id: Some("pi_3QxT2a".into()),
            amount: usd(1_291),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPurchased {
    pub order_id: String,
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
    /// `1688`, `taobao` or `pinduoduo`.
    pub platform: String,
    /// Lines of the order bought so far, this one included.
    pub lines_purchased: u32,
    pub lines_total: u32,
}

impl OrderPurchased {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("line_no", Shape::Integer, "The line that was bought."),
        f("sku", Shape::String, "Its sku."),
        f("quantity", Shape::Integer, "Units bought."),
        f(
            "platform",
            Shape::String,
            "The marketplace it was bought on: `1688`, `taobao` or `pinduoduo`.",
        ),
        f(
            "lines_purchased",
            Shape::Integer,
            "Lines of the order bought so far, this one included.",
        ),
        f("lines_total", Shape::Integer, "Lines of the order."),
    ];
    fn example() -> Self {
        OrderPurchased {
            order_id: SAMPLE_ORDER.into(),
            line_no: 1,
            sku: "TSH-COT-L-WHT".into(),
            quantity: 2,
            platform: "1688".into(),
            lines_purchased: 1,
            lines_total: 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSellerShipped {
    pub order_id: String,
    pub line_no: u32,
    pub carrier: String,
    /// The domestic waybill number.
    pub tracking_number: String,
    pub shipped_at_ms: i64,
}

impl OrderSellerShipped {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("line_no", Shape::Integer, "The line the seller shipped."),
        f(
            "carrier",
            Shape::String,
            "The domestic carrier (e.g. `ZTO`).",
        ),
        f(
            "tracking_number",
            Shape::String,
            "The domestic waybill number.",
        ),
        f(
            "shipped_at_ms",
            Shape::Integer,
            "When procure first saw the shipment: the logistics poll that found it, or the \
             purchaser's completion (ms since the epoch).",
        ),
    ];
    fn example() -> Self {
        OrderSellerShipped {
            order_id: SAMPLE_ORDER.into(),
            line_no: 1,
            carrier: "ZTO".into(),
            tracking_number: "75312345678901".into(),
            shipped_at_ms: 1_764_580_000_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInWarehouse {
    pub order_id: String,
    pub weight_g: u32,
    pub dimensions: Dimensions,
    /// Quality-control photos taken at the scan.
    pub qc_photo_urls: Vec<String>,
    pub received_at_ms: i64,
    pub free_storage_until_ms: i64,
}

impl OrderInWarehouse {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("weight_g", Shape::Integer, "Weight as scanned, grams."),
        f(
            "dimensions",
            Shape::Dimensions,
            "Measures as scanned, millimetres.",
        ),
        f(
            "qc_photo_urls",
            Shape::Strings,
            "The quality-control photos taken at the scan.",
        ),
        f("received_at_ms", Shape::Integer, "When it was scanned in."),
        f(
            "free_storage_until_ms",
            Shape::Integer,
            "When free storage ends.",
        ),
    ];
    fn example() -> Self {
        OrderInWarehouse {
            order_id: SAMPLE_ORDER.into(),
            weight_g: 412,
            dimensions: Dimensions {
                l_mm: 300,
                w_mm: 220,
                h_mm: 80,
            },
            qc_photo_urls: vec!["https://wh.example/qc/ord_01a2013808347269-1.jpg".into()],
            received_at_ms: 1_764_600_000_000,
            free_storage_until_ms: 1_772_376_000_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceChangeAwaitingDecision {
    pub order_id: String,
    pub price_change_id: String,
    pub line_no: u32,
    pub sku: String,
    pub quantity: u32,
    /// The unit price already paid for, and the supplier's new one (CNY).
    pub paid_unit_price: Money,
    pub new_unit_price: Money,
    /// What accepting costs, in the order's currency.
    pub supplement: Money,
    /// The intent the customer confirms to accept (by paying the supplement).
    pub payment_intent_id: String,
    pub decide_by_ms: i64,
}

impl PriceChangeAwaitingDecision {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f(
            "price_change_id",
            Shape::String,
            "The change to answer: `POST /api/v1/orders/{order_id}/price-changes/{price_change_id}` with `{\"decision\": \"accept\" | \"decline\"}`.",
        ),
        f("line_no", Shape::Integer, "The line whose price rose."),
        f("sku", Shape::String, "Its sku."),
        f("quantity", Shape::Integer, "Units."),
        f(
            "paid_unit_price",
            Shape::Money,
            "The unit price already paid for (CNY).",
        ),
        f(
            "new_unit_price",
            Shape::Money,
            "The supplier's unit price now (CNY).",
        ),
        f(
            "supplement",
            Shape::Money,
            "What accepting costs, in the order's currency (the rise times the quantity at the quote's rate).",
        ),
        f(
            "payment_intent_id",
            Shape::String,
            "The intent to confirm to accept: paying it is accepting.",
        ),
        f(
            "decide_by_ms",
            Shape::Integer,
            "The deadline; without an answer the order is cancelled and refunded in full.",
        ),
    ];
    fn example() -> Self {
        PriceChangeAwaitingDecision {
            order_id: SAMPLE_ORDER.into(),
            price_change_id: "pc_ord_01a2013808347269_1_1".into(),
            line_no: 1,
            sku: "TSH-COT-L-WHT".into(),
            quantity: 2,
            paid_unit_price: cny(1_850),
            new_unit_price: cny(2_960),
            supplement: usd(310),
            payment_intent_id: "pi_3QxT9c".into(),
            decide_by_ms: 1_764_772_800_000,
        }
    }
}

/// One order's stored goods in a storage message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGoods {
    pub order_id: String,
    pub items: Vec<Item>,
    pub free_storage_until_ms: i64,
    /// What a day of storage beyond the free period costs for this order, in its currency.
    pub extension_fee_per_day: Option<Money>,
}

const STORED_GOODS_FIELDS: &[Field] = &[
    ORDER_ID,
    ITEMS,
    f(
        "free_storage_until_ms",
        Shape::Integer,
        "When free storage ends for these goods.",
    ),
    opt(
        "extension_fee_per_day",
        Shape::Money,
        "A day of storage beyond the free period, in the order's currency.",
    ),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageReminder {
    pub customer_id: String,
    /// Every stored order of the customer whose free storage ends soon.
    pub orders: Vec<StoredGoods>,
    /// The earliest end among them.
    pub first_deadline_ms: i64,
    /// Only on reminders recorded before the event log existed: their text (`orders` is then
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_message: Option<String>,
}

impl StorageReminder {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        f("customer_id", Shape::String, "The customer."),
        f(
            "orders",
            Shape::List(STORED_GOODS_FIELDS),
            "Every stored order of the customer whose free storage ends soon, with its items, its end and the extension fee. The actions: ship in a parcel (`POST /api/v1/parcels` with the order ids), extend (`POST /api/v1/orders/{order_id}/storage` `{\"choice\": \"extend\", \"days\": n}`) or dispose (`{\"choice\": \"dispose\"}`).",
        ),
        f(
            "first_deadline_ms",
            Shape::Integer,
            "The earliest end of free storage among them.",
        ),
        opt(
            "legacy_message",
            Shape::String,
            "Only on reminders recorded before the event log existed: their text (`orders` is then empty).",
        ),
    ];
    fn example() -> Self {
        StorageReminder {
            customer_id: "cust-42".into(),
            orders: vec![StoredGoods {
                order_id: SAMPLE_ORDER.into(),
                items: vec![Item::sample(1, "TSH-COT-L-WHT", 2)],
                free_storage_until_ms: 1_772_376_000_000,
                extension_fee_per_day: Some(usd(14)),
            }],
            first_deadline_ms: 1_772_376_000_000,
            legacy_message: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageExpiring {
    pub order_id: String,
    pub items: Vec<Item>,
    pub free_storage_ended_at_ms: Option<i64>,
    /// When the goods are disposed of without a choice.
    pub dispose_after_ms: Option<i64>,
}

impl StorageExpiring {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        ITEMS,
        opt(
            "free_storage_ended_at_ms",
            Shape::Integer,
            "When free storage ended.",
        ),
        opt(
            "dispose_after_ms",
            Shape::Integer,
            "The deadline: without a choice by then the goods are disposed of. The choices: ship (`POST /api/v1/parcels`), extend or dispose (`POST /api/v1/orders/{order_id}/storage`).",
        ),
    ];
    fn example() -> Self {
        StorageExpiring {
            order_id: SAMPLE_ORDER.into(),
            items: vec![Item::sample(1, "TSH-COT-L-WHT", 2)],
            free_storage_ended_at_ms: Some(1_772_376_000_000),
            dispose_after_ms: Some(1_774_968_000_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeDue {
    pub charge_id: String,
    pub kind: ChargeKind,
    pub amount: Money,
    /// The intent the customer confirms to pay it.
    pub payment_intent_id: String,
    pub description: String,
    /// The orders it is for (one for a storage extension, the parcel's for shipping).
    pub order_ids: Vec<String>,
    pub parcel_id: Option<String>,
}

impl ChargeDue {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        f("charge_id", Shape::String, "The charge."),
        f(
            "kind",
            Shape::String,
            "`storage_extension` or `shipping_settlement` (shipping, duty and insurance above the quotes' estimate; the parcel ships once it is paid).",
        ),
        f("amount", Shape::Money, "What is due."),
        f(
            "payment_intent_id",
            Shape::String,
            "The intent to confirm to pay it.",
        ),
        f("description", Shape::String, "What it is for, in words."),
        f(
            "order_ids",
            Shape::Strings,
            "The orders it is for: the one extended, or every order of the parcel.",
        ),
        opt(
            "parcel_id",
            Shape::String,
            "The parcel, for a shipping settlement.",
        ),
    ];
    fn example() -> Self {
        ChargeDue {
            charge_id: "ps_pcl_01a2013810fb70eb".into(),
            kind: ChargeKind::ShippingSettlement,
            amount: usd(1_082),
            payment_intent_id: "pi_3QxU1d".into(),
            description: "shipping, duty and insurance above the quotes' estimate".into(),
            order_ids: vec![SAMPLE_ORDER.into()],
            parcel_id: Some(SAMPLE_PARCEL.into()),
        }
    }
}

/// What a refund gave back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundKind {
    /// The order's payment, in full or what is owed back on cancellation.
    Order,
    /// One line's share (a line that could not be bought or was cancelled alone).
    Line,
    /// A paid price-change supplement.
    Supplement,
    /// Shipping below the quote's estimate, once the parcel was packed.
    ShippingSettlement,
    /// A payment that arrived after the order stopped wanting it.
    LatePayment,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundIssued {
    pub order_id: String,
    pub refund_id: String,
    pub kind: RefundKind,
    pub amount: Money,
    pub reason: String,
}

impl RefundIssued {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("refund_id", Shape::String, "The payment provider's refund."),
        f(
            "kind",
            Shape::String,
            "`order`, `line`, `supplement`, `shipping_settlement` or `late_payment`.",
        ),
        f("amount", Shape::Money, "What went back."),
        f("reason", Shape::String, "Why, in words."),
    ];
    fn example() -> Self {
        RefundIssued {
            order_id: SAMPLE_ORDER.into(),
            refund_id: "re_3QxV7e".into(),
            kind: RefundKind::ShippingSettlement,
            amount: usd(201),
            reason: "shipping below the quote's estimate".into(),
        }
    }
}

/// One order's share of a packed parcel and how it was settled.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub order_id: String,
    pub outcome: SettlementOutcome,
    /// Charged, refunded or absorbed (zero when even).
    pub amount: Money,
}

const SETTLEMENT_FIELDS: &[Field] = &[
    ORDER_ID,
    f(
        "outcome",
        Shape::String,
        "`even`, `charge` (a `charge.due` follows), `refund` (a `refund.issued` follows) or `absorbed` (a guaranteed quote: nothing more to pay).",
    ),
    f("amount", Shape::Money, "Charged, refunded or absorbed."),
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelPacked {
    pub parcel_id: String,
    pub order_ids: Vec<String>,
    pub shipping_line: String,
    pub weight_g: u32,
    pub dimensions: Dimensions,
    /// Shipping, duty and insurance: as the quotes estimated them and as packed.
    pub estimated_cost: Money,
    pub actual_cost: Money,
    pub settlements: Vec<Settlement>,
}

const PARCEL_ID: Field = f("parcel_id", Shape::String, "The parcel (`pcl_…`).");
const ORDER_IDS: Field = f("order_ids", Shape::Strings, "The orders in the parcel.");

impl ParcelPacked {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        PARCEL_ID,
        ORDER_IDS,
        f(
            "shipping_line",
            Shape::String,
            "The shipping line it goes on.",
        ),
        f("weight_g", Shape::Integer, "Packed weight, grams."),
        f(
            "dimensions",
            Shape::Dimensions,
            "Packed measures, millimetres.",
        ),
        f(
            "estimated_cost",
            Shape::Money,
            "Shipping, duty and insurance as the orders' quotes estimated them.",
        ),
        f(
            "actual_cost",
            Shape::Money,
            "Shipping, duty and insurance as packed.",
        ),
        f(
            "settlements",
            Shape::List(SETTLEMENT_FIELDS),
            "Each order's share settled against its quote.",
        ),
    ];
    fn example() -> Self {
        ParcelPacked {
            parcel_id: SAMPLE_PARCEL.into(),
            order_ids: vec![SAMPLE_ORDER.into()],
            shipping_line: "SANDBOX-ECO".into(),
            weight_g: 901,
            dimensions: Dimensions {
                l_mm: 160,
                w_mm: 135,
                h_mm: 420,
            },
            estimated_cost: usd(904),
            actual_cost: usd(703),
            settlements: vec![Settlement {
                order_id: SAMPLE_ORDER.into(),
                outcome: SettlementOutcome::Refund,
                amount: usd(201),
            }],
        }
    }
}

macro_rules! parcel_move {
    ($name:ident, $doc:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name {
            pub parcel_id: String,
            pub order_ids: Vec<String>,
            pub carrier: Option<String>,
            /// The international tracking number.
            pub tracking_number: Option<String>,
        }

        impl $name {
            pub const VERSION: u32 = 1;
            pub const FIELDS: &'static [Field] = &[
                PARCEL_ID,
                ORDER_IDS,
                opt("carrier", Shape::String, "The carrier."),
                opt("tracking_number", Shape::String, $doc),
            ];
            fn example() -> Self {
                $name {
                    parcel_id: SAMPLE_PARCEL.into(),
                    order_ids: vec![SAMPLE_ORDER.into()],
                    carrier: Some("SANDBOX-POST".into()),
                    tracking_number: Some("SB123456789CN".into()),
                }
            }
        }
    };
}

parcel_move!(
    ParcelShipped,
    "The international tracking number, to show the customer."
);
parcel_move!(ParcelDelivered, "The international tracking number.");
parcel_move!(ParcelException, "The international tracking number.");

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    pub order_id: String,
    pub reason: String,
}

impl OrderCompleted {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[ORDER_ID, f("reason", Shape::String, "In words.")];
    fn example() -> Self {
        OrderCompleted {
            order_id: SAMPLE_ORDER.into(),
            reason: "delivered to the customer".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub order_id: String,
    /// `Cancelled`, `Refunded`, `PaymentExpired` or `Failed`.
    pub state: OrderState,
    pub reason: String,
    pub items: Vec<Item>,
    pub total: Money,
    /// What went back to the customer in all (the order's refunds and its supplements').
    pub refunded: Money,
}

impl OrderCancelled {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f(
            "state",
            Shape::String,
            "How it ended: `Cancelled` (nothing was paid), `Refunded` (paid, then refunded), `PaymentExpired` (not paid in time) or `Failed`.",
        ),
        f("reason", Shape::String, "Why, in words."),
        ITEMS,
        f("total", Shape::Money, "The order's total."),
        f(
            "refunded",
            Shape::Money,
            "What went back to the customer in all, supplements included.",
        ),
    ];
    fn example() -> Self {
        OrderCancelled {
            order_id: SAMPLE_ORDER.into(),
            state: OrderState::Refunded,
            reason: "customer declined price change pc_ord_01a2013808347269_1_1".into(),
            items: vec![Item::sample(1, "TSH-COT-L-WHT", 2)],
            total: usd(1_291),
            refunded: usd(1_291),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDisposed {
    pub order_id: String,
    pub reason: String,
    pub items: Vec<Item>,
}

impl OrderDisposed {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f(
            "reason",
            Shape::String,
            "At the customer's choice, or by default.",
        ),
        ITEMS,
    ];
    fn example() -> Self {
        OrderDisposed {
            order_id: SAMPLE_ORDER.into(),
            reason:
                "no choice within the grace period after free storage ended: disposed by default"
                    .into(),
            items: vec![Item::sample(1, "TSH-COT-L-WHT", 2)],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderNeedsOperator {
    pub order_id: String,
    pub reason: String,
}

impl OrderNeedsOperator {
    pub const VERSION: u32 = 1;
    pub const FIELDS: &'static [Field] = &[
        ORDER_ID,
        f("reason", Shape::String, "What the operator must decide."),
    ];
    fn example() -> Self {
        OrderNeedsOperator {
            order_id: SAMPLE_ORDER.into(),
            reason: "no supplier could be bought from: seller is out of stock".into(),
        }
    }
}

/// The catalogue as a Markdown page (`docs/events.md`): the envelope, then each type with its
/// payload's fields and a sample.
pub fn catalogue_markdown() -> String {
    let mut out = String::from(CATALOGUE_HEAD);
    out.push_str("\n## Types\n\n| type | version | subject | customer notification | what happened |\n|---|---|---|---|---|\n");
    for t in EventType::ALL {
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} | {} | {} |\n",
            t.as_str(),
            t.as_str().replace(['.', '_'], ""),
            t.version(),
            t.subject_doc(),
            if t.notifies_customer() { "yes" } else { "–" },
            t.summary()
        ));
    }
    for t in EventType::ALL {
        out.push_str(&format!(
            "\n### {}\n\n{} Version {}; subject: the {}.\n\n| field | type | always | meaning |\n|---|---|---|---|\n",
            t.as_str(),
            t.summary(),
            t.version(),
            t.subject_doc()
        ));
        field_rows(&mut out, "", t.fields());
        out.push_str(&format!("\n```json\n{}\n```\n", t.example_json()));
    }
    out
}

fn shape_name(s: Shape) -> &'static str {
    match s {
        Shape::String => "string",
        Shape::Integer => "integer",
        Shape::Boolean => "boolean",
        Shape::Money => "money",
        Shape::Dimensions => "dimensions",
        Shape::Strings => "list of strings",
        Shape::List(_) => "list of objects",
    }
}

fn field_rows(out: &mut String, prefix: &str, fields: &[Field]) {
    for fd in fields {
        out.push_str(&format!(
            "| `{prefix}{}` | {} | {} | {} |\n",
            fd.name,
            shape_name(fd.shape),
            if fd.required { "yes" } else { "no" },
            fd.doc.replace('|', "\\|")
        ));
        if let Shape::List(inner) = fd.shape {
            field_rows(out, &format!("{prefix}{}[].", fd.name), inner);
        }
    }
}

const CATALOGUE_HEAD: &str = r#"# Event catalogue

Generated from `domain/src/events.rs` (`procure_domain::events::catalogue_markdown`); the test
`the_catalogue_page_is_the_catalogue` keeps this page in step. Regenerate it with
`PROCURE_WRITE_DOCS=1 cargo test -p procure-domain catalogue_page`.

Every business event is appended to the event log (table `events`) in the same transaction as
the change that causes it: a change that rolls back leaves no event, and a committed change
always has its event. The log is served two ways, in one envelope:

- the pull feed, `GET /api/v1/events?after=<cursor>&limit=<1..500>` (customers see their own
  events, operators and admins all), and `GET /api/v1/customers/{id}/notifications` (the types
  marked as customer notifications below);
- webhooks to the endpoints an admin subscribes (`/api/v1/webhook-endpoints`), signed per the
  Standard Webhooks specification (`docs/vendors/standard-webhooks.md`). The body of a delivery
  is exactly the envelope the feed shows; `webhook-id` is the envelope's `id`.

The customer notifications are also emailed, when the deployment configures the email channel
(`email.smtp_url`), to the customers who gave a contact and want them
(`PUT /api/v1/customers/{id}/contact`): one message per event, from its type's template
(`procure_domain::email`).

## The envelope

```json
{
  "id": "evt_42",
  "cursor": "42",
  "type": "order.paid",
  "version": 1,
  "timestamp": "2026-12-01T10:15:02.123Z",
  "subject": "order:ord_01a2013808347269",
  "sequence": 3,
  "customer_id": "cust-42",
  "order_id": "ord_01a2013808347269",
  "parcel_id": null,
  "data": {"order_id": "ord_01a2013808347269", "payment_intent_id": "pi_3QxT2a", "amount": {"minor": 1291, "currency": "USD"}}
}
```

| field | meaning |
|---|---|
| `id` | The event's id, `evt_<cursor>`: the same in the feed and in every delivery and retry of it (the `webhook-id` header), so a consumer deduplicates on it. |
| `cursor` | The event's position in the whole log: strictly increasing in commit order. Pass the last one you processed as `after`. Treat it as opaque. |
| `type`, `version` | The catalogue type and the version of its `data`. Adding a field keeps the version; removing or changing one makes a new version. |
| `timestamp` | When the change was committed (RFC 3339, UTC). |
| `subject`, `sequence` | What the event is about (`order:…`, `parcel:…`, `customer:…`) and its number among that subject's events: 1, 2, 3, … without gaps, in commit order. |
| `customer_id` | The storefront's customer the event concerns. |
| `order_id`, `parcel_id` | The order or parcel, when the subject is one (else `null`). |
| `data` | The type's payload (below). Amounts are money: `{"minor": integer minor units, "currency": ISO 4217}`; times are `…_ms`, milliseconds since the epoch. No payload carries a shipping address, a name, a phone number or a credential. |

Webhook delivery is at least once, in order per subject and endpoint (an order's later event
waits until its earlier one is delivered to that endpoint), retried with exponential backoff and
jitter for 3 days by default; see README, "Events and webhooks".
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the example's keys and the documented fields are one list, recursively.
    fn same_fields(what: &str, value: &serde_json::Value, fields: &[Field]) {
        let obj = value
            .as_object()
            .unwrap_or_else(|| panic!("{what}: an object"));
        for fd in fields {
            if fd.required {
                assert!(
                    obj.get(fd.name).is_some_and(|v| !v.is_null()),
                    "{what}: required field {} missing in the example",
                    fd.name
                );
            }
            if let (Shape::List(inner), Some(list)) = (fd.shape, obj.get(fd.name)) {
                for item in list.as_array().expect("a list") {
                    same_fields(&format!("{what}.{}[]", fd.name), item, inner);
                }
            }
        }
        for key in obj.keys() {
            assert!(
                fields.iter().any(|fd| fd.name == key),
                "{what}: field {key} is written but not documented"
            );
        }
    }

    #[test]
    fn every_payload_documents_exactly_what_it_writes() {
        for t in EventType::ALL {
            same_fields(t.as_str(), &t.example(), t.fields());
        }
    }

    #[test]
    fn type_names_are_stable_and_round_trip() {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "order.accepted",
                "order.payable",
                "order.paid",
                "order.purchased",
                "order.seller_shipped",
                "order.in_warehouse",
                "price_change.awaiting_decision",
                "storage.reminder",
                "storage.expiring",
                "charge.due",
                "refund.issued",
                "parcel.packed",
                "parcel.shipped",
                "parcel.delivered",
                "parcel.exception",
                "order.completed",
                "order.cancelled",
                "order.disposed",
                "order.needs_operator",
            ]
        );
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            // Standard Webhooks: full-stop delimited identifiers of [a-zA-Z0-9_].
            assert!(
                t.as_str()
                    .split('.')
                    .all(|p| !p.is_empty()
                        && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
                "{t}"
            );
        }
        assert!("order.shipped".parse::<EventType>().is_err());
    }

    /// No payload has a field that could carry personal data.
    #[test]
    fn no_payload_documents_personal_data() {
        fn walk(fields: &[Field]) {
            for fd in fields {
                for banned in ["address", "name", "phone", "email", "token", "secret"] {
                    assert!(
                        !fd.name.contains(banned) || fd.name == "shipping_line",
                        "{} looks like personal data",
                        fd.name
                    );
                }
                if let Shape::List(inner) = fd.shape {
                    walk(inner);
                }
            }
        }
        for t in EventType::ALL {
            walk(t.fields());
        }
    }

    #[test]
    fn the_catalogue_page_is_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/events.md");
        let want = catalogue_markdown();
        if std::env::var_os("PROCURE_WRITE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/events.md is not the catalogue; regenerate it with \
             PROCURE_WRITE_DOCS=1 cargo test -p procure-domain catalogue_page"
        );
    }
}
