//! Cancelling one bought line at its marketplace: find the line's purchase in the store, open
//! the buyer account that placed it, and ask the platform's buyer API (1688: cancel an unpaid
//! order, or ask for the full refund of a paid one the seller has not shipped; Taobao: the
//! asynchronous cancellation). Pinduoduo and lines a purchaser bought by hand have no buyer API.
//! The vendors' rules are in docs/vendors/.
//!
//! [`OrderActivitiesImpl::cancel_line_at_marketplace`] is what an activity calls; it is
//! idempotent (a repeat reads where the cancellation stands and never asks twice).

use crate::{
    errors::{permanent, store_err},
    order::{DEFAULT_ACCOUNT, OrderActivitiesImpl},
};
use procure_adapters::{CancelOutcome, MarketError};
use procure_domain::{Currency, Money, order::Platform};
use procure_workflows::contract::{MarketplaceCancelOutcome, MarketplaceCancelRequest};
use temporalio_sdk::activities::ActivityError;

impl OrderActivitiesImpl {
    /// Cancel the line's marketplace order as far as its marketplace allows (see the module
    /// docs). Marketplace failures are classified once: retryable ones (timeouts, 5xx, rate
    /// limits, a cancel inside 1688's ten-second window) are transient, the rest permanent.
    #[tracing::instrument(skip(self, req), fields(order_id = %req.order_id, line = req.line_no))]
    pub async fn cancel_line_at_marketplace(
        &self,
        req: &MarketplaceCancelRequest,
    ) -> Result<MarketplaceCancelOutcome, ActivityError> {
        // 1688 takes 2 to 150 characters as the refund description.
        let n = req.reason.chars().count();
        if !(2..=150).contains(&n) {
            return Err(permanent("the cancel reason must be 2 to 150 characters"));
        }
        procure_domain::text::check_line(&req.reason)
            .map_err(|e| permanent(format!("the cancel reason {e}")))?;
        let Some(p) = self
            .store
            .line_purchase(&req.order_id, req.line_no)
            .await
            .map_err(store_err)?
        else {
            return Ok(MarketplaceCancelOutcome::NotBought);
        };
        let not_cancellable = |reason: &str| MarketplaceCancelOutcome::NotCancellable {
            platform: p.platform.clone(),
            reason: reason.into(),
        };
        if p.assisted {
            return Ok(not_cancellable(
                "bought by a purchaser by hand: there is no buyer-API order to cancel",
            ));
        }
        let platform: Platform = match p.platform.parse() {
            Ok(Platform::Pinduoduo) | Err(_) => {
                return Ok(not_cancellable(
                    "the platform has no buyer API to cancel an order",
                ));
            }
            Ok(other) => other,
        };
        let account = self
            .buying_account(platform, req.account.as_deref())
            .await?;
        let client = self.client(platform, &account).await?;
        let id = p.marketplace_order_id.as_str();
        let outcome = client
            .cancel(id, &req.reason)
            .await
            .map_err(|e| market_err(&e))?;
        tracing::info!(platform = platform.as_str(), marketplace_order = id, %account, ?outcome, "marketplace cancellation");
        let cny = |fen: i64| Money::new(fen, Currency::CNY);
        let (platform, marketplace_order_id) = (p.platform.clone(), p.marketplace_order_id.clone());
        Ok(match outcome {
            CancelOutcome::Cancelled { refunded_fen, .. } => MarketplaceCancelOutcome::Cancelled {
                platform,
                marketplace_order_id,
                refunded: cny(refunded_fen),
            },
            CancelOutcome::Pending { requested_fen, .. } => MarketplaceCancelOutcome::Pending {
                platform,
                marketplace_order_id,
                requested: cny(requested_fen),
            },
            CancelOutcome::TooLate { status } => MarketplaceCancelOutcome::TooLate {
                platform,
                marketplace_order_id,
                status,
            },
        })
    }

    /// The buyer account that placed the purchase: the one named, else the adapter's own
    /// credentials when the platform has no pool, else the pool's only account.
    pub(crate) async fn buying_account(
        &self,
        platform: Platform,
        named: Option<&str>,
    ) -> Result<String, ActivityError> {
        if let Some(a) = named {
            return Ok(a.to_owned());
        }
        let pool = self
            .store
            .accounts(Some(platform))
            .await
            .map_err(store_err)?;
        match pool.as_slice() {
            [] => Ok(DEFAULT_ACCOUNT.to_owned()),
            [only] => Ok(only.id.clone()),
            _ => Err(permanent(format!(
                "{} has several buyer accounts and the purchase does not record which one bought: \
                 pass the account of the purchase outcome",
                platform.as_str()
            ))),
        }
    }
}

/// A marketplace failure as an activity failure, by the one classifier
/// (`procure_adapters::failure`): retryable ones typed and retried, the rest non-retryable and typed.
fn market_err(e: &MarketError) -> ActivityError {
    procure_adapters::adapter_err(e)
}
