//! The state of one order as folded from its events.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, CustomerId, OrderId};
use crate::money::{Currency, Money};
use crate::order::LineItem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    Placed,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl OrderStatus {
    /// The GraphQL enum name, e.g. `PLACED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Placed => "PLACED",
            Self::Confirmed => "CONFIRMED",
            Self::Shipped => "SHIPPED",
            Self::Delivered => "DELIVERED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// Open orders are neither delivered nor cancelled.
    pub fn is_open(&self) -> bool {
        !matches!(self, Self::Delivered | Self::Cancelled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PaymentStatus {
    Unpaid,
    Paid,
    PartiallyRefunded,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unpaid => "UNPAID",
            Self::Paid => "PAID",
            Self::PartiallyRefunded => "PARTIALLY_REFUNDED",
            Self::Refunded => "REFUNDED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: String,
    pub tracking_number: String,
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OrderId,
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub items: Vec<LineItem>,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
    pub status: OrderStatus,
    pub paid: bool,
    pub payment_id: Option<String>,
    pub inventory_reserved: bool,
    pub captured: i64,
    pub refunded: i64,
    pub shipment: Option<Shipment>,
    pub cancel_reason: Option<String>,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Order {
    pub fn payment_status(&self) -> PaymentStatus {
        if !self.paid {
            PaymentStatus::Unpaid
        } else if self.refunded == 0 {
            PaymentStatus::Paid
        } else if self.refunded < self.captured {
            PaymentStatus::PartiallyRefunded
        } else {
            PaymentStatus::Refunded
        }
    }

    pub fn money(&self, minor: i64) -> Money {
        Money::new(minor, self.currency)
    }

    /// What a refund may still return: captured - refunded.
    pub fn refundable(&self) -> i64 {
        self.captured.saturating_sub(self.refunded)
    }
}

/// The command ids already applied, with the events each produced
/// (first and last sequence), so a repeat returns the original outcome.
pub type AppliedCommands = BTreeMap<CommandId, (u64, u64)>;

/// Everything `decide` needs to know about one order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderState {
    /// Number of events folded (the sequence of the last one).
    pub version: u64,
    /// `None` until OrderPlaced.
    pub order: Option<Order>,
    pub applied_commands: AppliedCommands,
}

impl OrderState {
    /// The events (first and last sequence) of an already applied command.
    pub fn outcome_of(&self, command_id: &CommandId) -> Option<(u64, u64)> {
        self.applied_commands.get(command_id).copied()
    }
}

pub fn initial_state() -> OrderState {
    OrderState::default()
}

/// A terminal order accepts no command that changes its status again
/// (refunds of a delivered order are still possible).
pub fn is_terminal(state: &OrderState) -> bool {
    state.order.as_ref().is_some_and(|o| !o.status.is_open())
}
