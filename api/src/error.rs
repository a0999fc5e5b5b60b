//! The API boundary's errors: every failure reaches the client as a GraphQL
//! error with a stable `extensions.code`, never with internal details.

use async_graphql::ErrorExtensions;
use commands::{CommandsError, RejectionReply};
use projections::serving::ServingError;
use replay::ops::OpsError;

/// Codes of errors the API itself raises (rejections carry the domain's codes).
pub const TIMEOUT: &str = "TIMEOUT";
pub const VALIDATION_FAILED: &str = "VALIDATION_FAILED";
pub const INTERNAL: &str = "INTERNAL";
/// The request conflicts with work in progress (e.g. a rebuild already running).
pub const CONFLICT: &str = "CONFLICT";
/// The node cannot do it now (e.g. it is stopping).
pub const UNAVAILABLE: &str = "UNAVAILABLE";
/// An admin operation from a client that may not run them.
pub const FORBIDDEN: &str = "FORBIDDEN";
/// The thing asked for does not exist.
pub const NOT_FOUND: &str = "NOT_FOUND";

/// An error for the client: a code, a message and, for validation, the field.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into
/// a plain message, and this one must keep its `extensions.code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
    /// When to try again (`extensions.retryAfterMs`), for errors that pass.
    pub retry_after_ms: Option<u64>,
}

/// The retry hint of a command refused because the node is not ready.
pub const RETRY_NOT_READY_MS: u64 = 1000;
/// The retry hint of a command refused because the disk is under its
/// reserve: room comes back on an operator's time, not a node's.
pub const RETRY_DISK_LOW_MS: u64 = 5000;

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            code: VALIDATION_FAILED.into(),
            message: format!("{field}: {}", message.into()),
            field: Some(field.into()),
            retry_after_ms: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            code: TIMEOUT.into(),
            message: message.into(),
            field: None,
            retry_after_ms: None,
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::coded(CONFLICT, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::coded(UNAVAILABLE, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::coded(FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::coded(NOT_FOUND, message)
    }

    fn coded(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after_ms: None,
        }
    }

    /// Logs the details and tells the client only that something failed.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self {
            code: INTERNAL.into(),
            message: "internal error; see the server log".into(),
            field: None,
            retry_after_ms: None,
        }
    }
}

impl From<&RejectionReply> for ApiError {
    fn from(rejection: &RejectionReply) -> Self {
        Self {
            code: rejection.code.as_str().into(),
            message: rejection.message.clone(),
            field: rejection.field.clone(),
            retry_after_ms: None,
        }
    }
}

impl From<CommandsError> for ApiError {
    /// A rejection keeps the domain's code and field; a timeout says the
    /// command may still apply; the rest is internal.
    fn from(error: CommandsError) -> Self {
        match error {
            CommandsError::Rejected(rejection) => Self::from(&rejection),
            timeout @ CommandsError::Timeout { .. } => Self::timeout(timeout.to_string()),
            CommandsError::Stopped => Self::unavailable("the node is stopping"),
            not_ready @ CommandsError::NotReady { .. } => Self {
                retry_after_ms: Some(RETRY_NOT_READY_MS),
                ..Self::unavailable(not_ready.to_string())
            },
            low @ CommandsError::DiskLow(_) => Self {
                retry_after_ms: Some(RETRY_DISK_LOW_MS),
                ..Self::unavailable(low.to_string())
            },
            other => Self::internal(other),
        }
    }
}

impl From<OpsError> for ApiError {
    fn from(error: OpsError) -> Self {
        match error {
            OpsError::NotFound(message) => Self::not_found(message),
            OpsError::Invalid(message) => Self::coded(VALIDATION_FAILED, message),
            OpsError::UnknownProjection { .. } => Self::coded(VALIDATION_FAILED, error.to_string()),
            OpsError::Serving(serving) => Self::from(serving),
            other => Self::internal(other),
        }
    }
}

impl From<ServingError> for ApiError {
    fn from(error: ServingError) -> Self {
        match error {
            ServingError::Invalid { field, reason } => Self::invalid(field, reason),
            ServingError::NotFound(message) => Self::not_found(message),
            ServingError::Conflict(message) => Self::conflict(message),
            ServingError::Unavailable(message) => Self::unavailable(message),
            timeout @ ServingError::Timeout { .. } => Self::timeout(timeout.to_string()),
            other => Self::internal(other),
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.message.clone()).extend_with(|_, extensions| {
            extensions.set("code", self.code.clone());
            if let Some(field) = &self.field {
                extensions.set("field", field.clone());
            }
            if let Some(after) = self.retry_after_ms {
                extensions.set("retryAfterMs", after);
            }
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        error.extend()
    }
}
