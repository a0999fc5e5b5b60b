//! The read models a serving node holds: each projection's slot (the
//! served generation behind one pointer swap, rebuild progress, other
//! generations opened read-only), and the waits that make read-your-writes
//! work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::parse_consistency_tokens;

use crate::serving::{generation, ServingError};
use crate::worker::{Progress, Projection};
use crate::ProjectionStore;

/// One generation of one projection, as requests read it. Requests hold it
/// by `Arc`; a retired generation's directory goes when the last one lets
/// go of it.
#[derive(Debug)]
pub struct ProjectionHandle {
    pub name: &'static str,
    /// The blue/green generation.
    pub version: u32,
    pub store: ProjectionStore,
    pub progress: Arc<Progress>,
    /// Declared after `store`, so it is dropped after it: the files are
    /// removed once the store is closed.
    retired: RemoveOnDrop,
}

impl ProjectionHandle {
    pub fn new(name: &'static str, version: u32, store: ProjectionStore) -> Self {
        Self {
            name,
            version,
            store,
            progress: Arc::new(Progress::default()),
            retired: RemoveOnDrop::default(),
        }
    }

    /// Marks this generation retired (on disk, so a crash leaves it to the
    /// next start's clean-up) and removes its directory when the last
    /// holder drops it.
    pub fn retire(&self, dir: PathBuf) {
        if let Err(error) = generation::mark(&dir, generation::RETIRED) {
            tracing::warn!(dir = %dir.display(), %error, "cannot mark a retired generation");
        }
        let _ = self.retired.0.set(dir);
    }
}

/// A directory to remove when dropped, if one was set.
#[derive(Debug, Default)]
struct RemoveOnDrop(OnceLock<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            // Off the caller's thread: a request or a runtime worker drops it.
            std::thread::spawn(move || generation::remove_dir(&dir));
        }
    }
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
    /// The projection's code.
    pub projection: Arc<dyn Projection>,
    served: RwLock<Arc<ProjectionHandle>>,
    rebuilds: Mutex<Rebuilds>,
    /// Where the generations live, for queries of other generations.
    data_dir: PathBuf,
    /// Generations other than the served one, opened read-only on demand
    /// (frozen `--until` builds, kept previous ones).
    others: Mutex<BTreeMap<u32, Arc<ProjectionHandle>>>,
}

impl ProjectionSlot {
    pub fn new(projection: Arc<dyn Projection>, handle: ProjectionHandle, data_dir: &Path) -> Self {
        Self {
            name: handle.name,
            projection,
            served: RwLock::new(Arc::new(handle)),
            rebuilds: Mutex::new(Rebuilds::default()),
            data_dir: data_dir.to_path_buf(),
            others: Mutex::new(BTreeMap::new()),
        }
    }

    /// The generation a query reads: the served one (waiting for
    /// `consistentWith`), or another one by number, read-only.
    pub async fn read(
        &self,
        token: Option<&str>,
        generation: Option<i32>,
        timeout: Duration,
    ) -> Result<Arc<ProjectionHandle>, ServingError> {
        let Some(generation) = generation else {
            return self.wait_for(token, timeout).await;
        };
        let generation = u32::try_from(generation)
            .ok()
            .filter(|g| *g >= 1)
            .ok_or_else(|| ServingError::Invalid {
                field: "generation",
                reason: "must be 1 or more".into(),
            })?;
        if generation == self.served().version {
            return self.wait_for(token, timeout).await;
        }
        if token.is_some_and(|t| !t.is_empty()) {
            return Err(ServingError::Invalid {
                field: "consistentWith",
                reason: "applies to the served generation only; another generation does not follow the log".into(),
            });
        }
        self.other(generation)
    }

    /// The generations on disk that queries and switches may name.
    pub fn generations(&self) -> Vec<u32> {
        generation::complete_generations(&self.data_dir, self.name)
    }

