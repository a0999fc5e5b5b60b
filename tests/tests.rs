//! The one integration-test binary of the root package: end-to-end tests
//! across crates, with shared support code in `support`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod support;

mod bad_input;
mod bench_queries;
mod broker_restart;
mod chaos;
mod compaction;
mod conflicts;
mod dashboard;
mod disk_reserve;
mod dlq_cli;
mod evolution;
mod export;
mod http_api;
mod inspect;
mod introspection;
mod kafka_tools;
mod lanes;
mod layering;
mod live_rebuild;
mod load;
mod readiness;
mod rebuild;
mod restart;
mod scale_out;
mod schema_contract;
mod sinks;
mod trace_context;
mod trace_flow;
mod verify;
mod write_to_read;
