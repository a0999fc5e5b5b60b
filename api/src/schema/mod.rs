//! The GraphQL schema of shared/schema.graphql: queries, mutations and the
//! live subscription, with depth and complexity limits.

mod customer;
mod inputs;
mod mutation;
mod query;
mod subscription;
pub mod types;

use std::sync::Arc;

use async_graphql::Schema;

use crate::state::AppState;
pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted (fields, with list fields weighted).
pub const MAX_COMPLEXITY: usize = 2_000;

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
