//! The trace projection: every event under its correlation id, across
//! orders, so a business flow (a checkout that placed, paid and shipped
//! several orders under one id) can be read back whole, as of any time.
//! Rows are keyed (correlation id, event time, partition, offset): the key
//! order is the flow's order, event time first, ties by partition and then
//! offset. Each row keeps the original record, as history does, so reads
//! render the same CloudEvents.

use chrono::{DateTime, Utc};
use domain::RecordedEvent;

use crate::history::HistoryEntry;
use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

/// This projection's name: its directory, topics and API name.
pub const NAME: &str = "trace";

pub const TABLE: &str = "trace";

/// Longest correlation id indexed (the API accepts no longer one).
pub const MAX_CORRELATION_ID: usize = 128;

#[derive(Debug, Default)]
pub struct Trace;

/// Whether a correlation id can be indexed and asked for: 1 to 128 visible
/// ASCII characters, as the API accepts them. An event from another writer
/// with any other id is not indexed (no query could name it).
pub fn valid_correlation_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CORRELATION_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The position of an event within its flow, as text that sorts in the
/// flow's order: event time (microseconds, offset so every time is
/// positive), partition, offset. Also the connection's cursor.
fn position(time: DateTime<Utc>, partition: u32, offset: u64) -> String {
    let micros = (time.timestamp_micros() as i128) - (i64::MIN as i128);
    format!("{micros:020}.{partition:010}.{offset:020}")
}

/// Whether `cursor` is one this connection hands out.
pub fn is_cursor(cursor: &str) -> bool {
    let parts: Vec<&str> = cursor.split('.').collect();
    matches!(parts[..], [time, partition, offset]
        if time.len() == 20 && partition.len() == 10 && offset.len() == 20
            && cursor.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
}

fn row_key(correlation_id: &str, position: &str) -> RowKey {
    RowKey::new(TABLE, &[correlation_id, position])
}

impl Projection for Trace {
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
        let correlation_id = event.envelope.correlation_id.as_str();
        if !valid_correlation_id(correlation_id) {
            return Ok(Vec::new());
        }
        let (headers, payload) = event.encode();
        let entry = HistoryEntry {
            partition,
            offset,
            headers,
            payload,
        };
        let at = position(event.envelope.time, partition, offset);
        Ok(vec![Change::new(
            row_key(correlation_id, &at),
            entry.to_bytes(),
        )])
    }
}

/// One page of a flow: its events with time at or before `at`, in the
/// flow's order, after the cursor `after`, at most `first`; and whether
/// more follow.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePage {
    /// (cursor, the event, its partition, its offset)
    pub events: Vec<(String, RecordedEvent, u32, u64)>,
    pub has_next_page: bool,
}

/// Reads one page of the flow of `correlation_id`.
pub fn events(
    store: &ProjectionStore,
    correlation_id: &str,
    at: DateTime<Utc>,
    after: Option<&str>,
    first: usize,
) -> Result<TracePage, StoreError> {
    let mut page = TracePage {
        events: Vec::new(),
        has_next_page: false,
    };
    let head = correlation_id.len() + 1;
    for key in store.keys_with_prefix(TABLE, &[correlation_id, ""])? {
        let cursor = String::from_utf8_lossy(key.key.get(head..).unwrap_or_default()).into_owned();
        if after.is_some_and(|after| cursor.as_str() <= after) {
            continue;
        }
        let Some(value) = store.row_as_of(&key, at)? else {
            // Later than `at`: so is every key after it (keys are in time order).
            break;
        };
        if page.events.len() == first {
            page.has_next_page = true;
            break;
        }
        let entry = HistoryEntry::from_bytes(&value)?;
        let event = entry
            .decode()
            .map_err(|e| StoreError::Corrupt(format!("trace entry: {e}")))?;
        page.events
            .push((cursor, event, entry.partition, entry.offset));
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_sort_as_time_then_partition_then_offset() {
        let t = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros).unwrap();
        let mut positions = vec![
            position(t(5), 0, 9),
            position(t(-3), 7, 1),
            position(t(5), 0, 10),
            position(t(5), 1, 0),
            position(t(4), 2, 2),
        ];
        positions.sort();
        assert_eq!(
            positions,
            vec![
                position(t(-3), 7, 1),
                position(t(4), 2, 2),
                position(t(5), 0, 9),
                position(t(5), 0, 10),
                position(t(5), 1, 0),
            ]
        );
    }

    #[test]
    fn cursors_are_positions_and_nothing_else() {
        let t = DateTime::<Utc>::from_timestamp_micros(42).unwrap();
        assert!(is_cursor(&position(t, 3, 17)));
        for bad in ["", "1.2.3", "x", &position(t, 3, 17).replace('0', "a")] {
            assert!(!is_cursor(bad), "{bad}");
        }
    }

    #[test]
    fn only_ids_the_api_accepts_are_indexed() {
        assert!(valid_correlation_id("checkout-42"));
        assert!(!valid_correlation_id(""));
        assert!(!valid_correlation_id("a b"));
        assert!(!valid_correlation_id("a\u{1f}b"));
        assert!(!valid_correlation_id(&"x".repeat(129)));
    }
}
