//! The read side: a projection is a pure `apply(event) -> row changes` plus
//! its storage. The worker loop reads events, applies them in batches and
//! writes the read model with its checkpoint in one atomic sled batch.
//!
//! A projection must never write a row version older than the row's latest
//! (rows have one source partition, whose event time only grows), and never
//! advance its checkpoint without the rows that go with it.

pub mod customer;
pub mod dlq;
pub mod finance;
pub mod history;
pub mod registry;
pub mod serving;
pub mod sinks;
pub mod store;
pub mod trace;
pub mod worker;

pub use registry::{all, named, names};
pub use store::{DeadLetter, ProjectionStore, RowKey};
pub use worker::{ApplyError, Change, Projection};
