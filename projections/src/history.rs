//! The history projection: per order, its events in sequence order, kept
//! as the original record (headers and payload) so that reads can render
//! CloudEvents JSON or fold the events into the order's state as of any time.

use chrono::{DateTime, Utc};
use domain::{Header, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const TABLE: &str = "history";

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
}

#[derive(Debug, Default)]
pub struct History;

fn row_key(order_id: &str, sequence: u64) -> RowKey {
    RowKey::new(TABLE, &[order_id, &format!("{sequence:020}")])
}

impl Projection for History {
    fn name(&self) -> &'static str {
        "history"
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
        let value = serde_json::to_vec(&entry).map_err(|e| ApplyError::Rule(e.to_string()))?;
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
            out.push(
                serde_json::from_slice(&value).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
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
