//! The Taobao (IOP) and Pinduoduo gateways and the multi-platform catalogue over real HTTP
//! (docs/sandbox-wire.md). Each test starts a server on 127.0.0.1:0. No sleeps synchronise
//! anything: the one wait (an effect committed behind a held-back answer) polls with a deadline.

use procure_domain::signing;
use procure_sandbox::{Offer, SandboxConfig, catalogue};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{collections::HashSet, sync::Arc, time::Duration};

const TB_EARBUDS: &str = "tb695028137746";
const TB_EARBUDS_SKU: &str = "4987301265501";
const PDD_EARBUDS: &str = "pdd39827104653";
const RECEIVER: &str = r#"{"name":"Warehouse","mobile_phone":"13800000000","address":"1 Test Rd","country":"CN","state":"Zhejiang","city":"Yiwu"}"#;

mod common;
use common::{Harness, now_ms, owned, start, start_default};

/// Sign IOP system + business params the way the adapter does.
fn iop_form(api_path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
    let cfg = SandboxConfig::default();
    let mut all = owned(params);
    all.push(("app_key".into(), cfg.taobao_app_key.clone()));
    all.push(("access_token".into(), cfg.taobao_access_token.clone()));
    all.push(("sign_method".into(), "sha256".into()));
    all.push(("timestamp".into(), now_ms().to_string()));
    let sign = signing::iop_signature(
        api_path,
        all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.taobao_app_secret,
    );
    all.push(("sign".into(), sign));
    all
}

/// Sign a PDD router call with the given timestamp (unix seconds).
fn pdd_form_at(params: &[(&str, &str)], timestamp: i64) -> Vec<(String, String)> {
    let cfg = SandboxConfig::default();
    let mut all = owned(params);
    all.push(("client_id".into(), cfg.pdd_client_id.clone()));
    all.push(("timestamp".into(), timestamp.to_string()));
    all.push(("data_type".into(), "JSON".into()));
    let sign = signing::pdd_signature(
        all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.pdd_client_secret,
    );
    all.push(("sign".into(), sign));
    all
}

fn pdd_form(params: &[(&str, &str)]) -> Vec<(String, String)> {
    pdd_form_at(params, now_ms() / 1000)
}

impl Harness {
    async fn post_form_with(
        &self,
        client: &reqwest::Client,
        path: &str,
        form: &[(String, String)],
    ) -> reqwest::Result<(StatusCode, Value)> {
        let r = client.post(self.url(path)).form(form).send().await?;
        let status = r.status();
        Ok((status, r.json().await?))
    }

    async fn post_form(&self, path: &str, form: &[(String, String)]) -> (StatusCode, Value) {
        self.post_form_with(&self.http, path, form).await.unwrap()
    }

    /// A signed Taobao call; every IOP answer but an injected outage is HTTP 200.
    async fn taobao(&self, api_path: &str, params: &[(&str, &str)]) -> Value {
        let (s, v) = self
            .post_form(&format!("/rest{api_path}"), &iop_form(api_path, params))
            .await;
        assert_eq!(s, StatusCode::OK, "{api_path}: {v}");
        assert!(v["request_id"].is_string(), "{v}");
        v
    }

