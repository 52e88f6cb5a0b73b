//! `ParcelWorkflow`: one customer shipment of one or more stored orders. It tells each order it
//! is being packed, waits for the warehouse's packing report, settles the difference between
//! the quotes' estimates and the actual cost (refunds at once, a supplementary charge waits for
//! payment), books the carrier, and follows tracking to the door, telling each order as it
//! goes. Tracking can take weeks: the workflow continues as new every `polls_per_run` polls so
//! its history stays small.

use crate::{
    OrderWorkflow,
    contract::{
        ChargePaid, FulfilmentActivities, OrderActivities, ParcelStatus, ParcelStatusUpdate,
        ShipmentBooked,
    },
    io_opts,
    lenient::Lenient,
    order::{ParcelEvent, ParcelNews},
    order_workflow_id,
};
use procure_domain::{quote::Dimensions, status::ParcelStage};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ContinueAsNewOptions, SignalWorkflowOptions, SyncWorkflowContext, WorkflowContext,
    WorkflowContextView, WorkflowResult, workflows::select,
};

/// Workflow id of a parcel.
pub fn parcel_workflow_id(parcel_id: &str) -> String {
    format!("parcel-{parcel_id}")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelInput {
    pub parcel_id: String,
    pub order_ids: Vec<String>,
    /// How long a supplementary shipping charge may stay unpaid before it is flagged overdue.
    pub payment_timeout_secs: u64,
    /// Interval between tracking polls (webhooks usually arrive first).
    pub tracking_poll_secs: u64,
    /// Polls per run before continuing as new.
    #[serde(default = "default_polls_per_run")]
    pub polls_per_run: u32,
    /// Set when a run continues as new while tracking.
    #[serde(default)]
    pub resume: Option<ShipmentBooked>,
}

fn default_polls_per_run() -> u32 {
    500
}

/// Signal: the warehouse packed the parcel (weight and dimensions as measured).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelPacked {
    pub weight_g: u32,
    pub dims: Dimensions,
}

/// Signal: the tracking provider pushed a status (webhook → outbox → signal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingUpdate {
    pub status: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelView {
    pub parcel_id: String,
    pub stage: ParcelStage,
    pub history: Vec<String>,
}

#[workflow]
pub struct ParcelWorkflow {
    input: ParcelInput,
    stage: ParcelStage,
    history: Vec<String>,
    packed: Option<ParcelPacked>,
    paid: Vec<ChargePaid>,
    updates: Vec<TrackingUpdate>,
}

impl ParcelWorkflow {
    fn on_signal<T>(&mut self, name: &str, input: Lenient<T>, apply: impl FnOnce(&mut Self, T)) {
        match input {
            Lenient::Valid(v) => apply(self, v),
            invalid => self.history.push(invalid.refusal(name).unwrap_or_default()),
        }
    }
}

