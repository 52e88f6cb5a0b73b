//! The loop the API's outgoing deliveries share (webhooks, `webhook_delivery.rs`; email,
//! `email_delivery.rs`): a pass whenever new work may be due (woken, every poll interval, or a
//! send finished), old attempts pruned hourly, and on shutdown no new claims while the sends in
//! flight get their timeout to finish (their leases cover them) before they are aborted.

use procure_domain::clock::now_ms;
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::{sync::Notify, task::JoinSet};

/// How often old attempts are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// One kind of delivery.
pub(crate) trait Deliveries: Send + Sync + 'static {
    /// What the log lines call it ("webhook", "email").
    const KIND: &'static str;
    /// Fan out and claim what is due, spawning each send on `tasks`.
    fn pass(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Drop attempts recorded before `horizon_ms`.
    fn prune(&self, horizon_ms: i64) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How the loop paces itself.
pub(crate) struct Pace {
    pub wake: Arc<Notify>,
    pub poll_interval: Duration,
    /// Attempts older than this are pruned.
    pub keep: Duration,
    /// How long one send may take: the grace given to those in flight at shutdown.
    pub send_timeout: Duration,
}

/// Run `d` until `shutdown` (see the module docs).
pub(crate) async fn run<D: Deliveries>(d: Arc<D>, pace: Pace, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tasks = JoinSet::new();
    let mut last_prune = Instant::now();
    loop {
        if let Err(e) = d.pass(&mut tasks).await {
            tracing::warn!(
                error = format!("{e:#}"),
                kind = D::KIND,
                "delivery pass failed; will retry"
            );
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = Instant::now();
            let horizon = now_ms() - pace.keep.as_millis() as i64;
            if let Err(e) = d.prune(horizon).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    kind = D::KIND,
                    "pruning old delivery attempts failed"
                );
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = pace.wake.notified() => {}
            _ = tokio::time::sleep(pace.poll_interval) => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let grace = pace.send_timeout + Duration::from_secs(2);
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}
