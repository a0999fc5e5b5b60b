//! CloudEvents HTTP sinks (`serve --sink NAME=URL`): every event of the
//! log POSTed to a receiver in the HTTP binding's binary mode, at least
//! once and in order per order, from a durable checkpoint per sink (its own
//! sled database, `sinks/<name>/`). Partitions go in parallel, each on its
//! own task (`partition.rs`); a bounded number of requests is in flight per
//! sink; refused events park per order like dead letters and are retried
//! or discarded by an operator. On Kafka the checkpoints are also committed
//! to the consumer group `<prefix>.sink.<NAME>`, for Kafka's own tools.

mod delivery;
mod partition;
pub mod spec;
mod store;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use commands::Topics;
use eventlog::{EventLog, LogError};
use tokio::sync::{mpsc, oneshot};

pub use delivery::REQUEST_TIMEOUT;
pub use partition::WINDOW;
pub use spec::{SinkSpec, SpecError};
pub use store::{ParkedEvent, SinkStore};

use crate::store::StoreError;
use crate::worker::{GroupCommitter, Progress};
use partition::Control;

/// Requests in flight at once, per sink.
pub const IN_FLIGHT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink {name}: cannot reach {url} ({reason}); start the receiver or fix --sink")]
    Unreachable {
        name: String,
        url: String,
        reason: String,
    },
    #[error("sink {name}: cannot open its store in {dir}: {source}")]
    Open {
        name: String,
        dir: std::path::PathBuf,
        source: StoreError,
    },
    #[error("sink {0}: no such sink")]
    NotFound(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} stopped")]
    Stopped(&'static str),
}

impl eventlog::Transient for SinkError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Log(error) => error.is_transient(),
            _ => false,
        }
    }
}

/// What every partition of a sink shares.
#[derive(Debug)]
pub(crate) struct SinkShared {
    pub(crate) spec: SinkSpec,
    pub(crate) http: reqwest::Client,
    pub(crate) in_flight: tokio::sync::Semaphore,
    pub(crate) counters: Counters,
    pub(crate) store: SinkStore,
    /// Checkpoints per partition and the delivered count (`applied`).
    pub(crate) progress: Arc<Progress>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) retries: AtomicU64,
    /// Orders whose next event waits for a retry.
    pub(crate) retrying: AtomicU64,
    pub(crate) last_error: Mutex<Option<String>>,
}

/// A running sink, for status and operator requests.
#[derive(Debug)]
pub struct Sink {
    shared: Arc<SinkShared>,
    controls: Vec<mpsc::Sender<Control>>,
}

/// A sink's numbers right now.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkStatus {
    pub name: String,
    /// Without credentials.
    pub url: String,
    pub lag: u64,
    pub lag_seconds: f64,
    pub delivered: u64,
    pub retries: u64,
    pub retrying: u64,
    pub parked: u64,
    pub last_error: Option<String>,
}

impl Sink {
    pub fn name(&self) -> &str {
        &self.shared.spec.name
    }

    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// Status, with the lag as `lag` measured it.
    pub fn status(&self, lag: &crate::serving::Lag) -> Result<SinkStatus, SinkError> {
        let counters = &self.shared.counters;
        Ok(SinkStatus {
            name: self.shared.spec.name.clone(),
            url: self.shared.spec.display_url(),
            lag: lag.events,
            lag_seconds: lag.seconds,
            delivered: self.shared.progress.applied.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
            retrying: counters.retrying.load(Ordering::Relaxed),
            parked: self.shared.store.parked()?.len() as u64,
            last_error: counters
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    /// Every parked event, by order then position.
    pub fn parked(&self) -> Result<Vec<ParkedEvent>, SinkError> {
        Ok(self.shared.store.parked()?)
    }

    /// Sends the parked events of `order_id` (or of every order) again, in
    /// order per order, behind nothing; answers how many were queued.
    pub async fn retry(&self, order_id: Option<&str>) -> Result<usize, SinkError> {
        let mut queued = 0;
        for control in &self.controls {
            let (reply, answer) = oneshot::channel();
            let request = Control::Retry {
                order_id: order_id.map(str::to_owned),
                reply,
            };
            control
                .send(request)
                .await
                .map_err(|_| SinkError::Stopped("the sink"))?;
            queued += answered(answer).await?;
        }
        Ok(queued)
    }

    /// Drops one parked event for good (the receiver never gets it); the
    /// order's later events flow again once it has no parked event left.
    pub async fn discard(
        &self,
        partition: u32,
        offset: u64,
    ) -> Result<Option<ParkedEvent>, SinkError> {
        let Some(control) = self.controls.get(partition as usize) else {
            return Ok(None);
        };
        let (reply, answer) = oneshot::channel();
        control
            .send(Control::Discard {
                partition,
                offset,
                reply,
            })
            .await
            .map_err(|_| SinkError::Stopped("the sink"))?;
        answered(answer).await
    }
}

/// A partition's answer to an operator request, bounded: a partition that
/// is starting over (after a log error) answers once it runs again.
async fn answered<T>(answer: oneshot::Receiver<T>) -> Result<T, SinkError> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), answer).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(SinkError::Stopped("the sink")),
        Err(_) => Err(SinkError::Stopped(
            "a partition of the sink did not answer within 10 s (it may be starting over); the request",
        )),
    }
}

