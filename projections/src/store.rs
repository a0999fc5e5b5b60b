//! The storage of one projection: one sled tree holding temporal rows,
//! per-order last applied sequence, per-partition checkpoints and parked
//! (dead-lettered) orders, so that one `apply_batch` writes them atomically.
//!
//! Temporal rows are keyed (row key, valid-from): `as_of(key, T)` is one
//! reverse seek to the last version at or before T.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const ROW: u8 = b'r';
const SEQUENCE: u8 = b's';
const CHECKPOINT: u8 = b'k';
const PARKED: u8 = b'p';
const DEAD: u8 = b'd';

/// A row key: the table name and the key within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RowKey {
    pub table: &'static str,
    pub key: Vec<u8>,
}

impl RowKey {
    pub fn new(table: &'static str, parts: &[&str]) -> Self {
        Self {
            table,
            key: parts.join("\u{1f}").into_bytes(),
        }
    }

    /// Tree prefix of this row's versions: tag, table, 0, key, 0.
    fn prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.table.len() + self.key.len() + 3);
        out.push(ROW);
        out.extend_from_slice(self.table.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.key);
        out.push(0);
        out
    }

    fn versioned(&self, valid_from: DateTime<Utc>) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(&time_key(valid_from));
        out
    }
}

/// Order-preserving bytes of a time (microseconds, sign bit flipped).
fn time_key(time: DateTime<Utc>) -> [u8; 8] {
    ((time.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

fn tagged(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![tag];
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

/// A dead letter: an event this projection could not apply, kept with
/// everything needed to retry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub partition: u32,
    pub offset: u64,
    pub order_id: Option<String>,
    pub event_type: Option<String>,
    pub error: String,
    pub received_at: DateTime<Utc>,
    pub headers: Vec<domain::Header>,
    pub payload: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct ProjectionStore {
    db: sled::Db,
    tree: sled::Tree,
    /// Held by every writer for one whole batch (the worker, dead-letter
    /// retries and discards, verification), so their read-then-write steps
    /// never interleave.
    writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Changes of one batch, applied atomically by `commit`.
#[derive(Debug, Default)]
pub struct StoreBatch {
    batch: sled::Batch,
}

impl StoreBatch {
    pub fn put_row(&mut self, key: &RowKey, valid_from: DateTime<Utc>, value: &[u8]) {
        self.batch.insert(key.versioned(valid_from), value);
    }

    pub fn set_sequence(&mut self, order_id: &str, sequence: u64) {
        self.batch.insert(
            tagged(SEQUENCE, &[order_id.as_bytes()]),
            &sequence.to_be_bytes(),
        );
    }

    pub fn set_checkpoint(&mut self, partition: u32, next_offset: u64) {
        self.batch.insert(
            tagged(CHECKPOINT, &[&partition.to_be_bytes()]),
            &next_offset.to_be_bytes(),
        );
    }

    pub fn park(&mut self, order_id: &str) {
        self.batch
            .insert(tagged(PARKED, &[order_id.as_bytes()]), &[]);
    }

    pub fn unpark(&mut self, order_id: &str) {
        self.batch.remove(tagged(PARKED, &[order_id.as_bytes()]));
    }

    pub fn remove_dead_letter(&mut self, partition: u32, offset: u64) {
        self.batch.remove(dead_key(partition, offset));
    }

    pub fn dead_letter(&mut self, letter: &DeadLetter) -> Result<(), StoreError> {
        let key = dead_key(letter.partition, letter.offset);
        let value = serde_json::to_vec(letter).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.batch.insert(key, value);
        Ok(())
    }
}

fn dead_key(partition: u32, offset: u64) -> Vec<u8> {
    tagged(DEAD, &[&partition.to_be_bytes(), &offset.to_be_bytes()])
}

fn u64_of(bytes: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("u64".into()))
}

impl ProjectionStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(128 << 20)
            .open()?;
        let tree = db.open_tree("projection")?;
        Ok(Self {
            db,
            tree,
            writes: Default::default(),
        })
    }

    /// Excludes every other writer of this store until the guard is dropped.
    pub async fn lock_writes(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writes.clone().lock_owned().await
    }

    pub fn commit(&self, batch: StoreBatch) -> Result<(), StoreError> {
        self.tree.apply_batch(batch.batch)?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// The last version of `key` valid at `at` (inclusive).
    pub fn row_as_of(
        &self,
        key: &RowKey,
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let prefix = key.prefix();
        let end = key.versioned(at);
        match self.tree.range(prefix.clone()..=end).next_back() {
            Some(entry) => Ok(Some(entry?.1.to_vec())),
            None => Ok(None),
        }
    }

    /// Every row key of `table` whose key starts with `key_prefix` (parts joined), each once.
    pub fn keys_with_prefix(
        &self,
        table: &'static str,
        key_prefix: &[&str],
    ) -> Result<Vec<RowKey>, StoreError> {
        let mut scan = vec![ROW];
        scan.extend_from_slice(table.as_bytes());
        scan.push(0);
        let head = scan.len();
        let joined = key_prefix.join("\u{1f}");
        scan.extend_from_slice(joined.as_bytes());
        let mut keys: Vec<RowKey> = Vec::new();
        for entry in self.tree.scan_prefix(&scan) {
            let (raw, _) = entry?;
            // raw = prefix(head) + key + 0 + 8 time bytes
            if raw.len() < head + 9 {
                return Err(StoreError::Corrupt("short row key".into()));
            }
            let key = raw[head..raw.len() - 9].to_vec();
            if keys.last().is_none_or(|k| k.key != key) {
                keys.push(RowKey { table, key });
            }
        }
        Ok(keys)
    }

    pub fn sequence(&self, order_id: &str) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(tagged(SEQUENCE, &[order_id.as_bytes()]))?
            .map(|v| u64_of(&v))
            .transpose()
    }

    pub fn checkpoint(&self, partition: u32) -> Result<Option<u64>, StoreError> {
        self.tree
            .get(tagged(CHECKPOINT, &[&partition.to_be_bytes()]))?
            .map(|v| u64_of(&v))
            .transpose()
    }

    pub fn is_parked(&self, order_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .tree
            .contains_key(tagged(PARKED, &[order_id.as_bytes()]))?)
    }

    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.tree
            .scan_prefix([DEAD])
            .map(|entry| {
                let (_, value) = entry?;
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }
}
