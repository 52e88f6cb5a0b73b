//! Contract tests of the Pinduoduo price client and the sandbox's router against
//! tests/contracts/pdd/ (docs/vendors/pdd.md).

use procure_adapters::pdd::{Pdd, PddConfig, PddGoods};
use procure_domain::signing;
use serde_json::{Value, json};

use crate::harness::*;

/// The router's envelope parameters, which the fixtures do not list.
const SYSTEM: &[&str] = &[
    "type",
    "client_id",
    "timestamp",
    "data_type",
    "access_token",
    "sign",
];

fn client(base_url: &str) -> Pdd {
    Pdd::new(PddConfig {
        base_url: base_url.into(),
        ..PddConfig::default()
    })
    .expect("client")
}

#[tokio::test]
async fn goods_detail_reads_the_documented_answer_and_asks_by_goods_sign() {
    let name = "pdd/pdd.ddk.goods.detail";
    let f = fixture(name);
    let recorder = Recorder::answering(response_literal(name)).await;
    let sign = f.request.params["goods_sign"].as_str().unwrap();
    let goods = client(&recorder.base_url).goods_detail(sign).await.unwrap();
    assert_eq!(
        goods,
        Some(PddGoods {
            goods_sign: sign.into(),
            goods_id: Some(279_384_713_802),
            name: "Ceramic mug 350 ml".into(),
            min_group_price_fen: 3900,
            min_normal_price_fen: 4500,
        })
    );
    let sent = recorder.only();
    assert_eq!(sent.path, "/api/router");
    assert_eq!(sent.params["type"], f.api);
    let wrong = request_mismatches(&f, &sent.params, SYSTEM);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A signed router call to the sandbox, as PDD's router takes it.
async fn sandbox_call(base: &str, params: &[(&str, &str)]) -> Value {
    let ts = (procure_domain::clock::now_ms() / 1000).to_string();
    let mut form: Vec<(&str, &str)> = vec![
        ("client_id", "demopdd"),
        ("timestamp", &ts),
        ("data_type", "JSON"),
    ];
    form.extend_from_slice(params);
    let sign = signing::pdd_signature(form.iter().copied(), "demopdd-secret");
    form.push(("sign", &sign));
    reqwest::Client::new()
        .post(format!("{base}/api/router"))
        .form(&form)
        .send()
        .await
        .expect("sandbox")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test]
async fn the_sandbox_answers_goods_detail_in_the_documented_shape() {
    let f = fixture("pdd/pdd.ddk.goods.detail");
    let (base, sandbox) = crate::sandbox().await;
    let offer = sandbox
        .offers()
        .into_iter()
        .find(|o| o.platform == "pinduoduo")
        .expect("a PDD offer");
    let answer = sandbox_call(
        &base,
        &[
            ("type", "pdd.ddk.goods.detail"),
            ("goods_sign", &offer.offer_id),
        ],
    )
    .await;
    let wrong = shape_mismatches(&f.response, &answer);
    assert!(wrong.is_empty(), "{wrong:#?}\n{answer:#}");
    let entry = &answer["goods_detail_response"]["goods_details"][0];
    assert_eq!(entry["goods_sign"], offer.offer_id.as_str());
    assert_eq!(entry["min_group_price"], offer.price_fen);
    // The adapter reads the same answer as the fixture's.
    let read = client(&base)
        .goods_detail(&offer.offer_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.min_group_price_fen, offer.price_fen);
    assert_eq!(read.goods_id, entry["goods_id"].as_i64());
    // Asking by the numeric id, taken offline, is refused with a clear error.
    let old = sandbox_call(
        &base,
        &[("type", "pdd.ddk.goods.detail"), ("goods_id_list", "[1]")],
    )
    .await;
    assert_eq!(
        old["error_response"]["sub_code"], "goods_id_list_offline",
        "{old}"
    );
}

#[tokio::test]
async fn the_documented_error_envelope_is_a_rejection_naming_its_code_on_both_sides() {
    let name = "pdd/pdd.ddk.goods.detail.error";
    let f = fixture(name);
    let recorder = Recorder::answering(response_literal(name)).await;
    let err = client(&recorder.base_url)
        .goods_detail("Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, procure_adapters::market::MarketError::Rejected { code, message }
            if code == "10000" && message.contains("goods_sign_invalid")),
        "{err:?}"
    );
    let (base, _sandbox) = crate::sandbox().await;
    let answer = sandbox_call(&base, &[("type", "pdd.ddk.goods.detail")]).await;
    let wrong = shape_mismatches(&f.response, &answer);
    assert!(wrong.is_empty(), "{wrong:#?}\n{answer:#}");
}

