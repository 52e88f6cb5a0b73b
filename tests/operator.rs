//! Operator actions on a real dev server, sent the way an operator sends them: the stock
//! `temporal` CLI. Malformed input never fails a workflow task: an update refuses it before it
//! enters history (the CLI gets the reason), a signal puts it on the timeline and ignores it;
//! the order keeps answering its `status` query and then finishes on a valid action.

mod support;

use procure::demo::Script;
use procure_domain::OrderState;
use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

/// Inputs an operator might type for `retry_procurement`: a string where a number belongs, a
/// bare number, null, an array, numbers out of range, an unknown field.
const BAD_RETRIES: [&str; 7] = [
    r#"{"max_unit_fen": "abc"}"#,
    "42",
    "null",
    "[]",
    r#"{"max_unit_fen": -5}"#,
    r#"{"max_unit_fen": 99999999999999999999}"#,
    r#"{"max_unit_fen_typo": 1200}"#,
];

/// Inputs for `cancel_order`: a number where the reason belongs, null, an array, an object
/// without a reason, an empty reason, a reason with a bidirectional override.
const BAD_CANCELS: [&str; 6] = [
    "5",
    "null",
    "[]",
    r#"{"reason": 5}"#,
    r#"{"reason": ""}"#,
    "\"refund\u{202e}evil\"",
];

async fn parked_order(app: &TestApp) -> String {
    stock_out_everywhere(app).await;
    let idx = sku_cheapest_on(app, "1688").await;
    let (id, _) = place(app, idx).await;
    wait_state(app, &id, OrderState::NeedsOperator).await;
    id
}

/// Events of the order's history by type name, through the CLI.
fn history_event_types(id: &str) -> Vec<String> {
    let out = temporal_cli(&[
        "workflow",
        "show",
        "--workflow-id",
        &procure_workflows::order_workflow_id(id),
        "--output",
        "json",
    ])
    .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn answers_status(id: &str) {
    temporal_cli(&[
        "workflow",
        "query",
        "--workflow-id",
        &procure_workflows::order_workflow_id(id),
        "--type",
        "status",
    ])
    .unwrap_or_else(|e| panic!("the order stopped answering its status query: {e:#}"));
}

/// Wait until the read-model timeline holds `n` reasons containing `needle`.
async fn wait_reasons(app: &TestApp, id: &str, needle: &str, n: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = app.driver.order(id).await.unwrap();
        let got = reasons(&o).iter().filter(|r| r.contains(needle)).count();
        if got >= n {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "{n} × {needle:?} never reached the timeline; {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn malformed_operator_input_never_fails_a_workflow_task() {
    let app = spawn_app(fast()).await;
    let id = parked_order(&app).await;
    let before = history_event_types(&id).len();

    // Updates: refused at once with the reason; nothing enters history.
    for bad in BAD_RETRIES {
        let e = temporal_cli_update(&app, &id, "retry_procurement", bad)
            .await
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("max_unit_fen")
                || msg.contains("invalid type")
                || msg.contains("unknown field"),
            "refusal of {bad} names the problem: {msg}"
        );
        answers_status(&id);
    }
    for bad in BAD_CANCELS {
        let e = temporal_cli_update(&app, &id, "cancel_order", bad)
            .await
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("reason"),
            "refusal of {bad} names the reason field: {msg}"
        );
        answers_status(&id);
    }
    // A valid decision the order is not waiting for is refused too.
    let e = temporal_cli_update(&app, &id, "retry_step", "{}")
        .await
        .unwrap_err();
    assert!(
        format!("{e:#}").contains("retry_step applies only"),
        "{e:#}"
    );
    let events = history_event_types(&id);
    assert_eq!(
        events.len(),
        before,
        "refused updates leave no trace in history: {:?}",
        &events[before..]
    );

    // Signals: accepted by the server, noted on the timeline and ignored.
    for bad in BAD_RETRIES {
        temporal_cli_signal(&id, "retry_procurement", bad);
    }
    for bad in ["5", "null", "[]", r#"{"reason": "x"}"#] {
        temporal_cli_signal(&id, "cancel_order", bad);
    }
    let o = wait_reasons(&app, &id, "ignored: its input", BAD_RETRIES.len() + 4).await;
    assert_eq!(o["state"], "NeedsOperator", "nothing moved the order");
    answers_status(&id);
    let events = history_event_types(&id);
    assert!(
        !events.iter().any(|t| t.contains("WORKFLOW_TASK_FAILED")),
        "no workflow task failed: {events:?}"
    );

    // Then a valid retry from the CLI: accepted with its outcome, and the order completes.
    app.driver.clear_faults().await.unwrap();
    let out = temporal_cli_update(
        &app,
        &id,
        "retry_procurement",
        r#"{"max_unit_fen": 100000}"#,
    )
    .await
    .expect("a valid retry is accepted");
    assert!(
        out.contains("retrying procurement with unit price up to 100000 fen"),
        "the CLI shows the decoded outcome: {out}"
    );
    assert_eq!(
        drive_one(&app, &id, Script::HappyPath).await,
        OrderState::Completed
    );
    let done = app.driver.order(&id).await.unwrap();
    assert!(
        reasons(&done)
            .iter()
            .any(|r| r.starts_with("operator retry")),
        "{done}"
    );
    app.system.stop().await.unwrap();
}

