//! The sandbox over real HTTP: each test starts a server on 127.0.0.1:0 and talks to it the way
//! the adapters will (docs/sandbox-wire.md). No sleeps are used to synchronise: webhook tests
//! wait on channels with a deadline, status progressions poll with a deadline.

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use procure_domain::signing;
use procure_sandbox::SandboxConfig;
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{net::TcpListener, sync::mpsc};

mod common;
use common::{DEADLINE, Harness, start, start_default};

impl Harness {
    fn aop_form(
        &self,
        namespace: &str,
        api: &str,
        params: &[(&str, &str)],
    ) -> (String, Vec<(String, String)>) {
        let cfg = SandboxConfig::default();
        let path = format!("param2/1/{namespace}/{api}/{}", cfg.alibaba_app_key);
        let ts = chrono_free_ms().to_string();
        let mut all: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.push(("access_token".into(), cfg.alibaba_access_token.clone()));
        all.push(("_aop_timestamp".into(), ts));
        let sig = signing::aop_signature(
            &path,
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &cfg.alibaba_app_secret,
        );
        all.push(("_aop_signature".into(), sig));
        (self.url(&format!("/openapi/{path}")), all)
    }

    async fn aop_with(
        &self,
        client: &reqwest::Client,
        namespace: &str,
        api: &str,
        params: &[(&str, &str)],
    ) -> reqwest::Result<(StatusCode, Value)> {
        let (url, form) = self.aop_form(namespace, api, params);
        let r = client.post(url).form(&form).send().await?;
        let status = r.status();
        Ok((status, r.json().await?))
    }

    async fn aop(
        &self,
        namespace: &str,
        api: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.aop_with(&self.http, namespace, api, params)
            .await
            .unwrap()
    }

    async fn stripe(
        &self,
        path: &str,
        form: &[(&str, &str)],
        key: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .bearer_auth("sk_test_procure")
            .form(form);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        (status, headers, r.json().await.unwrap())
    }

    async fn track(&self, api: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(&format!("/track/v2.2/{api}")))
            .header("17token", "demo17token")
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn stock(&self, offer_id: &str) -> i64 {
        let c = self.get_json("/_sandbox/catalogue").await;
        c["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["offer_id"] == offer_id)
            .unwrap()["amount_on_sale"]
            .as_i64()
            .unwrap()
    }
}

fn chrono_free_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const EARBUDS: &str = "652983741026";
const EARBUDS_SPEC: &str = "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3";
const TRADE: &str = "com.alibaba.trade";
const ADDRESS: &str = r#"{"fullName":"Warehouse","mobile":"13800000000","address":"1 Test Rd","provinceText":"Zhejiang","cityText":"Yiwu"}"#;

fn cargo(qty: u32) -> String {
    json!([{"offerId": EARBUDS, "specId": EARBUDS_SPEC, "quantity": qty}]).to_string()
}

async fn create_order(h: &Harness, out_order_id: &str, qty: u32) -> Value {
    let cargo = cargo(qty);
    let (s, v) = h
        .aop(
            TRADE,
            "alibaba.trade.createCrossOrder",
            &[
                ("flow", "general"),
                ("addressParam", ADDRESS),
                ("cargoParamList", &cargo),
                ("outOrderId", out_order_id),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    v
}

// ---------------------------------------------------------------------------------------------
// 1688

#[tokio::test]
async fn aop_rejects_bad_signatures_and_credentials() {
    let h = start_default().await;
    let (url, mut form) = h.aop_form(
        "com.alibaba.product",
        "alibaba.cross.productInfo",
        &[("productId", EARBUDS)],
    );
    // Tamper with a signed parameter after signing.
    form[0].1 = "623718945102".into();
    let r = h.http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error_code"], "gw.SignatureInvalid", "{v}");
    assert!(v["error_message"].is_string());

    // Missing signature.
    let unsigned: Vec<_> = form
        .iter()
        .filter(|(k, _)| k != "_aop_signature")
        .cloned()
        .collect();
    let v: Value = h
        .http
        .post(&url)
        .form(&unsigned)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error_code"], "gw.SignatureInvalid");

    // Unknown app key.
    let other = url.replace("/demo1688", "/someoneelse");
    let r = h.http.post(&other).form(&form).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_code"],
        "gw.APIACLDecline"
    );

    // Correct signature over a wrong access token.
    let cfg = SandboxConfig::default();
    let path = "param2/1/com.alibaba.product/alibaba.cross.productInfo/demo1688";
    let mut p = vec![
        ("productId".to_string(), EARBUDS.to_string()),
        ("access_token".into(), "stale".into()),
    ];
    let sig = signing::aop_signature(
        path,
        p.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &cfg.alibaba_app_secret,
    );
    p.push(("_aop_signature".into(), sig));
    let v: Value = h
        .http
        .post(&url)
        .form(&p)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["error_code"], "gw.APIACLDecline");

    // Properly signed: works, also as GET with a query string.
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["success"], true);
    // 1688 documents `price` as a Double in yuan.
    assert_eq!(v["productInfo"]["skuInfos"][0]["price"], json!(45.5));
    assert_eq!(v["productInfo"]["skuInfos"][0]["specId"], EARBUDS_SPEC);
    let (url, form) = h.aop_form(
        "com.alibaba.product",
        "alibaba.cross.productInfo",
        &[("productId", EARBUDS)],
    );
    let v: Value = h
        .http
        .get(&url)
        .query(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["productInfo"]["productID"].to_string(), EARBUDS, "a Long");

