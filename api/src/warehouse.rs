//! The consolidation warehouse: inbound scans (matched to an order by its id, by the label we
//! ask sellers to print, `{order}-L{line}`, or by the seller's domestic waybill number as its
//! marketplace or purchaser reported it; a parcel matching no order, a waybill of two orders, or
//! an order nothing has been bought for yet goes to the exceptions list with the reason), the
//! exceptions list and its resolution, a customer's stored items, and the customer's storage
//! choice (extend for a fee, or dispose). Shipping stored items is a parcel (`parcels.rs`).

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::warehouse::{ExceptionList, ItemList};
use crate::{ApiError, AppState, error::FieldError};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::{get, post},
};
use procure_domain::clock::now_ms;
use procure_domain::{
    OrderState,
    quote::Dimensions,
    status::{WarehouseExceptionStatus, WarehouseItemStatus},
};
use procure_store::{
    StoreError,
    outbox::{OrderSignal, OutboxMessage},
    read_model::OrderDetail,
    warehouse::Scan,
};
use procure_workflows::order::StorageChoice;
use serde::{Deserialize, Serialize};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/warehouse/inbound", post(inbound))
        .route("/api/v1/warehouse/exceptions", get(exceptions))
        .route(
            "/api/v1/warehouse/exceptions/{id}/resolve",
            post(resolve_exception),
        )
        .route("/api/v1/warehouse/items", get(items))
        .route("/api/v1/orders/{id}/storage", post(storage_choice))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundScan {
    /// The order the parcel belongs to, when the label names it.
    #[serde(default)]
    pub order_id: Option<String>,
    /// Whatever else the label or waybill says (e.g. `{order}-L1`, a domestic tracking number).
    #[serde(default)]
    pub reference: Option<String>,
    /// The seller's domestic waybill number on the parcel, matched to the order it was
    /// recorded for.
    #[serde(default)]
    pub waybill: Option<String>,
    pub weight_g: u32,
    pub l_mm: u32,
    pub w_mm: u32,
    pub h_mm: u32,
    #[serde(default)]
    pub photo_urls: Vec<String>,
}

fn measure_errors(weight_g: u32, dims: [(&str, u32); 3]) -> Vec<FieldError> {
    let mut e = Vec::new();
    if weight_g == 0 || weight_g > 70_000 {
        e.push(FieldError {
            field: "weight_g".into(),
            message: "must be 1 to 70000".into(),
        });
    }
    for (f, v) in dims {
        if v == 0 || v > 3_000 {
            e.push(FieldError {
                field: f.into(),
                message: "must be 1 to 3000".into(),
            });
        }
    }
    e
}

/// Weight and dimensions as the warehouse measured them, validated.
pub(crate) fn measures(
    weight_g: u32,
    l_mm: u32,
    w_mm: u32,
    h_mm: u32,
) -> Result<Dimensions, ApiError> {
    let e = measure_errors(weight_g, [("l_mm", l_mm), ("w_mm", w_mm), ("h_mm", h_mm)]);
    if e.is_empty() {
        Ok(Dimensions { l_mm, w_mm, h_mm })
    } else {
        Err(ApiError::Validation(e))
    }
}

/// A domestic waybill number as typed or scanned: 4 to 40 letters, digits or `-`. This is
/// procure's own bound on input (no vendor defines one); waybills the marketplaces report are
/// stored as they come.
pub(crate) fn waybill_errors(field: &str, waybill: &str) -> Vec<FieldError> {
    let ok = (4..=40).contains(&waybill.len())
        && waybill
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Vec::new()
    } else {
        vec![FieldError {
            field: field.into(),
            message: "4 to 40 letters, digits or -".into(),
        }]
    }
}

fn id_like(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The order a label names: our order id, or `{order}-L{line}` as sellers print it.
fn order_from_reference(reference: &str) -> &str {
    match reference.rsplit_once("-L") {
        Some((order, line)) if !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()) => {
            order
        }
        _ => reference,
    }
}

/// Whether anything of the order has been bought, from the read model: its timeline reached
/// `Purchased` (or `InboundTransit`). That holds on through a later `NeedsOperator`; it holds
/// for none of the states before the purchase (`PendingPayment`, `Paid`, `Procuring`, a price
/// change's `AwaitingCustomer`), whose workflow expects no goods. The timeline is written with
/// each transition the workflow makes, so it never runs ahead of the workflow: a scan accepted
/// here finds its workflow past the purchase.
fn bought(order: &OrderDetail) -> bool {
    order
        .timeline
        .iter()
        .any(|e| matches!(e.state, OrderState::Purchased | OrderState::InboundTransit))
}

/// Keep a parcel that cannot be applied on the exceptions list, with why (202: the parcel is
/// recorded, an operator resolves it).
async fn exception(
    state: &AppState,
    label: &str,
    scan: &Scan,
    reason: String,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let id = state
        .store
        .add_warehouse_exception(label, scan, &reason)
        .await?;
    tracing::warn!(exception = id, %reason, "inbound parcel kept as an exception");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"status": "exception", "exception_id": id, "reason": reason})),
    ))
}

