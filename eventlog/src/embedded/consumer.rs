//! A consumer of the embedded log: reads committed records from assigned
//! partitions and waits for the writer's commit signal when there are none.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use super::EmbeddedLog;
use crate::{EventLog, LogConsumer, LogError, StoredRecord, TopicPartition};

#[derive(Debug)]
pub(crate) struct EmbeddedConsumer {
    log: EmbeddedLog,
    positions: BTreeMap<TopicPartition, u64>,
    committed: watch::Receiver<u64>,
    /// Where the next poll starts, so no partition starves the others.
    rotation: usize,
}

impl EmbeddedConsumer {
    pub(crate) fn new(log: EmbeddedLog) -> Self {
        let committed = log.shared.committed.clone();
        Self {
            log,
            positions: BTreeMap::new(),
            committed,
            rotation: 0,
        }
    }

    fn collect(&mut self, max: usize) -> Result<Vec<StoredRecord>, LogError> {
        let count = self.positions.len();
        if count == 0 {
            return Ok(Vec::new());
        }
        let share = (max / count).max(1);
        let mut out = Vec::new();
        let partitions: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        for i in 0..count {
            let remaining = max.saturating_sub(out.len());
            if remaining == 0 {
                break;
            }
            let tp = &partitions[(self.rotation + i) % count];
            let from = self.positions[tp];
            let records = self.log.read(tp, from, share.min(remaining))?;
            if let Some(last) = records.last() {
                self.positions.insert(tp.clone(), last.offset + 1);
            }
            out.extend(records);
        }
        self.rotation = (self.rotation + 1) % count;
        Ok(out)
    }
}

#[async_trait]
impl LogConsumer for EmbeddedConsumer {
    async fn assign(&mut self, positions: Vec<(TopicPartition, u64)>) -> Result<(), LogError> {
        for (tp, _) in &positions {
            self.log.partition_id(tp)?;
        }
        self.positions = positions.into_iter().collect();
        Ok(())
    }

    async fn subscribe(&mut self, group: &str, topic: &str) -> Result<(), LogError> {
        let mut positions = Vec::new();
        for partition in 0..self.log.topic(topic)?.partitions {
            let tp = TopicPartition::new(topic, partition);
            let start = self.log.committed(group, &tp).await?.unwrap_or(0);
            positions.push((tp, start));
        }
        self.assign(positions).await
    }

    fn group_assigned(&self) -> bool {
        true // the one member gets every partition at once
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<StoredRecord>, LogError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Mark the current generation seen before reading, so a commit
            // that lands after the read wakes the wait below.
            self.committed.borrow_and_update();
            let records = self.collect(max)?;
            if !records.is_empty() {
                return Ok(records);
            }
            match tokio::time::timeout_at(deadline, self.committed.changed()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(Err(_)) => return Err(LogError::Closed),
                Ok(Ok(())) => {}
            }
        }
    }

    fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied()
    }
}
