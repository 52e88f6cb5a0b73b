//! What every marketplace client shares, vendor-neutral: the purchase request and its result,
//! the one error type ([`MarketError`]), the price-tolerance rule, the buyer-side and
//! price-source traits ([`buyer`]), the product detail and its trait ([`product`]) and the one
//! exactly-once purchase ([`purchase()`]). The
//! vendor modules (`alibaba`, `taobao`, `pdd`) build on this and keep only their wire mapping,
//! signing and error classification; `crate::registry`, above both, maps a platform to its
//! clients.

pub mod buyer;
pub mod product;
mod purchase;
pub(crate) mod wire;

pub use buyer::OfferPrice;
pub use buyer::{
    BuyerMarketplace, BuyerOrder, Created, MarketFuture, OrderState, PayAnswer, PriceSource, Quote,
    QuotedLine,
};
pub use product::{Attribute, Dimensions, ProductDetail, ProductSource, Seller, SkuDetail};
pub use purchase::purchase;

use crate::http::Transport;
use serde::{Deserialize, Serialize};

/// At most this many SKUs per order (1688's limit; the strictest we know).
pub(crate) const MAX_CARGO_LINES: usize = 50;

/// Every failure of a marketplace call, classified once per platform (each client has one
/// `classify_code`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum MarketError {
    /// No answer in time: the call may have taken effect. Never read as "not done".
    #[error("marketplace call timed out; the outcome is unknown")]
    Timeout,
    #[error("transient marketplace failure: {0}")]
    Transient(String),
    #[error("rate limited by the marketplace")]
    RateLimited,
    #[error("the marketplace rejected the request signature")]
    SignatureRejected,
    #[error("the marketplace buyer account is restricted")]
    AccountRestricted,
    #[error("out of stock")]
    OutOfStock,
    /// Amounts in fen: a unit price against its line's maximum, or an order total against the
    /// request's maximum.
    #[error("price {quoted} fen is above the tolerated {max} fen")]
    PriceAboveTolerance { quoted: i64, max: i64 },
    #[error("the listing no longer exists")]
    ListingGone,
    #[error("rejected by the marketplace ({code}): {message}")]
    Rejected { code: String, message: String },
}

impl MarketError {
    /// Whether retrying the same call (same ids) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            MarketError::Timeout | MarketError::Transient(_) | MarketError::RateLimited
        )
    }

    pub(crate) fn from_transport(t: Transport) -> Self {
        match t {
            Transport::Timeout => MarketError::Timeout,
            Transport::Connect(m) | Transport::Io(m) => MarketError::Transient(m),
            Transport::Build(m) => MarketError::Rejected {
                code: "CLIENT_CONFIG".into(),
                message: m,
            },
        }
    }

    /// An answer we cannot read: the outcome of the call is unknown, and every marketplace
    /// call we make is safe to repeat (creates are idempotent on our external id).
    pub(crate) fn invalid_response(what: impl std::fmt::Display) -> Self {
        MarketError::Transient(format!("unexpected marketplace response: {what}"))
    }
}

/// One SKU to buy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CargoLine {
    /// 1688 offer id / Taobao item id.
    pub offer_id: String,
    /// 1688 spec id / Taobao sku id.
    pub spec_id: String,
    pub quantity: u32,
    /// Highest unit price (fen) we accept for this line without asking the customer.
    pub max_unit_price_fen: i64,
}

/// Where the seller ships to (our consolidation warehouse). Personal data: `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAddress {
    pub full_name: String,
    pub mobile: String,
    pub post_code: String,
    pub province: String,
    pub city: String,
    pub area: String,
    #[serde(default)]
    pub town: String,
    /// Street address.
    pub address: String,
}

impl std::fmt::Debug for DeliveryAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryAddress")
            .field("province", &self.province)
            .field("city", &self.city)
            .finish_non_exhaustive()
    }
}

/// One order with one supplier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    /// Our idempotent id (1688 `outOrderId`, Taobao `outer_purchase_id`): the same id never
    /// buys twice.
    pub out_order_id: String,
    pub lines: Vec<CargoLine>,
    pub address: DeliveryAddress,
    /// Highest total (goods + domestic carriage, fen) we will pay for this order.
    pub max_total_fen: i64,
}

