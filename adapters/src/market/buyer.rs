//! The two things a marketplace client is to the rest of the system, vendor-neutral: a buyer
//! ([`BuyerMarketplace`]: find our order by our external id, preview, create, read, pay,
//! domestic logistics, cancel) and a price source ([`PriceSource`]). The exactly-once purchase
//! is written once on top of the buyer trait (`super::purchase`); a vendor implements only the
//! calls. The methods return boxed futures so the registry can hand out `dyn` clients.

use std::{future::Future, pin::Pin, sync::Arc};

use procure_domain::Secret;

use super::{CancelOutcome, CargoLine, LogisticsInfo, MarketError, PurchaseRequest};
use crate::http::BuildError;

/// What every marketplace call returns.
pub type MarketFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, MarketError>> + Send + 'a>>;

/// An offer's current unit price (fen) and units on sale, where the platform reports them.
pub type OfferPrice = (i64, Option<i64>);

/// A marketplace's price for an order, before it is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub lines: Vec<QuotedLine>,
    /// What the order will cost in all (goods + domestic carriage, fen).
    pub total_fen: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotedLine {
    pub offer_id: String,
    /// Empty when the marketplace does not say which spec it priced.
    pub spec_id: String,
    pub unit_price_fen: i64,
}

impl Quote {
    /// The quoted unit price of one requested line (a quoted line without a spec matches any).
    pub fn unit_price(&self, line: &CargoLine) -> Option<i64> {
        self.lines
            .iter()
            .find(|q| {
                q.offer_id == line.offer_id && (q.spec_id.is_empty() || q.spec_id == line.spec_id)
            })
            .map(|q| q.unit_price_fen)
    }
}

/// What a create call answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Created {
    pub order_id: String,
    /// Offers the marketplace could not add (a partial order), as it reported them.
    pub failed_offers: Vec<String>,
}

/// Where a marketplace order stands, as far as paying it is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderState {
    /// Still being assembled by the marketplace: not payable yet.
    Building,
    AwaitingPayment,
    /// The buyer's payment has gone through.
    Paid,
    /// Closed; the error a purchase of it reports (e.g. out of stock).
    Closed(MarketError),
    /// Any other state, in the vendor's words.
    Other(String),
}

/// One marketplace order, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuyerOrder {
    pub order_id: String,
    pub state: OrderState,
    /// What the order costs (fen): what paying it debits.
    pub total_fen: i64,
}

/// A pay call's definite answer. A pay call without one (a timeout, a 5xx) is an `Err`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayAnswer {
    /// Paid, or paid already.
    Paid,
    /// The marketplace reports the payment as failed. It may have debited anyway (a documented
    /// 1688 pitfall): the order is read again before any new attempt, which uses a new attempt
    /// key. The error is what the purchase reports if no later attempt succeeds.
    Declined(MarketError),
}

/// One marketplace's buyer-side API, bound to one buyer account.
pub trait BuyerMarketplace: Send + Sync {
    /// The marketplace's name, for logs and messages.
    fn name(&self) -> &'static str;

    /// The order an earlier attempt made under our external id, if any.
    fn find_by_external_id<'a>(
        &'a self,
        out_order_id: &'a str,
    ) -> MarketFuture<'a, Option<BuyerOrder>>;

    /// Whether an order [`find_by_external_id`](Self::find_by_external_id) returns is as
    /// current as [`read`](Self::read) would return it (the same query), so the purchase need
    /// not read it again before paying.
    fn found_is_current(&self) -> bool {
        false
    }

    /// Price the order as it stands now, creating nothing.
    fn preview<'a>(&'a self, req: &'a PurchaseRequest) -> MarketFuture<'a, Quote>;

    /// Create the order under `req.out_order_id` for the previewed `quote`; a repeat with the
    /// same external id returns the same order. A timeout means "maybe created".
    fn create<'a>(
        &'a self,
        req: &'a PurchaseRequest,
        quote: &'a Quote,
    ) -> MarketFuture<'a, Created>;

    /// Our order as it stands (`out_order_id` is the external id it was made under).
    fn read<'a>(&'a self, order_id: &'a str, out_order_id: &'a str)
    -> MarketFuture<'a, BuyerOrder>;

    /// Pay `order` for its total. Repeating `attempt_key` must not pay twice where the
    /// marketplace takes such a key (1688's `opRequestId`, ≤ 64 printable characters).
    fn pay<'a>(
        &'a self,
        order: &'a BuyerOrder,
        attempt_key: &'a str,
    ) -> MarketFuture<'a, PayAnswer>;

    /// Pay requests per purchase before handing back to the caller's retry.
    fn max_pay_attempts(&self) -> u32;

    /// Domestic shipments of the order (empty until the seller ships).
    fn logistics<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, Vec<LogisticsInfo>>;

    /// The order's status in the marketplace's own word (e.g. 1688 `waitsellersend`, Taobao
    /// `WAIT_SELLER_SEND_GOODS`), for an operator looking at a seller who has not shipped.
    fn status_word<'a>(&'a self, order_id: &'a str) -> MarketFuture<'a, String> {
        let _ = order_id;
        Box::pin(async { Ok("not reported by this marketplace".to_owned()) })
    }

    /// Cancel the order as far as the marketplace allows, however often this is called.
    fn cancel<'a>(&'a self, order_id: &'a str, remark: &'a str) -> MarketFuture<'a, CancelOutcome>;

    /// A client of the same marketplace for another buyer account: this client's endpoint and
    /// app credentials with `access_token` (the client's own when `None`), and its own
    /// connection pool and rate limit.
    fn for_account(
        &self,
        access_token: Option<Secret>,
    ) -> Result<Arc<dyn BuyerMarketplace>, BuildError>;
}

/// One marketplace's price lookups.
pub trait PriceSource: Send + Sync {
    /// The current unit price (fen) of one offer and, where the platform reports it, the units
    /// on sale. `Ok(None)`: that spec of the listing is not buyable; a listing that is gone may
    /// also answer [`MarketError::ListingGone`] (the registry reads both as `None`). An empty
    /// `spec_id` matches a listing's only spec.
    fn offer_price<'a>(
        &'a self,
        offer_id: &'a str,
        spec_id: &'a str,
    ) -> MarketFuture<'a, Option<OfferPrice>>;
}

/// The spec asked for, or the only spec when none is named.
pub(crate) fn pick_spec<'a, T>(specs: &[(&str, &'a T)], spec_id: &str) -> Option<&'a T> {
    match specs {
        [(_, only)] if spec_id.is_empty() => Some(only),
        _ => specs.iter().find(|(id, _)| *id == spec_id).map(|(_, s)| *s),
    }
}
