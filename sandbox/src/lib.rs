//! A faithful stand-in for the outside world on one loopback port: the 1688 AOP gateway, the
//! Taobao Global (IOP) gateway, Pinduoduo's router (prices only), Stripe-shaped PaymentIntents
//! with signed webhooks, 17TRACK v2.2, a carrier booking API and the ECB daily reference-rate
//! feed, plus `/_sandbox/*` control endpoints (catalogue, ledger, fault
//! injection, webhook targets). The wire contract is `docs/sandbox-wire.md`; signatures are made
//! and checked only through `procure_domain::signing`.
//!
//! All state lives in memory behind one mutex that is never held across an `.await`, so every
//! effect (stock taken, order created, charge, refund, ledger entry) is atomic: concurrent
//! duplicates of an idempotent call observe either nothing or the whole effect.
//!
//! Choices the contract leaves open (each lives in one place in its module):
//! - 1688: checks run unknown API (`gw.APIUnsupported`) → app key (`gw.APIACLDecline`) →
//!   signature (`gw.SignatureInvalid`) → access token (`gw.APIACLDecline`) → faults → call.
//!   Answers use each API's documented envelope, names and units (docs/vendors/1688.md); what
//!   1688 does not publish (a restricted account, preparePay's codes, the code of a missing
//!   parameter, …) is `aop::assumed`. `alibaba.trade.createRefund` before shipping is agreed by
//!   the seller at once (the refund succeeds within the call); reasons and sub-order ids are the
//!   sandbox's own. `sumCarriage` is the sum of each distinct offer's domestic shipping,
//!   `sumPayment` = `totalSuccessAmount` = goods + carriage (fen) = `totalAmount` × 100. One
//!   order per call (no supplier split). `createCrossOrder` repeats return the first order
//!   whatever their cargo.
//! - Taobao (IOP): see `taobao` for the check order and choices: unknown apiPath
//!   `InvalidApiPath`; `timestamp` must be present (no window); `sign_method` must be `sha256`;
//!   an injected `error` is HTTP 503 `ServiceUnavailable`; postage = the sku's 1688 domestic
//!   shipping per distinct item; ledger reference `outer_purchase_id` for both kinds.
//! - Pinduoduo: see `pdd`: unknown client_id 10016, stale timestamp / unknown type / bad
//!   parameters 10000, injected `error` HTTP 503 `{"error":{…}}`; `min_group_price` = the offer
//!   price.
//! - Stripe: idempotency results are saved once execution began (also execution errors such as
//!   `amount_too_large`), not for auth / validation / injected pre-execution faults; replays
//!   carry `Idempotent-Replayed: true`. Unknown form parameters → `parameter_unknown`.
//! - Webhooks: retried with backoff 200 ms doubling to 10 s, 8 attempts; the Stripe signature is
//!   made afresh (new `t`) per attempt.
//! - 17TRACK: error codes other than -18019901 are listed in `track17::codes`.
//! - Faults: `api` matches by suffix; a fault fires only where its kind means something (see
//!   `faults`); `bad_signature` on Stripe / 17TRACK corrupts outgoing webhook signatures.
//! - Extensions: `GET /_sandbox/faults`, `DELETE /_sandbox/faults/{id}`, `GET /_sandbox/webhooks`,
//!   `"removed": true|false` and `"domestic_shipping_fen"` (1688) on
//!   `POST /_sandbox/products/{offer_id}`,
//!   `POST /_sandbox/orders/{orderId}/cancel` (1688 and Taobao orders), `GET /v1/refunds/{id}`,
//!   `POST /_sandbox/marketplace/orders/{id}/ship` (the seller ships a paid 1688 / Taobao order
//!   now), `PUT /_sandbox/marketplace/seller` `{"ship_after_ms"?, "refunds_at_once"?}` (the
//!   sellers' shipping delay; whether they agree to a paid order's refund at once),
//!   `POST /_sandbox/marketplace/orders/{id}/refund` `{"agree"}` (the seller decides a pending one),
//!   `stock` as an alias of `amount_on_sale` in product edits.

pub mod catalogue;

