//! The write side (design.md section 5): the topic layout, the records of
//! the commands, replies and snapshots topics, consistency tokens, the
//! command processor (batch decide, one transaction per batch, the local
//! state store and its restore from the snapshots topic) and the gateway
//! the API sends commands through.
//!
//! It must never write an event without its snapshot and reply, never
//! answer a command before its transaction committed, and never let event
//! time go backwards within a partition.

pub mod consistency;
mod error;
pub mod gateway;
pub mod messages;
pub mod processor;
pub mod reply_waiters;
pub mod topics;

pub use consistency::{consistency_token, parse_consistency_token, parse_consistency_tokens};
pub use error::CommandsError;
pub use gateway::CommandGateway;
pub use messages::{CommandMessage, Outcome, RejectionReply, Reply, ReplyEvent, Snapshot};
pub use processor::{Clock, ProcessorPhase, ProcessorStatus, StateStore, SystemClock};
pub use topics::Topics;