#[workflow_methods]
impl ParcelWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: ParcelInput) -> Self {
        ParcelWorkflow {
            input,
            stage: ParcelStage::Requested,
            history: Vec::new(),
            packed: None,
            paid: Vec::new(),
            updates: Vec::new(),
        }
    }

    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
        let input = ctx.state(|s| s.input.clone());
        let id = input.parcel_id.clone();
        let booked = match input.resume.clone() {
            Some(b) => b,
            None => {
                tell_orders(ctx, ParcelEvent::Assigned, String::new()).await?;
                // The read-model starts as `requested`; only the workflow's view needs it.
                ctx.state_mut(|s| {
                    s.history
                        .push("requested: waiting for the warehouse to pack".into())
                });
                ctx.wait_condition(|s| s.packed.is_some()).await?;
                let packed = ctx.state(|s| s.packed.clone()).expect("condition");
                stage(
                    ctx,
                    ParcelStage::Packed,
                    format!(
                        "packed: {} g, {}×{}×{} mm",
                        packed.weight_g, packed.dims.l_mm, packed.dims.w_mm, packed.dims.h_mm
                    ),
                )
                .await?;
                let settled = ctx
                    .execute_activity(FulfilmentActivities::settle_parcel, id.clone(), io_opts())
                    .await?;
                for r in &settled.refunds {
                    note(ctx, format!("refunded {} ({})", r.amount, r.refund_id));
                }
                if let Some(a) = settled.absorbed {
                    note(ctx, format!("absorbed {a} above guaranteed quotes"));
                }
                if let Some(charge) = settled.charge {
                    stage(
                        ctx,
                        ParcelStage::AwaitingPayment,
                        format!(
                            "supplementary shipping charge {} (payment {})",
                            charge.amount, charge.intent_id
                        ),
                    )
                    .await?;
                    let cid = charge.charge_id.clone();
                    let paid = select! {
                        _ = ctx.wait_condition(move |s| s.paid.iter().any(|p| p.charge_id == cid)) => true,
                        _ = ctx.timer(Duration::from_secs(input.payment_timeout_secs.max(1))) => false,
                    };
                    if !paid {
                        stage(
                            ctx,
                            ParcelStage::PaymentOverdue,
                            "supplementary charge unpaid; the parcel waits".into(),
                        )
                        .await?;
                        let cid = charge.charge_id.clone();
                        ctx.wait_condition(move |s| s.paid.iter().any(|p| p.charge_id == cid))
                            .await?;
                    }
                    verify_charge(ctx, &charge, &id).await?;
                    note(ctx, format!("supplementary charge {} paid", charge.amount));
                }
                let booked = ctx
                    .execute_activity(FulfilmentActivities::book_parcel, id.clone(), io_opts())
                    .await?;
                stage(
                    ctx,
                    ParcelStage::Shipped,
                    format!("{} tracking {}", booked.carrier, booked.tracking_number),
                )
                .await?;
                let detail = format!("{} tracking {}", booked.carrier, booked.tracking_number);
                tell_orders(ctx, ParcelEvent::Shipped, detail).await?;
                booked
            }
        };

        // Tracking: a pushed update or a poll, whichever comes first.
        let mut polls = 0u32;
        let mut reported_exception = false;
        loop {
            if polls >= input.polls_per_run.max(1) {
                let next = ParcelInput {
                    resume: Some(booked.clone()),
                    ..input.clone()
                };
                ctx.continue_as_new(next, ContinueAsNewOptions::default())?;
            }
            select! {
                _ = ctx.wait_condition(|s| !s.updates.is_empty()) => {}
                _ = ctx.timer(Duration::from_secs(input.tracking_poll_secs.max(1))) => {}
            };
            let pushed = ctx.state_mut(|s| s.updates.pop());
            let status = match pushed {
                Some(u) => ParcelStatus {
                    status: u.status,
                    description: u.description,
                },
                None => {
                    ctx.execute_activity(
                        OrderActivities::track_parcel,
                        booked.tracking_number.clone(),
                        io_opts(),
                    )
                    .await?
                }
            };
            polls += 1;
            if status.is_delivered() {
                stage(ctx, ParcelStage::Delivered, status.description.clone()).await?;
                tell_orders(ctx, ParcelEvent::Delivered, status.description.clone()).await?;
                return Ok("delivered".into());
            }
            if status.is_exception() && !reported_exception {
                reported_exception = true;
                let why = format!("carrier reports {}: {}", status.status, status.description);
                stage(ctx, ParcelStage::Exception, why.clone()).await?;
                tell_orders(ctx, ParcelEvent::Exception, why).await?;
            }
        }
    }

    // Signals decode leniently (see `crate::lenient`): input that does not fit is noted in the
    // parcel's history and ignored, never a workflow-task failure.

    #[signal(name = "parcel_packed")]
    pub fn parcel_packed(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        p: Lenient<ParcelPacked>,
    ) {
        self.on_signal("parcel_packed", p, |s, p| {
            if s.packed.is_none() {
                s.packed = Some(p);
            }
        });
    }

    #[signal(name = "charge_paid")]
    pub fn charge_paid(&mut self, _ctx: &mut SyncWorkflowContext<Self>, p: Lenient<ChargePaid>) {
        self.on_signal("charge_paid", p, |s, p| {
            if !s.paid.iter().any(|x| x.charge_id == p.charge_id) {
                s.paid.push(p);
            }
        });
    }

    #[signal(name = "tracking_update")]
    pub fn tracking_update(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        u: Lenient<TrackingUpdate>,
    ) {
        self.on_signal("tracking_update", u, |s, u| s.updates.insert(0, u));
    }

    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> ParcelView {
        ParcelView {
            parcel_id: self.input.parcel_id.clone(),
            stage: self.stage,
            history: self.history.clone(),
        }
    }
}