    // Business error for an unknown product (an id that is not a Long: any Long answers a
    // generated product); gateway error for an unknown API.
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", "no-such-offer")],
        )
        .await;
    assert_eq!(
        (s, &v["success"], &v["message"]),
        (
            StatusCode::OK,
            &json!(false),
            &json!("商品[no-such-offer]不存在")
        )
    );
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", "1")],
        )
        .await;
    assert_eq!((s, &v["success"]), (StatusCode::OK, &json!(true)), "{v}");
    assert_eq!(v["productInfo"]["productID"], 1);
    let (s, v) = h.aop(TRADE, "alibaba.trade.nonsense", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error_code"].as_str().unwrap().starts_with("gw."));
    assert!(h.sandbox.ledger().is_empty());
}

#[tokio::test]
async fn aop_preview_matches_the_contract_example() {
    let h = start_default().await;
    let cargo = cargo(2);
    let (s, v) = h
        .aop(
            TRADE,
            "alibaba.createOrder.preview",
            &[
                ("flow", "general"),
                ("addressParam", ADDRESS),
                ("cargoParamList", &cargo),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let p = &v["orderPreviewResuslt"][0];
    // Documented units: sumPayment (with carriage), sumCarriage, sumPaymentNoCarriage in fen;
    // amount and finalUnitPrice in yuan.
    assert_eq!(p["sumPayment"], 9900, "{v}");
    assert_eq!(p["sumCarriage"], 800);
    assert_eq!(p["sumPaymentNoCarriage"], 9100);
    assert_eq!(p["cargoList"][0]["amount"], json!(91));
    assert_eq!(p["cargoList"][0]["finalUnitPrice"], json!(45.5));

    let too_many =
        json!([{"offerId": EARBUDS, "specId": EARBUDS_SPEC, "quantity": 1201}]).to_string();
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.createOrder.preview",
            &[
                ("flow", "general"),
                ("addressParam", ADDRESS),
                ("cargoParamList", &too_many),
            ],
        )
        .await;
    assert_eq!(v["errorCode"], "500_004", "{v}");
    // Numeric offer ids are accepted too (1688's offerId is a Long).
    let numeric = format!(r#"[{{"offerId":{EARBUDS},"quantity":1}}]"#);
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.createOrder.preview",
            &[
                ("flow", "general"),
                ("addressParam", ADDRESS),
                ("cargoParamList", &numeric),
            ],
        )
        .await;
    assert_eq!(v["orderPreviewResuslt"][0]["sumPayment"], 5350, "{v}");
    for bad in ["", "[]", "{}", "[{\"offerId\":\"x\"}]", "not json"] {
        let (s, v) = h
            .aop(
                TRADE,
                "alibaba.createOrder.preview",
                &[
                    ("flow", "general"),
                    ("addressParam", ADDRESS),
                    ("cargoParamList", bad),
                ],
            )
            .await;
        assert_eq!(
            (s, &v["success"]),
            (StatusCode::OK, &json!(false)),
            "{bad}: {v}"
        );
    }
    assert!(h.sandbox.ledger().is_empty(), "previews have no effect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_cross_order_is_idempotent_on_out_order_id_even_concurrently() {
    let h = Arc::new(start_default().await);
    let before = h.stock(EARBUDS).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let h = h.clone();
        tasks.push(tokio::spawn(
            async move { create_order(&h, "PO-1001", 2).await },
        ));
    }
    let mut ids = Vec::new();
    for t in tasks {
        let v = t.await.unwrap();
        assert_eq!(v["success"], true, "{v}");
        assert_eq!(v["result"]["totalSuccessAmount"], 9900);
        assert_eq!(v["result"]["failedOfferList"], json!([]));
        ids.push(v["result"]["orderId"].as_str().unwrap().to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one order for one outOrderId: {ids:?}");
    let purchases = h.ledger_of("purchase");
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].reference, "PO-1001");
    assert_eq!(purchases[0].external_id, ids[0]);
    assert_eq!(
        (purchases[0].amount_minor, purchases[0].currency.as_str()),
        (9900, "CNY")
    );
    assert_eq!(h.stock(EARBUDS).await, before - 2, "stock taken once");
    let (_, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(v["productInfo"]["skuInfos"][0]["amountOnSale"], before - 2);

    // A different outOrderId is a different order.
    let v = create_order(&h, "PO-1002", 1).await;
    assert_ne!(v["result"]["orderId"], json!(ids[0]));
    assert_eq!(h.ledger_of("purchase").len(), 2);
    assert_eq!(h.stock(EARBUDS).await, before - 3);
}

#[tokio::test]
async fn protocol_pay_is_keyed_by_op_request_id() {
    let h = start_default().await;
    let v = create_order(&h, "PO-2001", 2).await;
    let order_id = v["result"]["orderId"].as_str().unwrap().to_owned();
    let pay = |op: &'static str, amount: &'static str| {
        let order_id = order_id.clone();
        let h = &h;
        async move {
            let param =
                format!(r#"{{"orderId":{order_id},"payAmount":{amount},"opRequestId":"{op}"}}"#);
            h.aop(
                TRADE,
                "alibaba.trade.pay.protocolPay.preparePay",
                &[("tradeWithholdPreparePayParam", &param)],
            )
            .await
        }
    };
    let (_, v) = pay("pay-x", "9800").await;
    assert_eq!(v["result"]["code"], "PAY_AMOUNT_MISMATCH", "{v}");
    let (_, first) = pay("pay-1", "9900").await;
    assert_eq!(
        first,
        json!({"result": {"success": true, "code": null, "message": null,
               "result": {"payChannel": "alipay", "paySuccess": true}}})
    );
    let (_, again) = pay("pay-1", "9900").await;
    assert_eq!(
        again, first,
        "the same opRequestId returns the first answer"
    );
    let (_, other) = pay("pay-2", "9900").await;
    assert_eq!(other["result"]["success"], false);
    assert_eq!(other["result"]["code"], "ORDER_ALREADY_PAID");
    let (_, x) = pay("pay-x", "9900").await;
    assert_eq!(
        x["result"]["code"], "PAY_AMOUNT_MISMATCH",
        "first answer of pay-x, even though it now matches"
    );

    let payments = h.ledger_of("marketplace_payment");
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (
            payments[0].reference.as_str(),
            payments[0].external_id.as_str()
        ),
        ("pay-1", order_id.as_str())
    );
    assert_eq!(payments[0].amount_minor, 9900);

    // seller_ship_ms = 0: shipped on payment.
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.get.buyerView",
            &[("webSite", "1688"), ("orderId", &order_id)],
        )
        .await;
    let base = &v["result"]["baseInfo"];
    assert_eq!(base["status"], "waitbuyerreceive", "{v}");
    assert_eq!(base["outOrderId"], "PO-2001");
    assert_eq!(base["totalAmount"], json!(99), "yuan");
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.get.buyerView",
            &[("orderId", &order_id)],
        )
        .await;
    assert_eq!(v["success"], "false", "webSite is required: {v}");
    let (_, v) = h
        .aop(
            "com.alibaba.logistics",
            "alibaba.trade.getLogisticsInfos.buyerView",
            &[("webSite", "1688"), ("orderId", &order_id)],
        )
        .await;
    let bill = v["result"][0]["logisticsBillNo"].as_str().unwrap();
    assert!(bill.starts_with("YT"), "{v}");
    assert_eq!(v["result"][0]["logisticsCompanyName"], "YTO");

    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.getBuyerOrderList",
            &[("outOrderId", "PO-2001")],
        )
        .await;
    assert_eq!(v["result"].as_array().unwrap().len(), 1);
    assert_eq!(v["result"][0]["baseInfo"]["idOfStr"].to_string(), order_id);
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.getBuyerOrderList",
            &[("outOrderId", "PO-none")],
        )
        .await;
    assert_eq!(v, json!({"result": [], "totalRecord": 0}));
}

