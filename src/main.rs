//! The `orderstore` binary: parses flags, sets up tracing, calls the libraries.

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "orderstore",
    version,
    about = "Event-sourced order store with CQRS projections on Apache Kafka"
)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
