//! The read-side runtime of a serving node: blue/green generations on disk
//! (`generation`), building a generation from the log (`rebuild`), the slot
//! each projection is served through with read-your-writes waits (`slot`),
//! the per-projection runner that keeps the served worker going and
//! builds (`build`: the log, then catching up) and switches to new
//! generations (`runner`), and how
//! far each projection is behind the log (`lag`).
//!
//! It must never touch the served generation's files while building,
//! never serve a generation that has not applied every position the
//! served one had, and never remove a generation a request still reads.

mod build;
mod error;
pub mod generation;
pub mod lag;
pub mod rebuild;
pub mod runner;
pub mod slot;

pub use error::ServingError;
pub use lag::{Lag, LagProbes, PartitionLag};
pub use rebuild::{rebuild_into, RebuildError, Rebuilt, Target};
pub use runner::{start_runners, Rebuilder, RunnerTask};
pub use slot::{ProjectionHandle, ProjectionSlot, ReadModels, RebuildOutcome, RebuildStatus};