    fn others(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, Arc<ProjectionHandle>>> {
        match self.others.lock() {
            Ok(others) => others,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Another generation, opened once and kept open.
    fn other(&self, generation: u32) -> Result<Arc<ProjectionHandle>, ServingError> {
        let mut others = self.others();
        if let Some(handle) = others.get(&generation) {
            return Ok(handle.clone());
        }
        let handle = self.open_other(generation)?;
        others.insert(generation, handle.clone());
        Ok(handle)
    }

    /// Another generation, to be served: taken out of the read-only ones.
    pub fn take_other(&self, generation: u32) -> Result<Arc<ProjectionHandle>, ServingError> {
        let mut others = self.others();
        match others.remove(&generation) {
            Some(handle) => Ok(handle),
            None => self.open_other(generation),
        }
    }

    /// A generation no longer served, kept readable.
    pub fn keep_other(&self, handle: Arc<ProjectionHandle>) {
        self.others().insert(handle.version, handle);
    }

    fn open_other(&self, generation: u32) -> Result<Arc<ProjectionHandle>, ServingError> {
        let dir = generation::generation_dir(&self.data_dir, self.name, generation);
        let marked = |marker| dir.join(marker).exists();
        if !dir.exists() || marked(generation::RETIRED) {
            return Err(ServingError::NotFound(format!(
                "there is no generation v{generation} of {}",
                self.name
            )));
        }
        if marked(generation::BUILDING) {
            return Err(ServingError::Unavailable(format!(
                "generation v{generation} of {} is being built",
                self.name
            )));
        }
        let store = ProjectionStore::open(&dir)?;
        Ok(Arc::new(ProjectionHandle::new(
            self.name, generation, store,
        )))
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
    ) -> Result<Arc<ProjectionHandle>, ServingError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(self.served());
        };
        let positions = parse_consistency_tokens(token).ok_or_else(|| ServingError::Invalid {
            field: "consistentWith",
            reason:
                "not a consistency token (expected partition:offset, several joined with commas)"
                    .into(),
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
                return Err(ServingError::Timeout {
                    projection: self.name,
                    token: token.to_owned(),
                    waited_ms: timeout.as_millis(),
                });
            }
        }
    }

    pub fn set_rebuilding(&self, status: Option<RebuildStatus>) {
        self.rebuilds().running = status;
    }

    pub fn finish_rebuild(&self, outcome: RebuildOutcome) {
        let mut rebuilds = self.rebuilds();
        rebuilds.running = None;
        rebuilds.last = Some(outcome);
    }
}

/// The read models of a node: one slot per projection of the registry.
#[derive(Debug, Clone)]
pub struct ReadModels {
    slots: Vec<Arc<ProjectionSlot>>,
}

impl ReadModels {
    pub fn new(slots: Vec<ProjectionSlot>) -> Self {
        Self {
            slots: slots.into_iter().map(Arc::new).collect(),
        }
    }

    /// Every slot, in the registry's order.
    pub fn slots(&self) -> &[Arc<ProjectionSlot>] {
        &self.slots
    }

    /// The served generation of every projection.
    pub fn all(&self) -> Vec<Arc<ProjectionHandle>> {
        self.slots.iter().map(|slot| slot.served()).collect()
    }

    pub fn slot(&self, name: &str) -> Option<&Arc<ProjectionSlot>> {
        self.slots.iter().find(|slot| slot.name == name)
    }

    /// The slot of `name`; an unknown name is invalid input on `field`.
    pub fn named(
        &self,
        name: &str,
        field: &'static str,
    ) -> Result<&Arc<ProjectionSlot>, ServingError> {
        self.slot(name)
            .ok_or_else(|| ServingError::unknown_projection(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_generation_goes_only_when_its_last_reader_lets_go() {
        let data = tempfile::tempdir().unwrap();
        let dir = generation::generation_dir(data.path(), "history", 1);
        std::fs::create_dir_all(&dir).unwrap();
        let store = ProjectionStore::open(&dir).unwrap();
        let served = Arc::new(ProjectionHandle::new("history", 1, store));
        let reader = served.clone();
        served.retire(dir.clone());
        assert!(
            dir.join(generation::RETIRED).exists(),
            "marked on disk first"
        );
        drop(served);
        assert!(dir.exists(), "a request still reads it");
        drop(reader);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while dir.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "not removed after its last reader"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
