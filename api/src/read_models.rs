//! The read models a serving node holds: each projection's store and
//! progress, and the waits that make read-your-writes work.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use eventlog::processor::messages::parse_consistency_tokens;
use projections::worker::Progress;
use projections::ProjectionStore;

use crate::error::ApiError;

/// One projection as the API sees it.
#[derive(Debug, Clone)]
pub struct ProjectionHandle {
    pub name: &'static str,
    /// The blue/green generation being served.
    pub version: u32,
    pub store: ProjectionStore,
    pub progress: Arc<Progress>,
}

/// How often a waiting read looks whether another generation is served.
const SWITCH_CHECK: Duration = Duration::from_millis(100);

/// How far a running rebuild has come.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildStatus {
    pub target_version: u32,
    /// Set for a generation frozen at a time (built beside the served one).
    pub until: Option<DateTime<Utc>>,
    /// "building" (reading the log from the start), then "catching up"
    /// (following the live log until it is as far as the served generation).
    pub phase: &'static str,
    pub applied: u64,
    pub total: u64,
    pub events_per_second: f64,
}

/// How the last rebuild ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildOutcome {
    pub target_version: u32,
    pub until: Option<DateTime<Utc>>,
    pub events: u64,
    pub seconds: f64,
    pub finished_at: DateTime<Utc>,
    /// Why it failed; the served generation is unchanged then.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Rebuilds {
    running: Option<RebuildStatus>,
    last: Option<RebuildOutcome>,
}

/// One projection's place in the node: the generation being served (swapped
/// atomically by a blue/green rebuild) and the state of any rebuild.
#[derive(Debug)]
pub struct ProjectionSlot {
    pub name: &'static str,
    served: RwLock<Arc<ProjectionHandle>>,
    rebuilds: Mutex<Rebuilds>,
}

impl ProjectionSlot {
    pub fn new(handle: ProjectionHandle) -> Self {
        Self {
            name: handle.name,
            served: RwLock::new(Arc::new(handle)),
            rebuilds: Mutex::new(Rebuilds::default()),
        }
    }

    /// The generation served now. A request keeps using the one it got,
    /// even when a switch happens meanwhile.
    pub fn served(&self) -> Arc<ProjectionHandle> {
        match self.served.read() {
            Ok(served) => served.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves `next` from now on; returns the generation served before.
    pub fn switch_to(&self, next: ProjectionHandle) -> Arc<ProjectionHandle> {
        let mut served = match self.served.write() {
            Ok(served) => served,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *served, Arc::new(next))
    }

    fn rebuilds(&self) -> std::sync::MutexGuard<'_, Rebuilds> {
        match self.rebuilds.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn rebuilding(&self) -> Option<RebuildStatus> {
        self.rebuilds().running.clone()
    }

    pub fn last_rebuild(&self) -> Option<RebuildOutcome> {
        self.rebuilds().last.clone()
    }

    /// Waits (bounded) until the served generation has applied the events
    /// named by a consistency token, and returns it. A blue/green switch
    /// during the wait is followed: the new generation is waited on.
    pub async fn wait_for(
        &self,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Arc<ProjectionHandle>, ApiError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(self.served());
        };
        let positions = parse_consistency_tokens(token).ok_or_else(|| {
            ApiError::invalid(
                "consistentWith",
                "not a consistency token (expected partition:offset, several joined with commas)",
            )
        })?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let served = self.served();
            let mut reached = true;
            for (partition, offset) in &positions {
                let left = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .min(SWITCH_CHECK);
                reached &= served.progress.wait_past(*partition, *offset, left).await;
                if !reached {
                    break;
                }
            }
            if reached {
                return Ok(served);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::timeout(format!(
                    "the {} projection did not reach {token} within {} ms",
                    self.name,
                    timeout.as_millis()
                )));
            }
        }
    }

    pub(crate) fn set_rebuilding(&self, status: Option<RebuildStatus>) {
        self.rebuilds().running = status;
    }

    pub(crate) fn finish_rebuild(&self, outcome: RebuildOutcome) {
        let mut rebuilds = self.rebuilds();
        rebuilds.running = None;
        rebuilds.last = Some(outcome);
    }
}

/// The three read models of a node.
#[derive(Debug, Clone)]
pub struct ReadModels {
    pub history: Arc<ProjectionSlot>,
    pub customer: Arc<ProjectionSlot>,
    pub finance: Arc<ProjectionSlot>,
}

impl ReadModels {
    pub fn new(
        history: ProjectionHandle,
        customer: ProjectionHandle,
        finance: ProjectionHandle,
    ) -> Self {
        Self {
            history: Arc::new(ProjectionSlot::new(history)),
            customer: Arc::new(ProjectionSlot::new(customer)),
            finance: Arc::new(ProjectionSlot::new(finance)),
        }
    }

    pub fn slots(&self) -> [&Arc<ProjectionSlot>; 3] {
        [&self.history, &self.customer, &self.finance]
    }

    /// The served generation of every projection.
    pub fn all(&self) -> Vec<Arc<ProjectionHandle>> {
        self.slots().iter().map(|slot| slot.served()).collect()
    }

    pub fn slot(&self, name: &str) -> Option<&Arc<ProjectionSlot>> {
        self.slots().into_iter().find(|slot| slot.name == name)
    }
}