mod aop;
mod carrier;
mod control;
mod ecb;
mod faults;
mod generated;
mod pdd;
mod stripe;
mod taobao;
mod track17;
mod util;
mod webhook;

pub use catalogue::{Offer, Product};

use axum::{
    Router,
    http::StatusCode,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use std::{
    fmt,
    future::Future,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Duration,
};
use tokio::sync::watch;

/// Credentials and timings of the sandbox. `Debug` never prints the secrets.
#[derive(Clone)]
pub struct SandboxConfig {
    pub alibaba_app_key: String,
    pub alibaba_app_secret: String,
    pub alibaba_access_token: String,
    pub stripe_api_key: String,
    pub stripe_webhook_secret: String,
    pub track17_token: String,
    pub carrier_api_key: String,
    pub taobao_app_key: String,
    pub taobao_app_secret: String,
    pub taobao_access_token: String,
    pub pdd_client_id: String,
    pub pdd_client_secret: String,
    /// Where `payment_intent.succeeded` events go (also settable via `PUT /_sandbox/webhooks`).
    pub payments_webhook_url: Option<String>,
    /// Where 17TRACK `TRACKING_UPDATED` pushes go (also settable via `PUT /_sandbox/webhooks`).
    pub tracking_webhook_url: Option<String>,
    /// A registered parcel moves one status every this many ms (0 = delivered at once).
    pub tracking_step_ms: u64,
    /// The 1688 and Taobao sellers ship this long after payment (0 = on payment); changed at
    /// runtime with `PUT /_sandbox/marketplace/seller`. Until then a buyer can still cancel.
    pub seller_ship_ms: u64,
    /// `alibaba.trade.cancel` refuses an order younger than this (`CLOSE_ORDER_TOO_FAST`;
    /// 1688 documents ten seconds).
    pub close_order_grace_ms: u64,
    /// Latency added to every external-protocol request (not to `/_sandbox/*`).
    pub latency_ms: u64,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            alibaba_app_key: "demo1688".into(),
            alibaba_app_secret: "demo1688-secret".into(),
            alibaba_access_token: "demo1688-token".into(),
            stripe_api_key: "sk_test_procure".into(),
            stripe_webhook_secret: "whsec_procure_demo".into(),
            track17_token: "demo17token".into(),
            carrier_api_key: "demo-carrier-key".into(),
            taobao_app_key: "demotaobao".into(),
            taobao_app_secret: "demotaobao-secret".into(),
            taobao_access_token: "demotaobao-token".into(),
            pdd_client_id: "demopdd".into(),
            pdd_client_secret: "demopdd-secret".into(),
            payments_webhook_url: None,
            tracking_webhook_url: None,
            tracking_step_ms: 1000,
            seller_ship_ms: 0,
            close_order_grace_ms: 10_000,
            latency_ms: 0,
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const R: &str = "[redacted]";
        f.debug_struct("SandboxConfig")
            .field("alibaba_app_key", &self.alibaba_app_key)
            .field("alibaba_app_secret", &R)
            .field("alibaba_access_token", &R)
            .field("stripe_api_key", &R)
            .field("stripe_webhook_secret", &R)
            .field("track17_token", &R)
            .field("carrier_api_key", &R)
            .field("taobao_app_key", &self.taobao_app_key)
            .field("taobao_app_secret", &R)
            .field("taobao_access_token", &R)
            .field("pdd_client_id", &self.pdd_client_id)
            .field("pdd_client_secret", &R)
            .field("payments_webhook_url", &self.payments_webhook_url)
            .field("tracking_webhook_url", &self.tracking_webhook_url)
            .field("tracking_step_ms", &self.tracking_step_ms)
            .field("seller_ship_ms", &self.seller_ship_ms)
            .field("close_order_grace_ms", &self.close_order_grace_ms)
            .field("latency_ms", &self.latency_ms)
            .finish()
    }
}

