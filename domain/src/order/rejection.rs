//! Why a command was refused. Tests assert the exact variant; the API maps
//! each to its GraphQL error code with `code()`.

use thiserror::Error;

use crate::money::Money;
use crate::order::OrderStatus;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Rejection {
    /// The command needs an order that was never placed.
    #[error("order not found")]
    OrderNotFound,
    /// PlaceOrder with an order id already in use by another command.
    #[error("an order with this id already exists")]
    OrderExists,
    /// The order's status does not allow the command.
    #[error("{command} is not allowed: {reason}")]
    InvalidState {
        command: &'static str,
        status: OrderStatus,
        reason: &'static str,
    },
    /// An input field is malformed; `field` names it as the client sent it.
    #[error("{field}: {reason}")]
    ValidationFailed { field: String, reason: String },
    /// ConfirmPayment with an amount other than the order total.
    #[error("payment amount {given} does not equal the order total {expected}")]
    AmountMismatch { expected: Money, given: Money },
    /// RefundPayment of more than is still captured.
    #[error("refund {requested} exceeds the refundable {refundable}")]
    RefundExceedsCaptured { requested: Money, refundable: Money },
}

impl Rejection {
    /// The stable error code the API returns (schema.graphql).
    pub fn code(&self) -> &'static str {
        match self {
            Self::OrderNotFound => "ORDER_NOT_FOUND",
            Self::OrderExists => "ORDER_EXISTS",
            Self::InvalidState { .. } => "INVALID_STATE",
            Self::ValidationFailed { .. } => "VALIDATION_FAILED",
            Self::AmountMismatch { .. } => "AMOUNT_MISMATCH",
            Self::RefundExceedsCaptured { .. } => "REFUND_EXCEEDS_CAPTURED",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::ValidationFailed {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The input field at fault, for VALIDATION_FAILED.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::ValidationFailed { field, .. } => Some(field),
            _ => None,
        }
    }
}
