//! Records, positions and topic descriptions, as Kafka has them.

use std::fmt;

use domain::Header;

/// A topic's shape. Partitions are fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    /// `cleanup.policy=compact`: only the latest record per key is kept.
    pub compacted: bool,
    /// How long records are kept (Kafka `retention.ms`); None keeps them
    /// forever. Ignored for compacted topics. The embedded backend deletes
    /// expired records once a minute, keeping each partition's last record.
    pub retention_ms: Option<i64>,
}

/// A record as written: key, value (None is a tombstone), headers, timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Record {
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.key == key)
            .map(|h| h.value.as_slice())
    }
}

/// A record on its way to a topic; `partition: None` means by key (murmur2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    pub topic: String,
    pub partition: Option<u32>,
    pub record: Record,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: u32) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// A record read back, with where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub record: Record,
}