#[tokio::test]
async fn seller_ships_after_the_configured_delay() {
    let h = start(SandboxConfig {
        seller_ship_ms: 60_000,
        ..Default::default()
    })
    .await;
    let v = create_order(&h, "PO-2101", 1).await;
    let order_id = v["result"]["orderId"].as_str().unwrap().to_owned();
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.get.buyerView",
            &[("webSite", "1688"), ("orderId", &order_id)],
        )
        .await;
    assert_eq!(v["result"]["baseInfo"]["status"], "waitbuyerpay");
    let param = format!(r#"{{"orderId":{order_id},"payAmount":5350,"opRequestId":"p"}}"#);
    h.aop(
        TRADE,
        "alibaba.trade.pay.protocolPay.preparePay",
        &[("tradeWithholdPreparePayParam", &param)],
    )
    .await;
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.get.buyerView",
            &[("webSite", "1688"), ("orderId", &order_id)],
        )
        .await;
    assert_eq!(v["result"]["baseInfo"]["status"], "waitsellersend");
    let (_, v) = h
        .aop(
            "com.alibaba.logistics",
            "alibaba.trade.getLogisticsInfos.buyerView",
            &[("webSite", "1688"), ("orderId", &order_id)],
        )
        .await;
    // Documented: 500_2 until the seller ships ("ask later").
    assert_eq!(
        (&v["success"], &v["errorCode"]),
        (&json!(false), &json!("500_2")),
        "{v}"
    );
}

// ---------------------------------------------------------------------------------------------
// Stripe

#[tokio::test]
async fn stripe_idempotency_keys() {
    let h = start_default().await;
    let params = [
        ("amount", "2599"),
        ("currency", "usd"),
        ("metadata[order_id]", "ord_1"),
    ];
    let (s, hd, first) = h
        .stripe("/v1/payment_intents", &params, Some("key-1"))
        .await;
    assert_eq!(s, StatusCode::OK, "{first}");
    assert!(first["id"].as_str().unwrap().starts_with("pi_"));
    assert_eq!(first["object"], "payment_intent");
    assert_eq!(first["status"], "requires_payment_method");
    assert_eq!(first["amount_received"], 0);
    assert_eq!(first["metadata"]["order_id"], "ord_1");
    assert!(
        first["client_secret"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}_secret_", first["id"].as_str().unwrap()))
    );
    assert!(hd.get("idempotent-replayed").is_none());

    let (s, hd, replay) = h
        .stripe("/v1/payment_intents", &params, Some("key-1"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(replay, first);
    assert_eq!(hd.get("idempotent-replayed").unwrap(), "true");

    let other = [
        ("amount", "2600"),
        ("currency", "usd"),
        ("metadata[order_id]", "ord_1"),
    ];
    let (s, _, e) = h.stripe("/v1/payment_intents", &other, Some("key-1")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["type"], "idempotency_error", "{e}");

    // A new key is a new PaymentIntent; no key at all also creates.
    let (_, _, second) = h
        .stripe("/v1/payment_intents", &params, Some("key-2"))
        .await;
    assert_ne!(second["id"], first["id"]);

    // Validation errors are not saved: the key can be used again with good parameters.
    let (s, _, e) = h
        .stripe(
            "/v1/payment_intents",
            &[("amount", "-5"), ("currency", "usd")],
            Some("key-3"),
        )
        .await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request_error"))
    );
    let (s, _, _) = h
        .stripe("/v1/payment_intents", &params, Some("key-3"))
        .await;
    assert_eq!(s, StatusCode::OK);
    for bad in [
        vec![("currency", "usd")],
        vec![("amount", "100")],
        vec![("amount", "100"), ("currency", "xyz")],
        vec![("amount", "100"), ("currency", "usd"), ("bogus", "1")],
        vec![("amount", "1e3"), ("currency", "usd")],
    ] {
        let (s, _, e) = h.stripe("/v1/payment_intents", &bad, None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}: {e}");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert!(e["error"]["code"].is_string());
    }

    // Authentication.
    let r = h
        .http
        .post(h.url("/v1/payment_intents"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = h
        .http
        .post(h.url("/v1/payment_intents"))
        .bearer_auth("sk_test_wrong")
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );

    // Retrieve.
    let r = h
        .http
        .get(h.url(&format!(
            "/v1/payment_intents/{}",
            first["id"].as_str().unwrap()
        )))
        .bearer_auth("sk_test_procure")
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), first);
    let r = h
        .http
        .get(h.url("/v1/payment_intents/pi_nope"))
        .bearer_auth("sk_test_procure")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "resource_missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_concurrent_duplicate_in_flight_gets_409() {
    let h = Arc::new(start_default().await);
    // Every create is held for 3 s before executing: the two requests overlap.
    h.fault(json!({"platform": "stripe", "api": "payment_intents", "kind": "latency", "latency_ms": 3000})).await;
    let params = [("amount", "500"), ("currency", "eur")];
    let a = {
        let h = h.clone();
        tokio::spawn(async move { h.stripe("/v1/payment_intents", &params, Some("dup")).await })
    };
    let b = {
        let h = h.clone();
        tokio::spawn(async move { h.stripe("/v1/payment_intents", &params, Some("dup")).await })
    };
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
    let conflict = if a.0 == StatusCode::CONFLICT {
        a.2
    } else {
        b.2
    };
    assert_eq!(conflict["error"]["type"], "idempotency_error");
    // Once the first has finished, the key replays it.
    h.clear_faults().await;
    let (s, hd, _) = h.stripe("/v1/payment_intents", &params, Some("dup")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hd.get("idempotent-replayed").unwrap(), "true");
}