impl PurchaseRequest {
    pub(crate) fn validate(&self) -> Result<(), MarketError> {
        let bad = |m: &str| {
            Err(MarketError::Rejected {
                code: "INVALID_REQUEST".into(),
                message: m.into(),
            })
        };
        if self.out_order_id.trim().is_empty() {
            return bad("empty out_order_id");
        }
        if self.lines.is_empty() || self.lines.len() > MAX_CARGO_LINES {
            return bad("an order has 1 to 50 lines");
        }
        if self
            .lines
            .iter()
            .any(|l| l.quantity == 0 || l.offer_id.is_empty())
        {
            return bad("every line needs an offer id and a positive quantity");
        }
        Ok(())
    }
}

/// The result of [`purchase()`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchased {
    pub marketplace_order_id: String,
    pub amount_paid_fen: i64,
    /// The order was found by our external id (made by an earlier attempt), not created by a
    /// create call that answered in this one.
    pub adopted: bool,
}

/// What a buyer-side `cancel_order` achieved at the marketplace (docs/vendors/).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelOutcome {
    /// The order is closed at the marketplace. `refunded_fen` is what the marketplace pays
    /// back to the buyer account (0 for an order that was never paid); `refund_id` is the
    /// marketplace's refund reference where it issues one.
    Cancelled {
        refunded_fen: i64,
        refund_id: Option<String>,
    },
    /// Asked for and accepted, not final yet: a 1688 refund request waiting for the seller, or
    /// a Taobao cancellation the marketplace processes asynchronously. Calling `cancel_order`
    /// again reads where it stands and never asks twice.
    Pending {
        refund_id: Option<String>,
        requested_fen: i64,
    },
    /// The marketplace no longer allows it (the seller shipped, the refund was refused, or the
    /// order is in another state the vendor refuses); `status` is the vendor's own word.
    TooLate { status: String },
}

/// A domestic shipment of a marketplace order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogisticsInfo {
    pub bill_no: String,
    pub company: String,
}

/// The one price-tolerance rule: refuse a quote whose unit price for any line exceeds that
/// line's maximum, or whose total exceeds the request's. `unit_price` finds the quoted unit
/// price (fen) of a line; a line without one is refused as `PREVIEW_INCOMPLETE`.
pub(crate) fn check_quote(
    req: &PurchaseRequest,
    unit_price: impl Fn(&CargoLine) -> Option<i64>,
    total_fen: i64,
) -> Result<(), MarketError> {
    for line in &req.lines {
        let quoted = unit_price(line).ok_or_else(|| MarketError::Rejected {
            code: "PREVIEW_INCOMPLETE".into(),
            message: format!(
                "preview has no price for offer {} spec {}",
                line.offer_id, line.spec_id
            ),
        })?;
        if quoted > line.max_unit_price_fen {
            tracing::warn!(offer_id = %line.offer_id, quoted, max = line.max_unit_price_fen, "unit price above tolerance");
            return Err(MarketError::PriceAboveTolerance {
                quoted,
                max: line.max_unit_price_fen,
            });
        }
    }
    if total_fen > req.max_total_fen {
        return Err(MarketError::PriceAboveTolerance {
            quoted: total_fen,
            max: req.max_total_fen,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(max_unit: i64, max_total: i64) -> PurchaseRequest {
        PurchaseRequest {
            out_order_id: "o".into(),
            lines: vec![CargoLine {
                offer_id: "a".into(),
                spec_id: "s".into(),
                quantity: 2,
                max_unit_price_fen: max_unit,
            }],
            address: DeliveryAddress {
                full_name: "n".into(),
                mobile: "m".into(),
                post_code: "p".into(),
                province: "pr".into(),
                city: "c".into(),
                area: "a".into(),
                town: String::new(),
                address: "x".into(),
            },
            max_total_fen: max_total,
        }
    }

    #[test]
    fn quote_check_applies_line_and_total_limits() {
        assert_eq!(check_quote(&req(100, 300), |_| Some(100), 300), Ok(()));
        assert_eq!(
            check_quote(&req(100, 300), |_| Some(101), 202),
            Err(MarketError::PriceAboveTolerance {
                quoted: 101,
                max: 100
            })
        );
        assert_eq!(
            check_quote(&req(100, 299), |_| Some(100), 300),
            Err(MarketError::PriceAboveTolerance {
                quoted: 300,
                max: 299
            })
        );
        assert!(
            matches!(check_quote(&req(100, 300), |_| None, 0), Err(MarketError::Rejected { code, .. }) if code == "PREVIEW_INCOMPLETE")
        );
    }

    #[test]
    fn validates_requests() {
        assert_eq!(req(1, 1).validate(), Ok(()));
        let mut r = req(1, 1);
        r.out_order_id = " ".into();
        assert!(r.validate().is_err());
        let mut r = req(1, 1);
        r.lines[0].quantity = 0;
        assert!(r.validate().is_err());
    }
}
