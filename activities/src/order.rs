//! Implementation of the order activities declared in `procure_workflows::contract`. Each one
//! is idempotent (keyed by the order id, line number or an external id we choose), so Temporal
//! may retry any of them after a timeout without doubling an effect.

use crate::{
    adapters::{
        Alibaba1688, Carrier, MarketError, Payments, TrackRef, Tracking,
        alibaba::{CargoLine, DeliveryAddress, PurchaseRequest},
    },
    store::{Store, StoreError},
};
use procure_domain::{Currency, Money, order::Platform};
use procure_workflows::contract::{
    OrderPlan, ParcelStatus, PaymentCreated, PurchaseLineRequest, PurchaseOutcome, RefundDone,
    RefundRequest, ReserveOutcome, ShipmentBooked, ShipmentRequest, TransitionRecord,
    defs as order_activities,
};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::{
    ApplicationFailure,
    activities::{ActivityContext, ActivityError},
};

/// Everything the order activities need: the store and the external systems.
pub struct OrderActivitiesImpl {
    pub store: Store,
    pub market: Alibaba1688,
    pub payments: Payments,
    pub carrier: Carrier,
    pub tracking: Tracking,
    /// Our consolidation warehouse: where sellers ship to.
    pub warehouse: DeliveryAddress,
    /// International service booked with the carrier.
    pub shipping_service: String,
}

/// A failure worth retrying (network, database, a 5xx): Temporal's retry policy decides.
fn transient(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::application(ApplicationFailure::new(anyhow::anyhow!("{e}")))
}

/// A failure no retry can fix.
fn permanent(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!("{e}")))
}

fn store_err(e: StoreError) -> ActivityError {
    match e {
        StoreError::NotFound | StoreError::Corrupt(_) | StoreError::UnknownSku(_) => permanent(e),
        other => transient(other),
    }
}

/// The demo consolidation warehouse (Dongguan), used when no other is configured.
pub fn demo_warehouse() -> DeliveryAddress {
    DeliveryAddress {
        full_name: "Procure Consolidation WH-1".into(),
        mobile: "13800000000".into(),
        post_code: "523000".into(),
        province: "广东省".into(),
        city: "东莞市".into(),
        area: "长安镇".into(),
        town: String::new(),
        address: "振安中路 88 号 3 栋 集运仓".into(),
    }
}

#[activities]
impl OrderActivitiesImpl {
    #[activity(definition = order_activities::LoadOrder)]
    pub async fn load_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<OrderPlan, ActivityError> {
        self.store.plan(&order_id).await.map_err(store_err)
    }