/// One externally visible effect (money or goods moved), as `GET /_sandbox/ledger` lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub at_ms: i64,
    /// `purchase` | `marketplace_payment` | `marketplace_refund` | `charge` | `refund` |
    /// `shipment`
    pub kind: String,
    /// `1688` | `taobao` | `stripe` | `carrier`
    pub platform: String,
    /// Our idempotent id: 1688 `outOrderId` (purchase), `opRequestId` (marketplace_payment),
    /// Taobao `outer_purchase_id` (purchase and marketplace_payment), the marketplace order id
    /// (marketplace_refund: 1688 orderId, Taobao purchase_order_id),
    /// the PaymentIntent's `metadata[order_id]` or else its id (charge), the refund's
    /// `Idempotency-Key` or else its id (refund), the carrier `reference` (shipment).
    pub reference: String,
    /// Their id: 1688 orderId (1688 refundId for marketplace_refund), Taobao purchase_order_id,
    /// `pi_…`, `re_…`, carrier shipment id.
    pub external_id: String,
    /// Positive amount in minor units of `currency`.
    pub amount_minor: i64,
    /// Upper-case ISO 4217.
    pub currency: String,
}

#[derive(Default)]
pub(crate) struct WebhookTargets {
    pub(crate) payments: Option<String>,
    pub(crate) tracking: Option<String>,
}

/// Everything the sandbox remembers.
pub(crate) struct State {
    /// The 1688 listings.
    pub(crate) products: Vec<Product>,
    /// The Taobao and Pinduoduo listings (the 1688 ones are `products`).
    pub(crate) offers: Vec<Offer>,
    /// Offer ids (of any platform; they are unique across platforms) taken off sale.
    pub(crate) removed: std::collections::HashSet<String>,
    /// Generated 1688 and Taobao listings (`generated`) once ordered from, one entry per SKU,
    /// so that their stock moves like a seeded listing's. Never in the catalogue.
    pub(crate) generated_products: Vec<Product>,
    pub(crate) generated_offers: Vec<Offer>,
    /// Generated listings that are another's copy (`POST /_sandbox/relistings`): (platform,
    /// id) of the copy → (platform, id) of the original.
    pub(crate) relistings: std::collections::HashMap<(String, String), (String, String)>,
    pub(crate) aop: aop::AopState,
    pub(crate) taobao: taobao::TaobaoState,
    pub(crate) stripe: stripe::StripeState,
    pub(crate) track: track17::TrackState,
    pub(crate) carrier: carrier::CarrierState,
    pub(crate) fx: ecb::FxTable,
    pub(crate) faults: faults::Faults,
    pub(crate) ledger: Vec<LedgerEntry>,
    pub(crate) webhooks: WebhookTargets,
    /// The sellers ship this long after payment (from `SandboxConfig::seller_ship_ms`).
    pub(crate) seller_ship_ms: u64,
    /// The sellers agree to a refund / cancellation of a paid order within the buyer's call
    /// (else it waits for `POST /_sandbox/marketplace/orders/{id}/refund`).
    pub(crate) refunds_at_once: bool,
}

impl State {
    /// Append a ledger entry; the one place effects are logged.
    pub(crate) fn record(
        &mut self,
        kind: &str,
        platform: &str,
        reference: &str,
        external_id: &str,
        amount_minor: i64,
        currency: &str,
    ) {
        let entry = LedgerEntry {
            seq: self.ledger.len() as u64 + 1,
            at_ms: util::now_ms(),
            kind: kind.to_owned(),
            platform: platform.to_owned(),
            reference: reference.to_owned(),
            external_id: external_id.to_owned(),
            amount_minor,
            currency: currency.to_owned(),
        };
        tracing::info!(
            seq = entry.seq,
            kind,
            platform,
            reference,
            external_id,
            amount_minor,
            currency,
            "sandbox effect"
        );
        self.ledger.push(entry);
    }

    /// How long after payment the 1688 and Taobao sellers ship (ms).
    pub(crate) fn seller_ship_ms(&self) -> i64 {
        i64::try_from(self.seller_ship_ms).unwrap_or(i64::MAX)
    }

    pub(crate) fn product_mut(&mut self, offer_id: &str) -> Option<&mut Product> {
        if self.removed.contains(offer_id) {
            return None;
        }
        self.products.iter_mut().find(|p| p.offer_id == offer_id)
    }

