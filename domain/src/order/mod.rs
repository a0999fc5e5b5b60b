//! The order aggregate as a decider: `initial_state`, `decide`, `evolve`,
//! `is_terminal`. Pure functions over plain data; no I/O, no clock.

mod command;
mod decide;
mod event;
mod evolve;
mod rejection;
mod state;
mod validate;

#[cfg(test)]
mod tests;

pub use command::{
    CancelOrder, Command, CommandBody, ConfirmPayment, LineItemInput, PlaceOrder, RefundPayment,
    ShipOrder,
};
pub use decide::decide;
pub use event::{EventType, LineItem, OrderEvent, OrderPlaced, Recorded};
pub use evolve::{evolve, status_when};
pub use rejection::{Rejection, RejectionCode};
pub use state::{
    initial_state, is_terminal, Order, OrderState, OrderStatus, PaymentStatus, Shipment,
};

/// Limits of a PlaceOrder command (design.md section 3).
pub const MAX_ITEMS: usize = 100;
/// Highest tax rate in basis points (100%).
pub const MAX_TAX_RATE_BPS: i64 = 10_000;
/// Longest free-text field (reason, carrier, tracking number, sku, payment id), in bytes.
pub const MAX_TEXT_LEN: usize = 256;
