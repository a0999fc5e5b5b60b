//! Packed rows: the versions of the rows of one group (a table and the first
//! part of the row key: one order's history, one order's state, one
//! customer's orders) are stored up to `MAX_ENTRIES` to a sled key.
//!
//! Why: sled 0.34 keeps an in-memory page-table entry for every page of
//! every tree, loaded at open, and a leaf page holds at most 16 keys
//! (BENCHMARKS.md, "where the memory goes"). Memory follows the number of
//! keys, so one key per version made a node's RSS grow with its history.
//!
//! The logical keys (tag, table, 0, key, 0, 8 time bytes) are those one
//! key per version used; a chunk is stored under the logical key of its
//! first entry, holds a sorted run of its group's entries, and runs of one
//! group never overlap. So the chunk that holds the last entry at or before
//! a key is the last chunk starting at or before it within the group: one
//! reverse seek, as before.

use std::cmp::Ordering;

use super::{StoreError, ROW, SEQUENCE};

/// The first byte of a chunk's stored value; then the number of entries
/// (2 bytes), and each entry: its key after the group prefix (length in 2
/// bytes first) and its value (length in 4 bytes first), all big-endian.
const FORMAT: u8 = 1;

/// Entries per chunk, at most. Every put rewrites its chunk, so this bounds
/// what a put writes in a group with many entries (a customer's orders);
/// 16 wrote 7 times the logical bytes to a customer view's disk, 8 halves
/// that for a tenth more keys (BENCHMARKS.md, "packed rows").
pub(super) const MAX_ENTRIES: usize = 8;

/// Bytes of entries per chunk, at most (a larger single entry stands alone).
pub(super) const MAX_BYTES: usize = 8 * 1024;

/// A row separator: the end of the first key part.
const PART: u8 = 0x1f;

/// The length of the group prefix of a packed key, `None` for a key that
/// is not packed (or a scan prefix that ends before its group does).
/// - A row version (tag, table, 0, key parts, 0, time): tag, table, 0, the
///   first key part and the byte that ends it (the next part's separator
///   or the key's 0), so one order's history or one customer's orders pack
///   together; for a table in `PACKED_BY_TABLE`, tag, table and 0.
/// - An order's last applied sequence (tag, order id): the tag alone; they
///   pack in key order, up to `MAX_ENTRIES` orders to a sled key.
pub(super) fn group_len(key: &[u8]) -> Option<usize> {
    match *key.first()? {
        ROW => {
            let table_end = 1 + key.get(1..)?.iter().position(|b| *b == 0)?;
            let first = table_end + 1;
            if super::PACKED_BY_TABLE
                .iter()
                .any(|table| table.as_bytes() == &key[1..table_end])
            {
                return Some(first);
            }
            let end = key
                .get(first..)?
                .iter()
                .position(|b| *b == 0 || *b == PART)?;
            Some(first + end + 1)
        }
        SEQUENCE => Some(1),
        _ => None,
    }
}

/// An owned entry: its full logical key and its value.
pub(super) type Entry = (Vec<u8>, Vec<u8>);

