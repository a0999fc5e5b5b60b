//! The `orderstore` binary: parses flags, sets up tracing, calls the libraries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::{KafkaConfig, KafkaLog};
use eventlog::topics::Topics;
use eventlog::EventLog;

/// mimalloc: with glibc's allocator the projection workers' many small
/// allocations queue on its arena lock (perf on `bench rebuild`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "orderstore",
    version,
    about = "Event-sourced order store with CQRS projections on Apache Kafka"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
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
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Every dead letter, oldest position first.
    List {
        /// history, customer or finance (default: all three).
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
enum BenchCommand {
    /// Rebuild all three projections from N generated events on the embedded
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
}

/// Which log a tool reads when no server owns --data-dir: the embedded one
/// in --data-dir, or a Kafka cluster.
#[derive(Debug, clap::Args)]
struct LogArgs {
    #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
    data_dir: PathBuf,
    #[arg(long, env = "ORDERSTORE_KAFKA")]
    kafka: Option<String>,
    #[arg(long, default_value = "orderstore", env = "ORDERSTORE_TOPIC_PREFIX")]
    topic_prefix: String,
}

/// How a tool reaches a running server that owns the data directory.
#[derive(Debug, Clone, clap::Args)]
struct ServerArgs {
    /// The server's base URL (default: the one recorded in the data directory
    /// by a running `serve`, if it answers).
    #[arg(long, env = "ORDERSTORE_SERVER")]
    server: Option<String>,
    /// Bearer token of that server.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
}

impl ServerArgs {
    /// The running server to ask, if any.
    async fn client(&self, data_dir: &std::path::Path) -> Option<api::admin_client::AdminClient> {
        let url = match &self.server {
            Some(url) => url.clone(),
            None => api::admin_client::running_server(data_dir).await?,
        };
        Some(api::admin_client::AdminClient::new(
            &url,
            self.auth_token.clone(),
        ))
    }
}

#[derive(Debug, Subcommand)]
enum InspectCommand {
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
enum ReplayCommand {
    /// Build a projection (or all) anew from the events topic into its next
    /// generation, then serve that generation. When a server owns the data
    /// directory it does the work (the API keeps answering and switches when
    /// the new generation has caught up); otherwise it runs here.
    Rebuild {
        /// history, customer, finance or all.
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
        /// history, customer or finance.
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
        /// history, customer, finance or all.
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
struct ServeArgs {
    /// Where the log, state and read models live.
    #[arg(long, default_value = "./data", env = "ORDERSTORE_DATA_DIR")]
    data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:8080", env = "ORDERSTORE_LISTEN")]
    listen: SocketAddr,
    /// Use this Kafka cluster (host:port[,host:port]) instead of the embedded log.
    #[arg(long, env = "ORDERSTORE_KAFKA")]
    kafka: Option<String>,
    /// Replication factor of the topics created on Kafka.
    #[arg(long, default_value_t = 1, env = "ORDERSTORE_REPLICATION_FACTOR")]
    replication_factor: i32,
    /// Prefix of every topic and consumer group (several installations can share a cluster).
    #[arg(long, default_value = "orderstore", env = "ORDERSTORE_TOPIC_PREFIX")]
    topic_prefix: String,
    /// transactional.id of the command processor on Kafka (default <prefix>.command-processor).
    #[arg(long, env = "ORDERSTORE_TRANSACTIONAL_ID")]
    transactional_id: Option<String>,
    /// Partitions of new topics (default 6); existing topics keep theirs.
    #[arg(long, env = "ORDERSTORE_PARTITIONS")]
    partitions: Option<u32>,
    /// Serve the API and read models without a command processor on this node.
    #[arg(long)]
    no_processor: bool,
    /// Require `Authorization: Bearer <token>` on every route but /health and /ready.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Allow serving on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
    /// How long a mutation waits for its command's outcome, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    command_timeout_ms: u64,
    /// How long `consistentWith` waits for the read models, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    consistency_timeout_ms: u64,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Orders to place (each goes through its whole lifecycle).
    #[arg(long, default_value_t = 1000)]
    orders: u64,
    /// GraphQL endpoint of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080/graphql")]
    url: String,
    /// Orders in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Bearer token, when the server requires one.
    #[arg(long, env = "ORDERSTORE_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,
    /// Seed of the workload, for repeatable runs.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = api::serve::ServeConfig::new(args.data_dir, args.listen);
    config.partitions = args.partitions;
    config.topic_prefix = args.topic_prefix;
    config.process_commands = !args.no_processor;
    if let Some(bootstrap_servers) = args.kafka {
        config.backend = api::serve::Backend::Kafka(api::serve::KafkaSettings {
            bootstrap_servers,
            replication_factor: args.replication_factor,
            transactional_id: args.transactional_id,
        });
    }
    config.auth_token = args.auth_token;
    config.insecure = args.insecure;
    config.command_timeout = Duration::from_millis(args.command_timeout_ms);
    config.consistency_timeout = Duration::from_millis(args.consistency_timeout_ms);
    let server = api::serve::start(config).await?;
    // Scripts and tests read this line to find the port.
    println!("orderstore listening on http://{}", server.addr);
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

async fn open_log(args: &LogArgs) -> anyhow::Result<(Arc<dyn EventLog>, Topics)> {
    let topics = Topics::new(&args.topic_prefix);
    let log: Arc<dyn EventLog> = match &args.kafka {
        Some(servers) => Arc::new(KafkaLog::connect(KafkaConfig::new(servers)).await?),
        None => {
            let dir = args.data_dir.join("log");
            if !dir.exists() {
                anyhow::bail!(
                    "no embedded log in {} (pass --data-dir, or --kafka)",
                    args.data_dir.display()
                );
            }
            Arc::new(EmbeddedLog::open(&dir).with_context(|| {
                format!(
                    "cannot open {}: is `orderstore serve` running on it? Stop it first",
                    dir.display()
                )
            })?)
        }
    };
    Ok((log, topics))
}

/// Prints what a server's `inspectOrder` or `inspectDiff` answered.
fn print_inspection(inspection: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection["json"])?);
    } else {
        print!("{}", inspection["text"].as_str().unwrap_or_default());
    }
    Ok(())
}

fn check_order_id(id: &str) -> anyhow::Result<()> {
    domain::OrderId::parse(id)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e}"))
}

async fn inspect(command: InspectCommand) -> anyhow::Result<()> {
    match command {
        InspectCommand::Order {
            id,
            at,
            json,
            log,
            server,
        } => {
            check_order_id(&id)?;
            if let Some(client) = server.client(&log.data_dir).await {
                let answer = client
                    .gql(
                        "query($id: ID!, $at: DateTime) { inspectOrder(id: $id, at: $at) { text json } }",
                        serde_json::json!({ "id": id, "at": at }),
                    )
                    .await?;
                print_inspection(&answer["inspectOrder"], json)?;
                return Ok(());
            }
            let (log, topics) = open_log(&log).await?;
            let at = at.unwrap_or_else(chrono::Utc::now);
            let folded = replay::log_fold::fold_order(log.as_ref(), &topics, &id, at).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&replay::inspect::order_json(&id, at, &folded))?
                );
            } else {
                print!("{}", replay::inspect::order_text(&id, at, &folded));
            }
        }
        InspectCommand::Diff {
            id,
            from,
            to,
            json,
            log,
            server,
        } => {
            check_order_id(&id)?;
            anyhow::ensure!(from <= to, "--from must not be after --to");
            if let Some(client) = server.client(&log.data_dir).await {
                let answer = client
                    .gql(
                        "query($id: ID!, $from: DateTime!, $to: DateTime!) { inspectDiff(id: $id, from: $from, to: $to) { text json } }",
                        serde_json::json!({ "id": id, "from": from, "to": to }),
                    )
                    .await?;
                print_inspection(&answer["inspectDiff"], json)?;
                return Ok(());
            }
            let (log, topics) = open_log(&log).await?;
            let before = replay::log_fold::fold_order(log.as_ref(), &topics, &id, from).await?;
            let after = replay::log_fold::fold_order(log.as_ref(), &topics, &id, to).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&replay::inspect::diff_json(
                        &id, &before, &after
                    ))?
                );
            } else {
                print!("{}", replay::inspect::diff_text(&id, &before, &after));
            }
        }
    }
    Ok(())
}

