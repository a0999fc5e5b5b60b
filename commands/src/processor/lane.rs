//! A lane: the single writer of one commands partition (docs/adr/0007).
//!
//! Each lane has a transactional identity of its own (`EventLog::lane`),
//! so the lanes of a node commit concurrently, and the next owner of a
//! partition fences exactly that partition's previous writer. A lane
//! decides what has queued for it while its previous transaction ran, up
//! to the batch limit, and commits it in one transaction (natural group
//! commit: a batch closes when the lane is free, never on a timer).
//! Everything a lane writes (events, snapshots, replies, the consumed
//! offset) lies in its own partition of each topic, so lanes never
//! contend for a partition, and per-order order is the partition's order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use eventlog::{EventLog, LogConsumer, StoredRecord};

use crate::processor::{restore, restore_partition, Clock, ProcessorStatus, StateStore};
use crate::topics::Topics;
use crate::CommandsError;

/// Batches queued for one lane before the dispatcher waits for it.
const QUEUED_BATCHES: usize = 16;

/// The working state of one lane between batches.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) partition: u32,
    /// This lane's handle on the log: its own transactional producer.
    pub(crate) log: Arc<dyn EventLog>,
    pub(crate) store: StateStore,
    clock: Arc<dyn Clock>,
    /// Time of the last event written to this lane's events partition.
    last_time: Option<DateTime<Utc>>,
    /// Where this lane's next event will land in its events partition, when
    /// known (after a commit of events; not after an abort or on adoption):
    /// the batch then sends replies and snapshots beside its events instead
    /// of one round trip after them (`batch.rs`).
    pub(crate) next_event_offset: Option<u64>,
    /// Reads back the events of an already applied command; opened on
    /// first use.
    repeat_reader: Option<Box<dyn LogConsumer>>,
    pub(crate) topics: Topics,
    max_batch: usize,
    /// The node's processor status: where committed replies meet this
    /// node's waiting commands.
    pub(crate) status: Arc<ProcessorStatus>,
}

/// The dispatcher's side of a running lane.
#[derive(Debug)]
pub(crate) struct LaneHandle {
    batches: mpsc::Sender<Vec<StoredRecord>>,
    /// Set when the partition leaves this node: the batch in hand
    /// finishes, queued ones are dropped (the next owner reads them again
    /// from the committed offset).
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Lane {
    /// Claims the lane of `partition` (fencing its previous writer, here or
    /// on another node, and aborting its open transaction), then brings
    /// the partition's state up to the group's committed offset and learns
    /// its last event time. Only then does it read any state it writes on.
    pub(crate) async fn adopt(
        log: &Arc<dyn EventLog>,
        topics: &Topics,
        store: &StateStore,
        clock: &Arc<dyn Clock>,
        partition: u32,
        max_batch: usize,
        status: &Arc<ProcessorStatus>,
    ) -> Result<Self, CommandsError> {
        let lane_log = log.lane(&format!("p{partition}"));
        lane_log.init_transactions().await?;
        let committed = restore_partition(log.as_ref(), topics, store, partition).await?;
        let last_time = restore::last_event_time(log.as_ref(), topics, partition).await?;
        tracing::info!(partition, committed, "adopted a commands partition");
        Ok(Self {
            partition,
            log: lane_log,
            store: store.clone(),
            clock: clock.clone(),
            last_time,
            next_event_offset: None,
            repeat_reader: None,
            topics: topics.clone(),
            max_batch: max_batch.max(1),
            status: status.clone(),
        })
    }

    /// Runs the lane on its own task. A failed batch is reported on
    /// `failed` and ends the lane: nothing it decided was acknowledged.
    pub(crate) fn start(self, failed: mpsc::UnboundedSender<(u32, CommandsError)>) -> LaneHandle {
        let (batches, queue) = mpsc::channel(QUEUED_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(self.run(queue, stop.clone(), failed));
        LaneHandle {
            batches,
            stop,
            task,
        }
    }

    async fn run(
        mut self,
        mut queue: mpsc::Receiver<Vec<StoredRecord>>,
        stop: Arc<AtomicBool>,
        failed: mpsc::UnboundedSender<(u32, CommandsError)>,
    ) {
        let mut pending: VecDeque<StoredRecord> = VecDeque::new();
        loop {
            if pending.is_empty() {
                match queue.recv().await {
                    Some(records) => pending.extend(records),
                    None => return,
                }
            }
            // Everything that queued while the last transaction ran joins
            // this one, up to the batch limit.
            while pending.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(records) => pending.extend(records),
                    Err(_) => break,
                }
            }
            if stop.load(Ordering::Acquire) {
                return;
            }
            let take = pending.len().min(self.max_batch);
            let batch: Vec<StoredRecord> = pending.drain(..take).collect();
            if let Err(error) = self.process(batch).await {
                let _ = failed.send((self.partition, error));
                return;
            }
        }
    }

    /// The event time for the next event: now, but strictly after the
    /// previous one (microsecond precision, as ce_time carries it).
    pub(crate) fn next_event_time(&mut self) -> DateTime<Utc> {
        let now = self.clock.now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let time = match self.last_time {
            Some(last) if last >= now => last + chrono::Duration::microseconds(1),
            _ => now,
        };
        self.last_time = Some(time);
        time
    }

    /// The processor's clock now (for record timestamps that are not event times).
    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The consumer that reads back already written events.
    pub(crate) async fn repeat_reader(
        &mut self,
    ) -> Result<&mut Box<dyn LogConsumer>, CommandsError> {
        if self.repeat_reader.is_none() {
            self.repeat_reader = Some(self.log.consumer().await?);
        }
        self.repeat_reader
            .as_mut()
            .ok_or_else(|| CommandsError::corrupt("the repeat reader vanished"))
    }
}

impl LaneHandle {
    /// Queues a poll's records of this lane's partition; waits while the
    /// lane is that far behind. Returns false once the lane has ended.
    pub(crate) async fn dispatch(&self, records: Vec<StoredRecord>) -> bool {
        self.batches.send(records).await.is_ok()
    }

    /// Stops the lane after the batch in hand (committed or failed) and
    /// waits for it; queued batches are dropped.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        drop(self.batches);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "a command lane's task failed");
        }
    }
}
