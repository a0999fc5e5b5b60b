//! Restoring the state store from the compacted snapshots topic, and
//! learning the last event time of a partition before writing to it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::envelope::header;

use eventlog::{EventLog, TopicPartition};

use crate::messages::Snapshot;
use crate::processor::StateStore;
use crate::topics::Topics;
use crate::CommandsError;

const RESTORE_BATCH: usize = 1000;
/// How far back from the end the last event time is looked for.
const TAIL: u64 = 64;

/// Replaces the stored states of `partition` with the latest snapshots and
/// marks them as reflecting command offset `committed`.
pub(crate) async fn partition_from_snapshots(
    log: &dyn EventLog,
    topics: &Topics,
    store: &StateStore,
    partition: u32,
    committed: u64,
) -> Result<(), CommandsError> {
    let tp = TopicPartition::new(&topics.snapshots, partition);
    let (low, high) = log.watermarks(&tp).await?;
    tracing::info!(
        partition,
        low,
        high,
        "restoring aggregate state from the snapshots topic"
    );
    store.save(partition, None, &[])?;
    let mut consumer = log.consumer().await?;
    consumer.assign(vec![(tp.clone(), low)]).await?;
    let mut position = low;
    while position < high {
        let records = consumer.poll(RESTORE_BATCH, Duration::from_secs(2)).await?;
        if records.is_empty() {
            // Kafka: what is left below the high watermark is transaction
            // markers or aborted records, which read_committed never shows.
            break;
        }
        if let Some(last) = records.last() {
            position = last.offset + 1;
        }
        // Checking and storing a batch is CPU work: on a blocking thread, so
        // partitions restored at once use every core. The stored bytes are
        // the record's own (checked by decoding), not encoded again.
        let batch_store = store.clone();
        tokio::task::spawn_blocking(move || {
            let mut snapshots = Vec::with_capacity(records.len());
            for stored in records {
                let order_id = String::from_utf8_lossy(&stored.record.key).into_owned();
                if let Some(value) = stored.record.value {
                    serde_json::from_slice::<Snapshot>(&value).map_err(|e| {
                        CommandsError::corrupt(format!("snapshot of {order_id}: {e}"))
                    })?;
                    snapshots.push((order_id, value));
                }
            }
            batch_store.save_encoded(&snapshots)
        })
        .await
        .map_err(|e| CommandsError::corrupt(format!("restoring partition {partition}: {e}")))??;
    }
    store.save(partition, Some(committed), &[])
}

/// The time of the last event in `partition` of the events topic.
pub(crate) async fn last_event_time(
    log: &dyn EventLog,
    topics: &Topics,
    partition: u32,
) -> Result<Option<DateTime<Utc>>, CommandsError> {
    let tp = TopicPartition::new(&topics.events, partition);
    let (low, high) = log.watermarks(&tp).await?;
    if high == low {
        return Ok(None);
    }
    // The last offsets may be Kafka transaction markers, which no consumer
    // sees: read a short tail and keep its last record.
    let mut consumer = log.consumer().await?;
    consumer
        .assign(vec![(tp.clone(), high.saturating_sub(TAIL).max(low))])
        .await?;
    let mut last = None;
    while consumer.position(&tp).unwrap_or(0) < high {
        let records = consumer.poll(TAIL as usize, Duration::from_secs(1)).await?;
        match records.into_iter().last() {
            Some(record) => last = Some(record),
            None => break,
        }
    }
    let Some(record) = last else {
        return Ok(None);
    };
    let time = record
        .record
        .header(header::TIME)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    // A record without a readable time (not ours) falls back to its timestamp.
    Ok(time.or_else(|| DateTime::from_timestamp_millis(record.record.timestamp_ms)))
}