/// A stored chunk, decoded: its entries borrow the stored bytes.
#[derive(Debug)]
pub(super) struct Chunk<'a> {
    /// The group prefix every entry's key starts with.
    group: &'a [u8],
    /// Each entry's key after the group prefix, and its value.
    entries: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Chunk<'a> {
    /// Decodes the chunk stored under `start` (its first entry's key).
    pub(super) fn decode(start: &'a [u8], bytes: &'a [u8]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("packed rows: {what}"));
        let group_len = group_len(start).ok_or_else(|| corrupt("key without a group"))?;
        let Some((&FORMAT, mut rest)) = bytes.split_first() else {
            return Err(corrupt("unknown format"));
        };
        let take = |rest: &mut &'a [u8], n: usize| -> Result<&'a [u8], StoreError> {
            if rest.len() < n {
                return Err(corrupt("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            *rest = tail;
            Ok(head)
        };
        let count = take(&mut rest, 2)?;
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let len = take(&mut rest, 2)?;
            let suffix = take(&mut rest, usize::from(u16::from_be_bytes([len[0], len[1]])))?;
            let len = take(&mut rest, 4)?;
            let value = take(
                &mut rest,
                u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize,
            )?;
            entries.push((suffix, value));
        }
        let chunk = Self {
            group: &start[..group_len],
            entries,
        };
        let sorted = chunk.entries.windows(2).all(|pair| pair[0].0 < pair[1].0);
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        if chunk.entries.is_empty() || !sorted || chunk.cmp_key(0, start) != Ordering::Equal {
            return Err(corrupt("entries out of order"));
        }
        Ok(chunk)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entry `i`'s key compared with `key`.
    fn cmp_key(&self, i: usize, key: &[u8]) -> Ordering {
        self.cmp_suffix(self.entries[i].0, key)
    }

    /// The key made of this chunk's group and `suffix`, compared with `key`.
    fn cmp_suffix(&self, suffix: &[u8], key: &[u8]) -> Ordering {
        let (head, tail) = key.split_at(self.group.len().min(key.len()));
        self.group.cmp(head).then_with(|| suffix.cmp(tail))
    }

    /// Whether entry `i`'s key starts with `prefix`.
    pub(super) fn starts_with(&self, i: usize, prefix: &[u8]) -> bool {
        let g = self.group.len();
        if prefix.len() <= g {
            return self.group.starts_with(prefix);
        }
        prefix.starts_with(self.group) && self.entries[i].0.starts_with(&prefix[g..])
    }

    /// The last entry whose key is at or before `key`.
    pub(super) fn last_at_or_before(&self, key: &[u8]) -> Option<usize> {
        self.entries
            .partition_point(|(suffix, _)| self.cmp_suffix(suffix, key) != Ordering::Greater)
            .checked_sub(1)
    }

    /// The first entry whose key is at or after `key`.
    pub(super) fn first_at_or_after(&self, key: &[u8]) -> Option<usize> {
        let index = self
            .entries
            .partition_point(|(suffix, _)| self.cmp_suffix(suffix, key) == Ordering::Less);
        (index < self.entries.len()).then_some(index)
    }

    /// Entry `i`'s full key, written into `out` (cleared first).
    pub(super) fn key_into(&self, i: usize, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(self.group);
        out.extend_from_slice(self.entries[i].0);
    }

    pub(super) fn value(&self, i: usize) -> &'a [u8] {
        self.entries[i].1
    }

    /// The entries, owned.
    pub(super) fn to_entries(&self) -> Vec<Entry> {
        (0..self.len())
            .map(|i| {
                let mut key = Vec::new();
                self.key_into(i, &mut key);
                (key, self.value(i).to_vec())
            })
            .collect()
    }
}

