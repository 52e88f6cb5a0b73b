//! Order intake with group commit: concurrent accepts are queued and written by one task at a
//! time, many orders per transaction ([`Store::create_orders`]), each request awaiting the
//! commit that holds its order.
//!
//! SQLite has one writer at a time. With a pool of writers, each accept takes the write lock in
//! turn, and those that find it held sleep in SQLite's busy handler (1 ms, 2 ms, 5 ms, … up to
//! 100 ms per try), which is where the tail of the accept latency came from. One writer that
//! takes whatever has queued while the previous batch committed never waits on itself, and
//! commits once per batch instead of once per order. On PostgreSQL every order takes the same
//! listing row's lock, so there too one transaction per batch serves more than many contending
//! ones, and it flushes the WAL once per batch.
//!
//! No task runs while nothing is queued: the first accept that finds the queue idle spawns the
//! flusher on its own runtime, and the flusher ends when the queue is empty. A request that is
//! dropped while queued (its client went away) still has its order written or refused; a
//! retry under the same key then replays it.

use crate::{
    db::{Result, Store, StoreError},
    orders::{CreatedOrder, OrderToAccept},
};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Orders per transaction by default (PostgreSQL keeps 64 subtransactions per transaction in
/// memory; each order is one savepoint).
pub const DEFAULT_MAX_BATCH: usize = 64;

/// The queue of orders waiting to be accepted; cheap to clone (clones share the queue).
#[derive(Clone)]
pub struct Intake {
    store: Store,
    max_batch: usize,
    queue: Arc<Mutex<Queue>>,
}

struct Job {
    order: OrderToAccept,
    reply: oneshot::Sender<Result<CreatedOrder>>,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// A flusher is running: it will take what is queued.
    flushing: bool,
}

impl Intake {
    /// An intake writing to `store`, at most `max_batch` orders per transaction (at least 1).
    pub fn new(store: Store, max_batch: usize) -> Intake {
        Intake {
            store,
            max_batch: max_batch.max(1),
            queue: Arc::default(),
        }
    }

    /// Accept one order as [`Store::create_order_traced`] does, in the next batch.
    pub async fn accept(&self, order: OrderToAccept) -> Result<CreatedOrder> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.jobs.push(Job { order, reply });
            !std::mem::replace(&mut q.flushing, true)
        };
        if start {
            tokio::spawn(flush(self.clone()));
        }
        answer.await.map_err(|_| {
            StoreError::Db(sqlx::Error::Protocol(
                "the intake writer stopped before answering".into(),
            ))
        })?
    }

    /// The next batch, or `None` (and the queue marked idle) when nothing is queued.
    fn take(&self) -> Option<Vec<Job>> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.jobs.is_empty() {
            q.flushing = false;
            return None;
        }
        let n = q.jobs.len().min(self.max_batch);
        Some(q.jobs.drain(..n).collect())
    }
}

/// Marks the queue idle if the flusher ends early (a panic, its runtime shutting down), so the
/// next accept starts another. (When the queue runs empty, [`Intake::take`] marks it.)
struct Idle<'a>(Option<&'a Intake>);

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        if let Some(intake) = self.0 {
            let mut q = intake.queue.lock().unwrap_or_else(|p| p.into_inner());
            q.flushing = false;
        }
    }
}

async fn flush(intake: Intake) {
    let mut idle = Idle(Some(&intake));
    loop {
        let Some(jobs) = intake.take() else {
            idle.0 = None;
            return;
        };
        let (orders, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.order, j.reply)).unzip();
        match intake.store.create_orders(&orders).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            // The batch did not commit: each order again in its own transaction, so each gets
            // its own answer (a key already used replays; nothing was stored twice).
            Err(_) => {
                for (o, reply) in orders.iter().zip(replies) {
                    let answer = intake
                        .store
                        .create_order_traced(
                            &o.order,
                            &o.idempotency_key,
                            &o.request_hash,
                            o.trace_parent.as_deref(),
                        )
                        .await;
                    let _ = reply.send(answer);
                }
            }
        }
    }
}
