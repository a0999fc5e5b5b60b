//! Blue/green generations in a running node. Each projection has a runner:
//! it keeps the served generation's worker going and, when asked, builds
//! the next generation beside it while the API keeps answering from the
//! served one:
//!
//! 1. building: the events topic from the start into `v<N+1>` (marked
//!    `BUILDING`), with the same batch code as the worker;
//! 2. catching up: a worker on the new generation follows the live log
//!    until it has applied at least what the served generation has (for
//!    the last stretch the served worker is held still, so this ends);
//! 3. switch: the slot serves the new generation (one pointer swap), the
//!    old worker stops, `CURRENT` is rewritten, and the old generation is
//!    removed once no request reads it (kept with `keep_previous`).
//!
//! A rebuild `until` a time builds a frozen generation and switches nothing.
//! A switch to an existing generation (a rollback to a kept previous one)
//! skips step 1: its worker catches it up from its own checkpoints.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use commands::Topics;
use eventlog::EventLog;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::serving::generation::{self, BUILDING};
use crate::serving::rebuild::{rebuild_into, Rebuilt, Target};
use crate::serving::{
    ProjectionHandle, ProjectionSlot, RebuildOutcome, RebuildStatus, ServingError,
};
use crate::worker::{self, Projection};

/// A runner by name, and how it ended.
pub type RunnerTask = (&'static str, JoinHandle<Result<(), ServingError>>);

/// Resolves when `stopped` turns true (or its sender is gone).
fn signal(
    stopped: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut stopped = stopped.clone();
    async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    }
}

/// A request to rebuild one projection.
#[derive(Debug)]
struct RebuildRequest {
    what: Wanted,
    answer: oneshot::Sender<Result<u32, ServingError>>,
}

#[derive(Debug, Clone, Copy)]
enum Wanted {
    /// Build the next generation (frozen at `until` when given).
    Rebuild {
        until: Option<DateTime<Utc>>,
        keep_previous: bool,
    },
    /// Serve an existing generation (kept or frozen) after catching it up.
    SwitchTo(u32),
}

/// Where rebuild requests go: one runner per projection.
#[derive(Debug, Clone, Default)]
pub struct Rebuilder {
    runners: Vec<(&'static str, mpsc::Sender<RebuildRequest>)>,
}

impl Rebuilder {
    /// Starts a rebuild of `projection`; answers the generation it builds.
    pub async fn start(
        &self,
        projection: &str,
        until: Option<DateTime<Utc>>,
        keep_previous: bool,
    ) -> Result<u32, ServingError> {
        self.ask(
            projection,
            Wanted::Rebuild {
                until,
                keep_previous,
            },
        )
        .await
    }

    /// Starts a switch of `projection` to an existing generation (a
    /// rollback); the generation left is kept.
    pub async fn switch_to(&self, projection: &str, generation: u32) -> Result<u32, ServingError> {
        self.ask(projection, Wanted::SwitchTo(generation)).await
    }

    async fn ask(&self, projection: &str, what: Wanted) -> Result<u32, ServingError> {
        let (_, runner) = self
            .runners
            .iter()
            .find(|(name, _)| *name == projection)
            .ok_or_else(|| ServingError::unknown_projection("name"))?;
        let (answer, answered) = oneshot::channel();
        let request = RebuildRequest { what, answer };
        let stopping = || ServingError::Unavailable("the node is stopping".into());
        runner.send(request).await.map_err(|_| stopping())?;
        answered.await.map_err(|_| stopping())?
    }
}

/// A worker task on one generation, with its own stop signal.
struct WorkerTask {
    task: JoinHandle<Result<(), worker::WorkerError>>,
    stop: watch::Sender<bool>,
}

impl WorkerTask {
    fn start(
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

    async fn stop(self) -> Result<(), ServingError> {
        self.stop.send_replace(true);
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(ended) => worker_ended(ended),
            Err(_) => Err(ServingError::Failed("did not stop within 30 s".into())),
        }
    }
}

/// How a worker task ended, as this module reports it.
fn worker_ended(
    ended: Result<Result<(), worker::WorkerError>, tokio::task::JoinError>,
) -> Result<(), ServingError> {
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(ServingError::Failed(error.to_string())),
        Err(join) => Err(ServingError::Failed(join.to_string())),
    }
}

