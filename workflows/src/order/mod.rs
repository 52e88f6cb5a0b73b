//! `OrderWorkflow`: one long-lived workflow per order (docs/ARCHITECTURE.md). Every state change goes
//! through `procure_domain::transition`, is appended to the timeline, mirrored to the
//! `OrderState` search attribute and written to the read-model by a local activity.
//!
//! Money flow is a saga: once the customer has paid, any failure before the goods are bought
//! refunds exactly once (idempotency key derived from the order id) and releases the stock,
//! in reverse order of the steps taken.

mod cancel;
mod fulfilment;
pub mod operator;
mod price_change;
mod procure;
mod shipment;

pub use operator::{
    CancelOutcome, CancelRequest, LineDecision, LineDecisionRequest, OperatorOutcome, Parked,
    RetryStep,
};

use price_change::ask_customer;
use procure::{Procured, procure_lines};

use crate::{
    ORDER_STATE_ATTRIBUTE,
    contract::{
        CandidatesRequest, ChargePaid, OfferOutcome, OfferPurchase, OpenRequest, Opened,
        OrderActivities, OrderPlan, PaymentCheck, PaymentCreated, PaymentVerdict, PurchaserResult,
        PurchaserTaskRequest, RefundRequest, ReserveOutcome, RetryProcurement, TransitionRecord,
    },
    lenient::Lenient,
    versions,
};
use procure_domain::{
    Money, OrderState,
    order::{OrderLine, TimelineEvent},
    procurement::Candidate,
    quote::Dimensions,
    transition,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_common::search_attributes::SearchAttributeKey;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, LocalActivityOptions, SyncWorkflowContext,
    WorkflowContext, WorkflowContextView, WorkflowResult, workflows::select,
};

const ORDER_STATE: SearchAttributeKey<String> = SearchAttributeKey::keyword(ORDER_STATE_ATTRIBUTE);

/// Attempts per supplier before failing over.
pub use procure_domain::procurement::ATTEMPTS_PER_SUPPLIER;

/// Workflow id of an order: stable, so a duplicate start is rejected by the server.
pub fn order_workflow_id(order_id: &str) -> String {
    format!("order-{order_id}")
}

/// Start input: ids and timing only, no personal data. Every value comes from the settings
/// (`timings.*`, through the dispatcher); the serde defaults only read inputs recorded before
/// a field existed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderInput {
    pub order_id: String,
    /// How long the customer has to pay before the reservation is released.
    pub payment_timeout_secs: u64,
    /// How long we wait for the seller's parcel before asking an operator.
    pub inbound_timeout_secs: u64,
    /// Interval between tracking polls once shipped.
    pub tracking_poll_secs: u64,
    /// How long a purchaser has to buy an assisted (Pinduoduo) line before it escalates.
    #[serde(default = "default_purchaser_deadline")]
    pub purchaser_deadline_secs: u64,
    /// How long the customer has to answer a price change before the order is cancelled.
    #[serde(default = "default_price_change_deadline")]
    pub price_change_deadline_secs: u64,
    /// How long before the free storage period ends the customer is reminded.
    #[serde(default = "default_storage_reminder")]
    pub storage_reminder_secs: u64,
    /// After the free period: how long the customer has to choose before the goods are disposed.
    #[serde(default = "default_storage_grace")]
    pub storage_grace_secs: u64,
    /// Between two questions to the marketplaces about the sellers' domestic shipments.
    #[serde(default = "default_seller_ship_poll")]
    pub seller_ship_poll_secs: u64,
    /// How long after the purchase a seller has to ship before an operator is asked.
    #[serde(default = "default_seller_ship_deadline")]
    pub seller_ship_deadline_secs: u64,
}

fn default_seller_ship_poll() -> u64 {
    3 * 3600
}

fn default_seller_ship_deadline() -> u64 {
    72 * 3600
}

fn default_storage_reminder() -> u64 {
    7 * 24 * 3600
}

fn default_storage_grace() -> u64 {
    30 * 24 * 3600
}

fn default_price_change_deadline() -> u64 {
    48 * 3600
}

fn default_purchaser_deadline() -> u64 {
    4 * 3600
}

/// Signal: the payment provider confirmed the charge (webhook → API → signal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSucceeded {
    pub intent_id: String,
    pub amount: Money,
}

/// Signal: the consolidation warehouse scanned the parcel in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseInbound {
    pub weight_g: u32,
    pub dims: Dimensions,
    #[serde(default)]
    pub photo_urls: Vec<String>,
}

/// What a parcel tells each of its orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelNews {
    pub parcel_id: String,
    #[serde(default)]
    pub detail: String,
}

/// What a parcel tells its orders (one signal each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParcelEvent {
    Assigned,
    Shipped,
    Delivered,
    Exception,
}

/// Signal: the customer's choice for stored goods (before or after the free period ends).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "choice")]
pub enum StorageChoice {
    /// Keep the goods `days` longer, for the storage fee.
    Extend {
        days: u32,
    },
    Dispose,
}

