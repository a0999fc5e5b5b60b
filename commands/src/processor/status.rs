//! What a node's command processor is doing, for readiness and for the
//! gateway, which holds a command until the processor here can take it.

use std::time::Duration;

use tokio::sync::watch;

/// One phase of the processor's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessorPhase {
    /// Claiming the transactional identity and joining the group, until
    /// the group gives this node an assignment.
    Joining,
    /// Restoring the state of newly assigned partitions.
    Restoring {
        partitions: Vec<u32>,
    },
    /// Assigned and restored: deciding commands of these partitions (none,
    /// when the group has more nodes than partitions).
    Serving {
        partitions: Vec<u32>,
    },
    /// Failed with a transient error; starting over.
    Restarting {
        error: String,
    },
    Stopped,
}

impl ProcessorPhase {
    pub fn is_serving(&self) -> bool {
        matches!(self, Self::Serving { .. })
    }
}

impl std::fmt::Display for ProcessorPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |partitions: &[u32]| {
            partitions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Joining => write!(f, "joining the processor group, waiting for an assignment"),
            Self::Restoring { partitions } => {
                write!(f, "restoring commands partitions {}", list(partitions))
            }
            Self::Serving { partitions } if partitions.is_empty() => {
                write!(f, "serving, with no commands partition assigned")
            }
            Self::Serving { partitions } => {
                write!(f, "serving commands partitions {}", list(partitions))
            }
            Self::Restarting { error } => write!(f, "starting over after: {error}"),
            Self::Stopped => write!(f, "stopped"),
        }
    }
}

/// The processor's phase, shared: the processor sets it, readiness and the
/// gateway read it.
#[derive(Debug)]
pub struct ProcessorStatus(watch::Sender<ProcessorPhase>);

impl Default for ProcessorStatus {
    fn default() -> Self {
        Self(watch::channel(ProcessorPhase::Joining).0)
    }
}

impl ProcessorStatus {
    pub fn phase(&self) -> ProcessorPhase {
        self.0.borrow().clone()
    }

    pub(crate) fn set(&self, phase: ProcessorPhase) {
        self.0.send_if_modified(|current| {
            let changed = *current != phase;
            if changed {
                tracing::info!(from = %current, to = %phase, "command processor");
                *current = phase;
            }
            changed
        });
    }

    /// Waits up to `within` until the processor serves; answers the phase
    /// it is in then.
    pub async fn serving_within(&self, within: Duration) -> ProcessorPhase {
        let mut phases = self.0.subscribe();
        let reached =
            tokio::time::timeout(within, phases.wait_for(ProcessorPhase::is_serving)).await;
        match reached {
            Ok(Ok(phase)) => phase.clone(),
            _ => self.phase(),
        }
    }
}
