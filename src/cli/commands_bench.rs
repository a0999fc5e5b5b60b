//! `orderstore bench commands`: the write path through `serve` (HTTP
//! GraphQL mutations of `load`'s lifecycle, every answer checked) against
//! raw peers on the same log, interleaved round by round. Reports the
//! median of the rounds after a warm-up, and ratios to the peers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use api::serve::{self, ServeConfig};
use eventlog::kafka::peers::{self, TransactionShape};
use eventlog::kafka::KafkaConfig;
use serde_json::json;

use super::load::{self, LoadConfig, LoadReport};

#[derive(Debug, Clone)]
pub struct Options {
    pub kafka: Option<String>,
    pub concurrency: Vec<usize>,
    pub duration: f64,
    pub rounds: usize,
    pub json: Option<PathBuf>,
}

/// Records one command writes: its event, its order's snapshot, its reply.
const RECORDS_PER_COMMAND: usize = 3;
/// About the size of each of those records.
const RECORD_BYTES: usize = 400;
/// Commands in one of `load`'s orders, on average (5 for most, 2, 4 or 6 for some).
const COMMANDS_PER_ORDER: f64 = 4.8;

/// One measurement of one round.
#[derive(Debug, Clone, Default)]
struct Sample {
    commands_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
}

impl Sample {
    fn of(report: &LoadReport) -> Self {
        let ms = |q| report.latency_us.value_at_quantile(q) as f64 / 1000.0;
        Self {
            commands_per_second: report.commands_per_second(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            errors: report.error_count(),
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Every figure of one concurrency level, all rounds.
#[derive(Debug, Default)]
struct Level {
    closed: Vec<Sample>,
    open: Vec<Sample>,
    /// Peer name -> commands/s per round.
    peers: BTreeMap<&'static str, Vec<f64>>,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let scratch = tempfile::tempdir()?;
    let mut config = ServeConfig::new(scratch.path().join("node"), "127.0.0.1:0".parse()?);
    let prefix = format!("bench-commands-{}", std::process::id());
    if let Some(servers) = &options.kafka {
        config.backend = serve::Backend::Kafka(serve::KafkaSettings {
            bootstrap_servers: servers.clone(),
            replication_factor: 1,
            transactional_id: None,
            session_timeout: None,
        });
        config.topic_prefix = prefix.clone();
    }
    let events_topic = commands::Topics::new(&config.topic_prefix).events;
    let server = serve::start(config).await.context("starting serve")?;
    let url = format!("http://{}/graphql", server.addr);
    let peer_topic = format!("{prefix}.peer");
    let partitions = server.log.partition_count(&events_topic).await?;
    if options.kafka.is_some() {
        server
            .log
            .create_topic(&eventlog::TopicSpec {
                name: peer_topic.clone(),
                // A lane shaped as the pipeline's writes three partitions
                // (`TransactionShape::pipeline_lane`); the other peers use
                // the first `partitions`.
                partitions: partitions * 3,
                compacted: false,
                retention_ms: Some(3_600_000),
            })
            .await?;
    }
    let backend = options
        .kafka
        .as_deref()
        .map_or_else(|| "embedded".to_owned(), |k| format!("Kafka at {k}"));
    println!(
        "bench commands on {backend}: {} rounds after a warm-up, {:.0} s each, concurrency {:?}",
        options.rounds, options.duration, options.concurrency
    );
    let duration = Duration::from_secs_f64(options.duration.max(0.5));
    let mut levels: BTreeMap<usize, Level> = BTreeMap::new();
    for round in 0..=options.rounds {
        for &concurrency in &options.concurrency {
            let closed = drive(&url, concurrency, None, duration).await?;
            let saturation = closed.commands_per_second();
            let open = drive(
                &url,
                concurrency,
                Some(saturation * 0.5 / COMMANDS_PER_ORDER),
                duration,
            )
            .await?;
            let peers = measure_peers(
                &options,
                &peer_topic,
                partitions,
                concurrency,
                duration,
                scratch.path(),
                round,
            )
            .await?;
            eprintln!(
                "round {round} concurrency {concurrency}: {:.0} commands/s closed, peers {}",
                saturation,
                peers
                    .iter()
                    .map(|(name, v)| format!("{name} {v:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if round == 0 {
                continue; // the warm-up
            }
            let level = levels.entry(concurrency).or_default();
            level.closed.push(Sample::of(&closed));
            level.open.push(Sample::of(&open));
            for (name, value) in peers {
                level.peers.entry(name).or_default().push(value);
            }
        }
    }
    server.shutdown().await?;
    print_table(&levels);
    if let Some(path) = &options.json {
        std::fs::write(
            path,
            serde_json::to_vec_pretty(&as_json(&options, &levels))?,
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn drive(
    url: &str,
    concurrency: usize,
    rate: Option<f64>,
    duration: Duration,
) -> anyhow::Result<LoadReport> {
    let config = LoadConfig {
        url: url.to_owned(),
        orders: None,
        duration: Some(duration),
        rate,
        concurrency,
        auth_token: None,
        seed: 42,
    };
    let report = load::run(config, std::future::pending()).await?;
    if report.error_count() > 0 {
        eprintln!(
            "  {} commands failed: {:?}",
            report.error_count(),
            report.errors
        );
    }
    Ok(report)
}

/// The raw peers at one concurrency, in commands per second.
async fn measure_peers(
    options: &Options,
    topic: &str,
    partitions: u32,
    concurrency: usize,
    duration: Duration,
    scratch: &std::path::Path,
    round: usize,
) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let per_command = RECORDS_PER_COMMAND as f64;
    match &options.kafka {
        Some(servers) => {
            let config = KafkaConfig::new(servers);
            let topic = topic.to_owned();
            // At best the pipeline puts every command in flight into one
            // transaction (one lane), or spreads them over one lane per partition.
            let one_lane = RECORDS_PER_COMMAND * concurrency;
            let per_lane = (RECORDS_PER_COMMAND * concurrency)
                .div_ceil(partitions as usize)
                .max(RECORDS_PER_COMMAND);
            // The pipeline's own transaction: a lane per partition that
            // has commands in flight (at concurrency 1, one lane), each
            // deciding its share of them and writing them to three
            // partitions with its consumed offset.
            let shaped_lanes = partitions.min(concurrency as u32).max(1);
            let lane_commands = concurrency.div_ceil(shaped_lanes as usize).max(1);
            let group = format!("{topic}.peer-group");
            let runs = tokio::task::spawn_blocking(move || -> Result<_, eventlog::LogError> {
                let one = peers::transactional_lanes(
                    &config,
                    &topic,
                    1,
                    &TransactionShape::one_partition(one_lane, RECORD_BYTES),
                    duration,
                )?;
                let lanes = peers::transactional_lanes(
                    &config,
                    &topic,
                    partitions,
                    &TransactionShape::one_partition(per_lane, RECORD_BYTES),
                    duration,
                )?;
                let shaped = peers::transactional_lanes(
                    &config,
                    &topic,
                    shaped_lanes,
                    &TransactionShape::pipeline_lane(lane_commands, RECORD_BYTES, &group),
                    duration,
                )?;
                let idempotent = peers::idempotent_producer(
                    &config,
                    &topic,
                    partitions,
                    RECORD_BYTES,
                    duration,
                )?;
                Ok((one, lanes, shaped, idempotent))
            })
            .await??;
            let (one, lanes, shaped, idempotent) = runs;
            Ok(vec![
                ("raw txn, one lane", one.records_per_second() / per_command),
                (
                    "raw txn, lane per partition",
                    lanes.records_per_second() / per_command,
                ),
                (
                    "raw txn, pipeline's shape",
                    shaped.records_per_second() / per_command,
                ),
                (
                    "raw idempotent producer",
                    idempotent.records_per_second() / per_command,
                ),
            ])
        }
        None => {
            let dir = scratch.join(format!("sled-peer-{round}-{concurrency}"));
            let run = replay::bench::raw_sled_group_commit(
                &dir,
                concurrency,
                RECORDS_PER_COMMAND,
                RECORD_BYTES,
                duration,
            )
            .await?;
            std::fs::remove_dir_all(&dir).ok();
            Ok(vec![("raw sled group commit", run.commands_per_second())])
        }
    }
}

fn print_table(levels: &BTreeMap<usize, Level>) {
    println!(
        "{:>11} | {:>10} {:>8} {:>8} {:>8} | {:>22} | peers (commands/s, ratio)",
        "concurrency", "commands/s", "p50 ms", "p99 ms", "p999 ms", "open loop p50/p99 ms"
    );
    for (concurrency, level) in levels {
        let closed = |f: fn(&Sample) -> f64| median(level.closed.iter().map(f).collect());
        let open = |f: fn(&Sample) -> f64| median(level.open.iter().map(f).collect());
        let cps = closed(|s| s.commands_per_second);
        let peers: Vec<String> = level
            .peers
            .iter()
            .map(|(name, values)| {
                let peer = median(values.clone());
                format!("{name} {peer:.0} ({:.2})", cps / peer.max(1e-9))
            })
            .collect();
        let errors: u64 = level
            .closed
            .iter()
            .chain(&level.open)
            .map(|s| s.errors)
            .sum();
        println!(
            "{concurrency:>11} | {cps:>10.0} {:>8.1} {:>8.1} {:>8.1} | {:>10.1} / {:<9.1} | {}{}",
            closed(|s| s.p50_ms),
            closed(|s| s.p99_ms),
            closed(|s| s.p999_ms),
            open(|s| s.p50_ms),
            open(|s| s.p99_ms),
            peers.join("; "),
            if errors > 0 {
                format!("; {errors} commands failed")
            } else {
                String::new()
            },
        );
    }
}

fn as_json(options: &Options, levels: &BTreeMap<usize, Level>) -> serde_json::Value {
    let levels: Vec<_> = levels
        .iter()
        .map(|(concurrency, level)| {
            let samples = |samples: &[Sample]| -> Vec<serde_json::Value> {
                samples
                    .iter()
                    .map(|s| json!({ "commandsPerSecond": s.commands_per_second, "p50Ms": s.p50_ms, "p99Ms": s.p99_ms, "p999Ms": s.p999_ms, "errors": s.errors }))
                    .collect()
            };
            json!({
                "concurrency": concurrency,
                "closedLoop": samples(&level.closed),
                "openLoopAtHalfSaturation": samples(&level.open),
                "peers": level.peers,
            })
        })
        .collect();
    json!({
        "backend": options.kafka.as_deref().unwrap_or("embedded"),
        "rounds": options.rounds,
        "durationSeconds": options.duration,
        "levels": levels,
    })
}
