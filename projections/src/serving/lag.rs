//! How far each projection is behind the log: the numbers behind the
//! `projections` query, `/metrics` and `/ready`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use commands::Topics;
use eventlog::{EventLog, LogConsumer, LogError, TopicPartition};

use crate::serving::ProjectionHandle;
use crate::worker::Progress;

#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// Events in the log not yet applied.
    pub events: u64,
    /// Age of the oldest event not yet applied (0 when caught up).
    pub seconds: f64,
    pub applied: u64,
    /// The same, per partition of the events topic.
    pub partitions: Vec<PartitionLag>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: u32,
    /// Next offset the projection will apply.
    pub position: u64,
    /// The end of the log's committed records: its readable end (Kafka: the
    /// last stable offset), or past it the end of a transaction this node
    /// committed whose markers are not written yet (`EventLog::committed_end`).
    pub end: u64,
    /// Events not yet applied (0 when only transaction markers remain).
    pub lag: u64,
}

/// One reusable consumer per projection that peeks at the first record past
/// each lagging position (for the lag in seconds), created on first need:
/// a scrape opens no consumer once they exist.
#[derive(Default)]
pub struct LagProbes {
    consumers: tokio::sync::Mutex<HashMap<String, Box<dyn LogConsumer>>>,
}

impl std::fmt::Debug for LagProbes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LagProbes").finish_non_exhaustive()
    }
}

/// How long a scrape waits for the records past lagging positions.
const PEEK: Duration = Duration::from_millis(300);

pub async fn lag(
    log: &dyn EventLog,
    topics: &Topics,
    projection: &ProjectionHandle,
    probes: &LagProbes,
) -> Result<Lag, LogError> {
    lag_of(log, topics, projection.name, &projection.progress, probes).await
}

/// How far any reader of the events topic with `progress` (a projection,
/// a sink) is behind; `name` keys its probe consumer.
pub async fn lag_of(
    log: &dyn EventLog,
    topics: &Topics,
    name: &str,
    progress: &Progress,
    probes: &LagProbes,
) -> Result<Lag, LogError> {
    let positions = progress.positions();
    let mut partitions = Vec::new();
    // Partitions behind records this node committed: certainly lagging.
    let mut behind_committed = std::collections::HashSet::new();
    for partition in 0..log.partition_count(&topics.events).await? {
        let tp = TopicPartition::new(&topics.events, partition);
        let (low, high) = log.watermarks(&tp).await?;
        let position = positions.get(&partition).copied().unwrap_or(low).max(low);
        let committed = log.committed_end(&tp).unwrap_or(0);
        if position < committed {
            behind_committed.insert(partition);
        }
        partitions.push(PartitionLag {
            partition,
            position,
            end: high.max(committed),
            lag: 0,
        });
    }
    // Past a position there may be only Kafka transaction markers, which no
    // consumer ever sees: a partition lags only when a record is there.
    let mut unseen: Vec<&PartitionLag> = partitions
        .iter()
        .filter(|p| p.position < p.end && !behind_committed.contains(&p.partition))
        .collect();
    let mut first_seen: HashMap<u32, i64> = HashMap::new();
    if !unseen.is_empty() {
        let mut consumers = probes.consumers.lock().await;
        let consumer = match consumers.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(log.consumer().await?),
        };
        let deadline = tokio::time::Instant::now() + PEEK;
        while !unseen.is_empty() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // Only the partitions not seen yet, from their positions again, so
            // one busy partition cannot hide the others.
            consumer
                .assign(
                    unseen
                        .iter()
                        .map(|p| (TopicPartition::new(&topics.events, p.partition), p.position))
                        .collect(),
                )
                .await?;
            for record in consumer.poll(unseen.len(), left).await? {
                first_seen
                    .entry(record.partition)
                    .or_insert(record.record.timestamp_ms);
            }
            unseen.retain(|p| !first_seen.contains_key(&p.partition));
        }
    }
    let mut events = 0;
    for partition in &mut partitions {
        if first_seen.contains_key(&partition.partition)
            || behind_committed.contains(&partition.partition)
        {
            partition.lag = partition.end - partition.position;
            events += partition.lag;
        }
    }
    let seconds = first_seen.values().min().map_or(0.0, |ms| {
        ((Utc::now().timestamp_millis() - ms).max(0) as f64) / 1000.0
    });
    Ok(Lag {
        events,
        seconds,
        applied: progress.applied.load(Ordering::Relaxed),
        partitions,
    })
}
