//! Implementation of the fulfilment activities (`procure_workflows::contract::FulfilmentActivities`):
//! storage clock and reminders, disposal, storage-extension and shipping-settlement charges,
//! parcel settlement refunds, carrier booking. Each is idempotent (keyed by ids the workflow
//! chooses), so Temporal may retry any of them.

use crate::errors::{permanent, store_err, transient};
use procure_adapters::{Carrier, Payments, TrackRef, Tracking, adapter_err, carrier::Shipment};
use procure_domain::{
    Currency, FxRate, Money,
    clock::now_ms,
    events::{Item, StorageReminder, StoredGoods},
    status::{ChargeKind, ChargeStatus, ParcelStatus, SettlementOutcome, WarehouseItemStatus},
};
use procure_store::{
    Store,
    orders::{OrderRecord, quoted_rate},
    payments::Charge,
};
use procure_workflows::contract::{
    ChargeCreated, ChargePaid, ChargeWithdrawal, ExtendStorage, ParcelSettled, ParcelStatusUpdate,
    RefundDone, ShipmentBooked, StorageExtension, StorageReminderRequest,
    fulfilment_defs as fulfilment_activities,
};
use std::sync::Arc;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub struct FulfilmentActivitiesImpl {
    pub store: Store,
    pub payments: Payments,
    pub carrier: Carrier,
    pub tracking: Tracking,
    /// What a day of storage beyond the free period costs per order (CNY).
    pub storage_fee_per_day: Money,
}

/// Storage beyond the free period: ¥1.00 per order and day unless configured otherwise.
pub const DEFAULT_STORAGE_FEE_PER_DAY_FEN: i64 = 100;

impl FulfilmentActivitiesImpl {
    /// The exchange rate the order's quote locked (CNY → the order's currency).
    async fn order_rate(&self, order: &OrderRecord) -> Result<FxRate, ActivityError> {
        let quote = self.store.quote(&order.quote_id).await.map_err(store_err)?;
        quoted_rate(&quote.body, order.total.currency).map_err(permanent)
    }

    /// A day of storage beyond the free period for `order`, in its currency (at least one
    /// minor unit, as a storage charge is).
    async fn daily_fee(&self, order: &OrderRecord) -> Result<Money, ActivityError> {
        let fx = self.order_rate(order).await?;
        let fee = self.storage_fee_per_day.convert(&fx).map_err(permanent)?;
        Ok(Money::new(fee.minor.max(1), fee.currency))
    }

    /// Record a charge and open its payment intent; a retry finds both.
    async fn open_charge(
        &self,
        id: &str,
        workflow_id: &str,
        kind: ChargeKind,
        amount: Money,
        detail: &str,
        reference: &str,
    ) -> Result<ChargeCreated, ActivityError> {
        let charge = self
            .store
            .insert_charge(id, workflow_id, kind, amount, detail)
            .await
            .map_err(store_err)?;
        let intent_id = match charge.intent_id {
            Some(i) => i,
            None => {
                let intent = self
                    .payments
                    .create_intent(&format!("{id}-charge"), charge.amount, reference)
                    .await
                    .map_err(adapter_err)?;
                self.store
                    .set_charge_intent(id, &intent.id)
                    .await
                    .map_err(store_err)?;
                intent.id
            }
        };
        tracing::info!(charge = %id, %kind, amount = %charge.amount, "charge opened");
        Ok(ChargeCreated {
            charge_id: charge.id,
            intent_id,
            amount: charge.amount,
        })
    }
}

/// Book the international leg (the carrier deduplicates bookings by our `reference`) and
/// register its tracking number with 17TRACK (a number already registered is fine).
pub(crate) async fn book_and_track(
    carrier: &Carrier,
    tracking: &Tracking,
    reference: &str,
    service: &str,
    weight_g: u32,
    country: &str,
) -> Result<Shipment, ActivityError> {
    let shipment = carrier
        .book(reference, service, weight_g, country)
        .await
        .map_err(adapter_err)?;
    let registered = tracking
        .register(&[TrackRef::new(shipment.tracking_number.clone())])
        .await
        .map_err(adapter_err)?;
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
    Ok(shipment)
}

fn paid(c: &Charge, intent_id: String) -> ChargeWithdrawal {
    ChargeWithdrawal::Paid(ChargePaid {
        charge_id: c.id.clone(),
        intent_id,
        amount: c.amount,
    })
}

