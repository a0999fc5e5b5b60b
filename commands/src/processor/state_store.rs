//! The processor's local aggregate state store on sled: the latest snapshot
//! of each order, and per partition the next command offset those snapshots
//! reflect, in one tree so one batch updates both atomically. It is a cache
//! of the compacted snapshots topic: when its offset does not match the
//! committed command offset, the partition is restored from that topic.

use std::path::Path;

use crate::messages::Snapshot;
use crate::CommandsError;

const ORDER: u8 = b'o';
const PARTITION: u8 = b'p';

#[derive(Debug, Clone)]
pub struct StateStore {
    tree: sled::Tree,
}

fn corrupt(e: impl std::fmt::Display) -> CommandsError {
    CommandsError::corrupt(format!("state store: {e}"))
}

fn key(tag: u8, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1);
    key.push(tag);
    key.extend_from_slice(id);
    key
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, CommandsError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(1000))
            .cache_capacity(eventlog::cache::bytes_for(eventlog::cache::CacheUse::State))
            .open()?;
        Ok(Self {
            tree: db.open_tree("state")?,
        })
    }

    pub fn load(&self, order_id: &str) -> Result<Option<Snapshot>, CommandsError> {
        self.tree
            .get(key(ORDER, order_id.as_bytes()))?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(corrupt))
            .transpose()
    }

    /// The next command offset of `partition` that the stored states reflect.
    pub fn applied_offset(&self, partition: u32) -> Result<Option<u64>, CommandsError> {
        self.tree
            .get(key(PARTITION, &partition.to_be_bytes()))?
            .map(|v| {
                <[u8; 8]>::try_from(v.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(corrupt)
            })
            .transpose()
    }

    /// Stores snapshots as the snapshots topic holds them (JSON, already
    /// checked by the caller), without encoding them again.
    pub fn save_encoded(&self, snapshots: &[(String, Vec<u8>)]) -> Result<(), CommandsError> {
        let mut batch = sled::Batch::default();
        for (order_id, encoded) in snapshots {
            batch.insert(key(ORDER, order_id.as_bytes()), encoded.as_slice());
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Stores snapshots and the partition's applied offset in one atomic batch.
    /// Not flushed here: a store that lags the log after a crash is restored.
    pub fn save(
        &self,
        partition: u32,
        applied: Option<u64>,
        snapshots: &[(String, Snapshot)],
    ) -> Result<(), CommandsError> {
        let mut batch = sled::Batch::default();
        for (order_id, snapshot) in snapshots {
            batch.insert(
                key(ORDER, order_id.as_bytes()),
                serde_json::to_vec(snapshot).map_err(corrupt)?,
            );
        }
        let partition_key = key(PARTITION, &partition.to_be_bytes());
        match applied {
            Some(offset) => batch.insert(partition_key, &offset.to_be_bytes()),
            None => batch.remove(partition_key),
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }
}
