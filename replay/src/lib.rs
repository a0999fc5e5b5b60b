//! Operator tools over the log itself (not the read models): the state of an
//! order at any time and the events that made it (`inspect`), and checking
//! the compacted snapshots topic against a fold of the events topic
//! (`snapshots`).
//!
//! It also builds read models from the log: new generations (`rebuild`),
//! scratch copies to compare with the served ones (`verify`), and the
//! benchmark (`bench`).
//!
//! These tools never write to the log or to a served read model, and never
//! trust a read model where the log can answer.

pub mod bench;
pub mod inspect;
pub mod log_fold;
pub mod rebuild;
pub mod snapshots;
pub mod verify;
