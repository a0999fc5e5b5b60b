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
use std::time::Instant;

use chrono::{DateTime, Utc};
use commands::Topics;
use eventlog::EventLog;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::serving::build::{build, signal, worker_ended, Built, Work, WorkerTask};
use crate::serving::generation::{self, BUILDING};
use crate::serving::{
    ProjectionHandle, ProjectionSlot, RebuildOutcome, RebuildStatus, ServingError,
};
use crate::worker::Projection;

/// A runner by name, and how it ended.
pub type RunnerTask = (&'static str, JoinHandle<Result<(), ServingError>>);

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
        // Whether the served worker's task has ended (and been awaited):
        // a finished JoinHandle must not be awaited again.
        let mut worker_done = false;
        let outcome = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                ended = &mut worker.task => {
                    worker_done = true;
                    break Err(worker_ended(ended).err().unwrap_or_else(
                        || ServingError::Failed("stopped unexpectedly".into()),
                    ));
                }
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
        if worker_done {
            // It failed on its own (a full disk, say): its error is the outcome.
            return outcome;
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

/// The running build's end, when there is a build (never otherwise).
async fn finished(
    build: &mut Option<Build>,
) -> Option<Result<Result<(Built, u64), ServingError>, tokio::task::JoinError>> {
    match build {
        Some(running) => Some((&mut running.task).await),
        None => std::future::pending().await,
    }
}

async fn remove_generation(dir: &Path) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || generation::remove_dir(&dir)).await;
}
