//! The command processor (design.md section 5): single writer per partition
//! of the commands topic. A dispatcher polls the commands topic as a member
//! of the processor group and hands each partition's records to that
//! partition's lane (`lane.rs`, docs/adr/0007). Per lane batch: decide every
//! command against its order's state, then one transaction, on the lane's
//! own transactional identity, with the events, the snapshots of the
//! touched orders, the replies and the consumed command offset. Lanes
//! commit concurrently.
//!
//! It must never write an event without its snapshot and reply, never
//! acknowledge before the transaction commits, and never let event time go
//! backwards within a partition.

mod batch;
mod lane;
mod restore;
mod state_store;
mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use eventlog::{EventLog, LogConsumer, StoredRecord, TopicPartition};

use crate::topics::Topics;
use crate::CommandsError;
use lane::{Lane, LaneHandle};
pub use state_store::StateStore;
pub use status::{ProcessorPhase, ProcessorStatus};

/// Where time comes from; injected so tests control it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    pub topics: Topics,
    /// Most commands decided in one transaction (per lane).
    pub max_batch: usize,
    /// Where the processor says what it is doing.
    pub status: Arc<ProcessorStatus>,
}

/// The dispatcher: follows the group's assignment and runs one lane per
/// owned commands partition.
#[derive(Debug)]
pub struct CommandProcessor {
    log: Arc<dyn EventLog>,
    store: StateStore,
    clock: Arc<dyn Clock>,
    /// The running lane of each commands partition this node owns now.
    lanes: BTreeMap<u32, LaneHandle>,
    /// Where a lane reports the failure that ended it.
    failed: mpsc::UnboundedSender<(u32, CommandsError)>,
    failures: mpsc::UnboundedReceiver<(u32, CommandsError)>,
    max_batch: usize,
    topics: Topics,
    status: Arc<ProcessorStatus>,
}

impl CommandProcessor {
    /// Joins the processor group; returns the processor and its commands
    /// consumer. Partitions are adopted, each by its own lane (which
    /// fences that partition's previous writer), as the group assigns them.
    pub async fn prepare(
        config: &ProcessorConfig,
        log: Arc<dyn EventLog>,
        store: StateStore,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, Box<dyn LogConsumer>), CommandsError> {
        config.status.set(ProcessorPhase::Joining);
        let mut consumer = log.consumer().await?;
        consumer.follow();
        consumer
            .subscribe(&config.topics.processor_group(), &config.topics.commands)
            .await?;
        let (failed, failures) = mpsc::unbounded_channel();
        let processor = Self {
            log,
            store,
            clock,
            lanes: BTreeMap::new(),
            failed,
            failures,
            max_batch: config.max_batch.max(1),
            topics: config.topics.clone(),
            status: config.status.clone(),
        };
        Ok((processor, consumer))
    }

    /// Takes ownership of partitions, concurrently: each lane claims its
    /// transactional identity, restores the partition's state from the
    /// snapshots topic unless the local store already reflects the group's
    /// committed offset, learns its last event time, and starts.
    pub async fn adopt(&mut self, partitions: &BTreeSet<u32>) -> Result<(), CommandsError> {
        let (log, topics, store, clock) = (&self.log, &self.topics, &self.store, &self.clock);
        let started = std::time::Instant::now();
        let (max_batch, status) = (self.max_batch, &self.status);
        let adopted = futures_util::future::try_join_all(partitions.iter().map(|&partition| {
            Lane::adopt(log, topics, store, clock, partition, max_batch, status)
        }))
        .await?;
        for lane in adopted {
            let partition = lane.partition;
            self.lanes
                .insert(partition, lane.start(self.failed.clone()));
        }
        if !partitions.is_empty() {
            tracing::info!(
                partitions = partitions.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "adopted commands partitions"
            );
        }
        Ok(())
    }

    fn owned(&self) -> Vec<u32> {
        self.lanes.keys().copied().collect()
    }

    /// Stops the lanes of these partitions, each after the batch in hand.
    async fn stop_lanes(&mut self, partitions: &[u32]) {
        let stopping: Vec<LaneHandle> = partitions
            .iter()
            .filter_map(|p| self.lanes.remove(p))
            .collect();
        futures_util::future::join_all(stopping.into_iter().map(LaneHandle::stop)).await;
    }

    /// Follows the group's assignment: stops revoked lanes, adopts new ones.
    async fn follow_assignment(
        &mut self,
        assignment: Vec<TopicPartition>,
    ) -> Result<(), CommandsError> {
        let assigned: BTreeSet<u32> = assignment
            .into_iter()
            .filter(|tp| tp.topic == self.topics.commands)
            .map(|tp| tp.partition)
            .collect();
        let owned: BTreeSet<u32> = self.lanes.keys().copied().collect();
        if assigned == owned {
            return Ok(());
        }
        let revoked: Vec<u32> = owned.difference(&assigned).copied().collect();
        for partition in &revoked {
            tracing::info!(partition, "a commands partition moved to another processor");
        }
        self.stop_lanes(&revoked).await;
        let added: BTreeSet<u32> = assigned.difference(&owned).copied().collect();
        self.status.set(ProcessorPhase::Restoring {
            partitions: added.iter().copied().collect(),
        });
        self.adopt(&added).await
    }

