//! `orderstore replay verify`: rebuilds a projection into a scratch store up
//! to exactly the served generation's checkpoints and compares the two entry
//! by entry (rows with their valid-from times, sequences, checkpoints, parked
//! orders, dead letters). A difference means the served read model is not
//! what its code makes of the log: a bug, a hand edit, a discarded dead
//! letter, or a projection changed without a rebuild.
//!
//! The comparison holds the served store's write lock, so its worker waits
//! (reads go on) while the last stretch is applied and the stores compared.

use std::path::Path;

use commands::Topics;
use eventlog::EventLog;
use projections::store::Comparison;
use projections::worker::Projection;
use projections::ProjectionStore;

use projections::serving::rebuild::{rebuild_into, RebuildError, Target};

/// Differences kept for the report (all are counted).
pub const SHOWN_DIFFERENCES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events the scratch rebuild applied.
    pub events: u64,
    /// Served (left) against rebuilt (right).
    pub comparison: Comparison,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.comparison.different == 0
    }
}

/// Verifies `served` against a rebuild from the log in `scratch_dir` (which
/// must not exist yet; it is removed afterwards).
pub async fn verify(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    served: &ProjectionStore,
    scratch_dir: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<VerifyReport, RebuildError> {
    let scratch = ProjectionStore::open(scratch_dir)?;
    let outcome = verify_with(projection, log, topics, served, &scratch, shutdown).await;
    drop(scratch);
    let _ = std::fs::remove_dir_all(scratch_dir);
    outcome
}

async fn verify_with(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    served: &ProjectionStore,
    scratch: &ProjectionStore,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<VerifyReport, RebuildError> {
    tokio::pin!(shutdown);
    // Most of the way without holding up the served generation's worker...
    let first = catch_up(projection, log, topics, served, scratch, &mut shutdown).await?;
    // ...then the last stretch and the comparison with its writes held.
    let guard = served.lock_writes().await;
    let last = catch_up(projection, log, topics, served, scratch, &mut shutdown).await?;
    let comparison = served.compare(scratch, SHOWN_DIFFERENCES)?;
    drop(guard);
    Ok(VerifyReport {
        events: first.events + last.events,
        comparison,
    })
}

/// Applies to the scratch store up to where the served one is now.
async fn catch_up(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    served: &ProjectionStore,
    scratch: &ProjectionStore,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<projections::serving::rebuild::Rebuilt, RebuildError> {
    let target = Target::Positions(served.checkpoints()?);
    rebuild_into(projection, log, topics, scratch, target, shutdown, |_| {}).await
}
