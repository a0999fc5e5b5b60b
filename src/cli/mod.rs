//! What each subcommand does: builds the operations (the server's, when
//! one owns the data directory, else local ones over its files), calls
//! them, and presents the answers. Presentation is in `print` and
//! `progress`; the workload generator in `load`.

pub mod args;
mod bench;
mod chaos;
mod commands_bench;
mod export;
pub mod load;
mod print;
mod progress;
mod queries_bench;
mod remote;
mod sink;

use std::process::ExitCode;
use std::time::Duration;

use replay::ops::{LocalOperations, LogLocation, Operations, OpsError, RebuildKind};

use args::{
    Commands, DlqCommand, InspectCommand, LoadArgs, LogArgs, ReplayCommand, ServeArgs, ServerArgs,
};

/// Runs one subcommand; the exit code says whether what it checked was clean.
pub async fn run(command: Commands) -> anyhow::Result<ExitCode> {
    match command {
        Commands::Serve(args) => serve(args).await,
        Commands::Load(args) => load(args).await,
        Commands::Inspect(command) => inspect(command).await,
        Commands::Replay(command) => replay_command(command).await,
        Commands::Dlq(command) => dlq(command).await,
        Commands::Sink(command) => sink::run(command).await,
        Commands::Export(args) => export::run(args).await,
        Commands::Chaos(args) => chaos::run(args).await,
        Commands::Bench(command) => bench::run(command).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = api::serve::ServeConfig::new(args.data_dir, args.listen);
    config.partitions = args.partitions;
    config.topic_prefix = args.topic_prefix;
    config.process_commands = !args.no_processor;
    config.cache_bytes = args.cache_mb << 20;
    config.disk_reserve_bytes = args.disk_reserve_mb << 20;
    if let Some(bootstrap_servers) = args.kafka {
        config.backend = api::serve::Backend::Kafka(api::serve::KafkaSettings {
            bootstrap_servers,
            replication_factor: args.replication_factor,
            transactional_id: args.transactional_id,
            session_timeout: args.session_timeout_ms.map(Duration::from_millis),
        });
    }
    config.auth_token = args.auth_token;
    config.insecure = args.insecure;
    config.command_timeout = Duration::from_millis(args.command_timeout_ms);
    config.consistency_timeout = Duration::from_millis(args.consistency_timeout_ms);
    config.sinks = projections::sinks::spec::assemble(&args.sinks, &args.sink_headers)?;
    let data_dir = config.data_dir.clone();
    let served = async {
        let log = api::serve::open_log(&config).await?;
        let listener = api::serve::bind(config.listen).await?;
        let server = api::serve::start_with(config, log, listener).await?;
        // Scripts and tests read this line to find the port.
        println!("orderstore listening on http://{}", server.addr);
        server.run_until(shutdown_signal()).await
    };
    served
        .await
        .map_err(|error| disk_full(&data_dir, error.into()))?;
    Ok(ExitCode::SUCCESS)
}

/// Says in plain words when a node stopped because its disk is full.
fn disk_full(data_dir: &std::path::Path, error: anyhow::Error) -> anyhow::Error {
    let text = format!("{error:#}");
    if text.contains("StorageFull") || text.contains("No space left on device") {
        anyhow::anyhow!(
            "the disk of the data directory {} is full; free space and start serve again: every acknowledged command is kept ({text})",
            data_dir.display()
        )
    } else {
        error
    }
}

async fn load(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let positive = |flag: &str, value: Option<f64>| match value {
        Some(v) if !(v.is_finite() && v > 0.0) => {
            anyhow::bail!(
                "{flag} must be a positive number of seconds or orders per second, not {v}"
            )
        }
        _ => Ok(value),
    };
    let duration = positive("--duration", args.duration)?.map(Duration::from_secs_f64);
    let rate = positive("--rate", args.rate)?;
    let config = load::LoadConfig {
        url: args.url,
        orders: args
            .orders
            .or(if duration.is_none() { Some(1000) } else { None }),
        duration,
        rate,
        concurrency: usize::try_from(args.concurrency).unwrap_or(usize::MAX),
        auth_token: args.auth_token,
        seed: args.seed,
    };
    let report = load::run(config, shutdown_signal()).await?;
    println!("{report}");
    match args.max_errors {
        Some(max) if report.error_count() > max => {
            eprintln!(
                "{} commands failed, more than --max-errors {max}",
                report.error_count()
            );
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

impl LogArgs {
    fn location(&self) -> LogLocation {
        LogLocation {
            data_dir: self.data_dir.clone(),
            kafka: self.kafka.clone(),
            topic_prefix: self.topic_prefix.clone(),
        }
    }
}

/// The operations for a data directory: the running server's that owns it
/// (or the one `--server` names), else local ones over its files and log.
async fn operations(log: LogLocation, server: &ServerArgs) -> Box<dyn Operations> {
    let url = match &server.server {
        Some(url) => Some(url.clone()),
        None => remote::running_server(&log.data_dir).await,
    };
    match url {
        Some(url) => {
            let remote = remote::RemoteOperations::new(&url, server.auth_token.clone());
            Box::new(remote)
        }
        None => Box::new(LocalOperations::new(log)),
    }
}

/// Tells where the work happens, when a server does it.
fn asking(ops: &dyn Operations, verb: &str) {
    if let Some(url) = ops.server() {
        println!("asking the server at {url} to {verb}");
    }
}

fn order_id(id: &str) -> anyhow::Result<domain::OrderId> {
    domain::OrderId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn inspect(command: InspectCommand) -> anyhow::Result<ExitCode> {
    match command {
        InspectCommand::Order {
            id,
            at,
            json,
            log,
            server,
        } => {
            let id = order_id(&id)?;
            let ops = operations(log.location(), &server).await;
            print::inspection(&ops.inspect_order(&id, at).await?, json)?;
        }
        InspectCommand::Trace {
            correlation_id,
            at,
            json,
            log,
            server,
        } => {
            anyhow::ensure!(
                projections::trace::valid_correlation_id(&correlation_id),
                "a correlation id is 1 to 128 visible ASCII characters"
            );
            let ops = operations(log.location(), &server).await;
            print::inspection(&ops.inspect_trace(&correlation_id, at).await?, json)?;
        }
        InspectCommand::Diff {
            id,
            from,
            to,
            json,
            log,
            server,
        } => {
            let id = order_id(&id)?;
            anyhow::ensure!(from <= to, "--from must not be after --to");
            let ops = operations(log.location(), &server).await;
            print::inspection(&ops.inspect_diff(&id, from, to).await?, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay_command(command: ReplayCommand) -> anyhow::Result<ExitCode> {
    match command {
        ReplayCommand::Rebuild {
            projection,
            until,
            keep_previous,
            log,
            server,
        } => {
            let names = replay::ops::projection_names(&projection, true)?;
            let kind = RebuildKind::Rebuild {
                until,
                keep_previous,
            };
            rebuild(&names, kind, log, &server).await
        }
        ReplayCommand::Switch {
            projection,
            generation,
            log,
            server,
        } => {
            let names = replay::ops::projection_names(&projection, false)?;
            rebuild(&names, RebuildKind::SwitchTo(generation), log, &server).await
        }
        ReplayCommand::Verify {
            projection,
            log,
            server,
        } => {
            let names = replay::ops::projection_names(&projection, true)?;
            let ops = operations(log.location(), &server).await;
            asking(ops.as_ref(), "verify");
            let mut clean = true;
            for name in names {
                let verification = ops.verify_projection(name).await?;
                print::verification(&verification);
                clean &= verification.is_clean();
            }
            Ok(exit_code(clean))
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
            let topics = log.location().topics();
            let ops = operations(log.location(), &server).await;
            asking(ops.as_ref(), "verify");
            let verification = ops.verify_snapshots().await?;
            print::snapshot_verification(&verification, &topics);
            Ok(exit_code(verification.is_clean()))
        }
    }
}

async fn rebuild(
    names: &[&'static str],
    kind: RebuildKind,
    log: LogArgs,
    server: &ServerArgs,
) -> anyhow::Result<ExitCode> {
    let ops = operations(log.location(), server).await;
    let verb = match kind {
        RebuildKind::Rebuild { .. } => "rebuild",
        RebuildKind::SwitchTo(_) => "switch",
    };
    asking(ops.as_ref(), verb);
    let bars = progress::Bars::new(kind);
    let shutdown = eventlog::shared_shutdown(shutdown_signal());
    let reports = match ops.rebuild(names, kind, &bars, shutdown).await {
        Err(OpsError::Detached) => {
            bars.clear();
            println!("{}", OpsError::Detached);
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    let failed = reports.iter().filter(|r| r.error.is_some()).count();
    anyhow::ensure!(failed == 0, "{failed} {verb}(es) failed");
    Ok(ExitCode::SUCCESS)
}

fn exit_code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse_position(text: &str) -> anyhow::Result<(u32, u64)> {
    projections::dlq::parse_position(text)
        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a position (partition:offset)"))
}

async fn dlq(command: DlqCommand) -> anyhow::Result<ExitCode> {
    let (data_dir, server) = match &command {
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
        } => (data_dir.clone(), server.clone()),
    };
    // Dead letters live in the read models' files: no log is opened.
    let location = LogLocation {
        data_dir,
        kafka: None,
        topic_prefix: String::new(),
    };
    match command {
        DlqCommand::List { projection, .. } => {
            if let Some(name) = &projection {
                replay::ops::projection_names(name, false)?;
            }
            let ops = operations(location, &server).await;
            for letter in ops.dead_letters(projection.as_deref()).await? {
                print::dead_letter_line(&letter);
            }
        }
        DlqCommand::Show {
            projection,
            position,
            ..
        } => {
            replay::ops::projection_names(&projection, false)?;
            let (partition, offset) = parse_position(&position)?;
            let ops = operations(location, &server).await;
            let letter = ops
                .dead_letters(Some(&projection))
                .await?
                .into_iter()
                .find(|l| l.partition == partition && l.offset == offset)
                .ok_or_else(|| anyhow::anyhow!("no dead letter at {position} in {projection}"))?;
            print::dead_letter(&letter)?;
        }
        DlqCommand::Retry {
            projection, order, ..
        } => {
            replay::ops::projection_names(&projection, false)?;
            let ops = operations(location, &server).await;
            let report = ops
                .retry_dead_letters(&projection, order.as_deref())
                .await?;
            println!(
                "{projection}: {} applied, {} still parked",
                report.applied, report.still_parked
            );
        }
        DlqCommand::Discard {
            projection,
            position,
            confirm,
            ..
        } => {
            anyhow::ensure!(
                confirm,
                "discarding loses the event for the {projection} read model: pass --confirm"
            );
            replay::ops::projection_names(&projection, false)?;
            let (partition, offset) = parse_position(&position)?;
            let ops = operations(location, &server).await;
            ops.discard_dead_letter(&projection, partition, offset)
                .await?;
            println!("{projection}: discarded the dead letter at {position}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
