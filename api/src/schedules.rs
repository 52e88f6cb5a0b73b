//! Price monitors as Temporal Schedules. The monitor row is the truth; the dispatcher brings
//! the schedule `price-monitor-{id}` in line with it (create, update, pause, resume, delete)
//! whenever the row changes, so every outbox delivery is a full, idempotent reconciliation and
//! deliveries may repeat or arrive out of order.
//!
//! Policies: overlapping runs are skipped (a run still pricing when the next is due makes the
//! next one pointless), and a run missed while Temporal or the workers were down is caught up
//! if it is less than one period late (the gap between two scheduled runs, at most a day).

use procure_domain::clock::now_ms;
use procure_domain::monitor::CronSpec;
use procure_store::{Store, StoreError, monitors::MonitorStatus};
use procure_workflows::{
    PriceMonitorWorkflow,
    monitor::{PriceMonitorInput, monitor_schedule_id},
};
use std::time::Duration;
use temporalio_client::{
    Client,
    schedules::{
        CreateScheduleOptions, ScheduleAction, ScheduleError, ScheduleOverlapPolicy, ScheduleSpec,
    },
    tonic::Code,
};

pub const OVERLAP: ScheduleOverlapPolicy = ScheduleOverlapPolicy::Skip;

/// Catch-up window of a monitor: one period, between a minute and a day.
pub fn catchup_window(cron: &CronSpec, now_ms: i64) -> Duration {
    Duration::from_millis(cron.period_ms(now_ms).clamp(60_000, 86_400_000) as u64)
}

fn code(e: &ScheduleError) -> Option<Code> {
    match e {
        ScheduleError::Rpc(status) => Some(status.code()),
        _ => None,
    }
}

/// Make the monitor's schedule match its row (absent when deleted), then record the version
/// the schedule now reflects.
pub async fn sync(
    client: &Client,
    store: &Store,
    task_queue: &str,
    monitor_id: &str,
) -> anyhow::Result<()> {
    let m = match store.monitor_any(monitor_id).await {
        Ok(m) => m,
        Err(StoreError::NotFound) => {
            tracing::warn!(%monitor_id, "schedule sync for an unknown monitor; nothing to do");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let schedule_id = monitor_schedule_id(&m.id);
    let handle = client.get_schedule_handle(schedule_id.clone());
    if m.status == MonitorStatus::Deleted {
        match handle.delete(Default::default()).await {
            Ok(()) => tracing::info!(monitor_id = %m.id, %schedule_id, "schedule deleted"),
            Err(e) if code(&e) == Some(Code::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        store.mark_schedule_synced(&m.id, m.version).await?;
        return Ok(());
    }
    let cron = CronSpec::parse(&m.cron).map_err(|e| anyhow::anyhow!("stored cron: {e}"))?;
    let spec = ScheduleSpec::builder()
        .cron_strings(vec![cron.as_str().to_owned()])
        .build();
    let action = || {
        ScheduleAction::start_workflow(
            PriceMonitorWorkflow::run,
            PriceMonitorInput {
                monitor_id: m.id.clone(),
            },
            task_queue.to_owned(),
            schedule_id.clone(),
        )
    };
    let paused = m.status == MonitorStatus::Paused;
    let note = format!(
        "{}: {} product(s), alert beyond {:.2} %, landed cost to {}",
        m.name,
        m.skus.len(),
        f64::from(m.threshold_bps) / 100.0,
        m.destination_country
    );
    let created = client
        .create_schedule(
            schedule_id.clone(),
            CreateScheduleOptions::builder()
                .action(action())
                .spec(spec.clone())
                .overlap_policy(OVERLAP)
                .paused(paused)
                .note(note.clone())
                .build(),
        )
        .await;
    match created {
        Ok(_) => tracing::info!(monitor_id = %m.id, %schedule_id, cron = %cron, "schedule created"),
        Err(e) if code(&e) == Some(Code::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    // Creation cannot set the catch-up window, and an existing schedule may predate the
    // row's last change: an update settles both.
    let window = catchup_window(&cron, now_ms());
    let action = action();
    handle
        .update(
            move |u| {
                u.set_spec(spec)
                    .set_action(action)
                    .set_overlap_policy(OVERLAP)
                    .set_catchup_window(window)
                    .set_paused(paused)
                    .set_note(note);
            },
            Default::default(),
        )
        .await?;
    store.mark_schedule_synced(&m.id, m.version).await?;
    tracing::info!(monitor_id = %m.id, %schedule_id, version = m.version, paused, "schedule in sync");
    Ok(())
}

/// Run the monitor now. A monitor deleted meanwhile has nothing to run.
pub async fn trigger(client: &Client, store: &Store, monitor_id: &str) -> anyhow::Result<()> {
    match store.monitor(monitor_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    // Overlap: a manual run waits for one in progress rather than being dropped.
    client
        .get_schedule_handle(monitor_schedule_id(monitor_id))
        .trigger(ScheduleOverlapPolicy::BufferOne, Default::default())
        .await?;
    tracing::info!(%monitor_id, "price monitor triggered");
    Ok(())
}
