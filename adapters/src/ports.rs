//! The vendor clients behind the API's ports (`procure_domain::ports`): ECB rates, the payment
//! provider's record of an intent, opening and cancelling an order's intent, 17TRACK webhook
//! verification, and the marketplaces' product details (the platform registry).

use procure_domain::{
    Currency, Money,
    order::Platform,
    order::charge_key,
    ports::{
        FxRates, LockedRate, PaymentIntents, PaymentRecord, PaymentRecords, PortError, PortFuture,
        ProductDetails, ProductError, ProductFuture, TrackingPush, TrackingPushEvent,
        TrackingWebhooks,
    },
    product::ProductDetail,
    product_link::ProductRef,
};

use crate::{
    MarketError, Marketplaces,
    fx::EcbFx,
    payments::{IntentStatus, Payments},
    tracking::TrackingConfig,
};

impl FxRates for EcbFx {
    fn locked_rate(&self, from: Currency, to: Currency) -> PortFuture<'_, LockedRate> {
        Box::pin(async move {
            EcbFx::locked_rate(self, from, to)
                .await
                .map_err(|e| PortError::new(&e, e.is_retryable()))
        })
    }
}

impl PaymentRecords for Payments {
    fn payment_record<'a>(&'a self, intent_id: &'a str) -> PortFuture<'a, PaymentRecord> {
        Box::pin(async move {
            let held = self
                .get_intent(intent_id)
                .await
                .map_err(|e| PortError::new(&e, e.is_retryable()))?;
            Ok(PaymentRecord {
                intent_id: held.id,
                succeeded: held.status == IntentStatus::Succeeded,
                amount_received: held.amount_received,
                status: format!("{:?}", held.status),
            })
        })
    }
}

impl PaymentIntents for Payments {
    fn open_intent<'a>(&'a self, order_id: &'a str, amount: Money) -> PortFuture<'a, String> {
        Box::pin(async move {
            self.create_intent(&charge_key(order_id), amount, order_id)
                .await
                .map(|intent| intent.id)
                .map_err(|e| PortError::new(&e, e.is_retryable()))
        })
    }

    fn cancel_intent<'a>(&'a self, intent_id: &'a str) -> PortFuture<'a, ()> {
        Box::pin(async move {
            Payments::cancel_intent(self, intent_id)
                .await
                .map(|_| ())
                .map_err(|e| PortError::new(&e, e.is_retryable()))
        })
    }
}

impl TrackingWebhooks for TrackingConfig {
    fn verify(&self, body: &[u8], sign_header: &str) -> Result<TrackingPush, PortError> {
        let hook = self
            .verify_webhook(body, sign_header)
            .map_err(|e| PortError::new(e, false))?;
        let status = serde_json::to_value(hook.status.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "NotFound".into());
        Ok(TrackingPush {
            number: hook.status.number,
            status,
            events: hook
                .status
                .events
                .into_iter()
                .map(|e| TrackingPushEvent {
                    time_iso: e.time_iso,
                    description: e.description,
                })
                .collect(),
        })
    }
}

/// A marketplace failure as the product port reports it: a listing that is gone, or the
/// vendor's error with whether a later try may succeed (the one classifier,
/// [`MarketError::is_retryable`]).
fn product_error(e: MarketError) -> ProductError {
    match e {
        MarketError::ListingGone => ProductError::Gone("the marketplace no longer lists it".into()),
        other => ProductError::Vendor(PortError::new(&other, other.is_retryable())),
    }
}

impl ProductDetails for Marketplaces {
    fn resolve<'a>(&'a self, product: &'a ProductRef) -> ProductFuture<'a, String> {
        Box::pin(async move {
            Marketplaces::resolve(self, product)
                .await
                .map_err(product_error)
        })
    }

    fn product<'a>(
        &'a self,
        platform: Platform,
        product_id: &'a str,
    ) -> ProductFuture<'a, ProductDetail> {
        Box::pin(async move {
            Marketplaces::product(self, platform, product_id)
                .await
                .map_err(product_error)
        })
    }
}
