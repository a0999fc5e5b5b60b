//! Rebuilding a projection into a new generation: read the events topic
//! from the start (or up to a time) in batches, apply with the same code the
//! live worker uses, then make the new generation the served one.
//!
//! A rebuild writes a new generation (see `projections::generation`) and
//! never touches the served generation's files.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use eventlog::topics::Topics;
use eventlog::{EventLog, LogError, TopicPartition};
use projections::store::StoreError;
use projections::worker::{prepare_batch, Projection, BATCH};
use projections::ProjectionStore;

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
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
