//! Buying the lines of a paid order: ranked suppliers, 3 attempts each with backoff, failover
//! after confirming the supplier holds no order, the assisted Pinduoduo channel, and parking for
//! an operator (or asking the customer, when only a higher price is left).

use super::*;
use procure_domain::procurement::{
    AfterAttempt, Attempt, Channel, CustomerTerms, Round, RoundEnd, after_attempt, channel,
};

/// One purchase attempt: a single activity try, so every attempt lands on the timeline; the
/// activity adopts an order an earlier timed-out attempt placed, so a retry never buys twice.
fn attempt_opts() -> ActivityOptions {
    let mut opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
        .build();
    opts.priority = Some(crate::priority::key(crate::priority::PAID));
    opts
}

/// How buying the lines of an order ended.
pub(super) enum Procured {
    /// Every line not dropped was bought: what was bought, line by line, for the timeline.
    Bought(Vec<String>),
    /// Nothing more is bought (cancelled, declined, every line dropped): refund and close.
    Abandoned(String),
}

/// How buying one line ended.
enum LineOutcome {
    Bought(String),
    /// The customer dropped the line (its share is refunded); the other lines go on.
    Dropped,
    Abandoned(String),
}

/// How trying one supplier ended.
enum Tried {
    Bought(String),
    NotBought,
    Cancelled(String),
}

/// Buy every line, one after the other (`procure_line`); a line that ends the order ends it.
pub(super) async fn procure_lines(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
) -> WorkflowResult<Procured> {
    let mut bought = Vec::new();
    for line in &plan.lines {
        match procure_line(ctx, plan, line).await? {
            LineOutcome::Bought(what) => bought.push(what),
            LineOutcome::Dropped => {}
            LineOutcome::Abandoned(why) => return Ok(Procured::Abandoned(why)),
        }
    }
    if bought.is_empty() && !plan.lines.is_empty() {
        return Ok(Procured::Abandoned("every line was dropped".into()));
    }
    Ok(Procured::Bought(bought))
}

/// Buy one line in rounds over its ranked suppliers (`try_supplier` each, best first). A round
/// that buys nothing asks the customer about a higher price, or about the line, or parks for an
/// operator (`procurement::Round::end` decides), and the next round starts on the new terms.
async fn procure_line(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    line: &OrderLine,
) -> WorkflowResult<LineOutcome> {
    let mut overrides = RetryProcurement::default();
    let mut terms = CustomerTerms::new(line.unit_price.minor);
    loop {
        if let Some(why) = cancelled(ctx) {
            return Ok(LineOutcome::Abandoned(why));
        }
        let req = CandidatesRequest {
            order_id: plan.order_id.clone(),
            line_no: line.line_no,
            only_offer: overrides.offer_id.clone(),
            max_unit_fen: overrides.max_unit_fen,
        };
        let candidates = step(ctx, || OrderActivities::procurement_candidates, req).await?;
        let mut round = Round::new(candidates);
        while let Some(cand) = round.next_candidate() {
            let req = OfferPurchase {
                order_id: plan.order_id.clone(),
                line_no: line.line_no,
                candidate: cand,
                quantity: line.quantity,
                max_unit_fen: overrides.max_unit_fen.unwrap_or(line.max_unit_price.minor),
                account: overrides.account.clone(),
            };
            match try_supplier(ctx, plan, line, req, &mut round).await? {
                Tried::Bought(what) => return Ok(LineOutcome::Bought(what)),
                Tried::Cancelled(why) => return Ok(LineOutcome::Abandoned(why)),
                Tried::NotBought => {}
            }
        }
        match round.end(terms.price_changes_asked, plan.lines.len()) {
            RoundEnd::AskPrice {
                candidate,
                new_unit_fen,
            } => {
                terms.asked();
                let covered = terms.covered_unit_fen;
                if let Err(why) =
                    ask_customer(ctx, plan, line, &candidate, new_unit_fen, covered).await?
                {
                    return Ok(LineOutcome::Abandoned(why));
                }
                terms.accepted(new_unit_fen);
                overrides = RetryProcurement {
                    max_unit_fen: Some(new_unit_fen),
                    ..RetryProcurement::default()
                };
            }
            RoundEnd::AskAboutLine { why } => {
                return Ok(match cancel::ask_about_line(ctx, plan, line, &why).await? {
                    Ok(()) => LineOutcome::Dropped,
                    Err(reason) => LineOutcome::Abandoned(reason),
                });
            }
            RoundEnd::Park { why } => match park_for_operator(ctx, line, why).await? {
                Some(retry) => overrides = retry,
                None => {
                    let reason = ctx.state(|s| s.cancel_reason.clone()).unwrap_or_default();
                    return Ok(LineOutcome::Abandoned(format!(
                        "cancelled by operator: {reason}"
                    )));
                }
            },
        }
    }
}

