//! Order types and the order state machine (docs/ARCHITECTURE.md). [`transition`] is the only way a state
//! changes anywhere in the system: the workflow, the read-model and the API all call it.

use crate::money::Money;
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderState {
    Created,
    PendingPayment,
    Paid,
    Procuring,
    Purchased,
    InboundTransit,
    InWarehouse,
    Packing,
    Shipped,
    Delivered,
    Completed,
    PaymentExpired,
    AwaitingCustomer,
    NeedsOperator,
    Cancelled,
    Refunded,
    Failed,
    /// Stored goods disposed of at the customer's choice (or by default after the storage
    /// period and its grace period ran out).
    Disposed,
}

use OrderState::*;

impl OrderState {
    pub const ALL: [OrderState; 18] = [
        Created,
        PendingPayment,
        Paid,
        Procuring,
        Purchased,
        InboundTransit,
        InWarehouse,
        Packing,
        Shipped,
        Delivered,
        Completed,
        PaymentExpired,
        AwaitingCustomer,
        NeedsOperator,
        Cancelled,
        Refunded,
        Failed,
        Disposed,
    ];

    /// Terminal states: the workflow has ended and nothing moves the order any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Completed | PaymentExpired | Cancelled | Refunded | Failed | Disposed
        )
    }

    /// States that only exist once the customer's money has been taken.
    pub fn customer_has_paid(self) -> bool {
        !matches!(
            self,
            Created | PendingPayment | PaymentExpired | Cancelled | Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Created => "Created",
            PendingPayment => "PendingPayment",
            Paid => "Paid",
            Procuring => "Procuring",
            Purchased => "Purchased",
            InboundTransit => "InboundTransit",
            InWarehouse => "InWarehouse",
            Packing => "Packing",
            Shipped => "Shipped",
            Delivered => "Delivered",
            Completed => "Completed",
            PaymentExpired => "PaymentExpired",
            AwaitingCustomer => "AwaitingCustomer",
            NeedsOperator => "NeedsOperator",
            Cancelled => "Cancelled",
            Refunded => "Refunded",
            Failed => "Failed",
            Disposed => "Disposed",
        }
    }

    /// The states this one may move to. Operators may resume a parked order at any working step.
    pub fn successors(self) -> &'static [OrderState] {
        match self {
            // Any working state parks in NeedsOperator when a step keeps failing, and goes back
            // to it when the operator retries the step.
            Created => &[PendingPayment, Cancelled, Failed, NeedsOperator],
            // A payment that does not verify parks the order for an operator.
            PendingPayment => &[Paid, PaymentExpired, Cancelled, Failed, NeedsOperator],
            Paid => &[Procuring, Refunded, NeedsOperator],
            Procuring => &[Purchased, AwaitingCustomer, NeedsOperator, Refunded],
            // The customer answers a price change (back to buying) or, for stored goods whose
            // free period ended, extends storage, ships or disposes.
            AwaitingCustomer => &[
                Procuring,
                Refunded,
                InWarehouse,
                Packing,
                Disposed,
                NeedsOperator,
            ],
            Purchased => &[InboundTransit, NeedsOperator, Refunded],
            InboundTransit => &[InWarehouse, NeedsOperator, Refunded],
            InWarehouse => &[Packing, AwaitingCustomer, Disposed, NeedsOperator, Refunded],
            Packing => &[Shipped, NeedsOperator],
            Shipped => &[Delivered, NeedsOperator],
            Delivered => &[Completed],
            NeedsOperator => &[
                // Back to checking an unverified payment (and from there cancelled unpaid), or
                // paid once it verifies.
                Created,
                PendingPayment,
                Paid,
                AwaitingCustomer,
                Procuring,
                Purchased,
                InboundTransit,
                InWarehouse,
                Packing,
                Shipped,
                Delivered,
                Refunded,
            ],
            Completed | PaymentExpired | Cancelled | Refunded | Failed | Disposed => &[],
        }
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown order state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for OrderState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.chars().take(32).collect()))
    }
}

/// The idempotency key of an order's charge at the payment provider. Every path that creates
/// the order's intent (the dispatcher right after accept, the workflow's own step when the
/// dispatcher has not yet) sends this key with the same amount, so the provider holds one
/// intent per order however many times it is asked.
pub fn charge_key(order_id: &str) -> String {
    format!("{order_id}-charge")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("illegal order transition {from} -> {to}")]
