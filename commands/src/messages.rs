//! What travels on the commands, replies and snapshots topics. JSON: these
//! are our own internal records (not the event wire format), self-describing
//! so that fields can be added with defaults.

use domain::{Command, OrderState, Rejection, RejectionCode, TraceContext};
use serde::{Deserialize, Serialize};

/// A command on the commands topic (key = order id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMessage {
    pub command: Command,
    pub correlation_id: String,
    /// The API instance waiting for the reply.
    pub reply_to: String,
    /// W3C trace context, copied onto every event the command causes.
    /// Commands written before it was recorded have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

/// The outcome of one command on the replies topic (key = command id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub command_id: String,
    pub order_id: String,
    pub reply_to: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Accepted {
        /// Aggregate version after the command.
        version: u64,
        /// The events the command wrote (the original ones on a repeat).
        events: Vec<ReplyEvent>,
        /// Pass as `consistentWith` to read your own write.
        consistency_token: String,
    },
    Rejected(RejectionReply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionReply {
    /// Serialized as the code string ("ORDER_NOT_FOUND"), as on the wire.
    pub code: RejectionCode,
    pub message: String,
    pub field: Option<String>,
}

impl From<&Rejection> for RejectionReply {
    fn from(rejection: &Rejection) -> Self {
        Self {
            code: rejection.kind(),
            message: rejection.to_string(),
            field: rejection.field().map(str::to_owned),
        }
    }
}

/// One event as a reply shows it: structured CloudEvent JSON and position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyEvent {
    pub partition: u32,
    pub offset: u64,
    pub cloudevent: serde_json::Value,
}

/// The latest state of one order on the compacted snapshots topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub state: OrderState,
    /// Offset in the events topic of each event, by sequence (index = sequence - 1).
    pub event_offsets: Vec<u64>,
    /// Recent rejected commands of this order, so a repeat gets the same answer.
    #[serde(default)]
    pub rejections: Vec<(String, RejectionReply)>,
}

/// Rejections remembered per order.
pub const MAX_REMEMBERED_REJECTIONS: usize = 32;

impl Snapshot {
    pub fn empty() -> Self {
        Self {
            state: domain::initial_state(),
            event_offsets: Vec::new(),
            rejections: Vec::new(),
        }
    }

    pub fn remember_rejection(&mut self, command_id: &str, rejection: RejectionReply) {
        self.rejections.push((command_id.to_owned(), rejection));
        let excess = self
            .rejections
            .len()
            .saturating_sub(MAX_REMEMBERED_REJECTIONS);
        self.rejections.drain(..excess);
    }

    pub fn rejection_of(&self, command_id: &str) -> Option<&RejectionReply> {
        self.rejections
            .iter()
            .rev()
            .find(|(id, _)| id == command_id)
            .map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_rejections_are_remembered() {
        let mut snapshot = Snapshot::empty();
        let reply = RejectionReply {
            code: RejectionCode::InvalidState,
            message: "m".into(),
            field: None,
        };
        for i in 0..40 {
            snapshot.remember_rejection(&format!("c{i}"), reply.clone());
        }
        assert_eq!(snapshot.rejections.len(), MAX_REMEMBERED_REJECTIONS);
        assert!(snapshot.rejection_of("c0").is_none());
        assert!(snapshot.rejection_of("c39").is_some());
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let snapshot = Snapshot::empty();
        let json = serde_json::to_vec(&snapshot).unwrap();
        assert_eq!(serde_json::from_slice::<Snapshot>(&json).unwrap(), snapshot);
    }
}
