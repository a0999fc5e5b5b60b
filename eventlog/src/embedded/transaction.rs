//! A transaction of the embedded log: offsets are assigned at `send` in
//! partitions the transaction holds exclusively, and everything (records and
//! consumer positions) lands in one group commit at `commit`, or nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::{oneshot, OwnedMutexGuard};

use super::writer::{Write, WriteRequest};
use super::{lock_error, EmbeddedLog, PartitionId};
use crate::{GroupOffset, LogError, LogTransaction, OutgoingRecord, Position};

#[derive(Debug)]
pub(crate) struct EmbeddedTransaction {
    log: EmbeddedLog,
    _producer: OwnedMutexGuard<()>,
    writes: Vec<Write>,
    /// The next offset of each held partition before this transaction.
    held_from: HashMap<PartitionId, u64>,
    /// Consumer positions given before the commit.
    offsets: Vec<GroupOffset>,
    finished: bool,
}

impl EmbeddedTransaction {
    pub(crate) fn new(log: EmbeddedLog, producer: OwnedMutexGuard<()>) -> Self {
        Self {
            log,
            _producer: producer,
            writes: Vec::new(),
            held_from: HashMap::new(),
            offsets: Vec::new(),
            finished: false,
        }
    }

    /// Releases held partitions; on rollback, hands their offsets back.
    fn release(&mut self, rollback: bool) {
        self.finished = true;
        if let Ok(mut assigned) = self.log.shared.assigned.lock() {
            for (id, next) in self.held_from.drain() {
                assigned.held.remove(&id);
                if rollback {
                    assigned.next.insert(id, next);
                }
            }
        }
    }
}

#[async_trait]
impl LogTransaction for EmbeddedTransaction {
    async fn send(&mut self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError> {
        let placed: Vec<_> = records
            .into_iter()
            .map(|r| {
                self.log
                    .place(&r)
                    .map(|(meta, partition)| (meta, partition, r))
            })
            .collect::<Result<_, _>>()?;
        let mut assigned = self.log.shared.assigned.lock().map_err(lock_error)?;
        let mut positions = Vec::with_capacity(placed.len());
        for (meta, partition, outgoing) in placed {
            let id = (meta.id, partition);
            if let std::collections::hash_map::Entry::Vacant(slot) = self.held_from.entry(id) {
                if !assigned.held.insert(id) {
                    return Err(LogError::PartitionBusy {
                        topic: outgoing.topic,
                        partition,
                    });
                }
                slot.insert(assigned.next.get(&id).copied().unwrap_or(0));
            }
            let next = assigned.next.entry(id).or_insert(0);
            let offset = *next;
            *next += 1;
            positions.push(Position { partition, offset });
            self.writes.push(Write::Record {
                topic_id: meta.id,
                partition,
                offset,
                compacted: meta.compacted,
                record: outgoing.record,
            });
        }
        Ok(positions)
    }

    async fn send_offsets(&mut self, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        self.offsets.extend(offsets);
        Ok(())
    }

    async fn commit(mut self: Box<Self>, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        let mut writes = std::mem::take(&mut self.writes);
        let mut all = std::mem::take(&mut self.offsets);
        all.extend(offsets);
        writes.extend(self.log.group_writes(&all)?);
        let (done, outcome) = oneshot::channel();
        let submitted = self.log.submit(WriteRequest {
            writes,
            sync: true,
            done,
        });
        let result = match submitted {
            Ok(()) => outcome.await.map_err(|_| LogError::Closed).and_then(|r| r),
            Err(error) => Err(error),
        };
        self.release(result.is_err());
        result
    }

    async fn abort(mut self: Box<Self>) -> Result<(), LogError> {
        self.release(true);
        Ok(())
    }
}

impl Drop for EmbeddedTransaction {
    fn drop(&mut self) {
        if !self.finished {
            self.release(true);
        }
    }
}
