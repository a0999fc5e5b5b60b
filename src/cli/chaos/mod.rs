//! `orderstore chaos`: the fault suite. Each scenario runs a workload,
//! injects faults on a schedule drawn from the seed, and then checks the
//! invariants (`check.rs`). It prints one row per scenario and backend:
//! operations, faults, ok / failed / indeterminate, invariant violations
//! and the longest recovery, with the seed and the command that reproduces
//! it. The exit status is 1 when any invariant was violated.

mod check;
mod node;
mod scenarios;
mod workload;

use std::process::ExitCode;

use node::Backend;
use scenarios::Row;

/// Every scenario, by the name `--scenario` takes.
pub const SCENARIOS: &[&str] = &[
    "kill9",
    "worker-crash",
    "conflicts",
    "duplicates",
    "poison",
    "fuzz",
    "auth",
    "broker",
    "disk-full",
    "disk-full-no-reserve",
    "two-nodes",
    "replace",
    "cluster",
];

#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Scenarios to run, comma-separated (default: all): kill9, worker-crash, conflicts,
    /// duplicates, poison, fuzz, auth, broker (needs --harness), disk-full and
    /// disk-full-no-reserve (need root: they mount a small tmpfs), two-nodes and replace (Kafka only),
    /// cluster (a private 3-node cluster; needs --harness).
    #[arg(long, value_delimiter = ',')]
    pub scenario: Vec<String>,
    /// Also run each scenario that applies on this Kafka cluster (fresh
    /// `chaos-<id>.*` topics, left behind).
    #[arg(long)]
    pub kafka: Option<String>,
    /// Seed of the fault schedules and the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// kill -9s of the kill9 scenario, per backend.
    #[arg(long, default_value_t = 30)]
    pub kills: usize,
    /// Requests of the fuzz scenario.
    #[arg(long, default_value_t = 100_000)]
    pub requests: usize,
    /// The Kafka harness script (scripts/kafka/kafka): the broker scenario
    /// starts a private broker with it, to stop, kill and pause.
    #[arg(long)]
    pub harness: Option<std::path::PathBuf>,
    /// Write the rows as JSON to this file too.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

