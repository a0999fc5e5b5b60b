//! Building a generation in a running node: the log into the new
//! generation's store (unless it is an existing one being switched to),
//! then a worker on it until it has applied at least every position the
//! served generation has. The runner (`runner.rs`) starts builds and
//! switches to what they hand over.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use commands::Topics;
use eventlog::EventLog;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::serving::rebuild::{rebuild_into, Rebuilt, Target};
use crate::serving::{ProjectionHandle, ProjectionSlot, RebuildStatus, ServingError};
use crate::worker::{self, Projection};

/// Resolves when `stopped` turns true (or its sender is gone).
pub(super) fn signal(
    stopped: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stopped = stopped.clone();
    async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }
}

/// A worker task on one generation, with its own stop signal.
pub(super) struct WorkerTask {
    pub(super) task: JoinHandle<Result<(), worker::WorkerError>>,
    stop: watch::Sender<bool>,
}

impl WorkerTask {
    pub(super) fn start(
        projection: &Arc<dyn Projection>,
        log: &Arc<dyn EventLog>,
        topics: &Topics,
        handle: &ProjectionHandle,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(worker::run(
            projection.clone(),
            log.clone(),
            topics.clone(),
            handle.store.clone(),
            handle.progress.clone(),
            signal(&stopped),
        ));
        Self { task, stop }
    }

    pub(super) async fn stop(self) -> Result<(), ServingError> {
        self.stop.send_replace(true);
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(ended) => worker_ended(ended),
            Err(_) => Err(ServingError::Failed("did not stop within 30 s".into())),
        }
    }
}

/// How a worker task ended, as this module reports it.
pub(super) fn worker_ended(
    ended: Result<Result<(), worker::WorkerError>, tokio::task::JoinError>,
) -> Result<(), ServingError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ServingError::Failed(error.to_string())),
        Err(join) => Err(ServingError::Failed(join.to_string())),
    }
}

/// What a finished build hands over.
pub(super) enum Built {
    /// Caught up with the served generation, its worker running.
    Live {
        handle: ProjectionHandle,
        worker: WorkerTask,
        /// The served generation's write lock, held since the last stretch
        /// of catching up, so that its worker stands still until the switch.
        hold: Option<tokio::sync::OwnedMutexGuard<()>>,
    },
    /// Frozen at a time; nothing runs on it.
    Frozen,
}

/// What a build works on: the projection's slot and code, and the log.
pub(super) struct Work {
    pub(super) slot: Arc<ProjectionSlot>,
    pub(super) projection: Arc<dyn Projection>,
    pub(super) log: Arc<dyn EventLog>,
    pub(super) topics: Topics,
}

/// How a build of generation `version` reports itself, phase by phase.
fn status_of(
    version: u32,
    until: Option<DateTime<Utc>>,
) -> impl Fn(&'static str, u64, u64, f64) -> RebuildStatus {
    move |phase, applied, total, events_per_second| RebuildStatus {
        target_version: version,
        until,
        phase,
        applied,
        total,
        events_per_second,
    }
}

/// The build itself: the log into the new generation, then (unless frozen)
/// a worker on it until it has caught up with the served generation.
pub(super) async fn build(
    work: Work,
    handle: ProjectionHandle,
    until: Option<DateTime<Utc>>,
    from_the_start: bool,
    stopped: watch::Receiver<bool>,
) -> Result<(Built, u64), ServingError> {
    let Work {
        slot,
        projection,
        log,
        topics,
    } = work;
    let status = status_of(handle.version, until);
    let rebuilt = if from_the_start {
        rebuild_into(
            projection.as_ref(),
            log.as_ref(),
            &topics,
            &handle.store,
            until.map_or(Target::LogEnd, Target::Time),
            signal(&stopped),
            |p| {
                slot.set_rebuilding(Some(status(
                    "building",
                    p.applied,
                    p.total,
                    p.events_per_second,
                )))
            },
        )
        .await
        .map_err(|e| ServingError::Failed(e.to_string()))?
    } else {
        Rebuilt {
            events: 0,
            elapsed: Duration::ZERO,
        }
    };
    handle.store.flush().await?;
    if until.is_some() {
        return Ok((Built::Frozen, rebuilt.events));
    }
    let worker = WorkerTask::start(&projection, &log, &topics, &handle);
    let built = catch_up(&slot, handle, worker, rebuilt, until, stopped).await?;
    Ok((built, rebuilt.events))
}

/// Runs the new generation's worker until it has applied at least every
/// position the served one has; for the last stretch the served worker is
/// held still (its write lock), so this ends under any write rate.
async fn catch_up(
    slot: &ProjectionSlot,
    handle: ProjectionHandle,
    mut worker: WorkerTask,
    rebuilt: Rebuilt,
    until: Option<DateTime<Utc>>,
    stopped: watch::Receiver<bool>,
) -> Result<Built, ServingError> {
    let status = status_of(handle.version, until);
    let started = Instant::now();
    let served_handle = slot.served();
    // Woken by either worker's progress, the stop signal or the new worker
    // ending: no polling.
    let mut served_moved = served_handle.progress.watch();
    let mut ours_moved = handle.progress.watch();
    let mut stopping = stopped.clone();
    let mut stop_gone = false;
    let mut hold = None;
    loop {
        let served = served_handle.progress.positions();
        let ours = handle.progress.positions();
        let caught_up = !ours.is_empty()
            && served
                .iter()
                .all(|(partition, next)| ours.get(partition).is_some_and(|o| o >= next));
        if caught_up {
            return Ok(Built::Live {
                handle,
                worker,
                hold,
            });
        }
        let applied = handle.progress.applied.load(Ordering::Relaxed);
        let behind: u64 = served
            .iter()
            .map(|(p, next)| next.saturating_sub(ours.get(p).copied().unwrap_or(0)))
            .sum();
        slot.set_rebuilding(Some(status(
            "catching up",
            rebuilt.events + applied,
            rebuilt.events + applied + behind,
            (rebuilt.events + applied) as f64
                / (rebuilt.elapsed + started.elapsed())
                    .as_secs_f64()
                    .max(1e-9),
        )));
        if hold.is_none() && behind <= CLOSE_ENOUGH && !ours.is_empty() {
            // The last stretch: the served worker waits (reads go on), so
            // catching up ends even under a write rate the new one only matches.
            hold = Some(served_handle.store.lock_writes().await);
            continue;
        }
        if stop_gone || *stopping.borrow() {
            drop(hold);
            return Err(match worker.stop().await {
                Err(error) => {
                    ServingError::Failed(format!("the new generation's worker failed: {error}"))
                }
                Ok(()) => ServingError::Unavailable(
                    "stopped before the new generation caught up".to_owned(),
                ),
            });
        }
        tokio::select! {
            _ = served_moved.changed() => {}
            _ = ours_moved.changed() => {}
            changed = stopping.changed() => stop_gone = changed.is_err(),
            ended = &mut worker.task => {
                drop(hold);
                let why = match worker_ended(ended) {
                    Err(error) => error.to_string(),
                    Ok(()) => "stopped unexpectedly".to_owned(),
                };
                return Err(ServingError::Failed(format!(
                    "the new generation's worker failed: {why}"
                )));
            }
        }
    }
}

/// How far behind the served generation (events, all partitions) the new one
/// may be when the served worker is held still for the last stretch.
const CLOSE_ENOUGH: u64 = worker::BATCH as u64;
