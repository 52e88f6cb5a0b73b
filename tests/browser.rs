//! The operator's own words, "operator retries in the Temporal UI", in a real browser: headless
//! Chromium (Debian's `chromium`) driven by Playwright (`tests/browser/operator_retry.mjs`) opens
//! the stock Web UI of a dev server, filters `OrderState = "NeedsOperator"`, opens the parked
//! order and retries it through the UI's own Update dialog; a malformed input typed into the same
//! dialog is refused there with its reason. This test then checks through the API and the
//! workflow's history that the order completed and that the refused attempt left no trace.
//! Screenshots of the dialog land in `target/browser/`.

mod support;

use procure::demo::Script;
use procure_domain::OrderState;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// Bound on the whole browser run (installing nothing; the script bounds each of its steps).
const BROWSER_RUN: Duration = Duration::from_secs(240);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `/usr/bin/chromium` and `playwright-core` under `tests/browser/node_modules`, installed by
/// scripts/bootstrap.sh's `chromium` and `playwright` steps (apt-get, npm) when either is missing.
fn browser_tools() {
    let chromium = Path::new("/usr/bin/chromium");
    let playwright = repo().join("tests/browser/node_modules/playwright-core/package.json");
    if chromium.exists() && playwright.exists() {
        return;
    }
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/bootstrap.sh"))
        .env("PROCURE_BOOTSTRAP_STEPS", "chromium playwright")
        .current_dir(repo())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running bash scripts/bootstrap.sh");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && chromium.exists() && playwright.exists(),
        "scripts/bootstrap.sh could not install chromium and playwright-core ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every payload of a history (an object with `metadata` and base64 `data`).
fn payload_objects(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Object(m) => {
                if m.get("data").is_some_and(Value::is_string) && m.contains_key("metadata") {
                    out.push(v.clone());
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(v, &mut out);
    out
}

/// The JSON values of `payloads`, decoded the way an operator's tools do: through the API's
/// codec endpoint with an operator token.
async fn decoded(app: &TestApp, payloads: Vec<Value>) -> Vec<Value> {
    use base64::{Engine, engine::general_purpose::STANDARD as B64};
    let operator = app.driver.token(procure_api::auth::Role::Operator, None);
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/api/codec/decode", app.system.api_url))
        .bearer_auth(operator)
        .json(&json!({ "payloads": payloads }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let data = B64.decode(p["data"].as_str().unwrap()).unwrap();
            serde_json::from_slice(&data).unwrap_or(Value::Null)
        })
        .collect()
}

/// Runs `tests/browser/operator_retry.mjs` against the UI for `workflow_id` with the extra
/// environment `env` (`PROCURE_BROWSER_CHECK` picks what it checks); panics with its output
/// unless it succeeds.
async fn in_the_ui(ui_url: &str, workflow_id: &str, env: &[(&str, String)]) {
    let mut node = tokio::process::Command::new("node");
    node.arg(repo().join("tests/browser/operator_retry.mjs"))
        .current_dir(repo())
        .env("PROCURE_UI_URL", ui_url)
        .env("PROCURE_WORKFLOW_ID", workflow_id)
        .env("PROCURE_SCREENSHOT_DIR", screenshot_dir())
        .env(
            "PROCURE_BROWSER_DEADLINE_S",
            (BROWSER_RUN.as_secs() - 10).to_string(),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(BROWSER_RUN, node.output())
        .await
        .unwrap_or_else(|_| panic!("the browser run took longer than {BROWSER_RUN:?}"))
        .expect("running node tests/browser/operator_retry.mjs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "the browser run ({env:?}) failed ({}); screenshots in {}:\n{stdout}{stderr}",
        out.status,
        screenshot_dir().display()
    );
}

#[tokio::test]
async fn operator_retries_a_parked_order_in_the_temporal_ui() {
    browser_tools();
    let ui = spawn_app_with_ui(fast()).await;
    let app = &ui.app;
    stock_out_everywhere(app).await;
    let idx = sku_cheapest_on(app, "1688").await;
    let (id, _) = place(app, idx).await;
    wait_state(app, &id, OrderState::NeedsOperator).await;
    // Another order, left unpaid: the filter must hide it.
    let (unpaid, _) = place(app, idx + 1).await;
    app.driver.clear_faults().await.unwrap();
    let workflow_id = procure_workflows::order_workflow_id(&id);

    let malformed = json!([
        {"input": r#"{"max_unit_fen": "abc"}"#, "reason": r#"invalid type: string "abc", expected i64"#},
        {"input": r#"{"max_unit_fen": -5}"#, "reason": "max_unit_fen must be 1 to 100000000 fen, got -5"},
        {"input": "42", "reason": "expected a map"},
        {"input": "[]", "reason": "expected a map"},
    ]);
    in_the_ui(
        &ui.ui_url,
        &workflow_id,
        &[
            ("PROCURE_BROWSER_CHECK", "retry".into()),
            (
                "PROCURE_OTHER_WORKFLOW_ID",
                procure_workflows::order_workflow_id(&unpaid),
            ),
            ("PROCURE_UPDATE_NAME", "retry_procurement".into()),
            ("PROCURE_RETRY_INPUT", "{}".into()),
            ("PROCURE_MALFORMED_INPUTS", malformed.to_string()),
        ],
    )
    .await;

    // The retry resumed buying; the warehouse takes it from there.
    assert_eq!(
        drive_one(app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    let done = app.driver.order(&id).await.unwrap();
    assert!(
        reasons(&done)
            .iter()
            .any(|r| r.starts_with("operator retry")),
        "{:?}",
        reasons(&done)
    );
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(ledger.iter().filter(|e| e.kind == "purchase").count(), 1);
    in_the_ui(
        &ui.ui_url,
        &workflow_id,
        &[("PROCURE_BROWSER_CHECK", "completed".into())],
    )
    .await;

    // History: the one accepted Update with the valid input; the refused ones left nothing.
    let client = test_client_at(&ui.server.address(), "e2e").await;
    let history = history_json(&client, &workflow_id, "").await;
    let history_value: Value = serde_json::from_slice(&history).unwrap();
    // (kind of Update event, its attributes) in order: Accepted, Completed, Rejected, Admitted.
    let updates: Vec<(&str, &Value)> = history_value["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["attributes"].as_object())
        .flat_map(|a| a.iter())
        .filter_map(|(k, v)| {
            let kind = k
                .strip_prefix("WorkflowExecutionUpdate")?
                .strip_suffix("EventAttributes")?;
            Some((kind, v))
        })
        .collect();
    let task_failures = history_value["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["attributes"]
                .get("WorkflowTaskFailedEventAttributes")
                .is_some()
        })
        .count();
    assert_eq!(task_failures, 0, "no workflow task failed");
    let kinds: Vec<&str> = updates.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["Accepted", "Completed"], "{updates:#?}");
    let input = &updates[0].1["accepted_request"]["input"];
    assert_eq!(input["name"], "retry_procurement");
    assert_eq!(
        decoded(app, payload_objects(&input["args"])).await,
        [json!({})],
        "the accepted Update carries the valid input"
    );
    // None of the refused inputs is anywhere in the history, decoded.
    let refused: Vec<Value> = malformed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m["input"].as_str().unwrap()).unwrap())
        .filter(Value::is_object)
        .collect();
    for value in decoded(app, payload_objects(&history_value)).await {
        assert!(
            !refused.contains(&value),
            "a refused input reached the history: {value}"
        );
    }
    replay(&history).await;

    ui.stop().await;
}
