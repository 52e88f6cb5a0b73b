//! After the goods are in the warehouse: they are stored for free until a
//! deadline, with a reminder before it (one per customer and day, listing all of their items
//! that expire soon), until the customer ships them in a parcel of their choosing, extends
//! storage for a fee, or has them disposed. When the free period ends without a choice the order
//! waits for the customer (`AwaitingCustomer`) for a grace period, then the goods are disposed
//! by default. Once in a parcel the order follows it: Packing → Shipped → Delivered, with a
//! delivery exception parking the order for an operator until the parcel moves on.

use super::*;
use crate::contract::{
    ChargeWithdrawal, ExtendStorage, FulfilmentActivities, StorageExtension, StorageReminderRequest,
};

pub(super) async fn store_and_ship(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    order_id: &str,
) -> WorkflowResult<OrderState> {
    let (reminder_ms, grace_ms) = ctx.state(|s| {
        (
            (s.input.storage_reminder_secs as i64) * 1000,
            (s.input.storage_grace_secs as i64) * 1000,
        )
    });
    let mut until_ms = step(
        ctx,
        || FulfilmentActivities::storage_deadline,
        order_id.to_owned(),
    )
    .await?;
    let mut reminded = false;
    let mut extensions = 0u32;
    let decided =
        |s: &OrderWorkflow| s.news(ParcelEvent::Assigned).is_some() || s.storage_choice.is_some();

    loop {
        if ctx.state(|s| s.news(ParcelEvent::Assigned).is_some()) {
            break;
        }
        if let Some(choice) = ctx.state_mut(|s| s.storage_choice.take()) {
            match choice {
                StorageChoice::Dispose => {
                    if dispose(ctx, order_id).await? {
                        return finish(
                            ctx,
                            OrderState::Disposed,
                            "goods disposed at the customer's request".into(),
                        )
                        .await;
                    }
                    ctx.wait_condition(|s| s.news(ParcelEvent::Assigned).is_some())
                        .await?;
                }
                StorageChoice::Extend { days } => {
                    extensions += 1;
                    if let Some(new_until) =
                        extend(ctx, order_id, days, extensions, until_ms).await?
                    {
                        until_ms = new_until;
                        reminded = false;
                        if ctx.state(|s| s.state) == OrderState::AwaitingCustomer {
                            move_to(
                                ctx,
                                OrderState::InWarehouse,
                                format!("storage extended by {days} day(s)"),
                            )
                            .await?;
                        }
                    }
                }
            }
            continue;
        }

        let now = now_ms(ctx);
        if now < until_ms {
            let remind_at = until_ms - reminder_ms;
            if !reminded && now >= remind_at {
                reminded = true;
                let sent = step(
                    ctx,
                    || FulfilmentActivities::storage_reminder,
                    StorageReminderRequest {
                        order_id: order_id.to_owned(),
                        window_secs: (reminder_ms / 1000) as u64,
                    },
                )
                .await?;
                let how = if sent {
                    "reminder sent"
                } else {
                    "covered by today's reminder"
                };
                note(
                    ctx,
                    format!("free storage ends in {} s: {how}", (until_ms - now) / 1000),
                )
                .await?;
                continue;
            }
            let wake = if reminded { until_ms } else { remind_at };
            select! {
                _ = ctx.wait_condition(decided) => {}
                _ = ctx.timer(Duration::from_millis((wake - now).max(1) as u64)) => {}
            };
            continue;
        }

        // The free period is over: the customer chooses, or the goods go after the grace period.
        if ctx.state(|s| s.state) != OrderState::AwaitingCustomer {
            move_to(
                ctx,
                OrderState::AwaitingCustomer,
                format!(
                    "free storage ended: ship in a parcel, extend storage or dispose within {} s, \
                     else the goods are disposed",
                    grace_ms / 1000
                ),
            )
            .await?;
        }
        let deadline = until_ms + grace_ms;
        let timed_out = select! {
            _ = ctx.wait_condition(decided) => false,
            _ = ctx.timer(Duration::from_millis((deadline - now).max(1) as u64)) => true,
        };
        if timed_out {
            if dispose(ctx, order_id).await? {
                return finish(
                    ctx,
                    OrderState::Disposed,
                    "no choice within the grace period after free storage ended: disposed by default"
                        .into(),
                )
                .await;
            }
            // Refused: the goods just went into a parcel, whose news is on its way.
            ctx.wait_condition(|s| s.news(ParcelEvent::Assigned).is_some())
                .await?;
        }
    }

    let parcel = ctx
        .state(|s| s.news(ParcelEvent::Assigned))
        .expect("loop exits on it");
    move_to(
        ctx,
        OrderState::Packing,
        format!("packing in parcel {}", parcel.parcel_id),
    )
    .await?;
    ctx.wait_condition(|s| s.news(ParcelEvent::Shipped).is_some())
        .await?;
    let shipped = ctx
        .state(|s| s.news(ParcelEvent::Shipped))
        .expect("condition");
    move_to(
        ctx,
        OrderState::Shipped,
        format!("parcel {}: {}", shipped.parcel_id, shipped.detail),
    )
    .await?;
    let mut exception_handled = false;
    loop {
        let handled = exception_handled;
        ctx.wait_condition(move |s| {
            s.news(ParcelEvent::Delivered).is_some()
                || (!handled && s.news(ParcelEvent::Exception).is_some())
        })
        .await?;
        if let Some(d) = ctx.state(|s| s.news(ParcelEvent::Delivered)) {
            move_to(
                ctx,
                OrderState::Delivered,
                format!("parcel {}: {}", d.parcel_id, d.detail),
            )
            .await?;
            break;
        }
        exception_handled = true;
        let e = ctx
            .state(|s| s.news(ParcelEvent::Exception))
            .expect("condition");
        move_to(
            ctx,
            OrderState::NeedsOperator,
            format!("parcel {}: {}", e.parcel_id, e.detail),
        )
        .await?;
    }
    finish(
        ctx,
        OrderState::Completed,
        "delivered to the customer".into(),
    )
    .await
}

