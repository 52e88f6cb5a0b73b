//! Asking the customer when the only suppliers left ask more than their tolerance: the order
//! waits in `AwaitingCustomer` with a supplement (its own payment intent) until the customer
//! pays it (accept), declines, or the deadline passes (cancelled by default). A payment that
//! races the deadline or a decline is found when the intent is withdrawn, so money paid is
//! either used or refunded, never kept without goods.

use super::*;
use crate::contract::{ChargeWithdrawal, PriceChangeRequest};
use procure_domain::procurement::Candidate;

/// `Ok(())`: the customer paid the supplement (the rise from `covered_unit_fen`, what they
/// already paid for, to `new_unit_fen`), buy at up to `new_unit_fen`.
/// `Err(reason)`: cancel the order and refund (supplements included).
pub(super) async fn ask_customer(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    line: &OrderLine,
    cand: &Candidate,
    new_unit_fen: i64,
    covered_unit_fen: i64,
) -> WorkflowResult<Result<(), String>> {
    let n = ctx.state_mut(|s| {
        s.price_changes += 1;
        s.price_changes
    });
    let change_id = format!("pc_{}_{}_{n}", plan.order_id, line.line_no);
    let deadline = ctx.state(|s| s.input.price_change_deadline_secs).max(1);
    let req = PriceChangeRequest {
        change_id: change_id.clone(),
        order_id: plan.order_id.clone(),
        line_no: line.line_no,
        platform: cand.platform.as_str().to_owned(),
        offer_id: cand.offer_id.clone(),
        quantity: line.quantity,
        new_unit_fen,
        covered_unit_fen,
        due_at_ms: now_ms(ctx) + (deadline as i64) * 1000,
    };
    let proposal = step(ctx, || OrderActivities::propose_price_change, req).await?;
    let new_unit = Money::new(new_unit_fen, procure_domain::Currency::CNY);
    let Some(intent_id) = proposal.intent_id.filter(|_| proposal.supplement.minor > 0) else {
        note(
            ctx,
            format!(
                "line {}: {} {} asks {new_unit} per unit; the rise is below one {} cent after conversion, buying without asking",
                line.line_no,
                cand.platform.as_str(),
                cand.offer_id,
                proposal.supplement.currency
            ),
        )
        .await?;
        return Ok(Ok(()));
    };
    move_to(
        ctx,
        OrderState::AwaitingCustomer,
        format!(
            "line {}: {} {} now asks {new_unit} per unit (quoted {}, tolerance up to {}, paid for so far {}); \
             price change {change_id}: pay the supplement {} (payment {intent_id}) to accept, or decline, \
             within {deadline} s; without an answer the order is cancelled and refunded",
            line.line_no,
            cand.platform.as_str(),
            cand.offer_id,
            line.unit_price,
            line.max_unit_price,
            Money::new(covered_unit_fen, procure_domain::Currency::CNY),
            proposal.supplement,
        ),
    )
    .await?;

    let paid = |s: &OrderWorkflow, id: &str| s.supplements.iter().any(|p| p.charge_id == id);
    // A confirmation counts only once the provider holds exactly the supplement.
    let due_ms = now_ms(ctx) + (deadline as i64) * 1000;
    loop {
        let cid = change_id.clone();
        let left = (due_ms - now_ms(ctx)).max(1) as u64;
        select! {
            _ = ctx.wait_condition(move |s| paid(s, &cid) || s.cancel_reason.is_some()) => {}
            _ = ctx.timer(Duration::from_millis(left)) => {}
        };
        let claimed = ctx.state(|s| {
            s.supplements
                .iter()
                .find(|p| p.charge_id == change_id)
                .cloned()
        });
        let Some(claimed) = claimed.filter(|_| ctx.state(|s| s.cancel_reason.is_none())) else {
            break;
        };
        let verdict = check_payment(
            ctx,
            &claimed.intent_id,
            &intent_id,
            proposal.supplement,
            &plan.order_id,
        )
        .await?;
        match verdict {
            PaymentVerdict::Verified { .. } => break,
            PaymentVerdict::Mismatch { reason } => {
                ctx.state_mut(|s| s.supplements.retain(|p| p.charge_id != change_id));
                note(
                    ctx,
                    format!("supplement of {change_id} not paid: {reason}; still waiting for the customer"),
                )
                .await?;
                if now_ms(ctx) >= due_ms {
                    break;
                }
            }
        }
    }
    let cancel = ctx.state(|s| s.cancel_reason.clone());
    if cancel.is_none() && ctx.state(|s| paid(s, &change_id)) {
        let amount = proposal.supplement;
        move_to(
            ctx,
            OrderState::Procuring,
            format!(
                "line {}: customer paid the supplement {amount} of {change_id}; buying at up to {new_unit} per unit",
                line.line_no
            ),
        )
        .await?;
        return Ok(Ok(()));
    }

    // Declined, cancelled or unanswered: withdraw the supplement. A payment that raced us is
    // found here and is then used (deadline) or refunded with the order (cancel).
    let outcome = step(
        ctx,
        || OrderActivities::withdraw_price_change,
        change_id.clone(),
    )
    .await?;
    if let ChargeWithdrawal::Paid(p) = outcome {
        ctx.state_mut(|s| {
            if !paid(s, &p.charge_id) {
                s.supplements.push(p);
            }
        });
    }
    if let Some(reason) = cancel {
        return Ok(Err(format!(
            "cancelled while awaiting the customer: {reason}"
        )));
    }
    if ctx.state(|s| paid(s, &change_id)) {
        move_to(
            ctx,
            OrderState::Procuring,
            format!(
                "line {}: the supplement of {change_id} was paid at the deadline; buying at up to {new_unit} per unit",
                line.line_no
            ),
        )
        .await?;
        return Ok(Ok(()));
    }
    Ok(Err(format!(
        "the customer did not answer price change {change_id} within {deadline} s; cancelled by default"
    )))
}
