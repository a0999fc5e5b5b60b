//! Operator operations written once: inspect an order or a diff, verify
//! the snapshots topic, verify a projection, list, retry and discard dead
//! letters, rebuild and switch generations.
//!
//! `Operations` is the typed API a tool calls. `LocalOperations` does the
//! work here, over the log and the data directory's files (no server owns
//! them); the CLI's remote implementation asks the server that owns them,
//! over its GraphQL admin fields, whose resolvers call the same functions
//! below on the node's open log and served stores. Each operation's logic
//! is in one of those functions.
//!
//! Operations never write to the log, and never change a served read model
//! except by the dead-letter operations, under the store's write lock.

mod local;
pub mod server_file;
mod types;

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commands::Topics;
use domain::OrderId;
use eventlog::{EventLog, LogError, Shutdown};
use projections::dlq::RetryReport;
use projections::serving::{RebuildError, ServingError};
use projections::store::StoreError;
use projections::{Projection, ProjectionStore};

pub use local::{LocalOperations, LogLocation};
pub use types::{
    DeadLetterView, EntryDifference, HeaderView, Inspection, ProjectionVerification, RebuildKind,
    RebuildProgress, RebuildReport, RebuildWatch, SnapshotVerification,
};

use crate::log_fold::FoldError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("unknown projection {name:?} ({choices})")]
    UnknownProjection { name: String, choices: String },
    /// Bad input from the operator.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The server refused or failed (its code and message).
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
    /// The server could not be reached or answered nonsense.
    #[error("{0}")]
    Remote(String),
    #[error(transparent)]
    Serving(#[from] ServingError),
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Ctrl-C while watching a server's rebuild: the server goes on with it.
    #[error("stopped watching; the server goes on with the rebuild (see the projections query)")]
    Detached,
}

/// The typed API of every operator operation.
#[async_trait]
pub trait Operations: Send + Sync {
    /// Where the work happens, for people: "the server at URL" or None for here.
    fn server(&self) -> Option<&str>;

