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
pub mod generation;
pub mod history;
pub mod store;
pub mod worker;

pub use store::{DeadLetter, ProjectionStore, RowKey};
pub use worker::{ApplyError, Change, Projection};

/// The names of every projection, in the order the API lists them.
pub const NAMES: [&str; 3] = ["history", "customer", "finance"];

/// The projection called `name`, if there is one.
pub fn named(name: &str) -> Option<std::sync::Arc<dyn Projection>> {
    Some(match name {
        "history" => std::sync::Arc::new(history::History),
        "customer" => std::sync::Arc::new(customer::Customer),
        "finance" => std::sync::Arc::new(finance::Finance),
        _ => return None,
    })
}
