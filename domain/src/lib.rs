//! The order domain: commands, events, the decider, money, the CloudEvents
//! envelope and the versioned wire codec.
//!
//! This crate is the functional core. It must never do I/O, read a clock,
//! generate random ids or depend on an async runtime, Kafka or sled: time and
//! ids arrive as arguments, and every function here is deterministic.

pub mod codec;
pub mod envelope;
pub mod ids;
pub mod money;
pub mod order;
pub mod trace;

pub use envelope::{Envelope, EnvelopeError, EventMeta, Header, RecordedEvent};
pub use ids::{CommandId, CustomerId, OrderId};
pub use money::{Currency, Money, MoneyError};
pub use order::{
    decide, evolve, initial_state, is_terminal, status_when, Command, CommandBody, Order,
    OrderEvent, OrderState, OrderStatus, PaymentStatus, Recorded, Rejection, RejectionCode,
};
pub use trace::{TraceContext, TraceparentError};
