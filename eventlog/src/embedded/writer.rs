//! The single writer of the embedded log: group commit. It takes every
//! request waiting, applies them in one atomic sled batch, flushes once,
//! raises the high watermarks, wakes consumers, and only then acknowledges.
//! A group of only unsynced requests (`EventLog::append_unsynced`, and
//! consumer-group progress reports, `commit_offsets`) is not flushed: it is
//! readable and acknowledged once applied, and the next flush makes it
//! durable. That saves a lightly loaded node one flush per command and one
//! per projection batch; under load a group holds both kinds and shares
//! one flush.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot, watch};

use super::{keys, PartitionId};
use crate::{LogError, Record};

/// Most requests folded into one flush.
const MAX_GROUP: usize = 4096;

#[derive(Debug)]
pub(crate) enum Write {
    Record {
        topic_id: u32,
        partition: u32,
        offset: u64,
        compacted: bool,
        record: Record,
    },
    GroupOffset {
        key: Vec<u8>,
        next_offset: u64,
    },
}

#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) writes: Vec<Write>,
    /// Acknowledge only once durable (false: once applied).
    pub(crate) sync: bool,
    pub(crate) done: oneshot::Sender<Result<(), LogError>>,
}

pub(crate) async fn run(
    db: sled::Db,
    tree: sled::Tree,
    mut requests: mpsc::UnboundedReceiver<WriteRequest>,
    durable: Arc<RwLock<HashMap<PartitionId, u64>>>,
    notify: watch::Sender<u64>,
) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let applied = apply(&tree, &group);
        let highs = match applied {
            Ok(highs) => highs,
            Err(error) => {
                fail(group, &error);
                continue;
            }
        };
        // A group with a durable request is flushed, and all of it becomes
        // readable and acknowledged after the flush, as one. A group of only
        // unsynced requests is readable and acknowledged once applied: the
        // next flush makes it durable.
        if group.iter().any(|r| r.sync) {
            if let Err(error) = crate::flush::flush(&db).await {
                fail(group, &LogError::from(error));
                continue;
            }
        }
        raise(&durable, highs);
        notify.send_modify(|generation| *generation += 1);
        for request in group {
            let _ = request.done.send(Ok(()));
        }
    }
    let _ = crate::flush::flush(&db).await;
}

fn raise(durable: &RwLock<HashMap<PartitionId, u64>>, highs: Vec<(PartitionId, u64)>) {
    if let Ok(mut durable) = durable.write() {
        for (id, high) in highs {
            let entry = durable.entry(id).or_insert(0);
            *entry = (*entry).max(high);
        }
    }
}

fn fail(group: Vec<WriteRequest>, error: &LogError) {
    tracing::error!(%error, "embedded log write failed");
    let message = error.to_string();
    for request in group {
        let _ = request
            .done
            .send(Err(LogError::WriteFailed(message.clone())));
    }
}

/// Applies a group (not yet durable); returns the new high watermarks.
/// Records and the offsets of transactions go in one atomic batch. A
/// progress report (`commit_offsets`) needs no atomicity with anything and
/// is a plain insert; so is every record of a group of only unsynced single
/// records (the gateway's commands), in offset order, as sled recovers a
/// prefix of its writes. Plain inserts are what it saves: sled 0.34's
/// `apply_batch` writes out and syncs its I/O buffer on every call
/// (`pin_log` rolls it). In any other group records stay in the batch, so
/// no record is written ahead of an earlier offset.
fn apply(tree: &sled::Tree, group: &[WriteRequest]) -> Result<Vec<(PartitionId, u64)>, LogError> {
    let plain = group.iter().all(|r| {
        !r.sync
            && (r
                .writes
                .iter()
                .all(|w| matches!(w, Write::GroupOffset { .. }))
                || matches!(
                    r.writes.as_slice(),
                    [Write::Record {
                        compacted: false,
                        ..
                    }]
                ))
    });
    let mut batch = sled::Batch::default();
    let mut batched = false;
    let mut highs: HashMap<PartitionId, u64> = HashMap::new();
    // Latest offset per compaction key within this group, ahead of the tree.
    let mut latest: HashMap<Vec<u8>, u64> = HashMap::new();
    for request in group {
        for write in &request.writes {
            match write {
                Write::Record {
                    topic_id,
                    partition,
                    offset,
                    compacted,
                    record,
                } => {
                    if *compacted {
                        let index = keys::compaction_key(*topic_id, *partition, &record.key);
                        let previous = match latest.get(&index) {
                            Some(offset) => Some(*offset),
                            None => tree.get(&index)?.map(|v| keys::u64_value(&v)).transpose()?,
                        };
                        if let Some(previous) = previous {
                            batch.remove(keys::log_key(*topic_id, *partition, previous));
                        }
                        batch.insert(index.clone(), &offset.to_be_bytes());
                        latest.insert(index, *offset);
                    }
                    let key = keys::log_key(*topic_id, *partition, *offset);
                    let value = keys::encode_record(record);
                    if plain {
                        tree.insert(key, value)?;
                    } else {
                        batch.insert(key, value);
                        batched = true;
                    }
                    let high = highs.entry((*topic_id, *partition)).or_insert(0);
                    *high = (*high).max(offset + 1);
                }
                Write::GroupOffset { key, next_offset } if !request.sync => {
                    tree.insert(key.as_slice(), &next_offset.to_be_bytes())?;
                }
                Write::GroupOffset { key, next_offset } => {
                    batch.insert(key.as_slice(), &next_offset.to_be_bytes());
                    batched = true;
                }
            }
        }
    }
    if batched {
        tree.apply_batch(batch)?;
    }
    Ok(highs.into_iter().collect())
}