#[tokio::test]
async fn the_product_detail_reads_the_documented_skus_and_asks_for_them() {
    use procure_adapters::market::{Attribute, SkuDetail};
    let name = "pdd/pdd.ddk.goods.detail.sku";
    let f = fixture(name);
    let recorder = Recorder::answering(response_literal(name)).await;
    let sign = f.request.params["goods_sign"].as_str().unwrap();
    let p = client(&recorder.base_url)
        .product_detail(sign)
        .await
        .unwrap();
    assert_eq!(p.product_id, sign);
    assert_eq!(p.title, "Ceramic mug 350 ml");
    assert_eq!(
        p.image_urls,
        [
            "https://img.pddpic.com/mms-material-img/2024-01-01/mug-main.jpeg",
            "https://img.pddpic.com/mms-material-img/2024-01-01/mug-side.jpeg"
        ]
    );
    assert_eq!(
        p.skus,
        [SkuDetail {
            spec_id: "10001".into(),
            attributes: vec![Attribute::new("颜色", "白色")],
            price_fen: 3900,
            stock: None,
            image_url: Some(
                "https://img.pddpic.com/mms-material-img/2024-01-01/mug-white.jpeg".into()
            ),
        }]
    );
    assert_eq!(p.seller.id.as_deref(), Some("987654321"));
    assert_eq!(p.seller.name.as_deref(), Some("Sample mug mall"));
    assert_eq!(
        (p.min_order_quantity, p.weight_g, p.dimensions),
        (None, None, None)
    );
    let sent = recorder.only();
    assert_eq!(sent.params["need_sku_info"], "true");
    let wrong = request_mismatches(&f, &sent.params, SYSTEM);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn a_goods_id_resolves_through_the_documented_search() {
    let name = "pdd/pdd.ddk.goods.search";
    let f = fixture(name);
    let recorder = Recorder::answering(response_literal(name)).await;
    let sign = client(&recorder.base_url)
        .resolve_goods_id("279384713802")
        .await
        .unwrap();
    assert_eq!(sign, "Y9b2nbVjqNhKXeUbwfDb5bpU5a1DzN6D_JQ4YfgL4B");
    let sent = recorder.only();
    assert_eq!(sent.params["type"], f.api);
    assert_eq!(sent.params["keyword"], "279384713802");
    let wrong = request_mismatches(&f, &sent.params, SYSTEM);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn the_sandbox_answers_any_goods_in_the_documented_shapes() {
    let detail = fixture("pdd/pdd.ddk.goods.detail.sku");
    let search = fixture("pdd/pdd.ddk.goods.search");
    let (base, sandbox) = crate::sandbox().await;
    let pdd = client(&base);
    for goods_id in ["279384713802", "412345678901", "98765"] {
        let found = sandbox_call(
            &base,
            &[("type", "pdd.ddk.goods.search"), ("keyword", goods_id)],
        )
        .await;
        let wrong = shape_mismatches(&search.response, &found);
        assert!(wrong.is_empty(), "{wrong:#?}\n{found:#}");
        let sign = pdd.resolve_goods_id(goods_id).await.unwrap();
        assert_eq!(
            found["goods_search_response"]["goods_list"][0]["goods_sign"],
            sign.as_str()
        );
        let answer = sandbox_call(
            &base,
            &[
                ("type", "pdd.ddk.goods.detail"),
                ("goods_sign", &sign),
                ("need_sku_info", "true"),
            ],
        )
        .await;
        let wrong = shape_mismatches(&detail.response, &answer);
        assert!(wrong.is_empty(), "{wrong:#?}\n{answer:#}");
        let entry = &answer["goods_detail_response"]["goods_details"][0];
        assert_eq!(
            entry["goods_id"].to_string(),
            goods_id,
            "the goods_id it was found by"
        );
        let p = pdd.product_detail(&sign).await.unwrap();
        assert_eq!(p, pdd.product_detail(&sign).await.unwrap(), "deterministic");
        assert!((1..=4).contains(&p.skus.len()));
        assert_eq!(
            p.skus.iter().map(|s| s.price_fen).min(),
            entry["min_group_price"].as_i64()
        );
        // The price source reads the same listing.
        assert_eq!(
            pdd.goods_detail(&sign)
                .await
                .unwrap()
                .unwrap()
                .min_group_price_fen,
            p.skus.iter().map(|s| s.price_fen).min().unwrap()
        );
    }
    // A seeded listing: found by its goods_id, read as before.
    let offer = sandbox
        .offers()
        .into_iter()
        .find(|o| o.platform == "pinduoduo")
        .expect("a PDD offer");
    let goods_id = pdd
        .goods_detail(&offer.offer_id)
        .await
        .unwrap()
        .unwrap()
        .goods_id
        .unwrap()
        .to_string();
    assert_eq!(
        pdd.resolve_goods_id(&goods_id).await.unwrap(),
        offer.offer_id
    );
    let p = pdd.product_detail(&offer.offer_id).await.unwrap();
    assert_eq!(
        (
            p.skus.len(),
            p.skus[0].spec_id.as_str(),
            p.skus[0].price_fen
        ),
        (1, "", offer.price_fen)
    );
}

#[tokio::test]
async fn delisted_on_demand_is_listing_gone_and_a_link_imports_end_to_end() {
    use procure_adapters::market::MarketError;
    use procure_adapters::{AlibabaConfig, Marketplaces, TaobaoConfig};
    use procure_domain::product_link::parse_link;
    let (base, _sandbox) = crate::sandbox().await;
    let m = Marketplaces::new(
        AlibabaConfig {
            base_url: base.clone(),
            ..AlibabaConfig::default()
        },
        TaobaoConfig {
            base_url: base.clone(),
            ..TaobaoConfig::default()
        },
        PddConfig {
            base_url: base.clone(),
            ..PddConfig::default()
        },
    )
    .unwrap();
    for link in [
        "https://detail.1688.com/offer/573741401425.html?spm=a2615.7691456",
        "https://item.taobao.com/item.htm?spm=a21n57.1&id=731040994692&ns=1",
        "detail.tmall.com/item.htm?id=731040994693",
        "https://mobile.yangkeduo.com/goods.html?goods_id=279384713802&refer_page_name=index",
    ] {
        let r = parse_link(link).unwrap();
        let p = m.product_by_ref(&r).await.unwrap();
        assert_eq!(p.platform, r.platform, "{link}");
        assert!(!p.skus.is_empty() && !p.title.is_empty(), "{link}");
    }
    let r = parse_link("https://mobile.yangkeduo.com/goods.html?goods_id=279384713802").unwrap();
    let sign = m.resolve(&r).await.unwrap();
    let fault = json!({"platform": "pinduoduo", "api": "pdd.ddk.goods.detail", "kind": "delisted", "count": 1});
    let resp = reqwest::Client::new()
        .post(format!("{base}/_sandbox/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(
        m.product(procure_domain::order::Platform::Pinduoduo, &sign)
            .await
            .unwrap_err(),
        MarketError::ListingGone
    );
    assert!(m.product_by_ref(&r).await.is_ok(), "spent");
}

/// An imported (generated) 1688 and Taobao product can be quoted and bought through the
/// exactly-once purchase, and the purchase takes its units.
#[tokio::test]
async fn a_generated_product_is_bought_end_to_end() {
    use procure_adapters::market::{CargoLine, DeliveryAddress, PurchaseRequest, purchase};
    use procure_adapters::{AlibabaConfig, Marketplaces, TaobaoConfig};
    use procure_domain::order::Platform;
    use procure_domain::product_link::parse_link;
    let (base, _sandbox) = crate::sandbox().await;
    let m = Marketplaces::new(
        AlibabaConfig {
            base_url: base.clone(),
            ..AlibabaConfig::default()
        },
        TaobaoConfig {
            base_url: base.clone(),
            ..TaobaoConfig::default()
        },
        PddConfig {
            base_url: base.clone(),
            ..PddConfig::default()
        },
    )
    .unwrap();
    let address = DeliveryAddress {
        full_name: "张三".into(),
        mobile: "15251667788".into(),
        post_code: "310000".into(),
        province: "浙江省".into(),
        city: "杭州市".into(),
        area: "滨江区".into(),
        town: String::new(),
        address: "网商路699号".into(),
    };
    for (n, link) in [
        "https://detail.1688.com/offer/573741401425.html",
        "https://item.taobao.com/item.htm?id=731040994692",
    ]
    .into_iter()
    .enumerate()
    {
        let r = parse_link(link).unwrap();
        let p = m.product_by_ref(&r).await.unwrap();
        let sku = p.skus.last().unwrap();
        let quantity = p.min_order_quantity.unwrap_or(1);
        let req = PurchaseRequest {
            out_order_id: format!("import-{n}"),
            lines: vec![CargoLine {
                offer_id: p.product_id.clone(),
                spec_id: sku.spec_id.clone(),
                quantity,
                max_unit_price_fen: sku.price_fen,
            }],
            address: address.clone(),
            max_total_fen: 100_000_000,
        };
        let buyer = m.buyer(r.platform).unwrap();
        let quote = buyer.preview(&req).await.unwrap();
        assert_eq!(
            quote.unit_price(&req.lines[0]),
            Some(sku.price_fen),
            "{link}"
        );
        let bought = purchase(buyer, &req).await.unwrap();
        assert!(
            bought.amount_paid_fen >= sku.price_fen * i64::from(quantity),
            "{link}"
        );
        let after = m.product(r.platform, &p.product_id).await.unwrap();
        assert_eq!(
            after.sku(&sku.spec_id).unwrap().stock,
            sku.stock.map(|s| s - i64::from(quantity)),
            "{link}: the order took its units"
        );
        // Another spec the product does not have is refused.
        let mut wrong = req.clone();
        wrong.out_order_id = format!("import-wrong-{n}");
        wrong.lines[0].spec_id = "no-such-spec".into();
        assert!(buyer.preview(&wrong).await.is_err(), "{link}");
        assert_eq!(r.platform == Platform::Taobao, n == 1);
    }
}
