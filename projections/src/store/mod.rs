//! The storage of one projection: one sled tree holding temporal rows,
//! per-order last applied sequence, per-partition checkpoints and parked
//! (dead-lettered) orders, so that one `apply_batch` writes them atomically.
//!
//! Temporal rows are keyed (row key, valid-from): `as_of(key, T)` is one
//! reverse seek to the last version at or before T. The versions of one
//! group of rows (an order's history, a customer's orders), and the orders'
//! sequences, are packed up to 8 to a sled key (`chunk`), so a node's
//! memory does not grow with one sled key per version; `rows` reads and
//! writes them, `migrate` converts a store written one key per version.

mod chunk;
mod migrate;
#[cfg(test)]
mod packed_tests;
mod rows;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const ROW: u8 = b'r';
/// A marked row (`StoreBatch::mark_row`): tag, table, 0, key, 0.
const MARKED: u8 = b'm';
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

    /// The key of the row's mark.
    fn marked(&self) -> Vec<u8> {
        let mut out = self.prefix();
        out[0] = MARKED;
        out
    }

    fn versioned(&self, valid_from: DateTime<Utc>) -> Vec<u8> {
        let mut out = self.prefix();
        out.extend_from_slice(&time_key(valid_from));
        out
    }
}

/// The time bytes of a row's mark in stores written one key per version
/// (`migrate`): below every real time's.
const MARK: [u8; 8] = [0; 8];