/// Query result: where the order is and how it got there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatusView {
    pub order_id: String,
    pub state: OrderState,
    pub timeline: Vec<TimelineEvent>,
}

#[workflow]
pub struct OrderWorkflow {
    input: OrderInput,
    order_id: String,
    state: OrderState,
    timeline: Vec<TimelineEvent>,
    payment: Option<PaymentSucceeded>,
    inbound: Option<WarehouseInbound>,
    cancel_reason: Option<String>,
    operator_retry: Option<RetryProcurement>,
    purchaser_results: Vec<PurchaserResult>,
    /// Price changes put to the customer so far (numbers their ids).
    price_changes: u32,
    /// Supplements the customer paid; refunded with the order if it is cancelled.
    supplements: Vec<ChargePaid>,
    /// News from the order's parcel, the first of each kind.
    parcel: Vec<(ParcelEvent, ParcelNews)>,
    storage_choice: Option<StorageChoice>,
    charges_paid: Vec<ChargePaid>,
    /// Lines bought at a marketplace so far, with the buyer account that bought each (none for
    /// assisted lines).
    purchased_lines: Vec<u32>,
    purchase_accounts: Vec<(u32, Option<String>)>,
    /// Lines cancelled at their marketplace, or dropped, and refunded on their own.
    cancelled_lines: Vec<u32>,
    /// What the lines refunded on their own came to (minor units of the order's currency).
    refunded_parts: i64,
    /// The line the customer is asked about, and their answer.
    line_question: Option<u32>,
    line_decision: Option<LineDecision>,
    /// What the order waits for while parked in NeedsOperator (validates operator updates).
    parked: Option<Parked>,
    /// An operator asked to retry the step the order is parked on.
    step_retry: bool,
    /// The answer to a granted cancellation, once the workflow has acted on it.
    cancel_outcome: Option<CancelOutcome>,
}

enum PaymentWait {
    Paid(PaymentSucceeded),
    Cancelled(String),
    Expired,
}