    #[activity(definition = order_activities::ReserveStock)]
    pub async fn reserve_stock(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<ReserveOutcome, ActivityError> {
        self.store
            .ensure_reserved(&order_id)
            .await
            .map_err(store_err)
    }

    #[activity(definition = order_activities::ReleaseStock)]
    pub async fn release_stock(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<u32, ActivityError> {
        let n = self
            .store
            .release_reservations(&order_id)
            .await
            .map_err(store_err)?;
        tracing::info!(%order_id, released = n, "stock released");
        Ok(n)
    }

    #[activity(definition = order_activities::RecordTransition)]
    pub async fn record_transition(
        self: Arc<Self>,
        _ctx: ActivityContext,
        record: TransitionRecord,
    ) -> Result<(), ActivityError> {
        tracing::info!(order_id = %record.order_id, from = %record.from, to = %record.to, reason = %record.reason, "order transition");
        self.store
            .record_transition(&record)
            .await
            .map_err(store_err)
    }

    #[activity(definition = order_activities::CreatePayment)]
    pub async fn create_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<PaymentCreated, ActivityError> {
        if let Some((intent_id, amount, _)) = self
            .store
            .payment_intent(&order_id)
            .await
            .map_err(store_err)?
        {
            return Ok(PaymentCreated { intent_id, amount });
        }
        let plan = self.store.plan(&order_id).await.map_err(store_err)?;
        let intent = self
            .payments
            .create_intent(&format!("{order_id}-charge"), plan.total, &order_id)
            .await
            .map_err(transient)?;
        self.store
            .record_payment_intent(&order_id, &intent.id, plan.total)
            .await
            .map_err(store_err)?;
        tracing::info!(%order_id, intent = %intent.id, amount = %plan.total, "payment intent created");
        Ok(PaymentCreated {
            intent_id: intent.id,
            amount: plan.total,
        })
    }

    #[activity(definition = order_activities::CancelPayment)]
    pub async fn cancel_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<(), ActivityError> {
        let Some((intent_id, _, status)) = self
            .store
            .payment_intent(&order_id)
            .await
            .map_err(store_err)?
        else {
            return Ok(());
        };
        if status == "canceled" {
            return Ok(());
        }
        let intent = self
            .payments
            .get_intent(&intent_id)
            .await
            .map_err(transient)?;
        if intent.status == crate::adapters::payments::IntentStatus::Succeeded {
            // Paid at the last moment: the money must go back, not be left captured.
            let refund = self
                .payments
                .refund(&format!("{order_id}-refund"), &intent_id, intent.amount)
                .await
                .map_err(transient)?;
            tracing::warn!(%order_id, refund = %refund.id, "payment arrived after expiry; refunded");
            self.store
                .set_payment_status(&intent_id, "refunded", Some(intent.amount.minor))
                .await
                .map_err(store_err)?;
            return Ok(());
        }
        self.payments
            .cancel_intent(&intent_id)
            .await
            .map_err(transient)?;
        self.store
            .set_payment_status(&intent_id, "canceled", None)
            .await
            .map_err(store_err)
    }

    #[activity(definition = order_activities::RefundPayment)]
    pub async fn refund_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: RefundRequest,
    ) -> Result<RefundDone, ActivityError> {
        let (intent_id, _, _) = self
            .store
            .payment_intent(&req.order_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| permanent("no payment to refund"))?;
        // One refund per order: the idempotency key makes a retried call return the first refund.
        let refund = self
            .payments
            .refund(&format!("{}-refund", req.order_id), &intent_id, req.amount)
            .await
            .map_err(transient)?;
        self.store
            .set_payment_status(&intent_id, "refunded", Some(refund.amount.minor))
            .await
            .map_err(store_err)?;
        tracing::info!(order_id = %req.order_id, refund = %refund.id, amount = %refund.amount, reason = %req.reason, "refunded");
        Ok(RefundDone {
            refund_id: refund.id,
            amount: refund.amount,
        })
    }

    #[activity(definition = order_activities::PurchaseLine)]
    pub async fn purchase_line(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: PurchaseLineRequest,
    ) -> Result<PurchaseOutcome, ActivityError> {
        let plan = self.store.plan(&req.order_id).await.map_err(store_err)?;
        let line = plan
            .lines
            .iter()
            .find(|l| l.line_no == req.line_no)
            .ok_or_else(|| permanent(format!("order has no line {}", req.line_no)))?;
        if line.platform != Platform::Alibaba1688 {
            return Ok(PurchaseOutcome::Refused {
                reason: format!("no purchasing channel for {}", line.platform.as_str()),
            });
        }
        let max_unit = line.max_unit_price.minor;
        let purchase = PurchaseRequest {
            // Our external id: the same order line never buys twice, whatever retries happen.
            out_order_id: format!("{}-L{}", req.order_id, req.line_no),
            lines: vec![CargoLine {
                offer_id: line.offer_id.clone(),
                spec_id: line.spec_id.clone(),
                quantity: line.quantity,
                max_unit_price_fen: max_unit,
            }],
            address: self.warehouse.clone(),
            max_total_fen: max_unit
                .saturating_mul(i64::from(line.quantity))
                .saturating_add(5_000),
        };
        let attempt = ctx.info().attempt;
        match self.market.purchase(&purchase).await {
            Ok(p) => {
                self.store
                    .record_purchase(
                        &req.order_id,
                        req.line_no,
                        "1688",
                        &p.marketplace_order_id,
                        p.amount_paid_fen,
                    )
                    .await
                    .map_err(store_err)?;
                tracing::info!(order_id = %req.order_id, line = req.line_no, attempt, marketplace_order = %p.marketplace_order_id, adopted = p.adopted, "purchased on 1688");
                Ok(PurchaseOutcome::Purchased {
                    platform: "1688".into(),
                    marketplace_order_id: p.marketplace_order_id,
                    paid: Money::new(p.amount_paid_fen, Currency::CNY),
                    adopted: p.adopted,
                })
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(order_id = %req.order_id, line = req.line_no, attempt, error = %e, "purchase attempt failed; will retry");
                Err(transient(e))
            }
            Err(e) => {
                tracing::warn!(order_id = %req.order_id, line = req.line_no, attempt, error = %e, "purchase refused");
                Ok(PurchaseOutcome::Refused {
                    reason: refusal(&e),
                })
            }
        }
    }

    #[activity(definition = order_activities::BookShipment)]
    pub async fn book_shipment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: ShipmentRequest,
    ) -> Result<ShipmentBooked, ActivityError> {
        if let Some(number) = self
            .store
            .tracking_number(&req.order_id)
            .await
            .map_err(store_err)?
        {
            return Ok(ShipmentBooked {
                carrier: "SANDBOX-EXP".into(),
                tracking_number: number,
            });
        }
        let (_, country) = self
            .store
            .shipping_address(&req.order_id)
            .await
            .map_err(store_err)?;
        let shipment = self
            .carrier
            .book(
                &req.order_id,
                &self.shipping_service,
                req.weight_g,
                &country,
            )
            .await
            .map_err(transient)?;
        let registered = self
            .tracking
            .register(&[TrackRef::new(shipment.tracking_number.clone())])
            .await
            .map_err(transient)?;
        if let Some(r) = registered
            .rejected
            .iter()
            .find(|r| !r.is_already_registered())
        {
            return Err(transient(format!(
                "tracking registration rejected: {}",
                r.message
            )));
        }
        self.store
            .record_shipment(&req.order_id, &shipment.carrier, &shipment.tracking_number)
            .await
            .map_err(store_err)?;
        tracing::info!(order_id = %req.order_id, tracking = %shipment.tracking_number, "shipment booked");
        Ok(ShipmentBooked {
            carrier: shipment.carrier,
            tracking_number: shipment.tracking_number,
        })
    }

