//! Authentication and roles on every endpoint (except health and the signed webhooks), on a
//! real system: without a token → 401, with a forged or expired token → 401, with a role the
//! endpoint does not serve → 403, with another customer's token on a customer's resource →
//! 403, and with an allowed role → neither. The codec role (the Web UI's credential) passes the
//! codec decode endpoint alone. Prints the role matrix
//! (`cargo test --test roles -- --nocapture`).

mod support;

use procure::demo::Script;
use procure_api::auth::{Role, TokenKey};
use procure_domain::OrderState;
use serde_json::{Value, json};
use support::*;

struct Case {
    method: &'static str,
    path: String,
    body: Option<Value>,
    allowed: &'static [Role],
    /// The customer owning the resource, for endpoints a customer may use on their own.
    owner: Option<String>,
}

fn case(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    allowed: &'static [Role],
    owner: Option<&str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        allowed,
        owner: owner.map(str::to_owned),
    }
}

const CUSTOMER_OPERATOR: &[Role] = &[Role::Customer, Role::Operator];
const CUSTOMER_STAFF: &[Role] = &[Role::Customer, Role::Operator, Role::Warehouse];
const WAREHOUSE: &[Role] = &[Role::Warehouse, Role::Operator];
const PURCHASER: &[Role] = &[Role::Purchaser, Role::Operator];
const OPERATOR: &[Role] = &[Role::Operator];
const ADMIN: &[Role] = &[];
/// The Web UI's credential: decoding payloads, nothing else.
const DECODE: &[Role] = &[Role::Operator, Role::Codec];