/// A sink's tasks: one per partition, and the group committer.
pub type SinkTask = tokio::task::JoinHandle<Result<(), SinkError>>;

/// Opens every sink's store under `data_dir/sinks/`, checks that each
/// receiver answers, and starts delivering until `shutdown`.
pub async fn start(
    specs: Vec<SinkSpec>,
    data_dir: &Path,
    log: &Arc<dyn EventLog>,
    topics: &Topics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(Vec<Arc<Sink>>, Vec<SinkTask>), SinkError> {
    let shutdown = eventlog::shared_shutdown(shutdown);
    let mut opened = Vec::new();
    for spec in specs {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| SinkError::Unreachable {
                name: spec.name.clone(),
                url: spec.display_url(),
                reason: e.to_string(),
            })?;
        delivery::reachable(&http, &spec.url)
            .await
            .map_err(|reason| SinkError::Unreachable {
                name: spec.name.clone(),
                url: spec.display_url(),
                reason,
            })?;
        let dir = data_dir.join("sinks").join(&spec.name);
        let store = std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
            .and_then(|()| SinkStore::open(&dir))
            .map_err(|source| SinkError::Open {
                name: spec.name.clone(),
                dir: dir.clone(),
                source,
            })?;
        opened.push((spec, http, store));
    }
    let partitions = log.partition_count(&topics.events).await?;
    let mut sinks = Vec::new();
    let mut tasks = Vec::new();
    for (spec, http, store) in opened {
        let progress = Arc::new(Progress::default());
        let delivered: u64 = (0..partitions)
            .map(|p| store.delivered(p))
            .sum::<Result<_, _>>()?;
        progress.applied.store(delivered, Ordering::Relaxed);
        let shared = Arc::new(SinkShared {
            spec,
            http,
            in_flight: tokio::sync::Semaphore::new(IN_FLIGHT),
            counters: Counters::default(),
            store,
            progress,
        });
        let mut controls = Vec::new();
        for partition in 0..partitions {
            let (control, requests) = mpsc::channel(8);
            controls.push(control);
            let requests = Arc::new(tokio::sync::Mutex::new(requests));
            let (shared, log, events) = (shared.clone(), log.clone(), topics.events.clone());
            let what = format!("sink {} partition {partition}", shared.spec.name);
            let shutdown = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                eventlog::retry_transient(&what, shutdown, |shutdown| {
                    let (shared, log, events, requests) = (
                        shared.clone(),
                        log.clone(),
                        events.clone(),
                        requests.clone(),
                    );
                    async move {
                        let mut requests = requests.lock().await;
                        partition::run(shared, log, events, partition, &mut requests, shutdown)
                            .await
                    }
                })
                .await
            }));
        }
        // Kafka's tools read the sink's lag from its group's offsets.
        let committer = GroupCommitter::spawn(
            log.clone(),
            topics.clone(),
            topics.sink_group(&shared.spec.name),
            &shared.progress,
        );
        let (progress, stop) = (shared.progress.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            stop.await;
            if let Err(error) = committer.finish(&progress).await {
                tracing::warn!(%error, "could not commit a sink's group offsets at stop");
            }
            Ok(())
        }));
        sinks.push(Arc::new(Sink { shared, controls }));
    }
    Ok((sinks, tasks))
}