    #[activity(definition = order_activities::TrackParcel)]
    pub async fn track_parcel(
        self: Arc<Self>,
        _ctx: ActivityContext,
        tracking_number: String,
    ) -> Result<ParcelStatus, ActivityError> {
        let tracked = self
            .tracking
            .track(&[TrackRef::new(tracking_number.clone())])
            .await
            .map_err(transient)?;
        let Some(st) = tracked
            .statuses
            .into_iter()
            .find(|s| s.number == tracking_number)
        else {
            return Ok(ParcelStatus {
                status: "NotFound".into(),
                description: "no tracking information yet".into(),
            });
        };
        let description = st
            .events
            .first()
            .map(|e| e.description.clone())
            .unwrap_or_default();
        Ok(ParcelStatus {
            status: format!("{:?}", st.status),
            description,
        })
    }
}

/// Human reason for a permanent refusal, as it appears on the order timeline.
fn refusal(e: &MarketError) -> String {
    match e {
        MarketError::OutOfStock => "seller is out of stock".into(),
        MarketError::ListingGone => "listing no longer exists".into(),
        other => other.to_string(),
    }
}

/// The bench baseline's activity: returns its input and touches nothing.
pub struct NoopActivitiesImpl;

#[activities]
impl NoopActivitiesImpl {
    #[activity(definition = order_activities::Noop)]
    pub async fn noop(_ctx: ActivityContext, step: u32) -> Result<u32, ActivityError> {
        Ok(step)
    }
}
