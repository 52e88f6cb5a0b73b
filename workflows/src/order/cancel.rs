//! Acting on a granted cancellation once goods may be bought: the
//! request is honoured between purchase attempts, while a purchaser task is open and while the
//! goods travel to the warehouse, and every bought line is cancelled at its marketplace first.
//! Lines the marketplace cancels are refunded (their share of the order's total); a line it
//! refuses (the seller shipped, no buyer API) keeps the order going, and the answer says so.

use super::*;
use crate::contract::{MarketplaceCancelOutcome, MarketplaceCancelRequest};

/// How often a pending marketplace cancellation is asked about, and for how long.
const PENDING_POLL: Duration = Duration::from_secs(30);
const PENDING_ASKS: u32 = 20;

/// Each line's share of the order's total (goods, fees, shipping, duty), by goods value;
/// the shares add up to the total exactly.
pub(super) fn line_shares(plan: &OrderPlan) -> Vec<(u32, Money)> {
    let weights: Vec<i64> = plan
        .lines
        .iter()
        .map(|l| l.unit_price.minor.saturating_mul(i64::from(l.quantity)))
        .collect();
    let shares = plan
        .total
        .allocate(&weights)
        .unwrap_or_else(|_| vec![Money::new(0, plan.total.currency); plan.lines.len()]);
    plan.lines.iter().map(|l| l.line_no).zip(shares).collect()
}

/// Cancel every bought line at its marketplace. `Ok(())`: none is left bought (the caller
/// refunds what is still owed and closes). `Err(why)`: at least one line stays bought; lines
/// that were cancelled are refunded their share already.
pub(super) async fn cancel_bought_lines(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
) -> WorkflowResult<Result<(), String>> {
    let bought = ctx.state(OrderWorkflow::live_purchases);
    let mut kept = Vec::new();
    let mut cancelled = Vec::new();
    for (line_no, account) in bought {
        let req = MarketplaceCancelRequest {
            order_id: plan.order_id.clone(),
            line_no,
            account,
            reason: "buyer cancelled the order".into(),
        };
        let mut asks = 0;
        let outcome = loop {
            let outcome = ctx
                .execute_activity(
                    OrderActivities::cancel_purchase,
                    req.clone(),
                    bounded_opts(),
                )
                .await;
            match outcome {
                Ok(MarketplaceCancelOutcome::Pending {
                    platform,
                    marketplace_order_id,
                    ..
                }) if asks < PENDING_ASKS => {
                    if asks == 0 {
                        note(ctx, format!("line {line_no}: cancellation of {platform} order {marketplace_order_id} asked; waiting for the marketplace")).await?;
                    }
                    asks += 1;
                    ctx.timer(PENDING_POLL).await;
                }
                other => break other,
            }
        };
        match outcome {
            Ok(MarketplaceCancelOutcome::Cancelled {
                platform,
                marketplace_order_id,
                refunded,
            }) => {
                note(ctx, format!("line {line_no}: {platform} order {marketplace_order_id} cancelled at the marketplace ({refunded} back to our buyer account)")).await?;
                cancelled.push(line_no);
            }
            Ok(MarketplaceCancelOutcome::NotBought) => cancelled.push(line_no),
            Ok(MarketplaceCancelOutcome::Pending {
                platform,
                marketplace_order_id,
                ..
            }) => kept.push(format!(
                "line {line_no}: {platform} has not confirmed the cancellation of order {marketplace_order_id}; an operator follows it up"
            )),
            Ok(MarketplaceCancelOutcome::TooLate {
                platform,
                marketplace_order_id,
                status,
            }) => kept.push(format!(
                "line {line_no}: {platform} order {marketplace_order_id} can no longer be cancelled ({status}: the seller has shipped)"
            )),
            Ok(MarketplaceCancelOutcome::NotCancellable { platform, reason }) => {
                kept.push(format!("line {line_no}: {platform}: {reason}"))
            }
            Err(e) => kept.push(format!(
                "line {line_no}: the marketplace did not cancel it ({e})"
            )),
        }
    }
    if kept.is_empty() {
        ctx.state_mut(|s| s.cancelled_lines.extend(cancelled));
        return Ok(Ok(()));
    }
    // Some lines stay bought: refund the ones that went, each its own share, once.
    let shares = line_shares(plan);
    for line_no in cancelled {
        refund_line(ctx, plan, &shares, line_no, "cancelled at the marketplace").await?;
    }
    Ok(Err(kept.join("; ")))
}

