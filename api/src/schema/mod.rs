//! The GraphQL schema of shared/schema.graphql: queries, mutations and the
//! live subscription, with depth and complexity limits.

mod customer;
mod inputs;
mod mutation;
mod query;
mod subscription;
pub mod types;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Schema;
use eventlog::EventLog;
use tokio::sync::broadcast;

use crate::metrics::Metrics;
use commands::CommandGateway;
use projections::serving::{LagProbes, ProjectionHandle, ReadModels, Rebuilder};

use crate::error::ApiError;
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::{LiveEvent, Subscription};

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted (fields, with list fields weighted).
pub const MAX_COMPLEXITY: usize = 2_000;

/// Everything a resolver may use.
#[derive(Debug)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    pub topics: commands::Topics,
    pub gateway: Arc<CommandGateway>,
    pub read: ReadModels,
    /// Starts blue/green rebuilds of the read models.
    pub rebuilder: Rebuilder,
    /// Consumers that measure lag in seconds, kept between scrapes.
    pub lag_probes: LagProbes,
    /// The node's data directory (scratch space for verification).
    pub data_dir: std::path::PathBuf,
    pub live: broadcast::Sender<LiveEvent>,
    pub metrics: Arc<Metrics>,
    /// Longest wait of `consistentWith`.
    pub consistency_timeout: Duration,
}

impl AppState {
    /// The generation of the read model `name` a query reads: the served one
    /// once it has passed `token` (bounded wait), or another by number.
    pub async fn read_model(
        &self,
        name: &str,
        token: Option<&str>,
        generation: Option<i32>,
    ) -> Result<Arc<ProjectionHandle>, ApiError> {
        let slot = self.read.named(name, "projection")?;
        Ok(slot
            .read(token, generation, self.consistency_timeout)
            .await?)
    }
}

/// Whether the request may run admin operations (rebuilds, dead letters):
/// it presented the server's token, or came from loopback when the server
/// has none. Requests without this marker may not.
#[derive(Debug, Clone, Copy)]
pub struct AdminAccess(pub bool);

/// Refuses admin operations to requests without `AdminAccess(true)`.
pub(crate) fn require_admin(
    ctx: &async_graphql::Context<'_>,
) -> Result<(), crate::error::ApiError> {
    match ctx.data_opt::<AdminAccess>() {
        Some(AdminAccess(true)) => Ok(()),
        _ => Err(crate::error::ApiError::forbidden(
            "admin operations need the server's bearer token (or, on a server without one, a client on this machine)",
        )),
    }
}

/// The correlation id from the `X-Correlation-Id` header, if any.
#[derive(Debug, Clone)]
pub struct CorrelationHeader(pub Option<String>);

pub fn build(state: Arc<AppState>) -> AppSchema {
    Schema::build(Query, Mutation, Subscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema's SDL, for the contract and snapshot tests and for tooling.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}
