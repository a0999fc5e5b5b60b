//! A sink's durable state, in its own sled database (`sinks/<name>/`): per
//! partition of the events topic the next offset to deliver and the count
//! delivered, and the parked events, keyed by order then position so an
//! order's parked events read back in log order.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// An event a receiver refused for good (a 4xx other than 429), or one
/// parked behind such an event of its order, or one that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedEvent {
    pub partition: u32,
    pub offset: u64,
    /// Empty when the record's key is not an order id.
    pub order_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub sequence: Option<u64>,
    /// The receiver's answer, when it gave one.
    pub status: Option<u16>,
    pub error: String,
    pub parked_at: DateTime<Utc>,
    pub headers: Vec<domain::Header>,
    pub payload: Option<Vec<u8>>,
}

impl ParkedEvent {
    fn key(&self) -> Vec<u8> {
        parked_key(&self.order_id, self.partition, self.offset)
    }
}

const PARKED: &[u8] = b"parked/";

fn parked_key(order_id: &str, partition: u32, offset: u64) -> Vec<u8> {
    let mut key = PARKED.to_vec();
    key.extend_from_slice(order_id.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

fn checkpoint_key(partition: u32) -> Vec<u8> {
    format!("checkpoint/{partition:010}").into_bytes()
}

fn delivered_key(partition: u32) -> Vec<u8> {
    format!("delivered/{partition:010}").into_bytes()
}

/// What one step of a partition's delivery writes, at once.
#[derive(Debug, Default)]
pub struct SinkBatch {
    pub checkpoint: Option<(u32, u64)>,
    /// The partition's delivered count, as it now stands.
    pub delivered: Option<(u32, u64)>,
    pub park: Vec<ParkedEvent>,
    /// Parked events delivered or discarded: (order, partition, offset).
    pub unpark: Vec<(String, u32, u64)>,
}

impl SinkBatch {
    pub fn is_empty(&self) -> bool {
        self.checkpoint.is_none()
            && self.delivered.is_none()
            && self.park.is_empty()
            && self.unpark.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct SinkStore {
    db: sled::Db,
}

fn u64_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a sink counter is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(array))
}

impl SinkStore {
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 << 20)
            .open()?;
        Ok(Self { db })
    }

    /// Next offset to deliver in `partition`; None for a new sink.
    pub fn checkpoint(&self, partition: u32) -> Result<Option<u64>, StoreError> {
        self.db
            .get(checkpoint_key(partition))?
            .map(|v| u64_of(&v))
            .transpose()
    }

    /// Events of `partition` the receiver acknowledged, ever.
    pub fn delivered(&self, partition: u32) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get(delivered_key(partition))?
            .map(|v| u64_of(&v))
            .transpose()?
            .unwrap_or(0))
    }

    /// Every parked event, in (order, position) order.
    pub fn parked(&self) -> Result<Vec<ParkedEvent>, StoreError> {
        self.parked_under(PARKED.to_vec())
    }

    /// The parked events of one order, in log order.
    pub fn parked_of(&self, order_id: &str) -> Result<Vec<ParkedEvent>, StoreError> {
        let mut prefix = PARKED.to_vec();
        prefix.extend_from_slice(order_id.as_bytes());
        prefix.push(0);
        self.parked_under(prefix)
    }

    fn parked_under(&self, prefix: Vec<u8>) -> Result<Vec<ParkedEvent>, StoreError> {
        self.db
            .scan_prefix(prefix)
            .values()
            .map(|value| {
                let value = value?;
                serde_json::from_slice(&value)
                    .map_err(|e| StoreError::Corrupt(format!("a parked sink event: {e}")))
            })
            .collect()
    }

    /// The orders of `partition` with parked events.
    pub fn parked_orders(&self, partition: u32) -> Result<BTreeSet<String>, StoreError> {
        Ok(self
            .parked()?
            .into_iter()
            .filter(|p| p.partition == partition)
            .map(|p| p.order_id)
            .collect())
    }

    /// Writes one batch atomically (made durable by sled's periodic flush
    /// and by `flush`: a checkpoint lost in a crash only repeats deliveries).
    pub fn commit(&self, batch: SinkBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let encode = |event: &ParkedEvent| {
            serde_json::to_vec(event).map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        // One atomic batch: a checkpoint never passes an event that is
        // neither delivered nor parked.
        let mut main = sled::Batch::default();
        for (order_id, partition, offset) in &batch.unpark {
            main.remove(parked_key(order_id, *partition, *offset));
        }
        for event in &batch.park {
            main.insert(event.key(), encode(event)?);
        }
        if let Some((partition, next)) = batch.checkpoint {
            main.insert(checkpoint_key(partition), &next.to_be_bytes());
        }
        if let Some((partition, count)) = batch.delivered {
            main.insert(delivered_key(partition), &count.to_be_bytes());
        }
        self.db.apply_batch(main)?;
        Ok(())
    }

    pub async fn flush(&self) -> Result<(), StoreError> {
        eventlog::flush::flush(&self.db).await?;
        Ok(())
    }
}