/// Try one supplier: through a purchaser task on the assisted channel, else up to
/// `ATTEMPTS_PER_SUPPLIER` attempts with backoff (`procurement::after_attempt` decides), and
/// confirmation that a supplier whose attempts all failed holds no order before failing over.
async fn try_supplier(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    line: &OrderLine,
    req: OfferPurchase,
    round: &mut Round,
) -> WorkflowResult<Tried> {
    let cand = &req.candidate;
    let who = format!(
        "line {} {} {}",
        line.line_no,
        cand.platform.as_str(),
        cand.offer_id
    );
    if channel(cand) == Channel::Assisted {
        return Ok(
            match assisted_purchase(ctx, plan, line, cand, req.max_unit_fen).await? {
                Ok(what) => {
                    ctx.state_mut(|s| s.bought(line.line_no, None));
                    Tried::Bought(what)
                }
                Err(why) => {
                    round.assisted_failed(&who, &why);
                    Tried::NotBought
                }
            },
        );
    }
    let max_unit_fen = req.max_unit_fen;
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Some(why) = cancelled(ctx) {
            return Ok(Tried::Cancelled(why));
        }
        let outcome = ctx
            .execute_activity(OrderActivities::purchase_offer, req.clone(), attempt_opts())
            .await;
        let error = match outcome {
            Ok(OfferOutcome::Purchased {
                platform,
                marketplace_order_id,
                paid,
                adopted,
                account,
            }) => {
                let how = if adopted {
                    ", adopted the order an earlier attempt placed"
                } else {
                    ""
                };
                let what = format!(
                    "line {}: {platform} order {marketplace_order_id} paid {paid} via account {account}{how}",
                    line.line_no
                );
                note(ctx, format!("attempt {attempt} {who}: purchased ({what})")).await?;
                ctx.state_mut(|s| s.bought(line.line_no, Some(account)));
                return Ok(Tried::Bought(what));
            }
            Ok(OfferOutcome::MoveOn { reason }) | Ok(OfferOutcome::NoAccount { reason }) => {
                note(
                    ctx,
                    format!("attempt {attempt} {who}: {reason}; next supplier"),
                )
                .await?;
                round.refused(&who, &reason);
                return Ok(Tried::NotBought);
            }
            Ok(OfferOutcome::PriceAbove {
                quoted_unit_fen,
                reason,
            }) => {
                note(ctx, format!("attempt {attempt} {who}: {reason} (quoted {quoted_unit_fen} fen, limit {max_unit_fen} fen); next supplier")).await?;
                round.priced_above(cand, &who, quoted_unit_fen, max_unit_fen);
                return Ok(Tried::NotBought);
            }
            Err(e) => e,
        };
        match after_attempt(attempt, Attempt::Failed) {
            AfterAttempt::Retry { backoff_secs } => {
                note(
                    ctx,
                    format!("attempt {attempt} {who}: failed ({error}); retrying"),
                )
                .await?;
                ctx.timer(Duration::from_secs(backoff_secs)).await;
            }
            _ => {
                note(
                    ctx,
                    format!("attempt {attempt} {who}: failed ({error}); failing over"),
                )
                .await?;
                return verify_before_failover(ctx, line, req, &who, round).await;
            }
        }
    }
}

/// A failed attempt may still have placed an order (a timeout after commit whose lookups
/// failed too): never move to the next supplier before this one is confirmed to hold no order.
async fn verify_before_failover(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    line: &OrderLine,
    req: OfferPurchase,
    who: &str,
    round: &mut Round,
) -> WorkflowResult<Tried> {
    match ctx
        .execute_activity(OrderActivities::settle_existing, req, verify_opts())
        .await
    {
        Ok(OfferOutcome::Purchased {
            platform,
            marketplace_order_id,
            paid,
            account,
            ..
        }) => {
            let what = format!(
                "line {}: {platform} order {marketplace_order_id} paid {paid} via account {account}, adopted after failed attempts",
                line.line_no
            );
            note(
                ctx,
                format!("{who}: found the order a failed attempt placed ({what})"),
            )
            .await?;
            ctx.state_mut(|s| s.bought(line.line_no, Some(account)));
            Ok(Tried::Bought(what))
        }
        Ok(_) => {
            note(
                ctx,
                format!("{who}: confirmed no order at this supplier; failing over"),
            )
            .await?;
            round.failed_over(who);
            Ok(Tried::NotBought)
        }
        Err(e) => {
            round.unconfirmed(who, &e.to_string());
            Ok(Tried::NotBought)
        }
    }
}