#[workflow_methods]
impl OrderWorkflow {
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: OrderInput) -> Self {
        OrderWorkflow {
            order_id: input.order_id.clone(),
            input,
            state: OrderState::Created,
            timeline: Vec::new(),
            payment: None,
            inbound: None,
            cancel_reason: None,
            operator_retry: None,
            purchaser_results: Vec::new(),
            price_changes: 0,
            supplements: Vec::new(),
            parcel: Vec::new(),
            storage_choice: None,
            charges_paid: Vec::new(),
            purchased_lines: Vec::new(),
            purchase_accounts: Vec::new(),
            cancelled_lines: Vec::new(),
            refunded_parts: 0,
            line_question: None,
            line_decision: None,
            parked: None,
            step_retry: false,
            cancel_outcome: None,
        }
    }

    #[run]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<OrderState> {
        let input = ctx.state(|s| s.input.clone());
        let order_id = input.order_id.clone();
        let (plan, payment) = if ctx.patched(versions::ONE_STEP_OPEN) {
            let accepted = push(ctx, OrderState::Created, "order accepted".into());
            let open = OpenRequest {
                order_id: order_id.clone(),
                accepted,
            };
            match step(ctx, || OrderActivities::open_order, open).await? {
                Opened::Payable {
                    plan,
                    payment,
                    pending,
                } => {
                    adopt(ctx, pending)?;
                    (plan, payment)
                }
                Opened::OutOfStock {
                    sku,
                    requested,
                    available,
                    ..
                } => {
                    // The dispatcher may have made it payable already: nobody may pay it now.
                    release_unpaid(ctx, &order_id).await?;
                    let why =
                        format!("out of stock: {sku} requested {requested}, available {available}");
                    return finish(ctx, OrderState::Failed, why).await;
                }
            }
        } else {
            record(ctx, OrderState::Created, "order accepted".into()).await?;
            let plan: OrderPlan =
                step(ctx, || OrderActivities::load_order, order_id.clone()).await?;
            match step(ctx, || OrderActivities::reserve_stock, order_id.clone()).await? {
                ReserveOutcome::Reserved => {}
                ReserveOutcome::Insufficient {
                    sku,
                    requested,
                    available,
                } => {
                    let why =
                        format!("out of stock: {sku} requested {requested}, available {available}");
                    return finish(ctx, OrderState::Failed, why).await;
                }
            }
            let payment: PaymentCreated =
                step(ctx, || OrderActivities::create_payment, order_id.clone()).await?;
            move_to(
                ctx,
                OrderState::PendingPayment,
                format!(
                    "payment {} created for {}",
                    payment.intent_id, payment.amount
                ),
            )
            .await?;
            (plan, payment)
        };

        let wait = select! {
            _ = ctx.wait_condition(|s| s.payment.is_some() || s.cancel_reason.is_some()) => {
                ctx.state(|s| match (&s.payment, &s.cancel_reason) {
                    (Some(p), _) => PaymentWait::Paid(p.clone()),
                    (None, Some(r)) => PaymentWait::Cancelled(r.clone()),
                    (None, None) => PaymentWait::Expired,
                })
            }
            _ = ctx.timer(Duration::from_secs(input.payment_timeout_secs)) => PaymentWait::Expired,
        };
        let paid = match wait {
            PaymentWait::Paid(p) => p,
            PaymentWait::Cancelled(reason) => {
                release_unpaid(ctx, &order_id).await?;
                return finish(
                    ctx,
                    OrderState::Cancelled,
                    format!("cancelled before payment: {reason}"),
                )
                .await;
            }
            PaymentWait::Expired => {
                release_unpaid(ctx, &order_id).await?;
                let why = format!(
                    "no payment within {} s; stock released",
                    input.payment_timeout_secs
                );
                return finish(ctx, OrderState::PaymentExpired, why).await;
            }
        };
        let paid = match verified_payment(ctx, &payment, paid).await? {
            Ok(p) => p,
            Err(reason) => return cancel_unverified(ctx, &order_id, reason).await,
        };
        // From here on the customer's money is ours to return if anything fails.
        move_all(
            ctx,
            vec![
                (
                    OrderState::Paid,
                    format!("payment {} succeeded: {}", paid.intent_id, paid.amount),
                ),
                (
                    OrderState::Procuring,
                    format!("buying {} line(s)", plan.lines.len()),
                ),
            ],
        )
        .await?;
        let bought = match procure_lines(ctx, &plan).await? {
            Procured::Bought(bought) => bought,
            Procured::Abandoned(reason) => return refund_and_close(ctx, &plan, reason).await,
        };
        receive_and_ship(ctx, &input, &plan, bought).await
    }

    // Signals carry deliveries (webhooks, scans, purchaser completions) through the outbox, and
    // may be sent by hand from the CLI: each decodes leniently, so input that does not fit is
    // put on the timeline and ignored instead of failing the workflow task.

    #[signal(name = "payment_succeeded")]
    pub async fn payment_succeeded(ctx: &mut WorkflowContext<Self>, p: Lenient<PaymentSucceeded>) {
        // The first confirmation wins; webhook redeliveries are harmless.
        on_signal(ctx, "payment_succeeded", p, |s, p| {
            if s.payment.is_none() {
                s.payment = Some(p);
            }
        })
        .await
    }

    #[signal(name = "warehouse_inbound")]
    pub async fn warehouse_inbound(
        ctx: &mut WorkflowContext<Self>,
        scan: Lenient<WarehouseInbound>,
    ) {
        on_signal(ctx, "warehouse_inbound", scan, |s, scan| {
            if s.inbound.is_none() {
                s.inbound = Some(scan);
            }
        })
        .await
    }

    /// The earlier form of cancellation, kept for running histories and scripts: the reason
    /// as a string. Prefer the `cancel_order` update, which answers with the outcome.
    #[signal(name = "cancel_order")]
    pub async fn cancel_order(ctx: &mut WorkflowContext<Self>, reason: Lenient<String>) {
        let reason = reason.checked(|r| {
            operator::validate_cancel(&CancelRequest {
                reason: r.clone(),
                requested_by: operator::UNNAMED_OPERATOR.into(),
            })
        });
        on_signal(ctx, "cancel_order", reason, |s, reason| {
            if s.cancel_reason.is_none() {
                s.cancel_reason = Some(reason);
            }
        })
        .await
    }

    /// The earlier form of an operator retry, kept for running histories and scripts. Prefer
    /// the `retry_procurement` update, which refuses bad input and answers.
    #[signal(name = "retry_procurement")]
    pub async fn retry_procurement(
        ctx: &mut WorkflowContext<Self>,
        retry: Lenient<RetryProcurement>,
    ) {
        let (state, parked) = ctx.state(|s| (s.state, s.parked));
        let retry = retry.checked(|r| operator::validate_retry(state, parked, r));
        on_signal(ctx, "retry_procurement", retry, |s, retry| {
            s.operator_retry = Some(retry);
        })
        .await
    }

    /// A purchaser bought an assisted line (purchaser task completed through the API).
    #[signal(name = "purchaser_completed")]
    pub async fn purchaser_completed(
        ctx: &mut WorkflowContext<Self>,
        result: Lenient<PurchaserResult>,
    ) {
        on_signal(ctx, "purchaser_completed", result, |s, result| {
            if !s
                .purchaser_results
                .iter()
                .any(|r| r.task_id == result.task_id)
            {
                s.purchaser_results.push(result);
            }
        })
        .await
    }

    /// The customer paid the supplement of a price change (payment webhook).
    #[signal(name = "supplement_paid")]
    pub async fn supplement_paid(ctx: &mut WorkflowContext<Self>, paid: Lenient<ChargePaid>) {
        on_signal(ctx, "supplement_paid", paid, |s, paid| {
            if !s.supplements.iter().any(|p| p.charge_id == paid.charge_id) {
                s.supplements.push(paid);
            }
        })
        .await
    }

    #[signal(name = "parcel_assigned")]
    pub async fn parcel_assigned(ctx: &mut WorkflowContext<Self>, n: Lenient<ParcelNews>) {
        on_signal(ctx, "parcel_assigned", n, |s, n| {
            s.parcel_news(ParcelEvent::Assigned, n)
        })
        .await
    }

    #[signal(name = "parcel_shipped")]
    pub async fn parcel_shipped(ctx: &mut WorkflowContext<Self>, n: Lenient<ParcelNews>) {
        on_signal(ctx, "parcel_shipped", n, |s, n| {
            s.parcel_news(ParcelEvent::Shipped, n)
        })
        .await
    }

    #[signal(name = "parcel_delivered")]
    pub async fn parcel_delivered(ctx: &mut WorkflowContext<Self>, n: Lenient<ParcelNews>) {
        on_signal(ctx, "parcel_delivered", n, |s, n| {
            s.parcel_news(ParcelEvent::Delivered, n)
        })
        .await
    }

    #[signal(name = "parcel_exception")]
    pub async fn parcel_exception(ctx: &mut WorkflowContext<Self>, n: Lenient<ParcelNews>) {
        on_signal(ctx, "parcel_exception", n, |s, n| {
            s.parcel_news(ParcelEvent::Exception, n)
        })
        .await
    }

    /// The customer chose what happens to stored goods (API → outbox → signal).
    #[signal(name = "storage_choice")]
    pub async fn storage_choice(ctx: &mut WorkflowContext<Self>, c: Lenient<StorageChoice>) {
        on_signal(ctx, "storage_choice", c, |s, c| s.storage_choice = Some(c)).await
    }

    /// A charge of this order (storage extension) was paid.
    #[signal(name = "charge_paid")]
    pub async fn charge_paid(ctx: &mut WorkflowContext<Self>, p: Lenient<ChargePaid>) {
        on_signal(ctx, "charge_paid", p, |s, p| {
            if !s.charges_paid.iter().any(|x| x.charge_id == p.charge_id) {
                s.charges_paid.push(p);
            }
        })
        .await
    }

    // Operator decisions: Updates with validators (see `operator`).

    /// Try procurement again, optionally with another supplier, account or price cap.
    #[update(name = "retry_procurement")]
    pub fn update_retry_procurement(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        retry: RetryProcurement,
    ) -> OperatorOutcome {
        let message = format!("retrying procurement with {}", operator::describe(&retry));
        self.operator_retry = Some(retry);
        OperatorOutcome {
            accepted: true,
            state: self.state,
            message,
        }
    }

    #[update_validator(update_retry_procurement)]
    pub fn validate_retry_procurement(
        &self,
        _ctx: &WorkflowContextView,
        retry: &RetryProcurement,
    ) -> Result<(), operator::Refusal> {
        operator::validate_retry(self.state, self.parked, retry)
    }

    /// Retry the step the order is parked on (after a failure no automatic retry fixes, or a
    /// payment that did not verify), once its cause is dealt with.
    #[update(name = "retry_step")]
    pub fn update_retry_step(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        _retry: RetryStep,
    ) -> OperatorOutcome {
        self.step_retry = true;
        OperatorOutcome {
            accepted: true,
            state: self.state,
            message: "retrying the step".into(),
        }
    }

    #[update_validator(update_retry_step)]
    pub fn validate_retry_step(
        &self,
        _ctx: &WorkflowContextView,
        _retry: &RetryStep,
    ) -> Result<(), operator::Refusal> {
        operator::validate_retry_step(self.state, self.parked)
    }

    /// The customer's answer about a line that cannot be bought: drop it, or cancel all.
    #[update(name = "line_decision")]
    pub fn update_line_decision(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        req: LineDecisionRequest,
    ) -> OperatorOutcome {
        self.line_decision = Some(req.decision);
        OperatorOutcome {
            accepted: true,
            state: self.state,
            message: format!("line {}: {:?}", req.line_no, req.decision),
        }
    }

    #[update_validator(update_line_decision)]
    pub fn validate_line_decision(
        &self,
        _ctx: &WorkflowContextView,
        req: &LineDecisionRequest,
    ) -> Result<(), operator::Refusal> {
        operator::validate_line_decision(self.line_question, req)
    }

    /// Cancel the order (customer through the API, or an operator): the answer says whether it
    /// was granted and what happened, or why not. Every request is on the timeline.
    #[update(name = "cancel_order")]
    pub async fn update_cancel_order(
        ctx: &mut WorkflowContext<Self>,
        req: CancelRequest,
    ) -> CancelOutcome {
        operator::cancel(ctx, req).await
    }

    #[update_validator(update_cancel_order)]
    pub fn validate_cancel_order(
        &self,
        _ctx: &WorkflowContextView,
        req: &CancelRequest,
    ) -> Result<(), operator::Refusal> {
        operator::validate_cancel(req)
    }

    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> OrderStatusView {
        OrderStatusView {
            order_id: self.order_id.clone(),
            state: self.state,
            timeline: self.timeline.clone(),
        }
    }
}

