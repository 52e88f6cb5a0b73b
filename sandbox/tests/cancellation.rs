//! Buyer cancellation at the marketplaces over real HTTP (docs/sandbox-wire.md,
//! docs/vendors/): 1688 `alibaba.trade.cancel` (unpaid orders) and `alibaba.trade.createRefund`
//! (paid, unshipped), Taobao `/purchase/order/asyn/cancel`, the `marketplace_refund` ledger
//! entries, and the seller controls (ship now, shipping delay). Each test starts a server on
//! 127.0.0.1:0; nothing waits on time.

use procure_domain::signing;
use procure_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;
use common::{Harness, now_ms, owned, start, start_default};

const EARBUDS: &str = "652983741026";
const EARBUDS_SPEC: &str = "7c2e9a4b1d6f8035c4e2a1b9d7f6e5c3";
const TRADE: &str = "com.alibaba.trade";
const ADDRESS: &str = r#"{"fullName":"Warehouse","mobile":"13800000000","address":"1 Test Rd","provinceText":"Zhejiang","cityText":"Yiwu"}"#;
const TB_EARBUDS: &str = "tb695028137746";
const TB_EARBUDS_SKU: &str = "4987301265501";
const RECEIVER: &str = r#"{"name":"Warehouse","mobile_phone":"13800000000","address":"1 Test Rd","country":"CN","state":"Zhejiang","city":"Yiwu"}"#;

/// A queried Taobao order's `purchase_id` (an integer) as text.
fn tb_id(order: &Value) -> String {
    let id = &order["purchase_id"];
    assert!(id.is_u64(), "{order}");
    id.to_string()
}

/// The refund a closed Taobao order's lines carry (0: none).
fn tb_refund_id(order: &Value) -> &Value {
    &order["sub_purchase_orders"][0]["refund_id"]
}

/// A sandbox whose sellers do not ship on their own and whose cancels have no grace period.
async fn held() -> Harness {
    start(SandboxConfig {
        seller_ship_ms: 3_600_000,
        close_order_grace_ms: 0,
        ..Default::default()
    })
    .await
}

impl Harness {
    async fn aop(&self, api: &str, params: &[(&str, &str)]) -> Value {
        let cfg = SandboxConfig::default();
        let path = format!("param2/1/{TRADE}/{api}/{}", cfg.alibaba_app_key);
        let mut all = owned(params);
        all.push(("access_token".into(), cfg.alibaba_access_token.clone()));
        all.push(("_aop_timestamp".into(), now_ms().to_string()));
        let sig = signing::aop_signature(
            &path,
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &cfg.alibaba_app_secret,
        );
        all.push(("_aop_signature".into(), sig));
        let r = self
            .http
            .post(self.url(&format!("/openapi/{path}")))
            .form(&all)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{api}");
        r.json().await.unwrap()
    }

    async fn taobao(&self, api_path: &str, params: &[(&str, &str)]) -> Value {
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
        let r = self
            .http
            .post(self.url(&format!("/rest{api_path}")))
            .form(&all)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{api_path}");
        r.json().await.unwrap()
    }

    /// A paid or unpaid 1688 order of one pair of earbuds; returns its id.
    async fn aop_order(&self, out: &str, paid: bool) -> String {
        let cargo =
            json!([{"offerId": EARBUDS, "specId": EARBUDS_SPEC, "quantity": 1}]).to_string();
        let v = self
            .aop(
                "alibaba.trade.createCrossOrder",
                &[
                    ("flow", "general"),
                    ("addressParam", ADDRESS),
                    ("cargoParamList", &cargo),
                    ("outOrderId", out),
                ],
            )
            .await;
        let id = v["result"]["orderId"].as_str().unwrap().to_owned();
        if paid {
            // One JSON parameter; payAmount in fen (totalSuccessAmount is fen too).
            let param = json!({"orderId": id.parse::<u64>().unwrap(),
                               "payAmount": v["result"]["totalSuccessAmount"],
                               "opRequestId": format!("pay-{out}")})
            .to_string();
            let v = self
                .aop(
                    "alibaba.trade.pay.protocolPay.preparePay",
                    &[("tradeWithholdPreparePayParam", &param)],
                )
                .await;
            assert_eq!(v["result"]["result"]["paySuccess"], true, "{v}");
        }
        id
    }