/// Refund one line's share of the order's total (once: the refund's key names the line) and
/// count the line as gone.
pub(super) async fn refund_line(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    shares: &[(u32, Money)],
    line_no: u32,
    why: &str,
) -> WorkflowResult<()> {
    let share = shares
        .iter()
        .find(|(l, _)| *l == line_no)
        .map(|(_, m)| *m)
        .unwrap_or(Money::new(0, plan.total.currency));
    if share.minor > 0 {
        let refund = step(
            ctx,
            || OrderActivities::refund_payment,
            RefundRequest {
                order_id: plan.order_id.clone(),
                amount: share,
                reason: format!("line {line_no} {why}"),
                part: Some(format!("L{line_no}")),
            },
        )
        .await?;
        note(
            ctx,
            format!(
                "line {line_no} {why}: refunded its share {} ({})",
                refund.amount, refund.refund_id
            ),
        )
        .await?;
    }
    ctx.state_mut(|s| {
        s.cancelled_lines.push(line_no);
        s.refunded_parts += share.minor.max(0);
    });
    Ok(())
}

/// A line of a multi-line order that cannot be bought: the customer drops it (refunded its share
/// of the total, the other lines go on) or cancels everything, within the price-change
/// deadline; without an answer the line is dropped. `Ok(Ok(()))`: dropped; `Ok(Err(reason))`:
/// cancel the order.
pub(super) async fn ask_about_line(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    line: &OrderLine,
    why: &str,
) -> WorkflowResult<Result<(), String>> {
    let shares = line_shares(plan);
    let share = shares
        .iter()
        .find(|(l, _)| *l == line.line_no)
        .map(|(_, m)| *m)
        .unwrap_or(Money::new(0, plan.total.currency));
    let deadline = ctx.state(|s| s.input.price_change_deadline_secs).max(1);
    move_to(
        ctx,
        OrderState::AwaitingCustomer,
        format!(
            "line {n} cannot be bought ({why}); the customer decides within {deadline} s: drop line {n} \
             (refund {share}) and go on with the others, or cancel the whole order; without an answer \
             line {n} is dropped",
            n = line.line_no
        ),
    )
    .await?;
    ctx.state_mut(|s| {
        s.line_question = Some(line.line_no);
        s.line_decision = None;
    });
    select! {
        _ = ctx.wait_condition(|s| s.line_decision.is_some() || s.cancel_reason.is_some()) => {}
        _ = ctx.timer(Duration::from_secs(deadline)) => {}
    };
    let (decision, cancel) = ctx.state_mut(|s| {
        s.line_question = None;
        (s.line_decision.take(), s.cancel_reason.clone())
    });
    if let Some(reason) = cancel {
        return Ok(Err(format!("cancelled: {reason}")));
    }
    if decision == Some(LineDecision::CancelAll) {
        return Ok(Err(format!(
            "the customer cancelled the order when line {} could not be bought",
            line.line_no
        )));
    }
    let how = if decision.is_some() {
        "dropped at the customer's request"
    } else {
        "dropped by default (no answer in time)"
    };
    refund_line(ctx, plan, &shares, line.line_no, how).await?;
    move_to(
        ctx,
        OrderState::Procuring,
        format!("line {} {how}; buying the other lines", line.line_no),
    )
    .await?;
    Ok(Ok(()))
}

/// A cancellation that could not be carried out: answer the waiting update, note it, and let
/// the order go on (a later request may ask again).
pub(super) async fn refuse_cancel(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    why: String,
) -> WorkflowResult<()> {
    let message = format!(
        "cancellation refused: {why}; the customer can refuse or return the goods once delivered, \
         or have them disposed of in the warehouse"
    );
    note(ctx, message.clone()).await?;
    ctx.state_mut(|s| {
        s.cancel_outcome = Some(CancelOutcome {
            granted: false,
            state: s.state,
            message,
        });
    });
    Ok(())
}
