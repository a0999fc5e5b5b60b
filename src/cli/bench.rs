//! `orderstore bench ...`: runs a benchmark and prints it beside its raw
//! peers, measured in the same run.

use std::process::ExitCode;
use std::sync::Arc;

use eventlog::kafka::{KafkaConfig, KafkaLog};

use super::args::BenchCommand;
use super::commands_bench;

pub async fn run(command: BenchCommand) -> anyhow::Result<ExitCode> {
    let (events, dir, kafka) = match command {
        BenchCommand::Rebuild { events, dir, kafka } => (events, dir, kafka),
        BenchCommand::Commands {
            kafka,
            concurrency,
            duration,
            rounds,
            json,
        } => {
            let options = commands_bench::Options {
                kafka,
                concurrency,
                duration,
                rounds: usize::try_from(rounds).unwrap_or(1),
                json,
            };
            return commands_bench::run(options).await;
        }
    };
    let scratch = tempfile::tempdir()?;
    let dir = dir.unwrap_or_else(|| scratch.path().to_path_buf());
    let report = match kafka {
        None => replay::bench::rebuild_benchmark(&dir, events).await?,
        Some(servers) => {
            let log = Arc::new(KafkaLog::connect(KafkaConfig::new(&servers)).await?);
            let topics = commands::Topics::new(&format!("bench-{}", std::process::id()));
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
    Ok(ExitCode::SUCCESS)
}
