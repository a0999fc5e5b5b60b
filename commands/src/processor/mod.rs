//! The command processor (design.md section 5): single writer per partition
//! of the commands topic. Per poll batch: decide every command against its
//! order's state, then one transaction with the events, the snapshots of the
//! touched orders, the replies and the consumed command offsets.
//!
//! It must never write an event without its snapshot and reply, never
//! acknowledge before the transaction commits, and never let event time go
//! backwards within a partition.

mod batch;
mod restore;
mod state_store;
mod status;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use eventlog::{EventLog, LogConsumer, TopicPartition};

use crate::topics::Topics;
use crate::CommandsError;
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
    /// Most commands decided in one transaction.
    pub max_batch: usize,
    /// Where the processor says what it is doing.
    pub status: Arc<ProcessorStatus>,
}

/// The processor's working state between batches.
#[derive(Debug)]
pub struct CommandProcessor {
    log: Arc<dyn EventLog>,
    store: StateStore,
    clock: Arc<dyn Clock>,
    /// Partitions of the commands topic this processor owns now.
    owned: BTreeSet<u32>,
    /// Time of the last event written to each owned events partition.
    last_time: HashMap<u32, DateTime<Utc>>,
    /// Reads back the events of an already applied command.
    repeat_reader: Box<dyn LogConsumer>,
    max_batch: usize,
    topics: Topics,
    status: Arc<ProcessorStatus>,
}

impl CommandProcessor {
    /// Claims the transactional identity (fencing a previous owner) and joins
    /// the processor group; returns the processor and its commands consumer.
    /// Partitions are adopted as the group assigns them.
    pub async fn prepare(
        config: &ProcessorConfig,
        log: Arc<dyn EventLog>,
        store: StateStore,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, Box<dyn LogConsumer>), CommandsError> {
        config.status.set(ProcessorPhase::Joining);
        // Fence any previous owner first, so no zombie commits behind the
        // state restored when partitions are adopted.
        log.init_transactions().await?;
        let mut consumer = log.consumer().await?;
        consumer
            .subscribe(&config.topics.processor_group(), &config.topics.commands)
            .await?;
        let repeat_reader = log.consumer().await?;
        let processor = Self {
            log,
            store,
            clock,
            owned: BTreeSet::new(),
            last_time: HashMap::new(),
            repeat_reader,
            max_batch: config.max_batch.max(1),
            topics: config.topics.clone(),
            status: config.status.clone(),
        };
        Ok((processor, consumer))
    }

    /// Takes ownership of partitions: restores their state from the
    /// snapshots topic unless the local store already reflects the group's
    /// committed offset, and learns their last event time.
    /// The partitions are adopted concurrently, each reading until its
    /// data ends.
    pub async fn adopt(&mut self, partitions: &BTreeSet<u32>) -> Result<(), CommandsError> {
        let (log, topics, store) = (self.log.as_ref(), &self.topics, &self.store);
        let started = std::time::Instant::now();
        let adopted =
            futures_util::future::try_join_all(partitions.iter().map(|&partition| async move {
                let committed = restore_partition(log, topics, store, partition).await?;
                let last_time = restore::last_event_time(log, topics, partition).await?;
                tracing::info!(partition, committed, "adopted a commands partition");
                Ok::<_, CommandsError>((partition, last_time))
            }))
            .await?;
        for (partition, last_time) in adopted {
            match last_time {
                Some(time) => self.last_time.insert(partition, time),
                None => self.last_time.remove(&partition),
            };
        }
        if !partitions.is_empty() {
            tracing::info!(
                partitions = partitions.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "adopted commands partitions"
            );
        }
        self.owned.extend(partitions);
        Ok(())
    }

    /// Follows the group's assignment: drops revoked partitions, adopts new ones.
    async fn follow_assignment(
        &mut self,
        assignment: Vec<TopicPartition>,
    ) -> Result<(), CommandsError> {
        let assigned: BTreeSet<u32> = assignment
            .into_iter()
            .filter(|tp| tp.topic == self.topics.commands)
            .map(|tp| tp.partition)
            .collect();
        if assigned == self.owned {
            return Ok(());
        }
        for revoked in self.owned.difference(&assigned) {
            tracing::info!(
                partition = revoked,
                "a commands partition moved to another processor"
            );
            self.last_time.remove(revoked);
        }
        self.owned.retain(|p| assigned.contains(p));
        let added: BTreeSet<u32> = assigned.difference(&self.owned).copied().collect();
        self.status.set(ProcessorPhase::Restoring {
            partitions: added.iter().copied().collect(),
        });
        self.adopt(&added).await
    }

    /// Runs until `shutdown` resolves. A failed transaction stops the loop
    /// with its error: nothing it decided was acknowledged.
    pub async fn run(
        mut self,
        mut commands: Box<dyn LogConsumer>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), CommandsError> {
        tokio::pin!(shutdown);
        // A consumer that has its partitions already (the embedded log's
        // one member) serves before its first poll.
        if commands.group_assigned() {
            self.follow_assignment(commands.assignment()).await?;
            self.status.set(ProcessorPhase::Serving {
                partitions: self.owned.iter().copied().collect(),
            });
        }
        loop {
            let mut records = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                polled = commands.poll(self.max_batch, Duration::from_millis(250)) => polled?,
            };
            // Rebalances happen inside poll: adopt before deciding, and
            // decide only for partitions still owned.
            if !commands.group_assigned() {
                // Between a revocation and the next assignment: own
                // nothing, so whatever comes back is adopted afresh.
                self.owned.clear();
                self.last_time.clear();
                self.status.set(ProcessorPhase::Joining);
                continue;
            }
            self.follow_assignment(commands.assignment()).await?;
            self.status.set(ProcessorPhase::Serving {
                partitions: self.owned.iter().copied().collect(),
            });
            records.retain(|r| self.owned.contains(&r.partition));
            if !records.is_empty() {
                self.process(records).await?;
            }
        }
    }

    /// The event time for the next event in `partition`: now, but strictly
    /// after the previous one (microsecond precision, as ce_time carries it).
    fn next_event_time(&mut self, partition: u32) -> DateTime<Utc> {
        let now = self.clock.now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        let time = match self.last_time.get(&partition) {
            Some(last) if *last >= now => *last + chrono::Duration::microseconds(1),
            _ => now,
        };
        self.last_time.insert(partition, time);
        time
    }
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