fn projection_named(name: &str) -> anyhow::Result<Arc<dyn projections::worker::Projection>> {
    projections::named(name).ok_or_else(|| {
        anyhow::anyhow!("unknown projection {name:?} (history, customer, finance or all)")
    })
}

async fn rebuild(
    name: &str,
    log: &dyn EventLog,
    topics: &Topics,
    data_dir: &std::path::Path,
    until: Option<chrono::DateTime<chrono::Utc>>,
    keep_previous: bool,
) -> anyhow::Result<()> {
    use projections::generation::{
        current_generation, generation_dir, next_generation, switch_generation,
    };
    let projection = projection_named(name)?;
    let served = current_generation(data_dir, name);
    let next = next_generation(data_dir, name);
    let dir = generation_dir(data_dir, name, next);
    std::fs::create_dir_all(&dir)?;
    projections::generation::mark(&dir, projections::generation::BUILDING)?;
    let store = projections::ProjectionStore::open(&dir)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {bar:40} {pos}/{len} events {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{name} v{next}"));
    let target = until.map_or(
        replay::rebuild::Target::LogEnd,
        replay::rebuild::Target::Time,
    );
    let rebuilt = replay::rebuild::rebuild_into(
        projection.as_ref(),
        log,
        topics,
        &store,
        target,
        shutdown_signal(),
        |p| {
            bar.set_length(p.total);
            bar.set_position(p.applied);
            bar.set_message(format!("{:.0} events/s", p.events_per_second));
        },
    )
    .await;
    bar.finish_and_clear();
    drop(store);
    let rebuilt = match rebuilt {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            // Nothing half-built is left behind; the served generation is untouched.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error.into());
        }
    };
    projections::generation::unmark(&dir, projections::generation::BUILDING)?;
    println!(
        "{name}: generation v{next} built from {} events in {:.1} s ({:.0} events/s)",
        rebuilt.events,
        rebuilt.elapsed.as_secs_f64(),
        rebuilt.events_per_second()
    );
    if let Some(at) = until {
        println!(
            "  frozen at {at} in {}; the served generation is still v{served}",
            dir.display()
        );
        return Ok(());
    }
    switch_generation(data_dir, name, next)?;
    println!("  now served: v{next}");
    let previous = generation_dir(data_dir, name, served);
    if !keep_previous && previous.exists() {
        std::fs::remove_dir_all(&previous)?;
    } else if previous.exists() {
        println!("  kept v{served} in {} for rollback", previous.display());
    }
    Ok(())
}

