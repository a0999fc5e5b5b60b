//! Commands: what a client asks the order to do. Fields arrive as the client
//! sent them (amounts as decimal strings) and are validated by `decide`.

use serde::{Deserialize, Serialize};

use crate::ids::{CommandId, OrderId};

/// One command addressed to one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The client's idempotency key, or an id given by the API.
    pub command_id: CommandId,
    pub order_id: OrderId,
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandBody {
    PlaceOrder(PlaceOrder),
    ConfirmPayment(ConfirmPayment),
    ReserveInventory,
    ShipOrder(ShipOrder),
    DeliverOrder,
    CancelOrder(CancelOrder),
    RefundPayment(RefundPayment),
}

impl CommandBody {
    /// The command's name in the domain language, e.g. `PlaceOrder`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PlaceOrder(_) => "PlaceOrder",
            Self::ConfirmPayment(_) => "ConfirmPayment",
            Self::ReserveInventory => "ReserveInventory",
            Self::ShipOrder(_) => "ShipOrder",
            Self::DeliverOrder => "DeliverOrder",
            Self::CancelOrder(_) => "CancelOrder",
            Self::RefundPayment(_) => "RefundPayment",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// Unvalidated: `decide` checks it and names the field on failure.
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<LineItemInput>,
    pub tax_rate_bps: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItemInput {
    pub sku: String,
    pub quantity: i64,
    /// A decimal string in the order's currency, e.g. "19.99".
    pub unit_price: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmPayment {
    pub payment_id: String,
    /// A decimal string in the order's currency.
    pub amount: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipOrder {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    /// A decimal string in the order's currency.
    pub amount: String,
    pub reason: String,
}