    /// Whether a product read of `id`, which no seeded listing on sale answered, answers a
    /// generated product (`generated`): the id is of the platform's form (`well_formed`), not a
    /// seeded listing (of any platform: a seeded listing taken off sale stays gone), and not
    /// taken off sale.
    /// The generated product of `platform` and `id`: a relisting of another when the sandbox
    /// was told so, else its own.
    pub(crate) fn generated(&self, platform: &str, id: &str) -> generated::GenProduct {
        match self.relistings.get(&(platform.to_owned(), id.to_owned())) {
            Some((p, i)) => generated::relist(&generated::generate(p, i), platform, id),
            None => generated::generate(platform, id),
        }
    }

    pub(crate) fn generates(&self, id: &str, well_formed: bool) -> bool {
        well_formed
            && !self.removed.contains(id)
            && !self.products.iter().any(|p| p.offer_id == id)
            && !self.offers.iter().any(|o| o.offer_id == id)
    }

    /// The 1688 listing an order line names: a seeded one by its offer id (the caller checks
    /// the spec, as before), else the SKU `spec_id` (or the only SKU) of a generated product,
    /// materialised on first use.
    pub(crate) fn listing_1688(
        &mut self,
        offer_id: &str,
        spec_id: Option<&str>,
    ) -> Option<&mut Product> {
        if self.removed.contains(offer_id) {
            return None;
        }
        if let Some(i) = self.products.iter().position(|p| p.offer_id == offer_id) {
            return self.products.get_mut(i);
        }
        if !self.generates(offer_id, generated::is_long_id(offer_id)) {
            return None;
        }
        if !self
            .generated_products
            .iter()
            .any(|p| p.offer_id == offer_id)
        {
            let g = self.generated(catalogue::PLATFORM_1688, offer_id);
            let (l, w, h) = g.dims_mm.unwrap_or((0, 0, 0));
            for sku in &g.skus {
                self.generated_products.push(Product {
                    sku: g.title.clone(),
                    platform: catalogue::PLATFORM_1688.to_owned(),
                    offer_id: offer_id.to_owned(),
                    spec_id: sku.spec_id.clone(),
                    title: g.title.clone(),
                    price_fen: sku.price_fen,
                    amount_on_sale: sku.stock,
                    weight_g: g.weight_g.unwrap_or(0),
                    l_mm: l,
                    w_mm: w,
                    h_mm: h,
                    domestic_shipping_fen: generated::CARRIAGE_FEN,
                });
            }
        }
        let mine: Vec<usize> = (0..self.generated_products.len())
            .filter(|&i| self.generated_products[i].offer_id == offer_id)
            .collect();
        let at = match spec_id {
            Some(sp) => mine
                .iter()
                .copied()
                .find(|&i| self.generated_products[i].spec_id == sp),
            None if mine.len() == 1 => mine.first().copied(),
            None => None,
        };
        at.and_then(move |i| self.generated_products.get_mut(i))
    }

    /// The Taobao listing an order line names: a seeded one by its item id (the caller checks
    /// the sku, as before), else the SKU `sku_id` (or the only SKU) of a generated item,
    /// materialised on first use. A generated item's `Offer::sku` is its title.
    pub(crate) fn listing_taobao(
        &mut self,
        item_id: &str,
        sku_id: Option<&str>,
    ) -> Option<&mut Offer> {
        let platform = catalogue::PLATFORM_TAOBAO;
        if self.removed.contains(item_id) {
            return None;
        }
        if let Some(i) = self
            .offers
            .iter()
            .position(|o| o.platform == platform && o.offer_id == item_id)
        {
            return self.offers.get_mut(i);
        }
        if !self.generates(item_id, generated::is_long_id(item_id)) {
            return None;
        }
        if !self.generated_offers.iter().any(|o| o.offer_id == item_id) {
            let g = self.generated(platform, item_id);
            for sku in &g.skus {
                self.generated_offers.push(Offer {
                    sku: g.title.clone(),
                    platform: platform.to_owned(),
                    offer_id: item_id.to_owned(),
                    spec_id: sku.sku_id.to_string(),
                    price_fen: sku.price_fen,
                    stock: sku.stock,
                });
            }
        }
        let mine: Vec<usize> = (0..self.generated_offers.len())
            .filter(|&i| self.generated_offers[i].offer_id == item_id)
            .collect();
        let at = match sku_id {
            Some(sk) => mine
                .iter()
                .copied()
                .find(|&i| self.generated_offers[i].spec_id == sk),
            None if mine.len() == 1 => mine.first().copied(),
            None => None,
        };
        at.and_then(move |i| self.generated_offers.get_mut(i))
    }

