//! Reading and writing packed rows (`chunk`): the logical keys and values
//! of one key per version, found through the chunks that hold them.

use std::collections::BTreeMap;

use super::chunk::{self, Chunk, Entry};
use super::{ProjectionStore, StoreError};

impl ProjectionStore {
    /// The chunk holding the last entry at or before `key` within its group.
    fn floor_chunk(&self, key: &[u8]) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let Some(group) = chunk::group_len(key) else {
            return Ok(None);
        };
        Ok(self
            .tree
            .range(&key[..group]..=key)
            .next_back()
            .transpose()?)
    }

    /// The value of the last entry at or before `key` if its key starts
    /// with `prefix` (a row's last version at a time).
    pub(super) fn last_with_prefix(
        &self,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((start, bytes)) = self.floor_chunk(key)? else {
            return Ok(None);
        };
        let chunk = Chunk::decode(&start, &bytes)?;
        Ok(chunk
            .last_at_or_before(key)
            .filter(|i| chunk.starts_with(*i, prefix))
            .map(|i| chunk.value(i).to_vec()))
    }

    /// The key of the first entry at or after `from` if it starts with
    /// `prefix` (a packed key's prefix: a stored key starting with it is a
    /// chunk's start).
    pub(super) fn first_key_with_prefix(
        &self,
        from: &[u8],
        prefix: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let mut key = Vec::new();
        if let Some((start, bytes)) = self.floor_chunk(from)? {
            let chunk = Chunk::decode(&start, &bytes)?;
            if let Some(i) = chunk.first_at_or_after(from) {
                chunk.key_into(i, &mut key);
                return Ok(key.starts_with(prefix).then_some(key));
            }
        }
        // Otherwise it is the start of the first chunk after `from` (a
        // chunk starting at `from` would have been the one above).
        let next = self.tree.range(from..).next().transpose()?;
        Ok(next
            .filter(|(start, _)| start.starts_with(prefix))
            .map(|(start, _)| start.to_vec()))
    }

    /// Calls `visit` with every entry whose key starts with `prefix`, in
    /// key order.
    pub(super) fn visit_prefix(
        &self,
        prefix: &[u8],
        mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A prefix within one group may start inside a chunk that starts
        // before it; a wider one starts at a chunk's start.
        let from = match chunk::group_len(prefix) {
            Some(_) => self.floor_chunk(prefix)?.map(|(start, _)| start.to_vec()),
            None => None,
        }
        .unwrap_or_else(|| prefix.to_vec());
        let mut key = Vec::new();
        for stored in self.tree.range(from..) {
            let (start, bytes) = stored?;
            if start.as_ref() > prefix && !start.starts_with(prefix) {
                break;
            }
            let chunk = Chunk::decode(&start, &bytes)?;
            for i in chunk.first_at_or_after(prefix).unwrap_or(chunk.len())..chunk.len() {
                chunk.key_into(i, &mut key);
                if !key.starts_with(prefix) {
                    return Ok(());
                }
                visit(&key, chunk.value(i))?;
            }
        }
        Ok(())
    }

    /// Every entry in key order, rows unpacked: what one key per version
    /// stored (`compare` reads two stores so, whatever their chunks).
    pub(super) fn logical_entries(
        &self,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + '_ {
        self.tree.iter().flat_map(|stored| {
            let unpacked = stored.map_err(StoreError::from).and_then(|(key, value)| {
                if chunk::group_len(&key).is_none() {
                    return Ok(vec![(key.to_vec(), value.to_vec())]);
                }
                Ok(Chunk::decode(&key, &value)?.to_entries())
            });
            match unpacked {
                Ok(entries) => entries.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(error) => vec![Err(error)],
            }
        })
    }

    /// Adds the writes of `rows` (logical keys, in order) to `batch`: each
    /// group's chunks that the rows fall in, merged and cut again.
    pub(super) fn pack(
        &self,
        rows: BTreeMap<Vec<u8>, Vec<u8>>,
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.next() {
            let group = first.0[..chunk::group_len(&first.0).unwrap_or(first.0.len())].to_vec();
            let mut puts = vec![first];
            while let Some(next) = rows.next_if(|(key, _)| key.starts_with(&group)) {
                puts.push(next);
            }
            self.pack_group(&group, puts, batch)?;
        }
        Ok(())
    }

    /// `pack` for the puts of one group, in key order: each chunk a put
    /// falls in is read once, and only those are written back.
    fn pack_group(
        &self,
        group: &[u8],
        puts: Vec<Entry>,
        batch: &mut sled::Batch,
    ) -> Result<(), StoreError> {
        let mut chunks: Vec<Loaded> = Vec::new();
        // Puts before the group's first chunk, when it has none.
        let mut fresh: Vec<Entry> = Vec::new();
        for (key, value) in puts {
            let in_last = chunks
                .last()
                .is_some_and(|last| last.next.as_ref().is_none_or(|next| key < *next));
            if !in_last {
                // The chunk starting at or before the key; for a key before
                // every chunk, the group's first.
                let start = match self.floor_chunk(&key)? {
                    Some(floor) => Some(floor),
                    None => self.next_chunk(group, group)?,
                };
                match start {
                    Some((start, bytes)) => {
                        let next = self
                            .next_chunk(group, &start)?
                            .map(|(next, _)| next.to_vec());
                        chunks.push(Loaded {
                            entries: Chunk::decode(&start, &bytes)?.to_entries(),
                            start: start.to_vec(),
                            next,
                            appending: true,
                        });
                    }
                    None => {
                        fresh.push((key, value));
                        continue;
                    }
                }
            }
            let last = chunks.last_mut().expect("a chunk was loaded above");
            match last.entries.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(at) => {
                    last.entries[at].1 = value;
                    last.appending = false;
                }
                Err(at) => {
                    last.appending &= at == last.entries.len();
                    last.entries.insert(at, (key, value));
                }
            }
        }
        for piece in chunk::pieces(fresh, true) {
            if let Some((first, _)) = piece.first() {
                batch.insert(first.as_slice(), chunk::encode(&piece));
            }
        }
        for loaded in chunks {
            let pieces = chunk::pieces(loaded.entries, loaded.appending);
            if pieces.iter().all(|piece| piece[0].0 != loaded.start) {
                batch.remove(loaded.start);
            }
            for piece in pieces {
                batch.insert(piece[0].0.as_slice(), chunk::encode(&piece));
            }
        }
        Ok(())
    }

    /// The first chunk of `group` starting after `after`.
    fn next_chunk(
        &self,
        group: &[u8],
        after: &[u8],
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let next = self
            .tree
            .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
            .next()
            .transpose()?;
        Ok(next.filter(|(start, _)| start.starts_with(group)))
    }
}

/// A chunk read by `pack_group`, with the puts that fall in it.
struct Loaded {
    start: Vec<u8>,
    entries: Vec<Entry>,
    /// The start of the group's next chunk: puts before it fall in this one.
    next: Option<Vec<u8>>,
    /// Every put went after its last entry.
    appending: bool,
}
