//! Operator tools over the log itself: the state of an order at any time
//! and the events that made it (`inspect`, `log_fold`), checking the
//! compacted snapshots topic against a fold of the events topic
//! (`snapshots`), verifying a projection against a scratch rebuild
//! (`verify`), the rebuild benchmark (`bench`), and every operator
//! operation behind one typed API (`ops`).
//!
//! These tools never write to the log or to a served read model (but for
//! the dead-letter operations, under the store's write lock), and never
//! trust a read model where the log can answer.

pub mod bench;
pub mod export;
pub mod inspect;
pub mod log_fold;
pub mod ops;
pub mod snapshots;
pub mod verify;