/// The stored bytes of a sorted run of one group's entries.
pub(super) fn encode(entries: &[Entry]) -> Vec<u8> {
    let group = entries
        .first()
        .and_then(|(key, _)| group_len(key))
        .unwrap_or(0);
    let size = 3 + entries
        .iter()
        .map(|(k, v)| 6 + k.len() - group + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.push(FORMAT);
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for (key, value) in entries {
        let suffix = &key[group..];
        out.extend_from_slice(&(suffix.len() as u16).to_be_bytes());
        out.extend_from_slice(suffix);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn entry_bytes((key, value): &Entry) -> usize {
    6 + key.len() + value.len()
}

/// Cuts a sorted run into chunks within the limits. `appending`: the run
/// grew at its end (a row's next version, an order's next event), so the
/// first chunks are filled and the last keeps the room; otherwise (an
/// insert inside the run) the run is cut evenly.
pub(super) fn pieces(entries: Vec<Entry>, appending: bool) -> Vec<Vec<Entry>> {
    let total: usize = entries.iter().map(entry_bytes).sum();
    if entries.len() <= MAX_ENTRIES && total <= MAX_BYTES {
        return vec![entries];
    }
    if appending {
        return fill(entries);
    }
    let count = entries
        .len()
        .div_ceil(MAX_ENTRIES)
        .max(total.div_ceil(MAX_BYTES));
    let per = entries.len().div_ceil(count);
    let mut out = Vec::new();
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let run: Vec<Entry> = entries.by_ref().take(per).collect();
        out.extend(fill(run));
    }
    out
}

/// Cuts a run front to back, each chunk as full as the limits allow.
fn fill(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    let mut out: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry_bytes(&entry);
        match out.last_mut() {
            Some(last) if last.len() < MAX_ENTRIES && bytes + size <= MAX_BYTES => {
                bytes += size;
                last.push(entry);
            }
            _ => {
                bytes = size;
                out.push(vec![entry]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(first: &str, rest: &str) -> Vec<u8> {
        let mut out = b"rtable\0".to_vec();
        out.extend_from_slice(first.as_bytes());
        if !rest.is_empty() {
            out.push(PART);
            out.extend_from_slice(rest.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&[9; 8]);
        out
    }

    #[test]
    fn a_group_is_the_table_and_the_first_key_part() {
        let k = key("order-1", "00000000000000000001");
        assert_eq!(&k[..group_len(&k).unwrap()], b"rtable\0order-1\x1f");
        let k = key("order-1", "");
        assert_eq!(&k[..group_len(&k).unwrap()], b"rtable\0order-1\0");
        assert_eq!(group_len(b"rtable\0"), None);
        assert_eq!(group_len(b"rtable\0order"), None);
        assert_eq!(group_len(b"r"), None);
        assert_eq!(group_len(b"sorder-1"), Some(1));
        assert_eq!(group_len(b"k\0\0\0\x01"), None);
    }

    #[test]
    fn a_chunk_reads_back_its_entries_and_finds_keys_by_order() {
        let entries: Vec<Entry> = (1..=5)
            .map(|i| (key("o", &format!("{i:02}")), vec![i as u8; i]))
            .collect();
        let bytes = encode(&entries);
        let chunk = Chunk::decode(&entries[0].0, &bytes).unwrap();
        assert_eq!(chunk.to_entries(), entries);
        assert_eq!(chunk.last_at_or_before(&key("o", "03")), Some(2));
        assert_eq!(chunk.last_at_or_before(&key("o", "035")), Some(2));
        assert_eq!(chunk.last_at_or_before(&key("o", "00")), None);
        assert_eq!(chunk.first_at_or_after(&key("o", "035")), Some(3));
        assert_eq!(chunk.first_at_or_after(&key("o", "99")), None);
        assert!(chunk.starts_with(1, b"rtable\0o\x1f02"));
        assert!(!chunk.starts_with(1, b"rtable\0o\x1f03"));
        assert!(chunk.starts_with(1, b"rtable\0"));
    }

    #[test]
    fn corrupt_chunks_are_an_error_not_a_panic() {
        let entries: Vec<Entry> = (1..=3)
            .map(|i| (key("o", &format!("{i:02}")), vec![7; 3]))
            .collect();
        let bytes = encode(&entries);
        for cut in 0..bytes.len() {
            assert!(
                Chunk::decode(&entries[0].0, &bytes[..cut]).is_err(),
                "{cut}"
            );
        }
        // Stored under another key than its first entry's.
        assert!(Chunk::decode(&entries[1].0, &bytes).is_err());
        let reversed: Vec<Entry> = entries.iter().rev().cloned().collect();
        assert!(Chunk::decode(&reversed[0].0, &encode(&reversed)).is_err());
    }

    #[test]
    fn runs_are_cut_within_the_limits() {
        let run = |n: usize, size: usize| -> Vec<Entry> {
            (0..n)
                .map(|i| (key("o", &format!("{i:04}")), vec![1; size]))
                .collect()
        };
        let sizes = |pieces: &[Vec<Entry>]| pieces.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(MAX_ENTRIES, 8);
        assert_eq!(sizes(&pieces(run(8, 10), true)), [8]);
        assert_eq!(sizes(&pieces(run(9, 10), true)), [8, 1]);
        assert_eq!(sizes(&pieces(run(9, 10), false)), [5, 4]);
        assert_eq!(sizes(&pieces(run(20, 10), false)), [7, 7, 6]);
        // Bytes limit: 2,000-byte values, four to a chunk.
        assert_eq!(sizes(&pieces(run(7, 2_000), true)), [4, 3]);
        assert_eq!(sizes(&pieces(run(1, 50_000), true)), [1]);
        for cut in [pieces(run(100, 900), false), pieces(run(100, 900), true)] {
            assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), 100);
            for piece in &cut {
                let bytes: usize = piece.iter().map(entry_bytes).sum();
                assert!(piece.len() <= MAX_ENTRIES && bytes <= MAX_BYTES);
            }
        }
    }
}
