//! The `orderstore` binary: parses flags, sets up tracing, and hands the
//! subcommand to `cli`, which calls the libraries.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: with glibc's allocator the projection workers' many small
/// allocations queue on its arena lock (perf on `bench rebuild`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sled=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = cli::args::Cli::parse();
    init_tracing();
    cli::run(cli.command).await
}
