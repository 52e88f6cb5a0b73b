//! `GET /api/openapi.json`: the API's OpenAPI 3.0 document: every endpoint, its role, its
//! request body and the answers it may give (each error in the one structured shape). The
//! property-based fuzzer (`scripts/fuzz.sh`, schemathesis) runs against it.

use crate::{AppState, admin_outbox, events, monitors, quotes, webhook_endpoints};
use axum::{Json, Router, routing::get};
use procure_domain::events::{EventType, Field, Shape};
use serde_json::{Value, json};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(document()) }))
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(schema: Value) -> Value {
    json!({"description": "success", "content": {"application/json": {"schema": schema}}})
}

/// The answers every authenticated operation may give besides its success.
fn errors(mut responses: serde_json::Map<String, Value>, body: bool) -> Value {
    for (code, what) in [
        ("400", "malformed request (body, query or header)"),
        ("401", "missing, forged or expired bearer token"),
        ("403", "the role, or the customer, may not do this"),
        ("404", "no such resource"),
        ("409", "conflicts with the current state"),
        ("422", "invalid fields (each named)"),
        ("503", "a dependency is unavailable; retry later"),
    ] {
        responses.insert(code.into(), error_response(what));
    }
    if body {
        responses.insert("413".into(), error_response("body over 64 KiB"));
        responses.insert("415".into(), error_response("not application/json"));
    }
    Value::Object(responses)
}

fn op(summary: &str, roles: &str, body: Option<Value>, success: (&str, Value)) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(success.0.into(), ok(success.1));
    let mut o = json!({
        "summary": summary,
        "description": format!("Roles: {roles}."),
        "security": [{"bearer": []}],
        "responses": errors(responses, body.is_some()),
    });
    if let Some(schema) = body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema}}});
    }
    o
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 128}})
}

fn query(name: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema})
}

fn object() -> Value {
    json!({"type": "object"})
}

/// Characters free text may not hold (`procure_domain::text::check_line`): control characters
/// and the bidirectional controls; a body holding one is refused with a 422 naming the field.
const NO_CONTROLS: &str =
    "^[^\\u0000-\\u001F\\u007F-\\u009F\\u061C\\u200E\\u200F\\u202A-\\u202E\\u2066-\\u2069]*$";

/// A free-text field typed by a person: one printable line of `min` to `max` characters.
fn text(min: u32, max: u32) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": NO_CONTROLS})
}

fn id_string() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9_-]+$"})
}

