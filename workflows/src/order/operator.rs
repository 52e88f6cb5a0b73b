//! Operator decisions on a running order, as Temporal Updates with validators: the Web UI's
//! "Send an Update" and `temporal workflow update execute` get a refusal at once when the input
//! does not fit or the order is not waiting for that decision, and nothing enters history; an
//! accepted update returns its outcome.
//!
//! | update | input | accepted when |
//! |---|---|---|
//! | `retry_procurement` | `{"offer_id"?, "account"?, "max_unit_fen"?}` | parked for a procurement decision |
//! | `retry_step` | `{}` | parked after a step failed or a payment did not verify |
//! | `cancel_order` | `{"reason", "requested_by"?}` or a bare reason | always (the outcome says granted or refused) |

use super::*;
use serde::de::{self, Deserializer};

/// What an order parked in `NeedsOperator` waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Parked {
    /// No supplier could be bought from: retry (with overrides) or cancel.
    Procurement,
    /// A payment did not verify: check it again (`retry_step`), or cancel.
    Step,
    /// An activity step failed for a reason no automatic retry fixes: `retry_step` once the
    /// cause is fixed. A cancellation waits until the step has gone through.
    FailedStep,
}

/// Highest unit price an operator may allow: ¥1,000,000.
pub const MAX_OPERATOR_UNIT_FEN: i64 = 100_000_000;
/// Longest cancellation reason.
pub const MAX_REASON_CHARS: usize = 500;

pub type Refusal = Box<dyn std::error::Error + Send + Sync>;

/// `cancel_order` input: `{"reason": "...", "requested_by": "..."}`, or the reason alone as a
/// string (the form the earlier signal took).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CancelRequest {
    pub reason: String,
    /// Who asked: `customer:<id>`, `operator:<subject>`, or the Temporal UI / CLI by default.
    pub requested_by: String,
}

/// Who asked when an update or signal names nobody.
pub const UNNAMED_OPERATOR: &str = "operator (Temporal UI or CLI)";

impl<'de> Deserialize<'de> for CancelRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            reason: String,
            #[serde(default)]
            requested_by: Option<String>,
        }
        let expected = || {
            de::Error::custom(
                "expected {\"reason\": string, \"requested_by\"?: string} or a reason string",
            )
        };
        let (reason, by) = match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(reason) => (reason, None),
            v @ serde_json::Value::Object(_) => {
                let f: Full = serde_json::from_value(v).map_err(|_| expected())?;
                (f.reason, f.requested_by)
            }
            _ => return Err(expected()),
        };
        Ok(CancelRequest {
            reason,
            requested_by: by.unwrap_or_else(|| UNNAMED_OPERATOR.into()),
        })
    }
}

/// The answer to `cancel_order`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOutcome {
    pub granted: bool,
    /// The order's state once the request was dealt with.
    pub state: OrderState,
    pub message: String,
}

/// The answer to `retry_procurement` and `retry_step`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorOutcome {
    pub accepted: bool,
    pub state: OrderState,
    pub message: String,
}

fn refuse(msg: impl Into<String>) -> Refusal {
    msg.into().into()
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), Refusal> {
    let n = v.trim().chars().count();
    if n == 0 || v.chars().count() > max {
        return Err(refuse(format!("{field} must be 1 to {max} characters")));
    }
    procure_domain::text::check_line(v).map_err(|e| refuse(format!("{field} {e}")))
}

fn check_id(field: &str, v: &str) -> Result<(), Refusal> {
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(refuse(format!(
            "{field} must be 1 to 128 letters, digits, '-' or '_'"
        )))
    }
}

/// Where the order must be for `what`, in words for a refusal.
fn not_parked(what: &str, state: OrderState, parked: Option<Parked>, want: Parked) -> Refusal {
    let waits = match (state, parked) {
        (OrderState::NeedsOperator, Some(p)) => format!(" waiting for {p:?}"),
        _ => String::new(),
    };
    let needs = match want {
        Parked::Procurement => "waiting in NeedsOperator for a procurement decision",
        Parked::Step | Parked::FailedStep => {
            "waiting in NeedsOperator after a failed step or an unverified payment"
        }
    };
    refuse(format!(
        "{what} applies only to an order {needs}; this order is {state}{waits}"
    ))
}

