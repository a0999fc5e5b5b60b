//! The one error type of the eventlog crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("partition {topic}/{partition} is held by an open transaction")]
    PartitionBusy { topic: String, partition: u32 },
    #[error("write failed: {0}")]
    WriteFailed(String),
    #[error("cannot reach Kafka at {0}")]
    Unreachable(String),
    #[error("kafka: {0}")]
    Kafka(String),
    #[error("the transaction was aborted: {0}")]
    Aborted(String),
    #[error("this producer was fenced by a newer one: {0}")]
    Fenced(String),
    #[error("the log is closed")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Invalid(String),
}
