//! Retention of the embedded log: records of a topic with `retention_ms`
//! (the replies topic: a week) are deleted once older than that, as Kafka's
//! `cleanup.policy=delete` does, so a long-running node's log does not grow
//! without bound.
//!
//! A sweep walks each such partition from its start and removes records
//! whose timestamp is older than the retention, stopping at the first that
//! is not (Kafka deletes whole segments by their newest timestamp; record
//! by record is finer, and the same for records whose times grow with
//! their offsets). The low watermark rises with it. A partition's last
//! durable record is always kept, as Kafka keeps its active segment: the
//! log finds each partition's next offset from its last record when it
//! opens. Removals are plain, unsynced deletes (sled 0.34 syncs on every
//! batch): a removal lost in a crash is made again by the next sweep.

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use super::{keys, Shared};
use crate::LogError;

/// How often the node sweeps.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Most records removed by one sweep, so that a node stopping mid-sweep
/// waits little; a sweep that reaches it is followed by another soon.
const MOST_PER_SWEEP: u64 = 100_000;

/// Sweeps every `SWEEP_EVERY` until the log closes (or every handle is
/// gone: this task holds the log only while it sweeps).
pub(super) async fn run(shared: Weak<Shared>, mut closed: watch::Receiver<bool>) {
    let mut wait = SWEEP_EVERY;
    loop {
        tokio::select! {
            _ = closed.wait_for(|closed| *closed) => return,
            () = tokio::time::sleep(wait) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let swept =
            tokio::task::spawn_blocking(move || sweep(&shared, now_ms, MOST_PER_SWEEP)).await;
        wait = match swept {
            Ok(Ok(removed)) if removed >= MOST_PER_SWEEP => Duration::from_secs(1),
            Ok(Ok(removed)) => {
                if removed > 0 {
                    tracing::debug!(removed, "embedded log: expired records deleted");
                }
                SWEEP_EVERY
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "embedded log: retention sweep failed; trying again later");
                SWEEP_EVERY
            }
            Err(_) => return, // the runtime is shutting down
        };
    }
}

/// Removes records older than their topic's retention at `now_ms`, at most
/// `budget` of them; returns how many it removed.
pub(super) fn sweep(shared: &Shared, now_ms: i64, budget: u64) -> Result<u64, LogError> {
    let topics: Vec<_> = shared
        .topics
        .read()
        .map_err(super::lock_error)?
        .values()
        .filter_map(|meta| meta.retention_ms.map(|retention| (*meta, retention)))
        .collect();
    let mut removed = 0;
    for (meta, retention_ms) in topics {
        let cutoff = now_ms.saturating_sub(retention_ms);
        for partition in 0..meta.partitions {
            let high = shared
                .durable
                .read()
                .map_err(super::lock_error)?
                .get(&(meta.id, partition))
                .copied()
                .unwrap_or(0);
            if high < 2 {
                continue;
            }
            // Up to, not including, the last durable record.
            let start = keys::partition_prefix(keys::LOG, meta.id, partition);
            let end = keys::log_key(meta.id, partition, high - 1);
            for entry in shared.tree.range(start..end) {
                let (key, value) = entry?;
                if keys::timestamp_of_record(&value)? >= cutoff {
                    break;
                }
                shared.tree.remove(key)?;
                removed += 1;
                if removed >= budget {
                    return Ok(removed);
                }
            }
        }
    }
    Ok(removed)
}