pub fn validate_retry(
    state: OrderState,
    parked: Option<Parked>,
    r: &RetryProcurement,
) -> Result<(), Refusal> {
    if let Some(o) = &r.offer_id {
        check_id("offer_id", o)?;
    }
    if let Some(a) = &r.account {
        check_id("account", a)?;
    }
    if let Some(p) = r.max_unit_fen
        && !(1..=MAX_OPERATOR_UNIT_FEN).contains(&p)
    {
        return Err(refuse(format!(
            "max_unit_fen must be 1 to {MAX_OPERATOR_UNIT_FEN} fen, got {p}"
        )));
    }
    if parked != Some(Parked::Procurement) {
        return Err(not_parked(
            "retry_procurement",
            state,
            parked,
            Parked::Procurement,
        ));
    }
    Ok(())
}

/// The customer's answer about a line that cannot be bought.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineDecision {
    /// Drop the line (refunded its share) and go on with the others.
    Drop,
    /// Cancel the whole order.
    CancelAll,
}

/// `line_decision` input: `{"line_no": 2, "decision": "drop" | "cancel_all"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDecisionRequest {
    pub line_no: u32,
    pub decision: LineDecision,
}

pub fn validate_line_decision(
    asked: Option<u32>,
    req: &LineDecisionRequest,
) -> Result<(), Refusal> {
    match asked {
        Some(n) if n == req.line_no => Ok(()),
        Some(n) => Err(refuse(format!(
            "the customer is asked about line {n}, not line {}",
            req.line_no
        ))),
        None => Err(refuse("no line of this order is waiting for a decision")),
    }
}

/// `retry_step` takes an empty object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "crate::contract::JsonObject")]
pub struct RetryStep {}

impl TryFrom<crate::contract::JsonObject> for RetryStep {
    type Error = String;
    fn try_from(m: crate::contract::JsonObject) -> Result<Self, String> {
        match m.keys().next() {
            None => Ok(RetryStep {}),
            Some(k) => Err(format!(
                "retry_step takes an empty object; unknown field {k:?}"
            )),
        }
    }
}

pub fn validate_retry_step(state: OrderState, parked: Option<Parked>) -> Result<(), Refusal> {
    if !matches!(parked, Some(Parked::Step | Parked::FailedStep)) {
        return Err(not_parked("retry_step", state, parked, Parked::Step));
    }
    Ok(())
}

pub fn validate_cancel(c: &CancelRequest) -> Result<(), Refusal> {
    check_text("reason", &c.reason, MAX_REASON_CHARS)?;
    check_text("requested_by", &c.requested_by, 200)
}

/// An operator's overrides in words.
pub fn describe(r: &RetryProcurement) -> String {
    let mut parts = Vec::new();
    if let Some(o) = &r.offer_id {
        parts.push(format!("offer {o}"));
    }
    if let Some(a) = &r.account {
        parts.push(format!("account {a}"));
    }
    if let Some(p) = r.max_unit_fen {
        parts.push(format!("unit price up to {p} fen"));
    }
    if parts.is_empty() {
        "no overrides".into()
    } else {
        parts.join(", ")
    }
}

/// Why a cancellation cannot be granted in the order's current state, if it cannot. Before the
/// goods reach the warehouse it is granted (bought lines are then cancelled at the marketplace
/// where it still allows; the answer says which could not be).
fn refusal(s: &OrderWorkflow) -> Option<String> {
    use OrderState::*;
    match s.state {
        state if state.is_terminal() => Some(format!("the order already ended {state}")),
        InWarehouse | AwaitingCustomer | NeedsOperator if s.inbound.is_some() => Some(format!(
            "the order is {}: its goods are in our warehouse; the customer can have them disposed \
             of (storage choice) or ship them in a parcel and return them",
            s.state
        )),
        Packing | Shipped | Delivered => Some(format!(
            "the order is {}: its goods have left the warehouse; the customer can refuse or return the parcel",
            s.state
        )),
        _ => None,
    }
}

