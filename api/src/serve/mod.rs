//! `orderstore serve`: one node with the embedded log, the command
//! processor, the three projection workers, the live tail and the HTTP API,
//! stopped together by one shutdown signal.
//!
//! Data directory layout: `log/` (the embedded log), `state/` (the
//! processor's state store), `projections/<name>/v<N>/` (read models),
//! `sinks/<name>/` (each sink's checkpoints and parked events),
//! `orderstore.json` (settings fixed at creation: backend, topic prefix,
//! partitions).

mod settings;

pub use settings::{Backend, KafkaSettings, DEFAULT_PARTITIONS};

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use commands::processor;
use commands::Topics;
use commands::{StateStore, SystemClock};
use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::{KafkaConfig, KafkaLog};
use eventlog::{EventLog, LogError};
use projections::serving::generation;
use projections::serving::{ProjectionHandle, ProjectionSlot, ReadModels};
use projections::{customer, Projection, ProjectionStore};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::schema;
use crate::state::AppState;
use commands::CommandGateway;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The embedded log (default) or a Kafka cluster.
    pub backend: Backend,
    /// Prefix of every topic and consumer group (`orderstore.events`, ...).
    pub topic_prefix: String,
    /// Partitions of new topics; existing ones keep their own.
    pub partitions: Option<u32>,
    pub auth_token: Option<String>,
    /// Allow a non-loopback listen address without a token.
    pub insecure: bool,
    pub command_timeout: Duration,
    pub consistency_timeout: Duration,
    /// Run the command processor here. A node without it serves reads and
    /// accepts commands for another node to process (with Kafka).
    pub process_commands: bool,
    /// The sled page-cache budget of the node, shared out to its log, state
    /// store and projections (`eventlog::cache`).
    pub cache_bytes: u64,
    /// Commands are refused while less than this is free on the data
    /// directory's disk (`eventlog::disk`); 0 never refuses.
    pub disk_reserve_bytes: u64,
    /// CloudEvents HTTP sinks: every event POSTed to each receiver
    /// (`--sink NAME=URL`, `sinks/<name>/` in the data directory).
    pub sinks: Vec<projections::sinks::SinkSpec>,
}

