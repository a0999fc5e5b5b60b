//! The command processor (design.md section 5): single writer per partition
//! of the commands topic. Per poll batch: decide every command against its
//! order's state, then one transaction with the events, the snapshots of the
//! touched orders, the replies and the consumed command offsets.
//!
//! It must never write an event without its snapshot and reply, never
//! acknowledge before the transaction commits, and never let event time go
//! backwards within a partition.

mod batch;
pub mod messages;
mod restore;
pub mod state_store;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::topics::Topics;
use crate::{EventLog, LogConsumer, LogError, TopicPartition};
pub use messages::{CommandMessage, Outcome, RejectionReply, Reply, ReplyEvent, Snapshot};
pub use state_store::StateStore;

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
    /// Partitions of the commands topic this processor owns.
    pub partitions: Vec<u32>,
    /// Most commands decided in one transaction.
    pub max_batch: usize,
}

/// The processor's working state between batches.
#[derive(Debug)]
pub struct CommandProcessor {
    log: Arc<dyn EventLog>,
    store: StateStore,
    clock: Arc<dyn Clock>,
    /// Time of the last event written to each events partition.
    last_time: HashMap<u32, DateTime<Utc>>,
    /// Reads back the events of an already applied command.
    repeat_reader: Box<dyn LogConsumer>,
    max_batch: usize,
    topics: Topics,
}

impl CommandProcessor {
    /// Restores state for the owned partitions and learns their last event
    /// time; returns the processor and a consumer positioned at the
    /// committed command offsets.
    pub async fn prepare(
        config: &ProcessorConfig,
        log: Arc<dyn EventLog>,
        store: StateStore,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, Box<dyn LogConsumer>), LogError> {
        // Fence any previous owner first, so no zombie commits behind the
        // state restored below.
        log.init_transactions().await?;
        let mut assignment = Vec::new();
        let mut last_time = HashMap::new();
        for &partition in &config.partitions {
            let topics = &config.topics;
            let tp = TopicPartition::new(&topics.commands, partition);
            let committed = log
                .committed(&topics.processor_group(), &tp)
                .await?
                .unwrap_or(0);
            if store.applied_offset(partition)? != Some(committed) {
                restore::partition_from_snapshots(
                    log.as_ref(),
                    topics,
                    &store,
                    partition,
                    committed,
                )
                .await?;
            }
            if let Some(time) = restore::last_event_time(log.as_ref(), topics, partition).await? {
                last_time.insert(partition, time);
            }
            assignment.push((tp, committed));
        }
        let mut consumer = log.consumer().await?;
        consumer.assign(assignment).await?;
        let repeat_reader = log.consumer().await?;
        let processor = Self {
            log,
            store,
            clock,
            last_time,
            repeat_reader,
            max_batch: config.max_batch.max(1),
            topics: config.topics.clone(),
        };
        Ok((processor, consumer))
    }

    /// Runs until `shutdown` resolves. A failed transaction stops the loop
    /// with its error: nothing it decided was acknowledged.
    pub async fn run(
        mut self,
        mut commands: Box<dyn LogConsumer>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), LogError> {
        tokio::pin!(shutdown);
        loop {
            let records = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                polled = commands.poll(self.max_batch, Duration::from_millis(250)) => polled?,
            };
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

/// Runs a processor over every partition of the commands topic until shutdown.
pub async fn run(
    log: Arc<dyn EventLog>,
    topics: Topics,
    store: StateStore,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LogError> {
    let partitions = (0..log.partition_count(&topics.commands).await?).collect();
    let config = ProcessorConfig {
        topics,
        partitions,
        max_batch,
    };
    let (processor, consumer) = CommandProcessor::prepare(&config, log, store, clock).await?;
    processor.run(consumer, shutdown).await
}
