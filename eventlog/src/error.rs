//! The one error type of the eventlog crate.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    #[error("partition {topic}/{partition} is held by an open transaction")]
    PartitionBusy { topic: String, partition: u32 },
    #[error("write failed: {0}")]
    WriteFailed(String),
    #[error("cannot reach Kafka at {0}")]
    Unreachable(String),
    /// A Kafka error worth retrying (the cluster away, a leader moving).
    #[error("kafka: {0}")]
    Kafka(String),
    /// A Kafka error that retrying cannot fix (authorization, a refused
    /// configuration, a record too large).
    #[error("kafka (permanent): {0}")]
    KafkaPermanent(String),
    #[error("the transaction was aborted: {0}")]
    Aborted(String),
    #[error("this producer was fenced by a newer one: {0}")]
    Fenced(String),
    #[error("the log is closed")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("{0}")]
    Invalid(String),
}

impl LogError {
    /// Errors a long-running loop should outlive: the cluster was briefly
    /// away, a transaction was aborted, a producer was fenced. Starting over
    /// from the committed positions is safe after any of them.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Kafka(_)
                | Self::Unreachable(_)
                | Self::Aborted(_)
                | Self::Fenced(_)
                | Self::PartitionBusy { .. }
        )
    }
}

/// Whether a long-running loop should start over after an error.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for LogError {
    fn is_transient(&self) -> bool {
        LogError::is_transient(self)
    }
}

/// A shutdown signal that several attempts of a loop can each wait on.
pub type Shutdown =
    futures_util::future::Shared<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>;

/// Makes a shareable shutdown signal from any shutdown future.
pub fn shared_shutdown(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Shutdown {
    use futures_util::FutureExt;
    let boxed: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(shutdown);
    boxed.shared()
}

/// Runs `attempt` until it ends cleanly (shutdown) or fails for good;
/// after a transient error it starts over (from committed positions) with
/// exponential backoff, never past `shutdown`.
pub async fn retry_transient<F, Fut, E>(
    what: &str,
    shutdown: Shutdown,
    mut attempt: F,
) -> Result<(), E>
where
    F: FnMut(Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: Transient,
{
    let mut backoff = std::time::Duration::from_millis(250);
    loop {
        match attempt(shutdown.clone()).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, task = what, retry_in_ms = backoff.as_millis() as u64, "transient error; starting over");
                tokio::select! {
                    _ = shutdown.clone() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
            }
            Err(error) => return Err(error),
        }
    }
}
