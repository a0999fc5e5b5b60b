//! Events: what happened to an order, in the current (upcast) shape.
//! Wire versions live in `crate::codec`; this is what the rest of the system sees.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, CustomerId, OrderId};
use crate::money::{Currency, Money};

/// A line of an order: quantity x unit price in the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub quantity: u32,
    /// Minor units of the order's currency.
    pub unit_price: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub customer_id: CustomerId,
    pub currency: Currency,
    pub items: Vec<LineItem>,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
}

/// Every event an order can have, in its current schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    OrderPlaced(OrderPlaced),
    PaymentConfirmed {
        payment_id: String,
        amount: Money,
    },
    InventoryReserved {
        items: Vec<LineItem>,
    },
    OrderShipped {
        carrier: String,
        tracking_number: String,
    },
    OrderDelivered,
    OrderCancelled {
        reason: String,
    },
    PaymentRefunded {
        amount: Money,
        reason: String,
    },
}

/// The CloudEvents `type` of each event (design.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    OrderPlaced,
    PaymentConfirmed,
    InventoryReserved,
    OrderShipped,
    OrderDelivered,
    OrderCancelled,
    PaymentRefunded,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        Self::OrderPlaced,
        Self::PaymentConfirmed,
        Self::InventoryReserved,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCancelled,
        Self::PaymentRefunded,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OrderPlaced => "com.orderstore.order.placed",
            Self::PaymentConfirmed => "com.orderstore.payment.confirmed",
            Self::InventoryReserved => "com.orderstore.inventory.reserved",
            Self::OrderShipped => "com.orderstore.order.shipped",
            Self::OrderDelivered => "com.orderstore.order.delivered",
            Self::OrderCancelled => "com.orderstore.order.cancelled",
            Self::PaymentRefunded => "com.orderstore.payment.refunded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The domain name, e.g. `OrderPlaced`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::OrderPlaced => "OrderPlaced",
            Self::PaymentConfirmed => "PaymentConfirmed",
            Self::InventoryReserved => "InventoryReserved",
            Self::OrderShipped => "OrderShipped",
            Self::OrderDelivered => "OrderDelivered",
            Self::OrderCancelled => "OrderCancelled",
            Self::PaymentRefunded => "PaymentRefunded",
        }
    }
}

impl OrderEvent {
    pub fn event_type(&self) -> EventType {
        match self {
            Self::OrderPlaced(_) => EventType::OrderPlaced,
            Self::PaymentConfirmed { .. } => EventType::PaymentConfirmed,
            Self::InventoryReserved { .. } => EventType::InventoryReserved,
            Self::OrderShipped { .. } => EventType::OrderShipped,
            Self::OrderDelivered => EventType::OrderDelivered,
            Self::OrderCancelled { .. } => EventType::OrderCancelled,
            Self::PaymentRefunded { .. } => EventType::PaymentRefunded,
        }
    }
}

/// An event as stored: its payload plus the facts the log adds to it.
/// This is what `evolve` folds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The order (CloudEvents `subject`, record key).
    pub order_id: OrderId,
    /// Aggregate version after this event, 1-based.
    pub sequence: u64,
    /// Event time, set by the command processor.
    pub time: DateTime<Utc>,
    /// The command that caused it (CloudEvents `causationid`).
    pub command_id: CommandId,
    pub event: OrderEvent,
}