    async fn buyer_view(&self, id: &str) -> Value {
        let v = self
            .aop(
                "alibaba.trade.get.buyerView",
                &[("webSite", "1688"), ("orderId", id)],
            )
            .await;
        v["result"].clone()
    }

    async fn trade_cancel(&self, id: &str, reason: &str) -> Value {
        self.aop(
            "alibaba.trade.cancel",
            &[
                ("webSite", "1688"),
                ("tradeID", id),
                ("cancelReason", reason),
                ("remark", "customer cancelled"),
            ],
        )
        .await
    }

    async fn create_refund(
        &self,
        id: &str,
        entries: &str,
        pay: i64,
        carriage: i64,
        reason: &str,
    ) -> Value {
        let (pay, carriage) = (pay.to_string(), carriage.to_string());
        self.aop(
            "alibaba.trade.createRefund",
            &[
                ("orderId", id),
                ("orderEntryIds", entries),
                ("disputeRequest", "refund"),
                ("applyPayment", &pay),
                ("applyCarriage", &carriage),
                ("applyReasonId", reason),
                ("description", "customer cancelled"),
                ("goodsStatus", "refundWaitSellerSend"),
            ],
        )
        .await
    }

    async fn tb_order(&self, outer: &str, paid: bool) -> Value {
        let lines =
            json!([{"item_id": TB_EARBUDS, "sku_id": TB_EARBUDS_SKU, "quantity": 1}]).to_string();
        let r = self
            .taobao(
                "/purchase/order/render",
                &[("render_item_List", &lines), ("receiver_address", RECEIVER)],
            )
            .await;
        let amount = r["result"]["data"]["total_real_pay_price"]["amount"].to_string();
        let v = self
            .taobao(
                "/purchase/order/create",
                &[
                    ("order_line_list", &lines),
                    ("receiver", RECEIVER),
                    ("outer_purchase_id", outer),
                    ("purchase_amount", &amount),
                ],
            )
            .await;
        let id = v["data"]["order_list"][0]["purchase_id"].to_string();
        if paid {
            let list = format!("[{id}]");
            let v = self
                .taobao(
                    "/purchase/order/batch/pay",
                    &[("purchaseOrderIdList", &list)],
                )
                .await;
            assert_eq!(v["data"]["will_pay_purchase_order_ids"], json!([id]), "{v}");
        }
        self.tb_query(&id).await
    }

    async fn tb_query(&self, id: &str) -> Value {
        let ids = format!("[{id}]");
        let v = self
            .taobao("/purchase/orders/query", &[("purchase_ids", &ids)])
            .await;
        v["data"]["purchase_orders"][0].clone()
    }

    async fn tb_cancel(&self, order: &Value) -> Value {
        let id = tb_id(order);
        let subs: Vec<Value> = order["sub_purchase_orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| Value::String(l["sub_purchase_order_id"].to_string()))
            .collect();
        let subs = Value::Array(subs).to_string();
        self.taobao(
            "/purchase/order/asyn/cancel",
            &[
                ("purchase_id", &id),
                ("sub_purchase_orderId_list", &subs),
                ("cancel_reason", "customer cancelled"),
                ("cancel_remark", "none"),
            ],
        )
        .await
    }

    async fn ship(&self, id: &str) -> (StatusCode, Value) {
        self.post_json(
            &format!("/_sandbox/marketplace/orders/{id}/ship"),
            json!({}),
        )
        .await
    }

    async fn stock_1688(&self) -> i64 {
        let c = self.get_json("/_sandbox/catalogue").await;
        c["products"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["offer_id"] == EARBUDS)
            .unwrap()["amount_on_sale"]
            .as_i64()
            .unwrap()
    }
}

#[tokio::test]
async fn aop_cancels_only_unpaid_orders_and_not_too_fast() {
    // 1688's documented ten-second rule.
    let h = start_default().await;
    let id = h.aop_order("PO-C1", false).await;
    let v = h.trade_cancel(&id, "buyerCancel").await;
    assert_eq!(v["success"], false);
    assert_eq!(v["errorCode"], "CLOSE_ORDER_TOO_FAST", "{v}");
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitbuyerpay"
    );