/// Order-preserving bytes of a time (microseconds, sign bit flipped).
fn time_key(time: DateTime<Utc>) -> [u8; 8] {
    ((time.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

/// The stored keys of every row of one table whose key starts with given
/// parts: their common tree prefix, and how each splits into row key and time.
struct TableScan {
    /// Tag, table, 0, the joined key parts.
    prefix: Vec<u8>,
    /// Where the row key starts.
    head: usize,
}

impl TableScan {
    fn new(table: &str, key_prefix: &[&str]) -> Self {
        let mut prefix = vec![ROW];
        prefix.extend_from_slice(table.as_bytes());
        prefix.push(0);
        let head = prefix.len();
        prefix.extend_from_slice(key_prefix.join("\u{1f}").as_bytes());
        Self { prefix, head }
    }

    /// A stored key (tag, table, 0, key, 0, 8 time bytes) as its row key and time bytes.
    fn split<'k>(&self, raw: &'k [u8]) -> Result<(&'k [u8], &'k [u8]), StoreError> {
        if raw.len() < self.head + 9 {
            return Err(StoreError::Corrupt("short row key".into()));
        }
        Ok((&raw[self.head..raw.len() - 9], &raw[raw.len() - 8..]))
    }
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

/// What `row_as_of_exact` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowAt {
    /// The version valid then.
    Value(Vec<u8>),
    /// The row has versions, all later than the time asked for.
    NotYet,
    /// The row has no version at all.
    Never,
    /// The row is marked and the time is not the end of time: its versions
    /// cannot answer; the caller derives the answer another way.
    Marked,
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
    /// Held by `commit` while it reads the chunks a batch changes and
    /// writes them back.
    packing: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Tables whose rows pack in key order across the whole table rather than
/// by their first key part: the trace's rows are one per event under a
/// fresh correlation id per command, so grouping by it would leave one
/// entry per sled key.
const PACKED_BY_TABLE: &[&str] = &[crate::trace::TABLE];

/// The tree of a store: its rows packed (`chunk`), and the other entries.
const TREE: &str = "projection-packed";

/// Changes of one batch, applied atomically by `commit`.
#[derive(Debug, Default)]
pub struct StoreBatch {
    batch: sled::Batch,
    /// Packed entries put (row versions, sequences), by logical key (a
    /// later put of the same key wins).
    packed: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl StoreBatch {
    pub fn put_row(&mut self, key: &RowKey, valid_from: DateTime<Utc>, value: &[u8]) {
        self.packed
            .insert(key.versioned(valid_from), value.to_vec());
    }

    /// Marks a row: its versions other than the latest may not be exact
    /// for every time they cover (see `ProjectionStore::row_as_of_exact`).
    pub fn mark_row(&mut self, key: &RowKey) {
        self.batch.insert(key.marked(), &[]);
    }

    pub fn set_sequence(&mut self, order_id: &str, sequence: u64) {
        self.packed.insert(
            tagged(SEQUENCE, &[order_id.as_bytes()]),
            sequence.to_be_bytes().to_vec(),
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
            .cache_capacity(eventlog::cache::bytes_for(
                eventlog::cache::CacheUse::Projection,
            ))
            .open()?;
        let tree = db.open_tree(TREE)?;
        migrate::from_one_key_per_version(&db, &tree, dir)?;
        Ok(Self {
            db,
            tree,
            writes: Default::default(),
            packing: Default::default(),
        })
    }

    /// Excludes every other writer of this store until the guard is dropped.
    pub async fn lock_writes(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.writes.clone().lock_owned().await
    }

    /// Applies a batch atomically: the chunks its versions fall in are read,
    /// merged and written back in the same sled batch as the rest.
    pub fn commit(&self, batch: StoreBatch) -> Result<(), StoreError> {
        let _packing = self
            .packing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let StoreBatch { mut batch, packed } = batch;
        self.pack(packed, &mut batch)?;
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        eventlog::flush::flush(&self.db).await?;
        Ok(())
    }

    /// The last version of `key` valid at `at` (inclusive).
    pub fn row_as_of(
        &self,
        key: &RowKey,
        at: DateTime<Utc>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.last_with_prefix(&key.prefix(), &key.versioned(at))
    }

    /// The version of `key` valid at `at`, told apart from a row that has
    /// no version yet at `at` and from one that was never written; and
    /// `Marked` for a marked row unless `at` is the end of time (a marked
    /// row's latest version is exact, its earlier ones may not be). One
    /// seek for the version, and one for the mark unless `at` is the end of
    /// time.
    pub fn row_as_of_exact(&self, key: &RowKey, at: DateTime<Utc>) -> Result<RowAt, StoreError> {
        if at != DateTime::<Utc>::MAX_UTC && self.tree.contains_key(key.marked())? {
            return Ok(RowAt::Marked);
        }
        Ok(match self.row_as_of(key, at)? {
            Some(value) => RowAt::Value(value),
            None if self
                .first_key_with_prefix(&key.prefix(), &key.prefix())?
                .is_some() =>
            {
                RowAt::NotYet
            }
            None => RowAt::Never,
        })
    }

    /// Every row key of `table` whose key starts with `key_prefix` (parts joined), each once.
    pub fn keys_with_prefix(
        &self,
        table: &'static str,
        key_prefix: &[&str],
    ) -> Result<Vec<RowKey>, StoreError> {
        let scan = TableScan::new(table, key_prefix);
        // One seek per row, past all of its versions: a row with many
        // versions (a busy day's finance totals) costs what a row with one does.
        let mut keys: Vec<RowKey> = Vec::new();
        let mut from = scan.prefix.clone();
        while let Some(raw) = self.first_key_with_prefix(&from, &scan.prefix)? {
            let row = RowKey {
                table,
                key: scan.split(&raw)?.0.to_vec(),
            };
            from = row.prefix();
            from.extend_from_slice(&[0xFF; 9]);
            keys.push(row);
        }
        Ok(keys)
    }

    /// Every row of `table` whose key starts with `key_prefix` (parts
    /// joined) that has a version at `at`, with that version (what
    /// `keys_with_prefix` and `row_as_of` of each give), in key order. One
    /// forward scan over every version: for rows with few versions each
    /// (an order's events have one, a customer's orders one per event of
    /// the order); rows with many use `keys_with_prefix`, one seek each.
    pub fn rows_as_of_with_prefix(
        &self,
        table: &'static str,
        key_prefix: &[&str],
        at: DateTime<Utc>,
    ) -> Result<Vec<(RowKey, Vec<u8>)>, StoreError> {
        let scan = TableScan::new(table, key_prefix);
        let until = time_key(at);
        let mut rows = Vec::new();
        // The row being read and its version at `at` so far.
        let mut current: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
        self.visit_prefix(&scan.prefix, |raw, value| {
            let (key, time) = scan.split(raw)?;
            if current.as_ref().is_none_or(|(k, _)| k.as_slice() != key) {
                if let Some((k, Some(v))) = current.take() {
                    rows.push((RowKey { table, key: k }, v));
                }
                current = Some((key.to_vec(), None));
            }
            if time <= until.as_slice() {
                if let Some((_, version)) = current.as_mut() {
                    let version = version.get_or_insert_with(Vec::new);
                    version.clear();
                    version.extend_from_slice(value);
                }
            }
            Ok(())
        })?;
        if let Some((k, Some(v))) = current {
            rows.push((RowKey { table, key: k }, v));
        }
        Ok(rows)
    }

    pub fn sequence(&self, order_id: &str) -> Result<Option<u64>, StoreError> {
        let key = tagged(SEQUENCE, &[order_id.as_bytes()]);
        self.last_with_prefix(&key, &key)?
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

/// One stored entry, decoded enough to compare two stores and to show a
/// difference to a person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKey {
    /// A version of a row: table, key (parts joined with '/'), valid from.
    Row {
        table: String,
        key: String,
        valid_from: DateTime<Utc>,
    },
    /// A row's mark (`StoreBatch::mark_row`).
    RowMark {
        table: String,
        key: String,
    },
    Sequence(String),
    Checkpoint(u32),
    Parked(String),
    DeadLetter {
        partition: u32,
        offset: u64,
    },
    Unknown(Vec<u8>),
}

impl std::fmt::Display for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryKey::Row {
                table,
                key,
                valid_from,
            } => write!(
                f,
                "row {table}/{key} valid from {}",
                domain::envelope::format_time(valid_from)
            ),
            EntryKey::RowMark { table, key } => {
                write!(f, "row {table}/{key} marked (earlier versions not exact)")
            }
            EntryKey::Sequence(order) => write!(f, "last applied sequence of order {order}"),
            EntryKey::Checkpoint(partition) => write!(f, "checkpoint of partition {partition}"),
            EntryKey::Parked(order) => write!(f, "order {order} parked"),
            EntryKey::DeadLetter { partition, offset } => {
                write!(f, "dead letter {partition}:{offset}")
            }
            EntryKey::Unknown(raw) => write!(f, "unknown entry {raw:02x?}"),
        }
    }
}

impl EntryKey {
    fn decode(raw: &[u8]) -> Self {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\u{1f}', "/");
        let unknown = || EntryKey::Unknown(raw.to_vec());
        let Some((&tag, rest)) = raw.split_first() else {
            return unknown();
        };
        match tag {
            ROW => {
                let Some(table_end) = rest.iter().position(|b| *b == 0) else {
                    return unknown();
                };
                if rest.len() < table_end + 10 {
                    return unknown();
                }
                let (key, time) = rest[table_end + 1..].split_at(rest.len() - table_end - 10);
                let micros = u64::from_be_bytes(time[1..].try_into().unwrap_or([0; 8])) ^ (1 << 63);
                match DateTime::<Utc>::from_timestamp_micros(micros as i64) {
                    Some(valid_from) => EntryKey::Row {
                        table: text(&rest[..table_end]),
                        key: text(key),
                        valid_from,
                    },
                    None => unknown(),
                }
            }
            MARKED => match rest.iter().position(|b| *b == 0) {
                Some(table_end) if rest.len() > table_end + 1 && rest.ends_with(&[0]) => {
                    EntryKey::RowMark {
                        table: text(&rest[..table_end]),
                        key: text(&rest[table_end + 1..rest.len() - 1]),
                    }
                }
                _ => unknown(),
            },
            SEQUENCE => EntryKey::Sequence(text(rest)),
            PARKED => EntryKey::Parked(text(rest)),
            CHECKPOINT => match <[u8; 4]>::try_from(rest) {
                Ok(p) => EntryKey::Checkpoint(u32::from_be_bytes(p)),
                Err(_) => unknown(),
            },
            DEAD => match (rest.get(..4), rest.get(5..)) {
                (Some(p), Some(o)) if o.len() == 8 => EntryKey::DeadLetter {
                    partition: u32::from_be_bytes(p.try_into().unwrap_or([0; 4])),
                    offset: u64::from_be_bytes(o.try_into().unwrap_or([0; 8])),
                },
                _ => unknown(),
            },
            _ => unknown(),
        }
    }
}

/// One entry present in only one store, or different in the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDifference {
    pub key: EntryKey,
    /// The value in the first store (None: missing there).
    pub left: Option<String>,
    pub right: Option<String>,
}

/// What a comparison of two stores found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    pub entries: u64,
    pub different: u64,
    /// The first differences (at most the limit asked for).
    pub differences: Vec<EntryDifference>,
}

/// The first 256 bytes in hex: how binary values are shown to people.
pub fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(256).map(|b| format!("{b:02x}")).collect()
}