    async fn inspect_order(
        &self,
        order_id: &OrderId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError>;

    async fn inspect_diff(
        &self,
        order_id: &OrderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Inspection, OpsError>;

    /// Every event under one correlation id, across orders, in the flow's
    /// order, with time at or before `at` (default now), from the trace
    /// read model.
    async fn inspect_trace(
        &self,
        correlation_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError>;

    async fn verify_snapshots(&self) -> Result<SnapshotVerification, OpsError>;

    async fn verify_projection(&self, name: &str) -> Result<ProjectionVerification, OpsError>;

    /// Every dead letter of one projection (or of all), oldest position first.
    async fn dead_letters(&self, projection: Option<&str>)
        -> Result<Vec<DeadLetterView>, OpsError>;

    async fn retry_dead_letters(
        &self,
        projection: &str,
        order_id: Option<&str>,
    ) -> Result<RetryReport, OpsError>;

    /// Drops one dead letter for good; `NotFound` when there is none there.
    async fn discard_dead_letter(
        &self,
        projection: &str,
        partition: u32,
        offset: u64,
    ) -> Result<DeadLetterView, OpsError>;

    /// Rebuilds (or switches) each projection named, reporting to `watch`;
    /// answers how each ended (a failed one has its `error` set).
    async fn rebuild(
        &self,
        names: &[&'static str],
        kind: RebuildKind,
        watch: &dyn RebuildWatch,
        shutdown: Shutdown,
    ) -> Result<Vec<RebuildReport>, OpsError>;
}

/// `all` (when allowed) or one projection's name, checked against the registry.
pub fn projection_names(name: &str, all_allowed: bool) -> Result<Vec<&'static str>, OpsError> {
    let names = projections::names();
    if all_allowed && name == "all" {
        return Ok(names);
    }
    match names.iter().find(|n| **n == name) {
        Some(found) => Ok(vec![*found]),
        None => Err(OpsError::UnknownProjection {
            name: name.to_owned(),
            choices: {
                let mut choices = names;
                if all_allowed {
                    choices.push("all");
                }
                projections::registry::listed(&choices, "or")
            },
        }),
    }
}

/// The projection's code by name.
pub fn projection(name: &str) -> Result<std::sync::Arc<dyn Projection>, OpsError> {
    let found = projection_names(name, false)?;
    projections::named(found[0]).ok_or_else(|| OpsError::NotFound(name.to_owned()))
}

/// An order's state at `at` and the events that made it, from the log.
pub async fn inspect_order(
    log: &dyn EventLog,
    topics: &Topics,
    order_id: &OrderId,
    at: Option<DateTime<Utc>>,
) -> Result<Inspection, OpsError> {
    let at = at.unwrap_or_else(Utc::now);
    let id = order_id.as_str();
    let folded = crate::log_fold::fold_order(log, topics, id, at).await?;
    Ok(Inspection {
        text: crate::inspect::order_text(id, at, &folded),
        json: crate::inspect::order_json(id, at, &folded),
    })
}

/// The fields of an order that changed between two times, and the events
/// in between, from the log.
pub async fn inspect_diff(
    log: &dyn EventLog,
    topics: &Topics,
    order_id: &OrderId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Inspection, OpsError> {
    if to < from {
        return Err(OpsError::Invalid("--from must not be after --to".into()));
    }
    let id = order_id.as_str();
    let before = crate::log_fold::fold_order(log, topics, id, from).await?;
    let after = crate::log_fold::fold_order(log, topics, id, to).await?;
    Ok(Inspection {
        text: crate::inspect::diff_text(id, &before, &after),
        json: crate::inspect::diff_json(id, &before, &after),
    })
}

/// A flow's events under one correlation id, from a trace store.
pub fn inspect_trace(
    store: &ProjectionStore,
    correlation_id: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Inspection, OpsError> {
    if !projections::trace::valid_correlation_id(correlation_id) {
        return Err(OpsError::Invalid(
            "a correlation id is 1 to 128 visible ASCII characters".into(),
        ));
    }
    let at = at.unwrap_or_else(Utc::now);
    let mut events = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = projections::trace::events(store, correlation_id, at, after.as_deref(), 1000)?;
        after = page.events.last().map(|(cursor, ..)| cursor.clone());
        events.extend(
            page.events
                .into_iter()
                .map(
                    |(_, event, partition, offset)| crate::log_fold::LoggedEvent {
                        partition,
                        offset,
                        event,
                    },
                ),
        );
        if !page.has_next_page {
            break;
        }
    }
    Ok(Inspection {
        text: crate::inspect::trace_text(correlation_id, at, &events),
        json: crate::inspect::trace_json(correlation_id, at, &events),
    })
}

/// Every order folded from the events topic against its latest snapshot.
pub async fn verify_snapshots(
    log: &dyn EventLog,
    topics: &Topics,
) -> Result<SnapshotVerification, OpsError> {
    let found = crate::snapshots::verify(log, topics).await?;
    Ok(SnapshotVerification {
        orders: found.orders,
        snapshots: found.snapshots,
        undecodable: found.undecodable,
        differences: found.differences,
    })
}

/// A projection's generation `version` (in `served`) against a rebuild in
/// a scratch directory beside it, entry by entry.
pub async fn verify_projection(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    (version, served): (u32, &ProjectionStore),
    data_dir: &Path,
    shutdown: Shutdown,
) -> Result<ProjectionVerification, OpsError> {
    let name = projection.name();
    let scratch = projections::serving::generation::scratch_dir(data_dir, name);
    let report = crate::verify::verify(projection, log, topics, served, &scratch, shutdown).await?;
    let comparison = report.comparison;
    Ok(ProjectionVerification {
        name: name.to_owned(),
        version,
        events: report.events,
        entries: comparison.entries,
        different: comparison.different,
        differences: comparison
            .differences
            .into_iter()
            .map(|d| EntryDifference {
                entry: d.key.to_string(),
                served: d.left,
                rebuilt: d.right,
            })
            .collect(),
    })
}

/// The dead letters of one projection's store.
pub fn dead_letters(name: &str, store: &ProjectionStore) -> Result<Vec<DeadLetterView>, OpsError> {
    Ok(store
        .dead_letters()?
        .iter()
        .map(|letter| DeadLetterView::new(name, letter))
        .collect())
}

/// Applies parked events again, in order, under the store's write lock.
pub async fn retry_dead_letters(
    projection: &dyn Projection,
    store: &ProjectionStore,
    order_id: Option<&str>,
) -> Result<RetryReport, OpsError> {
    let _writes = store.lock_writes().await;
    Ok(projections::dlq::retry(projection, store, order_id)?)
}

/// Drops one dead letter for good, under the store's write lock.
pub async fn discard_dead_letter(
    name: &str,
    store: &ProjectionStore,
    partition: u32,
    offset: u64,
) -> Result<DeadLetterView, OpsError> {
    let _writes = store.lock_writes().await;
    match projections::dlq::discard(store, partition, offset)? {
        Some(letter) => Ok(DeadLetterView::new(name, &letter)),
        None => Err(OpsError::NotFound(format!(
            "no dead letter at {partition}:{offset} in {name}"
        ))),
    }
}