/// The `cancel_order` update: record who asked, then grant (the workflow compensates and the
/// answer waits for how the order ended) or refuse with the reason.
pub(super) async fn cancel(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    req: CancelRequest,
) -> CancelOutcome {
    let _ = note(
        ctx,
        format!(
            "cancellation requested by {}: {}",
            req.requested_by, req.reason
        ),
    )
    .await;
    if let Some(done) = ctx.state(|s| s.cancel_outcome.clone()) {
        return done;
    }
    if let Some(why) = ctx.state(refusal) {
        let _ = note(ctx, format!("cancellation refused: {why}")).await;
        return CancelOutcome {
            granted: false,
            state: ctx.state(|s| s.state),
            message: why,
        };
    }
    ctx.state_mut(|s| {
        if s.cancel_reason.is_none() {
            s.cancel_reason = Some(format!(
                "{} (requested by {})",
                req.reason, req.requested_by
            ));
        }
    });
    let _ = ctx.wait_condition(|s| s.cancel_outcome.is_some()).await;
    // A refusal (a line the marketplace would not cancel) leaves the way open to ask again.
    ctx.state_mut(|s| {
        let outcome = s.cancel_outcome.clone();
        if outcome
            .as_ref()
            .is_some_and(|o| !o.granted && !s.state.is_terminal())
        {
            s.cancel_outcome = None;
            s.cancel_reason = None;
        }
        outcome
    })
    .unwrap_or(CancelOutcome {
        granted: false,
        state: OrderState::NeedsOperator,
        message: "the workflow ended before the cancellation was dealt with".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderState::*;

    #[test]
    fn retry_is_refused_outside_its_wait_and_for_out_of_range_values() {
        let ok = RetryProcurement::default();
        assert!(validate_retry(NeedsOperator, Some(Parked::Procurement), &ok).is_ok());
        let e = validate_retry(Procuring, None, &ok)
            .unwrap_err()
            .to_string();
        assert!(e.contains("this order is Procuring"), "{e}");
        let e = validate_retry(NeedsOperator, Some(Parked::Step), &ok)
            .unwrap_err()
            .to_string();
        assert!(e.contains("waiting for Step"), "{e}");
        for (r, want) in [
            (
                RetryProcurement {
                    max_unit_fen: Some(0),
                    ..ok.clone()
                },
                "max_unit_fen",
            ),
            (
                RetryProcurement {
                    max_unit_fen: Some(-5),
                    ..ok.clone()
                },
                "max_unit_fen",
            ),
            (
                RetryProcurement {
                    max_unit_fen: Some(i64::MAX),
                    ..ok.clone()
                },
                "max_unit_fen",
            ),
            (
                RetryProcurement {
                    offer_id: Some("a b".into()),
                    ..ok.clone()
                },
                "offer_id",
            ),
            (
                RetryProcurement {
                    account: Some(String::new()),
                    ..ok.clone()
                },
                "account",
            ),
        ] {
            let e = validate_retry(NeedsOperator, Some(Parked::Procurement), &r)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    #[test]
    fn malformed_retry_inputs_do_not_decode() {
        for bad in [
            r#"{"max_unit_fen": "abc"}"#,
            "42",
            "null",
            "[]",
            r#"{"max_unit_fen": 1.5}"#,
            r#"{"max_unit_fen": 99999999999999999999}"#,
            r#"{"unit_cap": 5}"#,
        ] {
            assert!(
                serde_json::from_str::<RetryProcurement>(bad).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<RetryStep>(r#"{"x": 1}"#).is_err());
        assert!(serde_json::from_str::<RetryStep>("[]").is_err());
        assert!(serde_json::from_str::<RetryStep>("{}").is_ok());
    }

    #[test]
    fn cancel_takes_a_reason_in_either_form_and_refuses_the_rest() {
        let c: CancelRequest = serde_json::from_str("\"customer asked\"").unwrap();
        assert_eq!(c.requested_by, UNNAMED_OPERATOR);
        let c: CancelRequest =
            serde_json::from_str(r#"{"reason": "dup", "requested_by": "customer:c1"}"#).unwrap();
        assert_eq!(
            (c.reason.as_str(), c.requested_by.as_str()),
            ("dup", "customer:c1")
        );
        for bad in [
            "5",
            "null",
            "[]",
            r#"["x"]"#,
            r#"{"reason": 5}"#,
            r#"{"why": "x"}"#,
        ] {
            let e = serde_json::from_str::<CancelRequest>(bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("expected {\"reason\""), "{bad}: {e}");
        }
        for bad in ["", "   ", "evil\u{202e}txt", "two\nlines"] {
            let c = CancelRequest {
                reason: bad.into(),
                requested_by: UNNAMED_OPERATOR.into(),
            };
            assert!(validate_cancel(&c).is_err(), "{bad:?}");
        }
        let long = CancelRequest {
            reason: "x".repeat(MAX_REASON_CHARS + 1),
            requested_by: UNNAMED_OPERATOR.into(),
        };
        assert!(validate_cancel(&long).is_err());
    }
}
