//! Importing any marketplace product by the link a customer pastes, end to end through the API
//! against the sandbox (which serves a deterministic product for any id in each vendor's
//! documented shape): every link form of each platform, the stored SKUs, reads and search,
//! the refusals (bad links, delisted products, vendor errors), and a quote on an imported SKU
//! that never uses a price older than the freshness window.

mod support;

use procure_api::{OrderTimings, auth::Role};
use serde_json::{Value, json};
use support::*;

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", app.system.api_url);
    let http = reqwest::Client::new();
    let req = match method {
        "POST" => http.post(url).json(&body.unwrap_or(json!({}))),
        _ => http.get(url),
    };
    let r = req
        .bearer_auth(app.driver.token(Role::Customer, Some("cust-products")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn import(app: &TestApp, body: Value) -> (u16, Value) {
    call(app, "POST", "/api/v1/products/import", Some(body)).await
}

async fn fault(app: &TestApp, f: Value) {
    app.driver.add_fault(f).await.unwrap();
}

#[tokio::test]
async fn every_link_form_imports_the_product_with_its_skus() {
    let app = spawn_app(fast()).await;
    // (link as pasted, platform, the product id it names)
    let links = [
        (
            "https://detail.1688.com/offer/683461209575.html?spm=a26352.13672862.0.0",
            "1688",
            "683461209575",
        ),
        ("m.1688.com/offer/683461209575.html", "1688", "683461209575"),
        (
            "https://detail.m.1688.com/page/index.html?offerId=720014355120&sk=consign",
            "1688",
            "720014355120",
        ),
        (
            "https://item.taobao.com/item.htm?spm=a21n57.1.0.0.4f3a523c&id=695028137799&ns=1",
            "taobao",
            "695028137799",
        ),
        (
            "https://detail.tmall.com/item.htm?ali_trackid=2:mm_1:1&id=612345678901&skuId=4987301265501",
            "taobao",
            "612345678901",
        ),
        (
            "https://h5.m.taobao.com/awp/core/detail.htm?id=695028137799",
            "taobao",
            "695028137799",
        ),
        (
            "https://mobile.yangkeduo.com/goods.html?goods_id=428617213904&page_from=23",
            "pinduoduo",
            "",
        ),
    ];
    let mut table = String::from(
        "| link | product | skus | first sku (price, stock) | measures |\n|---|---|---|---|---|\n",
    );
    let mut seen = std::collections::HashMap::new();
    for (link, platform, id) in links {
        let (status, p) = import(&app, json!({"url": link})).await;
        assert!(status == 201 || status == 200, "{link}: {status} {p}");
        assert_eq!(p["platform"], platform, "{link}: {p}");
        if !id.is_empty() {
            assert_eq!(p["product_id"], id, "{link}");
            assert_eq!(p["id"], format!("{platform}-{id}"), "{link}");
        } else {
            // The goods_id was resolved to the goods_sign the detail API takes.
            assert!(p["id"].as_str().unwrap().starts_with("pdd-"), "{p}");
        }
        // The same product imported twice is the same product (the second a refresh).
        let first = seen
            .entry(p["id"].as_str().unwrap().to_owned())
            .or_insert(status);
        if *first != status {
            assert_eq!(
                status, 200,
                "{link}: a product seen before is not created again"
            );
        }
        let skus = p["skus"].as_array().unwrap();
        assert!(!skus.is_empty(), "{link}: {p}");
        for s in skus {
            assert!(
                s["sku"]
                    .as_str()
                    .unwrap()
                    .starts_with(p["id"].as_str().unwrap())
            );
            assert_eq!(s["price"]["currency"], "CNY");
            assert!(s["price"]["minor"].as_i64().unwrap() > 0, "{s}");
        }
        assert!(!p["title"].as_str().unwrap().is_empty());
        assert!(!p["image_urls"].as_array().unwrap().is_empty(), "{p}");
        // Every SKU is a listing a quote can name, with the product's measures.
        let listing = app
            .system
            .store
            .listing(skus[0]["sku"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(
            listing.weight_g,
            p["measures"]["weight_g"].as_i64().unwrap()
        );
        table += &format!(
            "| `{link}` | {} | {} | {} ({} fen, {}) | {} g, {} |\n",
            p["id"].as_str().unwrap(),
            skus.len(),
            skus[0]["sku"].as_str().unwrap(),
            skus[0]["price"]["minor"],
            skus[0]["stock"],
            p["measures"]["weight_g"],
            if p["measures"]["estimated"] == true {
                "estimated"
            } else {
                "the marketplace's"
            }
        );
    }
    println!("{table}");

    // Reads: one product, and a search page.
    let (status, one) = call(&app, "GET", "/api/v1/products/1688-683461209575", None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["id"], "1688-683461209575");
    let (status, again) = call(&app, "GET", "/api/v1/products/1688-683461209575", None).await;
    assert_eq!(
        (status, &again),
        (200, &one),
        "a cached read answers the same"
    );
    let (status, page) = call(&app, "GET", "/api/v1/products?limit=2", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["products"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &app,
        "GET",
        &format!("/api/v1/products?cursor={cursor}&limit=50"),
        None,
    )
    .await;
    assert_eq!(
        page["products"].as_array().unwrap().len() + rest["products"].as_array().unwrap().len(),
        seen.len(),
        "the pages hold every product once"
    );
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let word: String = one["title"].as_str().unwrap().chars().take(2).collect();
    let (_, found) = call(
        &app,
        "GET",
        &format!("/api/v1/products?query={}", urlencode(&word)),
        None,
    )
    .await;
    assert!(
        found["products"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "1688-683461209575"),
        "{word}: {found}"
    );
    let (status, _) = call(&app, "GET", "/api/v1/products/1688-1", None).await;
    assert_eq!(status, 404);
    app.system.stop().await.unwrap();
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn bad_links_delisted_products_and_vendor_errors_get_clear_refusals() {
    let app = spawn_app_configured(fast(), one_second_freshness()).await;
    for (body, code) in [
        (json!({"url": "not a link at all"}), "invalid_link"),
        (
            json!({"url": "https://www.amazon.com/dp/B00X4WHP5E"}),
            "invalid_link",
        ),
        (
            json!({"url": "https://detail.1688.com/offer/.html"}),
            "invalid_link",
        ),
        (json!({"url": "https://m.tb.cn/h.5Xyz"}), "invalid_link"),
        (json!({"platform": "ebay", "id": "1"}), "invalid_link"),
    ] {
        let (status, e) = import(&app, body.clone()).await;
        assert_eq!(
            (status, e["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}: {e}"
        );
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, e) = import(
        &app,
        json!({"url": "https://detail.1688.com/offer/1.html", "platform": "1688"}),
    )
    .await;
    assert_eq!(status, 422, "{e}");

    // Delisted at the marketplace: 404 with the reason; a product imported before is marked so
    // and its SKUs can no longer be quoted.
    let (status, p) = import(&app, json!({"platform": "taobao", "id": "695028137701"})).await;
    assert_eq!(status, 201, "{p}");
    fault(
        &app,
        json!({"platform": "taobao", "api": "/product/get", "kind": "delisted", "rate": 1.0}),
    )
    .await;
    let (status, e) = import(&app, json!({"platform": "taobao", "id": "695028137702"})).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (404, Some("product_delisted")),
        "{e}"
    );
    // Read again after the freshness window (the test's window is 1 s): delisted.
    let sku = p["skus"][0]["sku"].as_str().unwrap().to_owned();
    let refused = eventually(
        std::time::Duration::from_secs(10),
        "the stored price goes stale",
        || async {
            let (status, q) = quote(&app, &sku, 1).await;
            (status != 201).then_some((status, q))
        },
    )
    .await;
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (409, Some("product_delisted")),
        "{:?}",
        refused
    );
    let (_, stored) = call(
        &app,
        "GET",
        &format!("/api/v1/products/{}", p["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(stored["status"], "delisted", "{stored}");
    assert!(
        stored["skus"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["quote_ready"] == false)
    );
    app.driver.clear_faults().await.unwrap();

    // A vendor error: 424 with the vendor's reason; nothing is stored.
    fault(&app, json!({"platform": "1688", "api": "alibaba.cross.productInfo", "kind": "error", "rate": 1.0})).await;
    let (status, e) = import(
        &app,
        json!({"url": "https://detail.1688.com/offer/683461209511.html"}),
    )
    .await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (424, Some("marketplace_error")),
        "{e}"
    );
    let (status, _) = call(&app, "GET", "/api/v1/products/1688-683461209511", None).await;
    assert_eq!(status, 404, "a failed import stores nothing");
    app.system.stop().await.unwrap();
}

async fn quote(app: &TestApp, sku: &str, quantity: u32) -> (u16, Value) {
    call(
        app,
        "POST",
        "/api/v1/quotes",
        Some(json!({"items": [{"sku": sku, "quantity": quantity}], "destination_country": "US", "currency": "USD"})),
    )
    .await
}

fn one_second_freshness() -> impl FnOnce(&mut procure::system::SystemConfig) {
    |cfg| {
        cfg.settings.products.freshness_s = 1;
    }
}

#[tokio::test]
async fn a_quote_on_an_imported_sku_never_uses_a_price_older_than_the_window() {
    let app = spawn_app_configured(OrderTimings { ..fast() }, one_second_freshness()).await;
    // A product of the seeded catalogue, imported by its link: the SKU is its listing.
    let catalogue = app.driver.catalogue().await.unwrap();
    let seeded = catalogue
        .iter()
        .find(|l| l["platform"] == "1688")
        .unwrap()
        .clone();
    let link = format!(
        "https://detail.1688.com/offer/{}.html",
        seeded["offer_id"].as_str().unwrap()
    );
    let (status, p) = import(&app, json!({"url": link})).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(
        p["skus"][0]["sku"], seeded["sku"],
        "an offer already in the catalogue keeps its listing"
    );
    let sku = p["skus"][0]["sku"].as_str().unwrap().to_owned();
    let offer = p["product_id"].as_str().unwrap().to_owned();
    let price = p["skus"][0]["price"]["minor"].as_i64().unwrap();
    let min = p["min_order_quantity"].as_u64().unwrap_or(1) as u32;
    let (status, q) = quote(&app, &sku, min).await;
    assert_eq!(status, 201, "{q}");
    assert_eq!(q["items"][0]["unit_price"]["minor"], price, "{q}");
    if min > 1 {
        let (status, e) = quote(&app, &sku, min - 1).await;
        assert_eq!(status, 422, "below the seller's minimum: {e}");
    }

    // The marketplace's price rises; once the window has passed, the quote reads it again.
    app.driver
        .set_product(&offer, json!({"price_fen": price + 500}))
        .await
        .unwrap();
    let requoted = eventually(
        std::time::Duration::from_secs(10),
        "a fresh price",
        || async {
            let (status, q) = quote(&app, &sku, min).await;
            assert_eq!(status, 201, "{q}");
            (q["items"][0]["unit_price"]["minor"] == price + 500).then_some(q)
        },
    )
    .await;
    assert_eq!(requoted["items"][0]["sku"], sku.as_str());
    let (_, stored) = call(
        &app,
        "GET",
        &format!("/api/v1/products/{}", p["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        stored["skus"][0]["price"]["minor"],
        price + 500,
        "the refresh invalidated the cached read: {stored}"
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn a_price_monitors_run_reaches_every_cached_read_at_once() {
    // A long freshness window and cache TTL: only the change feed can refresh the reads.
    let app = spawn_app(fast()).await;
    let catalogue = app.driver.catalogue().await.unwrap();
    let seeded = catalogue
        .iter()
        .find(|l| l["platform"] == "1688")
        .unwrap()
        .clone();
    let offer = seeded["offer_id"].as_str().unwrap().to_owned();
    let (status, p) = import(&app, json!({"platform": "1688", "id": offer})).await;
    assert_eq!(status, 201, "{p}");
    let path = format!("/api/v1/products/{}", p["id"].as_str().unwrap());
    let price = p["skus"][0]["price"]["minor"].as_i64().unwrap();
    let (_, cached) = call(&app, "GET", &path, None).await;
    assert_eq!(cached["skus"][0]["price"]["minor"], price);
    // The list's page is cached too: the second read answers from memory.
    let list = format!(
        "/api/v1/products?query={}",
        urlencode(
            &p["title"]
                .as_str()
                .unwrap()
                .chars()
                .take(4)
                .collect::<String>()
        )
    );
    let page_price = |page: &Value| {
        page["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["id"] == p["id"])
            .map(|q| q["skus"][0]["price"]["minor"].clone())
    };
    let (_, first) = list_level(&app, &list).await;
    assert_eq!(first, "store");
    let (page, again) = list_level(&app, &list).await;
    assert_eq!(again, "memory");
    assert_eq!(page_price(&page), Some(json!(price)), "{page}");

    // The marketplace's price moves and the demo monitor (every demo product) sees it: the
    // worker records the run, and the API's cached answer is dropped.
    app.driver
        .set_product(&offer, json!({"price_fen": price + 700}))
        .await
        .unwrap();
    let monitor = app.driver.ensure_demo_monitor().await.unwrap();
    let id = monitor["monitor_id"].as_str().unwrap();
    app.driver
        .run_monitor(id, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let seen = eventually(
        std::time::Duration::from_secs(5),
        "the monitored price in the read",
        || async {
            let (_, now) = call(&app, "GET", &path, None).await;
            (now["skus"][0]["price"]["minor"] == price + 700).then_some(now)
        },
    )
    .await;
    assert_eq!(seen["id"], p["id"]);
    // The change started a new generation of list pages: the page shows the new price.
    let (page, _) = list_level(&app, &list).await;
    assert_eq!(page_price(&page), Some(json!(price + 700)), "{page}");
    app.system.stop().await.unwrap();
}

/// A list page and the cache level that answered it.
async fn list_level(app: &TestApp, path: &str) -> (Value, String) {
    let r = reqwest::Client::new()
        .get(format!("{}{path}", app.system.api_url))
        .bearer_auth(app.driver.token(Role::Customer, Some("cust-products")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let level = r.headers()["x-procure-cache"].to_str().unwrap().to_owned();
    (r.json().await.unwrap(), level)
}

#[tokio::test]
async fn an_order_on_an_imported_product_completes() {
    let app = spawn_app(fast()).await;
    let (status, p) = import(
        &app,
        json!({"url": "https://detail.1688.com/offer/683461209588.html"}),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    let sku = p["skus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["quote_ready"] == true)
        .expect("a quotable SKU")["sku"]
        .as_str()
        .unwrap()
        .to_owned();
    let min = p["min_order_quantity"].as_u64().unwrap_or(1) as u32;
    let (status, q) = quote(&app, &sku, min).await;
    assert_eq!(status, 201, "{q}");
    let order = app
        .driver
        .place_order(
            q["quote_id"].as_str().unwrap(),
            "cust-products",
            "US",
            &uuid::Uuid::new_v4().to_string(),
        )
        .await
        .unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(
        drive_one(&app, &id, procure::demo::Script::HappyPath).await,
        procure_domain::OrderState::Completed
    );
    let done = app.driver.order(&id).await.unwrap();
    let bought = reasons(&done)
        .into_iter()
        .find(|r| r.contains("purchased"))
        .unwrap();
    assert!(
        bought.contains(p["product_id"].as_str().unwrap()),
        "bought the imported offer: {bought}"
    );
    println!("order {id} on imported {}:", p["id"].as_str().unwrap());
    for r in reasons(&done) {
        println!("  {r}");
    }
    app.system.stop().await.unwrap();
}