fn note(ctx: &mut WorkflowContext<ParcelWorkflow>, what: String) {
    ctx.state_mut(|s| s.history.push(what));
}

/// Move to a stage: kept in the workflow (query `status`) and in the read-model.
async fn stage(
    ctx: &mut WorkflowContext<ParcelWorkflow>,
    stage: ParcelStage,
    what: String,
) -> WorkflowResult<()> {
    let parcel_id = ctx.state_mut(|s| {
        s.stage = stage;
        s.history.push(format!("{stage}: {what}"));
        s.input.parcel_id.clone()
    });
    ctx.execute_activity(
        FulfilmentActivities::record_parcel_status,
        ParcelStatusUpdate {
            parcel_id,
            status: stage,
        },
        io_opts(),
    )
    .await?;
    Ok(())
}

/// Signal every order of the parcel; an order that is gone (e.g. terminated by hand) is noted,
/// not fatal: the parcel still travels.
async fn tell_orders(
    ctx: &mut WorkflowContext<ParcelWorkflow>,
    event: ParcelEvent,
    detail: String,
) -> WorkflowResult<()> {
    let (parcel_id, order_ids) =
        ctx.state(|s| (s.input.parcel_id.clone(), s.input.order_ids.clone()));
    for order_id in order_ids {
        let handle = ctx.external_workflow(order_workflow_id(&order_id), None);
        let news = ParcelNews {
            parcel_id: parcel_id.clone(),
            detail: detail.clone(),
        };
        let opts = SignalWorkflowOptions::default();
        let sent = match event {
            ParcelEvent::Assigned => {
                handle
                    .signal(OrderWorkflow::parcel_assigned, news.into(), opts)
                    .await
            }
            ParcelEvent::Shipped => {
                handle
                    .signal(OrderWorkflow::parcel_shipped, news.into(), opts)
                    .await
            }
            ParcelEvent::Delivered => {
                handle
                    .signal(OrderWorkflow::parcel_delivered, news.into(), opts)
                    .await
            }
            ParcelEvent::Exception => {
                handle
                    .signal(OrderWorkflow::parcel_exception, news.into(), opts)
                    .await
            }
        };
        if let Err(e) = sent {
            note(ctx, format!("could not tell order {order_id}: {e}"));
        }
    }
    Ok(())
}

/// The provider's intent decides whether the parcel's charge is paid: a confirmation that does
/// not verify is noted and dropped, and the parcel waits (stage `payment_unverified`, which an
/// operator sees) for one that does.
async fn verify_charge(
    ctx: &mut WorkflowContext<ParcelWorkflow>,
    charge: &crate::contract::ChargeCreated,
    parcel_id: &str,
) -> WorkflowResult<()> {
    loop {
        let claimed = ctx.state(|s| {
            s.paid
                .iter()
                .find(|p| p.charge_id == charge.charge_id)
                .map(|p| p.intent_id.clone())
        });
        let Some(claimed) = claimed else {
            let cid = charge.charge_id.clone();
            ctx.wait_condition(move |s| s.paid.iter().any(|p| p.charge_id == cid))
                .await?;
            continue;
        };
        let verdict = match crate::contract::PaymentCheck::of(
            &claimed,
            &charge.intent_id,
            charge.amount,
            parcel_id,
        ) {
            Ok(check) => {
                ctx.execute_activity(OrderActivities::verify_payment, check, io_opts())
                    .await?
            }
            Err(mismatch) => mismatch,
        };
        match verdict {
            crate::contract::PaymentVerdict::Verified { .. } => return Ok(()),
            crate::contract::PaymentVerdict::Mismatch { reason } => {
                ctx.state_mut(|s| s.paid.retain(|p| p.charge_id != charge.charge_id));
                stage(
                    ctx,
                    ParcelStage::PaymentUnverified,
                    format!("supplementary charge not paid: {reason}; the parcel waits"),
                )
                .await?;
            }
        }
    }
}
