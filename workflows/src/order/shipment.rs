//! While the goods travel to the warehouse (patch `seller-shipment`): the workflow follows each
//! bought line's domestic shipment through its marketplace's logistics API (1688
//! `getLogisticsInfos.buyerView`, Taobao Global `/logistics/detail/get`; a Pinduoduo line's
//! waybill comes with the purchaser's completion), every `seller_ship_poll_secs`, and puts
//! "seller shipped: <carrier> <waybill>" on the timeline once per parcel. "Not shipped yet"
//! (1688's `500_2`, Taobao's empty list) is asked again at the next poll.
//!
//! A line whose seller has not shipped within `seller_ship_deadline_secs` of the purchase parks
//! the order for an operator, with each such line's marketplace status: `retry_step` waits one
//! more deadline, `cancel_order` cancels at the marketplace and refunds, and a shipment or the
//! warehouse scan arriving meanwhile moves the order on by itself. The warehouse scan ends the
//! wait whenever it comes; `inbound_timeout_secs` without one asks an operator, as before.

use super::*;
use crate::contract::{SellerShipmentReport, SellerShipmentsRequest};

/// The wait for the goods. `Ok(None)`: scanned in at the warehouse; `Ok(Some(state))`: the
/// order ended meanwhile (cancelled and refunded).
pub(super) async fn await_goods(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    input: &OrderInput,
    plan: &OrderPlan,
) -> WorkflowResult<Option<OrderState>> {
    let started = now_ms(ctx);
    let inbound_due = started + secs_ms(input.inbound_timeout_secs);
    let poll_ms = secs_ms(input.seller_ship_poll_secs.max(1));
    let deadline_ms = secs_ms(input.seller_ship_deadline_secs.max(1));
    let mut ship_due = started + deadline_ms;
    let mut next_poll = started + poll_ms;
    // Parcels already on the timeline, as (line, waybill).
    let mut noted: Vec<(u32, String)> = Vec::new();
    let mut all_shipped = false;
    // Parked for an operator because a seller missed the deadline.
    let mut overdue = false;
    let mut inbound_overdue = false;
    loop {
        if ctx.state(|s| s.inbound.is_some()) {
            if overdue {
                ctx.state_mut(|s| s.parked = None);
            }
            return Ok(None);
        }
        if ctx.state(|s| s.cancelling()) {
            match cancel::cancel_bought_lines(ctx, plan).await? {
                Ok(()) => {
                    ctx.state_mut(|s| s.parked = None);
                    let why = ctx.state(|s| s.cancel_reason.clone()).unwrap_or_default();
                    return refund_and_close(ctx, plan, format!("cancelled: {why}"))
                        .await
                        .map(Some);
                }
                Err(why) => cancel::refuse_cancel(ctx, why).await?,
            }
            continue;
        }
        let now = now_ms(ctx);
        if overdue && ctx.state_mut(|s| std::mem::take(&mut s.step_retry)) {
            overdue = false;
            ship_due = now + deadline_ms;
            next_poll = now;
            ctx.state_mut(|s| s.parked = None);
            let why = format!(
                "operator: waiting for the seller {} s longer",
                input.seller_ship_deadline_secs
            );
            back_in_transit(ctx, inbound_overdue, why).await?;
        }
        let deadline_check = !overdue && now >= ship_due;
        if !all_shipped && (now >= next_poll || deadline_check) {
            let req = SellerShipmentsRequest {
                order_id: plan.order_id.clone(),
                lines: ctx.state(OrderWorkflow::live_purchases),
                with_status: deadline_check,
            };
            next_poll = now + poll_ms;
            if let Some(report) = ask(ctx, req).await? {
                for s in &report.shipped {
                    let key = (s.line_no, s.waybill.clone());
                    if !noted.contains(&key) {
                        noted.push(key);
                        let text = format!(
                            "seller shipped: {} {} (line {}, {} order {})",
                            s.carrier, s.waybill, s.line_no, s.platform, s.marketplace_order_id
                        );
                        note(ctx, text).await?;
                    }
                }
                all_shipped = report.waiting.is_empty();
                if all_shipped && overdue {
                    overdue = false;
                    ctx.state_mut(|s| s.parked = None);
                    let why = "every seller has shipped: waiting for the warehouse scan".into();
                    back_in_transit(ctx, inbound_overdue, why).await?;
                } else if !all_shipped && deadline_check {
                    overdue = true;
                    let why = unshipped(&report, input.seller_ship_deadline_secs);
                    to_operator(ctx, why).await?;
                    ctx.state_mut(|s| {
                        s.parked = Some(Parked::Step);
                        s.step_retry = false;
                    });
                }
            }
        }
        if !inbound_overdue && now >= inbound_due {
            inbound_overdue = true;
            let why = format!(
                "parcel not received within {} s",
                input.inbound_timeout_secs
            );
            to_operator(ctx, why).await?;
        }

        let mut wake = i64::MAX;
        if !all_shipped {
            wake = wake.min(next_poll);
            if !overdue {
                wake = wake.min(ship_due);
            }
        }
        if !inbound_overdue {
            wake = wake.min(inbound_due);
        }
        let woken = move |s: &OrderWorkflow| {
            s.inbound.is_some() || s.cancelling() || (overdue && s.step_retry)
        };
        if wake == i64::MAX {
            ctx.wait_condition(woken).await?;
        } else {
            let left = (wake - now).max(1) as u64;
            select! {
                _ = ctx.wait_condition(woken) => {}
                _ = ctx.timer(Duration::from_millis(left)) => {}
            };
        }
    }
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 4)
}

/// One question to the marketplaces, bounded: a failure goes on the timeline and the next poll
/// asks again (`None`), so a marketplace that is down never parks or fails the order by itself.
async fn ask(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    req: SellerShipmentsRequest,
) -> WorkflowResult<Option<SellerShipmentReport>> {
    let mut opts = bounded_opts();
    opts.priority = Some(crate::priority::for_order(true));
    match ctx
        .execute_activity(OrderActivities::seller_shipments, req, opts)
        .await
    {
        Ok(report) => Ok(Some(report)),
        Err(e) => {
            note(
                ctx,
                format!("seller shipments could not be read ({e}); asking again at the next poll"),
            )
            .await?;
            Ok(None)
        }
    }
}

/// The operator's reason: each line still waiting, with its marketplace's status.
fn unshipped(report: &SellerShipmentReport, deadline_secs: u64) -> String {
    let lines: Vec<String> = report
        .waiting
        .iter()
        .map(|w| {
            format!(
                "line {}: {} order {} is {}",
                w.line_no, w.platform, w.marketplace_order_id, w.status
            )
        })
        .collect();
    format!(
        "seller has not shipped within {deadline_secs} s of the purchase: {}; retry_step waits \
         longer, cancel_order cancels at the marketplace and refunds",
        lines.join("; ")
    )
}

async fn to_operator(ctx: &mut WorkflowContext<OrderWorkflow>, why: String) -> WorkflowResult<()> {
    if ctx.state(|s| s.state) == OrderState::NeedsOperator {
        note(ctx, why).await
    } else {
        move_to(ctx, OrderState::NeedsOperator, why).await
    }
}

/// Leave `NeedsOperator` for `InboundTransit`, unless the parcel is overdue too (an operator
/// still has that to look at).
async fn back_in_transit(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    inbound_overdue: bool,
    why: String,
) -> WorkflowResult<()> {
    if inbound_overdue || ctx.state(|s| s.state) != OrderState::NeedsOperator {
        note(ctx, why).await
    } else {
        move_to(ctx, OrderState::InboundTransit, why).await
    }
}
