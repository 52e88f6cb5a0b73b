//! Implementation of the price-monitor activities (`procure_workflows::monitor`): what a
//! monitor watches, pricing offers through the marketplace adapters (each paces its own calls),
//! and recording a run with the landed cost of every listed offer.

use crate::errors::{permanent, store_err, transient};
use procure_adapters::{EcbFx, Marketplaces};
use procure_domain::{Currency, clock::now_ms, monitor::Seen, order::Platform, tariff::Pricing};
use procure_store::{Store, StoreError, monitors::Landed};
use procure_workflows::monitor::{
    MonitorPlan, Observation, ObserveBatch, Observed, RecordRun, RunSummary, monitor_defs as defs,
};
use std::{collections::HashMap, sync::Arc};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct MonitorActivitiesImpl {
    pub store: Store,
    /// Price lookups on every platform; each adapter paces its own requests.
    pub market: Marketplaces,
    pub fx: Arc<EcbFx>,
    pub pricing: Pricing,
}

impl MonitorActivitiesImpl {
    /// Landed cost of every listed offer in the run, for the monitor's destination. Offers
    /// whose landed cost cannot be computed (no line carries them, no exchange rate) are
    /// recorded without one; the prices still count.
    async fn landed_costs(
        &self,
        run: &RecordRun,
    ) -> Result<HashMap<(Platform, String), Landed>, ActivityError> {
        let monitor = match self.store.monitor_any(&run.monitor_id).await {
            Ok(m) => m,
            Err(StoreError::NotFound) => return Ok(HashMap::new()),
            Err(e) => return Err(store_err(e)),
        };
        let country = monitor.destination_country.as_str();
        let Some(dest) = self.pricing.destination(country) else {
            return Ok(HashMap::new());
        };
        let currency = dest.duty.de_minimis.currency;
        let fx = match self.fx.locked_rate(Currency::CNY, currency).await {
            Ok(fx) => fx.rate,
            Err(e) => {
                tracing::warn!(monitor_id = %run.monitor_id, error = %e, "no exchange rate: recording prices without landed cost");
                return Ok(HashMap::new());
            }
        };
        let offers: HashMap<(Platform, String), i64> = self
            .store
            .offers()
            .await
            .map_err(store_err)?
            .into_iter()
            .map(|o| ((o.platform, o.offer_id), o.domestic_shipping_fen))
            .collect();
        let mut listings = HashMap::new();
        let mut out = HashMap::new();
        for obs in &run.observations {
            let Observed::Seen(Seen::Listed { price_fen, .. }) = obs.outcome else {
                continue;
            };
            if !listings.contains_key(&obs.sku) {
                let l = match self.store.listing(&obs.sku).await {
                    Ok(l) => Some(l),
                    Err(StoreError::UnknownSku(_)) => None,
                    Err(e) => return Err(store_err(e)),
                };
                listings.insert(obs.sku.clone(), l);
            }
            let Some(listing) = listings.get(&obs.sku).and_then(Option::as_ref) else {
                continue;
            };
            let key = (obs.offer.platform, obs.offer.offer_id.clone());
            let domestic = offers
                .get(&key)
                .copied()
                .unwrap_or(listing.domestic_shipping_fen);
            let item = listing.quote_item(price_fen, domestic, 1);
            match self.pricing.landed_cost(&item, country, &fx) {
                Ok(Some((line, b))) => {
                    out.insert(
                        key,
                        Landed {
                            domestic_shipping_fen: domestic,
                            cost_fen: b.total_cny.minor,
                            cost: b.total,
                            line,
                        },
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(sku = %obs.sku, offer_id = %obs.offer.offer_id, error = %e, "landed cost not computable");
                }
            }
        }
        Ok(out)
    }
}

#[activities]
impl MonitorActivitiesImpl {
    #[activity(definition = defs::MonitorPlan)]
    pub async fn monitor_plan(
        self: Arc<Self>,
        _ctx: ActivityContext,
        monitor_id: String,
    ) -> Result<Option<MonitorPlan>, ActivityError> {
        Ok(self
            .store
            .monitor_offers(&monitor_id)
            .await
            .map_err(store_err)?
            .map(|offers| MonitorPlan { monitor_id, offers }))
    }

    #[activity(definition = defs::ObserveOffers)]
    pub async fn observe_offers(
        self: Arc<Self>,
        _ctx: ActivityContext,
        batch: ObserveBatch,
    ) -> Result<Vec<Observation>, ActivityError> {
        let mut out = Vec::with_capacity(batch.offers.len());
        let mut unreachable = 0;
        for w in &batch.offers {
            if w.offer.platform != batch.platform {
                return Err(permanent(format!(
                    "offer {} is on {}, not {}",
                    w.offer.offer_id,
                    w.offer.platform.as_str(),
                    batch.platform.as_str()
                )));
            }
            let result = self
                .market
                .offer_price(w.offer.platform, &w.offer.offer_id, &w.offer.spec_id)
                .await;
            let outcome = match result {
                Ok(Some((price_fen, stock))) => Observed::Seen(Seen::Listed { price_fen, stock }),
                Ok(None) => Observed::Seen(Seen::Gone),
                Err(e) => {
                    if e.is_retryable() {
                        unreachable += 1;
                    }
                    tracing::warn!(monitor_id = %batch.monitor_id, platform = w.offer.platform.as_str(), offer_id = %w.offer.offer_id, error = %e, "price lookup failed");
                    Observed::Failed {
                        reason: e.to_string(),
                    }
                }
            };
            out.push(Observation {
                sku: w.sku.clone(),
                offer: w.offer.clone(),
                observed_at_ms: now_ms(),
                outcome,
            });
        }
        // A platform that answered nothing at all is worth asking again later in this run.
        if unreachable > 0 && unreachable == batch.offers.len() {
            return Err(transient(format!(
                "{}: every lookup of the batch failed",
                batch.platform.as_str()
            )));
        }
        Ok(out)
    }

    #[activity(definition = defs::RecordPrices)]
    pub async fn record_prices(
        self: Arc<Self>,
        _ctx: ActivityContext,
        run: RecordRun,
    ) -> Result<RunSummary, ActivityError> {
        let landed = self.landed_costs(&run).await?;
        let summary = self.store.record_run(&run, &landed).await;
        match summary {
            Ok(s) => {
                tracing::info!(
                    monitor_id = %s.monitor_id,
                    run = %s.run_key,
                    offers = s.offers,
                    listed = s.listed,
                    gone = s.gone,
                    failed = s.failed,
                    alerts = s.alerts.len(),
                    "price monitor run recorded"
                );
                procure_metrics::global().monitor_run(s.skipped.is_none(), s.alerts.len());
                for line in s.alerts.iter().chain(&s.ranking) {
                    tracing::info!(monitor_id = %s.monitor_id, "{line}");
                }
                Ok(s)
            }
            // Deleted between the plan and the recording: nothing to record against.
            Err(StoreError::NotFound) => {
                procure_metrics::global().monitor_run(false, 0);
                Ok(RunSummary {
                    monitor_id: run.monitor_id,
                    run_key: run.run_key,
                    skipped: Some("the monitor was deleted during the run".into()),
                    ..Default::default()
                })
            }
            Err(e) => Err(store_err(e)),
        }
    }
}