/// `all` or one projection's name, checked.
fn projection_names(projection: &str) -> anyhow::Result<Vec<&'static str>> {
    if projection == "all" {
        return Ok(projections::NAMES.to_vec());
    }
    let name = projections::NAMES
        .into_iter()
        .find(|n| *n == projection)
        .ok_or_else(|| {
            anyhow::anyhow!("unknown projection {projection:?} (history, customer, finance or all)")
        })?;
    Ok(vec![name])
}

/// Prints one projection's verification; returns its number of differences.
fn print_verification(
    name: &str,
    version: u64,
    events: u64,
    entries: u64,
    different: u64,
    differences: &[(String, Option<String>, Option<String>)],
) -> u64 {
    if different == 0 {
        println!("{name} v{version}: {entries} entries match a rebuild from {events} events");
        return 0;
    }
    println!("{name} v{version}: {different} of {entries} entries differ from a rebuild from {events} events");
    for (entry, served, rebuilt) in differences {
        println!("  DIFFERENT {entry}");
        println!("    served:  {}", served.as_deref().unwrap_or("(missing)"));
        println!("    rebuilt: {}", rebuilt.as_deref().unwrap_or("(missing)"));
    }
    if different as usize > differences.len() {
        println!("  ... and {} more", different as usize - differences.len());
    }
    different
}