async fn dispose(ctx: &mut WorkflowContext<OrderWorkflow>, order_id: &str) -> WorkflowResult<bool> {
    let done = step(
        ctx,
        || FulfilmentActivities::dispose_item,
        order_id.to_owned(),
    )
    .await?;
    if !done {
        note(
            ctx,
            "disposal skipped: the goods are already in a parcel".into(),
        )
        .await?;
    }
    Ok(done)
}

/// Charge the storage extension and wait for it; `Some(new end)` once paid, `None` when the
/// customer did not pay within the payment timeout (the charge is withdrawn).
async fn extend(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    order_id: &str,
    days: u32,
    n: u32,
    until_before: i64,
) -> WorkflowResult<Option<i64>> {
    let req = StorageExtension {
        charge_id: format!("sx_{order_id}_{n}"),
        order_id: order_id.to_owned(),
        days,
    };
    let charge = step(ctx, || FulfilmentActivities::create_storage_charge, req).await?;
    note(
        ctx,
        format!(
            "storage extension by {days} day(s): pay {} (payment {})",
            charge.amount, charge.intent_id
        ),
    )
    .await?;
    let timeout = ctx.state(|s| s.input.payment_timeout_secs).max(1);
    let cid = charge.charge_id.clone();
    let mut paid = select! {
        _ = ctx.wait_condition(move |s| s.charges_paid.iter().any(|p| p.charge_id == cid)) => true,
        _ = ctx.timer(Duration::from_secs(timeout)) => false,
    };
    if paid {
        // The provider's intent decides; a confirmation that does not verify counts as unpaid
        // (the withdrawal below still finds a real payment).
        let claimed = ctx.state(|s| {
            s.charges_paid
                .iter()
                .find(|p| p.charge_id == charge.charge_id)
                .map(|p| p.intent_id.clone())
                .unwrap_or_default()
        });
        if let PaymentVerdict::Mismatch { reason } =
            check_payment(ctx, &claimed, &charge.intent_id, charge.amount, order_id).await?
        {
            ctx.state_mut(|s| s.charges_paid.retain(|p| p.charge_id != charge.charge_id));
            note(
                ctx,
                format!("storage extension payment not verified: {reason}"),
            )
            .await?;
            paid = false;
        }
    }
    let paid = paid
        || matches!(
            step(
                ctx,
                || FulfilmentActivities::withdraw_charge,
                charge.charge_id.clone()
            )
            .await?,
            ChargeWithdrawal::Paid(_)
        );
    if !paid {
        note(
            ctx,
            format!("storage extension not paid within {timeout} s; withdrawn"),
        )
        .await?;
        return Ok(None);
    }
    let until = step(
        ctx,
        || FulfilmentActivities::extend_storage,
        ExtendStorage {
            order_id: order_id.to_owned(),
            days,
            from_ms: until_before,
        },
    )
    .await?;
    note(
        ctx,
        format!(
            "storage extension paid: {}; stored until {until} (ms)",
            charge.amount
        ),
    )
    .await?;
    Ok(Some(until))
}
