//! The `orderstore` binary: parses flags, sets up tracing, and hands the
//! subcommand to `cli`, which calls the libraries.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::args::{Commands, LogFormat};

/// mimalloc: with glibc's allocator the projection workers' many small
/// allocations queue on its arena lock (perf on `bench rebuild`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `default` is the filter when RUST_LOG is not set.
fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => lines.init(),
        LogFormat::Json => lines.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::args::Cli::parse();
    let format = match &cli.command {
        Commands::Serve(serve) => serve.log_format,
        _ => LogFormat::Text,
    };
    // A benchmark's table is its output: only warnings beside it.
    let default = match &cli.command {
        Commands::Bench(_) => "warn",
        _ => "info,sled=warn",
    };
    init_tracing(format, default);
    match cli::run(cli.command).await {
        Ok(code) => code,
        Err(error) => {
            // The error and its causes, for people: never a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
