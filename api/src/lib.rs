//! The API: the GraphQL schema of shared/schema.graphql on axum, metrics
//! and health, and the `serve` wiring of a whole node. It reads through the
//! read-side runtime (`projections::serving`) and sends commands through
//! the write side's gateway (`commands`).
//!
//! It must never leak internal errors to clients, never acknowledge a
//! command before its reply, and never block a request without a bound.

pub mod error;
pub mod export;
pub mod graphql_http;
pub mod http;
pub mod live;
pub mod metrics;
pub mod schema;
pub mod serve;
pub mod state;