impl OrderWorkflow {
    fn bought(&mut self, line_no: u32, account: Option<String>) {
        if !self.purchased_lines.contains(&line_no) {
            self.purchased_lines.push(line_no);
            self.purchase_accounts.push((line_no, account));
        }
    }

    /// Whether a granted cancellation is waiting to be acted on.
    /// Whether the customer's money is claimed or held: the order's work then goes first
    /// (`crate::priority`).
    pub(crate) fn paid(&self) -> bool {
        self.payment.is_some() || self.state.customer_has_paid()
    }

    /// The lines bought and not cancelled or dropped, with the buyer account of each.
    pub(crate) fn live_purchases(&self) -> Vec<(u32, Option<String>)> {
        self.purchase_accounts
            .iter()
            .filter(|(l, _)| !self.cancelled_lines.contains(l))
            .cloned()
            .collect()
    }

    pub(crate) fn cancelling(&self) -> bool {
        self.cancel_reason.is_some() && self.cancel_outcome.is_none()
    }

    fn parcel_news(&mut self, kind: ParcelEvent, n: ParcelNews) {
        if !self.parcel.iter().any(|(k, _)| *k == kind) {
            self.parcel.push((kind, n));
        }
    }

    fn news(&self, kind: ParcelEvent) -> Option<ParcelNews> {
        self.parcel
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
    }
}