pub struct IllegalTransition {
    pub from: OrderState,
    pub to: OrderState,
}

/// The one transition function: returns the new state or an error for an illegal move.
pub fn transition(from: OrderState, to: OrderState) -> Result<OrderState, IllegalTransition> {
    if from.successors().contains(&to) {
        Ok(to)
    } else {
        Err(IllegalTransition { from, to })
    }
}

/// One entry of an order's timeline: what happened, when (ms since the epoch) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: i64,
    pub state: OrderState,
    pub reason: String,
}

/// Marketplaces we buy from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[serde(rename = "1688")]
    Alibaba1688,
    Taobao,
    Pinduoduo,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Alibaba1688 => "1688",
            Platform::Taobao => "taobao",
            Platform::Pinduoduo => "pinduoduo",
        }
    }
}

impl FromStr for Platform {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "1688" => Ok(Platform::Alibaba1688),
            "taobao" => Ok(Platform::Taobao),
            "pinduoduo" => Ok(Platform::Pinduoduo),
            other => Err(UnknownState(other.chars().take(32).collect())),
        }
    }
}

/// A line of an order as procurement needs it: what to buy, where, how many, at what price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub line_no: u32,
    pub sku: String,
    pub platform: Platform,
    pub offer_id: String,
    pub spec_id: String,
    pub quantity: u32,
    /// Unit price the quote was based on.
    pub unit_price: Money,
    /// Highest unit price procurement may accept without asking the customer.
    pub max_unit_price: Money,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn happy_path_is_legal() {
        let path = [
            Created,
            PendingPayment,
            Paid,
            Procuring,
            Purchased,
            InboundTransit,
            InWarehouse,
            Packing,
            Shipped,
            Delivered,
            Completed,
        ];
        for w in path.windows(2) {
            assert_eq!(transition(w[0], w[1]), Ok(w[1]));
        }
    }

    #[test]
    fn illegal_moves_are_errors() {
        assert_eq!(
            transition(Created, Paid),
            Err(IllegalTransition {
                from: Created,
                to: Paid
            })
        );
        assert!(transition(Completed, Refunded).is_err());
        assert!(
            transition(Shipped, Refunded).is_err(),
            "a shipped parcel is not refunded blindly"
        );
        assert!(
            transition(PendingPayment, Refunded).is_err(),
            "nothing to refund before payment"
        );
    }

    #[test]
    fn names_roundtrip() {
        for s in OrderState::ALL {
            assert_eq!(s.as_str().parse::<OrderState>().unwrap(), s);
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
    }

    fn any_state() -> impl Strategy<Value = OrderState> {
        (0..OrderState::ALL.len()).prop_map(|i| OrderState::ALL[i])
    }

    proptest! {
        /// Drive the machine with arbitrary requested moves, applying only legal ones.
        #[test]
        fn random_walks_respect_the_rules(moves in proptest::collection::vec(any_state(), 0..64)) {
            let mut state = Created;
            let mut seen = vec![state];
            for to in moves {
                match transition(state, to) {
                    Ok(next) => {
                        prop_assert!(!state.is_terminal(), "left terminal state {state}");
                        state = next;
                        seen.push(state);
                    }
                    Err(e) => {
                        prop_assert_eq!(e, IllegalTransition { from: state, to });
                        prop_assert!(!state.successors().contains(&to));
                    }
                }
            }
            // Money moves in one direction: a refund implies the customer had paid, and
            // completion implies payment and delivery (an operator may resume a parked order
            // at a later step after fixing it by hand, so intermediate steps can be skipped).
            // A parked order (an unverified payment parks before Paid) is resumed only by an
            // operator's decision, which the workflow guards: the machine alone cannot tell.
            let parked = seen.contains(&NeedsOperator);
            if state == Refunded {
                prop_assert!(seen.contains(&Paid) || parked);
            }
            if state == Completed {
                for needed in [Paid, Delivered] {
                    prop_assert!(seen.contains(&needed) || parked, "completed without {needed}");
                }
            }
            if seen.contains(&Paid) && !parked {
                prop_assert!(!matches!(state, Cancelled | PaymentExpired | Failed),
                    "paid order ended in {state} without a refund");
            }
        }

        #[test]
        fn terminal_states_have_no_successors(s in any_state()) {
            prop_assert_eq!(s.is_terminal(), s.successors().is_empty());
        }
    }
}