    /// The stock of a generated SKU once ordered from (else its generated stock stands).
    pub(crate) fn generated_stock(
        &self,
        platform: &str,
        offer_id: &str,
        spec_id: &str,
    ) -> Option<i64> {
        if platform == catalogue::PLATFORM_1688 {
            self.generated_products
                .iter()
                .find(|p| p.offer_id == offer_id && p.spec_id == spec_id)
                .map(|p| p.amount_on_sale)
        } else {
            self.generated_offers
                .iter()
                .find(|o| o.platform == platform && o.offer_id == offer_id && o.spec_id == spec_id)
                .map(|o| o.stock)
        }
    }

    /// A Taobao / Pinduoduo listing that is on sale.
    pub(crate) fn offer_mut(&mut self, platform: &str, offer_id: &str) -> Option<&mut Offer> {
        if self.removed.contains(offer_id) {
            return None;
        }
        self.offers
            .iter_mut()
            .find(|o| o.platform == platform && o.offer_id == offer_id)
    }

    /// `price_jump` on a Taobao / Pinduoduo listing: its price rises for good (at least 1 fen).
    pub(crate) fn jump_offer_price(&mut self, platform: &str, offer_id: &str, percent: u32) {
        if let Some(o) = self.offer_mut(platform, offer_id) {
            let bump = (i128::from(o.price_fen) * i128::from(percent) / 100).max(1);
            let new = i64::try_from(i128::from(o.price_fen) + bump).unwrap_or(i64::MAX);
            tracing::info!(
                platform,
                offer_id,
                old_fen = o.price_fen,
                new_fen = new,
                "price jump (fault)"
            );
            o.price_fen = new;
        }
    }

    /// The product title of a sku (from its 1688 listing), shared by its offers on every platform.
    pub(crate) fn title_of(&self, sku: &str) -> String {
        self.products
            .iter()
            .find(|p| p.sku == sku)
            .map_or_else(|| sku.to_owned(), |p| p.title.clone())
    }

    /// Every platform's offers in their current state, grouped by sku.
    pub(crate) fn all_offers(&self) -> Vec<Offer> {
        catalogue::merge_offers(&self.products, &self.offers)
    }
}

struct Inner {
    cfg: SandboxConfig,
    state: Mutex<State>,
    shutdown: watch::Sender<bool>,
    client: OnceLock<Option<reqwest::Client>>,
}

/// The sandbox: cheap to clone, all clones share one state.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("cfg", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> Self {
        let state = State {
            products: catalogue::demo(),
            offers: catalogue::demo_marketplace_offers(),
            removed: Default::default(),
            generated_products: Vec::new(),
            generated_offers: Vec::new(),
            relistings: Default::default(),
            aop: Default::default(),
            taobao: Default::default(),
            stripe: Default::default(),
            track: Default::default(),
            carrier: Default::default(),
            fx: ecb::FxTable::demo(util::now_ms()),
            faults: Default::default(),
            ledger: Vec::new(),
            webhooks: WebhookTargets {
                payments: cfg.payments_webhook_url.clone(),
                tracking: cfg.tracking_webhook_url.clone(),
            },
            seller_ship_ms: cfg.seller_ship_ms,
            refunds_at_once: true,
        };
        let (shutdown, _) = watch::channel(false);
        Sandbox {
            inner: Arc::new(Inner {
                cfg,
                state: Mutex::new(state),
                shutdown,
                client: OnceLock::new(),
            }),
        }
    }

    /// Every effect so far, in order.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.lock().ledger.clone()
    }

    /// The current state of the catalogue (prices and stock as changed by orders and edits).
    pub fn catalogue(&self) -> Vec<Product> {
        self.lock().products.clone()
    }

    /// The current state of every platform's offers (as `GET /_sandbox/catalogue` `"offers"`).
    pub fn offers(&self) -> Vec<Offer> {
        self.lock().all_offers()
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.cfg
    }

    /// The state lock. A panic elsewhere cannot poison the sandbox for good: the state is
    /// always left consistent because effects are applied only after validation.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.lock())
    }

    /// Sleep, cut short when the server shuts down.
    pub(crate) async fn sleep(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let mut rx = self.inner.shutdown.subscribe();
        if *rx.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = rx.wait_for(|v| *v) => {}
        }
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    /// Decide the faults of one inbound call and wait out the base and injected latency.
    pub(crate) async fn enter(
        &self,
        platform: faults::Platform,
        api: &str,
        relevant: &[faults::FaultKind],
    ) -> faults::Fired {
        let fired = self.with(|s| s.faults.fire(platform, api, relevant));
        self.sleep(Duration::from_millis(self.inner.cfg.latency_ms) + fired.latency)
            .await;
        fired
    }

    /// The HTTP client for outgoing webhooks, built on first use (`None` if it cannot be built).
    pub(crate) fn client(&self) -> Option<reqwest::Client> {
        self.inner.client.get_or_init(webhook::build_client).clone()
    }
}

