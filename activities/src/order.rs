//! Implementation of the order activities declared in `procure_workflows::contract`. Each one
//! is idempotent (keyed by the order id, line number or an external id we choose), so Temporal
//! may retry any of them after a timeout without doubling an effect.

use crate::errors::{permanent, store_err, transient};
use procure_adapters::failure::{adapter_err, adapter_err_while};
use procure_adapters::payments::{IntentStatus, PaymentIntent};
use procure_adapters::{
    BuyerMarketplace, CargoLine, Carrier, DeliveryAddress, MarketError, Marketplaces, Payments,
    PurchaseRequest, Purchased, TrackRef, Tracking, purchase,
};
use procure_domain::procurement::{Candidate, rank};
use procure_domain::{
    Currency, Money,
    order::{Platform, charge_key},
    quote::price_change_supplement,
};
use procure_domain::{clock::now_ms, events::RefundKind, seal::Sealer, status::PriceChangeStatus};
use procure_metrics::PurchaseOutcome;
use procure_store::{
    Store, StoreError,
    accounts::AccountOutcome,
    orders::{IntentRecord, quoted_rate},
    outbox::CREATE_PAYMENT,
    payments::RefundRecord,
    price_changes::PriceChange,
};
use procure_workflows::contract::{
    CandidatesRequest, MarketplaceCancelOutcome, MarketplaceCancelRequest, OfferOutcome,
    OfferPurchase, PaymentCheck, PaymentVerdict, PriceChangeProposal, PriceChangeRequest,
    PurchaserTaskRequest, SellerShipmentReport, SellerShipmentsRequest,
};
use procure_workflows::contract::{
    ChargePaid, ChargeWithdrawal, OpenRequest, Opened, OrderPlan, ParcelStatus, PaymentCreated,
    RefundDone, RefundRequest, ReserveOutcome, TransitionRecord, defs as order_activities,
};
use std::sync::Arc;
use std::{collections::HashMap, sync::Mutex};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Everything the order activities need: the store and the external systems.
pub struct OrderActivitiesImpl {
    pub store: Store,
    pub payments: Payments,
    pub carrier: Carrier,
    pub tracking: Tracking,
    /// Our consolidation warehouse: where sellers ship to.
    pub warehouse: DeliveryAddress,
    /// International service booked with the carrier.
    pub shipping_service: String,
    /// Opens buyer-account credentials sealed in the store.
    pub sealer: Sealer,
    /// The platform registry: endpoint and app credentials per platform; each buyer account
    /// adds its access token.
    pub marketplaces: Marketplaces,
    /// Marketplace clients per buyer account, built on first use.
    pub clients: Mutex<HashMap<String, MarketClient>>,
}

impl OrderActivitiesImpl {
    /// The order's payment intent: the one the dispatcher opened right after accept, or one
    /// created now under the same charge key (the provider answers the same intent).
    pub async fn ensure_payment(&self, order_id: &str) -> Result<PaymentCreated, ActivityError> {
        if let Some((intent_id, amount, _)) = self
            .store
            .payment_intent(order_id)
            .await
            .map_err(store_err)?
        {
            return Ok(PaymentCreated { intent_id, amount });
        }
        let plan = self.store.plan(order_id).await.map_err(store_err)?;
        let intent = self
            .payments
            .create_intent(&charge_key(order_id), plan.total, order_id)
            .await
            .map_err(adapter_err)?;
        match self
            .store
            .record_payment_intent(order_id, &intent.id, plan.total)
            .await
            .map_err(store_err)?
        {
            IntentRecord::Recorded => {
                tracing::info!(%order_id, intent = %intent.id, amount = %plan.total, "payment intent created");
            }
            IntentRecord::Held(held) if held == intent.id => {}
            IntentRecord::Held(held) => {
                // Not ours to keep: the order holds another intent.
                self.payments
                    .cancel_intent(&intent.id)
                    .await
                    .map_err(adapter_err)?;
                tracing::error!(%order_id, intent = %intent.id, %held, "the provider answered another intent for the order's charge key; cancelled it");
                return Ok(PaymentCreated {
                    intent_id: held,
                    amount: plan.total,
                });
            }
            IntentRecord::Closed => {
                self.payments
                    .cancel_intent(&intent.id)
                    .await
                    .map_err(adapter_err)?;
                return Err(permanent(
                    "the order's payment is closed; no intent is opened",
                ));
            }
        }
        Ok(PaymentCreated {
            intent_id: intent.id,
            amount: plan.total,
        })
    }
}