#[tokio::test]
async fn operator_cancel_update_answers_with_the_outcome() {
    let app = spawn_app(fast()).await;
    let id = parked_order(&app).await;
    let out = temporal_cli_update(
        &app,
        &id,
        "cancel_order",
        r#"{"reason": "supplier cannot deliver", "requested_by": "operator:ops-1"}"#,
    )
    .await
    .expect("a valid cancel is accepted");
    assert!(
        out.contains("granted:true") && out.contains("state:Refunded"),
        "the CLI shows the decoded outcome: {out}"
    );
    let o = wait_state(&app, &id, OrderState::Refunded).await;
    let all = reasons(&o);
    assert!(
        all.iter()
            .any(|r| r == "cancellation requested by operator:ops-1: supplier cannot deliver"),
        "who asked is on the timeline: {all:?}"
    );
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(ledger_sum(&ledger, "charge"), ledger_sum(&ledger, "refund"));
    app.system.stop().await.unwrap();
}

/// A step no retry can fix (the provider answers the order's refund 400, because the charge was
/// already refunded by hand) parks the order in NeedsOperator naming the step and its error,
/// instead of retrying out of sight; `retry_step` tries it once more and it parks again.
#[tokio::test]
async fn a_step_the_provider_refuses_parks_for_an_operator_instead_of_retrying() {
    let app = spawn_app(fast()).await;
    let id = parked_order(&app).await;
    let o = app.driver.order(&id).await.unwrap();
    let intent = o["payment_intent_id"].as_str().unwrap();
    let total = o["total"]["minor"].as_i64().unwrap();
    // Someone refunds the charge by hand at the provider.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/refunds", app.system.sandbox_url))
        .bearer_auth("sk_test_procure")
        .header("Idempotency-Key", format!("by-hand-{id}"))
        .form(&[("payment_intent", intent), ("amount", &total.to_string())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // The operator cancels (the earlier signal form: the update would wait for the outcome).
    temporal_cli_signal(&id, "cancel_order", "\"supplier cannot deliver\"");
    let o = wait_reasons(&app, &id, "step refund_payment failed", 1).await;
    assert_eq!(o["state"], "NeedsOperator", "{o}");
    let why = reasons(&o)
        .into_iter()
        .rfind(|r| r.contains("step refund_payment failed"))
        .unwrap();
    assert!(why.contains("retry_step"), "says what to do: {why}");
    temporal_cli_update(&app, &id, "retry_step", "{}")
        .await
        .expect("retry_step is accepted while the step is parked");
    let o = wait_reasons(&app, &id, "step refund_payment failed", 2).await;
    assert_eq!(o["state"], "NeedsOperator");
    let ledger = app.driver.ledger().await.unwrap();
    assert_eq!(
        ledger.iter().filter(|e| e.kind == "refund").count(),
        1,
        "only the refund by hand: nothing was refunded twice"
    );
    answers_status(&id);
    app.system.stop().await.unwrap();
}
