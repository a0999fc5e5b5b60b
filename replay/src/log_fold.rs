//! Folding orders straight from the events topic.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::Topics;
use domain::{evolve, initial_state, OrderState, RecordedEvent};
use eventlog::partitioner::partition_for;
use eventlog::{EventLog, LogError, StoredRecord, TopicPartition};

/// How long a read waits for more records before taking the end as reached.
const END_WAIT: Duration = Duration::from_millis(500);

/// One event of an order as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub partition: u32,
    pub offset: u64,
    pub event: RecordedEvent,
}

/// An order folded from the log up to some time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldedOrder {
    pub state: OrderState,
    pub events: Vec<LoggedEvent>,
}

#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("record {partition}:{offset} cannot be read: {reason}")]
    Undecodable {
        partition: u32,
        offset: u64,
        reason: String,
    },
}

/// Reads a partition from its start to its end (as seen now), batch by batch.
pub async fn scan_partition(
    log: &dyn EventLog,
    tp: &TopicPartition,
    mut visit: impl FnMut(StoredRecord) -> Result<(), FoldError>,
) -> Result<(), FoldError> {
    let (low, high) = log.watermarks(tp).await?;
    let mut consumer = log.consumer().await?;
    consumer.assign(vec![(tp.clone(), low)]).await?;
    while consumer.position(tp).unwrap_or(low) < high {
        let records = consumer.poll(1000, END_WAIT).await?;
        if records.is_empty() {
            break; // only transaction markers are left
        }
        for record in records {
            visit(record)?;
        }
    }
    Ok(())
}

fn decode(record: &StoredRecord) -> Result<RecordedEvent, FoldError> {
    let undecodable = |reason: String| FoldError::Undecodable {
        partition: record.partition,
        offset: record.offset,
        reason,
    };
    let payload = record
        .record
        .value
        .as_deref()
        .ok_or_else(|| undecodable("a tombstone".into()))?;
    RecordedEvent::decode(&record.record.headers, payload).map_err(|e| undecodable(e.to_string()))
}

/// The order's events with time at or before `at`, folded, read from the
/// order's partition of the events topic. Records that are not events of
/// this order are skipped, and so are repeats of events already folded (a
/// republished event has a sequence the state has passed); an undecodable
/// record of this order is an error.
pub async fn fold_order(
    log: &dyn EventLog,
    topics: &Topics,
    order_id: &str,
    at: DateTime<Utc>,
) -> Result<FoldedOrder, FoldError> {
    let partitions = log.partition_count(&topics.events).await?;
    let tp = TopicPartition::new(
        &topics.events,
        partition_for(order_id.as_bytes(), partitions),
    );
    let mut state = initial_state();
    let mut events = Vec::new();
    scan_partition(log, &tp, |record| {
        if record.record.key != order_id.as_bytes() {
            return Ok(());
        }
        let event = decode(&record)?;
        // An event published again (same order, a sequence already folded)
        // is a repeat, as the projections treat it: fold it once.
        if event.envelope.time <= at && event.envelope.sequence > state.version {
            let recorded = event.to_recorded().map_err(|e| FoldError::Undecodable {
                partition: record.partition,
                offset: record.offset,
                reason: e.to_string(),
            })?;
            state = evolve(std::mem::take(&mut state), &recorded);
            events.push(LoggedEvent {
                partition: record.partition,
                offset: record.offset,
                event,
            });
        }
        Ok(())
    })
    .await?;
    Ok(FoldedOrder { state, events })
}

/// Every order folded from the whole events topic (records that do not
/// decode are counted, not folded).
pub async fn fold_all(
    log: &dyn EventLog,
    topics: &Topics,
) -> Result<(BTreeMap<String, OrderState>, u64), FoldError> {
    let mut states: BTreeMap<String, OrderState> = BTreeMap::new();
    let mut undecodable = 0;
    for partition in 0..log.partition_count(&topics.events).await? {
        let tp = TopicPartition::new(&topics.events, partition);
        scan_partition(log, &tp, |record| {
            let Ok(event) = decode(&record) else {
                undecodable += 1;
                return Ok(());
            };
            let Ok(recorded) = event.to_recorded() else {
                undecodable += 1;
                return Ok(());
            };
            let state = states
                .remove(&event.envelope.subject)
                .unwrap_or_else(initial_state);
            // A repeat of an event already folded is folded once.
            let state = if recorded.sequence > state.version {
                evolve(state, &recorded)
            } else {
                state
            };
            states.insert(event.envelope.subject, state);
            Ok(())
        })
        .await?;
    }
    Ok((states, undecodable))
}
