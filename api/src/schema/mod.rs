//! The GraphQL schema of shared/schema.graphql: queries, mutations and the
//! live subscription, with depth and complexity limits.

mod customer;
mod inputs;
pub mod introspection;
mod mutation;
mod query;
mod subscription;
pub mod types;
mod validated;

use std::sync::Arc;

use async_graphql::{Schema, ValidationMode};

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

/// Most distinct query documents kept parsed.
const CACHED_DOCUMENTS: usize = 512;
/// Longer query texts are parsed every time, not kept.
const MAX_CACHED_QUERY_BYTES: usize = 8 << 10;

/// The schema, and the same schema with the deeper limit that standard
/// introspection queries need (used only for operations that select
/// nothing but introspection fields; see `introspection`), and once more
/// without the strict validation rules, for queries whose document passed
/// them before (see `validated`); and the parsed documents of recent query
/// texts, so a client that sends the same document again (as clients do,
/// with other variables) is neither parsed nor fully validated again.
#[derive(Clone)]
pub struct Schemas {
    pub main: AppSchema,
    introspection: AppSchema,
    validated: AppSchema,
    /// `orderstore_graphql_requests_total` by validation, resolved once.
    strict_requests: prometheus_client::metrics::counter::Counter,
    validated_requests: prometheus_client::metrics::counter::Counter,
    documents: Arc<std::sync::Mutex<lru::LruCache<String, Arc<validated::Document>>>>,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").finish_non_exhaustive()
    }
}

impl Schemas {
    pub fn build(state: Arc<AppState>) -> Self {
        let requests = |validation| {
            state
                .metrics
                .graphql_requests
                .get_or_create(&crate::metrics::ValidationLabel { validation })
                .clone()
        };
        let introspection = Schema::build(Query, Mutation, Subscription)
            .data(state.clone())
            .limit_depth(introspection::MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish();
        let documents = lru::LruCache::new(
            std::num::NonZeroUsize::new(CACHED_DOCUMENTS).unwrap_or(std::num::NonZeroUsize::MIN),
        );
        let validated = Schema::build(Query, Mutation, Subscription)
            .data(state.clone())
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .validation_mode(ValidationMode::Fast)
            .finish();
        Self {
            strict_requests: requests("strict"),
            validated_requests: requests("variables"),
            main: build(state),
            introspection,
            validated,
            documents: Arc::new(std::sync::Mutex::new(documents)),
        }
    }

    /// The parsed document of `query`: from the cache, or parsed (and kept,
    /// when short enough). None when it does not parse: execution then
    /// answers with the parse error.
    fn document(&self, query: &str) -> Option<Arc<validated::Document>> {
        let cached = self
            .documents
            .lock()
            .ok()
            .and_then(|mut documents| documents.get(query).cloned());
        if cached.is_some() {
            return cached;
        }
        let parsed = Arc::new(validated::Document::new(
            async_graphql::parser::parse_query(query).ok()?,
        ));
        if query.len() <= MAX_CACHED_QUERY_BYTES {
            if let Ok(mut documents) = self.documents.lock() {
                documents.put(query.to_owned(), parsed.clone());
            }
        }
        Some(parsed)
    }

    /// Executes one request on the schema whose limits apply to it. The
    /// query is parsed once (or not at all when its document is cached),
    /// and validated strictly until it has passed once.
    pub async fn execute(&self, mut request: async_graphql::Request) -> async_graphql::Response {
        let Some(document) = self.document(&request.query) else {
            // It does not parse: execution answers with the parse error.
            return self.main.execute(request).await;
        };
        if let Some(refused) = crate::graphql_http::missing_variable(&request, &document.parsed) {
            return refused;
        }
        let introspection = introspection::selects_only_introspection(&document.parsed);
        let fast = !introspection && document.may_skip_strict_rules(&request);
        request.set_parsed_query(document.parsed.clone());
        if fast {
            self.validated_requests.inc();
        } else {
            self.strict_requests.inc();
        }
        if introspection {
            self.introspection.execute(request).await
        } else if fast {
            self.validated.execute(request).await
        } else {
            let response = self.main.execute(request).await;
            if response.errors.is_empty() {
                document.passed_strict_rules();
            }
            response
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