    /// Runs until `shutdown` resolves. A failed transaction stops every
    /// lane and the loop with its error: nothing it decided was
    /// acknowledged. Every lane finishes the batch in hand before this
    /// returns, so a restart never runs beside an old lane.
    pub async fn run(
        mut self,
        commands: Box<dyn LogConsumer>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CommandsError> {
        let result = self.dispatch(commands, shutdown).await;
        let all = self.owned();
        self.stop_lanes(&all).await;
        // A lane that failed while the others stopped still says why.
        match (result, self.failures.try_recv()) {
            (Ok(()), Ok((partition, error))) => {
                tracing::warn!(partition, %error, "a command lane failed while stopping");
                Ok(())
            }
            (result, _) => result,
        }
    }

    async fn dispatch(
        &mut self,
        mut commands: Box<dyn LogConsumer>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CommandsError> {
        tokio::pin!(shutdown);
        // A consumer that has its partitions already (the embedded log's
        // one member) serves before its first poll.
        if commands.group_assigned() {
            self.follow_assignment(commands.assignment()).await?;
            self.status.set(ProcessorPhase::Serving {
                partitions: self.owned(),
            });
        }
        loop {
            let records = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                Some((partition, error)) = self.failures.recv() => {
                    tracing::warn!(partition, %error, "a command lane failed; the processor starts over");
                    return Err(error);
                }
                polled = commands.poll(self.max_batch, Duration::from_millis(250)) => polled?,
            };
            // Rebalances happen inside poll: adopt before deciding, and
            // decide only for partitions still owned.
            if !commands.group_assigned() {
                // Between a revocation and the next assignment: own
                // nothing, so whatever comes back is adopted afresh.
                let all = self.owned();
                self.stop_lanes(&all).await;
                self.status.set(ProcessorPhase::Joining);
                continue;
            }
            self.follow_assignment(commands.assignment()).await?;
            self.status.set(ProcessorPhase::Serving {
                partitions: self.owned(),
            });
            for (partition, records) in by_partition(records) {
                let Some(lane) = self.lanes.get(&partition) else {
                    continue;
                };
                if !lane.dispatch(records).await {
                    // The lane ended: its failure is waiting in `failures`.
                    break;
                }
            }
        }
    }
}

/// A poll's records split by partition, each in offset order.
fn by_partition(records: Vec<StoredRecord>) -> BTreeMap<u32, Vec<StoredRecord>> {
    let mut split: BTreeMap<u32, Vec<StoredRecord>> = BTreeMap::new();
    for record in records {
        split.entry(record.partition).or_default().push(record);
    }
    split
}

/// Brings the local state of one commands partition up to the group's
/// committed offset: restores it from the snapshots topic unless the store
/// already reflects that offset. Returns the committed offset.
pub async fn restore_partition(
    log: &dyn EventLog,
    topics: &Topics,
    store: &StateStore,
    partition: u32,
) -> Result<u64, CommandsError> {
    let tp = TopicPartition::new(&topics.commands, partition);
    let committed = log
        .committed(&topics.processor_group(), &tp)
        .await?
        .unwrap_or(0);
    if store.applied_offset(partition)? != Some(committed) {
        restore::partition_from_snapshots(log, topics, store, partition, committed).await?;
    }
    Ok(committed)
}

/// Runs a processor over every partition of the commands topic until shutdown.
pub async fn run(
    log: Arc<dyn EventLog>,
    topics: Topics,
    store: StateStore,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    status: Arc<ProcessorStatus>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CommandsError> {
    let config = ProcessorConfig {
        topics,
        max_batch,
        status: status.clone(),
    };
    // After a transient failure (the cluster away, an aborted or fenced
    // transaction) start over: rejoin, restore, resume from committed offsets.
    let result = eventlog::retry_transient(
        "command processor",
        eventlog::shared_shutdown(shutdown),
        |shutdown| {
            let (config, log, store, clock) =
                (config.clone(), log.clone(), store.clone(), clock.clone());
            async move {
                let status = config.status.clone();
                let ran = async {
                    let (processor, consumer) =
                        CommandProcessor::prepare(&config, log, store, clock).await?;
                    processor.run(consumer, shutdown).await
                }
                .await;
                status.set(match &ran {
                    Ok(()) => ProcessorPhase::Stopped,
                    Err(error) => ProcessorPhase::Restarting {
                        error: error.to_string(),
                    },
                });
                ran
            }
        },
    )
    .await;
    if let Err(error) = &result {
        tracing::error!(%error, "the command processor stopped");
        status.set(ProcessorPhase::Stopped);
    }
    result
}
