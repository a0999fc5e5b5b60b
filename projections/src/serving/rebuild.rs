//! Rebuilding a projection into a new generation: read the events topic
//! from the start (or up to a time) in batches, apply with the same code the
//! live worker uses, then make the new generation the served one.
//!
//! A rebuild writes a new generation (see `serving::generation`) and
//! never touches the served generation's files.

use std::time::{Duration, Instant};

use crate::serving::generation;
use crate::serving::ServingError;
use crate::store::StoreError;
use crate::worker::{prepare_batch, Projection, BATCH};
use crate::ProjectionStore;
use chrono::{DateTime, Utc};
use commands::Topics;
use eventlog::{EventLog, LogError, TopicPartition};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Serving(#[from] ServingError),
    #[error("stopped before the rebuild finished")]
    Stopped,
}

/// How far a rebuild reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The log's end when the rebuild starts.
    LogEnd,
    /// Every event with time at or before this one (a frozen generation).
    Time(DateTime<Utc>),
    /// Exactly these next offsets per partition (to compare with a store
    /// whose checkpoints they are).
    Positions(std::collections::BTreeMap<u32, u64>),
}

/// How far a rebuild has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub applied: u64,
    pub total: u64,
    pub events_per_second: f64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebuilt {
    pub events: u64,
    pub elapsed: Duration,
}