/// Tries of `open_order` that wait for the dispatcher's payments lane before opening the
/// order's intent themselves.
const LANE_PATIENCE_ATTEMPTS: u32 = 4;

/// A buyer-side marketplace client bound to one account.
pub type MarketClient = Arc<dyn BuyerMarketplace>;

/// How long an account that met risk control sits out.
const RISK_COOL_DOWN_MS: i64 = 30 * 60 * 1000;

/// Account id used when a platform has no pool configured: the adapter's own credentials.
pub const DEFAULT_ACCOUNT: &str = "default";

impl OrderActivitiesImpl {
    /// The client for `account` on `platform`, with that account's access token (shared by
    /// purchasing and cancellation through the client cache).
    pub(crate) async fn client(
        &self,
        platform: Platform,
        account: &str,
    ) -> Result<MarketClient, ActivityError> {
        let key = format!("{}:{account}", platform.as_str());
        if let Some(c) = self.clients.lock().expect("client cache").get(&key) {
            return Ok(c.clone());
        }
        let token = if account == DEFAULT_ACCOUNT {
            None
        } else {
            Some(
                self.store
                    .account_token(account, &self.sealer)
                    .await
                    .map_err(store_err)?,
            )
        };
        let client = self
            .marketplaces
            .buyer_for(platform, token)
            .map_err(permanent)?
            .ok_or_else(|| permanent(format!("{} has no buyer API", platform.as_str())))?;
        self.clients
            .lock()
            .expect("client cache")
            .insert(key, client.clone());
        Ok(client)
    }

    /// Choose the buyer account for one attempt: the operator's choice, else a weighted claim
    /// from the pool; platforms without a pool use the adapter's own credentials.
    async fn choose_account(
        &self,
        platform: Platform,
        forced: Option<&str>,
        excluded: &[String],
    ) -> Result<Option<String>, ActivityError> {
        let all = self
            .store
            .accounts(Some(platform))
            .await
            .map_err(store_err)?;
        if all.is_empty() {
            return Ok((!excluded.iter().any(|e| e == DEFAULT_ACCOUNT))
                .then(|| DEFAULT_ACCOUNT.to_owned()));
        }
        let mut exclude: Vec<String> = excluded.to_vec();
        if let Some(f) = forced {
            exclude.extend(all.iter().filter(|a| a.id != f).map(|a| a.id.clone()));
        }
        let claimed = self
            .store
            .claim_account(platform, &exclude, now_ms(), fastrand::f64())
            .await
            .map_err(store_err)?;
        Ok(claimed.map(|a| a.id))
    }

    /// The marketplace request for one offer of a line, under our stable external id.
    fn offer_request(&self, req: &OfferPurchase) -> PurchaseRequest {
        let cand = &req.candidate;
        PurchaseRequest {
            out_order_id: external_id(&req.order_id, req.line_no, cand.platform, &cand.offer_id),
            lines: vec![CargoLine {
                offer_id: cand.offer_id.clone(),
                spec_id: cand.spec_id.clone(),
                quantity: req.quantity,
                max_unit_price_fen: req.max_unit_fen,
            }],
            address: self.warehouse.clone(),
            max_total_fen: req
                .max_unit_fen
                .saturating_mul(i64::from(req.quantity))
                .saturating_add(cand.domestic_shipping_fen.max(0) + 5_000),
        }
    }

