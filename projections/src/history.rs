//! The history projection: per order, its events in sequence order, kept
//! as the original record (headers and payload) so that reads can render
//! CloudEvents JSON or fold the events into the order's state as of any time.

use chrono::{DateTime, Utc};
use domain::{Header, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const TABLE: &str = "history";

/// This projection's name: its directory, topics and API name.
pub const NAME: &str = "history";

/// One event of an order's history, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub partition: u32,
    pub offset: u64,
    pub headers: Vec<Header>,
    pub payload: Vec<u8>,
}

impl HistoryEntry {
    pub fn decode(&self) -> Result<RecordedEvent, domain::EnvelopeError> {
        RecordedEvent::decode(&self.headers, &self.payload)
    }

    /// The stored form: a 0 byte (JSON never starts with one), then
    /// partition, offset, the headers and the payload, lengths first, all
    /// big-endian. A quarter of the JSON form's size (which wrote bytes as
    /// arrays of numbers), and rows written by earlier versions in JSON
    /// still read.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size = 1
            + 4
            + 8
            + 2
            + self
                .headers
                .iter()
                .map(|h| 2 + h.key.len() + 4 + h.value.len())
                .sum::<usize>()
            + 4
            + self.payload.len();
        let mut out = Vec::with_capacity(size);
        out.push(BINARY);
        out.extend_from_slice(&self.partition.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&(self.headers.len() as u16).to_be_bytes());
        for header in &self.headers {
            out.extend_from_slice(&(header.key.len() as u16).to_be_bytes());
            out.extend_from_slice(header.key.as_bytes());
            out.extend_from_slice(&(header.value.len() as u32).to_be_bytes());
            out.extend_from_slice(&header.value);
        }
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// Reads either stored form; corrupt bytes are an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("history entry: {what}"));
        let Some((&BINARY, mut rest)) = bytes.split_first() else {
            return serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()));
        };
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            if rest.len() < n {
                return Err(corrupt("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let partition = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt("partition"))?);
        let offset = u64::from_be_bytes(take(8)?.try_into().map_err(|_| corrupt("offset"))?);
        let count = u16::from_be_bytes(take(2)?.try_into().map_err(|_| corrupt("headers"))?);
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = u16::from_be_bytes(take(2)?.try_into().map_err(|_| corrupt("key"))?);
            let key = std::str::from_utf8(take(usize::from(len))?)
                .map_err(|_| corrupt("header key is not UTF-8"))?
                .to_owned();
            let len = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt("value"))?);
            let value = take(len as usize)?.to_vec();
            headers.push(Header { key, value });
        }
        let len = u32::from_be_bytes(take(4)?.try_into().map_err(|_| corrupt("payload"))?);
        let payload = take(len as usize)?.to_vec();
        if !rest.is_empty() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Self {
            partition,
            offset,
            headers,
            payload,
        })
    }
}

/// First byte of the binary stored form.
const BINARY: u8 = 0;

#[derive(Debug, Default)]
pub struct History;

fn row_key(order_id: &str, sequence: u64) -> RowKey {
    RowKey::new(TABLE, &[order_id, &format!("{sequence:020}")])
}

impl Projection for History {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        _read: &ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<Change>, ApplyError> {
        let (headers, payload) = event.encode();
        let entry = HistoryEntry {
            partition,
            offset,
            headers,
            payload,
        };
        let value = entry.to_bytes();
        Ok(vec![Change {
            key: row_key(&event.envelope.subject, event.envelope.sequence),
            value,
        }])
    }
}

/// The events of `order_id` with time at or before `at`, oldest first.
pub fn events(
    store: &ProjectionStore,
    order_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut out = Vec::new();
    for key in store.keys_with_prefix(TABLE, &[order_id, ""])? {
        if let Some(value) = store.row_as_of(&key, at)? {
            out.push(HistoryEntry::from_bytes(&value)?);
        }
    }
    Ok(out)
}

/// An order folded from its history entries: the state and the decoded
/// events that made it, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    pub state: domain::OrderState,
    pub events: Vec<(RecordedEvent, u32, u64)>,
}

/// Folds history entries (as `events` returns them) into the order's state.
pub fn fold(entries: &[HistoryEntry]) -> Result<Folded, StoreError> {
    let mut state = domain::initial_state();
    let mut events = Vec::with_capacity(entries.len());
    for entry in entries {
        let event = entry
            .decode()
            .map_err(|e| StoreError::Corrupt(format!("history entry: {e}")))?;
        let recorded = event
            .to_recorded()
            .map_err(|e| StoreError::Corrupt(format!("history entry: {e}")))?;
        state = domain::evolve(state, &recorded);
        events.push((event, entry.partition, entry.offset));
    }
    Ok(Folded { state, events })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry() -> HistoryEntry {
        HistoryEntry {
            partition: 3,
            offset: 1042,
            headers: vec![
                Header::new("ce_type", "OrderPlaced"),
                Header::new("ce_id", ""),
                Header {
                    key: "raw".into(),
                    value: vec![0, 255, 7],
                },
            ],
            payload: vec![1, 2, 3, 0, 9],
        }
    }

    #[test]
    fn the_binary_form_reads_back_the_same_entry() {
        let bytes = entry().to_bytes();
        assert_eq!(HistoryEntry::from_bytes(&bytes).unwrap(), entry());
        let json = serde_json::to_vec(&entry()).unwrap();
        assert!(
            bytes.len() * 2 < json.len(),
            "{} vs {}",
            bytes.len(),
            json.len()
        );
    }

    #[test]
    fn rows_stored_as_json_by_earlier_versions_still_read() {
        let json = serde_json::to_vec(&entry()).unwrap();
        assert_eq!(HistoryEntry::from_bytes(&json).unwrap(), entry());
    }

    #[test]
    fn truncated_or_padded_bytes_are_an_error_not_a_panic() {
        let bytes = entry().to_bytes();
        for cut in 1..bytes.len() {
            assert!(
                HistoryEntry::from_bytes(&bytes[..cut]).is_err(),
                "accepted {cut} of {} bytes",
                bytes.len()
            );
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(HistoryEntry::from_bytes(&padded).is_err());
        assert!(HistoryEntry::from_bytes(&[]).is_err());
        let mut huge = bytes[..13].to_vec();
        huge.extend_from_slice(&u16::MAX.to_be_bytes());
        assert!(HistoryEntry::from_bytes(&huge).is_err());
    }
}