impl Rebuilt {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Applies the events topic to a store, from the store's own checkpoints
/// (the start of the log for a fresh one) up to `target`, reporting progress
/// after every batch. Stops early, with `RebuildError::Stopped`, when
/// `shutdown` resolves.
pub async fn rebuild_into(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    store: &ProjectionStore,
    target: Target,
    shutdown: impl std::future::Future<Output = ()>,
    mut report: impl FnMut(Progress),
) -> Result<Rebuilt, RebuildError> {
    let started = Instant::now();
    let mut assignment = Vec::new();
    let mut ends = std::collections::BTreeMap::new();
    let mut total = 0;
    let until = match &target {
        Target::Time(at) => Some(*at),
        _ => None,
    };
    for partition in 0..log.partition_count(&topics.events).await? {
        let tp = TopicPartition::new(&topics.events, partition);
        let (low, high) = log.watermarks(&tp).await?;
        let start = store.checkpoint(partition)?.unwrap_or(low).max(low);
        let end = match &target {
            Target::Time(at) => log
                .offset_for_time(&tp, at.timestamp_millis() + 1)
                .await?
                .unwrap_or(high),
            Target::LogEnd => high,
            Target::Positions(positions) => positions.get(&partition).copied().unwrap_or(start),
        };
        total += end.saturating_sub(start);
        ends.insert(partition, end);
        if start < end {
            assignment.push((tp, start));
        }
    }
    if assignment.is_empty() {
        return Ok(Rebuilt {
            events: 0,
            elapsed: started.elapsed(),
        });
    }
    let assigned: Vec<u32> = assignment.iter().map(|(tp, _)| tp.partition).collect();
    let mut consumer = log.consumer().await?;
    consumer.assign(assignment).await?;
    let mut applied = 0;
    let done = |partition: u32, consumer: &dyn eventlog::LogConsumer| {
        consumer
            .position(&TopicPartition::new(&topics.events, partition))
            .unwrap_or(0)
            >= ends[&partition]
    };
    tokio::pin!(shutdown);
    loop {
        if assigned.iter().all(|p| done(*p, consumer.as_ref())) {
            break;
        }
        let mut records = tokio::select! {
            _ = &mut shutdown => return Err(RebuildError::Stopped),
            polled = consumer.poll(BATCH, Duration::from_millis(500)) => polled?,
        };
        if records.is_empty() {
            break; // only transaction markers are left below the ends
        }
        records.retain(|r| r.offset < ends[&r.partition]);
        if let Some(at) = until {
            // offsets_for_times has millisecond precision; event time has microseconds.
            records.retain(|r| event_time(r).is_none_or(|t| t <= at));
        }
        if records.is_empty() {
            continue;
        }
        applied += records.len() as u64;
        let guard = store.lock_writes().await;
        let prepared = prepare_batch(projection, store, records)?;
        store.commit(prepared.batch)?;
        drop(guard);
        let elapsed = started.elapsed().as_secs_f64().max(1e-9);
        report(Progress {
            applied,
            total,
            events_per_second: applied as f64 / elapsed,
        });
        // A rebuild reads as fast as the log hands records over, and a
        // consumer with records queued never makes it wait: give the
        // runtime's threads back after each batch, or rebuilds running
        // together starve the node's write path and API.
        tokio::task::yield_now().await;
    }
    if until.is_none() {
        // Past the transaction markers the consumer stepped over, as the
        // worker's checkpoints are, up to the target (not for a build until
        // a time: a record after that time below its end was skipped).
        let mut batch = crate::store::StoreBatch::default();
        let mut moved = false;
        for partition in &assigned {
            let tp = TopicPartition::new(&topics.events, *partition);
            let reached = consumer.position(&tp).unwrap_or(0).min(ends[partition]);
            if store.checkpoint(*partition)?.is_none_or(|at| reached > at) {
                batch.set_checkpoint(*partition, reached);
                moved = true;
            }
        }
        if moved {
            let _guard = store.lock_writes().await;
            store.commit(batch)?;
        }
    }
    store.flush().await?;
    Ok(Rebuilt {
        events: applied,
        elapsed: started.elapsed(),
    })
}

fn event_time(record: &eventlog::StoredRecord) -> Option<DateTime<Utc>> {
    let text = std::str::from_utf8(record.record.header(domain::envelope::header::TIME)?).ok()?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// What an offline rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct OfflineRebuild {
    pub version: u32,
    /// The generation served before (still served for a frozen build).
    pub served_before: u32,
    pub rebuilt: Rebuilt,
    /// Where the frozen generation is, for `until` builds.
    pub frozen_in: Option<std::path::PathBuf>,
    /// Where the previous generation was kept, with `keep_previous`.
    pub kept: Option<std::path::PathBuf>,
}

/// The generation protocol without a server: reserve the next generation,
/// build it from the log, complete it, then (unless frozen `until` a time)
/// switch to it and remove the previous one (or keep it). A failure or a
/// stop leaves nothing half-built; the served generation is untouched.
#[allow(clippy::too_many_arguments)]
pub async fn rebuild_offline(
    projection: &dyn Projection,
    log: &dyn EventLog,
    topics: &Topics,
    data_dir: &std::path::Path,
    until: Option<DateTime<Utc>>,
    keep_previous: bool,
    shutdown: impl std::future::Future<Output = ()>,
    report: impl FnMut(Progress),
) -> Result<OfflineRebuild, RebuildError> {
    let name = projection.name();
    let served_before = generation::current_generation(data_dir, name);
    let reserved = generation::reserve(data_dir, name)?;
    let target = until.map_or(Target::LogEnd, Target::Time);
    let built = rebuild_into(
        projection,
        log,
        topics,
        &reserved.store,
        target,
        shutdown,
        report,
    )
    .await;
    let generation::Reserved {
        version,
        dir,
        store,
    } = reserved;
    drop(store);
    let rebuilt = match built {
        Ok(rebuilt) => rebuilt,
        Err(error) => {
            generation::remove_dir(&dir);
            return Err(error);
        }
    };
    generation::complete(&dir)?;
    let mut outcome = OfflineRebuild {
        version,
        served_before,
        rebuilt,
        frozen_in: None,
        kept: None,
    };
    if until.is_some() {
        outcome.frozen_in = Some(dir);
        return Ok(outcome);
    }
    generation::switch_generation(data_dir, name, version)?;
    let previous = generation::generation_dir(data_dir, name, served_before);
    if previous.exists() {
        if keep_previous {
            outcome.kept = Some(previous);
        } else {
            std::fs::remove_dir_all(&previous)?;
        }
    }
    Ok(outcome)
}
