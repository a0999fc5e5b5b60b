//! Operator tools over the log itself (not the read models): the state of an
//! order at any time and the events that made it (`inspect`), and checking
//! the compacted snapshots topic against a fold of the events topic
//! (`snapshots`).
//!
//! These tools only read. They must never write to the log or to a read
//! model, and never trust a read model where the log can answer.

pub mod bench;
pub mod inspect;
pub mod log_fold;
pub mod rebuild;
pub mod snapshots;
