//! The one classification of adapter failures into activity failures ([`adapter_err`]): what
//! no retry can fix becomes a non-retryable `ApplicationFailure` with a type name the workflow
//! can act on (turning it into `NeedsOperator` with the reason); everything else stays
//! retryable, typed too, so Temporal's retry policy (and the UI) can tell them apart.
//!
//! For Stripe (docs/vendors/stripe-errors.md): a 4xx is a content error the same request cannot
//! get past, except 409 (a concurrent request with the same idempotency key, a lock) and 429
//! (rate limited); 5xx, timeouts and connection failures are worth retrying with the same key.
//! `resource_missing` (an unknown intent or refund) is `NotFound`, a refused money movement
//! (`amount_too_large`, `charge_already_refunded`, card declines) is `PaymentRejected`, 401/403
//! is `Unauthorized`, any other 4xx `InvalidRequest`. One 400 stays retryable:
//! `payment_intent_unexpected_state` means the intent moved under us (a payment landing between
//! our read and our cancel), and the activities re-read the intent on their next attempt.

use super::{ApiError, FxError, MarketError};
use temporalio_sdk::{ApplicationFailure, activities::ActivityError};

/// Type names of non-retryable failures (`ApplicationFailure::type_name`).
pub mod types {
    /// The payment provider refused the money movement itself (a refund above what is left, a
    /// charge already refunded, an intent in the wrong state, a declined card).
    pub const PAYMENT_REJECTED: &str = "PaymentRejected";
    /// The request names something the provider does not have (e.g. an unknown intent).
    pub const NOT_FOUND: &str = "NotFound";
    /// Credentials refused.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// The provider refused the request as malformed or not allowed.
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// The marketplace has not enough units.
    pub const OUT_OF_STOCK: &str = "OutOfStock";
    /// The marketplace's price is above what we may pay.
    pub const PRICE_ABOVE_TOLERANCE: &str = "PriceAboveTolerance";
    /// The marketplace buyer account may not buy.
    pub const ACCOUNT_RESTRICTED: &str = "AccountRestricted";
    /// Our own records do not allow the step (no payment to refund, no such line, a corrupt
    /// row): not an adapter's answer, but as final.
    pub const INVALID_STATE: &str = "InvalidState";
}

/// Type names of retryable failures.
pub mod retryable {
    /// No answer in time: the outcome is unknown (retry with the same idempotency key).
    pub const TIMEOUT: &str = "Timeout";
    /// Connection failure, 5xx, a concurrent duplicate or lock (409).
    pub const UNAVAILABLE: &str = "Unavailable";
    pub const RATE_LIMITED: &str = "RateLimited";
    /// An answer we cannot read: the outcome is unknown.
    pub const UNREADABLE: &str = "UnreadableResponse";
    /// The payment intent changed state under us; the next attempt reads it again.
    pub const UNEXPECTED_STATE: &str = "PaymentStateChanged";
}

/// How an adapter error is to be treated: `Err(type)` when no retry can fix it.
pub type Classified = Result<&'static str, &'static str>;

/// Stripe error codes for a money movement the provider refused (docs/vendors/stripe-errors.md).
const PAYMENT_REFUSALS: &[&str] = &[
    "amount_too_large",
    "amount_too_small",
    "charge_already_refunded",
    "charge_disputed",
    "card_declined",
    "expired_card",
    "balance_insufficient",
];

/// An adapter error the classifier knows.
pub trait AdapterFailure: std::fmt::Display {
    /// `Ok(retryable type)` or `Err(non-retryable type)`.
    fn classify(&self) -> Classified;
}

impl<T: AdapterFailure> AdapterFailure for &T {
    fn classify(&self) -> Classified {
        (**self).classify()
    }
}

impl AdapterFailure for ApiError {
    fn classify(&self) -> Classified {
        use retryable::*;
        match self {
            ApiError::Timeout => Ok(TIMEOUT),
            ApiError::Transient(_) => Ok(UNAVAILABLE),
            ApiError::RateLimited => Ok(RATE_LIMITED),
            ApiError::InvalidResponse(_) => Ok(UNREADABLE),
            ApiError::Unauthorized(_) => Err(types::UNAUTHORIZED),
            ApiError::Rejected { code, .. } if code == "payment_intent_unexpected_state" => {
                Ok(UNEXPECTED_STATE)
            }
            ApiError::Rejected { status, code, .. } => Err(match (*status, code.as_str()) {
                (_, "resource_missing") | (404, _) => types::NOT_FOUND,
                (402, _) => types::PAYMENT_REJECTED,
                (_, c) if PAYMENT_REFUSALS.contains(&c) => types::PAYMENT_REJECTED,
                _ => types::INVALID_REQUEST,
            }),
        }
    }
}

