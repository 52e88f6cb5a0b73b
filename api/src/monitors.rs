//! Price monitors for merchandisers: which products to price on 1688, Taobao and Pinduoduo,
//! when (a cron expression; each monitor is the Temporal Schedule `price-monitor-{id}`), which
//! move is worth an alert, and the destination whose landed cost is compared.
//!
//! - `POST   /api/v1/price-monitors`              create (201)
//! - `GET    /api/v1/price-monitors`              list
//! - `GET    /api/v1/price-monitors/{id}`         one, with its next runs, recent runs, alerts
//! - `POST   /api/v1/price-monitors/{id}/pause`   stop scheduled runs
//! - `POST   /api/v1/price-monitors/{id}/resume`  start them again
//! - `POST   /api/v1/price-monitors/{id}/run`     run now
//! - `DELETE /api/v1/price-monitors/{id}`         delete (the schedule goes too)
//! - `GET    /api/v1/products/{sku}/prices`       a product's price history and alerts
//! - `GET    /api/v1/price-alerts`                alerts, by monitor or product
//!
//! Changes are committed with an outbox row; the dispatcher applies them to Temporal, so the
//! API answers while Temporal is down and `schedule.in_sync` tells when Temporal caught up.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::monitors::{
    AlertList, AlertView, LandedView, MonitorDetail, MonitorList, MonitorView, OfferHistory,
    OfferView, PricePoint, ProductPrices, RunView, ScheduleView,
};
use crate::{ApiError, AppState, error::FieldError, id_ok};
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    routing::{get, post},
};
use procure_domain::clock::now_ms;
use procure_domain::{
    monitor::{CronSpec, OfferRef},
    order::Platform,
};
use procure_store::{
    StoreError,
    catalogue::Offer,
    monitors::{Monitor, MonitorStatus, NewMonitor, Snapshot},
};
use procure_workflows::monitor::monitor_schedule_id;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

pub const MAX_PRODUCTS: usize = 200;
pub const MAX_OFFERS_PER_PRODUCT: usize = 10;
/// Alert thresholds up to a tenfold move.
pub const MAX_THRESHOLD_BPS: u32 = 100_000;
pub const DEFAULT_THRESHOLD_BPS: u32 = 500;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/price-monitors", post(create).get(list))
        .route("/api/v1/price-monitors/{id}", get(show).delete(delete))
        .route("/api/v1/price-monitors/{id}/pause", post(pause))
        .route("/api/v1/price-monitors/{id}/resume", post(resume))
        .route("/api/v1/price-monitors/{id}/run", post(run_now))
        .route("/api/v1/products/{sku}/prices", get(prices))
        .route("/api/v1/price-alerts", get(alerts))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferBody {
    pub platform: String,
    pub offer_id: String,
    #[serde(default)]
    pub spec_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub sku: String,
    /// Offers to add to the product's candidates; its known offers are watched anyway.
    #[serde(default)]
    pub offers: Vec<OfferBody>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMonitor {
    pub name: String,
    pub cron: String,
    #[serde(default)]
    pub threshold_bps: Option<u32>,
    pub destination_country: String,
    pub products: Vec<ProductBody>,
    #[serde(default)]
    pub paused: bool,
}

fn view(m: Monitor) -> MonitorView {
    let now = now_ms();
    let cron = CronSpec::parse(&m.cron).ok();
    let next_runs_ms = match (&cron, m.status) {
        (Some(c), MonitorStatus::Active) => c.next_runs(now, 5),
        _ => Vec::new(),
    };
    MonitorView {
        schedule: ScheduleView {
            schedule_id: monitor_schedule_id(&m.id),
            in_sync: m.synced_version >= m.version,
            error: m.sync_error.clone(),
            overlap_policy: "skip".into(),
            catchup_window_secs: cron
                .as_ref()
                .map(|c| crate::schedules::catchup_window(c, now).as_secs())
                .unwrap_or_default(),
        },
        monitor_id: m.id,
        name: m.name,
        cron: m.cron,
        threshold_bps: m.threshold_bps,
        destination_country: m.destination_country,
        status: m.status,
        skus: m.skus,
        next_runs_ms,
        created_at_ms: m.created_at_ms,
        updated_at_ms: m.updated_at_ms,
    }
}

fn path_id(id: &str) -> Result<(), ApiError> {
    if id_ok(id) {
        Ok(())
    } else {
        Err(ApiError::NotFound("price monitor"))
    }
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound("price monitor"),
        other => other.into(),
    }
}