/// From the purchase on: the goods travel to the warehouse, are stored, shipped and tracked.
/// Also the way on for an order that keeps some bought lines after the rest were dropped.
async fn receive_and_ship(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    input: &OrderInput,
    plan: &OrderPlan,
    bought: Vec<String>,
) -> WorkflowResult<OrderState> {
    let order_id = plan.order_id.clone();
    move_all(
        ctx,
        vec![
            (OrderState::Purchased, bought.join("; ")),
            (
                OrderState::InboundTransit,
                "seller shipping to the consolidation warehouse".into(),
            ),
        ],
    )
    .await?;

    if ctx.patched(versions::SELLER_SHIPMENT) {
        if let Some(ended) = shipment::await_goods(ctx, input, plan).await? {
            return Ok(ended);
        }
    } else if let Some(ended) = await_scan(ctx, input, plan).await? {
        return Ok(ended);
    }
    let inbound = ctx
        .state(|s| s.inbound.clone())
        .expect("the wait ends on the scan");
    move_to(
        ctx,
        OrderState::InWarehouse,
        format!(
            "scanned in: {} g, {}×{}×{} mm, {} photo(s)",
            inbound.weight_g,
            inbound.dims.l_mm,
            inbound.dims.w_mm,
            inbound.dims.h_mm,
            inbound.photo_urls.len()
        ),
    )
    .await?;
    // The customer ships stored goods in parcels of their choosing (ParcelWorkflow).
    fulfilment::store_and_ship(ctx, &order_id).await
}

/// The wait for the warehouse scan before the patch `seller-shipment`: `Ok(None)` once
/// scanned, `Ok(Some(state))` when the order ended meanwhile.
async fn await_scan(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    input: &OrderInput,
    plan: &OrderPlan,
) -> WorkflowResult<Option<OrderState>> {
    // A cancellation while the goods travel: cancelled at the marketplace while it allows.
    let due_ms = now_ms(ctx) + (input.inbound_timeout_secs as i64) * 1000;
    let arrived = loop {
        let left = (due_ms - now_ms(ctx)).max(1) as u64;
        let arrived = select! {
            _ = ctx.wait_condition(|s| s.inbound.is_some() || s.cancelling()) => true,
            _ = ctx.timer(Duration::from_millis(left)) => false,
        };
        if !ctx.state(|s| s.cancelling()) || ctx.state(|s| s.inbound.is_some()) {
            break arrived;
        }
        match cancel::cancel_bought_lines(ctx, plan).await? {
            Ok(()) => {
                let why = ctx.state(|s| s.cancel_reason.clone()).unwrap_or_default();
                return refund_and_close(ctx, plan, format!("cancelled: {why}"))
                    .await
                    .map(Some);
            }
            Err(why) => cancel::refuse_cancel(ctx, why).await?,
        }
    };
    if !arrived {
        move_to(
            ctx,
            OrderState::NeedsOperator,
            format!(
                "parcel not received within {} s",
                input.inbound_timeout_secs
            ),
        )
        .await?;
        ctx.wait_condition(|s| s.inbound.is_some()).await?;
    }
    Ok(None)
}

/// Apply a signal's input, or put why it does not fit on the timeline and ignore it.
async fn on_signal<T>(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    name: &str,
    input: Lenient<T>,
    apply: impl FnOnce(&mut OrderWorkflow, T),
) {
    match input {
        Lenient::Valid(v) => ctx.state_mut(|s| apply(s, v)),
        invalid => {
            let why = invalid.refusal(name).unwrap_or_default();
            // A failed write of the note is retried by the local activity; the signal stays
            // ignored either way.
            let _ = note(ctx, why).await;
        }
    }
}