fn command(args: &ChaosArgs, scenario: &str, backend: &Backend) -> String {
    let mut command = format!(
        "orderstore chaos --scenario {scenario} --seed {}",
        args.seed
    );
    match scenario {
        "kill9" | "two-nodes" => command.push_str(&format!(" --kills {}", args.kills)),
        "fuzz" => command.push_str(&format!(" --requests {}", args.requests)),
        _ => {}
    }
    if let Backend::Kafka { bootstrap, .. } = backend {
        command.push_str(&format!(" --kafka {bootstrap}"));
    }
    command
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let chosen: Vec<&str> = if args.scenario.is_empty() {
        SCENARIOS.to_vec()
    } else {
        for name in &args.scenario {
            anyhow::ensure!(
                SCENARIOS.contains(&name.as_str()),
                "no scenario is called {name:?} (there are: {})",
                SCENARIOS.join(", ")
            );
        }
        args.scenario.iter().map(String::as_str).collect()
    };
    let mut backends = vec![Backend::Embedded];
    if let Some(bootstrap) = &args.kafka {
        backends.push(Backend::Kafka {
            bootstrap: bootstrap.clone(),
            prefix: String::new(),
        });
    }
    let mut rows: Vec<(Row, String)> = Vec::new();
    for scenario in chosen {
        // Scenarios with their own setup run once.
        let single = match scenario {
            "broker" | "cluster" => match &args.harness {
                Some(script) if scenario == "broker" => {
                    Some(scenarios::broker(script, args.seed).await)
                }
                Some(script) => Some(scenarios::cluster(script, args.seed).await),
                None => {
                    eprintln!("skipping {scenario}: it needs --harness scripts/kafka/kafka");
                    continue;
                }
            },
            "disk-full" | "disk-full-no-reserve" if !scenarios::is_root() => {
                eprintln!("skipping {scenario}: it mounts a tmpfs, which needs root");
                continue;
            }
            _ => None,
        };
        if let Some(row) = single {
            let row =
                row.map_err(|e| anyhow::anyhow!("scenario {scenario} could not run: {e:#}"))?;
            for violation in row.violations.iter().take(20) {
                eprintln!("  VIOLATION: {violation}");
            }
            if let Some(note) = &row.note {
                eprintln!("  note: {note}");
            }
            eprintln!("  not acknowledged, by code: {:?}", row.codes);
            let mut command = format!(
                "orderstore chaos --scenario {scenario} --seed {}",
                args.seed
            );
            if matches!(scenario, "broker" | "cluster") {
                command.push_str(" --harness scripts/kafka/kafka");
            }
            rows.push((row, command));
            continue;
        }
        for backend in &backends {
            // Fuzzing and the auth matrix test the HTTP layer, the same on
            // both; two nodes share a log only on Kafka.
            let kafka = matches!(backend, Backend::Kafka { .. });
            if (matches!(scenario, "fuzz" | "auth") && kafka)
                || (matches!(scenario, "two-nodes" | "replace") && !kafka)
            {
                continue;
            }
            let backend = match backend {
                Backend::Kafka { bootstrap, .. } => Backend::Kafka {
                    bootstrap: bootstrap.clone(),
                    prefix: format!("chaos-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
                },
                Backend::Embedded => Backend::Embedded,
            };
            eprintln!(
                "running {scenario} on {} (seed {})",
                backend.name(),
                args.seed
            );
            let started = std::time::Instant::now();
            let row = match scenario {
                "kill9" => scenarios::kill9(&backend, args.kills, args.seed).await,
                "worker-crash" => scenarios::worker_crash(&backend, args.seed).await,
                "disk-full" => scenarios::disk_full(&backend, args.seed).await,
                "disk-full-no-reserve" => {
                    scenarios::disk_full_no_reserve(&backend, args.seed).await
                }
                "conflicts" => scenarios::conflicts(&backend).await,
                "duplicates" => scenarios::duplicates(&backend, args.seed).await,
                "poison" => scenarios::poison(&backend, args.seed).await,
                "fuzz" => scenarios::fuzz(&backend, args.requests, args.seed).await,
                "replace" => scenarios::replace(&backend, args.seed).await,
                "two-nodes" => {
                    scenarios::two_nodes(&backend, args.kills.div_ceil(10).max(1), args.seed).await
                }
                _ => scenarios::auth(&backend).await,
            };
            let row = row.map_err(|e| {
                anyhow::anyhow!(
                    "scenario {scenario} on {} could not run: {e:#}",
                    backend.name()
                )
            })?;
            eprintln!(
                "  done in {:.1} s; not acknowledged, by code: {:?}",
                started.elapsed().as_secs_f64(),
                row.codes
            );
            for violation in row.violations.iter().take(20) {
                eprintln!("  VIOLATION: {violation}");
            }
            if let Some(note) = &row.note {
                eprintln!("  note: {note}");
            }
            rows.push((row, command(&args, scenario, &backend)));
        }
    }
    println!("| scenario | backend | operations | faults | ok | failed | indeterminate | invariant violations | longest recovery | events checked | reproduce |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (row, command) in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | `{command}` |",
            row.scenario,
            row.backend,
            row.operations,
            row.faults,
            row.ok,
            row.failed,
            row.indeterminate,
            row.violations.len(),
            row.recovery
                .map_or("-".into(), |r| format!("{:.2} s", r.as_secs_f64())),
            row.events,
        );
    }
    if let Some(path) = &args.json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(row, command)| {
                serde_json::json!({
                    "scenario": row.scenario, "backend": row.backend, "operations": row.operations,
                    "faults": row.faults, "ok": row.ok, "failed": row.failed,
                    "indeterminate": row.indeterminate, "violations": row.violations,
                    "recoverySeconds": row.recovery.map(|r| r.as_secs_f64()), "events": row.events,
                    "note": row.note, "codes": row.codes,
                    "seed": args.seed, "command": command,
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&json)?)?;
    }
    let violated = rows.iter().any(|(row, _)| !row.violations.is_empty());
    Ok(if violated {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
