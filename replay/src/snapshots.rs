//! `orderstore replay snapshots --verify`: every order folded from the
//! events topic must equal its latest snapshot in the compacted snapshots
//! topic, and every snapshot must belong to an order in the events topic.

use std::collections::BTreeMap;

use commands::Snapshot;
use commands::Topics;
use eventlog::{EventLog, TopicPartition};

use crate::log_fold::{fold_all, scan_partition, FoldError};

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verification {
    pub orders: usize,
    pub snapshots: usize,
    /// Records of the events topic that are not readable events (DLQ material).
    pub undecodable: u64,
    /// One line per order whose snapshot and fold differ.
    pub differences: Vec<String>,
}

impl Verification {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

pub async fn verify(log: &dyn EventLog, topics: &Topics) -> Result<Verification, FoldError> {
    let (folded, undecodable) = fold_all(log, topics).await?;
    let mut snapshots: BTreeMap<String, Snapshot> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for partition in 0..log.partition_count(&topics.snapshots).await? {
        let tp = TopicPartition::new(&topics.snapshots, partition);
        scan_partition(log, &tp, |record| {
            let key = String::from_utf8_lossy(&record.record.key).into_owned();
            match &record.record.value {
                None => {
                    snapshots.remove(&key);
                }
                Some(value) => match serde_json::from_slice::<Snapshot>(value) {
                    Ok(snapshot) => {
                        snapshots.insert(key, snapshot);
                    }
                    Err(error) => unreadable.push(format!(
                        "{key}: unreadable snapshot at {}:{}: {error}",
                        record.partition, record.offset
                    )),
                },
            }
            Ok(())
        })
        .await?;
    }
    let mut differences = unreadable;
    for (order_id, state) in &folded {
        match snapshots.get(order_id) {
            None => differences.push(format!(
                "{order_id}: no snapshot (events fold to version {})",
                state.version
            )),
            Some(snapshot) if snapshot.state != *state => differences.push(format!(
                "{order_id}: snapshot at version {} differs from the fold at version {}",
                snapshot.state.version, state.version
            )),
            Some(_) => {}
        }
    }
    for order_id in snapshots.keys().filter(|id| !folded.contains_key(*id)) {
        differences.push(format!("{order_id}: a snapshot without events"));
    }
    Ok(Verification {
        orders: folded.len(),
        snapshots: snapshots.len(),
        undecodable,
        differences,
    })
}