/// Park in NeedsOperator for `why` until an operator decides (or `wake` holds, which counts as
/// a retry): `Ok(true)` to retry, `Ok(false)` when a cancellation was requested (the caller
/// compensates and ends).
pub(crate) async fn park(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    kind: Parked,
    why: String,
    wake: impl Fn(&OrderWorkflow) -> bool + 'static,
) -> WorkflowResult<bool> {
    if ctx.state(|s| s.state) == OrderState::NeedsOperator {
        note(ctx, why).await?;
    } else {
        move_to(ctx, OrderState::NeedsOperator, why).await?;
    }
    ctx.state_mut(|s| {
        s.parked = Some(kind);
        s.operator_retry = None;
        s.step_retry = false;
    });
    ctx.wait_condition(move |s| {
        wake(s)
            || match kind {
                Parked::Procurement => s.operator_retry.is_some() || s.cancel_reason.is_some(),
                Parked::Step => s.step_retry || s.cancel_reason.is_some(),
                Parked::FailedStep => s.step_retry,
            }
    })
    .await?;
    Ok(ctx.state_mut(|s| {
        s.parked = None;
        let retried = std::mem::take(&mut s.step_retry);
        kind == Parked::FailedStep && retried || s.cancel_reason.is_none()
    }))
}

/// Run one activity step of the order: a bounded number of tries
/// (`step_opts`), then (or at once for a non-retryable failure, e.g. a refund the provider
/// answers 400) the order parks in NeedsOperator with the step and its error until an operator
/// sends `retry_step`, and goes back to where it was.
pub(crate) async fn step<AD>(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    def: impl Fn() -> AD,
    input: AD::Input,
) -> WorkflowResult<AD::Output>
where
    AD: temporalio_common::ActivityDefinition,
    AD::Input: Clone,
    AD::Output: temporalio_common::data_converters::TemporalDeserializable + 'static,
{
    loop {
        let mut opts = step_opts();
        opts.priority = Some(crate::priority::for_order(ctx.state(OrderWorkflow::paid)));
        match ctx.execute_activity(def(), input.clone(), opts).await {
            Ok(out) => return Ok(out),
            Err(e) => {
                let name = def().name().to_owned();
                let back = ctx.state(|s| s.state);
                // A cancellation asked meanwhile is acted on once the step has gone through.
                park(
                    ctx,
                    Parked::FailedStep,
                    format!("step {name} failed: {e}; fix the cause, then retry_step"),
                    |_| false,
                )
                .await?;
                if back != OrderState::NeedsOperator {
                    move_to(ctx, back, format!("operator retries step {name}")).await?;
                }
            }
        }
    }
}

/// `io_opts` with an end: about 10 minutes of backoff before the step parks for an operator.
fn step_opts() -> ActivityOptions {
    crate::backoff_opts(
        Duration::from_secs(30),
        Duration::from_millis(500),
        Duration::from_secs(60),
        16,
    )
}

/// The order's payment as the provider holds it. A confirmation that does not verify parks the
/// order (nothing is bought) until a later confirmation or an operator's `retry_step` verifies
/// it; `Err(reason)` when the order is cancelled instead.
async fn verified_payment(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    ours: &PaymentCreated,
    mut claimed: PaymentSucceeded,
) -> WorkflowResult<Result<PaymentSucceeded, String>> {
    let order_id = ctx.state(|s| s.order_id.clone());
    loop {
        let verdict = check_payment(
            ctx,
            &claimed.intent_id,
            &ours.intent_id,
            ours.amount,
            &order_id,
        )
        .await?;
        let reason = match verdict {
            PaymentVerdict::Verified { received } => {
                return Ok(Ok(PaymentSucceeded {
                    intent_id: ours.intent_id.clone(),
                    amount: received,
                }));
            }
            PaymentVerdict::Mismatch { reason } => reason,
        };
        // A later confirmation is checked afresh.
        ctx.state_mut(|s| s.payment = None);
        let retry = park(
            ctx,
            Parked::Step,
            format!(
                "payment not verified: {reason}; nothing is bought until the provider holds {} \
                 for payment {}. A new confirmation or retry_step checks again; cancel_order ends the order",
                ours.amount, ours.intent_id
            ),
            |s| s.payment.is_some(),
        )
        .await?;
        if !retry {
            let why = ctx.state(|s| s.cancel_reason.clone()).unwrap_or_default();
            return Ok(Err(format!("cancelled with its payment unverified: {why}")));
        }
        claimed = ctx
            .state(|s| s.payment.clone())
            .unwrap_or_else(|| claimed.clone());
        move_to(
            ctx,
            OrderState::PendingPayment,
            format!("checking payment {} again", ours.intent_id),
        )
        .await?;
    }
}