async fn send(app: &TestApp, c: &Case, token: Option<&str>) -> u16 {
    let http = reqwest::Client::new();
    let url = format!("{}{}", app.system.api_url, c.path);
    let mut req = match c.method {
        "GET" => http.get(url),
        "POST" => http.post(url),
        "PATCH" => http.patch(url),
        "DELETE" => http.delete(url),
        other => panic!("method {other}"),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &c.body {
        req = req.json(b).header("Idempotency-Key", "roles-test");
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_endpoint_demands_a_token_and_the_right_role() {
    let app = spawn_app(fast()).await;
    // A customer's order that went all the way (stored, parcelled, shipped, delivered).
    let idx = sku_cheapest_on(&app, "1688").await;
    let (id, product) = place(&app, idx).await;
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    let order = app.driver.order(&id).await.unwrap();
    let owner = order["customer_id"].as_str().unwrap().to_owned();
    let parcel = order["warehouse"]["parcel_id"].as_str().unwrap().to_owned();
    let sku = product["sku"].as_str().unwrap();
    let own = Some(owner.as_str());
    let address =
        json!({"name": "A", "line1": "B", "city": "C", "postal_code": "1", "country": "US"});

    let cases = vec![
        case(
            "POST",
            "/api/v1/quotes",
            Some(json!({})),
            CUSTOMER_OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/orders",
            Some(json!({"quote_id": "q_none", "customer_id": owner, "shipping_address": address})),
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "GET",
            format!("/api/v1/orders?customer_id={owner}"),
            None,
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "GET",
            format!("/api/v1/orders/{id}"),
            None,
            CUSTOMER_STAFF,
            own,
        ),
        case(
            "POST",
            format!("/api/v1/orders/{id}/price-changes/pc_none"),
            Some(json!({"decision": "accept"})),
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "POST",
            format!("/api/v1/orders/{id}/storage"),
            Some(json!({"choice": "dispose"})),
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "POST",
            "/api/v1/parcels",
            Some(json!({"customer_id": owner, "order_ids": [id]})),
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "GET",
            format!("/api/v1/parcels/{parcel}"),
            None,
            CUSTOMER_STAFF,
            own,
        ),
        case(
            "POST",
            format!("/api/v1/warehouse/parcels/{parcel}/packed"),
            Some(json!({})),
            WAREHOUSE,
            None,
        ),
        case(
            "POST",
            "/api/v1/warehouse/inbound",
            Some(json!({})),
            WAREHOUSE,
            None,
        ),
        case("GET", "/api/v1/warehouse/exceptions", None, WAREHOUSE, None),
        case(
            "POST",
            "/api/v1/warehouse/exceptions/999/resolve",
            Some(json!({})),
            WAREHOUSE,
            None,
        ),
        case(
            "GET",
            format!("/api/v1/warehouse/items?customer_id={owner}"),
            None,
            WAREHOUSE,
            None,
        ),
        case("GET", "/api/v1/purchaser/tasks", None, PURCHASER, None),
        case(
            "POST",
            "/api/v1/purchaser/tasks/pt_none/complete",
            Some(json!({})),
            PURCHASER,
            None,
        ),
        case("GET", "/api/v1/admin/accounts", None, ADMIN, None),
        case(
            "POST",
            "/api/v1/admin/accounts",
            Some(json!({})),
            ADMIN,
            None,
        ),
        case("GET", "/api/v1/admin/accounts/none", None, ADMIN, None),
        case(
            "PATCH",
            "/api/v1/admin/accounts/none",
            Some(json!({})),
            ADMIN,
            None,
        ),
        case("GET", "/api/v1/admin/outbox/dead", None, OPERATOR, None),
        case(
            "POST",
            "/api/v1/admin/outbox/dead/999999/retry",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/admin/outbox/dead/999999/discard",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/price-monitors",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case("GET", "/api/v1/price-monitors", None, OPERATOR, None),
        case(
            "GET",
            "/api/v1/price-monitors/pm_none",
            None,
            OPERATOR,
            None,
        ),
        case(
            "DELETE",
            "/api/v1/price-monitors/pm_none",
            None,
            OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/price-monitors/pm_none/pause",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/price-monitors/pm_none/resume",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case(
            "POST",
            "/api/v1/price-monitors/pm_none/run",
            Some(json!({})),
            OPERATOR,
            None,
        ),
        case(
            "GET",
            format!("/api/v1/products/{sku}/prices"),
            None,
            OPERATOR,
            None,
        ),
        case("GET", "/api/v1/price-alerts", None, OPERATOR, None),
        case("GET", "/api/v1/events", None, CUSTOMER_OPERATOR, None),
        case(
            "GET",
            format!("/api/v1/customers/{owner}/notifications"),
            None,
            CUSTOMER_OPERATOR,
            own,
        ),
        case(
            "POST",
            "/api/v1/webhook-endpoints",
            Some(json!({})),
            ADMIN,
            None,
        ),
        case("GET", "/api/v1/webhook-endpoints", None, ADMIN, None),
        case(
            "GET",
            "/api/v1/webhook-endpoints/we_none",
            None,
            ADMIN,
            None,
        ),
        case(
            "PATCH",
            "/api/v1/webhook-endpoints/we_none",
            Some(json!({})),
            ADMIN,
            None,
        ),
        case(
            "DELETE",
            "/api/v1/webhook-endpoints/we_none",
            None,
            ADMIN,
            None,
        ),
        case(
            "POST",
            "/api/v1/webhook-endpoints/we_none/rotate-secret",
            Some(json!({})),
            ADMIN,
            None,
        ),
        case(
            "POST",
            "/api/v1/webhook-endpoints/we_none/replay?since=0",
            None,
            ADMIN,
            None,
        ),
        case(
            "GET",
            "/api/v1/webhook-endpoints/we_none/attempts",
            None,
            ADMIN,
            None,
        ),
        case(
            "POST",
            "/api/codec/decode",
            Some(json!({"payloads": []})),
            DECODE,
            None,
        ),
        case(
            "POST",
            "/api/codec/encode",
            Some(json!({"payloads": []})),
            OPERATOR,
            None,
        ),
    ];

    let keys = TokenKey::development();
    let now = procure_domain::clock::now_ms() / 1000;
    let token =
        |role: Role, customer: Option<&str>| keys.issue("roles-test", role, customer, now, 600);
    let forged = {
        let t = token(Role::Admin, None);
        let (head, _) = t.rsplit_once('.').unwrap();
        format!("{head}.AAAA")
    };
    let expired = keys.issue("roles-test", Role::Admin, None, now - 7_200, 600);
    let expired_codec = keys.issue("roles-test", Role::Codec, None, now - 7_200, 600);
    let stranger = token(Role::Customer, Some("cust-stranger"));

    let mut matrix = String::from(
        "| endpoint | no token | forged / expired | customer | operator | warehouse | purchaser | admin | codec | other customer |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for c in &cases {
        let what = format!("{} {}", c.method, c.path);
        assert_eq!(send(&app, c, None).await, 401, "{what}: no token");
        assert_eq!(
            send(&app, c, Some(&forged)).await,
            401,
            "{what}: forged token"
        );
        assert_eq!(
            send(&app, c, Some(&expired)).await,
            401,
            "{what}: expired token"
        );
        assert_eq!(
            send(&app, c, Some(&expired_codec)).await,
            401,
            "{what}: expired codec token"
        );
        let mut row = format!("| `{what}` | 401 | 401 |");
        for role in [
            Role::Customer,
            Role::Operator,
            Role::Warehouse,
            Role::Purchaser,
            Role::Admin,
            Role::Codec,
        ] {
            // A customer acts as the resource's owner here; strangers are checked below.
            let customer = (role == Role::Customer)
                .then(|| c.owner.clone().unwrap_or_else(|| "cust-0".into()));
            let status = send(&app, c, Some(&token(role, customer.as_deref()))).await;
            let allowed = role == Role::Admin || c.allowed.contains(&role);
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{what}: {role:?} allowed, got {status}"
                );
            } else {
                assert_eq!(status, 403, "{what}: {role:?} must be refused");
            }
            let _ = std::fmt::Write::write_fmt(
                &mut row,
                format_args!(
                    " {} |",
                    if allowed {
                        format!("✓ {status}")
                    } else {
                        "403".into()
                    }
                ),
            );
        }
        if c.owner.is_some() {
            assert_eq!(
                send(&app, c, Some(&stranger)).await,
                403,
                "{what}: another customer"
            );
            row.push_str(" 403 |");
        } else {
            row.push_str(" – |");
        }
        matrix.push_str(&row);
        matrix.push('\n');
    }

    // Public: health; the webhooks answer to their signatures, not to tokens.
    let health = reqwest::get(format!("{}/health", app.system.api_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // The OpenAPI document is public and lists every endpoint checked above.
    let doc: Value = reqwest::get(format!("{}/api/openapi.json", app.system.api_url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for c in &cases {
        let path = c.path.split('?').next().unwrap();
        let known = documented.iter().any(|d| {
            let (a, b): (Vec<&str>, Vec<&str>) =
                (d.split('/').collect(), path.split('/').collect());
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.starts_with('{') || x == y)
        });
        assert!(known, "{} {} is not in /api/openapi.json", c.method, c.path);
    }
    println!("{matrix}");
    let _ = std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/role-matrix.md"),
        &matrix,
    );
    app.system.stop().await.unwrap();
}
