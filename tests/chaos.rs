//! A small `procure chaos` run as part of the suite: 16 orders through separate API and worker
//! processes while workers are SIGKILLed and restarted, the API is killed and restarted and the
//! Temporal dev server is stopped and restarted, with sandbox faults on. Every invariant holds.

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
    })
    .await
    .unwrap();
    println!("{}", report.markdown());
    assert!(report.worker_kills >= 2, "{}", report.markdown());
    assert_eq!(report.api_restarts, 1, "{}", report.markdown());
    assert_eq!(report.temporal_restarts, 1, "{}", report.markdown());
    assert!(report.ok(), "{}", report.markdown());
}