/// Ask the provider whether `claimed` is `ours` and holds exactly `owed`.
pub(crate) async fn check_payment(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    claimed: &str,
    ours: &str,
    owed: Money,
    reference: &str,
) -> WorkflowResult<PaymentVerdict> {
    match PaymentCheck::of(claimed, ours, owed, reference) {
        Ok(check) => step(ctx, || OrderActivities::verify_payment, check).await,
        Err(mismatch) => Ok(mismatch),
    }
}

/// End an order whose payment never verified: cancel its intent (refunding whatever the
/// provider did receive) and release the stock. A provider that refuses ends the order anyway,
/// with the refusal on the timeline for an operator to settle, instead of retrying forever.
async fn cancel_unverified(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    order_id: &str,
    reason: String,
) -> WorkflowResult<OrderState> {
    if ctx.state(|s| s.state) == OrderState::NeedsOperator {
        move_to(
            ctx,
            OrderState::PendingPayment,
            "cancelling: the payment never verified".into(),
        )
        .await?;
    }
    let settled = ctx
        .execute_activity(
            OrderActivities::cancel_payment,
            order_id.to_owned(),
            bounded_opts(),
        )
        .await;
    if let Err(e) = settled {
        note(
            ctx,
            format!("the payment could not be settled with the provider ({e}); an operator must settle it there"),
        )
        .await?;
    }
    let released = step(ctx, || OrderActivities::release_stock, order_id.to_owned()).await?;
    finish(
        ctx,
        OrderState::Cancelled,
        format!("{reason}; released {released} reservation(s)"),
    )
    .await
}

/// Compensation that must end: a few patient tries, then the caller records why it gave up.
pub(crate) fn bounded_opts() -> ActivityOptions {
    crate::backoff_opts(
        Duration::from_secs(30),
        Duration::from_secs(1),
        Duration::from_secs(30),
        8,
    )
}

fn local_opts() -> LocalActivityOptions {
    LocalActivityOptions::builder()
        .start_to_close_timeout(Duration::from_secs(10))
        .build()
}

fn now_ms(ctx: &WorkflowContext<OrderWorkflow>) -> i64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Enter `state` in the workflow: the timeline, the state and the `OrderState` search
/// attribute. Answers the event as the read-model records it.
fn push(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    state: OrderState,
    reason: String,
) -> TransitionRecord {
    let at_ms = now_ms(ctx);
    let (order_id, seq, from) = ctx.state_mut(|s| {
        let from = s.state;
        s.state = state;
        s.timeline.push(TimelineEvent {
            at_ms,
            state,
            reason: reason.clone(),
        });
        (s.order_id.clone(), (s.timeline.len() - 1) as u32, from)
    });
    ctx.upsert_search_attributes([ORDER_STATE.value_set(state.as_str().to_owned())]);
    TransitionRecord {
        order_id,
        seq,
        from,
        to: state,
        at_ms,
        reason,
    }
}

/// Take over a move an activity made and wrote to the read-model (`open_order`'s
/// `PendingPayment`): the same event, at the activity's time, on the workflow's timeline.
fn adopt(ctx: &mut WorkflowContext<OrderWorkflow>, rec: TransitionRecord) -> WorkflowResult<()> {
    let from = ctx.state(|s| s.state);
    transition(from, rec.to).map_err(ApplicationFailure::non_retryable)?;
    ctx.state_mut(|s| {
        s.state = rec.to;
        s.timeline.push(TimelineEvent {
            at_ms: rec.at_ms,
            state: rec.to,
            reason: rec.reason,
        });
    });
    ctx.upsert_search_attributes([ORDER_STATE.value_set(rec.to.as_str().to_owned())]);
    Ok(())
}

/// Append a timeline event for the current state (used for the initial `Created`).
async fn record(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    state: OrderState,
    reason: String,
) -> WorkflowResult<()> {
    let rec = push(ctx, state, reason);
    ctx.execute_local_activity(OrderActivities::record_transition, rec, local_opts())
        .await?;
    Ok(())
}

/// Back-to-back moves, written to the read-model with one local activity (before the patch
/// `one-step-open`, one each).
async fn move_all(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    moves: Vec<(OrderState, String)>,
) -> WorkflowResult<()> {
    if !ctx.patched(versions::ONE_STEP_OPEN) {
        for (to, reason) in moves {
            move_to(ctx, to, reason).await?;
        }
        return Ok(());
    }
    let mut records = Vec::with_capacity(moves.len());
    for (to, reason) in moves {
        let from = ctx.state(|s| s.state);
        transition(from, to).map_err(ApplicationFailure::non_retryable)?;
        records.push(push(ctx, to, reason));
    }
    ctx.execute_local_activity(OrderActivities::record_transitions, records, local_opts())
        .await?;
    Ok(())
}

/// Move to `to` if the state machine allows it; an illegal move is a bug and fails the workflow.
async fn move_to(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    to: OrderState,
    reason: String,
) -> WorkflowResult<()> {
    let from = ctx.state(|s| s.state);
    transition(from, to).map_err(ApplicationFailure::non_retryable)?;
    record(ctx, to, reason).await
}

