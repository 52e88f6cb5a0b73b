//! Alternatives across platforms for imported products, end to end through the API against the
//! sandbox: an operator links a 1688 SKU to the same product on Taobao, an order on the 1688 SKU
//! whose seller runs out is bought on Taobao exactly once, and the matching suggestion finds the
//! same product on another platform, saying how confident it is.

mod support;

use procure_api::auth::Role;
use serde_json::{Value, json};
use support::*;

async fn call(
    app: &TestApp,
    role: Role,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("{}{path}", app.system.api_url);
    let http = reqwest::Client::new();
    let req = match method {
        "POST" => http.post(url).json(&body.unwrap_or(json!({}))),
        "DELETE" => http.delete(url),
        _ => http.get(url),
    };
    let customer = (role == Role::Customer).then_some("cust-alt");
    let r = req
        .bearer_auth(app.driver.token(role, customer))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn import(app: &TestApp, platform: &str, id: &str) -> Value {
    let (status, p) = call(
        app,
        Role::Operator,
        "POST",
        "/api/v1/products/import",
        Some(json!({"platform": platform, "id": id})),
    )
    .await;
    assert!(
        status == 201 || status == 200,
        "{platform} {id}: {status} {p}"
    );
    p
}

fn first_sku(p: &Value) -> String {
    p["skus"][0]["sku"].as_str().unwrap().to_owned()
}

/// A product as a customer reads it.
async fn read_product(app: &TestApp, id: &str) -> (u16, Value) {
    call(
        app,
        Role::Customer,
        "GET",
        &format!("/api/v1/products/{id}"),
        None,
    )
    .await
}

/// Make the generated listing `copy` a seller's copy of the generated listing `of`.
async fn relist(app: &TestApp, copy: (&str, &str), of: (&str, &str)) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/relistings", app.system.sandbox_url))
        .json(&json!({"platform": copy.0, "id": copy.1, "of": {"platform": of.0, "id": of.1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

async fn link(app: &TestApp, product: &str, sku: &str, alternative: &str) -> (u16, Value) {
    call(
        app,
        Role::Operator,
        "POST",
        &format!("/api/v1/products/{product}/alternatives"),
        Some(json!({"sku": sku, "alternative_sku": alternative})),
    )
    .await
}

#[tokio::test]
async fn an_order_whose_1688_seller_runs_out_is_bought_once_from_the_linked_taobao_listing() {
    let app = spawn_app(fast()).await;
    // A generated 1688 offer (one SKU, 569.00 CNY) and a Taobao shop's copy of it (the same
    // variant, 4 % dearer: within the customer's 10 % tolerance of the 1688 price).
    relist(&app, ("taobao", "695028137799"), ("1688", "683461209575")).await;
    let ali = import(&app, "1688", "683461209575").await;
    let tb = import(&app, "taobao", "695028137799").await;
    let (ali_id, tb_id) = (ali["id"].as_str().unwrap(), tb["id"].as_str().unwrap());
    let (ali_sku, tb_sku) = (first_sku(&ali), first_sku(&tb));
    // Both are read, so both are cached, before the link.
    for id in [ali_id, tb_id] {
        for _ in 0..2 {
            let (status, _) = read_product(&app, id).await;
            assert_eq!(status, 200);
        }
    }

    // Refusals first: a customer may not link; the SKU must be the product's; the alternative
    // must be a listing and not the product itself.
    let (status, _) = call(
        &app,
        Role::Customer,
        "POST",
        &format!("/api/v1/products/{ali_id}/alternatives"),
        Some(json!({"sku": ali_sku, "alternative_sku": tb_sku})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, e) = link(&app, ali_id, &tb_sku, &ali_sku).await;
    assert_eq!(
        (status, e["error"]["fields"][0]["field"].as_str()),
        (422, Some("sku")),
        "{e}"
    );
    let (status, e) = link(&app, ali_id, &ali_sku, "no-such-listing").await;
    assert_eq!(
        (status, e["error"]["fields"][0]["field"].as_str()),
        (422, Some("alternative_sku")),
        "{e}"
    );
    let (status, e) = link(&app, ali_id, &ali_sku, &ali_sku).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("same_product")),
        "{e}"
    );

    // The link, with the matching suggestion's view of it.
    let (status, l) = link(&app, ali_id, &ali_sku, &tb_sku).await;
    assert_eq!(status, 201, "{l}");
    assert_eq!(l["alternative"]["sku"], tb_sku.as_str());
    assert_eq!(l["alternative"]["platform"], "taobao");
    assert_eq!(l["suggestion"]["confidence"], "high", "{l}");
    assert_eq!(l["suggestion"]["variant_bps"], 10_000, "{l}");
    assert!(
        l["suggestion"]["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("titles ")
    );
    let (status, again) = link(&app, ali_id, &ali_sku, &tb_sku).await;
    assert_eq!(status, 200, "linking again changes nothing: {again}");

    // Both products show the link at once (their cached reads were dropped), both ways.
    let (_, ali_now) = read_product(&app, ali_id).await;
    assert_eq!(
        ali_now["skus"][0]["alternatives"][0]["sku"],
        tb_sku.as_str(),
        "{ali_now}"
    );
    let (_, tb_now) = read_product(&app, tb_id).await;
    let back: Vec<&str> = tb_now["skus"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["alternatives"][0]["sku"].as_str())
        .collect();
    assert_eq!(back, vec![ali_sku.as_str()], "{tb_now}");

    // The 1688 seller is out of stock at checkout: procurement fails over to Taobao.
    app.driver
        .add_fault(json!({"platform": "1688", "api": "alibaba.trade.createCrossOrder", "kind": "out_of_stock", "rate": 1.0}))
        .await
        .unwrap();
    let min = ali["min_order_quantity"].as_u64().unwrap_or(1) as u32;
    let (status, q) = call(
        &app,
        Role::Customer,
        "POST",
        "/api/v1/quotes",
        Some(json!({"items": [{"sku": ali_sku, "quantity": min}], "destination_country": "US", "currency": "USD"})),
    )
    .await;
    assert_eq!(status, 201, "{q}");
    let order = app
        .driver
        .place_order(
            q["quote_id"].as_str().unwrap(),
            "cust-alt",
            "US",
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let ended = drive_one(&app, &id, procure::demo::Script::HappyPath).await;
    let done = app.driver.order(&id).await.unwrap();
    let timeline = reasons(&done);
    assert_eq!(
        ended,
        procure_domain::OrderState::Completed,
        "{timeline:#?}"
    );
    let purchased: Vec<&String> = timeline
        .iter()
        .filter(|r| r.starts_with("attempt") && r.contains("purchased"))
        .collect();
    assert_eq!(purchased.len(), 1, "bought once: {timeline:#?}");
    assert!(
        purchased[0].contains("taobao 695028137799"),
        "bought from the alternative: {timeline:#?}"
    );
    assert!(
        timeline
            .iter()
            .any(|r| r.contains("1688 683461209575") && !r.contains("purchased")),
        "the 1688 offer was tried first: {timeline:#?}"
    );
    let purchases: Vec<String> = app
        .system
        .sandbox
        .ledger()
        .iter()
        .filter(|e| e.kind == "purchase")
        .map(|e| e.platform.clone())
        .collect();
    assert_eq!(
        purchases,
        vec!["taobao"],
        "one purchase in the sandbox's ledger, on Taobao"
    );
    println!("order {id} on {ali_id}, its 1688 seller out of stock:");
    for r in &timeline {
        println!("  {r}");
    }

    // Unlinked, the Taobao listing is no longer the 1688 SKU's alternative, both ways.
    let (status, _) = call(
        &app,
        Role::Operator,
        "DELETE",
        &format!("/api/v1/products/{ali_id}/alternatives/{ali_sku}/{tb_sku}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, tb_after) = read_product(&app, tb_id).await;
    assert!(
        tb_after["skus"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["alternatives"].as_array().unwrap().is_empty()),
        "{tb_after}"
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn the_matching_suggestion_finds_the_same_product_on_another_platform_and_says_how_sure() {
    let app = spawn_app(fast()).await;
    // A Taobao shop copied a 1688 listing: the same product and variants, the title dressed
    // with marketing words, the colour dimension named as Taobao names it, its own SKU ids and
    // prices. A second Taobao item is another product.
    relist(&app, ("taobao", "695028137800"), ("1688", "683461209590")).await;
    let ali = import(&app, "1688", "683461209590").await;
    let tb = import(&app, "taobao", "695028137800").await;
    let other = import(&app, "taobao", "612345678901").await;
    assert_ne!(tb["title"], ali["title"]);
    assert_ne!(tb["skus"][0]["spec_id"], ali["skus"][0]["spec_id"]);

    let ali_id = ali["id"].as_str().unwrap();
    let path = format!("/api/v1/products/{ali_id}/matches");
    let (status, m) = call(&app, Role::Operator, "GET", &path, None).await;
    assert_eq!(status, 200, "{m}");
    println!(
        "matches of {ali_id} ({}): {}",
        ali["title"],
        serde_json::to_string_pretty(&m).unwrap()
    );
    let matches = m["matches"].as_array().unwrap();
    assert_eq!(
        matches.len(),
        1,
        "only the copy is suggested, not {}: {m}",
        other["id"]
    );
    let best = &matches[0];
    assert_eq!(best["product"], tb["id"]);
    assert_eq!(best["platform"], "taobao");
    assert_eq!(best["confidence"], "high", "{best}");
    let confidence = best["confidence_bps"].as_u64().unwrap();
    assert!(confidence >= 8_000, "{best}");
    assert!(
        best["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().starts_with("titles ")),
        "{best}"
    );
    // Every SKU pairs with the copy's SKU of the same variant values, none linked yet.
    let pairs = best["skus"].as_array().unwrap();
    assert_eq!(pairs.len(), ali["skus"].as_array().unwrap().len(), "{best}");
    let values = |p: &Value, sku: &str| -> Vec<String> {
        let s = p["skus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sku"] == sku)
            .unwrap();
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["value"].as_str().unwrap().to_owned())
            .collect()
    };
    for pair in pairs {
        let (a, b) = (
            pair["sku"].as_str().unwrap(),
            pair["alternative_sku"].as_str().unwrap(),
        );
        assert_eq!(values(&ali, a), values(&tb, b), "{pair}");
        assert_eq!(pair["linked"], false);
    }

    // A SKU linked to the copy's SKU of another variant is refused (it would buy the wrong
    // colour), naming the right one, unless the operator insists.
    let (a1, b2) = (
        pairs[1]["sku"].as_str().unwrap(),
        pairs[2]["alternative_sku"].as_str().unwrap(),
    );
    let (status, e) = link(&app, ali_id, a1, b2).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("variant_mismatch")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains(pairs[1]["alternative_sku"].as_str().unwrap()),
        "{e}"
    );
    let (status, forced) = call(
        &app,
        Role::Operator,
        "POST",
        &format!("/api/v1/products/{ali_id}/alternatives"),
        Some(json!({"sku": a1, "alternative_sku": b2, "despite_variants": true})),
    )
    .await;
    assert_eq!(status, 201, "{forced}");
    assert_eq!(forced["suggestion"]["variant_bps"], 0);

    // The operator follows the suggestion for the first pair: the link records its confidence,
    // and the suggestion then says the pair is linked.
    let (a, b) = (
        pairs[0]["sku"].as_str().unwrap(),
        pairs[0]["alternative_sku"].as_str().unwrap(),
    );
    let (status, l) = link(&app, ali_id, a, b).await;
    assert_eq!(status, 201, "{l}");
    assert_eq!(l["suggestion"]["confidence_bps"].as_u64(), Some(confidence));
    assert_eq!(l["suggestion"]["variant_bps"], 10_000);
    assert_eq!(l["suggestion"]["confidence"], "high");
    let (_, again) = call(&app, Role::Operator, "GET", &path, None).await;
    assert_eq!(again["matches"][0]["skus"][0]["linked"], true, "{again}");

    let (_, none) = call(
        &app,
        Role::Operator,
        "GET",
        &format!("{path}?platform=pinduoduo"),
        None,
    )
    .await;
    assert_eq!(none["matches"], json!([]));
    let (status, e) = call(
        &app,
        Role::Operator,
        "GET",
        &format!("{path}?platform=amazon"),
        None,
    )
    .await;
    assert_eq!(
        (status, e["error"]["fields"][0]["field"].as_str()),
        (422, Some("platform"))
    );
    let (status, _) = call(&app, Role::Customer, "GET", &path, None).await;
    assert_eq!(status, 403);
    app.system.stop().await.unwrap();
}