impl AdapterFailure for MarketError {
    fn classify(&self) -> Classified {
        use retryable::*;
        match self {
            MarketError::Timeout => Ok(TIMEOUT),
            MarketError::Transient(_) => Ok(UNAVAILABLE),
            MarketError::RateLimited => Ok(RATE_LIMITED),
            MarketError::SignatureRejected => Err(types::UNAUTHORIZED),
            MarketError::AccountRestricted => Err(types::ACCOUNT_RESTRICTED),
            MarketError::OutOfStock => Err(types::OUT_OF_STOCK),
            MarketError::PriceAboveTolerance { .. } => Err(types::PRICE_ABOVE_TOLERANCE),
            MarketError::ListingGone => Err(types::NOT_FOUND),
            MarketError::Rejected { .. } => Err(types::INVALID_REQUEST),
        }
    }
}

impl AdapterFailure for FxError {
    fn classify(&self) -> Classified {
        match self {
            FxError::Fetch(e) => e.classify(),
            // A half-published or garbled file is worth fetching again later.
            FxError::Parse(_) => Ok(retryable::UNREADABLE),
            FxError::MissingCurrency { .. } => Err(types::NOT_FOUND),
        }
    }
}

/// The one mapping of an adapter error to an activity failure (see the module docs).
pub fn adapter_err(e: impl AdapterFailure) -> ActivityError {
    let class = e.classify();
    failed(e, class)
}

/// An activity failure with its message and class: retryable of type `Ok(type)`, or
/// non-retryable of type `Err(type)`. Every failure an activity returns is made here.
pub fn failed(e: impl std::fmt::Display, class: Classified) -> ActivityError {
    let (kind, non_retryable) = match class {
        Ok(kind) => (kind, false),
        Err(kind) => (kind, true),
    };
    ActivityError::application(
        ApplicationFailure::builder(anyhow::anyhow!("{e}"))
            .type_name(kind.to_owned())
            .non_retryable(non_retryable)
            .build(),
    )
}

