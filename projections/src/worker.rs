//! The projection worker loop: read events (committed only), decode, skip
//! duplicates by per-order sequence, apply in batches, and write rows,
//! sequences, dead letters and checkpoints in one atomic batch. Poison
//! events are dead-lettered and park their order: later events of that
//! order are parked behind them while every other order keeps flowing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::Topics;
use domain::RecordedEvent;
use eventlog::{EventLog, LogError, StoredRecord, TopicPartition};
use tokio::sync::watch;

use crate::store::{DeadLetter, ProjectionStore, RowKey, StoreBatch, StoreError};

/// Most events applied in one batch.
pub const BATCH: usize = 1000;
/// Shortest time between two progress reports of a worker's consumer group.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);

/// One row change: the row's new value, valid from the event's time
/// unless it says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: RowKey,
    pub value: Vec<u8>,
    pub valid_from: ValidFrom,
}

/// From when a changed row's value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidFrom {
    /// The applied event's time: the usual case.
    EventTime,
    /// A given time: a row whose current version must stay its latest one
    /// when an event's time is earlier than the row's latest version.
    Time(DateTime<Utc>),
    /// No value: marks the row as one whose earlier versions are not exact
    /// for every time (`ProjectionStore::row_as_of_exact`); the value is ignored.
    Mark,
}

impl Change {
    /// The row's new value, valid from the event's time.
    pub fn new(key: RowKey, value: Vec<u8>) -> Self {
        Self {
            key,
            value,
            valid_from: ValidFrom::EventTime,
        }
    }

    /// The row's new value, valid from `time`.
    pub fn at(key: RowKey, time: DateTime<Utc>, value: Vec<u8>) -> Self {
        Self {
            key,
            value,
            valid_from: ValidFrom::Time(time),
        }
    }