/// No supplier could be bought from: wait in NeedsOperator. `Some(overrides)` when an operator
/// retries, `None` when the order is cancelled instead.
async fn park_for_operator(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    line: &OrderLine,
    why: String,
) -> WorkflowResult<Option<RetryProcurement>> {
    let why = format!(
        "line {}: no supplier could be bought from: {why}",
        line.line_no
    );
    if !park(ctx, Parked::Procurement, why, |_| false).await? {
        return Ok(None);
    }
    let overrides = ctx
        .state_mut(|s| s.operator_retry.take())
        .unwrap_or_default();
    move_to(
        ctx,
        OrderState::Procuring,
        format!("operator retry: {overrides:?}"),
    )
    .await?;
    Ok(Some(overrides))
}

/// The assisted channel: open a purchaser task, wait for the purchaser's completion (marketplace
/// order number and amount paid) until the deadline. `Err(why)` escalates to an operator.
async fn assisted_purchase(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    line: &OrderLine,
    cand: &Candidate,
    max_unit_fen: i64,
) -> WorkflowResult<Result<String, String>> {
    let deadline = ctx.state(|s| s.input.purchaser_deadline_secs);
    let req = PurchaserTaskRequest {
        order_id: plan.order_id.clone(),
        line_no: line.line_no,
        platform: cand.platform.as_str().to_owned(),
        offer_id: cand.offer_id.clone(),
        spec_id: cand.spec_id.clone(),
        quantity: line.quantity,
        max_total_fen: max_unit_fen
            .saturating_mul(i64::from(line.quantity))
            .saturating_add(cand.domestic_shipping_fen),
        due_at_ms: now_ms(ctx) + (deadline as i64) * 1000,
    };
    let task_id = step(ctx, || OrderActivities::open_purchaser_task, req).await?;
    note(
        ctx,
        format!(
            "line {}: purchaser task {task_id} opened for pinduoduo {} (deadline {deadline} s)",
            line.line_no, cand.offer_id
        ),
    )
    .await?;
    let tid = task_id.clone();
    let done = select! {
        _ = ctx.wait_condition(move |s| {
            s.purchaser_results.iter().any(|r| r.task_id == tid) || s.cancelling()
        }) => true,
        _ = ctx.timer(Duration::from_secs(deadline.max(1))) => false,
    };
    // Cancelled while the task was open: withdraw it (a purchaser who bought at that moment is
    // found by the withdrawal and the line counts as bought).
    let done = done
        && !ctx
            .state(|s| s.cancelling() && !s.purchaser_results.iter().any(|r| r.task_id == task_id));
    if !done {
        step(
            ctx,
            || OrderActivities::expire_purchaser_task,
            task_id.clone(),
        )
        .await?;
        // The purchaser may have completed in the same instant: the store decides who won.
        let late = ctx.state(|s| {
            s.purchaser_results
                .iter()
                .find(|r| r.task_id == task_id)
                .cloned()
        });
        if late.is_none() {
            return Ok(Err(format!(
                "purchaser task {task_id} not completed within {deadline} s"
            )));
        }
    }
    let r = ctx
        .state(|s| {
            s.purchaser_results
                .iter()
                .find(|r| r.task_id == task_id)
                .cloned()
        })
        .expect("completion present");
    let what = format!(
        "line {}: pinduoduo order {} paid {} via purchaser task {task_id}",
        line.line_no,
        r.marketplace_order_id,
        Money::new(r.paid_fen, procure_domain::Currency::CNY)
    );
    note(ctx, format!("purchaser completed task {task_id}: {what}")).await?;
    Ok(Ok(what))
}

/// Confirming a supplier's state before failover: patient (60 tries with backoff up to 30 s
/// apart, about half an hour), because failing over while an order may exist could buy the line
/// twice; after that an operator decides.
fn verify_opts() -> ActivityOptions {
    let mut opts = crate::backoff_opts(
        Duration::from_secs(60),
        Duration::from_secs(1),
        Duration::from_secs(30),
        60,
    );
    opts.priority = Some(crate::priority::key(crate::priority::PAID));
    opts
}

/// A granted cancellation stops procurement before the next attempt.
fn cancelled(ctx: &mut WorkflowContext<OrderWorkflow>) -> Option<String> {
    if !ctx.state(|s| s.cancelling()) {
        return None;
    }
    ctx.state(|s| s.cancel_reason.clone())
        .map(|r| format!("cancelled: {r}"))
}