impl ServeConfig {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Self {
        Self {
            data_dir,
            listen,
            backend: Backend::Embedded,
            topic_prefix: "orderstore".into(),
            partitions: None,
            auth_token: None,
            insecure: false,
            command_timeout: Duration::from_secs(10),
            consistency_timeout: Duration::from_secs(5),
            process_commands: true,
            cache_bytes: eventlog::cache::DEFAULT_CACHE_BYTES,
            disk_reserve_bytes: eventlog::disk::DEFAULT_RESERVE_BYTES,
            sinks: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("refusing to serve on {0} without --auth-token; pass --insecure to allow it")]
    Insecure(SocketAddr),
    #[error("the data directory {dir} was created with {stored} partitions; --partitions {requested} cannot change that")]
    Partitions {
        dir: PathBuf,
        stored: u32,
        requested: u32,
    },
    #[error("the data directory {dir} holds state of {stored}, not of {requested}; use another --data-dir")]
    Backend {
        dir: PathBuf,
        stored: String,
        requested: String,
    },
    #[error(
        "cannot open {what} in {dir}: {source} (is another orderstore serving this directory?)"
    )]
    Open {
        what: &'static str,
        dir: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sink(#[from] projections::sinks::SinkError),
    #[error("{task} stopped: {message}")]
    Task { task: &'static str, message: String },
}

/// A part of the node, by name, and how it ended.
pub(crate) type NamedTask = (&'static str, JoinHandle<Result<(), String>>);

/// A running node.
pub struct Server {
    pub addr: SocketAddr,
    /// The node's log, for tools and tests that write to it directly.
    pub log: Arc<dyn EventLog>,
    /// The GraphQL schema, for executing requests without HTTP.
    pub schema: schema::AppSchema,
    /// The read models (for tools and tests that look inside).
    pub read: ReadModels,
    /// Where committed events go to live subscriptions.
    live: broadcast::Sender<crate::state::LiveEvent>,
    data_dir: PathBuf,
    /// Fires when the log's files are flushed and released.
    log_closed: Closed,
    stop: watch::Sender<bool>,
    tasks: Vec<NamedTask>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn signal(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// The slot of one projection, serving its current generation (created
/// when there is none), after removing what a crash or stop left behind.
fn open_projection(
    dir: &Path,
    projection: Arc<dyn Projection>,
) -> Result<ProjectionSlot, ServeError> {
    let name = projection.name();
    let removed = generation::clean_up(dir, name)?;
    if !removed.is_empty() {
        tracing::info!(projection = name, generations = ?removed, "removed half-built and retired generations");
    }
    let version = generation::current_generation(dir, name);
    let path = generation::generation_dir(dir, name, version);
    std::fs::create_dir_all(&path)?;
    let store = ProjectionStore::open(&path).map_err(|e| ServeError::Open {
        what: "projection store",
        dir: path.clone(),
        source: Box::new(e),
    })?;
    Ok(ProjectionSlot::new(
        projection,
        ProjectionHandle::new(name, version, store),
        dir,
    ))
}

/// This node's stable identity (created once per data directory): its
/// static group membership on Kafka.
fn instance_id(dir: &Path) -> Result<String, ServeError> {
    let path = dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    let id = format!("node-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &id)?;
    Ok(id)
}

/// Fires when the embedded log has released its files (None for Kafka).
type Closed = Option<eventlog::embedded::Closed>;

/// Waits (bounded) until the log's files are released.
async fn wait_closed(closed: Closed) {
    if let Some(closed) = closed {
        if tokio::time::timeout(Duration::from_secs(30), closed.wait())
            .await
            .is_err()
        {
            tracing::error!("the event log was not released within 30 s");
        }
    }
}

/// The log a node runs on, opened (see `open_log`).
pub struct NodeLog {
    pub log: Arc<dyn EventLog>,
    /// Fires when an embedded log has released its files.
    closed: Closed,
}

impl std::fmt::Debug for NodeLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLog").finish_non_exhaustive()
    }
}

/// Opens the log `config` names, as a node does: the embedded one in the
/// data directory (created when new), or Kafka with this node's
/// transactional id and static group membership.
pub async fn open_log(config: &ServeConfig) -> Result<NodeLog, ServeError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let topics = Topics::new(&config.topic_prefix);
    let (log, closed) = open_backend(config, &topics).await?;
    Ok(NodeLog { log, closed })
}

/// Binds the API's address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

async fn open_backend(
    config: &ServeConfig,
    topics: &Topics,
) -> Result<(Arc<dyn EventLog>, Closed), ServeError> {
    match &config.backend {
        Backend::Embedded => {
            let log_dir = config.data_dir.join("log");
            let embedded = EmbeddedLog::open(&log_dir).map_err(|e| ServeError::Open {
                what: "event log",
                dir: log_dir,
                source: Box::new(e),
            })?;
            let closed = Some(embedded.closed());
            Ok((Arc::new(embedded), closed))
        }
        Backend::Kafka(kafka) => {
            let mut kafka_config = KafkaConfig::new(&kafka.bootstrap_servers);
            kafka_config.replication_factor = kafka.replication_factor;
            let instance = instance_id(&config.data_dir)?;
            // The lanes' identities, `<id>.p<partition>`, are the same on
            // every node: the next owner of a partition fences its last
            // writer wherever that ran (docs/adr/0007).
            kafka_config.transactional_id = kafka
                .transactional_id
                .clone()
                .unwrap_or_else(|| topics.processor_group());
            kafka_config.group_instance_id = Some(instance);
            if let Some(session_timeout) = kafka.session_timeout {
                kafka_config.session_timeout = session_timeout;
            }
            let log = KafkaLog::connect(kafka_config).await?;
            Ok((Arc::new(log), None))
        }
    }
}

/// Opens the log, binds `config.listen` and starts every part of a node.
pub async fn start(config: ServeConfig) -> Result<Server, ServeError> {
    refuse_insecure(&config, config.listen)?;
    eventlog::cache::set_budget(config.cache_bytes);
    let log = open_log(&config).await?;
    let listener = match bind(config.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            wait_closed(log.closed).await;
            return Err(error);
        }
    };
    start_with(config, log, listener).await
}

fn refuse_insecure(config: &ServeConfig, addr: SocketAddr) -> Result<(), ServeError> {
    if !addr.ip().is_loopback() && config.auth_token.is_none() && !config.insecure {
        return Err(ServeError::Insecure(addr));
    }
    Ok(())
}

/// Starts every part of a node on a log and a listener opened by the
/// caller (`open_log`, `bind`); stop it with `Server::run_until`.
pub async fn start_with(
    config: ServeConfig,
    log: NodeLog,
    listener: tokio::net::TcpListener,
) -> Result<Server, ServeError> {
    let NodeLog {
        log,
        closed: log_closed,
    } = log;
    let checked = listener
        .local_addr()
        .map_err(ServeError::from)
        .and_then(|addr| refuse_insecure(&config, addr));
    if let Err(error) = checked {
        drop(log);
        wait_closed(log_closed).await;
        return Err(error);
    }
    let topics = Topics::new(&config.topic_prefix);
    match assemble(&config, topics, log, log_closed.clone(), listener).await {
        Ok(server) => Ok(server),
        Err(error) => {
            // Everything opened so far is dropped; let the files go before
            // answering, so the caller can try again on the same directory.
            wait_closed(log_closed).await;
            Err(error)
        }
    }
}

/// Everything after the log is open; on error, every part started here stops.
async fn assemble(
    config: &ServeConfig,
    topics: Topics,
    log: Arc<dyn EventLog>,
    log_closed: Closed,
    listener: tokio::net::TcpListener,
) -> Result<Server, ServeError> {
    let dir = config.data_dir.as_path();
    let partitions = match config.partitions {
        Some(requested) => Some(requested),
        // An existing cluster's topics decide, when no flag asks otherwise.
        None => log.partition_count(&topics.events).await.ok(),
    };
    let settings = settings::fixed(dir, config, partitions)?;
    for spec in topics.write_side(settings.partitions) {
        log.create_topic(&spec).await?;
    }
    let state_dir = dir.join("state");
    let store = StateStore::open(&state_dir).map_err(|e| ServeError::Open {
        what: "state store",
        dir: state_dir,
        source: Box::new(e),
    })?;
    let read = ReadModels::new(
        projections::all()
            .into_iter()
            .map(|projection| open_projection(dir, projection))
            .collect::<Result<_, _>>()?,
    );
    let (stop, stopped) = watch::channel(false);
    let mut tasks: Vec<NamedTask> = Vec::new();
    // Sinks first: a receiver that cannot be reached stops the start
    // before anything else runs.
    let (sinks, sink_tasks) =
        projections::sinks::start(config.sinks.clone(), dir, &log, &topics, signal(&stopped))
            .await?;
    for task in sink_tasks {
        tasks.push((
            "sink",
            tokio::spawn(async move {
                match task.await {
                    Ok(ended) => ended.map_err(|e| e.to_string()),
                    Err(join) => Err(join.to_string()),
                }
            }),
        ));
    }

    // What this node's processor is doing: readiness reads it, and the
    // gateway holds commands until it serves.
    let processor = config
        .process_commands
        .then(|| Arc::new(commands::ProcessorStatus::default()));
    if let Some(status) = &processor {
        let processor_log = log.clone();
        let processor_topics = topics.clone();
        let processor_stop = signal(&stopped);
        let processor_status = status.clone();
        tasks.push((
            "command processor",
            tokio::spawn(async move {
                processor::run(
                    processor_log,
                    processor_topics,
                    store,
                    Arc::new(SystemClock),
                    500,
                    processor_status,
                    processor_stop,
                )
                .await
                .map_err(|e| e.to_string())
            }),
        ));
    }
    let (rebuilder, runners) =
        projections::serving::start_runners(read.slots(), &log, &topics, dir, &stopped);
    for (name, runner) in runners {
        tasks.push((
            name,
            tokio::spawn(async move {
                match runner.await {
                    Ok(ended) => ended.map_err(|e| e.to_string()),
                    Err(join) => Err(join.to_string()),
                }
            }),
        ));
    }

    let metrics = Arc::new(Metrics::default());
    let disk = eventlog::disk::DiskReserve::new(dir, config.disk_reserve_bytes);
    if let Err(refusal) = disk.check() {
        tracing::warn!("{refusal}");
    }
    let disk_watch = tokio::spawn(disk.clone().watch(signal(&stopped)));
    let (gateway, reply_router) = CommandGateway::start(
        log.clone(),
        &topics,
        config.command_timeout,
        processor.clone(),
        Some(disk.clone()),
        signal(&stopped),
    )
    .await?;
    let (live, _) = broadcast::channel(1024);
    let live_tail = crate::live::start(
        log.clone(),
        &topics,
        read.named(customer::NAME, "projection")
            .map_err(|e| ServeError::Task {
                task: "live tail",
                message: e.to_string(),
            })?
            .clone(),
        live.clone(),
        signal(&stopped),
    )
    .await?;
    for (name, handle) in [
        ("reply router", reply_router),
        ("live tail", live_tail),
        ("disk reserve", disk_watch),
    ] {
        tasks.push((
            name,
            tokio::spawn(async move { handle.await.map_err(|e| e.to_string()) }),
        ));
    }
    let read_models = read.clone();
    let state = Arc::new(AppState {
        log: log.clone(),
        topics,
        gateway,
        read,
        rebuilder,
        lag_probes: Default::default(),
        data_dir: dir.to_path_buf(),
        live: live.clone(),
        metrics,
        consistency_timeout: config.consistency_timeout,
        processor,
        disk,
        sinks,
    });
    let schemas = schema::Schemas::build(state.clone());
    let app_schema = schemas.main.clone();
    let router = crate::http::router(schemas, state, config.auth_token.clone());

    let addr = listener.local_addr()?;
    let server_stop = signal(&stopped);
    tasks.push((
        "http server",
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(server_stop)
            .await
            .map_err(|e| e.to_string())
        }),
    ));
    tracing::info!(%addr, partitions = settings.partitions, backend = %config.backend, data_dir = %dir.display(), "serving");
    // Tools started on this data directory find the node here.
    let reachable = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    replay::ops::server_file::write(dir, &format!("http://{reachable}"))?;
    Ok(Server {
        addr,
        read: read_models,
        live,
        data_dir: dir.to_path_buf(),
        log,
        schema: app_schema,
        log_closed,
        stop,
        tasks,
    })
}