    /// Marks `key` (see `ValidFrom::Mark`).
    pub fn mark(key: RowKey) -> Self {
        Self {
            key,
            value: Vec::new(),
            valid_from: ValidFrom::Mark,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event breaks a rule of this projection (e.g. an order never placed).
    #[error("{0}")]
    Rule(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads the current value of a row, including this batch's earlier changes.
pub type ReadRow<'a> = dyn Fn(&RowKey) -> Result<Option<Vec<u8>>, StoreError> + 'a;

pub trait Projection: Send + Sync + std::fmt::Debug + 'static {
    fn name(&self) -> &'static str;

    /// The row changes one event makes. Pure apart from reading rows.
    fn apply(
        &self,
        read: &ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<Change>, ApplyError>;
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a worker has done, for lag, readiness and read-your-writes.
#[derive(Debug)]
pub struct Progress {
    pub applied: AtomicU64,
    /// Next offset to apply per partition of the events topic.
    positions: watch::Sender<BTreeMap<u32, u64>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            applied: AtomicU64::new(0),
            positions: watch::channel(BTreeMap::new()).0,
        }
    }
}

impl Progress {
    pub fn positions(&self) -> BTreeMap<u32, u64> {
        self.positions.borrow().clone()
    }

    /// Records that `partition` is done up to `next`.
    pub fn set_position(&self, partition: u32, next: u64) {
        self.positions.send_modify(|positions| {
            positions.insert(partition, next);
        });
    }

    /// Changes whenever the positions move.
    pub fn watch(&self) -> watch::Receiver<BTreeMap<u32, u64>> {
        self.positions.subscribe()
    }

    /// Waits until the event at (partition, offset) has been applied, or the timeout passes.
    pub async fn wait_past(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        let mut rx = self.positions.subscribe();
        let reached = |positions: &BTreeMap<u32, u64>| {
            positions.get(&partition).is_some_and(|next| *next > offset)
        };
        tokio::time::timeout(timeout, rx.wait_for(reached))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Runs `projection` over the events topic until `shutdown`. After a
/// transient log error it starts over from its own checkpoints.
pub async fn run(
    projection: Arc<dyn Projection>,
    log: Arc<dyn EventLog>,
    topics: Topics,
    store: ProjectionStore,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    eventlog::retry_transient(
        projection.name(),
        eventlog::shared_shutdown(shutdown),
        |shutdown| {
            let (projection, log, topics, store, progress) = (
                projection.clone(),
                log.clone(),
                topics.clone(),
                store.clone(),
                progress.clone(),
            );
            run_once(projection, log, topics, store, progress, shutdown)
        },
    )
    .await
}

/// Log errors the log calls transient start the worker over; store errors
/// never do (they stop the worker with their own error).
impl eventlog::Transient for WorkerError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Log(error) => error.is_transient(),
            Self::Store(_) => false,
        }
    }
}

async fn run_once(
    projection: Arc<dyn Projection>,
    log: Arc<dyn EventLog>,
    topics: Topics,
    store: ProjectionStore,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let partitions = log.partition_count(&topics.events).await?;
    let dlq_topic = topics.dlq(projection.name());
    log.create_topic(&eventlog::TopicSpec {
        name: dlq_topic.clone(),
        partitions,
        compacted: false,
        retention_ms: None,
    })
    .await?;
    let mut assignment = Vec::new();
    let mut positions = BTreeMap::new();
    for p in 0..partitions {
        let tp = TopicPartition::new(&topics.events, p);
        let start = match store.checkpoint(p)? {
            Some(next) => next,
            None => log.watermarks(&tp).await?.0,
        };
        positions.insert(p, start);
        assignment.push((tp, start));
    }
    progress.positions.send_replace(positions);
    let mut consumer = log.consumer().await?;
    consumer.follow();
    consumer.assign(assignment).await?;
    tokio::pin!(shutdown);
    let group = topics.projection_group(projection.name());
    // Kafka tooling reads lag from the group's committed offsets: they
    // follow the positions after every applied batch and when idle, on
    // their own task, so a slow commit never holds the batches back.
    let committer = GroupCommitter::spawn(log.clone(), topics.clone(), group, &progress);
    loop {
        let records = tokio::select! {
            _ = &mut shutdown => break,
            polled = consumer.poll(BATCH, Duration::from_millis(250)) => polled?,
        };
        // The consumer's positions, past records and past transaction
        // markers and aborted records, which it reads but never returns.
        let known = progress.positions();
        let moved: BTreeMap<u32, u64> = (0..partitions)
            .filter_map(|p| {
                let position = consumer.position(&TopicPartition::new(&topics.events, p))?;
                known
                    .get(&p)
                    .is_none_or(|at| position > *at)
                    .then_some((p, position))
            })
            .collect();
        if records.is_empty() && moved.is_empty() {
            continue; // nothing read, no position moved
        }
        let count = records.len() as u64;
        let guard = store.lock_writes().await;
        let mut prepared = prepare_batch(projection.as_ref(), &store, records)?;
        for (partition, next) in moved {
            if prepared
                .checkpoints
                .get(&partition)
                .is_none_or(|at| next > *at)
            {
                prepared.batch.set_checkpoint(partition, next);
                prepared.checkpoints.insert(partition, next);
            }
        }
        // Dead letters reach the DLQ topic before the batch commits: after a
        // crash in between they are sent again (at least once), never lost.
        if !prepared.dead_letters.is_empty() {
            log.append(dlq_records(
                &dlq_topic,
                projection.name(),
                &prepared.dead_letters,
            ))
            .await?;
        }
        // Between the DLQ append and the commit (`orderstore chaos`).
        eventlog::failpoint::pass("projection-batch", projection.name());
        store.commit(prepared.batch)?;
        drop(guard);
        let checkpoints = prepared.checkpoints;
        progress.applied.fetch_add(count, Ordering::Relaxed);
        progress
            .positions
            .send_modify(|positions| positions.extend(checkpoints));
        // Catching up, records are always there: let the node's other
        // tasks run between batches.
        tokio::task::yield_now().await;
    }
    store.flush().await?;
    committer.finish(&progress).await
}

/// Reads one record of the events topic as an event; the error says why it
/// cannot be (what a dead letter, a parked sink event or an export records).
pub fn decode_event(
    headers: &[domain::Header],
    payload: Option<&[u8]>,
) -> Result<RecordedEvent, String> {
    let payload = payload.ok_or_else(|| "a tombstone on the events topic".to_owned())?;
    RecordedEvent::decode(headers, payload).map_err(|e| e.to_string())
}

/// Commits a worker's positions as its consumer group's offsets whenever
/// they move; a failed commit is retried with the next move or after a
/// second (the store's checkpoints, not these offsets, are what the worker
/// resumes from).
pub(crate) struct GroupCommitter {
    log: Arc<dyn EventLog>,
    topics: Topics,
    group: String,
    task: tokio::task::JoinHandle<()>,
}

impl GroupCommitter {
    pub(crate) fn spawn(
        log: Arc<dyn EventLog>,
        topics: Topics,
        group: String,
        progress: &Progress,
    ) -> Self {
        let mut moved = progress.watch();
        let (task_log, task_topics, task_group) = (log.clone(), topics.clone(), group.clone());
        let task = tokio::spawn(async move {
            let mut committed = BTreeMap::new();
            loop {
                let positions = moved.borrow_and_update().clone();
                if positions != committed {
                    let offsets = group_offsets(&task_topics, &task_group, &positions);
                    match task_log.commit_offsets(offsets).await {
                        Ok(()) => {
                            committed = positions;
                            // At most one progress report per interval: it
                            // is for tools, and a busy worker moves on every
                            // batch (each report is a write on Kafka).
                            tokio::time::sleep(COMMIT_INTERVAL).await;
                        }
                        Err(error) => {
                            tracing::warn!(group = task_group, %error, "could not commit the group's offsets; retrying");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    }
                }
                if moved.changed().await.is_err() {
                    return; // the worker's progress is gone
                }
            }
        });
        Self {
            log,
            topics,
            group,
            task,
        }
    }

    /// Stops the task and commits the last positions once more, waiting for it.
    pub(crate) async fn finish(self, progress: &Progress) -> Result<(), WorkerError> {
        self.task.abort();
        let offsets = group_offsets(&self.topics, &self.group, &progress.positions());
        self.log.commit_offsets(offsets).await?;
        Ok(())
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.task.abort(); // the worker stopped on an error
    }
}

fn group_offsets(
    topics: &Topics,
    group: &str,
    positions: &BTreeMap<u32, u64>,
) -> Vec<eventlog::GroupOffset> {
    positions
        .iter()
        .map(|(partition, next_offset)| eventlog::GroupOffset {
            group: group.to_owned(),
            partition: TopicPartition::new(&topics.events, *partition),
            next_offset: *next_offset,
        })
        .collect()
}

/// One batch ready to commit: the store changes, the new checkpoints and
/// the dead letters among them (which the worker also sends to the DLQ topic).
#[derive(Debug)]
pub struct PreparedBatch {
    pub batch: StoreBatch,
    pub checkpoints: BTreeMap<u32, u64>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Applies one batch to the store; returns the new checkpoints.
pub fn apply_batch(
    projection: &dyn Projection,
    store: &ProjectionStore,
    records: Vec<StoredRecord>,
) -> Result<BTreeMap<u32, u64>, StoreError> {
    let prepared = prepare_batch(projection, store, records)?;
    store.commit(prepared.batch)?;
    Ok(prepared.checkpoints)
}

/// Decides the changes of one batch without writing them.
pub fn prepare_batch(
    projection: &dyn Projection,
    store: &ProjectionStore,
    records: Vec<StoredRecord>,
) -> Result<PreparedBatch, StoreError> {
    let mut pending = Pending::new(store);
    for stored in records {
        pending
            .checkpoints
            .insert(stored.partition, stored.offset + 1);
        pending.apply(projection, &stored)?;
    }
    let Pending {
        mut batch,
        checkpoints,
        dead_letters,
        ..
    } = pending;
    for (partition, next) in &checkpoints {
        batch.set_checkpoint(*partition, *next);
    }
    Ok(PreparedBatch {
        batch,
        checkpoints,
        dead_letters,
    })
}

/// The state of a batch being prepared: its writes, and what later events
/// of the same batch must see (rows, sequences, parked orders).
pub(crate) struct Pending<'a> {
    store: &'a ProjectionStore,
    /// An order being retried from the DLQ: its stored parking is ignored.
    pub(crate) retrying: Option<String>,
    pub(crate) batch: StoreBatch,
    dead_letters: Vec<DeadLetter>,
    overlay: HashMap<RowKey, Vec<u8>>,
    sequences: HashMap<String, u64>,
    pub(crate) parked: HashSet<String>,
    /// Orders already found not parked in the store during this batch.
    not_parked: HashSet<String>,
    checkpoints: BTreeMap<u32, u64>,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(store: &'a ProjectionStore) -> Self {
        Self {
            store,
            retrying: None,
            batch: StoreBatch::default(),
            dead_letters: Vec::new(),
            overlay: HashMap::new(),
            sequences: HashMap::new(),
            parked: HashSet::new(),
            not_parked: HashSet::new(),
            checkpoints: BTreeMap::new(),
        }
    }

    /// One record: decode, skip duplicates, apply, or dead-letter.
    pub(crate) fn apply(
        &mut self,
        projection: &dyn Projection,
        stored: &StoredRecord,
    ) -> Result<(), StoreError> {
        let decoded = decode_event(&stored.record.headers, stored.record.value.as_deref());
        let event = match decoded {
            Ok(event) => event,
            Err(error) => {
                let key = String::from_utf8(stored.record.key.clone()).ok();
                return self.dead_letter(stored, key, error);
            }
        };
        let order_id = event.envelope.subject.clone();
        let retrying = self.retrying.as_deref() == Some(order_id.as_str());
        if self.parked.contains(&order_id) || (!retrying && self.parked_in_store(&order_id)?) {
            let error = "parked behind an earlier dead letter of this order".to_owned();
            return self.dead_letter(stored, Some(order_id), error);
        }
        let last = match self.sequences.get(&order_id) {
            Some(seq) => Some(*seq),
            None => self.store.sequence(&order_id)?,
        };
        if last.is_some_and(|last| event.envelope.sequence <= last) {
            return Ok(()); // a duplicate: already applied
        }
        let (overlay, store) = (&self.overlay, self.store);
        let read = |key: &RowKey| match overlay.get(key) {
            Some(value) => Ok(Some(value.clone())),
            None => store.row_as_of(key, DateTime::<Utc>::MAX_UTC),
        };
        match projection.apply(&read, &event, stored.partition, stored.offset) {
            Ok(changes) => {
                for change in changes {
                    let valid_from = match change.valid_from {
                        ValidFrom::EventTime => event.envelope.time,
                        ValidFrom::Time(time) => time,
                        ValidFrom::Mark => {
                            self.batch.mark_row(&change.key);
                            continue;
                        }
                    };
                    self.batch.put_row(&change.key, valid_from, &change.value);
                    self.overlay.insert(change.key, change.value);
                }
                self.sequences
                    .insert(order_id.clone(), event.envelope.sequence);
                self.batch.set_sequence(&order_id, event.envelope.sequence);
                Ok(())
            }
            Err(ApplyError::Store(error)) => Err(error),
            Err(ApplyError::Rule(error)) => {
                let trace_id = event.envelope.trace.as_ref().map_or("", |t| t.trace_id());
                tracing::warn!(projection = projection.name(), order_id, event_id = %event.envelope.id, correlation_id = %event.envelope.correlation_id, trace_id, %error, "dead-lettering an event");
                self.dead_letter(stored, Some(order_id), error)
            }
        }
    }

    /// Whether the store has the order parked (looked up once per batch).
    fn parked_in_store(&mut self, order_id: &str) -> Result<bool, StoreError> {
        if self.not_parked.contains(order_id) {
            return Ok(false);
        }
        let parked = self.store.is_parked(order_id)?;
        if !parked {
            self.not_parked.insert(order_id.to_owned());
        }
        Ok(parked)
    }

    /// Parks the record (and its order, when known) with its error.
    fn dead_letter(
        &mut self,
        stored: &StoredRecord,
        order_id: Option<String>,
        error: String,
    ) -> Result<(), StoreError> {
        let event_type = stored
            .record
            .header("ce_type")
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned);
        if let Some(order_id) = &order_id {
            self.batch.park(order_id);
            self.parked.insert(order_id.clone());
        }
        let letter = DeadLetter {
            partition: stored.partition,
            offset: stored.offset,
            order_id,
            event_type,
            error,
            received_at: Utc::now(),
            headers: stored.record.headers.clone(),
            payload: stored.record.value.clone(),
        };
        self.batch.dead_letter(&letter)?;
        self.dead_letters.push(letter);
        Ok(())
    }
}

/// DLQ records: the original key, payload and headers, plus where the event
/// came from and why it was parked, in the partition it came from.
fn dlq_records(
    topic: &str,
    projection: &str,
    letters: &[DeadLetter],
) -> Vec<eventlog::OutgoingRecord> {
    letters
        .iter()
        .map(|letter| {
            let mut headers = letter.headers.clone();
            headers.push(domain::Header::new("dlq_projection", projection));
            headers.push(domain::Header::new("dlq_error", letter.error.as_str()));
            headers.push(domain::Header::new(
                "dlq_source_partition",
                letter.partition.to_string(),
            ));
            headers.push(domain::Header::new(
                "dlq_source_offset",
                letter.offset.to_string(),
            ));
            eventlog::OutgoingRecord {
                topic: topic.to_owned(),
                partition: Some(letter.partition),
                record: eventlog::Record {
                    key: letter.order_id.clone().unwrap_or_default().into_bytes(),
                    value: letter.payload.clone(),
                    headers,
                    timestamp_ms: letter.received_at.timestamp_millis(),
                },
            }
        })
        .collect()
}
