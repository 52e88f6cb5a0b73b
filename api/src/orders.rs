//! Orders: accept (`POST /api/v1/orders`, exactly once per `Idempotency-Key`), read one with its
//! timeline, list by state.

use crate::auth::{Caller, Role};
use crate::extract::JsonBody;
use crate::views::orders::{OrderDetailView, OrderList, OrderView};
use crate::{ApiError, AppState, error::FieldError, quotes::QuoteDoc};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use procure_domain::clock::now_ms;
use procure_domain::{
    OrderState,
    order::{OrderLine, Platform},
};
use procure_store::{
    StoreError,
    orders::{NewOrder, OrderToAccept},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders", post(create_order).get(list_orders))
        .route("/api/v1/orders/{id}", get(get_order))
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    pub quote_id: String,
    pub customer_id: String,
    pub shipping_address: Address,
}

fn check_len(errors: &mut Vec<FieldError>, field: &str, v: &str, min: usize, max: usize) {
    let n = v.chars().count();
    if n < min || n > max {
        errors.push(FieldError {
            field: field.into(),
            message: format!("must be {min} to {max} characters"),
        });
    }
}

fn validate(req: &CreateOrder) -> Result<(), ApiError> {
    let mut e = crate::text::lines(req);
    check_len(&mut e, "quote_id", &req.quote_id, 1, 64);
    check_len(&mut e, "customer_id", &req.customer_id, 1, 64);
    if !req
        .customer_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        e.push(FieldError {
            field: "customer_id".into(),
            message: "letters, digits, - and _ only".into(),
        });
    }
    let a = &req.shipping_address;
    check_len(&mut e, "shipping_address.name", &a.name, 1, 100);
    check_len(&mut e, "shipping_address.line1", &a.line1, 1, 200);
    check_len(
        &mut e,
        "shipping_address.line2",
        a.line2.as_deref().unwrap_or(""),
        0,
        200,
    );
    check_len(&mut e, "shipping_address.city", &a.city, 1, 100);
    check_len(
        &mut e,
        "shipping_address.postal_code",
        &a.postal_code,
        1,
        20,
    );
    check_len(
        &mut e,
        "shipping_address.phone",
        a.phone.as_deref().unwrap_or(""),
        0,
        30,
    );
    if a.country.len() != 2 || !a.country.chars().all(|c| c.is_ascii_uppercase()) {
        e.push(FieldError {
            field: "shipping_address.country".into(),
            message: "ISO 3166 alpha-2, upper case".into(),
        });
    }
    if e.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(e))
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| {
            ApiError::BadRequest(
                "missing_idempotency_key",
                "the Idempotency-Key header is required".into(),
            )
        })?
        .to_str()
        .map_err(|_| {
            ApiError::BadRequest(
                "invalid_idempotency_key",
                "Idempotency-Key must be visible ASCII".into(),
            )
        })?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::BadRequest(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 characters".into(),
        ));
    }
    Ok(key.to_owned())
}

async fn create_order(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreateOrder>,
) -> Result<(StatusCode, Json<OrderView>), ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let key = idempotency_key(&headers)?;
    let req = body.read()?;
    caller.owns(&req.customer_id)?;
    validate(&req)?;
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&req).map_err(ApiError::internal)?,
    ));

    let quote = match state.store.quote(&req.quote_id).await {
        Ok(q) => q,
        Err(StoreError::NotFound) => return Err(ApiError::field("quote_id", "unknown quote")),
        Err(e) => return Err(e.into()),
    };
    let doc: QuoteDoc = serde_json::from_value(quote.body).map_err(ApiError::internal)?;
    if req.shipping_address.country != doc.destination_country {
        return Err(ApiError::field(
            "shipping_address.country",
            "must match the quote's destination country",
        ));
    }
    let mut lines = Vec::with_capacity(doc.items.len());
    for (i, item) in doc.items.iter().enumerate() {
        let platform: Platform = item.platform.parse().map_err(ApiError::internal)?;
        lines.push(OrderLine {
            line_no: i as u32 + 1,
            sku: item.sku.clone(),
            platform,
            offer_id: item.offer_id.clone(),
            spec_id: item.spec_id.clone(),
            quantity: item.quantity,
            unit_price: item.unit_price,
            max_unit_price: item
                .unit_price
                .basis_points(10_000 + doc.price_tolerance_bps)
                .map_err(ApiError::internal)?,
        });
    }
    let new = NewOrder {
        id: format!("ord_{}", uuid::Uuid::now_v7().simple()),
        customer_id: req.customer_id.clone(),
        quote_id: doc.quote_id.clone(),
        total: quote.total,
        lines,
        shipping_address: serde_json::to_value(&req.shipping_address)
            .map_err(ApiError::internal)?,
        destination_country: doc.destination_country.clone(),
    };
    // An expired quote may still be replayed under its key (the order exists already);
    // only a new order needs a live quote.
    let expired = quote.expires_at_ms < now_ms();
    if expired {
        return match state
            .store
            .create_order_replay_only(&key, &request_hash)
            .await?
        {
            Some(existing) => {
                crate::trace::record_order_id(&existing.id);
                Ok((StatusCode::OK, Json(existing.into())))
            }
            None => Err(ApiError::Conflict(
                "quote_expired",
                "the quote has expired; request a new one".into(),
            )),
        };
    }
    // The request's trace context goes with the outbox row: the workflow starts in this trace.
    let created = state
        .intake
        .accept(OrderToAccept {
            order: new,
            idempotency_key: key,
            request_hash,
            trace_parent: crate::trace::current_traceparent(),
        })
        .await?;
    crate::trace::record_order_id(&created.order.id);
    if created.created {
        state.outbox_notify.notify_one();
        tracing::info!(order_id = %created.order.id, total = %created.order.total, "order accepted");
        Ok((StatusCode::CREATED, Json(created.order.into())))
    } else {
        Ok((StatusCode::OK, Json(created.order.into())))
    }
}

async fn get_order(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrderDetailView>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator, Role::Warehouse])?;
    if id.is_empty() || id.len() > 64 {
        return Err(ApiError::NotFound("order"));
    }
    if crate::id_ok(&id) {
        crate::trace::record_order_id(&id);
    }
    match state.store.order_detail(&id).await {
        Ok(d) => {
            caller.owns(&d.order.customer_id)?;
            Ok(Json(d.into()))
        }
        Err(StoreError::NotFound) => Err(ApiError::NotFound("order")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub state: Option<String>,
    pub customer_id: Option<String>,
    pub limit: Option<i64>,
    pub before_ms: Option<i64>,
}

async fn list_orders(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OrderList>, ApiError> {
    caller.require(&[Role::Customer, Role::Operator])?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest("invalid_query", e.body_text()))?;
    let st = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<OrderState>()
                .map_err(|_| ApiError::field("state", "unknown order state"))?,
        ),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 500"));
    }
    // A customer lists their own orders only.
    let customer = match (caller.customer_id(), q.customer_id.as_deref()) {
        (Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::Forbidden(
                "a customer may list only their own orders".into(),
            ));
        }
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let orders = state
        .store
        .list_orders(st, customer, limit, q.before_ms)
        .await?;
    Ok(Json(OrderList::from(orders)))
}