/// As [`adapter_err`], the message prefixed with what was being done.
pub fn adapter_err_while(doing: &str, e: impl AdapterFailure) -> ActivityError {
    struct While<'a, E>(&'a str, E);
    impl<E: AdapterFailure> std::fmt::Display for While<'_, E> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.0, self.1)
        }
    }
    impl<E: AdapterFailure> AdapterFailure for While<'_, E> {
        fn classify(&self) -> Classified {
            self.1.classify()
        }
    }
    adapter_err(While(doing, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::RawResponse;

    fn failure(e: ActivityError) -> (bool, String, String) {
        match e {
            ActivityError::Application(f) => (
                f.is_non_retryable(),
                f.type_name().unwrap_or_default().to_owned(),
                f.source_error().to_string(),
            ),
            other => panic!("not an application failure: {other:?}"),
        }
    }

    /// An answer as Stripe sends it: the status and its error envelope.
    fn stripe(status: u16, kind: &str, code: Option<&str>) -> ApiError {
        let mut error = serde_json::json!({"type": kind, "message": "m"});
        if let Some(c) = code {
            error["code"] = c.into();
        }
        crate::payments::classify_error(&RawResponse {
            status,
            body: serde_json::json!({ "error": error }).to_string(),
            retry_after: None,
        })
    }

    /// Each Stripe answer we rely on, as docs/vendors/stripe-errors.md documents it.
    #[test]
    fn stripe_answers_are_classified_as_documented() {
        let cases: &[(u16, &str, Option<&str>, bool, &str)] = &[
            // Refund of more than is left, of a charge refunded in full: 400, no retry helps.
            (
                400,
                "invalid_request_error",
                Some("amount_too_large"),
                true,
                "PaymentRejected",
            ),
            (
                400,
                "invalid_request_error",
                Some("charge_already_refunded"),
                true,
                "PaymentRejected",
            ),
            // The intent moved under us (paid between our read and our cancel): read it again.
            (
                400,
                "invalid_request_error",
                Some("payment_intent_unexpected_state"),
                false,
                "PaymentStateChanged",
            ),
            (
                402,
                "card_error",
                Some("card_declined"),
                true,
                "PaymentRejected",
            ),
            // An unknown intent: by path 404, as a parameter 400; both resource_missing.
            (
                404,
                "invalid_request_error",
                Some("resource_missing"),
                true,
                "NotFound",
            ),
            (
                400,
                "invalid_request_error",
                Some("resource_missing"),
                true,
                "NotFound",
            ),
            (
                400,
                "invalid_request_error",
                Some("parameter_missing"),
                true,
                "InvalidRequest",
            ),
            (400, "idempotency_error", None, true, "InvalidRequest"),
            (401, "invalid_request_error", None, true, "Unauthorized"),
            (403, "invalid_request_error", None, true, "Unauthorized"),
            // Retryable: a concurrent request with the same key or a lock, rate limits, 5xx.
            (
                409,
                "idempotency_error",
                Some("idempotency_key_in_use"),
                false,
                "Unavailable",
            ),
            (
                409,
                "invalid_request_error",
                Some("lock_timeout"),
                false,
                "Unavailable",
            ),
            (
                429,
                "invalid_request_error",
                Some("rate_limit"),
                false,
                "RateLimited",
            ),
            (500, "api_error", None, false, "Unavailable"),
            (503, "api_error", None, false, "Unavailable"),
        ];
        for &(status, kind, code, non_retryable, type_name) in cases {
            let e = stripe(status, kind, code);
            let (nr, t, _) = failure(adapter_err(e.clone()));
            assert_eq!(
                (nr, t.as_str()),
                (non_retryable, type_name),
                "{status} {kind} {code:?} ({e:?})"
            );
        }
    }

    #[test]
    fn transport_failures_are_retryable_and_say_what_happened() {
        for (e, t) in [
            (ApiError::Timeout, "Timeout"),
            (
                ApiError::Transient("connection refused".into()),
                "Unavailable",
            ),
            (
                ApiError::InvalidResponse("not json".into()),
                "UnreadableResponse",
            ),
        ] {
            let text = e.to_string();
            let (nr, ty, msg) = failure(adapter_err(e));
            assert!(!nr);
            assert_eq!(ty, t);
            assert_eq!(msg, text);
        }
    }

    #[test]
    fn marketplace_and_fx_failures() {
        assert_eq!(MarketError::Timeout.classify(), Ok("Timeout"));
        assert_eq!(MarketError::RateLimited.classify(), Ok("RateLimited"));
        assert_eq!(MarketError::OutOfStock.classify(), Err("OutOfStock"));
        assert_eq!(MarketError::ListingGone.classify(), Err("NotFound"));
        assert_eq!(
            MarketError::SignatureRejected.classify(),
            Err("Unauthorized")
        );
        for e in [
            MarketError::Timeout,
            MarketError::Transient("x".into()),
            MarketError::RateLimited,
            MarketError::SignatureRejected,
            MarketError::AccountRestricted,
            MarketError::OutOfStock,
            MarketError::PriceAboveTolerance { quoted: 2, max: 1 },
            MarketError::ListingGone,
            MarketError::Rejected {
                code: "c".into(),
                message: "m".into(),
            },
        ] {
            // One rule: the classifier agrees with the adapter's own retry rule.
            assert_eq!(e.classify().is_ok(), e.is_retryable(), "{e:?}");
        }
        assert_eq!(FxError::Fetch(ApiError::Timeout).classify(), Ok("Timeout"));
        assert!(FxError::Parse("x".into()).classify().is_ok());
        assert!(
            FxError::MissingCurrency {
                currency: procure_domain::Currency::USD,
                date: "d".into()
            }
            .classify()
            .is_err()
        );
    }

    /// Where they differ, on purpose: an intent in an unexpected state is worth reading again.
    #[test]
    fn the_classifier_agrees_with_the_adapters_retry_rule() {
        let moved = stripe(
            400,
            "invalid_request_error",
            Some("payment_intent_unexpected_state"),
        );
        assert!(!moved.is_retryable() && moved.classify().is_ok());
        for e in [
            ApiError::Timeout,
            ApiError::RateLimited,
            stripe(400, "invalid_request_error", Some("amount_too_large")),
            stripe(400, "invalid_request_error", Some("resource_missing")),
            stripe(409, "idempotency_error", Some("idempotency_key_in_use")),
            stripe(500, "api_error", None),
            stripe(401, "invalid_request_error", None),
        ] {
            assert_eq!(e.classify().is_ok(), e.is_retryable(), "{e:?}");
        }
    }
}
