//! A small `procure chaos` run as part of the suite: 16 orders through separate API and worker
//! processes while workers are SIGKILLed and restarted, the API is killed and restarted and the
//! Temporal dev server is stopped and restarted, with sandbox faults on; meanwhile operators send
//! malformed and valid actions with the `temporal` CLI, signed webhooks lie about amounts and a
//! real delivery is replayed, and customers cancel at random stages. Every invariant holds and
//! every kind of action happened.

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_is_lost_or_doubled_while_processes_die() {
    let dir = std::env::temp_dir().join(format!(
        "procure-chaos-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let report = procure::chaos::run(procure::chaos::ChaosConfig {
        orders: 16,
        seed: 7,
        procure_bin: env!("CARGO_BIN_EXE_procure").into(),
        dir,
        kill_every: (Duration::from_millis(2_500), Duration::from_millis(4_000)),
        deadline: Duration::from_secs(240),
        actions: procure::chaos::Actions::default(),
    })
    .await
    .unwrap();
    let md = report.markdown();
    println!("{md}");
    assert!(report.worker_kills >= 2, "{md}");
    assert_eq!(report.api_restarts, 1, "{md}");
    assert_eq!(report.temporal_restarts, 1, "{md}");
    // Every kind of action happened.
    assert!(report.malformed_sent >= 1, "{md}");
    assert_eq!(report.malformed_refused, report.malformed_sent, "{md}");
    assert!(report.malformed_refused > report.malformed_late, "{md}");
    assert!(report.malformed_signals >= 1, "{md}");
    assert!(report.valid_sent >= 1, "{md}");
    assert!(report.forged_sent >= 1, "{md}");
    assert_eq!(report.forged_parked, report.forged_sent, "{md}");
    assert!(report.replays_sent >= 1, "{md}");
    assert!(report.cancels_granted + report.cancels_refused >= 1, "{md}");
    // Each new invariant was checked and held (and so did the old ones).
    for name in [
        "every malformed operator action refused",
        "a forged payment parks its order until paid for real",
        "no workflow in a workflow-task-failure loop",
        "no outbox row retried past its bound",
        "per order: charged − refunded = what the policy owes for its end state",
    ] {
        assert!(
            report.checks.iter().any(|(n, held, _)| n == name && *held),
            "{name}: {md}"
        );
    }
    assert!(report.ok(), "{md}");
}
