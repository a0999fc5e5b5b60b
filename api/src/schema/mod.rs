//! The GraphQL schema of shared/schema.graphql: queries, mutations and the
//! live subscription, with depth and complexity limits.

mod customer;
mod inputs;
pub mod introspection;
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

/// The schema, and the same schema with the deeper limit that standard
/// introspection queries need (used only for operations that select
/// nothing but introspection fields; see `introspection`).
#[derive(Clone)]
pub struct Schemas {
    pub main: AppSchema,
    introspection: AppSchema,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

impl Schemas {
    pub fn build(state: Arc<AppState>) -> Self {
        let introspection = Schema::build(Query, Mutation, Subscription)
            .data(state.clone())
            .limit_depth(introspection::MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        Self {
            main: build(state),
            introspection,
        }
    }

    /// Executes one request on the schema whose limits apply to it.
    pub async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        if let Some(refused) = crate::graphql_http::missing_variable(&request) {
            return refused;
        }
        if introspection::selects_only_introspection(&request.query) {
            self.introspection.execute(request).await
        } else {
            self.main.execute(request).await
        }
    }

    /// Executes a batch, each request on the schema whose limits apply to it.
    pub async fn execute_batch(
        &self,
        batch: async_graphql::BatchRequest,
    ) -> async_graphql::BatchResponse {
        match batch {
            async_graphql::BatchRequest::Single(request) => {
                async_graphql::BatchResponse::Single(self.execute(request).await)
            }
            async_graphql::BatchRequest::Batch(requests) => {
                let mut responses = Vec::with_capacity(requests.len());
                for request in requests {
                    responses.push(self.execute(request).await);
                }
                async_graphql::BatchResponse::Batch(responses)
            }
        }
    }
}

/// The schema's SDL, for the contract and snapshot tests and for tooling.
pub fn sdl() -> String {
    Schema::build(Query, Mutation, Subscription).finish().sdl()
}