    let h = held().await;
    let before = h.stock_1688().await;
    let id = h.aop_order("PO-C2", false).await;
    assert_eq!(h.stock_1688().await, before - 1);
    let v = h.trade_cancel(&id, "not-a-reason").await;
    assert_eq!(v["errorCode"], "400", "{v}");
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitbuyerpay"
    );
    assert_eq!(
        h.trade_cancel(&id, "buyerCancel").await,
        json!({"success": true})
    );
    assert_eq!(h.buyer_view(&id).await["baseInfo"]["status"], "cancel");
    assert_eq!(h.stock_1688().await, before, "units back on sale");
    let again = h.trade_cancel(&id, "buyerCancel").await;
    assert_eq!(again["errorCode"], "ORDER_STATUS_ERROR", "{again}");
    let none = h.trade_cancel("123", "buyerCancel").await;
    assert_eq!(none["errorCode"], "ORDER_NOT_EXIST");
    assert!(
        h.ledger_of("marketplace_refund").is_empty(),
        "nothing was paid"
    );

    // Paid: 1688's cancel refuses it (ORDER_STATUS_ERROR), the refund path is the way.
    let id = h.aop_order("PO-C3", true).await;
    let v = h.trade_cancel(&id, "buyerCancel").await;
    assert_eq!(v["errorCode"], "ORDER_STATUS_ERROR", "{v}");
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitsellersend"
    );
}

#[tokio::test]
async fn aop_refunds_a_paid_order_in_full_until_the_seller_ships() {
    let h = held().await;
    let before = h.stock_1688().await;
    let id = h.aop_order("PO-R1", true).await;
    let view = h.buyer_view(&id).await;
    let base = &view["baseInfo"];
    let (total, goods) = (fen(&base["totalAmount"]), fen(&base["sumProductPayment"]));
    let paid = h.ledger_of("marketplace_payment");
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].amount_minor, total);
    let entry = view["productItems"][0]["subItemIDString"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(view["productItems"][0]["subItemID"].to_string(), entry);
    let entries = format!("[{entry}]");

    let reasons = h
        .aop(
            "alibaba.trade.getRefundReasonList",
            &[
                ("orderId", &id),
                ("orderEntryIds", &entries),
                ("goodsStatus", "refundWaitSellerSend"),
            ],
        )
        .await;
    assert_eq!(reasons["result"]["success"], true, "{reasons}");
    let reason = reasons["result"]["result"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["needVoucher"] == false)
        .unwrap()["id"]
        .to_string();

    // Refused requests change nothing.
    for (pay, carriage, why, code) in [
        (goods - 1, 0, reason.as_str(), "5011"),
        (goods, total - goods + 1, reason.as_str(), "5011"),
        (goods, 0, "1", "5004"),
    ] {
        let v = h.create_refund(&id, &entries, pay, carriage, why).await;
        assert_eq!(v["result"]["success"], false, "{v}");
        assert_eq!(v["result"]["code"], code, "{v}");
    }
    let v = h.create_refund(&id, "[1]", goods, 0, &reason).await;
    assert_eq!(
        v["result"]["code"], "5010",
        "a sub-order of another order: {v}"
    );
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitsellersend"
    );
    assert!(h.ledger_of("marketplace_refund").is_empty());

    let v = h
        .create_refund(&id, &entries, goods, total - goods, &reason)
        .await;
    assert_eq!(v["result"]["success"], true, "{v}");
    let refund_id = v["result"]["result"]["refundId"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = h.buyer_view(&id).await["baseInfo"].clone();
    assert_eq!(base["status"], "cancel");
    assert_eq!(base["refundStatus"], "refundsuccess");
    assert_eq!(base["refundPayment"], total);
    let refunds = h.ledger_of("marketplace_refund");
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (
            refunds[0].platform.as_str(),
            refunds[0].reference.as_str(),
            refunds[0].external_id.as_str(),
            refunds[0].amount_minor,
            refunds[0].currency.as_str()
        ),
        ("1688", id.as_str(), refund_id.as_str(), total, "CNY"),
        "refunded exactly what was paid"
    );
    assert_eq!(h.stock_1688().await, before, "units back on sale");

    // A second request is refused and refunds nothing more.
    let v = h
        .create_refund(&id, &entries, goods, total - goods, &reason)
        .await;
    assert_eq!(v["result"]["code"], "5010", "{v}");
    assert_eq!(h.ledger_of("marketplace_refund").len(), 1);
}

