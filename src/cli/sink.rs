//! `orderstore sink list|show|retry|discard`: a sink's parked events,
//! through the server that runs the sink (sinks live inside `serve`).

use std::process::ExitCode;

use serde_json::{json, Value};

use super::args::{ServerArgs, SinkCommand};
use super::remote::{running_server, RemoteOperations};

const PARKED_FIELDS: &str =
    "id sink partition offset orderId eventId eventType sequence status error parkedAt";

async fn server(
    data_dir: &std::path::Path,
    server: &ServerArgs,
) -> anyhow::Result<RemoteOperations> {
    let url = match &server.server {
        Some(url) => Some(url.clone()),
        None => running_server(data_dir).await,
    };
    let url = url.ok_or_else(|| {
        anyhow::anyhow!(
            "no running server owns {}: sinks run inside `orderstore serve --sink NAME=URL`; start it, or pass --server URL",
            data_dir.display()
        )
    })?;
    Ok(RemoteOperations::new(&url, server.auth_token.clone()))
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn run(command: SinkCommand) -> anyhow::Result<ExitCode> {
    match command {
        SinkCommand::List {
            sink,
            data_dir,
            server: args,
        } => {
            let remote = server(&data_dir, &args).await?;
            let sinks = remote
                .field(
                    "{ sinks { name url lag lagSeconds delivered retrying parked retries lastError } }",
                    json!({}),
                    "sinks",
                )
                .await?;
            let sinks = sinks.as_array().cloned().unwrap_or_default();
            if let Some(name) = &sink {
                anyhow::ensure!(
                    sinks.iter().any(|s| s["name"] == name.as_str()),
                    "the server runs no sink named {name:?}"
                );
            }
            for s in &sinks {
                println!(
                    "sink {}  {}  delivered {}  lag {} ({:.1} s)  retrying {}  parked {}{}",
                    text(&s["name"]),
                    text(&s["url"]),
                    text(&s["delivered"]),
                    text(&s["lag"]),
                    s["lagSeconds"].as_f64().unwrap_or(0.0),
                    text(&s["retrying"]),
                    text(&s["parked"]),
                    s["lastError"]
                        .as_str()
                        .map(|e| format!("  last error: {}", super::print::one_line(e, 200)))
                        .unwrap_or_default(),
                );
            }
            let parked = remote
                .field(
                    &format!("query($s: String) {{ sinkParked(sink: $s, first: 1000) {{ {PARKED_FIELDS} }} }}"),
                    json!({ "s": sink }),
                    "sinkParked",
                )
                .await?;
            let parked = parked.as_array().cloned().unwrap_or_default();
            if parked.len() == 1000 {
                println!("(the first 1000 parked events; `sink retry` or `discard` to see more)");
            }
            for p in &parked {
                println!(
                    "{}  {}:{}  {}  {}  seq {}  {}",
                    text(&p["sink"]),
                    text(&p["partition"]),
                    text(&p["offset"]),
                    text(&p["orderId"]),
                    text(&p["eventType"]),
                    text(&p["sequence"]),
                    super::print::one_line(&text(&p["error"]), 200),
                );
            }
        }
        SinkCommand::Show {
            sink,
            position,
            data_dir,
            server: args,
        } => {
            let (partition, offset) =
                projections::dlq::parse_position(&position).ok_or_else(|| {
                    anyhow::anyhow!("{position:?} is not a position (partition:offset)")
                })?;
            let remote = server(&data_dir, &args).await?;
            let parked = remote
                .field(
                    &format!("query($s: String) {{ sinkParked(sink: $s, first: 1000) {{ {PARKED_FIELDS} }} }}"),
                    json!({ "s": sink }),
                    "sinkParked",
                )
                .await?;
            let id = format!("{sink}:{partition}:{offset}");
            let found = parked
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["id"] == id.as_str())
                .ok_or_else(|| anyhow::anyhow!("sink {sink} has no parked event at {position}"))?;
            println!("{}", serde_json::to_string_pretty(found)?);
        }
        SinkCommand::Retry {
            sink,
            order,
            data_dir,
            server: args,
        } => {
            let remote = server(&data_dir, &args).await?;
            let queued = remote
                .field(
                    "mutation($s: String!, $o: ID) { retrySinkEvents(sink: $s, orderId: $o) }",
                    json!({ "s": sink, "o": order }),
                    "retrySinkEvents",
                )
                .await?;
            println!(
                "{sink}: {} parked event(s) queued for delivery again (`orderstore sink list` shows how it goes)",
                text(&queued)
            );
        }
        SinkCommand::Discard {
            sink,
            position,
            confirm,
            data_dir,
            server: args,
        } => {
            anyhow::ensure!(
                confirm,
                "discarding means the receiver of sink {sink} never gets the event: pass --confirm"
            );
            projections::dlq::parse_position(&position).ok_or_else(|| {
                anyhow::anyhow!("{position:?} is not a position (partition:offset)")
            })?;
            let remote = server(&data_dir, &args).await?;
            remote
                .field(
                    "mutation($id: ID!) { discardSinkEvent(id: $id, confirm: true) { id } }",
                    json!({ "id": format!("{sink}:{position}") }),
                    "discardSinkEvent",
                )
                .await?;
            println!("{sink}: discarded the parked event at {position}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
