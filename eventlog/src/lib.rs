//! The log: a small Kafka-shaped trait (`EventLog`), its embedded backend on
//! sled, its Kafka backend on rdkafka, the partitioner and the conformance
//! suite both backends pass. It knows records, not orders. The node's
//! storage budgets live beside it: the sled page cache (`cache`) and the
//! data directory's disk reserve (`disk`).
//!
//! Only this crate knows how records are stored. It must never acknowledge a
//! write before it is durable, and never let a reader see part of a
//! transaction.

pub mod cache;
pub mod conformance;
pub mod disk;
pub mod embedded;
mod error;
pub mod failpoint;
pub mod flush;
pub mod kafka;
mod log;
pub mod partitioner;
mod record;

pub use error::{retry_transient, shared_shutdown, LogError, Shutdown, Transient};
pub use log::{EventLog, GroupOffset, LogConsumer, LogTransaction};
pub use record::{OutgoingRecord, Position, Record, StoredRecord, TopicPartition, TopicSpec};
