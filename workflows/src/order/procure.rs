//! Buying the lines of a paid order: ranked suppliers, 3 attempts each with backoff, failover
//! after confirming the supplier holds no order, the assisted Pinduoduo channel, and parking for
//! an operator (or asking the customer, when only a higher price is left).

use super::*;

/// One purchase attempt: a single activity try, so every attempt lands on the timeline; the
/// activity adopts an order an earlier timed-out attempt placed, so a retry never buys twice.
fn attempt_opts() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
        .build()
}

/// Buy every line: ranked suppliers, up to 3 attempts each with exponential backoff, then the
/// next supplier. When all are exhausted and one of them only asked more than the customer's
/// tolerance, ask the customer (AwaitingCustomer: pay the supplement or decline); otherwise park
/// in NeedsOperator until an operator retries (with an optional override) or cancels.
/// `Err(reason)` means: refund and close.
pub(super) async fn procure_lines(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
) -> WorkflowResult<Result<Vec<String>, String>> {
    let mut bought = Vec::new();
    for line in &plan.lines {
        let mut overrides = RetryProcurement::default();
        // The unit price the customer has paid for so far, and how often we asked for more.
        let mut covered_unit_fen = line.unit_price.minor;
        let mut asked = 0;
        'line: loop {
            if let Some(why) = cancelled(ctx) {
                return Ok(Err(why));
            }
            let req = CandidatesRequest {
                order_id: plan.order_id.clone(),
                line_no: line.line_no,
                only_offer: overrides.offer_id.clone(),
                max_unit_fen: overrides.max_unit_fen,
            };
            let candidates = step(ctx, || OrderActivities::procurement_candidates, req).await?;
            let max_unit_fen = overrides.max_unit_fen.unwrap_or(line.max_unit_price.minor);
            let mut tried = Vec::new();
            // The cheapest supplier that only refused on price, and its price.
            let mut cheapest_above: Option<(Candidate, i64)> = None;
            'candidates: for cand in candidates {
                let who = format!(
                    "line {} {} {}",
                    line.line_no,
                    cand.platform.as_str(),
                    cand.offer_id
                );
                if cand.platform == Platform::Pinduoduo && ctx.patched(ASSISTED_PDD) {
                    match assisted_purchase(ctx, plan, line, &cand, max_unit_fen).await? {
                        Ok(what) => {
                            bought.push(what);
                            ctx.state_mut(|s| s.bought(line.line_no, None));
                            break 'line;
                        }
                        Err(why) => {
                            tried.push(format!("{who}: {why}"));
                            break 'candidates;
                        }
                    }
                }
                for attempt in 1..=ATTEMPTS_PER_SUPPLIER {
                    if let Some(why) = cancelled(ctx) {
                        return Ok(Err(why));
                    }
                    let req = OfferPurchase {
                        order_id: plan.order_id.clone(),
                        line_no: line.line_no,
                        candidate: cand.clone(),
                        quantity: line.quantity,
                        max_unit_fen,
                        account: overrides.account.clone(),
                    };
                    match ctx
                        .execute_activity(OrderActivities::purchase_offer, req, attempt_opts())
                        .await
                    {
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
                            note(ctx, format!("attempt {attempt} {who}: purchased ({what})"))
                                .await?;
                            bought.push(what);
                            ctx.state_mut(|s| s.bought(line.line_no, Some(account.clone())));
                            break 'line;
                        }
                        Ok(OfferOutcome::MoveOn { reason })
                        | Ok(OfferOutcome::NoAccount { reason }) => {
                            note(
                                ctx,
                                format!("attempt {attempt} {who}: {reason}; next supplier"),
                            )
                            .await?;
                            tried.push(format!("{who}: {reason}"));
                            break;
                        }
                        Ok(OfferOutcome::PriceAbove {
                            quoted_unit_fen,
                            reason,
                        }) => {
                            note(ctx, format!("attempt {attempt} {who}: {reason} (quoted {quoted_unit_fen} fen, limit {max_unit_fen} fen); next supplier")).await?;
                            tried.push(format!(
                                "{who}: price {quoted_unit_fen} fen above {max_unit_fen} fen"
                            ));
                            if cheapest_above
                                .as_ref()
                                .is_none_or(|(_, p)| quoted_unit_fen < *p)
                            {
                                cheapest_above = Some((cand.clone(), quoted_unit_fen));
                            }
                            break;
                        }
                        Err(e) => {
                            let last = attempt == ATTEMPTS_PER_SUPPLIER;
                            let then = if last { "failing over" } else { "retrying" };
                            note(
                                ctx,
                                format!("attempt {attempt} {who}: failed ({e}); {then}"),
                            )
                            .await?;
                            if last && ctx.patched(VERIFY_BEFORE_FAILOVER) {
                                // A failed attempt may still have placed an order (a timeout
                                // after commit whose lookups failed too): never move to the next
                                // supplier before this one is confirmed to hold no order.
                                let req = OfferPurchase {
                                    order_id: plan.order_id.clone(),
                                    line_no: line.line_no,
                                    candidate: cand.clone(),
                                    quantity: line.quantity,
                                    max_unit_fen,
                                    account: overrides.account.clone(),
                                };
                                match ctx
                                    .execute_activity(
                                        OrderActivities::settle_existing,
                                        req,
                                        verify_opts(),
                                    )
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
                                        note(ctx, format!("{who}: found the order a failed attempt placed ({what})")).await?;
                                        bought.push(what);
                                        ctx.state_mut(|s| {
                                            s.bought(line.line_no, Some(account.clone()))
                                        });
                                        break 'line;
                                    }
                                    Ok(_) => {
                                        note(ctx, format!("{who}: confirmed no order at this supplier; failing over")).await?;
                                        tried.push(format!(
                                            "{who}: {ATTEMPTS_PER_SUPPLIER} attempts failed"
                                        ));
                                    }
                                    Err(e) => {
                                        tried.push(format!(
                                            "{who}: could not confirm whether an order exists ({e})"
                                        ));
                                        break 'candidates;
                                    }
                                }
                            } else if last {
                                tried.push(format!(
                                    "{who}: {ATTEMPTS_PER_SUPPLIER} attempts failed"
                                ));
                            } else {
                                ctx.timer(Duration::from_secs(1u64 << (attempt - 1))).await;
                            }
                        }
                    }
                }
            }
            if let Some((cand, new_unit_fen)) = cheapest_above
                && ctx.patched(PRICE_CHANGE)
            {
                if asked < MAX_PRICE_CHANGES_PER_LINE {
                    asked += 1;
                    match ask_customer(ctx, plan, line, &cand, new_unit_fen, covered_unit_fen)
                        .await?
                    {
                        Ok(()) => {
                            covered_unit_fen = covered_unit_fen.max(new_unit_fen);
                            overrides = RetryProcurement {
                                max_unit_fen: Some(new_unit_fen),
                                ..RetryProcurement::default()
                            };
                            continue 'line;
                        }
                        Err(reason) => return Ok(Err(reason)),
                    }
                }
                tried.push(format!(
                    "the price rose again after {MAX_PRICE_CHANGES_PER_LINE} price changes the customer accepted"
                ));
            }
            let why = if tried.is_empty() {
                "no supplier offers this item".to_owned()
            } else {
                tried.join("; ")
            };
            // A multi-line order asks the customer about this line instead of parking.
            if plan.lines.len() > 1 && ctx.patched(LINE_OUTCOMES) {
                match cancel::ask_about_line(ctx, plan, line, &why).await? {
                    Ok(()) => break 'line,
                    Err(reason) => return Ok(Err(reason)),
                }
            }
            let retry = park(
                ctx,
                Parked::Procurement,
                format!(
                    "line {}: no supplier could be bought from: {why}",
                    line.line_no
                ),
                |_| false,
            )
            .await?;
            if !retry {
                let reason = ctx.state(|s| s.cancel_reason.clone()).unwrap_or_default();
                return Ok(Err(format!("cancelled by operator: {reason}")));
            }
            overrides = ctx
                .state_mut(|s| s.operator_retry.take())
                .unwrap_or_default();
            move_to(
                ctx,
                OrderState::Procuring,
                format!("operator retry: {overrides:?}"),
            )
            .await?;
        }
    }
    if bought.is_empty() && !plan.lines.is_empty() {
        return Ok(Err("every line was dropped".into()));
    }
    Ok(Ok(bought))
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
    let with_cancel = ctx.patched(CANCEL_ANYWHERE);
    let done = select! {
        _ = ctx.wait_condition(move |s| {
            s.purchaser_results.iter().any(|r| r.task_id == tid) || (with_cancel && s.cancelling())
        }) => true,
        _ = ctx.timer(Duration::from_secs(deadline.max(1))) => false,
    };
    // Cancelled while the task was open: withdraw it (a purchaser who bought at that moment is
    // found by the withdrawal and the line counts as bought).
    let done = done
        && !(with_cancel
            && ctx.state(|s| {
                s.cancelling() && !s.purchaser_results.iter().any(|r| r.task_id == task_id)
            }));
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
    crate::backoff_opts(
        Duration::from_secs(60),
        Duration::from_secs(1),
        Duration::from_secs(30),
        60,
    )
}

/// A granted cancellation stops procurement before the next attempt (patch `cancel-anywhere`).
fn cancelled(ctx: &mut WorkflowContext<OrderWorkflow>) -> Option<String> {
    if !ctx.state(|s| s.cancelling()) || !ctx.patched(CANCEL_ANYWHERE) {
        return None;
    }
    ctx.state(|s| s.cancel_reason.clone())
        .map(|r| format!("cancelled: {r}"))
}
