//! The command line: every subcommand and flag of `orderstore`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "orderstore",
    version,
    about = "Event-sourced order store with CQRS projections on Apache Kafka"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Commands,
}

#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Run a node: GraphQL API, command processor and projections (embedded log in --data-dir).
    Serve(ServeArgs),
    /// Generate a realistic workload against a running server.
    Load(LoadArgs),
    /// Look at orders as the log has them, at any time.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Replay the log: rebuild, switch and verify projections; verify snapshots.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Benchmarks, reported against raw peers measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Dead letters of a projection (through the server that owns the data
    /// directory when one runs, else from its files).
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Events a sink's receiver refused (through the server that runs the
    /// sink): list, show, send again, discard.
    #[command(subcommand)]
    Sink(SinkCommand),
    /// Write events as CloudEvents JSON lines (structured mode, data as
    /// JSON), in log order per partition: through the server that owns the
    /// data directory when one runs, else from its log, or from --kafka.
    Export(ExportArgs),
    /// The fault suite: workloads under injected faults (kill -9, poison,
    /// duplicates, conflicts, fuzzed requests, the auth matrix), each
    /// followed by an invariant check of the log and every read model.
    Chaos(super::chaos::ChaosArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Events at or before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only these event types, comma-separated (OrderPlaced,OrderShipped).
    #[arg(long = "type", value_name = "T1,T2")]
    pub types: Option<String>,
    /// Only this order's events.
    #[arg(long)]
    pub order: Option<String>,
    /// Keep writing new events until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Write to this file instead of standard output (a progress bar shows
    /// on a terminal). On a write error (a full disk) the file keeps only
    /// whole lines.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum SinkCommand {
    /// Every sink's status, then each parked event, by order and position.
    List {
        /// Only this sink's parked events.
        #[arg(long)]
        sink: Option<String>,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One parked event in full, as JSON.
    Show {
        sink: String,
        /// partition:offset of the event in the events topic.
        position: String,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Send the parked events again, in order per order (after the
    /// receiver is fixed); they are delivered in the background.
    Retry {
        sink: String,
        /// Only this order.
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Drop one parked event for good: the receiver never gets it.
    Discard {
        sink: String,
        position: String,
        /// Required: discarding loses the event for this receiver.
        #[arg(long)]
        confirm: bool,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every dead letter, oldest position first.
    List {
        /// history, customer, finance or trace (default: all four).
        #[arg(long)]
        projection: Option<String>,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One dead letter in full: headers, error, payload.
    Show {
        projection: String,
        /// partition:offset of the event in the events topic.
        position: String,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Apply the parked events again, in order (after the cause is fixed).
    Retry {
        projection: String,
        /// Only this order.
        #[arg(long)]
        order: Option<String>,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Drop one dead letter for good.
    Discard {
        projection: String,
        position: String,
        /// Required: discarding loses the event for this read model.
        #[arg(long)]
        confirm: bool,
        #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Rebuild every registered projection from N generated events on the embedded
    /// log (or Kafka), against a raw consumer and raw sled ingest of the same size.
    Rebuild {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Scratch directory (default: a temporary one, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Run on this Kafka cluster instead (fresh `bench-<id>.*` topics,
        /// left behind; the raw consumer is a plain rdkafka consumer).
        #[arg(long)]
        kafka: Option<String>,
    },
    /// A node's adoption of commands partitions: N orders' snapshots in the
    /// snapshots topic (6 partitions) restored all at once into a fresh
    /// state store, against a raw consumer reading the same records.
    Restore {
        #[arg(long, default_value_t = 60_000)]
        orders: u64,
        /// Measured rounds after the warm-up; the medians are reported.
        #[arg(long, default_value_t = 5)]
        rounds: u64,
        /// Run on this Kafka cluster (fresh `bench-restore-<id>.*` topics,
        /// left behind) instead of the embedded log.
        #[arg(long)]
        kafka: Option<String>,
    },
    /// The write path as a user drives it: `load`'s lifecycle as GraphQL
    /// mutations through an in-process `serve`, closed loop at each
    /// concurrency and open loop at half of its saturation, against raw
    /// peers in the same run (Kafka: transactional lanes and an idempotent
    /// producer; embedded: sled group commit), interleaved, the median of
    /// the rounds after a warm-up.
    Commands {
        /// Run on this Kafka cluster (fresh `bench-commands-<id>.*` topics,
        /// left behind) instead of the embedded log.
        #[arg(long)]
        kafka: Option<String>,
        /// Concurrency levels (orders in flight).
        #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
        concurrency: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Measured rounds (after one warm-up round).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
        rounds: u64,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The read path as clients drive it: N orders loaded through `serve`
    /// (embedded), then point reads, as-of reads, histories, customers and
    /// finance through a restarted `serve`, closed loop with wrk (every
    /// body checked for errors) and open loop at 25% and 70% of each
    /// query's saturation, against GraphQL `{ __typename }`, a static axum
    /// handler with a body of the same size and raw sled gets of the same
    /// rows, interleaved, the median of the rounds after a warm-up. Also the
    /// server's RSS and its bytes on disk over the logical bytes.
    Queries {
        /// Orders loaded through the write path first.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(10..))]
        orders: u64,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Measured rounds (after one warm-up round).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=50))]
        rounds: u64,
        /// Connections wrk keeps open (closed loop).
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
        connections: u64,
        /// The wrk binary (Debian's package `wrk`).
        #[arg(long, default_value = "wrk", env = "ORDERSTORE_WRK")]
        wrk: PathBuf,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

/// Which log a tool reads when no server owns --data-dir: the embedded one
/// in --data-dir, or a Kafka cluster.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
    pub data_dir: PathBuf,
    #[arg(long, env = "ORDERSTORE_KAFKA")]
    pub kafka: Option<String>,
    #[arg(long, default_value = "orderstore", env = "ORDERSTORE_TOPIC_PREFIX")]
    pub topic_prefix: String,
}

/// How a tool reaches a running server that owns the data directory.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL (default: the one recorded in the data directory
    /// by a running `serve`, if it answers).
    #[arg(long, env = "ORDERSTORE_SERVER")]
    pub server: Option<String>,
    /// Bearer token of that server.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// The order's state at a time (default now) and the events that made it.
    Order {
        id: String,
        /// RFC 3339 time, e.g. 2026-11-27T09:30:00Z.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Every event under one correlation id, across orders, in event-time
    /// order (ties: partition, then offset), at a time (default now).
    Trace {
        correlation_id: String,
        /// RFC 3339 time, e.g. 2026-11-27T09:30:00Z.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The fields that changed between two times, and the events in between.
    Diff {
        id: String,
        #[arg(long)]
        from: chrono::DateTime<chrono::Utc>,
        #[arg(long)]
        to: chrono::DateTime<chrono::Utc>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplayCommand {
    /// Build a projection (or all) anew from the events topic into its next
    /// generation, then serve that generation. When a server owns the data
    /// directory it does the work (the API keeps answering and switches when
    /// the new generation has caught up); otherwise it runs here.
    Rebuild {
        /// history, customer, finance, trace or all.
        projection: String,
        /// Build a generation frozen at this time, beside the served one (no switch).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Keep the previous generation's files for rollback.
        #[arg(long)]
        keep_previous: bool,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Serve another existing generation of a projection: a rollback to a
    /// kept previous one (`rebuild --keep-previous`), or a frozen one. A
    /// running server catches it up with the log first; otherwise the switch
    /// takes effect when `serve` starts (and catches up then).
    Switch {
        /// history, customer, finance or trace.
        projection: String,
        /// The generation to serve (its number, as in v<N>).
        generation: u32,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Rebuild a projection (or all) into a scratch store up to the served
    /// generation's checkpoints and compare them entry by entry; exit code 1
    /// on any difference. A running server owning the data directory does it.
    Verify {
        /// history, customer, finance, trace or all.
        projection: String,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Fold the events topic and compare every order with the snapshots topic.
    Snapshots {
        /// Compare (the only mode for now); exit code 1 on any difference.
        #[arg(long)]
        verify: bool,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Where the log, state and read models live.
    #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ORDERSTORE_LISTEN")]
    pub listen: SocketAddr,
    /// Use this Kafka cluster (host:port[,host:port]) instead of the embedded log.
    #[arg(long, env = "ORDERSTORE_KAFKA")]
    pub kafka: Option<String>,
    /// Replication factor of the topics created on Kafka.
    #[arg(long, default_value_t = 1, env = "ORDERSTORE_REPLICATION_FACTOR")]
    pub replication_factor: i32,
    /// Prefix of every topic and consumer group (several installations can share a cluster).
    #[arg(long, default_value = "orderstore", env = "ORDERSTORE_TOPIC_PREFIX")]
    pub topic_prefix: String,
    /// transactional.id prefix of the command processor's lanes on Kafka (default <prefix>.command-processor; partition N's lane is <id>.pN).
    #[arg(long, env = "ORDERSTORE_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,
    /// Partitions of new topics (default 6); existing topics keep theirs.
    #[arg(long, env = "ORDERSTORE_PARTITIONS")]
    pub partitions: Option<u32>,
    /// Kafka: the processor group's session timeout, in milliseconds. A
    /// node that dies (kill -9, a lost machine) keeps its commands
    /// partitions this long before another node takes them over: shorter
    /// fails over sooner, but a node stalled that long (a GC-like pause, a
    /// slow disk, a network blip) is also dropped and its partitions
    /// rebalanced. Must lie within the brokers' group.min/max.session.timeout.ms
    /// (6 s to 30 min by default).
    #[arg(long, env = "ORDERSTORE_SESSION_TIMEOUT_MS",
          value_parser = clap::value_parser!(u64).range(6_000..=1_800_000))]
    pub session_timeout_ms: Option<u64>,
    /// The sled page-cache budget of this node in MiB, shared out to the
    /// embedded log (3/8), the command processor's state store (1/8) and
    /// each projection (1/8): what bounds its memory however many orders it
    /// holds. More serves more reads from memory.
    #[arg(long, default_value_t = 512, env = "ORDERSTORE_CACHE_MB",
          value_parser = clap::value_parser!(u64).range(16..=1_048_576))]
    pub cache_mb: u64,
    /// Refuse new commands (UNAVAILABLE, with a retry hint) while less than
    /// this many MiB are free on the data directory's disk, and take them
    /// again by themselves once there is room; reads keep working. The
    /// reserve is room for what is already accepted (read models, snapshots,
    /// sled's rewrites). 0 turns it off: a disk that fills then stops the
    /// node, losing nothing.
    #[arg(long, default_value_t = 128, env = "ORDERSTORE_DISK_RESERVE_MB",
          value_parser = clap::value_parser!(u64).range(0..=1_048_576))]
    pub disk_reserve_mb: u64,
    /// Serve the API and read models without a command processor on this node.
    #[arg(long)]
    pub no_processor: bool,
    /// Require `Authorization: Bearer <token>` on every route but /health and /ready.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Allow serving on a non-loopback address without a token.
    #[arg(long)]
    pub insecure: bool,
    /// How long a mutation waits for its command's outcome, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub command_timeout_ms: u64,
    /// How long `consistentWith` waits for the read models, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub consistency_timeout_ms: u64,
    /// Log lines on stderr: `text` for people, `json` (one object per line,
    /// with the event's fields at the top level) for log shippers.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "ORDERSTORE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// A CloudEvents HTTP sink, NAME=URL (repeatable): every event is POSTed
    /// to URL in the HTTP binding's binary mode, at least once and in order
    /// per order, from a checkpoint kept in <data-dir>/sinks/NAME/ (a new
    /// sink starts at the beginning of the log). The receiver must answer
    /// at start. 2xx acknowledges; 408, 429, 5xx and timeouts are retried
    /// with backoff, holding only that order's later events; any other
    /// answer parks the event (`orderstore sink list`).
    #[arg(long = "sink", value_name = "NAME=URL")]
    pub sinks: Vec<String>,
    /// A header every request of sink NAME carries, NAME:Header=Value
    /// (repeatable), e.g. `hook:Authorization=Bearer s3cret`.
    #[arg(long = "sink-header", value_name = "NAME:HEADER=VALUE")]
    pub sink_headers: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Orders to place (each goes through its whole lifecycle); 1000 when
    /// neither this nor --duration is given.
    #[arg(long)]
    pub orders: Option<u64>,
    /// Stop starting orders after this many seconds (those in flight finish).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Open loop: start this many orders per second, whatever the answers
    /// (at most --concurrency in flight; starts beyond it are counted as skipped).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Exit with status 1 when more commands than this failed (by default
    /// errors are counted and reported, and the exit status is 0).
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// GraphQL endpoint of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    pub url: String,
    /// Orders in flight at once (closed loop), or at most (open loop).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub concurrency: u64,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// Seed of the workload, for repeatable runs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}