/// Asks a running server to verify one projection; returns its differences.
async fn verify_on_server(
    client: &api::admin_client::AdminClient,
    name: &str,
) -> anyhow::Result<u64> {
    let answer = client
        .gql(
            "mutation($name: String!) { verifyProjection(name: $name) { version events entries different differences { entry served rebuilt } } }",
            serde_json::json!({ "name": name }),
        )
        .await
        .with_context(|| format!("the server could not verify {name}"))?;
    let v = &answer["verifyProjection"];
    let number = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0u64);
    let differences: Vec<_> = v["differences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|d| {
            (
                d["entry"].as_str().unwrap_or_default().to_owned(),
                d["served"].as_str().map(str::to_owned),
                d["rebuilt"].as_str().map(str::to_owned),
            )
        })
        .collect();
    Ok(print_verification(
        name,
        v["version"].as_u64().unwrap_or(0),
        number(&v["events"]),
        number(&v["entries"]),
        number(&v["different"]),
        &differences,
    ))
}

/// Points `CURRENT` at an existing, complete generation (no server runs).
fn switch_offline(data_dir: &std::path::Path, name: &str, generation: u32) -> anyhow::Result<()> {
    use projections::generation::{
        current_generation, generation_dir, switch_generation, BUILDING, RETIRED,
    };
    let served = current_generation(data_dir, name);
    anyhow::ensure!(
        generation != served,
        "{name} v{generation} is already served"
    );
    let dir = generation_dir(data_dir, name, generation);
    anyhow::ensure!(
        dir.exists() && !dir.join(RETIRED).exists(),
        "there is no generation v{generation} of {name} in {}",
        data_dir.display()
    );
    anyhow::ensure!(
        !dir.join(BUILDING).exists(),
        "{name} v{generation} was never finished (a rebuild stopped half-way)"
    );
    switch_generation(data_dir, name, generation)?;
    println!("{name}: now served: v{generation} (from the next start of serve, which catches it up with the log); v{served} is kept");
    Ok(())
}