#[activities]
impl FulfilmentActivitiesImpl {
    #[activity(definition = fulfilment_activities::StorageDeadline)]
    pub async fn storage_deadline(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<i64, ActivityError> {
        Ok(self
            .store
            .warehouse_item(&order_id)
            .await
            .map_err(store_err)?
            .stored_until_ms)
    }

    #[activity(definition = fulfilment_activities::StorageReminder)]
    pub async fn storage_reminder(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: StorageReminderRequest,
    ) -> Result<bool, ActivityError> {
        let item = self
            .store
            .warehouse_item(&req.order_id)
            .await
            .map_err(store_err)?;
        let horizon = now_ms() + (req.window_secs as i64) * 1000;
        // Every item of the customer that runs out soon, in one message: nothing of theirs
        // expires unnoticed, one item at a time.
        let expiring: Vec<_> = self
            .store
            .warehouse_items(&item.customer_id, Some(WarehouseItemStatus::Stored))
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|i| i.stored_until_ms <= horizon)
            .collect();
        // One message per customer, day and list of items: a second item running out later the
        // same day gets its own (complete) reminder, a repeat of the same list does not. (The
        // key is the one the messages had before the event log, so none is sent twice across
        // the upgrade.)
        let day = now_ms() / DAY_MS;
        let digest = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            for i in &expiring {
                h.update(
                    format!(
                        "order {} (free storage until {} ms)",
                        i.order_id, i.stored_until_ms
                    )
                    .as_bytes(),
                );
            }
            hex::encode(&h.finalize()[..8])
        };
        let mut orders = Vec::with_capacity(expiring.len());
        for i in &expiring {
            let order = self.store.order(&i.order_id).await.map_err(store_err)?;
            orders.push(StoredGoods {
                order_id: i.order_id.clone(),
                items: order
                    .lines
                    .iter()
                    .map(|l| Item {
                        line_no: l.line_no,
                        sku: l.sku.clone(),
                        quantity: l.quantity,
                    })
                    .collect(),
                free_storage_until_ms: i.stored_until_ms,
                extension_fee_per_day: self.daily_fee(&order).await.ok(),
            });
        }
        let reminder = StorageReminder {
            customer_id: item.customer_id.clone(),
            first_deadline_ms: expiring
                .iter()
                .map(|i| i.stored_until_ms)
                .min()
                .unwrap_or(item.stored_until_ms),
            orders,
            legacy_message: None,
        };
        let sent = self
            .store
            .storage_reminder_once(
                &format!("storage-{}-{day}-{digest}", item.customer_id),
                &reminder,
            )
            .await
            .map_err(store_err)?;
        if sent {
            tracing::info!(customer = %item.customer_id, items = expiring.len(), "storage reminder sent");
        }
        Ok(sent)
    }

    #[activity(definition = fulfilment_activities::CreateStorageCharge)]
    pub async fn create_storage_charge(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: StorageExtension,
    ) -> Result<ChargeCreated, ActivityError> {
        let order = self.store.order(&req.order_id).await.map_err(store_err)?;
        let fx = self.order_rate(&order).await?;
        let fee = self
            .storage_fee_per_day
            .times(req.days)
            .and_then(|f| f.convert(&fx))
            .map_err(permanent)?;
        let fee = Money::new(fee.minor.max(1), fee.currency);
        self.open_charge(
            &req.charge_id,
            &procure_workflows::order_workflow_id(&req.order_id),
            ChargeKind::StorageExtension,
            fee,
            &format!("storage extension by {} day(s)", req.days),
            &req.order_id,
        )
        .await
    }

    #[activity(definition = fulfilment_activities::ExtendStorage)]
    pub async fn extend_storage(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: ExtendStorage,
    ) -> Result<i64, ActivityError> {
        let item = self
            .store
            .warehouse_item(&req.order_id)
            .await
            .map_err(store_err)?;
        // Idempotent under retries: counted from the end the workflow saw when it was paid (or
        // from now, if that is later), never from a row a previous attempt already extended.
        let base = if req.from_ms > 0 {
            req.from_ms
        } else {
            item.stored_until_ms
        };
        let until = base.max(now_ms()) + i64::from(req.days) * DAY_MS;
        self.store
            .extend_storage(&req.order_id, until)
            .await
            .map_err(store_err)?;
        Ok(self
            .store
            .warehouse_item(&req.order_id)
            .await
            .map_err(store_err)?
            .stored_until_ms)
    }

    #[activity(definition = fulfilment_activities::DisposeItem)]
    pub async fn dispose_item(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<bool, ActivityError> {
        let done = self
            .store
            .dispose_item(&order_id)
            .await
            .map_err(store_err)?;
        if done {
            tracing::info!(%order_id, "stored goods disposed");
        }
        Ok(done)
    }

    #[activity(definition = fulfilment_activities::WithdrawCharge)]
    pub async fn withdraw_charge(
        self: Arc<Self>,
        _ctx: ActivityContext,
        charge_id: String,
    ) -> Result<ChargeWithdrawal, ActivityError> {
        let charge = self.store.charge(&charge_id).await.map_err(store_err)?;
        let Some(intent_id) = charge.intent_id.clone() else {
            self.store
                .set_charge_status(
                    &charge_id,
                    ChargeStatus::Withdrawn,
                    &[ChargeStatus::Pending],
                )
                .await
                .map_err(store_err)?;
            return Ok(ChargeWithdrawal::Withdrawn);
        };
        if matches!(charge.status.as_str(), "paid" | "refunded") {
            return Ok(paid(&charge, intent_id));
        }
        if self
            .payments
            .withdraw_intent(&intent_id)
            .await
            .map_err(adapter_err)?
        {
            self.store
                .set_charge_status(
                    &charge_id,
                    ChargeStatus::Paid,
                    &[ChargeStatus::Pending, ChargeStatus::Withdrawn],
                )
                .await
                .map_err(store_err)?;
            return Ok(paid(&charge, intent_id));
        }
        self.store
            .set_charge_status(
                &charge_id,
                ChargeStatus::Withdrawn,
                &[ChargeStatus::Pending],
            )
            .await
            .map_err(store_err)?;
        Ok(ChargeWithdrawal::Withdrawn)
    }

    #[activity(definition = fulfilment_activities::RecordParcelStatus)]
    pub async fn record_parcel_status(
        self: Arc<Self>,
        _ctx: ActivityContext,
        update: ParcelStatusUpdate,
    ) -> Result<(), ActivityError> {
        // A stage the store does not know never moved a parcel; it still does not.
        let Ok(status) = update.status.as_str().parse::<ParcelStatus>() else {
            tracing::warn!(parcel_id = %update.parcel_id, stage = %update.status, "parcel stage without a stored status; ignored");
            return Ok(());
        };
        self.store
            .set_parcel_status(&update.parcel_id, status)
            .await
            .map_err(store_err)
    }

    #[activity(definition = fulfilment_activities::SettleParcel)]
    pub async fn settle_parcel(
        self: Arc<Self>,
        _ctx: ActivityContext,
        parcel_id: String,
    ) -> Result<ParcelSettled, ActivityError> {
        let parcel = self.store.parcel(&parcel_id).await.map_err(store_err)?;
        let currency: Currency = parcel.currency;
        let mut refunds = Vec::new();
        let mut charge_total = Money::zero(currency);
        let mut absorbed = Money::zero(currency);
        for s in &parcel.settlements {
            match s.outcome {
                SettlementOutcome::Refund => {
                    let (intent_id, _, _) = self
                        .store
                        .payment_intent(&s.order_id)
                        .await
                        .map_err(store_err)?
                        .ok_or_else(|| permanent(format!("order {} has no payment", s.order_id)))?;
                    // One refund per order and parcel: the key returns the first on a retry.
                    let refund = self
                        .payments
                        .refund(
                            &format!("{parcel_id}-{}-shipping-refund", s.order_id),
                            &intent_id,
                            s.amount,
                        )
                        .await
                        .map_err(adapter_err)?;
                    self.store
                        .set_settlement_refund(&parcel_id, &s.order_id, &refund.id, refund.amount)
                        .await
                        .map_err(store_err)?;
                    refunds.push(RefundDone {
                        refund_id: refund.id,
                        amount: refund.amount,
                    });
                }
                SettlementOutcome::Charge => {
                    charge_total = charge_total.checked_add(s.amount).map_err(permanent)?;
                }
                SettlementOutcome::Absorbed => {
                    absorbed = absorbed.checked_add(s.amount).map_err(permanent)?;
                }
                SettlementOutcome::Even => {}
            }
        }
        let charge = if charge_total.minor > 0 {
            Some(
                self.open_charge(
                    &format!("ps_{parcel_id}"),
                    &procure_workflows::parcel_workflow_id(&parcel_id),
                    ChargeKind::ShippingSettlement,
                    charge_total,
                    "shipping, duty and insurance above the quotes' estimate",
                    &parcel_id,
                )
                .await?,
            )
        } else {
            None
        };
        Ok(ParcelSettled {
            refunds,
            charge,
            absorbed: (absorbed.minor > 0).then_some(absorbed),
        })
    }

    #[activity(definition = fulfilment_activities::BookParcel)]
    pub async fn book_parcel(
        self: Arc<Self>,
        _ctx: ActivityContext,
        parcel_id: String,
    ) -> Result<ShipmentBooked, ActivityError> {
        let parcel = self.store.parcel(&parcel_id).await.map_err(store_err)?;
        if let (Some(carrier), Some(tracking_number)) = (parcel.carrier, parcel.tracking_number) {
            return Ok(ShipmentBooked {
                carrier,
                tracking_number,
            });
        }
        let weight = parcel
            .weight_g
            .and_then(|w| u32::try_from(w).ok())
            .ok_or_else(|| permanent("the parcel has not been packed"))?;
        let shipment = book_and_track(
            &self.carrier,
            &self.tracking,
            &parcel_id,
            &parcel.shipping_line,
            weight,
            &parcel.destination_country,
        )
        .await?;
        self.store
            .set_parcel_shipment(&parcel_id, &shipment.carrier, &shipment.tracking_number)
            .await
            .map_err(store_err)?;
        tracing::info!(%parcel_id, tracking = %shipment.tracking_number, "parcel booked");
        Ok(ShipmentBooked {
            carrier: shipment.carrier,
            tracking_number: shipment.tracking_number,
        })
    }
}
