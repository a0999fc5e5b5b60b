//! The history projection: per order, its events in sequence order, kept
//! as the original record (headers and payload) so that reads can render
//! CloudEvents JSON; and the order's state after each event (table
//! `order`, temporal like every row), so that reading an order as of any
//! time is one range read, not a fold.
//!
//! A state version is valid from its event's time. Event times of one order
//! increase (the processor's clock is monotonic per partition, and restored
//! on adoption), so the version valid at T is the fold of the events with
//! time <= T. Should an event come with a time earlier than the order's
//! latest version (a log written by another writer), its state is written
//! at that latest time, so the current state stays exact, and the row is
//! marked: as-of reads of a marked order fold its history instead. Orders
//! of a store written before the state rows existed are folded, and marked
//! when their next event comes.

use chrono::{DateTime, Utc};
use domain::{Header, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowAt, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const TABLE: &str = "history";

/// The table of each order's state after each of its events.
pub const STATE: &str = "order";

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

fn state_key(order_id: &str) -> RowKey {
    RowKey::new(STATE, &[order_id])
}

/// One version of an order's state row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRow {
    /// The sequence of the last event folded.
    pub version: u64,
    /// When this version became valid: the latest event time folded.
    pub time: DateTime<Utc>,
    /// `None` until OrderPlaced.
    pub order: Option<domain::Order>,
}

impl StateRow {
    fn parse(value: &[u8]) -> Result<Self, StoreError> {
        serde_json::from_slice(value)
            .map_err(|e| StoreError::Corrupt(format!("order state row: {e}")))
    }

    fn state(self) -> domain::OrderState {
        domain::OrderState {
            version: self.version,
            order: self.order,
            applied_commands: Default::default(),
        }
    }
}

fn corrupt_entry(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("history entry: {error}"))
}

/// The state and latest event time of an order whose store has history
/// rows but no state row (written before state rows existed): a fold of
/// its history rows before `sequence`.
fn legacy_state(
    read: &ReadRow<'_>,
    order_id: &str,
    sequence: u64,
) -> Result<(domain::OrderState, Option<DateTime<Utc>>), StoreError> {
    let mut state = domain::initial_state();
    let mut latest: Option<DateTime<Utc>> = None;
    for earlier in 1..sequence {
        let Some(value) = read(&row_key(order_id, earlier))? else {
            continue;
        };
        let recorded = HistoryEntry::from_bytes(&value)?
            .decode()
            .map_err(corrupt_entry)?
            .to_recorded()
            .map_err(corrupt_entry)?;
        latest = latest.max(Some(recorded.time));
        state = domain::evolve(state, &recorded);
    }
    Ok((state, latest))
}

impl Projection for History {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        read: &ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<Change>, ApplyError> {
        let order_id = event.envelope.subject.as_str();
        let (headers, payload) = event.encode();
        let entry = HistoryEntry {
            partition,
            offset,
            headers,
            payload,
        };
        let mut changes = vec![Change::new(
            row_key(order_id, event.envelope.sequence),
            entry.to_bytes(),
        )];

        let key = state_key(order_id);
        let (state, latest, mark) = match read(&key)? {
            Some(value) => {
                let row = StateRow::parse(&value)?;
                let time = row.time;
                (row.state(), Some(time), false)
            }
            None if event.envelope.sequence > 1 => {
                let (state, latest) = legacy_state(read, order_id, event.envelope.sequence)?;
                (state, latest, true)
            }
            None => (domain::initial_state(), None, false),
        };
        let recorded = event
            .to_recorded()
            .map_err(|e| ApplyError::Rule(format!("event {}: {e}", event.envelope.id)))?;
        let state = domain::evolve(state, &recorded);
        let time = event.envelope.time;
        let row = StateRow {
            version: state.version,
            time: latest.map_or(time, |latest| latest.max(time)),
            order: state.order,
        };
        let value =
            serde_json::to_vec(&row).map_err(|e| ApplyError::Rule(format!("order state: {e}")))?;
        if mark || row.time > time {
            // Earlier versions no longer answer every time exactly.
            changes.push(Change::at(key.clone(), row.time, value));
            changes.push(Change::mark(key));
        } else {
            changes.push(Change::new(key, value));
        }
        Ok(changes)
    }
}

/// The stored bytes of the order's current state row (benchmarks compare
/// reads of it with raw store reads).
pub fn current_state_row(
    store: &ProjectionStore,
    order_id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    store.row_as_of(&state_key(order_id), DateTime::<Utc>::MAX_UTC)
}

/// The order's state as of `at` (the end of time: its current state): the
/// order and its version, `None` when it was not placed by then. One range
/// read; a fold of its history when the state row cannot answer (see the
/// module's documentation).
pub fn order_as_of(
    store: &ProjectionStore,
    order_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<(domain::Order, u64)>, StoreError> {
    match store.row_as_of_exact(&state_key(order_id), at)? {
        RowAt::Value(value) => {
            let row = StateRow::parse(&value)?;
            Ok(row.order.map(|order| (order, row.version)))
        }
        RowAt::NotYet => Ok(None),
        RowAt::Never | RowAt::Marked => {
            let folded = fold(&events(store, order_id, at)?)?;
            Ok(folded
                .state
                .order
                .map(|order| (order, folded.state.version)))
        }
    }
}

/// The events of `order_id` with time at or before `at`, oldest first.
pub fn events(
    store: &ProjectionStore,
    order_id: &str,
    at: DateTime<Utc>,
) -> Result<Vec<HistoryEntry>, StoreError> {
    // One scan: each event's row has one version.
    store
        .rows_as_of_with_prefix(TABLE, &[order_id, ""], at)?
        .into_iter()
        .map(|(_, value)| HistoryEntry::from_bytes(&value))
        .collect()
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
        let event = entry.decode().map_err(corrupt_entry)?;
        let recorded = event.to_recorded().map_err(corrupt_entry)?;
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