    /// Book a successful purchase: the purchase row, the supplier's and the account's records.
    async fn bought(
        &self,
        req: &OfferPurchase,
        account: String,
        p: Purchased,
    ) -> Result<OfferOutcome, ActivityError> {
        let cand = &req.candidate;
        self.store
            .record_purchase(
                &req.order_id,
                req.line_no,
                cand.platform.as_str(),
                &p.marketplace_order_id,
                p.amount_paid_fen,
            )
            .await
            .map_err(store_err)?;
        self.store
            .record_offer_attempt(cand.platform, &cand.offer_id, true)
            .await
            .map_err(store_err)?;
        if account != DEFAULT_ACCOUNT {
            self.store
                .record_account_outcome(&account, AccountOutcome::Success)
                .await
                .map_err(store_err)?;
        }
        // Observability only: a failed read loses the latency sample, never the purchase.
        let accepted = self.store.order(&req.order_id).await.ok();
        procure_metrics::global().purchased(
            cand.platform.as_str(),
            accepted.map(|o| o.created_at_ms),
            now_ms(),
        );
        tracing::info!(order_id = %req.order_id, line = req.line_no, platform = cand.platform.as_str(), offer = %cand.offer_id, %account, marketplace_order = %p.marketplace_order_id, adopted = p.adopted, "purchased");
        Ok(OfferOutcome::Purchased {
            platform: cand.platform.as_str().into(),
            marketplace_order_id: p.marketplace_order_id,
            paid: Money::new(p.amount_paid_fen, Currency::CNY),
            adopted: p.adopted,
            account,
        })
    }
}

