//! Task-queue priority: which work the engine serves first when its queues are backlogged
//! (Temporal's priority keys, 1 served first, 5 last, 3 the server's default).
//!
//! In a burst of new orders the queues fill with their first steps. An order that holds the
//! customer's money must not wait behind them: its workflow tasks and activities go at
//! [`PAID`], a new order's setup at [`SETUP`], everything else (parcels, monitors) at the
//! default. The dispatcher starts an order at [`SETUP`] and raises it to [`PAID`] when it
//! delivers the payment (workflow tasks follow the workflow's priority); the order's activities
//! name their key themselves ([`for_order`]). A priority is an option, not a command: changing
//! one needs no patch (`versions.rs`).

use temporalio_common::Priority;

/// Orders the customer has paid: verification, procurement and everything after.
pub const PAID: u32 = 2;
/// A new order until it is payable and waits for the customer.
pub const SETUP: u32 = 4;

// Temporal's default range is 1..=5, lower first, 3 the default: paid work above it, setup
// below it.
const _: () = assert!(1 <= PAID && PAID < 3 && 3 < SETUP && SETUP <= 5);

/// The priority of key `k`.
pub fn key(k: u32) -> Priority {
    Priority::builder().priority_key(k).build()
}

/// An order's work: [`PAID`] once the customer's money is claimed or held, else [`SETUP`].
pub fn for_order(paid: bool) -> Priority {
    key(if paid { PAID } else { SETUP })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_goes_at_the_paid_key_once_paid_and_at_setup_before() {
        assert_eq!(for_order(true).priority_key, Some(PAID));
        assert_eq!(for_order(false).priority_key, Some(SETUP));
    }
}