impl Server {
    /// Runs until `shutdown` resolves or a part of the node stops on its own
    /// (an error); then stops every part and waits for them.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            log,
            schema,
            data_dir,
            log_closed,
            stop,
            mut tasks,
            ..
        } = self;
        let mut failure = None;
        {
            let watched = futures_util::future::select_all(tasks.iter_mut().map(|(_, task)| task));
            tokio::select! {
                _ = shutdown => {}
                (result, index, _) = watched => {
                    let message = match result {
                        Ok(Ok(())) => "stopped unexpectedly".to_owned(),
                        Ok(Err(message)) => message,
                        Err(join) => join.to_string(),
                    };
                    failure = Some((index, message));
                }
            }
        }
        let failed_task = failure.as_ref().map(|(index, _)| *index);
        stop.send_replace(true);
        for (index, (name, task)) in tasks.into_iter().enumerate() {
            if Some(index) == failed_task {
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(30), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(message))) => {
                    tracing::error!(task = name, message, "stopped with an error")
                }
                Ok(Err(join)) => tracing::error!(task = name, %join, "panicked"),
                Err(_) => tracing::error!(task = name, "did not stop within 30 s"),
            }
        }
        // The last handles go; the log's writer flushes and releases its files.
        drop((log, schema));
        wait_closed(log_closed).await;
        replay::ops::server_file::remove(&data_dir);
        match failure {
            Some((_, message)) => Err(ServeError::Task {
                task: "node",
                message,
            }),
            None => Ok(()),
        }
    }

    /// Live subscriptions attached now (a subscription attaches when its
    /// stream is first polled).
    pub fn live_subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Stops the node and waits for every part.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.run_until(async {}).await
    }
}
