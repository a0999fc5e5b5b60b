//! Converting a store written one sled key per version (tree `projection`,
//! before packed rows) into the packed tree, once, when it is opened.
//!
//! The packed tree is filled from scratch and the old tree dropped only
//! after; a crash before the drop leaves the old tree whole, and the next
//! open starts again.

use std::path::Path;

use super::chunk::{self, Entry};
use super::{StoreError, MARK, MARKED, ROW};

/// The tree of a store written one key per version.
const LEGACY: &[u8] = b"projection";

/// Entries of one group held before they are written (a multiple of a
/// chunk's entries, so every chunk but a group's last is full).
const STREAMED: usize = 64 * chunk::MAX_ENTRIES;

/// Entries written per sled batch while converting.
const BATCH: usize = 10_000;

pub(super) fn from_one_key_per_version(
    db: &sled::Db,
    packed: &sled::Tree,
    dir: &Path,
) -> Result<(), StoreError> {
    if !db.tree_names().iter().any(|name| name.as_ref() == LEGACY) {
        return Ok(());
    }
    let legacy = db.open_tree(LEGACY)?;
    if !legacy.is_empty() {
        tracing::info!(dir = %dir.display(), entries = legacy.len(), "packing a projection store written one key per version");
        packed.clear()?;
        let mut writer = Writer::new(packed);
        // The versions of the group being read.
        let mut group: Vec<Entry> = Vec::new();
        for stored in legacy.iter() {
            let (key, value) = stored?;
            if chunk::group_len(&key).is_none() {
                writer.insert(key.to_vec(), value.to_vec())?;
                continue;
            }
            if key.first() == Some(&ROW) && key.ends_with(&MARK) {
                // A mark: its own key, the row's prefix under its tag.
                let mut mark = key[..key.len() - MARK.len()].to_vec();
                mark[0] = MARKED;
                writer.insert(mark, Vec::new())?;
                continue;
            }
            if group
                .first()
                .is_some_and(|(first, _)| !same_group(first, &key))
            {
                writer.chunks(std::mem::take(&mut group))?;
            }
            group.push((key.to_vec(), value.to_vec()));
            if group.len() >= STREAMED {
                // A table packed as one group (the trace) is written as it
                // is read, not held whole.
                writer.chunks(std::mem::take(&mut group))?;
            }
        }
        writer.chunks(group)?;
        writer.finish()?;
        packed.flush()?;
        tracing::info!(dir = %dir.display(), packed = packed.len(), "projection store packed");
    }
    drop(legacy);
    db.drop_tree(LEGACY)?;
    db.flush()?;
    Ok(())
}

fn same_group(a: &[u8], b: &[u8]) -> bool {
    match (chunk::group_len(a), chunk::group_len(b)) {
        (Some(x), Some(y)) => a[..x] == b[..y],
        _ => a == b,
    }
}

/// Writes entries to the packed tree in batches.
struct Writer<'a> {
    tree: &'a sled::Tree,
    batch: sled::Batch,
    pending: usize,
}

impl<'a> Writer<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        Self {
            tree,
            batch: sled::Batch::default(),
            pending: 0,
        }
    }

    fn insert(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.batch.insert(key, value);
        self.pending += 1;
        if self.pending >= BATCH {
            self.finish()?;
        }
        Ok(())
    }

    /// One group's versions, in key order, as chunks.
    fn chunks(&mut self, group: Vec<Entry>) -> Result<(), StoreError> {
        if group.is_empty() {
            return Ok(());
        }
        for piece in chunk::pieces(group, true) {
            self.insert(piece[0].0.clone(), chunk::encode(&piece))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        self.pending = 0;
        Ok(())
    }
}
