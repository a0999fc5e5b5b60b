//! What every request handler may use: the node's state, the per-request
//! markers the HTTP layer adds (admin access, correlation header), and the
//! live events the subscription serves. Nothing here depends on the schema
//! or the HTTP layer, so no module import circles back to it.

use std::sync::Arc;
use std::time::Duration;

use commands::CommandGateway;
use eventlog::EventLog;
use projections::serving::{LagProbes, ProjectionHandle, ReadModels, Rebuilder};
use tokio::sync::broadcast;

use crate::error::ApiError;
use crate::metrics::Metrics;
use domain::envelope::StructuredEvent;

/// One committed event and the customer it belongs to.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub event: StructuredEvent,
    pub partition: u32,
    pub offset: u64,
    pub customer_id: Option<String>,
}

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
    /// This node's command processor, when it runs one (readiness).
    pub processor: Option<Arc<commands::ProcessorStatus>>,
    /// The data directory's disk reserve (commands, readiness, metrics).
    pub disk: Arc<eventlog::disk::DiskReserve>,
    /// The CloudEvents HTTP sinks of this node (`serve --sink`).
    pub sinks: Vec<Arc<projections::sinks::Sink>>,
}

/// A sink's status, with its lag measured now.
pub async fn sink_status(
    state: &AppState,
    sink: &projections::sinks::Sink,
) -> Result<projections::sinks::SinkStatus, ApiError> {
    let lag = projections::serving::lag::lag_of(
        state.log.as_ref(),
        &state.topics,
        &format!("sink {}", sink.name()),
        sink.progress(),
        &state.lag_probes,
    )
    .await
    .map_err(ApiError::internal)?;
    sink.status(&lag).map_err(ApiError::internal)
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
pub(crate) fn require_admin(ctx: &async_graphql::Context<'_>) -> Result<(), ApiError> {
    match ctx.data_opt::<AdminAccess>() {
        Some(AdminAccess(true)) => Ok(()),
        _ => Err(ApiError::forbidden(
            "admin operations need the server's bearer token (or, on a server without one, a client on this machine)",
        )),
    }
}

/// What a request's HTTP headers say about the commands it sends: the
/// `X-Correlation-Id`, and the W3C `traceparent` and `tracestate`.
#[derive(Debug, Clone, Default)]
pub struct CommandHeaders {
    pub correlation_id: Option<String>,
    /// None when absent, and when sent more than once (the spec then
    /// treats it as invalid).
    pub traceparent: Option<String>,
    /// Several `tracestate` headers are one list, joined by commas.
    pub tracestate: Option<String>,
}

impl CommandHeaders {
    /// The trace context for a command: the request's, when its
    /// `traceparent` is valid; else a fresh trace, as the spec says a
    /// receiver restarts one.
    pub fn trace(&self) -> domain::TraceContext {
        if let Some(traceparent) = &self.traceparent {
            match domain::TraceContext::parse(traceparent, self.tracestate.as_deref()) {
                Ok(trace) => return trace,
                Err(error) => tracing::debug!(%error, "starting a new trace"),
            }
        }
        let (trace_id, span_id) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        domain::TraceContext::fresh(trace_id.as_u128(), span_id.as_u64_pair().0)
    }
}

/// The sink called `name`, or a NOT_FOUND error on `field`.
pub fn sink_named<'a>(
    state: &'a AppState,
    name: &str,
    field: &str,
) -> Result<&'a Arc<projections::sinks::Sink>, ApiError> {
    state
        .sinks
        .iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = state.sinks.iter().map(|s| s.name()).collect();
            ApiError::not_found(format!(
                "{field}: no sink is named {name:?} (this node has: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
}
