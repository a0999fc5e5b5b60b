//! How far each projection is behind the log: the numbers behind the
//! `projections` query, `/metrics` and `/ready`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use eventlog::topics::Topics;
use eventlog::{EventLog, LogError, TopicPartition};

use crate::read_models::ProjectionHandle;

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
    /// The log's high watermark.
    pub end: u64,
    /// Events not yet applied (0 when only transaction markers remain).
    pub lag: u64,
}

pub async fn lag(
    log: &dyn EventLog,
    topics: &Topics,
    projection: &ProjectionHandle,
) -> Result<Lag, LogError> {
    let positions = projection.progress.positions();
    let mut events = 0;
    let mut oldest_ms: Option<i64> = None;
    let mut partitions = Vec::new();
    for partition in 0..log.partition_count(&topics.events).await? {
        let tp = TopicPartition::new(&topics.events, partition);
        let (low, high) = log.watermarks(&tp).await?;
        let position = positions.get(&partition).copied().unwrap_or(low).max(low);
        let mut lag = PartitionLag {
            partition,
            position,
            end: high,
            lag: 0,
        };
        if position >= high {
            partitions.push(lag);
            continue;
        }
        // Past the position there may be only Kafka transaction markers,
        // which no consumer ever sees: count lag only when a record is there.
        let mut consumer = log.consumer().await?;
        consumer.assign(vec![(tp, position)]).await?;
        if let Some(first) = consumer.poll(1, Duration::from_millis(200)).await?.first() {
            lag.lag = high - position;
            events += lag.lag;
            let ts = first.record.timestamp_ms;
            oldest_ms = Some(oldest_ms.map_or(ts, |o: i64| o.min(ts)));
        }
        partitions.push(lag);
    }
    let seconds = oldest_ms.map_or(0.0, |ms| {
        ((Utc::now().timestamp_millis() - ms).max(0) as f64) / 1000.0
    });
    Ok(Lag {
        events,
        seconds,
        applied: projection.progress.applied.load(Ordering::Relaxed),
        partitions,
    })
}
