//! The log: a small Kafka-shaped trait (`EventLog`), its embedded backend on
//! sled, the topic layout, and the command processor with its aggregate
//! state store.
//!
//! Only this crate knows how records are stored. It must never acknowledge a
//! write before it is durable, and never let a reader see part of a
//! transaction.

pub mod conformance;
pub mod embedded;
mod error;
pub mod kafka;
mod log;
pub mod partitioner;
pub mod processor;
mod record;
pub mod topics;

pub use error::{retry_transient, shared_shutdown, LogError, Shutdown};
pub use log::{EventLog, GroupOffset, LogConsumer, LogTransaction};
pub use record::{OutgoingRecord, Position, Record, StoredRecord, TopicPartition, TopicSpec};