type Received = (HeaderMap, Bytes);

/// A tiny webhook receiver: answers 500 to the first `fail_first` deliveries, then 200.
async fn receiver(fail_first: usize) -> (String, mpsc::UnboundedReceiver<Received>) {
    #[derive(Clone)]
    struct Rx {
        tx: mpsc::UnboundedSender<Received>,
        seen: Arc<AtomicUsize>,
        fail_first: usize,
    }
    async fn hook(State(rx): State<Rx>, headers: HeaderMap, body: Bytes) -> StatusCode {
        let n = rx.seen.fetch_add(1, Ordering::SeqCst);
        let _ = rx.tx.send((headers, body));
        if n < rx.fail_first {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new().route("/hook", post(hook)).with_state(Rx {
        tx,
        seen: Arc::new(AtomicUsize::new(0)),
        fail_first,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>) -> Received {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("webhook within the deadline")
        .expect("channel open")
}

fn stripe_verified(r: &Received, secret: &str) -> bool {
    let header = r.0.get("stripe-signature").unwrap().to_str().unwrap();
    signing::verify_stripe_signature(header, &r.1, secret, chrono_free_ms() / 1000, 300).is_ok()
}

#[tokio::test]
async fn confirm_charges_and_sends_a_signed_webhook_with_retries() {
    let (url, mut rx) = receiver(1).await;
    let h = start(SandboxConfig {
        payments_webhook_url: Some(url),
        ..Default::default()
    })
    .await;
    let (_, _, pi) = h
        .stripe(
            "/v1/payment_intents",
            &[
                ("amount", "4200"),
                ("currency", "usd"),
                ("metadata[order_id]", "ord_9"),
            ],
            Some("k"),
        )
        .await;
    let id = pi["id"].as_str().unwrap();
    let (s, _, confirmed) = h
        .stripe(&format!("/v1/payment_intents/{id}/confirm"), &[], None)
        .await;
    assert_eq!(s, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "succeeded");
    assert_eq!(confirmed["amount_received"], 4200);

    // First delivery is refused by the receiver, the retry is accepted; both are signed.
    let first = next(&mut rx).await;
    let second = next(&mut rx).await;
    for r in [&first, &second] {
        assert!(
            stripe_verified(r, "whsec_procure_demo"),
            "signature verifies"
        );
        assert!(!stripe_verified(r, "whsec_other"));
        let event: Value = serde_json::from_slice(&r.1).unwrap();
        assert!(event["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(event["object"], "event");
        assert_eq!(event["type"], "payment_intent.succeeded");
        assert!(event["created"].is_i64());
        assert_eq!(event["data"]["object"]["id"], id);
        assert_eq!(event["data"]["object"]["amount_received"], 4200);
        assert_eq!(event["data"]["object"]["metadata"]["order_id"], "ord_9");
    }
    assert_eq!(first.1, second.1, "a retry carries the same event");

    let charges = h.ledger_of("charge");
    assert_eq!(charges.len(), 1);
    assert_eq!(
        (
            charges[0].reference.as_str(),
            charges[0].external_id.as_str(),
            charges[0].amount_minor
        ),
        ("ord_9", id, 4200)
    );
    assert_eq!(
        (charges[0].platform.as_str(), charges[0].currency.as_str()),
        ("stripe", "USD")
    );

    // Confirming again is a state error; cancel after success too.
    let (s, _, e) = h
        .stripe(&format!("/v1/payment_intents/{id}/confirm"), &[], None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("payment_intent_unexpected_state")
        )
    );
    let (s, _, e) = h
        .stripe(&format!("/v1/payment_intents/{id}/cancel"), &[], None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("payment_intent_unexpected_state")
        )
    );
    assert_eq!(h.ledger_of("charge").len(), 1);

    // bad_signature fault: the next webhook is signed with the wrong secret.
    h.fault(json!({"platform": "stripe", "kind": "bad_signature", "count": 1}))
        .await;
    let (_, _, pi2) = h
        .stripe(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "usd")],
            None,
        )
        .await;
    h.stripe(
        &format!(
            "/v1/payment_intents/{}/confirm",
            pi2["id"].as_str().unwrap()
        ),
        &[],
        None,
    )
    .await;
    let bad = next(&mut rx).await;
    assert!(!stripe_verified(&bad, "whsec_procure_demo"));
}

#[tokio::test]
async fn cancel_before_payment() {
    let h = start_default().await;
    let (_, _, pi) = h
        .stripe(
            "/v1/payment_intents",
            &[("amount", "100"), ("currency", "gbp")],
            None,
        )
        .await;
    let id = pi["id"].as_str().unwrap();
    let (s, _, c) = h
        .stripe(
            &format!("/v1/payment_intents/{id}/cancel"),
            &[("cancellation_reason", "abandoned")],
            None,
        )
        .await;
    assert_eq!(
        (s, c["status"].as_str()),
        (StatusCode::OK, Some("canceled"))
    );
    let (s, _, e) = h
        .stripe(&format!("/v1/payment_intents/{id}/confirm"), &[], None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("payment_intent_unexpected_state")
        )
    );
    assert!(h.sandbox.ledger().is_empty());
}

#[tokio::test]
async fn refunds_never_exceed_the_amount_received() {
    let h = start_default().await;
    let (_, _, pi) = h
        .stripe(
            "/v1/payment_intents",
            &[("amount", "10000"), ("currency", "usd")],
            None,
        )
        .await;
    let id = pi["id"].as_str().unwrap().to_owned();

    // Nothing received yet.
    let (s, _, e) = h
        .stripe("/v1/refunds", &[("payment_intent", &id)], None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "payment_intent_unexpected_state");

    h.stripe(&format!("/v1/payment_intents/{id}/confirm"), &[], None)
        .await;
    let (s, _, r1) = h
        .stripe(
            "/v1/refunds",
            &[("payment_intent", &id), ("amount", "3000")],
            Some("rf-1"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r1}");
    assert!(r1["id"].as_str().unwrap().starts_with("re_"));
    assert_eq!(
        (r1["object"].as_str(), r1["amount"].as_i64()),
        (Some("refund"), Some(3000))
    );
    assert_eq!(
        (r1["payment_intent"].as_str(), r1["status"].as_str()),
        (Some(id.as_str()), Some("succeeded"))
    );
    // Replaying the same key does not refund twice.
    let (_, hd, again) = h
        .stripe(
            "/v1/refunds",
            &[("payment_intent", &id), ("amount", "3000")],
            Some("rf-1"),
        )
        .await;
    assert_eq!(again, r1);
    assert_eq!(hd.get("idempotent-replayed").unwrap(), "true");

    let (s, _, e) = h
        .stripe(
            "/v1/refunds",
            &[("payment_intent", &id), ("amount", "7001")],
            Some("rf-2"),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("amount_too_large"))
    );
    // The failed attempt's answer is saved under its key.
    let (_, _, e2) = h
        .stripe(
            "/v1/refunds",
            &[("payment_intent", &id), ("amount", "7001")],
            Some("rf-2"),
        )
        .await;
    assert_eq!(e2, e);

    // Without an amount: the remainder.
    let (s, _, r2) = h
        .stripe("/v1/refunds", &[("payment_intent", &id)], Some("rf-3"))
        .await;
    assert_eq!((s, r2["amount"].as_i64()), (StatusCode::OK, Some(7000)));
    let (s, _, e) = h
        .stripe(
            "/v1/refunds",
            &[("payment_intent", &id), ("amount", "1")],
            Some("rf-4"),
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("charge_already_refunded"))
    );
    let (s, _, e) = h
        .stripe("/v1/refunds", &[("payment_intent", "pi_missing")], None)
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("resource_missing"))
    );

    let refunds = h.ledger_of("refund");
    assert_eq!(refunds.iter().map(|r| r.amount_minor).sum::<i64>(), 10_000);
    assert_eq!(
        refunds
            .iter()
            .map(|r| r.reference.as_str())
            .collect::<Vec<_>>(),
        ["rf-1", "rf-3"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refunds_cannot_overdraw() {
    let h = Arc::new(start_default().await);
    let (_, _, pi) = h
        .stripe(
            "/v1/payment_intents",
            &[("amount", "1000"), ("currency", "usd")],
            None,
        )
        .await;
    let id = pi["id"].as_str().unwrap().to_owned();
    h.stripe(&format!("/v1/payment_intents/{id}/confirm"), &[], None)
        .await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let (h, id) = (h.clone(), id.clone());
            tokio::spawn(async move {
                let key = format!("c-{i}");
                h.stripe(
                    "/v1/refunds",
                    &[("payment_intent", id.as_str()), ("amount", "300")],
                    Some(&key),
                )
                .await
                .0
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(
        h.ledger_of("refund")
            .iter()
            .map(|r| r.amount_minor)
            .sum::<i64>(),
        900
    );
}

// ---------------------------------------------------------------------------------------------
// 17TRACK

async fn status_of(h: &Harness, number: &str) -> String {
    let (s, v) = h.track("gettrackinfo", json!([{"number": number}])).await;
    assert_eq!(s, StatusCode::OK);
    v["data"]["accepted"][0]["track_info"]["latest_status"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn tracking_progresses_to_delivered() {
    let (url, mut rx) = receiver(0).await;
    let h = start(SandboxConfig {
        tracking_step_ms: 40,
        tracking_webhook_url: Some(url),
        ..Default::default()
    })
    .await;
    let (s, v) = h
        .track(
            "register",
            json!([{"number": "SBX1234567890CN"}, {"number": "!!"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"]["accepted"][0]["number"], "SBX1234567890CN");
    assert!(v["data"]["accepted"][0]["carrier"].is_i64());
    assert_eq!(v["data"]["rejected"].as_array().unwrap().len(), 1);
    let (_, v) = h
        .track("register", json!([{"number": "SBX1234567890CN"}]))
        .await;
    assert_eq!(v["data"]["rejected"][0]["error"]["code"], -18019901);

    let order = ["InfoReceived", "InTransit", "OutForDelivery", "Delivered"];
    let start = Instant::now();
    let mut last = 0;
    loop {
        let s = status_of(&h, "SBX1234567890CN").await;
        let i = order
            .iter()
            .position(|o| *o == s)
            .unwrap_or_else(|| panic!("unexpected status {s}"));
        assert!(i >= last, "status never goes back: {s}");
        last = i;
        if s == "Delivered" {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "delivered within the deadline");
        tokio::task::yield_now().await;
    }
    let (_, v) = h
        .track(
            "gettrackinfo",
            json!([{"number": "SBX1234567890CN"}, {"number": "UNKNOWN123"}]),
        )
        .await;
    let info = &v["data"]["accepted"][0]["track_info"];
    assert_eq!(info["latest_status"]["sub_status"], "Delivered_Other");
    let events = info["tracking"]["providers"][0]["events"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), 4);
    assert_eq!(events[0]["stage"], "Delivered", "newest first");
    assert!(events[0]["time_iso"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["data"]["rejected"][0]["number"], "UNKNOWN123");
    assert_eq!(v["data"]["rejected"][0]["error"]["code"], -18019902);

    // Pushes are signed with `sign`; the last one says Delivered.
    loop {
        let (headers, body) = next(&mut rx).await;
        let sign = headers.get("sign").unwrap().to_str().unwrap();
        assert_eq!(sign, signing::track17_signature(&body, "demo17token"));
        let push: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(push["event"], "TRACKING_UPDATED");
        assert_eq!(push["data"]["number"], "SBX1234567890CN");
        if push["data"]["track_info"]["latest_status"]["status"] == "Delivered" {
            break;
        }
    }
}

#[tokio::test]
async fn tracking_status_can_be_forced_and_token_is_checked() {
    let h = start(SandboxConfig {
        tracking_step_ms: 3_600_000,
        ..Default::default()
    })
    .await;
    h.track(
        "register",
        json!([{"number": "YT1234567890123", "carrier": 190157}]),
    )
    .await;
    assert_eq!(status_of(&h, "YT1234567890123").await, "InfoReceived");
    let (s, _) = h
        .post_json(
            "/_sandbox/tracking/YT1234567890123",
            json!({"status": "Exception"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(status_of(&h, "YT1234567890123").await, "Exception");
    let (s, _) = h
        .post_json(
            "/_sandbox/tracking/YT1234567890123",
            json!({"status": "Lost"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .post_json(
            "/_sandbox/tracking/NOPE12345",
            json!({"status": "Exception"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let r = h
        .http
        .post(h.url("/track/v2.2/gettrackinfo"))
        .json(&json!([{"number": "YT1234567890123"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let too_many: Vec<Value> = (0..41)
        .map(|i| json!({"number": format!("N{i:08}")}))
        .collect();
    let (s, v) = h.track("register", Value::Array(too_many)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_ne!(v["code"], 0);
    let (s, _) = h.track("register", json!({"number": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------------
// Carrier and ECB

#[tokio::test]
async fn carrier_booking_is_idempotent_on_reference() {
    let h = start_default().await;
    let body = json!({"reference": "SHP-1", "service": "express", "weight_g": 1200, "destination_country": "US"});
    let book = |body: Value| {
        let h = &h;
        async move {
            let r = h
                .http
                .post(h.url("/carrier/v1/shipments"))
                .bearer_auth("demo-carrier-key")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, a) = book(body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["carrier"], "SANDBOX-EXP");
    assert!(a["shipment_id"].is_string() && a["tracking_number"].is_string());
    let (_, b) = book(body).await;
    assert_eq!(a, b);
    let shipments = h.ledger_of("shipment");
    assert_eq!(shipments.len(), 1);
    assert_eq!(
        (
            shipments[0].reference.as_str(),
            shipments[0].platform.as_str()
        ),
        ("SHP-1", "carrier")
    );
    assert_eq!(shipments[0].external_id, a["shipment_id"].as_str().unwrap());

    for bad in [
        json!({"reference": "", "service": "x", "weight_g": 1, "destination_country": "US"}),
        json!({"reference": "r", "service": "x", "weight_g": 0, "destination_country": "US"}),
        json!({"reference": "r", "service": "x", "weight_g": 1, "destination_country": "usa"}),
        json!({"reference": "r", "service": "x", "weight_g": -1, "destination_country": "US"}),
        json!([]),
    ] {
        let (s, v) = book(bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["error"]["code"].is_string());
    }
    let r = h
        .http
        .post(h.url("/carrier/v1/shipments"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.ledger_of("shipment").len(), 1);
}

/// Pull `(attribute, value)` pairs of `<Cube …/>` rows out of the ECB document.
fn ecb_rows(xml: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}='"))? + name.len() + 2;
        Some(tag[start..].split('\'').next()?.to_owned())
    };
    let mut date = String::new();
    let mut rows = Vec::new();
    for tag in xml.split('<').filter(|t| t.starts_with("Cube ")) {
        if let Some(t) = attr(tag, "time") {
            date = t;
        }
        if let (Some(c), Some(r)) = (attr(tag, "currency"), attr(tag, "rate")) {
            rows.push((c, r));
        }
    }
    (date, rows)
}

#[tokio::test]
async fn ecb_feed_has_the_real_shape_and_can_be_replaced() {
    let h = start_default().await;
    let r = h
        .http
        .get(h.url("/stats/eurofxref/eurofxref-daily.xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("xml")
    );
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<gesmes:Envelope"));
    assert!(xml.contains("<gesmes:name>European Central Bank</gesmes:name>"));
    let (date, rows) = ecb_rows(&xml);
    assert_eq!(date.len(), 10);
    assert!(rows.len() >= 30);
    assert!(rows.contains(&("CNY".into(), "7.8120".into())));
    assert!(rows.contains(&("USD".into(), "1.0868".into())));
    for (_, rate) in &rows {
        assert!(procure_domain::money::parse_rate_e6(rate).unwrap() > 0);
    }

    let (s, _) = h
        .post_json(
            "/_sandbox/fx",
            json!({"date": "2024-05-17", "rates": {"USD": "1.1", "CNY": "7.9"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let xml = h
        .http
        .get(h.url("/stats/eurofxref/eurofxref-daily.xml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (date, rows) = ecb_rows(&xml);
    assert_eq!(date, "2024-05-17");
    assert_eq!(
        rows,
        vec![("CNY".into(), "7.9".into()), ("USD".into(), "1.1".into())]
    );
    for bad in [
        json!({"date": "2024-02-30", "rates": {"USD": "1.1"}}),
        json!({"date": "2024-05-17", "rates": {"usd": "1.1"}}),
        json!({"date": "2024-05-17", "rates": {"USD": "-1"}}),
        json!({"date": "2024-05-17", "rates": {}}),
        json!({"rates": {"USD": "1"}}),
    ] {
        let (s, _) = h.post_json("/_sandbox/fx", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn aop_faults_and_clearing() {
    let h = start_default().await;
    let before = h.stock(EARBUDS).await;

    h.fault(json!({"platform": "1688", "api": "alibaba.trade.createCrossOrder", "kind": "out_of_stock", "count": 1}))
        .await;
    let v = create_order(&h, "PO-F1", 1).await;
    assert_eq!(
        (&v["success"], &v["code"]),
        (&json!(false), &json!("500_004")),
        "{v}"
    );
    assert!(h.ledger_of("purchase").is_empty());
    assert_eq!(h.stock(EARBUDS).await, before);
    // count 1: spent; the same outOrderId now succeeds.
    let v = create_order(&h, "PO-F1", 1).await;
    assert_eq!(v["success"], true);

    h.fault(json!({"platform": "1688", "kind": "bad_signature"}))
        .await;
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("gw.SignatureInvalid"))
    );
    h.clear_faults().await;

    h.fault(json!({"platform": "1688", "api": "*", "kind": "rate_limit"}))
        .await;
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(
        (s, v["error_code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("gw.QosAppFrequencyLimit"))
    );
    h.clear_faults().await;

    h.fault(json!({"platform": "1688", "kind": "account_restricted"}))
        .await;
    let v = create_order(&h, "PO-F2", 1).await;
    assert_eq!(
        (&v["success"], &v["code"]),
        (&json!(false), &json!("ACCOUNT_RESTRICTED"))
    );
    let list = h.get_json("/_sandbox/faults").await;
    assert_eq!(list["faults"].as_array().unwrap().len(), 1);
    h.clear_faults().await;
    assert_eq!(h.get_json("/_sandbox/faults").await["faults"], json!([]));

    // Cleared: everything works again.
    let (s, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!((s, &v["success"]), (StatusCode::OK, &json!(true)));
    assert_eq!(create_order(&h, "PO-F2", 1).await["success"], true);

    // price_jump: the listing's price rises for good.
    h.fault(json!({"platform": "1688", "api": "alibaba.cross.productInfo", "kind": "price_jump", "percent": 10, "count": 1}))
        .await;
    let (_, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(v["productInfo"]["skuInfos"][0]["price"], json!(50.05));
    let (_, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(v["productInfo"]["skuInfos"][0]["price"], json!(50.05));

    // Bad fault specs are refused.
    for bad in [
        json!({"platform": "amazon", "kind": "error"}),
        json!({"platform": "1688", "kind": "explode"}),
        json!({"platform": "1688", "kind": "error", "rate": 2}),
        json!({"platform": "1688", "kind": "error", "count": 0}),
    ] {
        let (s, _) = h.post_json("/_sandbox/faults", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn timeout_after_commit_records_the_effect_before_the_late_answer() {
    let h = start_default().await;
    h.fault(json!({"platform": "1688", "api": "createCrossOrder", "kind": "timeout_after_commit", "latency_ms": 30000, "count": 1}))
        .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let cargo = cargo(3);
    let err = h
        .aop_with(
            &impatient,
            TRADE,
            "alibaba.trade.createCrossOrder",
            &[
                ("flow", "general"),
                ("addressParam", ADDRESS),
                ("cargoParamList", &cargo),
                ("outOrderId", "PO-T1"),
            ],
        )
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    // The order exists although the client never saw the answer.
    let purchases = h.await_ledger("purchase", 1).await;
    assert_eq!(purchases.len(), 1);
    assert_eq!(purchases[0].reference, "PO-T1");
    let (_, v) = h
        .aop(
            TRADE,
            "alibaba.trade.getBuyerOrderList",
            &[("outOrderId", "PO-T1")],
        )
        .await;
    assert_eq!(
        v["result"][0]["baseInfo"]["idOfStr"].to_string(),
        purchases[0].external_id
    );
    // Retrying with the same outOrderId returns that order and takes nothing more.
    let v = create_order(&h, "PO-T1", 3).await;
    assert_eq!(v["result"]["orderId"], json!(purchases[0].external_id));
    assert_eq!(h.ledger_of("purchase").len(), 1);
}

#[tokio::test]
async fn stripe_faults() {
    let h = start_default().await;
    h.fault(
        json!({"platform": "stripe", "api": "payment_intents", "kind": "rate_limit", "count": 1}),
    )
    .await;
    let params = [("amount", "100"), ("currency", "usd")];
    let (s, _, e) = h.stripe("/v1/payment_intents", &params, Some("rl")).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e["error"]["code"], "rate_limit");
    // Nothing was saved under the key: the retry runs.
    let (s, hd, _) = h.stripe("/v1/payment_intents", &params, Some("rl")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(hd.get("idempotent-replayed").is_none());

    h.fault(json!({"platform": "stripe", "api": "confirm", "kind": "timeout_after_commit", "latency_ms": 30000})).await;
    let (_, _, pi) = h.stripe("/v1/payment_intents", &params, None).await;
    let id = pi["id"].as_str().unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = impatient
        .post(h.url(&format!("/v1/payment_intents/{id}/confirm")))
        .bearer_auth("sk_test_procure")
        .header("Idempotency-Key", "conf-1")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(h.await_ledger("charge", 1).await.len(), 1);
    h.clear_faults().await;
    // The committed answer is replayed under the key.
    let r = h
        .http
        .post(h.url(&format!("/v1/payment_intents/{id}/confirm")))
        .bearer_auth("sk_test_procure")
        .header("Idempotency-Key", "conf-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "succeeded");
    assert_eq!(h.ledger_of("charge").len(), 1);

    h.fault(json!({"platform": "stripe", "kind": "error", "count": 1}))
        .await;
    let (s, _, e) = h.stripe("/v1/payment_intents", &params, None).await;
    assert_eq!(
        (s, e["error"]["type"].as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, Some("api_error"))
    );
}

// ---------------------------------------------------------------------------------------------
// Control and robustness

#[tokio::test]
async fn control_endpoints() {
    let h = start_default().await;
    let r = h.http.get(h.url("/_sandbox/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let c = h.get_json("/_sandbox/catalogue").await;
    let products = c["products"].as_array().unwrap();
    assert_eq!(products.len(), procure_sandbox::catalogue::demo().len());
    for key in [
        "sku",
        "platform",
        "offer_id",
        "spec_id",
        "title",
        "price_fen",
        "amount_on_sale",
        "weight_g",
        "l_mm",
        "w_mm",
        "h_mm",
        "domestic_shipping_fen",
    ] {
        assert!(products[0].get(key).is_some(), "{key}");
    }

    let (s, v) = h
        .post_json(
            &format!("/_sandbox/products/{EARBUDS}"),
            json!({"price_fen": 5000, "amount_on_sale": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    let sku = &v["productInfo"]["skuInfos"][0];
    assert_eq!(
        (&sku["specId"], &sku["price"], &sku["amountOnSale"]),
        (&json!(EARBUDS_SPEC), &json!(50), &json!(3))
    );
    let v = create_order(&h, "PO-C1", 4).await;
    assert_eq!(v["code"], "500_004");
    let (s, _) = h
        .post_json(
            &format!("/_sandbox/products/{EARBUDS}"),
            json!({"removed": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = h
        .aop(
            "com.alibaba.product",
            "alibaba.cross.productInfo",
            &[("productId", EARBUDS)],
        )
        .await;
    assert_eq!(v["success"], false);
    assert!(v["message"].as_str().unwrap().contains("不存在"), "{v}");
    let (s, _) = h
        .post_json("/_sandbox/products/0000", json!({"price_fen": 1}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = h
        .post_json(
            &format!("/_sandbox/products/{EARBUDS}"),
            json!({"price_fen": -1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let r = h
        .http
        .put(h.url("/_sandbox/webhooks"))
        .json(&json!({"payments": "http://127.0.0.1:9/pay", "tracking": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"payments": "http://127.0.0.1:9/pay", "tracking": null})
    );
    let r = h
        .http
        .put(h.url("/_sandbox/webhooks"))
        .json(&json!({"payments": "ftp://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let ledger = h.get_json("/_sandbox/ledger").await;
    assert_eq!(ledger, json!({"entries": []}));
    let r = h.http.get(h.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.json::<Value>().await.unwrap()["error"]["code"].is_string());
}

#[tokio::test]
async fn garbage_never_gets_a_server_error() {
    let h = start_default().await;
    let garbage: [&[u8]; 6] = [
        b"",
        b"%%%",
        b"\xff\xfe",
        b"{\"a\":",
        b"[1,2,3]",
        b"a=1&a=2&_aop_signature=00",
    ];
    let posts = [
        "/openapi/param2/1/com.alibaba.trade/alibaba.trade.createCrossOrder/demo1688",
        "/openapi/param2/2/x/y/demo1688",
        "/v1/payment_intents",
        "/v1/payment_intents/pi_x/confirm",
        "/v1/payment_intents/pi_x/cancel",
        "/v1/refunds",
        "/track/v2.2/register",
        "/track/v2.2/gettrackinfo",
        "/carrier/v1/shipments",
        "/_sandbox/faults",
        "/_sandbox/fx",
        "/_sandbox/products/652983741026",
        "/_sandbox/tracking/X",
        "/_sandbox/orders/1/cancel",
    ];
    for path in posts {
        for body in garbage {
            for auth in [false, true] {
                let mut req = h.http.post(h.url(path)).body(body.to_vec());
                if auth {
                    req = req
                        .bearer_auth(if path.starts_with("/carrier") {
                            "demo-carrier-key"
                        } else {
                            "sk_test_procure"
                        })
                        .header("17token", "demo17token")
                        .header("Idempotency-Key", "k".repeat(300));
                }
                let r = req.send().await.unwrap();
                assert!(
                    r.status().is_client_error() || r.status() == StatusCode::OK,
                    "{path}: {}",
                    r.status()
                );
                let v: Value = r
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("{path}: JSON answer ({e})"));
                assert!(v.is_object(), "{path}");
            }
        }
    }
    // A well-signed 1688 call with duplicated / malformed business params is a business error.
    let (s, v) = h
        .aop(
            TRADE,
            "alibaba.trade.pay.protocolPay.preparePay",
            &[(
                "tradeWithholdPreparePayParam",
                r#"{"orderId":1,"payAmount":"x"}"#,
            )],
        )
        .await;
    assert_eq!(
        (s, &v["result"]["success"]),
        (StatusCode::OK, &json!(false))
    );
    assert!(h.sandbox.ledger().is_empty());
}
