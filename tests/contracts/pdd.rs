//! Contract tests of the Pinduoduo price client and the sandbox's router against
//! tests/contracts/pdd/ (docs/vendors/pdd.md).

use procure_adapters::pdd::{Pdd, PddConfig, PddGoods};
use procure_domain::signing;
use serde_json::Value;

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