/// A scan is recorded and the order's workflow signalled in one transaction, so a scan is never
/// lost while Temporal is unreachable. A parcel nobody can match, or one for an order with
/// nothing bought, is kept as an exception.
async fn inbound(
    State(state): State<AppState>,
    caller: Caller,
    body: JsonBody<InboundScan>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(&[Role::Warehouse, Role::Operator])?;
    let scan = body.read()?;
    let mut e = crate::text::lines(&scan);
    e.extend(measure_errors(
        scan.weight_g,
        [
            ("l_mm", scan.l_mm),
            ("w_mm", scan.w_mm),
            ("h_mm", scan.h_mm),
        ],
    ));
    if scan.photo_urls.len() > 20
        || scan
            .photo_urls
            .iter()
            .any(|u| u.len() > 500 || !u.starts_with("http"))
    {
        e.push(FieldError {
            field: "photo_urls".into(),
            message: "at most 20 http(s) URLs of ≤ 500 characters".into(),
        });
    }
    let label = match (&scan.order_id, &scan.reference, &scan.waybill) {
        (Some(o), None, None) if id_like(o) => Some(Label::OrderId(o.clone())),
        (None, Some(r), None) if id_like(r) => Some(Label::Reference(r.clone())),
        (None, None, Some(w)) => {
            let bad = waybill_errors("waybill", w);
            let ok = bad.is_empty();
            e.extend(bad);
            ok.then(|| Label::Waybill(w.clone()))
        }
        (None, None, None) => {
            e.push(FieldError {
                field: "order_id".into(),
                message: "order_id, reference or waybill is required".into(),
            });
            None
        }
        (Some(_), None, None) | (None, Some(_), None) => {
            let field = if scan.order_id.is_some() {
                "order_id"
            } else {
                "reference"
            };
            e.push(FieldError {
                field: field.into(),
                message: "1 to 64 letters, digits, - or _".into(),
            });
            None
        }
        _ => {
            e.push(FieldError {
                field: "order_id".into(),
                message: "give one of order_id, reference or waybill".into(),
            });
            None
        }
    };
    let (true, Some(label)) = (e.is_empty(), label) else {
        return Err(ApiError::Validation(e));
    };
    let measured = Scan {
        weight_g: scan.weight_g,
        dims: Dimensions {
            l_mm: scan.l_mm,
            w_mm: scan.w_mm,
            h_mm: scan.h_mm,
        },
        photo_urls: scan.photo_urls,
    };
    let (order_id, matched_by) = match &label {
        Label::OrderId(id) => (id.clone(), "order_id"),
        Label::Reference(r) => {
            let named = order_from_reference(r);
            match state.store.order(named).await {
                Ok(_) => (named.to_owned(), "label"),
                // Not our label: perhaps the seller's waybill.
                Err(StoreError::NotFound) if waybill_errors("reference", r).is_empty() => {
                    match by_waybill(&state, r, &measured).await? {
                        Ok(id) => (id, "waybill"),
                        Err(kept) => return Ok(kept),
                    }
                }
                Err(StoreError::NotFound) => {
                    return exception(&state, r, &measured, "matches no order".into()).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
        Label::Waybill(w) => match by_waybill(&state, w, &measured).await? {
            Ok(id) => (id, "waybill"),
            Err(kept) => return Ok(kept),
        },
    };
    let label = label.text().to_owned();
    let order = match state.store.order_detail(&order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => {
            return exception(&state, &label, &measured, "matches no order".into()).await;
        }
        Err(err) => return Err(err.into()),
    };
    // Goods of an order nothing has been bought for cannot be its goods (yet): kept aside for
    // an operator, and the order's workflow is not told, so it cannot skip its wait.
    if !bought(&order) {
        let reason = format!(
            "order {} is {}: nothing has been bought for it",
            order.order.id, order.order.state
        );
        return exception(&state, &label, &measured, reason).await;
    }
    let order = order.order;
    if order.state.is_terminal() {
        return Err(ApiError::Conflict(
            "order_not_expecting_parcel",
            format!("order is {}", order.state),
        ));
    }
    let until = now_ms() + state.config.timings.storage_free.as_millis() as i64;
    let received = state
        .store
        .receive_scan(&order.id, &measured, until)
        .await?;
    state.outbox_notify.notify_one();
    let status = if received {
        "received"
    } else {
        "already_received"
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"order_id": order.id, "status": status, "matched_by": matched_by})),
    ))
}

/// What a scan names the parcel by.
enum Label {
    OrderId(String),
    Reference(String),
    Waybill(String),
}

impl Label {
    fn text(&self) -> &str {
        match self {
            Label::OrderId(s) | Label::Reference(s) | Label::Waybill(s) => s,
        }
    }
}

type Answer = (StatusCode, Json<serde_json::Value>);

