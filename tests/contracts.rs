//! Contract tests: each vendor call's documented sample (`tests/contracts/<vendor>/<api>.json`)
//! against the adapter that speaks it and the sandbox that stands in for the vendor
//! (`tests/contracts/harness.rs` says how). One module per vendor.

#[path = "contracts/harness.rs"]
mod harness;

#[path = "contracts/alibaba.rs"]
mod alibaba;
#[path = "contracts/pdd.rs"]
mod pdd;
#[path = "contracts/taobao.rs"]
mod taobao;

use harness::*;
use serde_json::json;

/// A sandbox on a loopback port, with its default (demo) credentials. Dropped with the runtime.
pub(crate) async fn sandbox() -> (String, procure_sandbox::Sandbox) {
    procure::system::install_crypto_provider();
    let sandbox = procure_sandbox::Sandbox::new(Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(procure_sandbox::serve(
        listener,
        sandbox.clone(),
        std::future::pending(),
    ));
    (base, sandbox)
}

#[test]
fn every_fixture_names_its_vendor_api_and_sources() {
    let names = all_fixture_names();
    assert!(!names.is_empty(), "no fixtures under tests/contracts");
    for name in names {
        let f = fixture(&name);
        let (dir, file) = name.split_once('/').unwrap();
        assert_eq!(f.vendor, dir, "{name}: vendor field");
        let mut expected = f.api.replace('/', "_").trim_start_matches('_').to_owned();
        if let Some(case) = &f.case {
            expected = format!("{expected}.{case}");
        }
        assert_eq!(
            expected, file,
            "{name}: file is named after its api (and case)"
        );
        assert!(
            !f.sources.is_empty() && f.sources.iter().all(|s| !s.trim().is_empty()),
            "{name}: sources"
        );
        assert!(
            ["verbatim", "per SDK", "assembled"].contains(&f.sample.as_str()),
            "{name}: sample is {:?}",
            f.sample
        );
        assert!(
            f.response.is_object(),
            "{name}: response is the vendor's JSON object"
        );
        for r in &f.request.required {
            assert!(
                f.request.params.contains_key(r),
                "{name}: required {r} is not documented"
            );
        }
        if f.sample != "verbatim" {
            assert!(
                !f.notes.is_empty(),
                "{name}: a sample that is not verbatim says why in notes"
            );
        }
    }
}

#[test]
fn the_shape_check_sees_a_missing_field_a_wrong_type_and_an_empty_list() {
    let doc = json!({"result": {"baseInfo": {"totalAmount": 6.15, "id": 1, "status": "x"},
                     "list": [{"a": "s"}], "any": null}});
    let same = json!({"result": {"baseInfo": {"totalAmount": 18, "id": 2, "status": "y", "extra": 1},
                      "list": [{"a": "t"}, {"a": "u"}], "any": [1]}});
    assert!(shape_mismatches(&doc, &same).is_empty());
    let wrong = json!({"result": {"baseInfo": {"totalAmount": "6.15", "status": "x"},
                       "list": [], "any": 1}});
    let found = shape_mismatches(&doc, &wrong);
    assert_eq!(
        found,
        vec![
            "$.result.baseInfo.id: missing",
            "$.result.baseInfo.totalAmount: documented number (6.15), found string (\"6.15\")",
            "$.result.list: empty, the sample has elements",
        ],
        "{found:#?}"
    );
    let bad_elem = json!({"result": {"baseInfo": {"totalAmount": 1, "id": 1, "status": "x"},
                          "list": [{"a": "s"}, {"a": 3}], "any": 0}});
    assert_eq!(
        shape_mismatches(&doc, &bad_elem),
        vec!["$.result.list[1].a: documented string (\"s\"), found number (3)"]
    );
}

#[test]
fn the_request_check_sees_undocumented_missing_and_flattened_params() {
    let f: Fixture = serde_json::from_value(json!({
        "vendor": "t", "api": "t", "sources": ["s"], "sample": "verbatim",
        "request": {"params": {"webSite": "1688", "orderId": 1,
                               "tradeWithholdPreparePayParam": {"orderId": 1, "payAmount": 615}},
                    "required": ["webSite", "orderId"]},
        "response": {}
    }))
    .unwrap();
    let sent = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let good = sent(&[
        ("webSite", "1688"),
        ("orderId", "42"),
        (
            "tradeWithholdPreparePayParam",
            r#"{"orderId":42,"payAmount":615}"#,
        ),
        ("_aop_signature", "X"),
    ]);
    assert!(request_mismatches(&f, &good, &["_aop_signature"]).is_empty());
    let bad = sent(&[
        ("orderId", "abc"),
        ("payAmount", "615"),
        (
            "tradeWithholdPreparePayParam",
            r#"{"orderId":"42","amount":615}"#,
        ),
    ]);
    assert_eq!(
        request_mismatches(&f, &bad, &[]),
        vec![
            "webSite: required, not sent",
            "orderId: documented as a number, sent \"abc\"",
            "payAmount: sent, not documented",
            "tradeWithholdPreparePayParam.amount: sent, not documented",
            "tradeWithholdPreparePayParam.orderId: documented number (1), sent string (\"42\")",
        ]
    );
}