/// Everything but the cron expression, which is checked first and answered with a 400.
fn validate(req: &CreateMonitor, state: &AppState) -> Result<NewMonitor, ApiError> {
    let mut errors = crate::text::lines(req);
    let mut err = |f: String, m: &str| {
        errors.push(FieldError {
            field: f,
            message: m.to_owned(),
        })
    };
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        err("name".into(), "must be 1 to 100 characters");
    }
    let threshold_bps = req.threshold_bps.unwrap_or(DEFAULT_THRESHOLD_BPS);
    if threshold_bps > MAX_THRESHOLD_BPS {
        err(
            "threshold_bps".into(),
            "must be 0 to 100000 basis points (0 reports every move)",
        );
    }
    if state
        .config
        .pricing
        .destination(&req.destination_country)
        .is_none()
    {
        err(
            "destination_country".into(),
            "unsupported destination country",
        );
    }
    if req.products.is_empty() || req.products.len() > MAX_PRODUCTS {
        err("products".into(), "between 1 and 200 products required");
    }
    let mut skus = HashSet::new();
    let mut offers_seen = HashSet::new();
    let mut products = Vec::with_capacity(req.products.len());
    for (i, p) in req.products.iter().enumerate() {
        if p.sku.is_empty() || p.sku.len() > 64 {
            err(format!("products[{i}].sku"), "must be 1 to 64 characters");
        } else if !skus.insert(p.sku.as_str()) {
            err(format!("products[{i}].sku"), "duplicate product");
        }
        if p.offers.len() > MAX_OFFERS_PER_PRODUCT {
            err(
                format!("products[{i}].offers"),
                "at most 10 offers per product",
            );
        }
        let mut offers = Vec::with_capacity(p.offers.len());
        for (j, o) in p.offers.iter().enumerate() {
            let at = format!("products[{i}].offers[{j}]");
            let platform = o.platform.parse::<Platform>();
            if platform.is_err() {
                err(
                    format!("{at}.platform"),
                    "must be one of 1688, taobao, pinduoduo",
                );
            }
            if !id_ok(&o.offer_id) {
                err(
                    format!("{at}.offer_id"),
                    "must be 1 to 128 letters, digits, '-' or '_'",
                );
            }
            if !o.spec_id.is_empty() && !id_ok(&o.spec_id) {
                err(
                    format!("{at}.spec_id"),
                    "must be empty or 1 to 128 letters, digits, '-' or '_'",
                );
            }
            if let Ok(platform) = platform {
                if !offers_seen.insert((platform, o.offer_id.clone())) {
                    err(at.to_string(), "offer listed twice");
                }
                offers.push(OfferRef {
                    platform,
                    offer_id: o.offer_id.clone(),
                    spec_id: o.spec_id.clone(),
                });
            }
        }
        products.push((p.sku.clone(), offers));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(NewMonitor {
        id: format!("pm_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_owned(),
        cron: String::new(),
        threshold_bps,
        destination_country: req.destination_country.clone(),
        paused: req.paused,
        products,
    })
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<CreateMonitor>,
) -> Result<(StatusCode, Json<MonitorView>), ApiError> {
    caller.require(&[Role::Operator])?;
    let req = body.read()?;
    let cron = CronSpec::parse(&req.cron)
        .map_err(|e| ApiError::BadRequest("invalid_cron", format!("cron: {e}")))?;
    let min = state.config.timings.monitor_min_period;
    let period_ms = cron.period_ms(now_ms());
    if period_ms < min.as_millis() as i64 {
        return Err(ApiError::BadRequest(
            "invalid_cron",
            format!(
                "cron: {:?} runs every {} s; the shortest period allowed is {} s",
                cron.as_str(),
                period_ms / 1000,
                min.as_secs()
            ),
        ));
    }
    let mut new = validate(&req, &state)?;
    new.cron = cron.as_str().to_owned();
    let monitor = state
        .store
        .create_monitor(&new)
        .await
        .map_err(|e| match e {
            StoreError::UnknownSku(sku) => {
                ApiError::field("products", format!("unknown sku {sku}"))
            }
            StoreError::StateConflict(m) => ApiError::Conflict("offer_taken", m),
            other => other.into(),
        })?;
    state.outbox_notify.notify_one();
    tracing::info!(monitor_id = %monitor.id, cron = %monitor.cron, products = monitor.skus.len(), "price monitor created");
    Ok((StatusCode::CREATED, Json(view(monitor))))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<MonitorList>, ApiError> {
    caller.require(&[Role::Operator])?;
    let monitors = state.store.monitors().await?;
    Ok(Json(MonitorList {
        monitors: monitors.into_iter().map(view).collect(),
    }))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MonitorDetail>, ApiError> {
    caller.require(&[Role::Operator])?;
    path_id(&id)?;
    let m = state.store.monitor(&id).await.map_err(not_found)?;
    let skus: HashSet<&str> = m.skus.iter().map(String::as_str).collect();
    let offers = state
        .store
        .offers_all()
        .await?
        .into_iter()
        .filter(|o| skus.contains(o.sku.as_str()))
        .map(OfferView::from)
        .collect();
    let recent_runs = state
        .store
        .monitor_runs(&id, 10)
        .await?
        .into_iter()
        .map(|(recorded_at_ms, summary)| RunView {
            recorded_at_ms,
            summary,
        })
        .collect();
    let recent_alerts = state
        .store
        .price_alerts(Some(&id), None, 20)
        .await?
        .into_iter()
        .map(AlertView::from)
        .collect();
    Ok(Json(MonitorDetail {
        monitor: view(m),
        offers,
        recent_runs,
        recent_alerts,
    }))
}

async fn set_status(
    state: &AppState,
    id: &str,
    status: MonitorStatus,
) -> Result<Json<MonitorView>, ApiError> {
    path_id(id)?;
    let m = state
        .store
        .set_monitor_status(id, status)
        .await
        .map_err(not_found)?;
    state.outbox_notify.notify_one();
    tracing::info!(monitor_id = %id, status = status.as_str(), "price monitor changed");
    Ok(Json(view(m)))
}

async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MonitorView>, ApiError> {
    caller.require(&[Role::Operator])?;
    set_status(&state, &id, MonitorStatus::Paused).await
}

async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MonitorView>, ApiError> {
    caller.require(&[Role::Operator])?;
    set_status(&state, &id, MonitorStatus::Active).await
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<MonitorView>, ApiError> {
    caller.require(&[Role::Operator])?;
    set_status(&state, &id, MonitorStatus::Deleted).await
}

async fn run_now(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<MonitorView>), ApiError> {
    caller.require(&[Role::Operator])?;
    path_id(&id)?;
    let m = state.store.trigger_monitor(&id).await.map_err(not_found)?;
    state.outbox_notify.notify_one();
    Ok((StatusCode::ACCEPTED, Json(view(m))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
}

async fn prices(
    State(state): State<AppState>,
    caller: Caller,
    Path(sku): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<ProductPrices>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=2_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 2000"));
    }
    if !id_ok(&sku) {
        return Err(ApiError::NotFound("product"));
    }
    let listing = state.store.listing(&sku).await.map_err(|e| match e {
        StoreError::UnknownSku(_) => ApiError::NotFound("product"),
        other => other.into(),
    })?;
    let current: Vec<Offer> = state
        .store
        .offers_all()
        .await?
        .into_iter()
        .filter(|o| o.sku == sku)
        .collect();
    let mut by_offer: BTreeMap<(Platform, String), OfferHistory> = current
        .iter()
        .map(|o| {
            (
                (o.platform, o.offer_id.clone()),
                OfferHistory {
                    platform: o.platform,
                    offer_id: o.offer_id.clone(),
                    spec_id: o.spec_id.clone(),
                    current: Some(o.clone().into()),
                    history: Vec::new(),
                },
            )
        })
        .collect();
    for s in state.store.price_history(&sku, limit).await? {
        let Snapshot {
            platform,
            offer_id,
            spec_id,
            observed_at_ms,
            listed,
            price_fen,
            stock,
            landed,
            destination_country,
            monitor_id,
            run_key,
        } = s;
        by_offer
            .entry((platform, offer_id.clone()))
            .or_insert_with(|| OfferHistory {
                platform,
                offer_id,
                spec_id,
                current: None,
                history: Vec::new(),
            })
            .history
            .push(PricePoint {
                observed_at_ms,
                listed,
                price_fen,
                stock,
                landed: landed.map(|l| LandedView {
                    cost_fen: l.cost_fen,
                    cost: l.cost.into(),
                    shipping_line: l.line,
                    destination_country: destination_country.clone(),
                }),
                monitor_id,
                run_key,
            });
    }
    let alerts = state.store.price_alerts(None, Some(&sku), 50).await?;
    Ok(Json(ProductPrices {
        sku: listing.sku,
        title: listing.title,
        quoted_platform: listing.platform,
        quoted_offer_id: listing.offer_id,
        quoted_price_fen: listing.price_fen,
        offers: by_offer.into_values().collect(),
        alerts: alerts.into_iter().map(AlertView::from).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    pub monitor_id: Option<String>,
    pub sku: Option<String>,
    pub limit: Option<i64>,
}

async fn alerts(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 1000"));
    }
    for (field, v) in [("monitor_id", &q.monitor_id), ("sku", &q.sku)] {
        if v.as_deref().is_some_and(|v| !id_ok(v)) {
            return Err(ApiError::field(
                field,
                "must be 1 to 128 letters, digits, '-' or '_'",
            ));
        }
    }
    let alerts = state
        .store
        .price_alerts(q.monitor_id.as_deref(), q.sku.as_deref(), limit)
        .await?;
    Ok(Json(AlertList::from(alerts)))
}