/// The one order a waybill was recorded for, or the exception kept when none or several match
/// (a waybill of two orders: which one the parcel is for is an operator's call).
async fn by_waybill(
    state: &AppState,
    waybill: &str,
    scan: &Scan,
) -> Result<Result<String, Answer>, ApiError> {
    let orders = state.store.orders_by_waybill(waybill).await?;
    match orders.as_slice() {
        [one] => Ok(Ok(one.clone())),
        [] => Ok(Err(exception(
            state,
            waybill,
            scan,
            format!("waybill {waybill} matches no order's seller shipment"),
        )
        .await?)),
        several => Ok(Err(exception(
            state,
            waybill,
            scan,
            format!(
                "waybill {waybill} matches {} orders ({}): an operator decides which one the parcel is for",
                several.len(),
                several.join(", ")
            ),
        )
        .await?)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    pub status: Option<String>,
}

async fn exceptions(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ExceptionList>, ApiError> {
    caller.require(&[Role::Warehouse, Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let filter = match q.status.as_deref().unwrap_or("open") {
        "all" => None,
        s => Some(
            s.parse::<WarehouseExceptionStatus>()
                .map_err(|_| ApiError::field("status", "open, resolved or all"))?,
        ),
    };
    Ok(Json(ExceptionList::from(
        state.store.warehouse_exceptions(filter).await?,
    )))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    pub order_id: String,
}

/// An operator matched an exception to its order: the scan applies as if it had matched.
async fn resolve_exception(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonBody<Resolve>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(&[Role::Warehouse, Role::Operator])?;
    // Exception ids are integers; anything else names none (a structured 404, not a plain
    // text path rejection).
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound("warehouse exception"))?;
    let r = body.read()?;
    let text = crate::text::lines(&r);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    if !id_like(&r.order_id) {
        return Err(ApiError::field(
            "order_id",
            "1 to 64 letters, digits, - or _",
        ));
    }
    let order = match state.store.order_detail(&r.order_id).await {
        Ok(o) => o,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("order")),
        Err(e) => return Err(e.into()),
    };
    if !bought(&order) {
        return Err(ApiError::Conflict(
            "order_not_purchased",
            format!(
                "order is {}: nothing has been bought for it yet",
                order.order.state
            ),
        ));
    }
    let order = order.order;
    if order.state.is_terminal() {
        return Err(ApiError::Conflict(
            "order_not_expecting_parcel",
            format!("order is {}", order.state),
        ));
    }
    let until = now_ms() + state.config.timings.storage_free.as_millis() as i64;
    match state
        .store
        .resolve_warehouse_exception(id, &order.id, until)
        .await
    {
        Ok(_) => {
            state.outbox_notify.notify_one();
            Ok((
                StatusCode::ACCEPTED,
                Json(
                    serde_json::json!({"exception_id": id, "order_id": order.id, "status": "resolved"}),
                ),
            ))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("open exception")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemsQuery {
    pub customer_id: String,
    pub status: Option<String>,
}

async fn items(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ItemsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ItemList>, ApiError> {
    caller.require(&[Role::Warehouse, Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    if !id_like(&q.customer_id) {
        return Err(ApiError::field(
            "customer_id",
            "1 to 64 letters, digits, - or _",
        ));
    }
    let filter = match q.status.as_deref().unwrap_or("stored") {
        "all" => None,
        s => Some(s.parse::<WarehouseItemStatus>().map_err(|_| {
            ApiError::field("status", "stored, in_parcel, shipped, disposed or all")
        })?),
    };
    Ok(Json(ItemList::from(
        state.store.warehouse_items(&q.customer_id, filter).await?,
    )))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case", tag = "choice")]
pub enum Choice {
    Extend { days: u32 },
    Dispose,
}

/// The customer extends storage (charged per day; the order resumes once paid) or has the goods
/// disposed. To ship them, the customer requests a parcel instead.
async fn storage_choice(
    State(state): State<AppState>,
    caller: Caller,
    Path(order_id): Path<String>,
    body: JsonBody<Choice>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let choice = body.read()?;
    let text = crate::text::lines(&choice);
    if !text.is_empty() {
        return Err(ApiError::Validation(text));
    }
    if let Choice::Extend { days } = choice
        && !(1..=365).contains(&days)
    {
        return Err(ApiError::field("days", "must be 1 to 365"));
    }
    if !id_like(&order_id) {
        return Err(ApiError::NotFound("stored goods"));
    }
    let item = match state.store.warehouse_item(&order_id).await {
        Ok(i) => i,
        Err(StoreError::NotFound) => return Err(ApiError::NotFound("stored goods")),
        Err(e) => return Err(e.into()),
    };
    caller.owns(&item.customer_id)?;
    if item.status != WarehouseItemStatus::Stored {
        return Err(ApiError::Conflict(
            "not_in_storage",
            format!("the goods are {}", item.status),
        ));
    }
    let choice = match choice {
        Choice::Extend { days } => StorageChoice::Extend { days },
        Choice::Dispose => StorageChoice::Dispose,
    };
    let signal = OutboxMessage::SignalOrder(OrderSignal::StorageChoice(choice));
    state.store.enqueue(&order_id, &signal).await?;
    state.outbox_notify.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"order_id": order_id, "status": "accepted"})),
    ))
}