#[tokio::test]
async fn aop_after_the_seller_ships_nothing_is_cancelled_or_refunded() {
    let h = held().await;
    let unpaid = h.aop_order("PO-S0", false).await;
    let (s, v) = h.ship(&unpaid).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _) = h.ship("nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let id = h.aop_order("PO-S1", true).await;
    let (s, v) = h.ship(&id).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["platform"], "1688");
    assert_eq!(v["order"]["status"], "waitbuyerreceive");
    let (s, again) = h.ship(&id).await;
    assert_eq!(
        (s, &again["order"]["status"]),
        (StatusCode::OK, &json!("waitbuyerreceive"))
    );
    let logistics = h.aop_logistics(&id).await;
    assert_eq!(logistics.as_array().unwrap().len(), 1, "{logistics}");

    let view = h.buyer_view(&id).await;
    let base = &view["baseInfo"];
    let (total, goods) = (fen(&base["totalAmount"]), fen(&base["sumProductPayment"]));
    let entries = format!(
        "[{}]",
        view["productItems"][0]["subItemIDString"].as_str().unwrap()
    );
    let v = h
        .create_refund(&id, &entries, goods, total - goods, "20003")
        .await;
    assert_eq!(v["result"]["code"], "5010", "{v}");
    let v = h.trade_cancel(&id, "buyerCancel").await;
    assert_eq!(v["errorCode"], "ORDER_STATUS_ERROR");
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitbuyerreceive"
    );
    assert!(h.ledger_of("marketplace_refund").is_empty());
}

/// A 1688 yuan amount (a JSON number such as `99` or `6.15`) in fen, read exactly from its text.
fn fen(yuan: &Value) -> i64 {
    procure_domain::money::parse_major(&yuan.to_string(), 2)
        .unwrap_or_else(|e| panic!("{yuan}: {e}"))
}

impl Harness {
    async fn aop_logistics(&self, id: &str) -> Value {
        let cfg = SandboxConfig::default();
        let ns = "com.alibaba.logistics";
        let api = "alibaba.trade.getLogisticsInfos.buyerView";
        let path = format!("param2/1/{ns}/{api}/{}", cfg.alibaba_app_key);
        let mut all = owned(&[("webSite", "1688"), ("orderId", id)]);
        all.push(("access_token".into(), cfg.alibaba_access_token.clone()));
        all.push(("_aop_timestamp".into(), now_ms().to_string()));
        let sig = signing::aop_signature(
            &path,
            all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &cfg.alibaba_app_secret,
        );
        all.push(("_aop_signature".into(), sig));
        let r = self
            .http
            .post(self.url(&format!("/openapi/{path}")))
            .form(&all)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        v["result"].clone()
    }
}

