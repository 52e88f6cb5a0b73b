//! The statuses of the records beside an order (parcels, charges, price changes, buyer
//! accounts, purchaser tasks, warehouse items and exceptions, parcel settlements, monitors), each an enum
//! like [`crate::OrderState`]. Each status is stored and sent as the same snake_case word it
//! always was (`as_str` / `FromStr`, and serde), so stored rows and API bodies do not change.

use std::fmt;

/// A stored or sent status word that names no status of its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} status {value:?}")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! status_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($kind:literal) {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored and sent for this status.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, UnknownStatus> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(UnknownStatus {
                        kind: $kind,
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownStatus;

            fn try_from(s: String) -> Result<Self, UnknownStatus> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

status_enum! {
    /// Where a customer parcel is; it moves forward only ([`ParcelStatus::rank`]), except that
    /// `exception` may come and go while it is tracked.
    ParcelStatus("parcel") {
        Requested = "requested",
        Packed = "packed",
        AwaitingPayment = "awaiting_payment",
        PaymentOverdue = "payment_overdue",
        Shipped = "shipped",
        Exception = "exception",
        Delivered = "delivered",
    }
}

impl ParcelStatus {
    /// Position in the parcel's life; a report that would not move it forward is ignored.
    pub fn rank(self) -> u8 {
        match self {
            ParcelStatus::Requested => 0,
            ParcelStatus::Packed => 1,
            ParcelStatus::AwaitingPayment => 2,
            ParcelStatus::PaymentOverdue => 3,
            ParcelStatus::Shipped => 4,
            ParcelStatus::Exception => 5,
            ParcelStatus::Delivered => 6,
        }
    }
}

status_enum! {
    /// Where a parcel is as its workflow moves it. The read model records each stage that is
    /// also a [`ParcelStatus`] (the same word); `payment_unverified` lives only in the workflow.
    ParcelStage("parcel stage") {
        /// Waiting for the warehouse to pack it.
        Requested = "requested",
        Packed = "packed",
        /// A supplementary shipping charge waits for payment.
        AwaitingPayment = "awaiting_payment",
        /// The supplementary charge was not paid in time; the parcel still waits for it.
        PaymentOverdue = "payment_overdue",
        /// A confirmation of the charge did not verify; the parcel waits for one that does.
        PaymentUnverified = "payment_unverified",
        Shipped = "shipped",
        Delivered = "delivered",
        /// The carrier reported a delivery exception.
        Exception = "exception",
    }
}

status_enum! {
    /// A charge beyond an order's total.
    ChargeStatus("charge") {
        Pending = "pending",
        Paid = "paid",
        Withdrawn = "withdrawn",
        Refunded = "refunded",
    }
}

status_enum! {
    /// What a charge beyond an order's total is for.
    ChargeKind("charge kind") {
        ShippingSettlement = "shipping_settlement",
        StorageExtension = "storage_extension",
    }
}

status_enum! {
    /// A price monitor (a deleted one stays until its schedule is gone).
    MonitorStatus("monitor") {
        Active = "active",
        Paused = "paused",
        Deleted = "deleted",
    }
}

status_enum! {
    /// A supplier's price rise put to the customer.
    PriceChangeStatus("price change") {
        Pending = "pending",
        Accepted = "accepted",
        Paid = "paid",
        Refunded = "refunded",
        Declined = "declined",
        Withdrawn = "withdrawn",
    }
}

impl PriceChangeStatus {
    /// Still open to the customer's decision.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            PriceChangeStatus::Pending | PriceChangeStatus::Accepted
        )
    }
}

status_enum! {
    /// A buyer account of the pool.
    AccountStatus("account") {
        Active = "active",
        Disabled = "disabled",
    }
}

status_enum! {
    /// A purchase a person makes for us on a platform without a buyer API.
    PurchaserTaskStatus("purchaser task") {
        Open = "open",
        Completed = "completed",
        Expired = "expired",
    }
}

status_enum! {
    /// An order's goods in the consolidation warehouse.
    WarehouseItemStatus("warehouse item") {
        Stored = "stored",
        InParcel = "in_parcel",
        Shipped = "shipped",
        Disposed = "disposed",
    }
}

status_enum! {
    /// A received parcel that could not be applied to an order.
    WarehouseExceptionStatus("warehouse exception") {
        Open = "open",
        Resolved = "resolved",
    }
}

status_enum! {
    /// How one order's share of a packed parcel was settled against its quote.
    SettlementOutcome("settlement outcome") {
        Even = "even",
        Charge = "charge",
        Refund = "refund",
        Absorbed = "absorbed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_its_own_word() {
        fn check<T>(all: &[T])
        where
            T: Copy + fmt::Debug + PartialEq + std::str::FromStr + serde::Serialize,
            T: fmt::Display,
        {
            for s in all {
                let word = s.to_string();
                assert_eq!(word.parse::<T>().ok(), Some(*s));
                assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(word));
            }
        }
        check(ParcelStatus::ALL);
        check(ChargeStatus::ALL);
        check(ChargeKind::ALL);
        check(PriceChangeStatus::ALL);
        check(MonitorStatus::ALL);
        check(AccountStatus::ALL);
        check(PurchaserTaskStatus::ALL);
        check(WarehouseItemStatus::ALL);
        check(WarehouseExceptionStatus::ALL);
        check(SettlementOutcome::ALL);
        assert_eq!(
            "booked".parse::<ParcelStatus>(),
            Err(UnknownStatus {
                kind: "parcel",
                value: "booked".into()
            })
        );
        assert!(ParcelStatus::Shipped == "shipped");
    }

    #[test]
    fn parcels_rank_in_the_order_they_live() {
        let ranks: Vec<u8> = ParcelStatus::ALL.iter().map(|s| s.rank()).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
    }
}
