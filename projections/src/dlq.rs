//! Dead letters after the fact: retry a parked order's events, in their
//! original order, once the cause is fixed (new code, a repaired record), or
//! discard them on purpose. Retrying stops at the first event that still
//! fails; that one and everything after it stay parked.

use eventlog::{Record, StoredRecord};

use crate::store::{DeadLetter, ProjectionStore, StoreError};
use crate::worker::{Pending, Projection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryReport {
    /// Dead letters that now applied (or were duplicates) and are gone.
    pub applied: usize,
    /// Dead letters still parked.
    pub still_parked: usize,
}

fn record_of(letter: &DeadLetter) -> StoredRecord {
    StoredRecord {
        topic: String::new(),
        partition: letter.partition,
        offset: letter.offset,
        record: Record {
            key: letter.order_id.clone().unwrap_or_default().into_bytes(),
            value: letter.payload.clone(),
            headers: letter.headers.clone(),
            timestamp_ms: 0,
        },
    }
}

/// Retries the parked orders (or just `only`), each in offset order.
pub fn retry(
    projection: &dyn Projection,
    store: &ProjectionStore,
    only: Option<&str>,
) -> Result<RetryReport, StoreError> {
    let letters = store.dead_letters()?;
    let mut orders: Vec<String> = letters.iter().filter_map(|l| l.order_id.clone()).collect();
    orders.dedup();
    let mut seen = std::collections::HashSet::new();
    orders.retain(|o| seen.insert(o.clone()) && only.is_none_or(|only| only == o));
    let mut report = RetryReport::default();
    for order in orders {
        let mut of_order: Vec<&DeadLetter> = letters
            .iter()
            .filter(|l| l.order_id.as_deref() == Some(&order))
            .collect();
        of_order.sort_by_key(|l| (l.partition, l.offset));
        let mut pending = Pending::new(store);
        pending.retrying = Some(order.clone());
        let mut applied = 0;
        for letter in &of_order {
            pending.apply(projection, &record_of(letter))?;
            if pending.parked.contains(&order) {
                break; // still failing: it was parked again with its new error
            }
            applied += 1;
        }
        let mut batch = std::mem::take(&mut pending.batch);
        for letter in &of_order[..applied] {
            batch.remove_dead_letter(letter.partition, letter.offset);
        }
        if applied == of_order.len() {
            batch.unpark(&order);
        }
        store.commit(batch)?;
        report.applied += applied;
        report.still_parked += of_order.len() - applied;
    }
    report.still_parked += letters
        .iter()
        .filter(|l| l.order_id.is_none() && only.is_none())
        .count();
    Ok(report)
}

/// Removes one dead letter for good; its order is unparked when it was the last.
pub fn discard(
    store: &ProjectionStore,
    partition: u32,
    offset: u64,
) -> Result<Option<DeadLetter>, StoreError> {
    let letters = store.dead_letters()?;
    let Some(letter) = letters
        .iter()
        .find(|l| l.partition == partition && l.offset == offset)
        .cloned()
    else {
        return Ok(None);
    };
    let mut batch = crate::store::StoreBatch::default();
    batch.remove_dead_letter(partition, offset);
    if let Some(order) = &letter.order_id {
        let others = letters
            .iter()
            .filter(|l| l.order_id.as_ref() == Some(order) && l.offset != offset)
            .count();
        if others == 0 {
            batch.unpark(order);
        }
    }
    store.commit(batch)?;
    Ok(Some(letter))
}

/// Parses where a dead letter came from, "partition:offset" of the events
/// topic (also the tail of a dead letter's id, "projection:partition:offset").
pub fn parse_position(text: &str) -> Option<(u32, u64)> {
    let (partition, offset) = text.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_position;

    #[test]
    fn positions_parse_and_garbage_is_refused() {
        assert_eq!(parse_position("3:42"), Some((3, 42)));
        for bad in ["", "3", "x:1", "1:-2", "1:2:3", "-1:2"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }
}