#[tokio::test]
async fn taobao_cancels_until_the_seller_ships_and_refunds_what_was_paid() {
    let h = held().await;
    // Unpaid: closed, nothing refunded.
    let o = h.tb_order("TB-C1", false).await;
    let v = h.tb_cancel(&o).await;
    assert_eq!(
        (&v["code"], &v["success"]),
        (&json!("0"), &json!(true)),
        "{v}"
    );
    let now = h.tb_query(&tb_id(&o)).await;
    assert_eq!(now["status"], "TRADE_CLOSED");
    assert_eq!(
        (&now["pay_amount"], tb_refund_id(&now)),
        (&json!(0), &json!(0)),
        "{now}"
    );
    assert!(h.ledger_of("marketplace_refund").is_empty());

    // Paid, not shipped: closed and refunded in full, once.
    let o = h.tb_order("TB-C2", true).await;
    assert_eq!(o["status"], "WAIT_SELLER_SEND_GOODS");
    let id = tb_id(&o);
    let bad = h
        .taobao(
            "/purchase/order/asyn/cancel",
            &[
                ("purchase_id", &id),
                ("sub_purchase_orderId_list", r#"["someone-else"]"#),
                ("cancel_reason", "x"),
            ],
        )
        .await;
    assert_eq!(bad["code"], "InvalidParameter", "{bad}");
    assert_eq!(h.tb_query(&id).await["status"], "WAIT_SELLER_SEND_GOODS");
    assert_eq!(h.tb_cancel(&o).await["success"], true);
    let now = h.tb_query(&id).await;
    let total = o["purchase_amount"].as_i64().unwrap();
    assert_eq!(now["status"], "TRADE_CLOSED");
    assert_eq!(now["pay_amount"], total);
    assert!(tb_refund_id(&now).as_u64().is_some_and(|r| r > 0), "{now}");
    assert_eq!(
        h.tb_cancel(&o).await["success"],
        true,
        "a repeat is accepted"
    );
    let refunds = h.ledger_of("marketplace_refund");
    assert_eq!(refunds.len(), 1, "refunded once");
    assert_eq!(
        (
            refunds[0].platform.as_str(),
            refunds[0].reference.as_str(),
            refunds[0].amount_minor
        ),
        ("taobao", id.as_str(), total)
    );
    let paid = h.ledger_of("marketplace_payment");
    assert_eq!(
        paid.last().unwrap().amount_minor,
        total,
        "refund = what was paid"
    );

    // Shipped: refused with the (assumed) code, nothing changes.
    let o = h.tb_order("TB-C3", true).await;
    let id = tb_id(&o);
    let (s, v) = h.ship(&id).await;
    assert_eq!(
        (s, &v["platform"]),
        (StatusCode::OK, &json!("taobao")),
        "{v}"
    );
    let v = h.tb_cancel(&o).await;
    assert_eq!(
        (&v["success"], &v["error_code"]),
        (&json!(false), &json!("ORDER_CANNOT_CANCEL")),
        "{v}"
    );
    assert_eq!(h.tb_query(&id).await["status"], "WAIT_BUYER_CONFIRM_GOODS");
    assert_eq!(h.ledger_of("marketplace_refund").len(), 1);
}

#[tokio::test]
async fn the_sellers_shipping_delay_is_set_at_runtime() {
    // By default a seller ships on payment: a paid order is already too late to cancel.
    let h = start_default().await;
    assert_eq!(
        h.get_json("/_sandbox/marketplace/seller").await,
        json!({"ship_after_ms": 0, "refunds_at_once": true})
    );
    let o = h.tb_order("TB-D1", true).await;
    assert_eq!(o["status"], "WAIT_BUYER_CONFIRM_GOODS");

    let r = h
        .http
        .put(h.url("/_sandbox/marketplace/seller"))
        .json(&json!({"ship_after_ms": 3_600_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let o = h.tb_order("TB-D2", true).await;
    assert_eq!(o["status"], "WAIT_SELLER_SEND_GOODS");
    let id = h.aop_order("PO-D3", true).await;
    assert_eq!(
        h.buyer_view(&id).await["baseInfo"]["status"],
        "waitsellersend"
    );

    for bad in [
        json!({"ship_after_ms": -1}),
        json!({"ship_after_ms": "1"}),
        json!({"x": 1}),
        json!({"ship_after_ms": 9_999_999_999_u64}),
    ] {
        let r = h
            .http
            .put(h.url("/_sandbox/marketplace/seller"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(
        h.get_json("/_sandbox/marketplace/seller").await,
        json!({"ship_after_ms": 3_600_000, "refunds_at_once": true})
    );
}

#[tokio::test]
async fn a_seller_that_decides_later_keeps_the_refund_pending_until_it_does() {
    let h = held().await;
    let r = h
        .http
        .put(h.url("/_sandbox/marketplace/seller"))
        .json(&json!({"refunds_at_once": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let decide = |id: String, agree: bool| {
        let h = &h;
        async move {
            h.post_json(
                &format!("/_sandbox/marketplace/orders/{id}/refund"),
                json!({"agree": agree}),
            )
            .await
        }
    };

    // 1688: the request stays `waitselleragree` (no money moves, the seller does not ship).
    let id = h.aop_order("PO-P1", true).await;
    let (s, _) = decide(id.clone(), true).await;
    assert_eq!(s, StatusCode::CONFLICT, "nothing to decide yet");
    let view = h.buyer_view(&id).await;
    let base = view["baseInfo"].clone();
    let (total, goods) = (fen(&base["totalAmount"]), fen(&base["sumProductPayment"]));
    let entries = format!(
        "[{}]",
        view["productItems"][0]["subItemIDString"].as_str().unwrap()
    );
    let v = h
        .create_refund(&id, &entries, goods, total - goods, "20003")
        .await;
    assert_eq!(v["result"]["success"], true, "{v}");
    let base = h.buyer_view(&id).await["baseInfo"].clone();
    assert_eq!(
        (&base["status"], &base["refundStatus"]),
        (&json!("waitsellersend"), &json!("waitselleragree"))
    );
    assert!(h.ledger_of("marketplace_refund").is_empty());
    let (s, v) = decide(id.clone(), true).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let base = h.buyer_view(&id).await["baseInfo"].clone();
    assert_eq!(
        (
            &base["status"],
            &base["refundStatus"],
            &base["refundPayment"]
        ),
        (&json!("cancel"), &json!("refundsuccess"), &json!(total))
    );
    assert_eq!(h.ledger_of("marketplace_refund").len(), 1);

    // Refused: `refundclose`, the order goes on and ships when told.
    let id = h.aop_order("PO-P2", true).await;
    h.create_refund(
        &id,
        &format!(
            "[{}]",
            h.buyer_view(&id).await["productItems"][0]["subItemIDString"]
                .as_str()
                .unwrap()
        ),
        goods,
        total - goods,
        "20003",
    )
    .await;
    assert_eq!(decide(id.clone(), false).await.0, StatusCode::OK);
    let base = h.buyer_view(&id).await["baseInfo"].clone();
    assert_eq!(
        (&base["status"], &base["refundStatus"]),
        (&json!("waitsellersend"), &json!("refundclose"))
    );
    assert_eq!(h.ledger_of("marketplace_refund").len(), 1);

    // Taobao: a paid order's cancellation waits too; an unpaid one closes at once.
    let o = h.tb_order("TB-P1", true).await;
    let tb = tb_id(&o);
    assert_eq!(h.tb_cancel(&o).await["success"], true);
    assert_eq!(h.tb_query(&tb).await["status"], "WAIT_SELLER_SEND_GOODS");
    assert_eq!(
        h.tb_cancel(&o).await["success"],
        true,
        "a repeat while pending"
    );
    assert_eq!(h.ledger_of("marketplace_refund").len(), 1);
    assert_eq!(decide(tb.clone(), true).await.0, StatusCode::OK);
    let now = h.tb_query(&tb).await;
    assert_eq!(
        (&now["status"], &now["pay_amount"]),
        (&json!("TRADE_CLOSED"), &o["purchase_amount"])
    );
    assert!(tb_refund_id(&now).as_u64().is_some_and(|r| r > 0), "{now}");
    assert_eq!(h.ledger_of("marketplace_refund").len(), 2);
    let unpaid = h.tb_order("TB-P2", false).await;
    assert_eq!(h.tb_cancel(&unpaid).await["success"], true);
    assert_eq!(h.tb_query(&tb_id(&unpaid)).await["status"], "TRADE_CLOSED");
    let (s, _) = decide("nope".into(), true).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
