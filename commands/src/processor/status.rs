//! What a node's command processor is doing, for readiness and for the
//! gateway, which holds a command until the processor here can take it;
//! and the gateways of this node, whose waiting commands the lanes answer
//! directly once committed (`reply_waiters.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::messages::Reply;
use crate::reply_waiters::ReplyWaiters;

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
pub struct ProcessorStatus {
    phase: watch::Sender<ProcessorPhase>,
    /// The waiters of this node's gateways.
    local: RwLock<Vec<Weak<ReplyWaiters>>>,
    /// Lane transactions committed since start.
    transactions: AtomicU64,
    /// Lane batches sent on a predicted event offset the log did not give
    /// (another writer in the partition): aborted and sent again.
    mispredictions: AtomicU64,
}

impl Default for ProcessorStatus {
    fn default() -> Self {
        Self {
            phase: watch::channel(ProcessorPhase::Joining).0,
            local: RwLock::default(),
            transactions: AtomicU64::new(0),
            mispredictions: AtomicU64::new(0),
        }
    }
}

impl ProcessorStatus {
    pub fn phase(&self) -> ProcessorPhase {
        self.phase.borrow().clone()
    }

    /// Lane transactions committed since start.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Lane batches whose predicted event offsets the log did not give:
    /// each was aborted and sent again, events first.
    pub fn mispredictions(&self) -> u64 {
        self.mispredictions.load(Ordering::Relaxed)
    }

    pub(crate) fn count_transaction(&self) {
        self.transactions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_misprediction(&self) {
        self.mispredictions.fetch_add(1, Ordering::Relaxed);
    }

    /// A gateway of this node: the lanes hand the replies addressed to it
    /// straight to its waiters after each commit.
    pub fn answer_here(&self, waiters: Arc<ReplyWaiters>) {
        if let Ok(mut local) = self.local.write() {
            local.retain(|w| w.strong_count() > 0);
            local.push(Arc::downgrade(&waiters));
        }
    }

    /// Hands committed replies to this node's gateways; those addressed
    /// elsewhere reach their gateway through the replies topic only.
    pub(crate) fn answer_committed<'a>(&self, replies: impl IntoIterator<Item = &'a Reply>) {
        let Ok(local) = self.local.read() else {
            return;
        };
        let gateways: Vec<Arc<ReplyWaiters>> = local.iter().filter_map(Weak::upgrade).collect();
        drop(local);
        if gateways.is_empty() {
            return;
        }
        for reply in replies {
            if let Some(gateway) = gateways.iter().find(|g| g.instance() == reply.reply_to) {
                gateway.deliver(reply);
            }
        }
    }

    pub(crate) fn set(&self, phase: ProcessorPhase) {
        self.phase.send_if_modified(|current| {
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
        let mut phases = self.phase.subscribe();
        let reached =
            tokio::time::timeout(within, phases.wait_for(ProcessorPhase::is_serving)).await;
        match reached {
            Ok(Ok(phase)) => phase.clone(),
            _ => self.phase(),
        }
    }
}