async fn finish(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    to: OrderState,
    reason: String,
) -> WorkflowResult<OrderState> {
    move_to(ctx, to, reason.clone()).await?;
    // A waiting `cancel_order` update answers with how the order ended.
    ctx.state_mut(|s| {
        if s.cancel_reason.is_some() && s.cancel_outcome.is_none() {
            s.cancel_outcome = Some(CancelOutcome {
                granted: matches!(
                    to,
                    OrderState::Cancelled | OrderState::Refunded | OrderState::PaymentExpired
                ),
                state: to,
                message: reason,
            });
        }
    });
    // Let a waiting update answer (and a signal's note land) before the workflow completes.
    let handlers = ctx.clone();
    ctx.wait_condition(move |_| handlers.all_handlers_finished())
        .await?;
    Ok(to)
}

async fn release_unpaid(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    order_id: &str,
) -> WorkflowResult<()> {
    step(ctx, || OrderActivities::cancel_payment, order_id.to_owned()).await?;
    step(ctx, || OrderActivities::release_stock, order_id.to_owned()).await?;
    Ok(())
}

/// Compensate a paid order in reverse: refund the customer (the order's charge and any
/// supplement paid for a price change), then release the stock.
async fn refund_and_close(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    reason: String,
) -> WorkflowResult<OrderState> {
    if ctx.state(|s| !s.purchased_lines.is_empty()) {
        // Bought lines go back to their marketplace first; one that cannot keeps the order.
        if let Err(why) = cancel::cancel_bought_lines(ctx, plan).await? {
            // Boxed: keeping goods goes on to receive them, which may cancel again.
            return Box::pin(keep_bought(ctx, plan, reason, why)).await;
        }
    }
    // Lines already refunded on their own (dropped or cancelled) are not refunded again.
    let owed = Money::new(
        plan.total.minor - ctx.state(|s| s.refunded_parts),
        plan.total.currency,
    );
    let refund = step(
        ctx,
        || OrderActivities::refund_payment,
        RefundRequest {
            order_id: plan.order_id.clone(),
            amount: owed,
            reason: reason.clone(),
            part: None,
        },
    )
    .await?;
    // Only orders that went through a price change have supplements to refund.
    let mut supplements = String::new();
    if ctx.state(|s| !s.supplements.is_empty()) {
        let refunds = step(
            ctx,
            || OrderActivities::refund_supplements,
            plan.order_id.clone(),
        )
        .await?;
        for r in refunds {
            supplements.push_str(&format!(" and supplement {} ({})", r.amount, r.refund_id));
        }
    }
    let released = step(
        ctx,
        || OrderActivities::release_stock,
        plan.order_id.clone(),
    )
    .await?;
    finish(
        ctx,
        OrderState::Refunded,
        format!(
            "{reason}; refunded {} ({}){supplements}, released {released} reservation(s)",
            refund.amount, refund.refund_id
        ),
    )
    .await
}

/// Some bought lines could not be cancelled at their marketplace: refund the lines that were
/// never bought (their share of the total) and go on with the kept ones, which the customer
/// receives as stored goods. A waiting cancellation is answered as refused for those lines.
async fn keep_bought(
    ctx: &mut WorkflowContext<OrderWorkflow>,
    plan: &OrderPlan,
    reason: String,
    why: String,
) -> WorkflowResult<OrderState> {
    let (bought, cancelled) = ctx.state(|s| (s.purchased_lines.clone(), s.cancelled_lines.clone()));
    let shares = cancel::line_shares(plan);
    for (line_no, _) in &shares {
        if !bought.contains(line_no) && !cancelled.contains(line_no) {
            let why = format!("not bought ({reason})");
            cancel::refund_line(ctx, plan, &shares, *line_no, &why).await?;
        }
    }
    if ctx.state(|s| s.cancelling()) {
        cancel::refuse_cancel(ctx, why.clone()).await?;
    } else {
        note(ctx, format!("kept as stored goods: {why}")).await?;
    }
    let kept: Vec<String> = ctx.state(|s| {
        s.purchased_lines
            .iter()
            .filter(|l| !s.cancelled_lines.contains(l))
            .map(|l| format!("line {l} kept"))
            .collect()
    });
    if matches!(
        ctx.state(|s| s.state),
        OrderState::AwaitingCustomer | OrderState::NeedsOperator
    ) {
        move_to(
            ctx,
            OrderState::Procuring,
            "going on with the kept lines".into(),
        )
        .await?;
    }
    let input = ctx.state(|s| s.input.clone());
    receive_and_ship(ctx, &input, plan, kept).await
}

/// Record an event without changing state (a purchase attempt, an operator action).
async fn note(ctx: &mut WorkflowContext<OrderWorkflow>, reason: String) -> WorkflowResult<()> {
    let state = ctx.state(|s| s.state);
    record(ctx, state, reason).await
}