/// Our external id for buying `line` from one supplier: stable across attempts (so a retry finds
/// the order an earlier attempt placed) and ≤ 64 characters.
pub fn external_id(order_id: &str, line_no: u32, platform: Platform, offer_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in platform.as_str().bytes().chain(offer_id.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{order_id}-L{line_no}-{:08x}", h as u32)
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

impl OrderActivitiesImpl {
    /// The fulfilment activities, sharing this worker's store and external clients.
    pub fn fulfilment(&self) -> crate::fulfilment::FulfilmentActivitiesImpl {
        crate::fulfilment::FulfilmentActivitiesImpl {
            store: self.store.clone(),
            payments: self.payments.clone(),
            carrier: self.carrier.clone(),
            tracking: self.tracking.clone(),
            storage_fee_per_day: Money::new(
                crate::fulfilment::DEFAULT_STORAGE_FEE_PER_DAY_FEN,
                Currency::CNY,
            ),
        }
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

    #[activity(definition = order_activities::OpenOrder)]
    pub async fn open_order(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: OpenRequest,
    ) -> Result<Opened, ActivityError> {
        let order_id = req.order_id.as_str();
        self.store
            .record_transition(&req.accepted)
            .await
            .map_err(store_err)?;
        let plan = self.store.plan(order_id).await.map_err(store_err)?;
        if let ReserveOutcome::Insufficient {
            sku,
            requested,
            available,
        } = self
            .store
            .ensure_reserved(order_id)
            .await
            .map_err(store_err)?
        {
            return Ok(Opened::OutOfStock {
                plan,
                sku,
                requested,
                available,
            });
        }
        let payment = match self
            .store
            .payment_intent(order_id)
            .await
            .map_err(store_err)?
        {
            Some((intent_id, amount, _)) => PaymentCreated { intent_id, amount },
            // The dispatcher's payments lane is opening it: wait a few tries (the step's
            // backoff, about 3.5 s) rather than spend a second provider call on the same
            // intent, then open it here (the same intent, under the order's charge key).
            None if ctx.info().attempt < LANE_PATIENCE_ATTEMPTS
                && self
                    .store
                    .outbox_waits_on(i64::MAX, order_id, CREATE_PAYMENT)
                    .await
                    .map_err(store_err)? =>
            {
                return Err(transient(
                    "the dispatcher is opening the order's payment intent",
                ));
            }
            None => self.ensure_payment(order_id).await?,
        };
        let pending = TransitionRecord {
            order_id: order_id.to_owned(),
            seq: req.accepted.seq + 1,
            from: req.accepted.to,
            to: procure_domain::OrderState::PendingPayment,
            at_ms: now_ms(),
            reason: format!(
                "payment {} created for {}",
                payment.intent_id, payment.amount
            ),
        };
        tracing::info!(%order_id, from = %pending.from, to = %pending.to, reason = %pending.reason, "order transition");
        self.store
            .record_transition(&pending)
            .await
            .map_err(store_err)?;
        Ok(Opened::Payable {
            plan,
            payment,
            pending,
        })
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

    #[activity(definition = order_activities::RecordTransitions)]
    pub async fn record_transitions(
        self: Arc<Self>,
        _ctx: ActivityContext,
        records: Vec<TransitionRecord>,
    ) -> Result<(), ActivityError> {
        for record in &records {
            tracing::info!(order_id = %record.order_id, from = %record.from, to = %record.to, reason = %record.reason, "order transition");
        }
        self.store
            .record_transitions(&records)
            .await
            .map_err(store_err)
    }

    #[activity(definition = order_activities::CreatePayment)]
    pub async fn create_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<PaymentCreated, ActivityError> {
        self.ensure_payment(&order_id).await
    }

    #[activity(definition = order_activities::CancelPayment)]
    pub async fn cancel_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<(), ActivityError> {
        // Closed first: an intent the dispatcher opens from now on is never the order's.
        self.store
            .close_payment(&order_id)
            .await
            .map_err(store_err)?;
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
            .map_err(adapter_err)?;
        if intent.status == IntentStatus::Canceled {
            // Cancelled at the provider already (a crash before our record was written).
            return self
                .store
                .set_payment_status(&intent_id, "canceled", None)
                .await
                .map_err(store_err);
        }
        if intent.status == IntentStatus::Succeeded {
            // Paid at the last moment (or not as owed): what the provider received goes back.
            let refund = self
                .payments
                .refund(
                    &format!("{order_id}-refund"),
                    &intent_id,
                    intent.amount_received,
                )
                .await
                .map_err(adapter_err)?;
            tracing::warn!(%order_id, refund = %refund.id, "payment arrived after expiry; refunded");
            self.store
                .record_refund(
                    &order_id,
                    &intent_id,
                    &RefundRecord {
                        refund_id: &refund.id,
                        amount: intent.amount_received,
                        kind: RefundKind::LatePayment,
                        reason: "the payment arrived after the order stopped waiting for it",
                    },
                )
                .await
                .map_err(store_err)?;
            return Ok(());
        }
        self.payments
            .cancel_intent(&intent_id)
            .await
            .map_err(adapter_err)?;
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
        // One refund per order (and per dropped line): the idempotency key makes a retried call
        // return the first refund.
        let key = match &req.part {
            None => format!("{}-refund", req.order_id),
            Some(part) => format!("{}-refund-{part}", req.order_id),
        };
        let refund = self
            .payments
            .refund(&key, &intent_id, req.amount)
            .await
            .map_err(adapter_err)?;
        self.store
            .record_refund(
                &req.order_id,
                &intent_id,
                &RefundRecord {
                    refund_id: &refund.id,
                    amount: refund.amount,
                    kind: if req.part.is_some() {
                        RefundKind::Line
                    } else {
                        RefundKind::Order
                    },
                    reason: &req.reason,
                },
            )
            .await
            .map_err(store_err)?;
        tracing::info!(order_id = %req.order_id, refund = %refund.id, amount = %refund.amount, reason = %req.reason, "refunded");
        Ok(RefundDone {
            refund_id: refund.id,
            amount: refund.amount,
        })
    }

    #[activity(definition = order_activities::ProcurementCandidates)]
    pub async fn procurement_candidates(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: CandidatesRequest,
    ) -> Result<Vec<Candidate>, ActivityError> {
        let plan = self.store.plan(&req.order_id).await.map_err(store_err)?;
        let line = plan
            .lines
            .iter()
            .find(|l| l.line_no == req.line_no)
            .ok_or_else(|| permanent(format!("order has no line {}", req.line_no)))?;
        let mut candidates = self.store.candidates(&line.sku).await.map_err(store_err)?;
        if candidates.is_empty() {
            // No price snapshots yet: the offer the quote was made from is the one candidate.
            let listing = self.store.listing(&line.sku).await.map_err(store_err)?;
            candidates.push(Candidate {
                platform: line.platform,
                offer_id: line.offer_id.clone(),
                spec_id: line.spec_id.clone(),
                unit_price_fen: line.unit_price.minor,
                domestic_shipping_fen: listing.domestic_shipping_fen,
                reliability_bps: 9_000,
                stock: None,
            });
        }
        if let Some(only) = &req.only_offer {
            candidates.retain(|c| &c.offer_id == only);
        }
        Ok(rank(&candidates, line.quantity))
    }

    #[activity(definition = order_activities::PurchaseOffer)]
    pub async fn purchase_offer(
        self: Arc<Self>,
        ctx: ActivityContext,
        req: OfferPurchase,
    ) -> Result<OfferOutcome, ActivityError> {
        let cand = &req.candidate;
        let attempt =
            |outcome| procure_metrics::global().purchase_attempt(cand.platform.as_str(), outcome);
        if cand.platform == Platform::Pinduoduo {
            return Ok(OfferOutcome::MoveOn {
                reason: "Pinduoduo is an assisted channel (purchaser task), not a buyer API".into(),
            });
        }
        let offer = self.offer_request(&req);
        // Risk control on one account moves the attempt to another account; it is not a
        // supplier failure and does not use up one of the supplier's attempts.
        let mut excluded = Vec::new();
        loop {
            let Some(account) = self
                .choose_account(cand.platform, req.account.as_deref(), &excluded)
                .await?
            else {
                attempt(PurchaseOutcome::NoAccount);
                return Ok(OfferOutcome::NoAccount {
                    reason: format!(
                        "no {} buyer account available (capped, cooling down or restricted)",
                        cand.platform.as_str()
                    ),
                });
            };
            let client = self.client(cand.platform, &account).await?;
            let result = purchase(client.as_ref(), &offer).await;
            let pooled = account != DEFAULT_ACCOUNT;
            match result {
                Ok(p) => return self.bought(&req, account, p).await,
                Err(MarketError::AccountRestricted) => {
                    attempt(PurchaseOutcome::AccountRestricted);
                    tracing::warn!(order_id = %req.order_id, %account, platform = cand.platform.as_str(), "account restricted by risk control; cooling down");
                    if pooled {
                        self.store
                            .record_account_outcome(
                                &account,
                                AccountOutcome::RiskControl {
                                    cool_for_ms: RISK_COOL_DOWN_MS,
                                },
                            )
                            .await
                            .map_err(store_err)?;
                    }
                    if req.account.is_some() {
                        return Ok(OfferOutcome::NoAccount {
                            reason: format!("account {account} is restricted by risk control"),
                        });
                    }
                    excluded.push(account);
                }
                Err(e @ (MarketError::OutOfStock | MarketError::ListingGone)) => {
                    attempt(PurchaseOutcome::Unavailable);
                    self.store
                        .record_offer_attempt(cand.platform, &cand.offer_id, false)
                        .await
                        .map_err(store_err)?;
                    return Ok(OfferOutcome::MoveOn {
                        reason: refusal(&e),
                    });
                }
                Err(MarketError::PriceAboveTolerance { quoted, max }) => {
                    attempt(PurchaseOutcome::PriceAbove);
                    return Ok(OfferOutcome::PriceAbove {
                        quoted_unit_fen: quoted,
                        reason: format!("price {quoted} fen above the limit {max} fen"),
                    });
                }
                Err(e) if e.is_retryable() => {
                    attempt(PurchaseOutcome::Retryable);
                    if pooled {
                        self.store
                            .record_account_outcome(&account, AccountOutcome::Failure)
                            .await
                            .map_err(store_err)?;
                    }
                    tracing::warn!(order_id = %req.order_id, attempt = ctx.info().attempt, %account, error = %e, "purchase attempt failed");
                    return Err(transient(format!("{e} (account {account})")));
                }
                Err(e) => {
                    attempt(PurchaseOutcome::Rejected);
                    self.store
                        .record_offer_attempt(cand.platform, &cand.offer_id, false)
                        .await
                        .map_err(store_err)?;
                    return Ok(OfferOutcome::MoveOn {
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    #[activity(definition = order_activities::SettleExisting)]
    pub async fn settle_existing(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: OfferPurchase,
    ) -> Result<OfferOutcome, ActivityError> {
        let cand = &req.candidate;
        if cand.platform == Platform::Pinduoduo {
            return Ok(OfferOutcome::MoveOn {
                reason: "no buyer API to hold an order".into(),
            });
        }
        let offer = self.offer_request(&req);
        // A lookup uses no order budget: any account of the app (or the adapter's own) will do.
        let account = match &req.account {
            Some(a) => a.clone(),
            None => self
                .store
                .accounts(Some(cand.platform))
                .await
                .map_err(store_err)?
                .into_iter()
                .find(|a| a.status == "active")
                .map(|a| a.id)
                .unwrap_or_else(|| DEFAULT_ACCOUNT.to_owned()),
        };
        let client = self.client(cand.platform, &account).await?;
        let exists = client
            .find_by_external_id(&offer.out_order_id)
            .await
            .map(|o| o.is_some())
            .map_err(|e| adapter_err_while("cannot confirm the supplier's state yet", e))?;
        if !exists {
            return Ok(OfferOutcome::MoveOn {
                reason: "the supplier holds no order for our id".into(),
            });
        }
        tracing::warn!(order_id = %req.order_id, line = req.line_no, external_id = %offer.out_order_id, "a failed attempt left an order at the supplier; adopting it");
        match purchase(client.as_ref(), &offer).await {
            Ok(p) => self.bought(&req, account, p).await,
            Err(e) if e.is_retryable() => Err(transient(e)),
            // The order exists but cannot be paid within tolerance: it stays unpaid, nothing spent.
            Err(e) => Ok(OfferOutcome::MoveOn {
                reason: format!("existing order left unpaid: {e}"),
            }),
        }
    }

    #[activity(definition = order_activities::OpenPurchaserTask)]
    pub async fn open_purchaser_task(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: PurchaserTaskRequest,
    ) -> Result<String, ActivityError> {
        let task = self
            .store
            .open_purchaser_task(&req)
            .await
            .map_err(store_err)?;
        procure_metrics::global().purchase_attempt(&task.platform, PurchaseOutcome::Assisted);
        tracing::info!(order_id = %req.order_id, line = req.line_no, task = %task.id, offer = %req.offer_id, "purchaser task open");
        Ok(task.id)
    }

    #[activity(definition = order_activities::ExpirePurchaserTask)]
    pub async fn expire_purchaser_task(
        self: Arc<Self>,
        _ctx: ActivityContext,
        task_id: String,
    ) -> Result<bool, ActivityError> {
        let expired = self
            .store
            .expire_purchaser_task(&task_id)
            .await
            .map_err(store_err)?;
        if expired {
            let platform = self
                .store
                .purchaser_task(&task_id)
                .await
                .map(|t| t.platform)
                .unwrap_or_else(|_| "unknown".into());
            procure_metrics::global().purchase_attempt(&platform, PurchaseOutcome::Expired);
        }
        Ok(expired)
    }

    #[activity(definition = order_activities::ProposePriceChange)]
    pub async fn propose_price_change(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: PriceChangeRequest,
    ) -> Result<PriceChangeProposal, ActivityError> {
        let change = match self.store.price_change(&req.change_id).await {
            Ok(existing) => existing,
            Err(StoreError::NotFound) => {
                let order = self.store.order(&req.order_id).await.map_err(store_err)?;
                let line = order
                    .lines
                    .iter()
                    .find(|l| l.line_no == req.line_no)
                    .ok_or_else(|| permanent(format!("order has no line {}", req.line_no)))?;
                let quote = self.store.quote(&order.quote_id).await.map_err(store_err)?;
                let fx = quoted_rate(&quote.body, order.total.currency).map_err(permanent)?;
                let covered = Money::new(
                    req.covered_unit_fen.max(line.unit_price.minor),
                    Currency::CNY,
                );
                let supplement = price_change_supplement(
                    covered,
                    Money::new(req.new_unit_fen, Currency::CNY),
                    req.quantity,
                    &fx,
                )
                .map_err(permanent)?;
                self.store
                    .insert_price_change(&PriceChange {
                        id: req.change_id.clone(),
                        order_id: req.order_id.clone(),
                        line_no: i64::from(req.line_no),
                        platform: req.platform.clone(),
                        offer_id: req.offer_id.clone(),
                        quantity: i64::from(req.quantity),
                        quoted_unit_fen: covered.minor,
                        new_unit_fen: req.new_unit_fen,
                        amount: supplement,
                        intent_id: None,
                        status: PriceChangeStatus::Pending,
                        refunded_minor: 0,
                        due_at_ms: req.due_at_ms,
                        created_at_ms: 0,
                        decided_at_ms: None,
                    })
                    .await
                    .map_err(store_err)?
            }
            Err(e) => return Err(store_err(e)),
        };
        if change.amount.minor <= 0 {
            // Nothing to ask: the workflow buys at once; the change must not stay answerable.
            self.store
                .withdraw_price_change(&change.id)
                .await
                .map_err(store_err)?;
        }
        let mut intent_id = change.intent_id.clone();
        if intent_id.is_none() && change.amount.minor > 0 {
            // One intent per change: the key makes a retried call return the first one.
            let intent = self
                .payments
                .create_intent(
                    &format!("{}-charge", change.id),
                    change.amount,
                    &change.order_id,
                )
                .await
                .map_err(adapter_err)?;
            self.store
                .set_price_change_intent(&change.id, &intent.id)
                .await
                .map_err(store_err)?;
            intent_id = Some(intent.id);
        }
        tracing::info!(order_id = %change.order_id, change = %change.id, supplement = %change.amount, "price change put to the customer");
        Ok(PriceChangeProposal {
            change_id: change.id,
            supplement: change.amount,
            intent_id,
        })
    }

    #[activity(definition = order_activities::WithdrawPriceChange)]
    pub async fn withdraw_price_change(
        self: Arc<Self>,
        _ctx: ActivityContext,
        change_id: String,
    ) -> Result<ChargeWithdrawal, ActivityError> {
        let change = self
            .store
            .price_change(&change_id)
            .await
            .map_err(store_err)?;
        let paid = |c: &PriceChange, intent_id: String| {
            ChargeWithdrawal::Paid(ChargePaid {
                charge_id: c.id.clone(),
                intent_id,
                amount: c.amount,
            })
        };
        let Some(intent_id) = change.intent_id.clone() else {
            self.store
                .withdraw_price_change(&change_id)
                .await
                .map_err(store_err)?;
            return Ok(ChargeWithdrawal::Withdrawn);
        };
        if matches!(change.status.as_str(), "paid" | "refunded") {
            return Ok(paid(&change, intent_id));
        }
        if self
            .payments
            .withdraw_intent(&intent_id)
            .await
            .map_err(adapter_err)?
        {
            self.store
                .mark_price_change_paid(&change_id)
                .await
                .map_err(store_err)?;
            tracing::warn!(order_id = %change.order_id, change = %change_id, "supplement paid while being withdrawn");
            return Ok(paid(&change, intent_id));
        }
        self.store
            .withdraw_price_change(&change_id)
            .await
            .map_err(store_err)?;
        Ok(ChargeWithdrawal::Withdrawn)
    }

    #[activity(definition = order_activities::RefundSupplements)]
    pub async fn refund_supplements(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<Vec<RefundDone>, ActivityError> {
        let mut done = Vec::new();
        for c in self
            .store
            .price_changes(&order_id)
            .await
            .map_err(store_err)?
        {
            let (Some(intent_id), "paid" | "refunded") = (&c.intent_id, c.status.as_str()) else {
                continue;
            };
            // One refund per supplement; a retry gets the first refund back from the provider.
            let refund = self
                .payments
                .refund(&format!("{}-refund", c.id), intent_id, c.amount)
                .await
                .map_err(adapter_err)?;
            let reason = format!("price change {} supplement", c.id);
            self.store
                .mark_price_change_refunded(
                    &c.id,
                    &RefundRecord {
                        refund_id: &refund.id,
                        amount: refund.amount,
                        kind: RefundKind::Supplement,
                        reason: &reason,
                    },
                )
                .await
                .map_err(store_err)?;
            tracing::info!(%order_id, change = %c.id, refund = %refund.id, amount = %refund.amount, "supplement refunded");
            done.push(RefundDone {
                refund_id: refund.id,
                amount: refund.amount,
            });
        }
        Ok(done)
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
            .map_err(adapter_err)?;
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

    #[activity(definition = order_activities::SellerShipments)]
    pub async fn seller_shipments(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: SellerShipmentsRequest,
    ) -> Result<SellerShipmentReport, ActivityError> {
        self.follow_seller_shipments(&req).await
    }

    #[activity(definition = order_activities::CancelPurchase)]
    pub async fn cancel_purchase(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: MarketplaceCancelRequest,
    ) -> Result<MarketplaceCancelOutcome, ActivityError> {
        self.cancel_line_at_marketplace(&req).await
    }

    #[activity(definition = order_activities::VerifyPayment)]
    pub async fn verify_payment(
        self: Arc<Self>,
        _ctx: ActivityContext,
        check: PaymentCheck,
    ) -> Result<PaymentVerdict, ActivityError> {
        let intent = self
            .payments
            .get_intent(&check.intent_id)
            .await
            .map_err(adapter_err)?;
        let verdict = payment_verdict(&intent, &check);
        if let PaymentVerdict::Mismatch { reason } = &verdict {
            tracing::warn!(intent = %check.intent_id, %reason, "payment not verified");
        }
        Ok(verdict)
    }
}

/// Whether the provider's intent pays exactly what `check` owes: succeeded, ours (the reference
/// we set), and the amount received equal in amount and currency.
pub fn payment_verdict(intent: &PaymentIntent, check: &PaymentCheck) -> PaymentVerdict {
    let mismatch = |reason: String| PaymentVerdict::Mismatch { reason };
    if intent.id != check.intent_id {
        return mismatch(format!(
            "the provider answered for intent {}, not {}",
            intent.id, check.intent_id
        ));
    }
    if intent.status != IntentStatus::Succeeded {
        return mismatch(format!(
            "the provider reports payment {} as {:?}, not succeeded",
            intent.id, intent.status
        ));
    }
    if intent.order_id.as_deref() != Some(check.reference.as_str()) {
        return mismatch(format!(
            "payment {} belongs to {:?}, not {}",
            intent.id, intent.order_id, check.reference
        ));
    }
    if intent.amount_received != check.expected {
        return mismatch(format!(
            "payment {} received {}, but {} is owed",
            intent.id, intent.amount_received, check.expected
        ));
    }
    PaymentVerdict::Verified {
        received: intent.amount_received,
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

#[cfg(test)]
mod tests {
    use temporalio_sdk::activities::ActivityError;

    fn failure(e: ActivityError) -> (bool, String, String) {
        match e {
            ActivityError::Application(f) => (
                f.is_non_retryable(),
                f.type_name().unwrap_or_default().to_owned(),
                f.source_error().to_string(),
            ),
            other => panic!("not an application failure: {other:?}"),
        }
    }

    /// The activities' own failures go through the adapters' one classification too.
    #[test]
    fn the_activities_own_helpers_are_typed_too() {
        assert_eq!(
            failure(super::permanent("no payment to refund")),
            (true, "InvalidState".into(), "no payment to refund".into())
        );
        assert_eq!(
            failure(super::transient("database busy")),
            (false, "Unavailable".into(), "database busy".into())
        );
    }
}
