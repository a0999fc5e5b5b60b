//! The errors of the read-side runtime. Each says how it reaches a client:
//! the API maps `Invalid` to VALIDATION_FAILED on its field, `NotFound`,
//! `Conflict`, `Unavailable` and `Timeout` to their codes, and the rest to
//! INTERNAL.

use eventlog::LogError;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// An argument is malformed; `field` names it as the client sent it.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The projection or generation asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with work in progress or with what is served.
    #[error("{0}")]
    Conflict(String),
    /// Not now: the generation is being built, or the node is stopping.
    #[error("{0}")]
    Unavailable(String),
    /// A read-your-writes wait ran out.
    #[error("the {projection} projection did not reach {token} within {waited_ms} ms")]
    Timeout {
        projection: &'static str,
        token: String,
        waited_ms: u128,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{what} {}: {source}", .dir.display())]
    Io {
        what: &'static str,
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A worker or build stopped with an error.
    #[error("{0}")]
    Failed(String),
}

impl ServingError {
    pub(crate) fn unknown_projection(field: &'static str) -> Self {
        Self::Invalid {
            field,
            reason: format!("must be {}", crate::registry::names_listed("or")),
        }
    }
}