pub fn document() -> Value {
    let address = json!({
        "type": "object", "additionalProperties": false,
        "required": ["name", "line1", "city", "postal_code", "country"],
        "properties": {
            "name": text(1, 100),
            "line1": text(1, 200),
            "line2": text(0, 200),
            "city": text(1, 100),
            "postal_code": text(1, 20),
            "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "phone": text(0, 30)
        }
    });
    let quote_body = json!({
        "type": "object", "additionalProperties": false,
        "required": ["items", "destination_country", "currency"],
        "properties": {
            "items": {"type": "array", "minItems": 1, "maxItems": quotes::MAX_ITEMS, "items": {
                "type": "object", "additionalProperties": false, "required": ["sku", "quantity"],
                "properties": {"sku": {"type": "string", "minLength": 1, "maxLength": 64},
                               "quantity": {"type": "integer", "minimum": 1, "maximum": quotes::MAX_QUANTITY}}}},
            "destination_country": {"type": "string"},
            "currency": {"type": "string"},
            "shipping_line": {"type": "string"},
            "insurance": {"type": "boolean"},
            "guaranteed": {"type": "boolean"}
        }
    });
    let order_body = json!({
        "type": "object", "additionalProperties": false,
        "required": ["quote_id", "customer_id", "shipping_address"],
        "properties": {"quote_id": id_string(), "customer_id": id_string(), "shipping_address": address}
    });
    let monitor_body = json!({
        "type": "object", "additionalProperties": false,
        "required": ["name", "cron", "destination_country", "products"],
        "properties": {
            "name": text(1, 100),
            "cron": {"type": "string", "description": "five crontab fields, seven (second … year) or @hourly/@daily/…"},
            "threshold_bps": {"type": "integer", "minimum": 0, "maximum": monitors::MAX_THRESHOLD_BPS},
            "destination_country": {"type": "string"},
            "paused": {"type": "boolean"},
            "products": {"type": "array", "minItems": 1, "maxItems": monitors::MAX_PRODUCTS, "items": {
                "type": "object", "additionalProperties": false, "required": ["sku"],
                "properties": {"sku": {"type": "string", "minLength": 1, "maxLength": 64},
                    "offers": {"type": "array", "maxItems": monitors::MAX_OFFERS_PER_PRODUCT, "items": {
                        "type": "object", "additionalProperties": false, "required": ["platform", "offer_id"],
                        "properties": {"platform": {"type": "string", "enum": ["1688", "taobao", "pinduoduo"]},
                                       "offer_id": id_string(), "spec_id": {"type": "string", "maxLength": 128}}}}}}}
        }
    });
    let payloads = json!({"type": "object", "required": ["payloads"], "properties": {"payloads": {
        "type": "array", "items": {"type": "object", "properties": {
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            "data": {"type": "string"}}}}}});
    let with_id = |required: &[&str]| json!({"type": "object", "required": required});
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, operation: Value, params: Vec<Value>| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        let mut operation = operation;
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        entry[method] = operation;
    };
    let (cust, ops, wh, pur, admin) = (
        "customer (own), operator, admin",
        "operator, admin",
        "warehouse, operator, admin",
        "purchaser, operator, admin",
        "admin",
    );
    add(
        "/api/v1/quotes",
        "post",
        op(
            "Quote an all-in price",
            "customer, operator, admin",
            Some(quote_body),
            ("201", with_id(&["quote_id", "total", "breakdown"])),
        ),
        vec![],
    );
    add(
        "/api/v1/orders",
        "post",
        op(
            "Place an order from a quote (Idempotency-Key required)",
            cust,
            Some(order_body),
            ("201", with_id(&["id", "state", "total"])),
        ),
        vec![
            json!({"name": "Idempotency-Key", "in": "header", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 255}}),
        ],
    );
    add(
        "/api/v1/orders",
        "get",
        op("List orders", cust, None, ("200", with_id(&["orders"]))),
        vec![
            query("state", json!({"type": "string"})),
            query("customer_id", json!({"type": "string"})),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 500}),
            ),
            query("before_ms", json!({"type": "integer"})),
        ],
    );
    add(
        "/api/v1/orders/{id}",
        "get",
        op(
            "An order with its timeline; payable once `payment_intent_id` is set (moments after \
             accept, whatever the engine's backlog)",
            "customer (own), operator, warehouse, admin",
            None,
            ("200", with_id(&["id", "state", "timeline"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/orders/{id}/cancel",
        "post",
        op(
            "Cancel an order (the workflow's cancel_order update): 200 granted, 409 refused with the reason",
            "customer (own), operator, admin",
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}}}),
            ),
            ("200", with_id(&["granted", "state", "message"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/orders/{id}/lines/{line_no}/decision",
        "post",
        op(
            "Drop a line that cannot be bought, or cancel the whole order (first answer wins)",
            "customer (own), operator, admin",
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["decision"], "properties": {"decision": {"type": "string", "enum": ["drop", "cancel_all"]}}}),
            ),
            ("200", with_id(&["accepted", "state", "message"])),
        ),
        vec![path_param("id"), path_param("line_no")],
    );
    add(
        "/api/v1/orders/{id}/price-changes/{change_id}",
        "post",
        op(
            "Accept or decline a price change",
            cust,
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["decision"], "properties": {"decision": {"type": "string", "enum": ["accept", "decline"]}}}),
            ),
            ("200", with_id(&["price_change"])),
        ),
        vec![path_param("id"), path_param("change_id")],
    );
    add(
        "/api/v1/orders/{id}/storage",
        "post",
        op(
            "Extend storage or dispose of the goods",
            cust,
            Some(
                json!({"type": "object", "required": ["choice"], "properties": {"choice": {"type": "string", "enum": ["extend", "dispose"]}, "days": {"type": "integer", "minimum": 1, "maximum": 365}}}),
            ),
            ("202", object()),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/parcels",
        "post",
        op(
            "Ship stored orders in one parcel",
            cust,
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["customer_id", "order_ids"], "properties": {
            "customer_id": id_string(), "order_ids": {"type": "array", "minItems": 1, "items": id_string()}, "shipping_line": {"type": "string"}}}),
            ),
            ("201", with_id(&["id", "status"])),
        ),
        vec![],
    );
    add(
        "/api/v1/parcels/{id}",
        "get",
        op(
            "A parcel with its settlements and tracking",
            "customer (own), operator, warehouse, admin",
            None,
            ("200", with_id(&["id", "status"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/warehouse/parcels/{id}/packed",
        "post",
        op(
            "The packing report",
            wh,
            Some(
                json!({"type": "object", "required": ["weight_g", "l_mm", "w_mm", "h_mm"], "properties": {
            "weight_g": {"type": "integer", "minimum": 1}, "l_mm": {"type": "integer", "minimum": 1}, "w_mm": {"type": "integer", "minimum": 1}, "h_mm": {"type": "integer", "minimum": 1}}}),
            ),
            ("200", with_id(&["id", "status"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/warehouse/inbound",
        "post",
        op(
            "Inbound scan: the parcel named by one of order_id, reference (our label or a waybill) or waybill",
            wh,
            Some(
                json!({"type": "object", "required": ["weight_g", "l_mm", "w_mm", "h_mm"], "properties": {
                "order_id": {"type": "string", "maxLength": 64},
                "reference": {"type": "string", "maxLength": 64, "description": "{order}-L{line} as sellers print it, or a domestic waybill"},
                "waybill": {"type": "string", "pattern": "^[A-Za-z0-9-]{4,40}$", "description": "the seller's domestic waybill, matched to the order it was recorded for; a waybill of two orders becomes an exception"},
                "weight_g": {"type": "integer", "minimum": 1, "maximum": 70000},
                "l_mm": {"type": "integer", "minimum": 1, "maximum": 3000},
                "w_mm": {"type": "integer", "minimum": 1, "maximum": 3000},
                "h_mm": {"type": "integer", "minimum": 1, "maximum": 3000},
                "photo_urls": {"type": "array", "maxItems": 20, "items": {"type": "string"}}}}),
            ),
            (
                "202",
                json!({"type": "object", "properties": {
                "order_id": {"type": "string"}, "status": {"type": "string"},
                "matched_by": {"type": "string", "enum": ["order_id", "label", "waybill"]},
                "exception_id": {"type": "integer"}, "reason": {"type": "string"}}}),
            ),
        ),
        vec![],
    );
    add(
        "/api/v1/warehouse/exceptions",
        "get",
        op(
            "Unmatched inbound parcels",
            wh,
            None,
            ("200", with_id(&["exceptions"])),
        ),
        vec![query("status", json!({"type": "string"}))],
    );
    add(
        "/api/v1/warehouse/exceptions/{id}/resolve",
        "post",
        op(
            "Match an unmatched parcel to its order",
            wh,
            Some(
                json!({"type": "object", "required": ["order_id"], "properties": {"order_id": id_string()}}),
            ),
            ("200", object()),
        ),
        vec![json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}})],
    );
    add(
        "/api/v1/warehouse/items",
        "get",
        op("Stored goods", wh, None, ("200", with_id(&["items"]))),
        vec![query("customer_id", json!({"type": "string"}))],
    );
    add(
        "/api/v1/purchaser/tasks",
        "get",
        op(
            "Assisted purchases to make",
            pur,
            None,
            ("200", with_id(&["tasks"])),
        ),
        vec![query("status", json!({"type": "string"}))],
    );
    add(
        "/api/v1/purchaser/tasks/{id}/complete",
        "post",
        op(
            "Report an assisted purchase made",
            pur,
            Some(
                json!({"type": "object", "required": ["marketplace_order_id", "amount_paid_fen"], "properties": {
            "marketplace_order_id": {"type": "string", "minLength": 1, "maxLength": 64}, "amount_paid_fen": {"type": "integer", "minimum": 1},
            "carrier": {"type": "string", "maxLength": 40, "description": "the seller's domestic carrier, with waybill"},
            "waybill": {"type": "string", "pattern": "^[A-Za-z0-9-]{4,40}$", "description": "the seller's domestic waybill number, with carrier"}}}),
            ),
            ("200", object()),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/admin/accounts",
        "get",
        op(
            "Buyer accounts",
            admin,
            None,
            ("200", with_id(&["accounts"])),
        ),
        vec![query("platform", json!({"type": "string"}))],
    );
    add(
        "/api/v1/admin/accounts",
        "post",
        op(
            "Add a buyer account (credentials are write-only)",
            admin,
            Some(object()),
            ("201", with_id(&["id"])),
        ),
        vec![],
    );
    add(
        "/api/v1/admin/accounts/{id}",
        "get",
        op("A buyer account", admin, None, ("200", with_id(&["id"]))),
        vec![path_param("id")],
    );
    add(
        "/api/v1/admin/accounts/{id}",
        "patch",
        op(
            "Change a buyer account",
            admin,
            Some(object()),
            ("200", with_id(&["id"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/admin/outbox/dead",
        "get",
        op(
            "Outbox dead letters (work given up on) with the dead and pending counts",
            ops,
            None,
            ("200", with_id(&["dead_count", "pending_count", "dead"])),
        ),
        vec![query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": admin_outbox::MAX_LIMIT}),
        )],
    );
    for (verb, summary, status) in [
        (
            "retry",
            "Send a dead letter again (pending, attempts from zero)",
            "pending",
        ),
        ("discard", "Give a dead letter up", "discarded"),
    ] {
        add(
            &format!("/api/v1/admin/outbox/dead/{{id}}/{verb}"),
            "post",
            op(
                summary,
                ops,
                None,
                (
                    "200",
                    json!({"type": "object", "required": ["id", "status"],
                           "properties": {"id": {"type": "integer"}, "status": {"type": "string", "enum": [status]}}}),
                ),
            ),
            vec![path_param("id")],
        );
    }
    add(
        "/api/v1/price-monitors",
        "post",
        op(
            "Create a price monitor (a Temporal Schedule)",
            ops,
            Some(monitor_body),
            ("201", with_id(&["monitor_id", "schedule"])),
        ),
        vec![],
    );
    add(
        "/api/v1/price-monitors",
        "get",
        op("Price monitors", ops, None, ("200", with_id(&["monitors"]))),
        vec![],
    );
    add(
        "/api/v1/price-monitors/{id}",
        "get",
        op(
            "A price monitor with its recent runs and alerts",
            ops,
            None,
            ("200", with_id(&["monitor_id", "recent_runs"])),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/price-monitors/{id}",
        "delete",
        op(
            "Delete a price monitor and its schedule",
            ops,
            None,
            ("200", with_id(&["monitor_id"])),
        ),
        vec![path_param("id")],
    );
    for (verb, summary, code) in [
        ("pause", "Pause", "200"),
        ("resume", "Resume", "200"),
        ("run", "Run now", "202"),
    ] {
        add(
            &format!("/api/v1/price-monitors/{{id}}/{verb}"),
            "post",
            op(summary, ops, None, (code, with_id(&["monitor_id"]))),
            vec![path_param("id")],
        );
    }
    add(
        "/api/v1/products/{sku}/prices",
        "get",
        op(
            "A product's price history",
            ops,
            None,
            ("200", with_id(&["sku", "offers"])),
        ),
        vec![
            path_param("sku"),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 2000}),
            ),
        ],
    );
    add(
        "/api/v1/price-alerts",
        "get",
        op("Price alerts", ops, None, ("200", with_id(&["alerts"]))),
        vec![
            query("monitor_id", json!({"type": "string"})),
            query("sku", json!({"type": "string"})),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
        ],
    );
    add(
        "/api/codec/decode",
        "post",
        op(
            "Decode Temporal payloads (Web UI codec server)",
            "operator, codec (decode only), admin",
            Some(payloads.clone()),
            ("200", payloads.clone()),
        ),
        vec![],
    );
    add(
        "/api/codec/encode",
        "post",
        op(
            "Encode Temporal payloads",
            ops,
            Some(payloads.clone()),
            ("200", payloads),
        ),
        vec![],
    );
    // The event log: the pull feed, a customer's notifications, webhook subscriptions.
    let page_params = || {
        vec![
            query(
                "after",
                json!({"type": "string", "pattern": "^[0-9]+$", "description": "a cursor from an earlier page (`next_cursor`); absent: the start of the log"}),
            ),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": events::MAX_LIMIT}),
            ),
        ]
    };
    let event_list = json!({"type": "object", "required": ["events", "next_cursor", "has_more"], "properties": {
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        "next_cursor": {"type": "string"}, "has_more": {"type": "boolean"}}});
    let mut feed_params = page_params();
    feed_params.push(query(
        "type",
        json!({"type": "string", "description": "comma-separated catalogue types (docs/events.md)"}),
    ));
    add(
        "/api/v1/events",
        "get",
        op(
            "The event log after a cursor, oldest first (a customer sees their own events); the envelope webhooks deliver",
            "customer (own), operator, admin",
            None,
            ("200", event_list.clone()),
        ),
        feed_params,
    );
    let mut notification_params = page_params();
    notification_params.insert(0, path_param("id"));
    add(
        "/api/v1/customers/{id}/notifications",
        "get",
        op(
            "A customer's notifications (storage reminder and expiry, price change, charge due, cancellation) after a cursor",
            cust,
            None,
            ("200", event_list),
        ),
        notification_params,
    );
    let money_cny = json!({"type": "object", "properties": {"minor": {"type": "integer"}, "currency": {"type": "string", "enum": ["CNY"]}}});
    let attribute = json!({"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}});
    let alternative = json!({"type": "object", "properties": {
        "sku": {"type": "string"}, "platform": {"type": "string", "enum": ["1688", "taobao", "pinduoduo"]},
        "offer_id": {"type": "string"}, "spec_id": {"type": "string"}, "title": {"type": "string"}, "price": money_cny.clone(),
        "linked_at_ms": {"type": "integer"}}});
    let product = json!({"type": "object", "required": ["id", "platform", "product_id", "title", "skus", "measures", "status"], "properties": {
        "id": {"type": "string", "description": "{platform}-{product id}: 1688-…, taobao-…, pdd-<goods_sign>"},
        "platform": {"type": "string", "enum": ["1688", "taobao", "pinduoduo"]},
        "product_id": {"type": "string", "description": "the marketplace's id it is bought by (1688 offer id, Taobao item id, Pinduoduo goods_sign)"},
        "title": {"type": "string"}, "image_urls": {"type": "array", "items": {"type": "string"}},
        "attributes": {"type": "array", "items": attribute.clone()},
        "seller": {"type": "object", "properties": {"id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]}}},
        "min_order_quantity": {"type": ["integer", "null"]},
        "measures": {"type": "object", "properties": {"weight_g": {"type": "integer"}, "dimensions": {"type": "object"},
            "estimated": {"type": "boolean", "description": "the marketplace gave none: procure's estimate"}}},
        "status": {"type": "string", "enum": ["active", "delisted"]},
        "skus": {"type": "array", "items": {"type": "object", "properties": {
            "sku": {"type": "string", "description": "what POST /api/v1/quotes names"}, "spec_id": {"type": "string"},
            "attributes": {"type": "array", "items": attribute}, "price": money_cny, "stock": {"type": ["integer", "null"]},
            "image_url": {"type": ["string", "null"]}, "quote_ready": {"type": "boolean"},
            "alternatives": {"type": "array", "description": "the same product elsewhere, linked by an operator: procurement also buys there",
                "items": alternative.clone()}}}},
        "fetched_at_ms": {"type": "integer"}, "imported_at_ms": {"type": "integer"}}});
    add(
        "/api/v1/products/import",
        "post",
        op(
            "Import a product by the link a customer pastes (1688, Taobao/Tmall, Pinduoduo) or by platform and id; 201 new, 200 refreshed; 422 invalid_link, 404 product_delisted, 424 marketplace_error, 429 import_busy",
            "customer, operator, admin",
            Some(
                json!({"type": "object", "additionalProperties": false, "properties": {
                "url": {"type": "string", "description": "the link as pasted (tracking parameters and mobile forms accepted)"},
                "platform": {"type": "string", "enum": ["1688", "taobao", "pinduoduo"]},
                "id": {"type": "string"}}}),
            ),
            ("201", product.clone()),
        ),
        vec![],
    );
    add(
        "/api/v1/products",
        "get",
        op(
            "Imported products by id, a page at a time, optionally those whose title contains query",
            "customer, operator, admin",
            None,
            (
                "200",
                json!({"type": "object", "properties": {"products": {"type": "array", "items": product.clone()},
                "next_cursor": {"type": "string", "description": "absent on the last page"}}}),
            ),
        ),
        vec![
            query("query", json!({"type": "string", "maxLength": 100})),
            query("cursor", json!({"type": "string"})),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": 200}),
            ),
        ],
    );
    add(
        "/api/v1/products/{id}",
        "get",
        op(
            "One imported product (served from the product cache)",
            "customer, operator, admin",
            None,
            ("200", product),
        ),
        vec![path_param("id")],
    );
    let confidence = json!({"type": "string", "enum": ["high", "medium", "low"]});
    add(
        "/api/v1/products/{id}/alternatives",
        "post",
        op(
            "Link a SKU of the product to a listing of the same product elsewhere, both ways: procurement ranks and fails over across both; 201 new, 200 linked already; 409 same_product, 409 product_delisted, 409 variant_mismatch",
            ops,
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["sku", "alternative_sku"], "properties": {
                "sku": {"type": "string", "description": "a SKU of this product"},
                "alternative_sku": {"type": "string", "description": "an imported product's SKU or a catalogue listing"},
                "despite_variants": {"type": "boolean", "description": "link although the two SKUs' variant values differ (refused otherwise: 409 variant_mismatch)"}}}),
            ),
            (
                "201",
                json!({"type": "object", "properties": {"sku": {"type": "string"}, "alternative": alternative,
                "suggestion": {"type": "object", "description": "the matching suggestion for the two products, when both are imported",
                    "properties": {"confidence": confidence.clone(), "confidence_bps": {"type": "integer"},
                    "variant_bps": {"type": "integer", "description": "how alike the two SKUs' variant values are"},
                    "reasons": {"type": "array", "items": {"type": "string"}}}}}}),
            ),
        ),
        vec![path_param("id")],
    );
    let mut unlinked = op(
        "Undo a link between a SKU and its alternative (both ways)",
        ops,
        None,
        ("204", json!({})),
    );
    unlinked["responses"]["204"] = json!({"description": "unlinked"});
    add(
        "/api/v1/products/{id}/alternatives/{sku}/{alternative_sku}",
        "delete",
        unlinked,
        vec![
            path_param("id"),
            path_param("sku"),
            path_param("alternative_sku"),
        ],
    );
    add(
        "/api/v1/products/{id}/matches",
        "get",
        op(
            "Imported products that look like the same product (title and attribute values), best first, each saying how confident it is, which SKUs pair and why; never links by itself",
            ops,
            None,
            (
                "200",
                json!({"type": "object", "properties": {"product": {"type": "string"},
                "min_confidence_bps": {"type": "integer"},
                "matches": {"type": "array", "maxItems": crate::alternatives::MAX_MATCHES, "items": {"type": "object", "properties": {
                    "product": {"type": "string"}, "platform": {"type": "string"}, "title": {"type": "string"},
                    "confidence": confidence, "confidence_bps": {"type": "integer", "minimum": 0, "maximum": 10000},
                    "title_bps": {"type": "integer"}, "attributes_bps": {"type": "integer"},
                    "skus": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"},
                        "alternative_sku": {"type": "string"}, "bps": {"type": "integer"}, "linked": {"type": "boolean"}}}},
                    "reasons": {"type": "array", "items": {"type": "string"}}}}}}}),
            ),
        ),
        vec![
            path_param("id"),
            query(
                "platform",
                json!({"type": "string", "enum": ["1688", "taobao", "pinduoduo"]}),
            ),
        ],
    );
    let endpoint = json!({"$ref": "#/components/schemas/WebhookEndpoint"});
    let with_secret = json!({"allOf": [endpoint.clone(), {"type": "object", "required": ["secret"], "properties": {
        "secret": {"type": "string", "pattern": "^whsec_", "description": "Standard Webhooks secret; shown in this answer only"}}}]});
    let endpoint_body = |required: &[&str]| {
        json!({"type": "object", "additionalProperties": false, "required": required, "properties": {
            "url": {"type": "string", "minLength": 1, "maxLength": 2048, "description": "http or https; internal addresses only where webhooks.allow_internal_targets (or development) allows"},
            "event_types": {"type": "array", "minItems": 1, "items": {"type": "string", "enum":
                std::iter::once("*").chain(EventType::ALL.iter().map(|t| t.as_str())).collect::<Vec<_>>()}},
            "description": text(0, 200),
            "enabled": {"type": "boolean"}}})
    };
    add(
        "/api/v1/webhook-endpoints",
        "post",
        op(
            "Subscribe a webhook endpoint; the answer shows its secret, once",
            admin,
            Some(endpoint_body(&["url", "event_types"])),
            ("201", with_secret.clone()),
        ),
        vec![],
    );
    add(
        "/api/v1/webhook-endpoints",
        "get",
        op(
            "The webhook endpoints (no secrets)",
            admin,
            None,
            (
                "200",
                json!({"type": "object", "required": ["endpoints"], "properties": {
                "endpoints": {"type": "array", "items": endpoint.clone()}}}),
            ),
        ),
        vec![],
    );
    add(
        "/api/v1/webhook-endpoints/{id}",
        "get",
        op("A webhook endpoint", admin, None, ("200", endpoint.clone())),
        vec![path_param("id")],
    );
    add(
        "/api/v1/webhook-endpoints/{id}",
        "patch",
        op(
            "Change a webhook endpoint; enabling a disabled one sends its pending deliveries now",
            admin,
            Some(endpoint_body(&[])),
            ("200", endpoint.clone()),
        ),
        vec![path_param("id")],
    );
    let mut removed = op(
        "Remove a webhook endpoint with its deliveries and attempts",
        admin,
        None,
        ("204", json!({})),
    );
    removed["responses"]["204"] = json!({"description": "removed"});
    add(
        "/api/v1/webhook-endpoints/{id}",
        "delete",
        removed,
        vec![path_param("id")],
    );
    add(
        "/api/v1/webhook-endpoints/{id}/rotate-secret",
        "post",
        op(
            "Rotate the secret: the new one (shown once) signs from now on, the old one beside it for the overlap",
            admin,
            Some(
                json!({"type": "object", "additionalProperties": false, "properties": {
                "overlap_s": {"type": "integer", "minimum": 0, "maximum": webhook_endpoints::MAX_OVERLAP_S}}}),
            ),
            ("200", with_secret),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/webhook-endpoints/{id}/replay",
        "post",
        op(
            "Deliver again every event of the endpoint's types since a time",
            admin,
            None,
            (
                "202",
                json!({"type": "object", "required": ["queued", "since"], "properties": {
                "queued": {"type": "integer"}, "since": {"type": "string"}}}),
            ),
        ),
        vec![
            path_param("id"),
            json!({"name": "since", "in": "query", "required": true, "schema": {"type": "string",
                "description": "RFC 3339 (2026-12-01T00:00:00Z) or milliseconds since the epoch"}}),
        ],
    );
    add(
        "/api/v1/webhook-endpoints/{id}/attempts",
        "get",
        op(
            "The endpoint's delivery attempts, newest first: status code, error, duration",
            admin,
            None,
            (
                "200",
                json!({"type": "object", "required": ["attempts"], "properties": {
                "attempts": {"type": "array", "items": {"type": "object", "required":
                    ["id", "event_id", "event_type", "attempt", "replay", "started_at", "duration_ms", "outcome"]}},
                "next_before": {"type": "integer", "nullable": true}}}),
            ),
        ),
        vec![
            path_param("id"),
            query("before", json!({"type": "string", "pattern": "^[0-9]+$"})),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": webhook_endpoints::MAX_ATTEMPTS_PAGE}),
            ),
        ],
    );
    // The email channel: a customer's contact, and what was sent.
    let contact = json!({"$ref": "#/components/schemas/CustomerContact"});
    add(
        "/api/v1/customers/{id}/contact",
        "get",
        op(
            "The customer's email contact",
            cust,
            None,
            ("200", contact.clone()),
        ),
        vec![path_param("id")],
    );
    add(
        "/api/v1/customers/{id}/contact",
        "put",
        op(
            "Set the customer's email contact: the address (sealed at rest, never logged), whether notifications are emailed, the templates' locale",
            cust,
            Some(
                json!({"type": "object", "additionalProperties": false, "required": ["email", "email_notifications"], "properties": {
                "email": {"type": "string", "minLength": 3, "maxLength": procure_domain::email::MAX_ADDRESS_LEN, "format": "email",
                    "description": "ASCII local-part@domain; a bad one is a 422 naming `email`"},
                "email_notifications": {"type": "boolean", "description": "email the customer notifications (docs/events.md)"},
                "locale": {"type": "string", "enum": procure_domain::email::Locale::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                    "description": "the templates' language; absent: en"}}}),
            ),
            ("200", contact),
        ),
        vec![path_param("id")],
    );
    let mut forgotten = op(
        "Remove the customer's email contact",
        cust,
        None,
        ("204", json!({})),
    );
    forgotten["responses"]["204"] = json!({"description": "removed"});
    add(
        "/api/v1/customers/{id}/contact",
        "delete",
        forgotten,
        vec![path_param("id")],
    );
    add(
        "/api/v1/admin/email-deliveries",
        "get",
        op(
            "Email deliveries, newest first, with their attempts: pending, sent, failed (attempts spent) or skipped (no contact, notifications off)",
            admin,
            None,
            (
                "200",
                json!({"type": "object", "required": ["deliveries"], "properties": {
                    "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/EmailDelivery"}},
                    "next_before": {"type": "integer", "nullable": true}}}),
            ),
        ),
        vec![
            query(
                "status",
                json!({"type": "string", "enum": procure_store::email::STATUSES}),
            ),
            query("before", json!({"type": "integer"})),
            query(
                "limit",
                json!({"type": "integer", "minimum": 1, "maximum": crate::contacts::MAX_LIMIT}),
            ),
        ],
    );
    for path in ["/health", "/health/live"] {
        add(
            path,
            "get",
            json!({"summary": "Liveness: the process serves requests", "security": [], "responses": {"200": ok(json!({"type": "object", "required": ["status"]}))}}),
            vec![],
        );
    }
    let check = json!({"type": "object", "required": ["status", "took_ms"], "properties": {
        "status": {"type": "string", "enum": ["ok", "failed", "not_configured"]},
        "took_ms": {"type": "integer"}, "error": {"type": "string"}}});
    let readiness = json!({"type": "object", "required": ["status", "database", "temporal"], "properties": {
        "status": {"type": "string", "enum": ["ready", "not_ready"]},
        "database": check.clone(), "temporal": check}});
    add(
        "/health/ready",
        "get",
        json!({"summary": "Readiness: the database and Temporal answer within 3 s each", "security": [],
               "responses": {"200": ok(readiness.clone()),
                             "503": {"description": "a check failed; the body names it", "content": {"application/json": {"schema": readiness}}}}}),
        vec![],
    );

    json!({
        "openapi": "3.0.3",
        "info": {"title": "procure", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Durable procurement orchestrator for cross-border agent purchasing. Signed webhooks (payments, tracking) are not listed: they answer to their signatures. Business events (the catalogue, `docs/events.md`) are served by `GET /api/v1/events` and delivered to subscribed webhook endpoints signed per Standard Webhooks; each type's payload is the schema `EventData_<type>` and `x-event-types` lists them. Every error, including an unknown path (404) and a method a path does not answer (405, with `Allow`), has the `Error` body; every string a person sends is one printable line (no control or bidirectional characters), or the request is refused with a 422 naming the field."},
        "paths": paths,
        "x-event-types": event_types(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": schemas(),
        }
    })
}

/// A documented payload field as a JSON schema.
fn field_schema(fd: &Field) -> Value {
    let mut schema = match fd.shape {
        Shape::String => json!({"type": "string"}),
        Shape::Integer => json!({"type": "integer"}),
        Shape::Boolean => json!({"type": "boolean"}),
        Shape::Money => json!({"$ref": "#/components/schemas/Money"}),
        Shape::Dimensions => json!({"$ref": "#/components/schemas/Dimensions"}),
        Shape::Strings => json!({"type": "array", "items": {"type": "string"}}),
        Shape::List(inner) => json!({"type": "array", "items": object_schema(inner)}),
    };
    if schema.get("$ref").is_some() {
        // 3.0: a reference takes no siblings; the description goes beside it through allOf.
        schema = json!({"allOf": [schema]});
    }
    schema["description"] = json!(fd.doc);
    if !fd.required {
        schema["nullable"] = json!(true);
    }
    schema
}

fn object_schema(fields: &[Field]) -> Value {
    let mut properties = serde_json::Map::new();
    for fd in fields {
        properties.insert(fd.name.into(), field_schema(fd));
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({"type": "object", "required": required, "properties": properties})
}

/// The schema name of a type's payload: `EventData_order.paid` → `EventData_order_paid`.
fn data_schema_name(t: EventType) -> String {
    format!("EventData_{}", t.as_str().replace('.', "_"))
}

/// Every catalogue type: its version, payload schema and whether it is a customer notification.
fn event_types() -> Value {
    let mut out = serde_json::Map::new();
    for t in EventType::ALL {
        out.insert(
            t.as_str().into(),
            json!({"version": t.version(), "summary": t.summary(), "subject": t.subject_doc(),
                   "customer_notification": t.notifies_customer(),
                   "data": {"$ref": format!("#/components/schemas/{}", data_schema_name(*t))}}),
        );
    }
    Value::Object(out)
}

fn schemas() -> Value {
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"},
                "fields": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}}}
        }),
    );
    schemas.insert(
        "Money".into(),
        json!({"type": "object", "required": ["minor", "currency"], "properties": {
            "minor": {"type": "integer", "description": "integer minor units"},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}}),
    );
    schemas.insert(
        "Dimensions".into(),
        json!({"type": "object", "required": ["l_mm", "w_mm", "h_mm"], "properties": {
            "l_mm": {"type": "integer"}, "w_mm": {"type": "integer"}, "h_mm": {"type": "integer"}}}),
    );
    let mut data = Vec::new();
    for t in EventType::ALL {
        let mut schema = object_schema(t.fields());
        schema["description"] = json!(format!(
            "`{}` v{}: {}",
            t.as_str(),
            t.version(),
            t.summary()
        ));
        schema["example"] = t.example();
        let name = data_schema_name(*t);
        data.push(json!({"$ref": format!("#/components/schemas/{name}")}));
        schemas.insert(name, schema);
    }
    schemas.insert(
        "Event".into(),
        json!({
            "type": "object",
            "description": "One event of the log, as the feed lists it and as a webhook delivers it (the body, exactly; `webhook-id` is `id`). `data` is the payload schema of `type` (`x-event-types`).",
            "required": ["id", "cursor", "type", "version", "timestamp", "subject", "sequence", "customer_id", "data"],
            "properties": {
                "id": {"type": "string", "pattern": "^evt_[0-9]+$"},
                "cursor": {"type": "string", "pattern": "^[0-9]+$"},
                "type": {"type": "string", "enum": EventType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()},
                "version": {"type": "integer", "minimum": 1},
                "timestamp": {"type": "string", "format": "date-time"},
                "subject": {"type": "string"},
                "sequence": {"type": "integer", "minimum": 1},
                "customer_id": {"type": "string"},
                "order_id": {"type": "string", "nullable": true},
                "parcel_id": {"type": "string", "nullable": true},
                "data": {"anyOf": data}
            }
        }),
    );
    schemas.insert(
        "WebhookEndpoint".into(),
        json!({
            "type": "object",
            "required": ["id", "url", "description", "event_types", "enabled", "deliveries", "created_at_ms", "updated_at_ms"],
            "properties": {
                "id": {"type": "string"}, "url": {"type": "string"}, "description": {"type": "string"},
                "event_types": {"type": "array", "items": {"type": "string"}},
                "enabled": {"type": "boolean"},
                "disabled_reason": {"type": "string", "nullable": true, "description": "why it is disabled: by an admin, after failing for days, or a 410 Gone"},
                "disabled_at_ms": {"type": "integer", "nullable": true},
                "failing_since_ms": {"type": "integer", "nullable": true},
                "last_success_at_ms": {"type": "integer", "nullable": true},
                "previous_secret_until_ms": {"type": "integer", "nullable": true, "description": "the rotation's overlap: until then deliveries carry a signature by the previous secret too"},
                "deliveries": {"type": "object", "required": ["pending", "delivered", "failed"], "properties": {
                    "pending": {"type": "integer"}, "delivered": {"type": "integer"},
                    "failed": {"type": "integer", "description": "given up after the retry window; a replay sends them again"}}},
                "created_at_ms": {"type": "integer"}, "updated_at_ms": {"type": "integer"}
            }
        }),
    );
    schemas.insert(
        "CustomerContact".into(),
        json!({
            "type": "object",
            "required": ["customer_id", "email", "email_notifications", "locale", "created_at_ms", "updated_at_ms"],
            "properties": {
                "customer_id": {"type": "string"}, "email": {"type": "string"},
                "email_notifications": {"type": "boolean"}, "locale": {"type": "string"},
                "created_at_ms": {"type": "integer"}, "updated_at_ms": {"type": "integer"}
            }
        }),
    );
    schemas.insert(
        "EmailDelivery".into(),
        json!({
            "type": "object",
            "description": "One customer notification to its customer by email; never the address.",
            "required": ["id", "event_id", "event_type", "customer_id", "status", "attempts", "created_at_ms", "updated_at_ms", "attempt_log"],
            "properties": {
                "id": {"type": "integer"},
                "event_id": {"type": "string", "pattern": "^evt_[0-9]+$"},
                "event_type": {"type": "string"}, "customer_id": {"type": "string"},
                "status": {"type": "string", "enum": procure_store::email::STATUSES},
                "attempts": {"type": "integer"},
                "next_attempt_at_ms": {"type": "integer", "nullable": true},
                "last_error": {"type": "string", "nullable": true, "description": "the server's answer or what went wrong; why it was skipped"},
                "sent_at_ms": {"type": "integer", "nullable": true},
                "created_at_ms": {"type": "integer"}, "updated_at_ms": {"type": "integer"},
                "attempt_log": {"type": "array", "items": {"type": "object", "required": ["attempt", "started_at_ms", "duration_ms", "outcome"], "properties": {
                    "attempt": {"type": "integer"}, "started_at_ms": {"type": "integer"}, "duration_ms": {"type": "integer"},
                    "outcome": {"type": "string", "enum": ["sent", "failed", "skipped"]},
                    "error": {"type": "string", "nullable": true}}}}
            }
        }),
    );
    Value::Object(schemas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_documents_its_errors_and_security() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                if path.starts_with("/health") {
                    continue;
                }
                for code in ["400", "401", "403", "404", "422"] {
                    assert!(responses.contains_key(code), "{method} {path}: no {code}");
                }
                assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}");
                if op.get("requestBody").is_some() {
                    assert!(responses.contains_key("413"), "{method} {path}: no 413");
                }
            }
        }
        assert_eq!(operations, 58, "every route of the router is documented");
        assert_eq!(doc["openapi"], "3.0.3");
    }

    /// Every catalogue type has its payload schema, whose properties are exactly the fields
    /// the type documents, and its example satisfies the required ones.
    #[test]
    fn every_event_type_is_documented() {
        let doc = document();
        for t in EventType::ALL {
            let schema = &doc["components"]["schemas"][data_schema_name(*t)];
            let props = schema["properties"].as_object().unwrap();
            let names: Vec<&str> = t.fields().iter().map(|f| f.name).collect();
            assert_eq!(
                props
                    .keys()
                    .map(String::as_str)
                    .collect::<std::collections::BTreeSet<_>>(),
                names.iter().copied().collect(),
                "{t}"
            );
            for r in schema["required"].as_array().unwrap() {
                assert!(
                    schema["example"].get(r.as_str().unwrap()).is_some(),
                    "{t}: {r}"
                );
            }
            assert_eq!(
                doc["x-event-types"][t.as_str()]["version"],
                t.version(),
                "{t}"
            );
        }
    }

    /// The documented pattern and `text::check_line` are one rule: the pattern's ranges refuse
    /// exactly the characters the API refuses, and free-text fields carry it.
    #[test]
    fn the_free_text_pattern_is_the_api_rule() {
        let class = NO_CONTROLS
            .strip_prefix("^[^")
            .and_then(|p| p.strip_suffix("]*$"))
            .unwrap();
        let hex = |s: &str| u32::from_str_radix(s, 16).unwrap();
        let mut ranges = Vec::new();
        let mut tokens = class.split("\\u").filter(|t| !t.is_empty());
        while let Some(t) = tokens.next() {
            match t.strip_suffix('-') {
                Some(from) => ranges.push((hex(from), hex(tokens.next().unwrap()))),
                None => ranges.push((hex(t), hex(t))),
            }
        }
        assert!(!ranges.is_empty());
        for c in (0..=0x2fff).filter_map(char::from_u32) {
            let in_pattern = ranges.iter().any(|&(a, b)| (a..=b).contains(&(c as u32)));
            let refused = procure_domain::text::check_line(&c.to_string()).is_err();
            assert_eq!(in_pattern, refused, "U+{:04X}", c as u32);
        }
        let doc = document();
        let address = &doc["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["properties"]["shipping_address"]["properties"];
        for field in ["name", "line1", "line2", "city", "postal_code", "phone"] {
            assert_eq!(address[field]["pattern"], NO_CONTROLS, "{field}");
        }
    }
}