/// The whole sandbox as one router.
pub fn router(state: Sandbox) -> Router {
    Router::new()
        .route(
            "/openapi/param2/{version}/{namespace}/{api}/{app_key}",
            post(aop::handle_post).get(aop::handle_get),
        )
        .route(
            "/rest/{*api_path}",
            post(taobao::handle_post).get(taobao::handle_get),
        )
        .route("/api/router", post(pdd::router))
        .route("/v1/payment_intents", post(stripe::create))
        .route("/v1/payment_intents/{id}", get(stripe::retrieve))
        .route("/v1/payment_intents/{id}/confirm", post(stripe::confirm))
        .route("/v1/payment_intents/{id}/cancel", post(stripe::cancel))
        .route("/v1/refunds", post(stripe::refund))
        .route("/v1/refunds/{id}", get(stripe::retrieve_refund))
        .route("/track/v2.2/register", post(track17::register))
        .route("/track/v2.2/gettrackinfo", post(track17::gettrackinfo))
        .route("/carrier/v1/shipments", post(carrier::create_shipment))
        .route("/stats/eurofxref/eurofxref-daily.xml", get(ecb::daily))
        .route("/_sandbox/health", get(control::health))
        .route("/_sandbox/catalogue", get(control::catalogue))
        .route(
            "/_sandbox/products/{offer_id}",
            post(control::update_product),
        )
        .route(
            "/_sandbox/orders/{order_id}/cancel",
            post(aop::sandbox_cancel),
        )
        .route(
            "/_sandbox/marketplace/orders/{order_id}/ship",
            post(control::ship_order),
        )
        .route(
            "/_sandbox/marketplace/orders/{order_id}/refund",
            post(control::decide_refund),
        )
        .route(
            "/_sandbox/marketplace/seller",
            axum::routing::put(control::set_seller).get(control::get_seller),
        )
        .route("/_sandbox/relistings", post(control::relist))
        .route("/_sandbox/ledger", get(control::ledger))
        .route(
            "/_sandbox/faults",
            post(control::add_fault)
                .get(control::list_faults)
                .delete(control::clear_faults),
        )
        .route(
            "/_sandbox/faults/{id}",
            axum::routing::delete(control::delete_fault),
        )
        .route(
            "/_sandbox/webhooks",
            axum::routing::put(control::set_webhooks).get(control::get_webhooks),
        )
        .route("/_sandbox/tracking/{number}", post(track17::force_status))
        .route("/_sandbox/fx", post(ecb::set_fx))
        .route("/_sandbox/pinduoduo/orders", post(pdd::manual_order))
        .fallback(|| async {
            util::plain_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .with_state(state)
}

/// Serve the sandbox on `listener` until `shutdown` completes. Requests parked by an injected
/// delay (`latency`, `timeout_after_commit`) and webhook retries end early on shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "sandbox listening");
    }
    let signal = sandbox.inner.shutdown.clone();
    let app = router(sandbox);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            signal.send_replace(true);
        })
        .await
}
