//! `orderstore export`: CloudEvents JSON lines to a file or standard
//! output, through the running server (`GET /export`) or from the log
//! directly; a write error leaves only whole lines behind.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use api::export::ExportParams;
use indicatif::{ProgressBar, ProgressStyle};
use replay::export::{ExportFilter, ExportPlan};

use super::args::ExportArgs;
use super::remote::running_server;

/// Bytes gathered before one write.
const CHUNK: usize = 64 << 10;

/// Whole lines out; on a failed write the file is cut back to the last
/// whole line written.
struct Lines {
    out: Out,
    pending: Vec<u8>,
    /// Bytes of whole lines known written.
    committed: u64,
    lines: u64,
    /// Write at once (`--follow`: a reader waits for each event).
    eager: bool,
}

enum Out {
    Stdout(std::io::Stdout),
    File { file: File, path: PathBuf },
}

impl Lines {
    fn new(output: Option<&PathBuf>, eager: bool) -> anyhow::Result<Self> {
        let out = match output {
            Some(path) => Out::File {
                file: File::create(path)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?,
                path: path.clone(),
            },
            None => Out::Stdout(std::io::stdout()),
        };
        Ok(Self {
            out,
            pending: Vec::with_capacity(CHUNK),
            committed: 0,
            lines: 0,
            eager,
        })
    }

    /// Takes whole lines (each ends with a newline).
    fn push(&mut self, lines: &[u8]) -> anyhow::Result<()> {
        self.pending.extend_from_slice(lines);
        self.lines += lines.iter().filter(|b| **b == b'\n').count() as u64;
        if self.eager || self.pending.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        let written = match &mut self.out {
            Out::Stdout(out) => out.write_all(&self.pending).and_then(|()| out.flush()),
            Out::File { file, .. } => file.write_all(&self.pending),
        };
        match written {
            Ok(()) => {
                self.committed += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(error) => {
                let whole =
                    self.lines - self.pending.iter().filter(|b| **b == b'\n').count() as u64;
                match &mut self.out {
                    Out::File { file, path } => {
                        // Cut the partly written chunk off: whole lines only.
                        let cut = file.set_len(self.committed).and_then(|()| file.sync_all());
                        let kept = match cut {
                            Ok(()) => format!("it holds the {whole} whole lines written before"),
                            Err(e) => format!(
                                "and it could not be cut back to its {whole} whole lines: {e}"
                            ),
                        };
                        anyhow::bail!("cannot write {}: {error}; {kept}", path.display())
                    }
                    Out::Stdout(_) => anyhow::bail!("cannot write to standard output: {error}"),
                }
            }
        }
    }

    fn finish(mut self) -> anyhow::Result<u64> {
        self.flush()?;
        if let Out::File { file, path } = &self.out {
            file.sync_all()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        }
        Ok(self.lines)
    }
}

fn bar(output: Option<&PathBuf>, records: Option<u64>) -> ProgressBar {
    if output.is_none() {
        return ProgressBar::hidden(); // the lines go to the terminal
    }
    let bar = match records {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} records {msg} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    bar.set_message("read");
    bar
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let params = ExportParams {
        since: args.since.clone(),
        until: args.until.clone(),
        types: args.types.clone(),
        order: args.order.clone(),
        follow: args.follow,
    };
    let filter = api::export::filter(&params).map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = match (&args.log.kafka, &args.server.server) {
        (Some(_), _) => None,
        (None, Some(url)) => Some(url.clone()),
        (None, None) => running_server(&args.log.data_dir).await,
    };
    let mut lines = Lines::new(args.output.as_ref(), args.follow)?;
    let written = match server {
        Some(url) => through_server(&url, &args, &params, &mut lines).await,
        None => direct(&args, filter, &mut lines).await,
    };
    let finished = lines.finish();
    let written = written.and(finished)?;
    if args.output.is_some() {
        eprintln!("exported {written} events");
    }
    Ok(ExitCode::SUCCESS)
}

async fn direct(args: &ExportArgs, filter: ExportFilter, lines: &mut Lines) -> anyhow::Result<u64> {
    let location = replay::ops::LogLocation {
        data_dir: args.log.data_dir.clone(),
        kafka: args.log.kafka.clone(),
        topic_prefix: args.log.topic_prefix.clone(),
    };
    let log = location.open().await?;
    let plan = ExportPlan::new(log.as_ref(), &location.topics(), filter).await?;
    let bar = bar(args.output.as_ref(), (!args.follow).then(|| plan.records()));
    let summary = plan
        .run(
            log.as_ref(),
            args.follow,
            super::shutdown_signal(),
            |line| std::future::ready(lines.push(&line)),
            |summary| bar.set_position(summary.read),
        )
        .await;
    bar.finish_and_clear();
    let summary: replay::export::ExportSummary = summary?;
    if summary.unreadable > 0 {
        eprintln!(
            "{} records were not readable events and were left out (the log warned of each)",
            summary.unreadable
        );
    }
    Ok(summary.written)
}

async fn through_server(
    url: &str,
    args: &ExportArgs,
    params: &ExportParams,
    lines: &mut Lines,
) -> anyhow::Result<u64> {
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("since", &params.since),
        ("until", &params.until),
        ("type", &params.types),
        ("order", &params.order),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if params.follow {
        query.push(("follow", "true".into()));
    }
    let endpoint =
        reqwest::Url::parse_with_params(&format!("{}/export", url.trim_end_matches('/')), &query)
            .map_err(|e| anyhow::anyhow!("{url} is not a server URL: {e}"))?;
    let mut request = reqwest::Client::new().get(endpoint);
    if let Some(token) = &args.server.auth_token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {url}: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        anyhow::bail!(
            "the server at {url} answered {}: {message}",
            status.as_u16()
        );
    }
    let records = response
        .headers()
        .get("x-orderstore-export-records")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bar = bar(args.output.as_ref(), records.filter(|_| !args.follow));
    let mut partial: Vec<u8> = Vec::new();
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let chunk = tokio::select! {
            _ = &mut shutdown => break,
            chunk = response.chunk() => chunk.map(|c| c.map(|bytes| bytes.to_vec())),
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                bar.finish_and_clear();
                lines.flush()?;
                anyhow::bail!("the server's export stream broke: {e}; the output holds every whole line received");
            }
        };
        partial.extend_from_slice(&chunk);
        if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
            let rest = partial.split_off(end + 1);
            lines.push(&partial)?;
            partial = rest;
            bar.set_position(lines.lines);
        }
    }
    bar.finish_and_clear();
    Ok(lines.lines)
}