/// Asks a running server to rebuild, and follows its progress until every
/// rebuild has switched (or failed).
async fn rebuild_on_server(
    client: &api::admin_client::AdminClient,
    names: &[&str],
    until: Option<chrono::DateTime<chrono::Utc>>,
    keep_previous: bool,
    switch_to: Option<u32>,
) -> anyhow::Result<()> {
    use serde_json::json;
    let (verb, mutation, field) = match switch_to {
        None => (
            "rebuild",
            "mutation($name: String!, $until: DateTime, $keep: Boolean) { rebuildProjection(name: $name, until: $until, keepPrevious: $keep) { targetVersion servedVersion } }",
            "rebuildProjection",
        ),
        Some(_) => (
            "switch",
            "mutation($name: String!, $generation: Int!) { switchProjection(name: $name, generation: $generation) { targetVersion servedVersion } }",
            "switchProjection",
        ),
    };
    println!("asking the server at {} to {verb}", client.url());
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} {bar:40} {pos}/{len} events {msg} ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut pending = Vec::new();
    for name in names {
        let started = client
            .gql(
                mutation,
                json!({ "name": name, "until": until, "keep": keep_previous, "generation": switch_to }),
            )
            .await
            .with_context(|| format!("the server refused to {verb} {name}"))?;
        let target = started[field]["targetVersion"]
            .as_i64()
            .context("no targetVersion in the answer")?;
        let bar = bars.add(indicatif::ProgressBar::new(0));
        bar.set_style(style.clone());
        bar.set_prefix(format!("{name} v{target}"));
        pending.push((name.to_string(), target, bar));
    }
    let mut failed = 0;
    while !pending.is_empty() {
        let status = tokio::select! {
            status = client.gql(
                "{ projections { name version rebuilding { targetVersion applied total eventsPerSecond phase } lastRebuild { targetVersion events seconds error } } }",
                json!({}),
            ) => status?,
            _ = shutdown_signal() => {
                bars.clear()?;
                println!("stopped watching; the server goes on with the rebuild (see the projections query)");
                return Ok(());
            }
        };
        let projections = status["projections"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut still = Vec::new();
        for (name, target, bar) in pending {
            let Some(p) = projections.iter().find(|p| p["name"] == name.as_str()) else {
                still.push((name, target, bar));
                continue;
            };
            let rebuilding = &p["rebuilding"];
            if rebuilding["targetVersion"].as_i64() == Some(target) {
                let number =
                    |v: &serde_json::Value| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                bar.set_length(number(&rebuilding["total"]));
                bar.set_position(number(&rebuilding["applied"]));
                bar.set_message(format!(
                    "{:.0} events/s, {}",
                    rebuilding["eventsPerSecond"].as_f64().unwrap_or(0.0),
                    rebuilding["phase"].as_str().unwrap_or("")
                ));
                still.push((name, target, bar));
                continue;
            }
            let last = &p["lastRebuild"];
            if last["targetVersion"].as_i64() != Some(target) {
                still.push((name, target, bar)); // not started yet
                continue;
            }
            bar.finish_and_clear();
            match last["error"].as_str() {
                Some(error) => {
                    failed += 1;
                    bars.suspend(|| println!("{name}: {verb} to v{target} failed: {error}"));
                }
                None if switch_to.is_some() => {
                    bars.suspend(|| {
                        println!("{name}: now served: v{target} (caught up with the log)")
                    });
                }
                None => {
                    let events: f64 = last["events"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0.0);
                    let seconds = last["seconds"].as_f64().unwrap_or(0.0);
                    let served = match until {
                        Some(at) => format!(
                            "frozen at {at}; the served generation is still v{}",
                            p["version"]
                        ),
                        None => format!("now served: v{}", p["version"]),
                    };
                    bars.suspend(|| println!(
                        "{name}: generation v{target} built from {events} events in {seconds:.1} s ({:.0} events/s); {served}",
                        events / seconds.max(1e-9)
                    ));
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    anyhow::ensure!(failed == 0, "{failed} {verb}(es) failed");
    Ok(())
}

fn open_projection_store(
    data_dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<projections::ProjectionStore> {
    projection_named(name)?;
    let generation = projections::generation::current_generation(data_dir, name);
    let dir = projections::generation::generation_dir(data_dir, name, generation);
    anyhow::ensure!(
        dir.exists(),
        "no {name} read model in {}",
        data_dir.display()
    );
    projections::ProjectionStore::open(&dir).with_context(|| {
        format!(
            "cannot open {}: is `orderstore serve` running on it? Stop it first",
            dir.display()
        )
    })
}

fn parse_position(text: &str) -> anyhow::Result<(u32, u64)> {
    eventlog::processor::messages::parse_consistency_token(text)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a position (partition:offset)"))
}

impl DlqCommand {
    fn location(&self) -> (&std::path::Path, &ServerArgs) {
        match self {
            DlqCommand::List {
                data_dir, server, ..
            }
            | DlqCommand::Show {
                data_dir, server, ..
            }
            | DlqCommand::Retry {
                data_dir, server, ..
            }
            | DlqCommand::Discard {
                data_dir, server, ..
            } => (data_dir, server),
        }
    }
}

async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    if let DlqCommand::Discard {
        projection,
        confirm: false,
        ..
    } = &command
    {
        anyhow::bail!("discarding loses the event for the {projection} read model: pass --confirm");
    }
    let (data_dir, server) = command.location();
    match server.client(data_dir).await {
        Some(client) => dlq_on_server(&client, command).await,
        None => dlq_offline(command),
    }
}

fn print_dead_letter_line(projection: &str, letter: &serde_json::Value) {
    let text = |field: &str| letter[field].as_str().unwrap_or("-").to_owned();
    println!(
        "{projection}  {}:{}  {}  {}  {}  {}",
        letter["partition"],
        text("offset"),
        text("orderId"),
        text("eventType"),
        text("receivedAt"),
        text("error")
    );
}

/// A stored dead letter in the shape the GraphQL `deadLetters` field has,
/// so both paths of the dlq commands print alike.
fn dead_letter_json(letter: &projections::DeadLetter) -> serde_json::Value {
    serde_json::json!({
        "partition": letter.partition,
        "offset": letter.offset.to_string(),
        "orderId": letter.order_id,
        "eventType": letter.event_type,
        "receivedAt": domain::envelope::format_time(&letter.received_at),
        "error": letter.error,
        "headers": letter.headers.iter().map(|h| serde_json::json!({
            "key": h.key, "value": String::from_utf8_lossy(&h.value),
        })).collect::<Vec<_>>(),
        "payloadBytes": letter.payload.as_ref().map(Vec::len),
        "payloadHex": letter.payload.as_deref().map(projections::store::hex_prefix),
    })
}

/// `dlq show`: one dead letter in full.
fn print_dead_letter(
    projection: &str,
    position: &str,
    letter: &serde_json::Value,
) -> anyhow::Result<()> {
    let (partition, offset) = parse_position(position)?;
    let headers: serde_json::Map<String, serde_json::Value> = letter["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            (
                h["key"].as_str().unwrap_or_default().to_owned(),
                h["value"].clone(),
            )
        })
        .collect();
    let shown = serde_json::json!({
        "projection": projection, "partition": partition, "offset": offset,
        "orderId": letter["orderId"], "eventType": letter["eventType"], "error": letter["error"],
        "receivedAt": letter["receivedAt"], "headers": headers,
        "payloadBytes": letter["payloadBytes"], "payloadHex": letter["payloadHex"],
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

const DEAD_LETTER_FIELDS: &str =
    "id projection partition offset orderId eventType receivedAt error headers { key value } payloadBytes payloadHex";

/// The dlq commands through a running server's GraphQL API.
async fn dlq_on_server(
    client: &api::admin_client::AdminClient,
    command: DlqCommand,
) -> anyhow::Result<()> {
    use serde_json::json;
    let list = |projection: Option<String>| async move {
        let query = format!("query($p: String) {{ deadLetters(projection: $p, first: 1000) {{ {DEAD_LETTER_FIELDS} }} }}");
        let answer = client.gql(&query, json!({ "p": projection })).await?;
        anyhow::Ok(
            answer["deadLetters"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    };
    match command {
        DlqCommand::List { projection, .. } => {
            if let Some(name) = &projection {
                projection_named(name)?;
            }
            for letter in list(projection).await? {
                print_dead_letter_line(letter["projection"].as_str().unwrap_or("-"), &letter);
            }
        }
        DlqCommand::Show {
            projection,
            position,
            ..
        } => {
            projection_named(&projection)?;
            parse_position(&position)?;
            let id = format!("{projection}:{position}");
            let letter = list(Some(projection.clone()))
                .await?
                .into_iter()
                .find(|l| l["id"] == id.as_str())
                .ok_or_else(|| anyhow::anyhow!("no dead letter at {position} in {projection}"))?;
            print_dead_letter(&projection, &position, &letter)?;
        }
        DlqCommand::Retry {
            projection, order, ..
        } => {
            let answer = client
                .gql(
                    "mutation($p: String!, $o: ID) { retryDeadLetters(projection: $p, orderId: $o) { applied stillParked } }",
                    json!({ "p": projection, "o": order }),
                )
                .await?;
            let report = &answer["retryDeadLetters"];
            println!(
                "{projection}: {} applied, {} still parked",
                report["applied"], report["stillParked"]
            );
        }
        DlqCommand::Discard {
            projection,
            position,
            ..
        } => {
            parse_position(&position)?;
            let answer = client
                .gql(
                    "mutation($id: ID!) { discardDeadLetter(id: $id, confirm: true) { id } }",
                    json!({ "id": format!("{projection}:{position}") }),
                )
                .await;
            match answer {
                Ok(_) => println!("{projection}: discarded the dead letter at {position}"),
                Err(api::admin_client::AdminError::Refused { code, .. }) if code == "NOT_FOUND" => {
                    anyhow::bail!("no dead letter at {position} in {projection}")
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

fn dlq_offline(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            projection,
            data_dir,
            ..
        } => {
            let names = match &projection {
                Some(name) => vec![name.as_str()],
                None => projections::NAMES.to_vec(),
            };
            for name in names {
                let store = open_projection_store(&data_dir, name)?;
                for letter in store.dead_letters()? {
                    print_dead_letter_line(name, &dead_letter_json(&letter));
                }
            }
        }
        DlqCommand::Show {
            projection,
            position,
            data_dir,
            ..
        } => {
            let (partition, offset) = parse_position(&position)?;
            let store = open_projection_store(&data_dir, &projection)?;
            let letter = store
                .dead_letters()?
                .into_iter()
                .find(|l| l.partition == partition && l.offset == offset)
                .ok_or_else(|| anyhow::anyhow!("no dead letter at {position} in {projection}"))?;
            print_dead_letter(&projection, &position, &dead_letter_json(&letter))?;
        }
        DlqCommand::Retry {
            projection,
            order,
            data_dir,
            ..
        } => {
            let store = open_projection_store(&data_dir, &projection)?;
            let report = projections::dlq::retry(
                projection_named(&projection)?.as_ref(),
                &store,
                order.as_deref(),
            )?;
            println!(
                "{projection}: {} applied, {} still parked",
                report.applied, report.still_parked
            );
        }
        DlqCommand::Discard {
            projection,
            position,
            data_dir,
            ..
        } => {
            let (partition, offset) = parse_position(&position)?;
            let store = open_projection_store(&data_dir, &projection)?;
            match projections::dlq::discard(&store, partition, offset)? {
                Some(_) => println!("{projection}: discarded the dead letter at {position}"),
                None => anyhow::bail!("no dead letter at {position} in {projection}"),
            }
        }
    }
    Ok(())
}

async fn replay_command(command: ReplayCommand) -> anyhow::Result<()> {
    match command {
        ReplayCommand::Rebuild {
            projection,
            until,
            keep_previous,
            log: args,
            server,
        } => {
            let names = projection_names(&projection)?;
            if let Some(client) = server.client(&args.data_dir).await {
                return rebuild_on_server(&client, &names, until, keep_previous, None).await;
            }
            let (log, topics) = open_log(&args).await?;
            for name in names {
                rebuild(
                    name,
                    log.as_ref(),
                    &topics,
                    &args.data_dir,
                    until,
                    keep_previous,
                )
                .await?;
            }
        }
        ReplayCommand::Switch {
            projection,
            generation,
            log: args,
            server,
        } => {
            let name = projection_names(&projection)?;
            anyhow::ensure!(name.len() == 1, "switch one projection at a time");
            if let Some(client) = server.client(&args.data_dir).await {
                return rebuild_on_server(&client, &name, None, false, Some(generation)).await;
            }
            switch_offline(&args.data_dir, name[0], generation)?;
        }
        ReplayCommand::Verify {
            projection,
            log: args,
            server,
        } => {
            let names = projection_names(&projection)?;
            let mut different = 0;
            if let Some(client) = server.client(&args.data_dir).await {
                println!("asking the server at {} to verify", client.url());
                for name in names {
                    different += verify_on_server(&client, name).await?;
                }
            } else {
                let (log, topics) = open_log(&args).await?;
                for name in names {
                    let store = open_projection_store(&args.data_dir, name)?;
                    let version = projections::generation::current_generation(&args.data_dir, name);
                    let report = replay::verify::verify(
                        projection_named(name)?.as_ref(),
                        log.as_ref(),
                        &topics,
                        &store,
                        &projections::generation::scratch_dir(&args.data_dir, name),
                        shutdown_signal(),
                    )
                    .await?;
                    let differences: Vec<_> = report
                        .comparison
                        .differences
                        .iter()
                        .map(|d| (d.key.to_string(), d.left.clone(), d.right.clone()))
                        .collect();
                    different += print_verification(
                        name,
                        version.into(),
                        report.events,
                        report.comparison.entries,
                        report.comparison.different,
                        &differences,
                    );
                }
            }
            if different > 0 {
                std::process::exit(1);
            }
        }
        ReplayCommand::Snapshots {
            verify,
            log,
            server,
        } => {
            anyhow::ensure!(
                verify,
                "only --verify is supported: pass it to compare snapshots with the events"
            );
            let topics = Topics::new(&log.topic_prefix);
            let report = match server.client(&log.data_dir).await {
                Some(client) => {
                    println!("asking the server at {} to verify", client.url());
                    let answer = client
                        .gql(
                            "{ verifySnapshots { orders snapshots undecodable differences } }",
                            serde_json::json!({}),
                        )
                        .await?;
                    let v = &answer["verifySnapshots"];
                    replay::snapshots::Verification {
                        orders: v["orders"].as_u64().unwrap_or(0) as usize,
                        snapshots: v["snapshots"].as_u64().unwrap_or(0) as usize,
                        undecodable: v["undecodable"]
                            .as_str()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        differences: serde_json::from_value(v["differences"].clone())?,
                    }
                }
                None => {
                    let (log, topics) = open_log(&log).await?;
                    replay::snapshots::verify(log.as_ref(), &topics).await?
                }
            };
            println!(
                "{} orders folded from {}, {} snapshots in {}, {} unreadable event records",
                report.orders,
                topics.events,
                report.snapshots,
                topics.snapshots,
                report.undecodable
            );
            for difference in &report.differences {
                println!("DIFFERENT {difference}");
            }
            if !report.is_clean() {
                println!("{} difference(s)", report.differences.len());
                std::process::exit(1);
            }
            println!("snapshots match the events");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Commands::Serve(args) => serve(args).await,
        Commands::Inspect(command) => inspect(command).await,
        Commands::Replay(command) => replay_command(command).await,
        Commands::Dlq(command) => dlq(command).await,
        Commands::Bench(BenchCommand::Rebuild { events, dir, kafka }) => {
            let scratch = tempfile::tempdir()?;
            let dir = dir.unwrap_or_else(|| scratch.path().to_path_buf());
            let report = match kafka {
                None => replay::bench::rebuild_benchmark(&dir, events).await?,
                Some(servers) => {
                    let log = Arc::new(KafkaLog::connect(KafkaConfig::new(&servers)).await?);
                    let topics = Topics::new(&format!("bench-{}", std::process::id()));
                    println!("on Kafka at {servers}, topics {}.*", topics.prefix);
                    replay::bench::rebuild_benchmark_on(log, &topics, &dir, events).await?
                }
            };
            println!("events:                {}", report.events);
            println!(
                "raw consumer:          {:>10.0} events/s",
                report.raw_consumer_events_per_second
            );
            println!(
                "raw sled ingest:       {:>10.0} events/s",
                report.raw_sled_events_per_second
            );
            println!(
                "rebuild (3 projections): {:>8.0} events/s",
                report.rebuild_events_per_second
            );
            println!("ratio to the slower peer: {:.2}", report.ratio());
            Ok(())
        }
        Commands::Load(args) => {
            let config = api::load::LoadConfig {
                url: args.url,
                orders: args.orders,
                concurrency: args.concurrency.max(1),
                auth_token: args.auth_token,
                seed: args.seed,
            };
            let report = api::load::run(config).await.context("load failed")?;
            println!("{report}");
            Ok(())
        }
    }
}
