//! The one error type of the write side. How each variant reaches a client:
//! `Rejected` is the domain's answer (its code, message and field);
//! `Timeout` says the command may still apply and a retry with the same
//! idempotency key returns its outcome; `Log`, `Corrupt` and `Stopped` are
//! internal (logged, answered as INTERNAL or UNAVAILABLE); `NotReady`
//! and `DiskLow` are definite refusals of a command never sent.

use eventlog::LogError;
use thiserror::Error;

use crate::messages::RejectionReply;

#[derive(Debug, Error)]
pub enum CommandsError {
    /// The command was decided and refused: a definite answer.
    #[error("rejected: {}", .0.message)]
    Rejected(RejectionReply),
    /// No reply within the gateway's bound; the command may still apply.
    #[error("no reply to command {command_id} within {waited_ms} ms; it may still be applied: retry with the same idempotencyKey to learn its outcome")]
    Timeout { command_id: String, waited_ms: u128 },
    /// The log failed (transient ones are retried by the long-running loops).
    #[error(transparent)]
    Log(#[from] LogError),
    /// The local state store failed.
    #[error("state store: {0}")]
    Storage(#[from] sled::Error),
    /// Stored or produced data that cannot be what it claims to be.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// An event an earlier command wrote could not be read back for its
    /// repeat (it is committed, so this is the log being slow or away).
    #[error("the events of command {command_id} could not be read back: sequence {sequence} at offset {offset} of partition {partition}")]
    RepeatUnreadable {
        command_id: String,
        sequence: u64,
        partition: u32,
        offset: u64,
    },
    /// The gateway's reply router or the node is stopping.
    #[error("the command gateway stopped")]
    Stopped,
    /// This node's processor could not take commands within the timeout;
    /// the command was not sent, so it was not applied.
    #[error("this node is not ready for commands ({phase}) after {waited_ms} ms; the command was not applied: retry")]
    NotReady { phase: String, waited_ms: u128 },
    /// The data directory's disk is under its reserve: refused unsent.
    #[error("{0}; the command was not applied: retry once there is room")]
    DiskLow(eventlog::disk::DiskLow),
}

impl CommandsError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}

impl eventlog::Transient for CommandsError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Log(error) => error.is_transient(),
            Self::RepeatUnreadable { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use eventlog::{LogError, Transient};

    use super::CommandsError;
    use crate::messages::RejectionReply;

    #[test]
    fn only_log_trouble_and_unreadable_repeats_are_worth_starting_over_for() {
        let transient = [
            CommandsError::Log(LogError::Kafka("broker away".into())),
            CommandsError::RepeatUnreadable {
                command_id: "c".into(),
                sequence: 1,
                partition: 0,
                offset: 7,
            },
        ];
        for error in &transient {
            assert!(error.is_transient(), "{error}");
        }
        let permanent = [
            CommandsError::Log(LogError::KafkaPermanent("not authorized".into())),
            CommandsError::Log(LogError::Corrupt("bad bytes".into())),
            CommandsError::corrupt("a repeat without an outcome"),
            CommandsError::Rejected(RejectionReply {
                code: domain::RejectionCode::OrderNotFound,
                message: "order not found".into(),
                field: None,
            }),
            CommandsError::Stopped,
        ];
        for error in &permanent {
            assert!(!error.is_transient(), "{error}");
        }
    }
}