/// A stored value as a person reads it: JSON rows as text, numbers as numbers.
fn show_value(key: &EntryKey, value: &[u8]) -> String {
    match key {
        EntryKey::Sequence(_) | EntryKey::Checkpoint(_) => u64_of(value)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("{value:02x?}")),
        EntryKey::Parked(_) => "parked".into(),
        _ => match std::str::from_utf8(value) {
            Ok(text) => text.to_owned(),
            Err(_) => hex_prefix(value),
        },
    }
}

/// The part of a dead letter that must match: where it came from and why
/// (not when it was parked).
fn comparable(key: &EntryKey, value: &[u8]) -> Vec<u8> {
    if let EntryKey::DeadLetter { .. } = key {
        if let Ok(letter) = serde_json::from_slice::<DeadLetter>(value) {
            return format!(
                "{:?} {:?} {}",
                letter.order_id, letter.event_type, letter.error
            )
            .into_bytes();
        }
    }
    value.to_vec()
}

impl ProjectionStore {
    /// Compares every entry of two stores in key order (rows, sequences,
    /// checkpoints, parked orders, dead letters); keeps the first `limit`
    /// differences.
    pub fn compare(&self, other: &ProjectionStore, limit: usize) -> Result<Comparison, StoreError> {
        let mut left = self.logical_entries().peekable();
        let mut right = other.logical_entries().peekable();
        let mut comparison = Comparison::default();
        loop {
            let order = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(Err(_)), _) | (_, Some(Err(_))) => {
                    let error = match (left.next(), right.next()) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => e,
                        _ => return Err(StoreError::Corrupt("iteration failed".into())),
                    };
                    return Err(error);
                }
                (Some(Ok(_)), None) => std::cmp::Ordering::Less,
                (None, Some(Ok(_))) => std::cmp::Ordering::Greater,
                (Some(Ok((l, _))), Some(Ok((r, _)))) => l.cmp(r),
            };
            comparison.entries += 1;
            let (raw, l, r) = match order {
                std::cmp::Ordering::Less => {
                    let (k, v) = left.next().expect("peeked")?;
                    (k, Some(v), None)
                }
                std::cmp::Ordering::Greater => {
                    let (k, v) = right.next().expect("peeked")?;
                    (k, None, Some(v))
                }
                std::cmp::Ordering::Equal => {
                    let (k, lv) = left.next().expect("peeked")?;
                    let (_, rv) = right.next().expect("peeked")?;
                    (k, Some(lv), Some(rv))
                }
            };
            let key = EntryKey::decode(&raw);
            let same = match (&l, &r) {
                (Some(l), Some(r)) => comparable(&key, l) == comparable(&key, r),
                _ => false,
            };
            if same {
                continue;
            }
            comparison.different += 1;
            if comparison.differences.len() < limit {
                comparison.differences.push(EntryDifference {
                    left: l.map(|v| show_value(&key, &v)),
                    right: r.map(|v| show_value(&key, &v)),
                    key,
                });
            }
        }
        Ok(comparison)
    }

    /// The next offset to apply of every partition that has a checkpoint.
    pub fn checkpoints(&self) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for entry in self.tree.scan_prefix([CHECKPOINT]) {
            let (key, value) = entry?;
            if let EntryKey::Checkpoint(partition) = EntryKey::decode(&key) {
                out.insert(partition, u64_of(&value)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{DateTime, TimeZone, Utc};

    use super::{ProjectionStore, RowAt, RowKey, StoreBatch};

    #[test]
    fn the_current_version_is_found_with_one_seek_as_the_range_read_finds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let t = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        let mut batch = StoreBatch::default();
        let only_marked = RowKey::new("t", &["only-marked"]);
        let marked = RowKey::new("t", &["marked"]);
        let plain = RowKey::new("t", &["plain"]);
        // A key whose bytes extend another's: each row is its own.
        let longer = RowKey::new("t", &["plain", "x"]);
        batch.mark_row(&only_marked);
        batch.mark_row(&marked);
        batch.put_row(&marked, t(1), b"m1");
        batch.put_row(&marked, t(2), b"m2");
        batch.put_row(&plain, t(1), b"p1");
        batch.put_row(&plain, t(3), b"p3");
        batch.put_row(&longer, t(4), b"x4");
        store.commit(batch).unwrap();
        let never = RowKey::new("t", &["never"]);
        let end = DateTime::<Utc>::MAX_UTC;
        for (key, expected) in [
            (&never, RowAt::Never),
            (&only_marked, RowAt::Never),
            (&marked, RowAt::Value(b"m2".to_vec())),
            (&plain, RowAt::Value(b"p3".to_vec())),
            (&longer, RowAt::Value(b"x4".to_vec())),
        ] {
            assert_eq!(
                store.row_as_of_exact(key, end).unwrap(),
                expected,
                "{key:?}"
            );
        }
        // One scan answers what a seek per row does, at every time.
        for time in [t(0), t(1), t(2), t(3), t(4), end] {
            for prefix in [&["plain"][..], &["plain", ""][..], &[""][..], &["m"][..]] {
                let mut expected = Vec::new();
                for key in store.keys_with_prefix("t", prefix).unwrap() {
                    if let Some(value) = store.row_as_of(&key, time).unwrap() {
                        expected.push((key, value));
                    }
                }
                let scanned = store.rows_as_of_with_prefix("t", prefix, time).unwrap();
                assert_eq!(scanned, expected, "{prefix:?} at {time}");
            }
        }
        assert_eq!(
            store.rows_as_of_with_prefix("t", &[""], end).unwrap().len(),
            3
        );
        // Earlier times keep the range read's answers.
        assert_eq!(store.row_as_of_exact(&marked, t(2)).unwrap(), RowAt::Marked);
        assert_eq!(store.row_as_of_exact(&plain, t(0)).unwrap(), RowAt::NotYet);
        assert_eq!(
            store.row_as_of_exact(&plain, t(2)).unwrap(),
            RowAt::Value(b"p1".to_vec())
        );
    }
}
