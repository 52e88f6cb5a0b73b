//! `GET /api/openapi.json`: the API's OpenAPI 3.0 document: every endpoint, its role, its
//! request body and the answers it may give (each error in the one structured shape). The
//! property-based fuzzer (`scripts/fuzz.sh`, schemathesis) runs against it.

use crate::{AppState, admin_outbox, monitors, quotes};
use axum::{Json, Router, routing::get};
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
        op("Inbound scan", wh, Some(object()), ("201", object())),
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
            "marketplace_order_id": {"type": "string", "minLength": 1, "maxLength": 128}, "amount_paid_fen": {"type": "integer", "minimum": 1}}}),
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
                 "description": "Durable procurement orchestrator for cross-border agent purchasing. Signed webhooks (payments, tracking) are not listed: they answer to their signatures. Every error, including an unknown path (404) and a method a path does not answer (405, with `Allow`), has the `Error` body; every string a person sends is one printable line (no control or bidirectional characters), or the request is refused with a 422 naming the field."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {"Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"},
                    "fields": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                        "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}}}
            }}
        }
    })
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
        assert_eq!(operations, 38, "every route of the router is documented");
        assert_eq!(doc["openapi"], "3.0.3");
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