/// What a finished build hands over.
enum Built {
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

struct Build {
    version: u32,
    dir: PathBuf,
    until: Option<DateTime<Utc>>,
    keep_previous: bool,
    started: Instant,
    task: JoinHandle<Result<(Built, u64), ServingError>>,
}

/// Keeps one projection's served generation running and builds new ones.
struct Runner {
    slot: Arc<ProjectionSlot>,
    projection: Arc<dyn Projection>,
    log: Arc<dyn EventLog>,
    topics: Topics,
    data_dir: PathBuf,
}

/// Starts a runner per slot of `slots` (each keeps its served worker going
/// until `stopped`); returns where to send rebuild requests and the
/// runners' tasks.
pub fn start_runners(
    slots: &[Arc<ProjectionSlot>],
    log: &Arc<dyn EventLog>,
    topics: &Topics,
    data_dir: &Path,
    stopped: &watch::Receiver<bool>,
) -> (Rebuilder, Vec<RunnerTask>) {
    let mut rebuilder = Rebuilder::default();
    let mut tasks = Vec::new();
    for slot in slots {
        let runner = Runner {
            slot: slot.clone(),
            projection: slot.projection.clone(),
            log: log.clone(),
            topics: topics.clone(),
            data_dir: data_dir.to_path_buf(),
        };
        let (requests, receiver) = mpsc::channel(8);
        let name = slot.name;
        rebuilder.runners.push((name, requests));
        tasks.push((name, tokio::spawn(runner.run(receiver, stopped.clone()))));
    }
    (rebuilder, tasks)
}

impl Runner {
    async fn run(
        self,
        mut requests: mpsc::Receiver<RebuildRequest>,
        stopped: watch::Receiver<bool>,
    ) -> Result<(), ServingError> {
        let name = self.slot.name;
        let mut worker = WorkerTask::start(
            &self.projection,
            &self.log,
            &self.topics,
            &self.slot.served(),
        );
        let mut build: Option<Build> = None;
        let stop = signal(&stopped);
        tokio::pin!(stop);
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                ended = &mut worker.task => break Err(worker_ended(ended).err().unwrap_or_else(
                    || ServingError::Failed("stopped unexpectedly".into()),
                )),
                Some(request) = requests.recv() => {
                    let answer = match &build {
                        Some(running) => Err(ServingError::Conflict(format!(
                            "{name} is already being rebuilt into v{}",
                            running.version
                        ))),
                        None => self.begin(request.what, &stopped).map(|started| {
                            let version = started.version;
                            build = Some(started);
                            version
                        }),
                    };
                    let _ = request.answer.send(answer);
                }
                Some(finished) = finished(&mut build) => {
                    let Some(done) = build.take() else { continue };
                    let finished = finished
                        .map_err(|join| ServingError::Failed(join.to_string()))
                        .and_then(|r| r);
                    self.finish(done, finished, &mut worker).await;
                }
            }
        };
        if let Some(running) = build {
            // The build sees the same stop signal; a half-built directory goes.
            if let Ok(Ok((Built::Live { worker, .. }, _))) = running.task.await {
                let _ = worker.stop().await;
            }
            if running.dir.join(BUILDING).exists() {
                remove_generation(&running.dir).await;
            }
            self.slot.set_rebuilding(None);
        }
        match worker.stop().await {
            Err(error) if outcome.is_ok() => Err(error),
            _ => outcome,
        }
    }

    /// Reserves the next generation's directory and starts building it, or
    /// starts catching up an existing generation to switch to.
    fn begin(&self, what: Wanted, stopped: &watch::Receiver<bool>) -> Result<Build, ServingError> {
        let name = self.slot.name;
        let (version, until, keep_previous, store) = match what {
            Wanted::Rebuild {
                until,
                keep_previous,
            } => {
                let reserved = generation::reserve(&self.data_dir, name)?;
                (reserved.version, until, keep_previous, reserved.store)
            }
            Wanted::SwitchTo(version) => {
                if version == self.slot.served().version {
                    return Err(ServingError::Conflict(format!(
                        "{name} v{version} is already served"
                    )));
                }
                let handle = self.slot.take_other(version)?;
                (version, None, true, handle.store.clone())
            }
        };
        let dir = generation::generation_dir(&self.data_dir, name, version);
        let phase = match what {
            Wanted::Rebuild { .. } => "building",
            Wanted::SwitchTo(_) => "catching up",
        };
        self.slot.set_rebuilding(Some(RebuildStatus {
            target_version: version,
            until,
            phase,
            applied: 0,
            total: 0,
            events_per_second: 0.0,
        }));
        tracing::info!(projection = name, version, ?until, phase, "rebuild started");
        let task = tokio::spawn(build(
            Work {
                slot: self.slot.clone(),
                projection: self.projection.clone(),
                log: self.log.clone(),
                topics: self.topics.clone(),
            },
            ProjectionHandle::new(name, version, store),
            until,
            matches!(what, Wanted::Rebuild { .. }),
            stopped.clone(),
        ));
        Ok(Build {
            version,
            dir,
            until,
            keep_previous,
            started: Instant::now(),
            task,
        })
    }

    /// Switches to a built generation (or records why there is none).
    async fn finish(
        &self,
        build: Build,
        finished: Result<(Built, u64), ServingError>,
        worker: &mut WorkerTask,
    ) {
        let name = self.slot.name;
        let Build {
            version,
            dir,
            until,
            keep_previous,
            started,
            ..
        } = build;
        let mut outcome = RebuildOutcome {
            target_version: version,
            until,
            events: 0,
            seconds: started.elapsed().as_secs_f64(),
            finished_at: Utc::now(),
            error: None,
        };
        match finished {
            Ok((built, events)) => {
                outcome.events = events;
                if let Err(error) = generation::complete(&dir) {
                    tracing::warn!(projection = name, %error, "cannot remove the BUILDING marker");
                }
                if let Built::Live {
                    handle,
                    worker: next,
                    hold,
                } = built
                {
                    // The applied count goes on from the generation left, never back.
                    handle.progress.applied.fetch_max(
                        self.slot.served().progress.applied.load(Ordering::Relaxed),
                        Ordering::Relaxed,
                    );
                    let previous = self.slot.switch_to(handle);
                    // Let the old worker go (it may be waiting for the lock to see its stop).
                    drop(hold);
                    let old_worker = std::mem::replace(worker, next);
                    if let Err(error) = old_worker.stop().await {
                        tracing::warn!(
                            projection = name,
                            %error,
                            "the previous generation's worker stopped badly"
                        );
                    }
                    if let Err(error) = generation::switch_generation(&self.data_dir, name, version)
                    {
                        // Served now, but the next start would serve the old one.
                        outcome.error = Some(format!(
                            "serving v{version}, but CURRENT could not be written: {error}"
                        ));
                    }
                    let previous_dir =
                        generation::generation_dir(&self.data_dir, name, previous.version);
                    if keep_previous {
                        tracing::info!(projection = name, dir = %previous_dir.display(), "previous generation kept");
                        self.slot.keep_other(previous);
                    } else {
                        // Removed when the last request reading it ends.
                        previous.retire(previous_dir);
                    }
                }
                tracing::info!(
                    projection = name,
                    version,
                    events,
                    seconds = outcome.seconds,
                    frozen = until.is_some(),
                    "rebuild finished"
                );
            }
            Err(error) => {
                tracing::error!(projection = name, version, %error, "rebuild failed");
                if dir.join(BUILDING).exists() {
                    remove_generation(&dir).await;
                }
                outcome.error = Some(error.to_string());
            }
        }
        self.slot.finish_rebuild(outcome);
    }
}

/// What a build works on: the projection's slot and code, and the log.
struct Work {
    slot: Arc<ProjectionSlot>,
    projection: Arc<dyn Projection>,
    log: Arc<dyn EventLog>,
    topics: Topics,
}

/// The running build's end, when there is a build (never otherwise).
async fn finished(
    build: &mut Option<Build>,
) -> Option<Result<Result<(Built, u64), ServingError>, tokio::task::JoinError>> {
    match build {
        Some(running) => Some((&mut running.task).await),
        None => std::future::pending().await,
    }
}

/// The build itself: the log into the new generation, then (unless frozen)
/// a worker on it until it has caught up with the served generation.
async fn build(
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
    let version = handle.version;
    let status = |phase, applied, total, events_per_second| RebuildStatus {
        target_version: version,
        until,
        phase,
        applied,
        total,
        events_per_second,
    };
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
    let version = handle.version;
    let status = |phase, applied, total, events_per_second| RebuildStatus {
        target_version: version,
        until,
        phase,
        applied,
        total,
        events_per_second,
    };
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

async fn remove_generation(dir: &Path) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || generation::remove_dir(&dir)).await;
}
