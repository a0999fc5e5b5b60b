//! The `orderstore` binary: parses flags, sets up tracing, calls the libraries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Commands::Serve(args) => serve(args).await,
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