    async fn pdd(&self, params: &[(&str, &str)]) -> Value {
        let (s, v) = self.post_form("/api/router", &pdd_form(params)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn offer(&self, offer_id: &str) -> Offer {
        let c = self.get_json("/_sandbox/catalogue").await;
        let offers: Vec<Offer> = serde_json::from_value(c["offers"].clone()).unwrap();
        offers.into_iter().find(|o| o.offer_id == offer_id).unwrap()
    }
}

fn lines(qty: u32) -> String {
    json!([{"item_id": TB_EARBUDS, "sku_id": TB_EARBUDS_SKU, "quantity": qty}]).to_string()
}

/// Earbuds on Taobao: 4200 fen each plus 800 fen postage.
fn total(qty: i64) -> i64 {
    4200 * qty + 800
}

async fn create(h: &Harness, outer: &str, qty: u32) -> Value {
    let lines = lines(qty);
    let amount = total(i64::from(qty)).to_string();
    h.taobao(
        "/purchase/order/create",
        &[
            ("order_line_list", &lines),
            ("receiver", RECEIVER),
            ("outer_purchase_id", outer),
            ("purchase_amount", &amount),
        ],
    )
    .await
}

async fn pay(h: &Harness, ids: Value) -> Value {
    let list = ids.to_string();
    h.taobao(
        "/purchase/order/batch/pay",
        &[("purchaseOrderIdList", &list)],
    )
    .await
}

/// A create answer's `data.order_list[0].purchase_id` (an integer) as text.
fn purchase_id(v: &Value) -> String {
    let id = &v["data"]["order_list"][0]["purchase_id"];
    assert!(id.is_u64(), "{v}");
    id.to_string()
}

/// An id as the wire carries it: an integer.
fn num(id: &str) -> Value {
    json!(id.parse::<u64>().unwrap())
}

async fn product(h: &Harness) -> Value {
    h.taobao("/product/get", &[("item_id", TB_EARBUDS)]).await
}

// ---------------------------------------------------------------------------------------------
// Taobao

#[tokio::test]
async fn taobao_checks_signature_app_key_and_token() {
    let h = start_default().await;
    let path = "/product/get";
    let url = format!("/rest{path}");
    let mut form = iop_form(path, &[("item_id", TB_EARBUDS)]);
    // Tamper with a signed parameter after signing.
    form[0].1 = "tb718204563391".into();
    let (s, v) = h.post_form(&url, &form).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["code"], "IncompleteSignature", "{v}");
    assert!(v["message"].is_string() && v["request_id"].is_string());

    // Missing sign; sign_method other than sha256.
    let unsigned: Vec<_> = iop_form(path, &[("item_id", TB_EARBUDS)])
        .into_iter()
        .filter(|(k, _)| k != "sign")
        .collect();
    assert_eq!(
        h.post_form(&url, &unsigned).await.1["code"],
        "IncompleteSignature"
    );
    let cfg = SandboxConfig::default();
    let sign_with = |pairs: &mut Vec<(String, String)>, secret: &str| {
        let sig = signing::iop_signature(
            path,
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            secret,
        );
        pairs.push(("sign".into(), sig));
    };
    let mut md5 = owned(&[
        ("item_id", TB_EARBUDS),
        ("app_key", "demotaobao"),
        ("access_token", "demotaobao-token"),
        ("sign_method", "md5"),
        ("timestamp", "1517820392000"),
    ]);
    sign_with(&mut md5, &cfg.taobao_app_secret);
    assert_eq!(
        h.post_form(&url, &md5).await.1["code"],
        "IncompleteSignature"
    );

    // Unknown app key (signed with some secret).
    let mut other = owned(&[
        ("item_id", TB_EARBUDS),
        ("app_key", "someoneelse"),
        ("access_token", "demotaobao-token"),
        ("sign_method", "sha256"),
        ("timestamp", "1517820392000"),
    ]);
    sign_with(&mut other, "someoneelse-secret");
    assert_eq!(h.post_form(&url, &other).await.1["code"], "InvalidAppKey");

    // Correct signature over a wrong access token.
    let mut stale = owned(&[
        ("item_id", TB_EARBUDS),
        ("app_key", "demotaobao"),
        ("access_token", "stale"),
        ("sign_method", "sha256"),
        ("timestamp", "1517820392000"),
    ]);
    sign_with(&mut stale, &cfg.taobao_app_secret);
    assert_eq!(
        h.post_form(&url, &stale).await.1["code"],
        "IllegalAccessToken"
    );

    // Properly signed: the listing, also as GET with a query string.
    let v = h.taobao(path, &[("item_id", TB_EARBUDS)]).await;
    assert_eq!(v["code"], "0", "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["data"]["item_id"], TB_EARBUDS);
    assert_eq!(
        v["data"]["title"],
        "TWS wireless earbuds Bluetooth 5.3 with charging case"
    );
    let sku = &v["data"]["sku_list"][0];
    assert_eq!(
        (
            &sku["sku_id"],
            &sku["price"],
            &sku["promotion_price"],
            &sku["quantity"]
        ),
        (
            &num(TB_EARBUDS_SKU),
            &json!(4200),
            &json!(4200),
            &json!(300)
        )
    );
    let r = h
        .http
        .get(h.url(&url))
        .query(&iop_form(path, &[("item_id", TB_EARBUDS)]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["data"]["item_id"],
        TB_EARBUDS
    );

    // A 1688 offer id is no Taobao item; an unknown apiPath is refused.
    let v = h.taobao(path, &[("item_id", "652983741026")]).await;
    assert_eq!((&v["code"], &v["success"]), (&json!("0"), &json!(false)));
    assert_eq!(v["error_code"], "ITEM_NOT_FOUND");
    let (s, v) = h
        .post_form("/rest/order/nonsense", &iop_form("/order/nonsense", &[]))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_ne!(v["code"], "0");
    assert!(h.sandbox.ledger().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taobao_create_is_idempotent_on_outer_purchase_id_even_concurrently() {
    let h = Arc::new(start_default().await);
    let before = h.offer(TB_EARBUDS).await.stock;

    let l = lines(2);
    let v = h
        .taobao(
            "/purchase/order/render",
            &[("render_item_List", &l), ("receiver_address", RECEIVER)],
        )
        .await;
    let data = &v["result"]["data"];
    assert_eq!(data["total_real_pay_price"]["amount"], 9200, "{v}");
    let group = &data["render_item_list"][0];
    assert_eq!(group["mainland_shipping_fee"]["amount"], 800);
    assert_eq!(
        group["item_price_infos"],
        json!([{"item_id": TB_EARBUDS, "sku_id": num(TB_EARBUDS_SKU), "quantity": 2,
                "origin_price": {"amount": 4200, "currency": "CNY"},
                "discount_price": {"amount": 8400, "currency": "CNY"}}])
    );
    // A stale amount is refused without effect.
    let v = h
        .taobao(
            "/purchase/order/create",
            &[
                ("order_line_list", &l),
                ("receiver", RECEIVER),
                ("outer_purchase_id", "PO-TB-0"),
                ("purchase_amount", "9100"),
            ],
        )
        .await;
    assert_eq!(v["error_code"], "PRICE_CHANGED", "{v}");
    assert!(h.sandbox.ledger().is_empty());

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move { create(&h, "PO-TB-1", 2).await }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(
            (&v["code"], &v["success"]),
            (&json!("0"), &json!(true)),
            "{v}"
        );
        assert_eq!(v["data"]["outer_purchase_id"], "PO-TB-1");
        ids.insert(purchase_id(&v));
    }
    assert_eq!(ids.len(), 1, "one order for one outer_purchase_id: {ids:?}");
    let id = ids.into_iter().next().unwrap();
    let purchases = h.ledger_of("purchase");
    assert_eq!(purchases.len(), 1);
    let p = &purchases[0];
    assert_eq!(
        (
            p.platform.as_str(),
            p.reference.as_str(),
            p.external_id.as_str()
        ),
        ("taobao", "PO-TB-1", id.as_str())
    );
    assert_eq!((p.amount_minor, p.currency.as_str()), (9200, "CNY"));
    assert_eq!(
        h.offer(TB_EARBUDS).await.stock,
        before - 2,
        "stock taken once"
    );
    let v = h.taobao("/product/get", &[("item_id", TB_EARBUDS)]).await;
    assert_eq!(v["data"]["sku_list"][0]["quantity"], before - 2);

    // A different outer_purchase_id is a different order.
    let v = create(&h, "PO-TB-2", 1).await;
    assert_ne!(purchase_id(&v), id);
    assert_eq!(h.ledger_of("purchase").len(), 2);
    assert_eq!(h.offer(TB_EARBUDS).await.stock, before - 3);
}

#[tokio::test]
async fn taobao_batch_pay_is_idempotent_per_order_and_orders_can_be_queried() {
    let h = start_default().await;
    let v = create(&h, "PO-TB-10", 2).await;
    let id = purchase_id(&v);

    let v = pay(&h, json!([num(&id), num(&id), 123])).await;
    assert_eq!(v["data"]["will_pay_purchase_order_ids"], json!([id]), "{v}");
    assert_eq!(v["data"]["pay_failure_purchase_order_ids"], json!(["123"]));
    let failed = &v["data"]["pay_failed_results"][0];
    assert_eq!(
        (&failed["gspOrderId"], &failed["errorCode"]),
        (&json!(123), &json!("ORDER_NOT_FOUND"))
    );
    let again = pay(&h, json!([num(&id)])).await;
    assert_eq!(again["data"]["will_pay_purchase_order_ids"], json!([id]));
    assert_eq!(again["data"]["pay_failure_purchase_order_ids"], json!([]));
    let payments = h.ledger_of("marketplace_payment");
    assert_eq!(payments.len(), 1, "paid once");
    assert_eq!(
        (
            payments[0].platform.as_str(),
            payments[0].reference.as_str(),
            payments[0].external_id.as_str(),
            payments[0].amount_minor
        ),
        ("taobao", "PO-TB-10", id.as_str(), 9200)
    );

    // seller_ship_ms = 0: shipped on payment. Query by our id and by theirs.
    let by_outer = h
        .taobao(
            "/purchase/orders/query",
            &[("outer_purchase_id", "PO-TB-10")],
        )
        .await;
    let o = &by_outer["data"]["purchase_orders"][0];
    assert_eq!(
        (
            &o["purchase_id"],
            &o["outer_purchase_id"],
            &o["status"],
            &o["purchase_amount"],
            &o["pay_amount"]
        ),
        (
            &num(&id),
            &json!("PO-TB-10"),
            &json!("WAIT_BUYER_CONFIRM_GOODS"),
            &json!(9200),
            &json!(9200)
        ),
        "{by_outer}"
    );
    let line = o["sub_purchase_orders"][0]["sub_purchase_order_id"].to_string();
    let ids = format!("[{id}]");
    let by_id = h
        .taobao("/purchase/orders/query", &[("purchase_ids", &ids)])
        .await;
    assert_eq!(by_id["data"], by_outer["data"]);
    let none = h
        .taobao(
            "/purchase/orders/query",
            &[("outer_purchase_id", "PO-none")],
        )
        .await;
    assert_eq!(none["data"]["purchase_orders"], json!([]));
    let v = h.taobao("/purchase/orders/query", &[]).await;
    assert_eq!(v["code"], "InvalidParameter");

    let v = h
        .taobao(
            "/logistics/detail/get",
            &[("purchase_order_line_id", &line)],
        )
        .await;
    let l = &v["result"]["data"]["pnm_logistics_details"][0];
    assert!(l["mail_no"].as_str().is_some_and(|n| n.len() >= 10), "{v}");
    assert!(l["logistics_partner"][0]["company"].is_string());
    let v = h
        .taobao("/logistics/detail/get", &[("purchase_order_line_id", "1")])
        .await;
    assert_eq!(v["result"]["error_code"], "ORDER_NOT_FOUND");
}

#[tokio::test]
async fn taobao_seller_ships_after_the_delay_and_closed_orders_cannot_be_paid() {
    let h = start(SandboxConfig {
        seller_ship_ms: 60_000,
        ..Default::default()
    })
    .await;
    let before = h.offer(TB_EARBUDS).await.stock;
    let v = create(&h, "PO-TB-20", 1).await;
    let id = purchase_id(&v);
    let line =
        v["data"]["order_list"][0]["order_line_list"][0]["sub_purchase_order_id"].to_string();
    pay(&h, json!([num(&id)])).await;
    let ids = format!("[{id}]");
    let v = h
        .taobao("/purchase/orders/query", &[("purchase_ids", &ids)])
        .await;
    let o = &v["data"]["purchase_orders"][0];
    assert_eq!(o["status"], "WAIT_SELLER_SEND_GOODS");
    assert_eq!(o["sub_purchase_orders"][0]["logistic_orders"], json!([]));
    let v = h
        .taobao(
            "/logistics/detail/get",
            &[("purchase_order_line_id", &line)],
        )
        .await;
    assert_eq!(v["result"]["data"]["pnm_logistics_details"], json!([]));

    // The seller closes an unpaid order: stock goes back, paying it fails.
    let v = create(&h, "PO-TB-21", 3).await;
    let closed = purchase_id(&v);
    assert_eq!(h.offer(TB_EARBUDS).await.stock, before - 4);
    let (s, v) = h
        .post_json(&format!("/_sandbox/orders/{closed}/cancel"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["order"]["status"], "TRADE_CLOSED");
    assert_eq!(h.offer(TB_EARBUDS).await.stock, before - 1);
    let v = pay(&h, json!([num(&closed)])).await;
    assert_eq!(v["data"]["will_pay_purchase_order_ids"], json!([]));
    assert_eq!(v["data"]["pay_failure_purchase_order_ids"], json!([closed]));
    assert_eq!(
        v["data"]["pay_failed_results"][0]["errorCode"],
        "TRADE_CLOSED"
    );
    assert_eq!(h.ledger_of("marketplace_payment").len(), 1);
}

#[tokio::test]
async fn taobao_timeout_after_commit_records_the_effect_before_the_late_answer() {
    let h = start_default().await;
    h.fault(json!({"platform": "taobao", "api": "/purchase/order/create", "kind": "timeout_after_commit", "latency_ms": 30000, "count": 1}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let l = lines(3);
    let amount = total(3).to_string();
    let form = iop_form(
        "/purchase/order/create",
        &[
            ("order_line_list", &l),
            ("receiver", RECEIVER),
            ("outer_purchase_id", "PO-TB-T1"),
            ("purchase_amount", &amount),
        ],
    );
    let err = h
        .post_form_with(&impatient, "/rest/purchase/order/create", &form)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The order exists although the client never saw the answer.
    let purchases = h.await_ledger("purchase", 1).await;
    assert_eq!(purchases[0].reference, "PO-TB-T1");
    let v = h
        .taobao(
            "/purchase/orders/query",
            &[("outer_purchase_id", "PO-TB-T1")],
        )
        .await;
    assert_eq!(
        v["data"]["purchase_orders"][0]["purchase_id"],
        num(&purchases[0].external_id)
    );
    // Retrying with the same outer_purchase_id returns that order and takes nothing more.
    let v = create(&h, "PO-TB-T1", 3).await;
    assert_eq!(purchase_id(&v), purchases[0].external_id);
    assert_eq!(h.ledger_of("purchase").len(), 1);
    assert_eq!(h.offer(TB_EARBUDS).await.stock, 300 - 3);
}

#[tokio::test]
async fn taobao_faults() {
    let h = start_default().await;

    h.fault(json!({"platform": "taobao", "kind": "account_restricted", "count": 1}))
        .await;
    let v = create(&h, "PO-TB-F1", 1).await;
    assert_eq!(v["code"], "ACCOUNT_RESTRICTED", "{v}");
    assert!(h.sandbox.ledger().is_empty());

    h.fault(json!({"platform": "taobao", "api": "*", "kind": "rate_limit", "count": 1}))
        .await;
    assert_eq!(product(&h).await["code"], "ApiCallLimit");

    h.fault(json!({"platform": "taobao", "kind": "bad_signature", "count": 1}))
        .await;
    assert_eq!(product(&h).await["code"], "IncompleteSignature");

    h.fault(json!({"platform": "taobao", "kind": "error", "count": 1}))
        .await;
    let (s, v) = h
        .post_form(
            "/rest/product/get",
            &iop_form("/product/get", &[("item_id", TB_EARBUDS)]),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v["code"].is_string());

    h.fault(json!({"platform": "taobao", "api": "create", "kind": "out_of_stock", "count": 1}))
        .await;
    assert_eq!(
        create(&h, "PO-TB-F1", 1).await["error_code"],
        "OUT_OF_STOCK"
    );
    assert!(h.sandbox.ledger().is_empty());

    // price_jump: the price rises for good, so the rendered amount is stale.
    h.fault(json!({"platform": "taobao", "api": "create", "kind": "price_jump", "percent": 10, "count": 1}))
        .await;
    assert_eq!(
        create(&h, "PO-TB-F1", 1).await["error_code"],
        "PRICE_CHANGED"
    );
    assert_eq!(product(&h).await["data"]["sku_list"][0]["price"], 4620);
    h.clear_faults().await;
    let l = lines(1);
    let amount = (4620 + 800).to_string();
    let v = h
        .taobao(
            "/purchase/order/create",
            &[
                ("order_line_list", &l),
                ("receiver", RECEIVER),
                ("outer_purchase_id", "PO-TB-F1"),
                ("purchase_amount", &amount),
            ],
        )
        .await;
    assert_eq!(v["code"], "0", "{v}");
    assert_eq!(h.ledger_of("purchase").len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Pinduoduo

#[tokio::test]
async fn pdd_goods_detail_and_its_checks() {
    let h = start_default().await;
    let detail = [
        ("type", "pdd.ddk.goods.detail"),
        ("goods_sign", PDD_EARBUDS),
    ];
    let v = h.pdd(&detail).await;
    let goods_id = v["goods_detail_response"]["goods_details"][0]["goods_id"].clone();
    assert!(goods_id.is_i64(), "goods_id is an integer: {v}");
    assert_eq!(
        v["goods_detail_response"]["goods_details"],
        json!([{"goods_sign": PDD_EARBUDS, "goods_id": goods_id,
                "goods_name": "TWS wireless earbuds Bluetooth 5.3 with charging case",
                "min_group_price": 3900, "min_normal_price": 4500}]),
        "{v}"
    );
    // The same listing always has the same numeric id.
    assert_eq!(
        h.pdd(&detail).await["goods_detail_response"]["goods_details"][0]["goods_id"],
        goods_id
    );
    // A goods_sign the catalogue does not hold: a generated listing, the same on every call;
    // taken off the shelf on demand (`delisted`): an empty list.
    let other = [("type", "pdd.ddk.goods.detail"), ("goods_sign", "pdd1")];
    let v = h.pdd(&other).await;
    let generated = v["goods_detail_response"]["goods_details"].clone();
    assert_eq!(generated[0]["goods_sign"], "pdd1", "{v}");
    assert_eq!(
        h.pdd(&other).await["goods_detail_response"]["goods_details"],
        generated
    );
    h.fault(json!({"platform": "pinduoduo", "api": "pdd.ddk.goods.detail", "kind": "delisted", "count": 1}))
        .await;
    let v = h.pdd(&other).await;
    assert_eq!(v["goods_detail_response"]["goods_details"], json!([]));
    // goods_id_list is taken offline; no goods_sign at all is a bad parameter.
    let ids = json!([PDD_EARBUDS]).to_string();
    let v = h
        .pdd(&[("type", "pdd.ddk.goods.detail"), ("goods_id_list", &ids)])
        .await;
    assert_eq!(
        v["error_response"]["sub_code"], "goods_id_list_offline",
        "{v}"
    );
    let v = h.pdd(&[("type", "pdd.ddk.goods.detail")]).await;
    assert_eq!(v["error_response"]["error_code"], 10000, "{v}");

    // Bad signature.
    let mut form = pdd_form(&detail);
    form.last_mut().unwrap().1 = "0".repeat(32);
    let (_, v) = h.post_form("/api/router", &form).await;
    assert_eq!(v["error_response"]["error_code"], 20004, "{v}");
    // Stale timestamp (correctly signed).
    let (_, v) = h
        .post_form("/api/router", &pdd_form_at(&detail, now_ms() / 1000 - 3600))
        .await;
    assert!(v["error_response"]["error_code"].is_i64(), "{v}");
    assert!(v.get("goods_detail_response").is_none());
    // Unknown type; unknown client.
    let v = h.pdd(&[("type", "pdd.order.number.list.get")]).await;
    assert_eq!(v["error_response"]["error_code"], 10000, "{v}");
    let mut other = owned(&[
        ("type", "pdd.ddk.goods.detail"),
        ("goods_sign", PDD_EARBUDS),
        ("client_id", "nobody"),
        ("timestamp", &(now_ms() / 1000).to_string()),
    ]);
    let sig = signing::pdd_signature(
        other.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        "nobody-secret",
    );
    other.push(("sign".into(), sig));
    let (_, v) = h.post_form("/api/router", &other).await;
    assert!(v["error_response"]["error_code"].is_i64(), "{v}");

    // Faults.
    h.fault(json!({"platform": "pinduoduo", "api": "pdd.ddk.goods.detail", "kind": "rate_limit", "count": 1}))
        .await;
    assert_eq!(h.pdd(&detail).await["error_response"]["error_code"], 52101);
    h.fault(json!({"platform": "pinduoduo", "kind": "account_restricted", "count": 1}))
        .await;
    assert_eq!(h.pdd(&detail).await["error_response"]["error_code"], 70032);
    h.fault(json!({"platform": "pinduoduo", "kind": "bad_signature", "count": 1}))
        .await;
    assert_eq!(h.pdd(&detail).await["error_response"]["error_code"], 20004);
    h.fault(json!({"platform": "pinduoduo", "kind": "error", "count": 1}))
        .await;
    let (s, v) = h.post_form("/api/router", &pdd_form(&detail)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(v.get("error_response").is_none());

    // Price edits and removal through the control API show on the wire.
    let (s, _) = h
        .post_json(
            &format!("/_sandbox/products/{PDD_EARBUDS}"),
            json!({"price_fen": 3500}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v = h.pdd(&detail).await;
    assert_eq!(
        v["goods_detail_response"]["goods_details"][0]["min_group_price"],
        3500
    );
    h.post_json(
        &format!("/_sandbox/products/{PDD_EARBUDS}"),
        json!({"removed": true}),
    )
    .await;
    let v = h.pdd(&detail).await;
    assert_eq!(v["goods_detail_response"]["goods_details"], json!([]));
    assert!(h.sandbox.ledger().is_empty(), "prices only: no effects");
}

// ---------------------------------------------------------------------------------------------
// Multi-platform catalogue

#[tokio::test]
async fn catalogue_offers_cover_three_platforms_with_differing_cheapest() {
    let demo = catalogue::demo_offers();
    let products = catalogue::demo();
    let mut cheapest = HashSet::new();
    for p in &products {
        let of: Vec<&Offer> = demo.iter().filter(|o| o.sku == p.sku).collect();
        let platforms: HashSet<&str> = of.iter().map(|o| o.platform.as_str()).collect();
        assert_eq!(
            platforms,
            HashSet::from(["1688", "taobao", "pinduoduo"]),
            "{}",
            p.sku
        );
        let a = of.iter().find(|o| o.platform == "1688").unwrap();
        assert_eq!(
            (&a.offer_id, &a.spec_id, a.price_fen, a.stock),
            (&p.offer_id, &p.spec_id, p.price_fen, p.amount_on_sale)
        );
        assert!(
            of.iter()
                .any(|o| o.platform == "taobao" && o.offer_id.starts_with("tb"))
        );
        assert!(
            of.iter()
                .any(|o| o.platform == "pinduoduo" && o.offer_id.starts_with("pdd"))
        );
        let min = of.iter().map(|o| o.price_fen).min().unwrap();
        let at_min: Vec<_> = of.iter().filter(|o| o.price_fen == min).collect();
        assert_eq!(at_min.len(), 1, "{}: one cheapest platform", p.sku);
        cheapest.insert(at_min[0].platform.clone());
    }
    assert_eq!(
        cheapest.len(),
        3,
        "the cheapest platform differs between skus"
    );

    let h = start_default().await;
    let c = h.get_json("/_sandbox/catalogue").await;
    assert_eq!(c["products"].as_array().unwrap().len(), products.len());
    let offers: Vec<Offer> = serde_json::from_value(c["offers"].clone()).unwrap();
    assert_eq!(offers, demo);
    assert_eq!(h.sandbox.offers(), demo);

    // A Taobao offer can be edited like a 1688 listing; 1688 edits show in `offers` too.
    let (s, v) = h
        .post_json(
            &format!("/_sandbox/products/{TB_EARBUDS}"),
            json!({"price_fen": 4000, "amount_on_sale": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((&v["platform"], &v["stock"]), (&json!("taobao"), &json!(5)));
    let v = h.taobao("/product/get", &[("item_id", TB_EARBUDS)]).await;
    let sku = &v["data"]["sku_list"][0];
    assert_eq!(
        (&sku["sku_id"], &sku["price"], &sku["quantity"]),
        (&num(TB_EARBUDS_SKU), &json!(4000), &json!(5))
    );
    assert_eq!(
        create(&h, "PO-TB-C1", 6).await["error_code"],
        "OUT_OF_STOCK"
    );
    h.post_json(
        "/_sandbox/products/652983741026",
        json!({"price_fen": 4000}),
    )
    .await;
    assert_eq!(h.offer("652983741026").await.price_fen, 4000);
    h.post_json(
        &format!("/_sandbox/products/{TB_EARBUDS}"),
        json!({"removed": true}),
    )
    .await;
    let v = h.taobao("/product/get", &[("item_id", TB_EARBUDS)]).await;
    assert_eq!(v["error_code"], "ITEM_NOT_FOUND");
}

#[tokio::test]
async fn marketplace_garbage_never_gets_a_server_error() {
    let h = start_default().await;
    let garbage: [&[u8]; 5] = [b"", b"%%%", b"\xff\xfe", b"{\"a\":", b"a=1&a=2&sign=00"];
    for path in [
        "/rest/purchase/order/create",
        "/rest/purchase/order/batch/pay",
        "/rest/x",
        "/api/router",
    ] {
        for body in garbage {
            let r = h
                .http
                .post(h.url(path))
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let v: Value = r.json().await.unwrap();
            assert!(v.is_object(), "{path}");
        }
    }
    // Well-signed calls with malformed business parameters are business errors.
    for (path, params) in [
        (
            "/purchase/order/create",
            vec![
                ("order_line_list", "[]"),
                ("receiver", RECEIVER),
                ("outer_purchase_id", "x"),
                ("purchase_amount", "1"),
            ],
        ),
        (
            "/purchase/order/batch/pay",
            vec![("purchaseOrderIdList", "{}")],
        ),
        ("/purchase/order/render", vec![("receiver_address", "[]")]),
    ] {
        let v = h.taobao(path, &params).await;
        assert_eq!(v["code"], "InvalidParameter", "{path}: {v}");
    }
    let v = h
        .pdd(&[("type", "pdd.ddk.goods.detail"), ("goods_id_list", "x")])
        .await;
    assert_eq!(v["error_response"]["error_code"], 10000);
    assert!(h.sandbox.ledger().is_empty());
}
