//! The API: the GraphQL schema of shared/schema.graphql on axum, the
//! command gateway, metrics and health, the `serve` wiring of a whole node,
//! and the `load` workload generator.
//!
//! It must never leak internal errors to clients, never acknowledge a
//! command before its reply, and never block a request without a bound.

pub mod admin_client;
pub mod error;
pub mod gateway;
pub mod http;
pub mod live;
pub mod load;
pub mod metrics;
pub mod read_models;
pub mod schema;
pub mod serve;
pub mod status;
