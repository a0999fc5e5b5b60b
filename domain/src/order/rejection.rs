//! Why a command was refused. Tests assert the exact variant; the API maps
//! each to its GraphQL error code with `code()`.

use serde::{Deserialize, Serialize};
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

/// The kind of a rejection without its details: what a reply carries and
/// the API turns into its stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectionCode {
    OrderNotFound,
    OrderExists,
    InvalidState,
    ValidationFailed,
    AmountMismatch,
    RefundExceedsCaptured,
}

impl RejectionCode {
    /// The stable error code the API returns (schema.graphql).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderNotFound => "ORDER_NOT_FOUND",
            Self::OrderExists => "ORDER_EXISTS",
            Self::InvalidState => "INVALID_STATE",
            Self::ValidationFailed => "VALIDATION_FAILED",
            Self::AmountMismatch => "AMOUNT_MISMATCH",
            Self::RefundExceedsCaptured => "REFUND_EXCEEDS_CAPTURED",
        }
    }
}

impl std::fmt::Display for RejectionCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Rejection {
    /// The kind of this rejection.
    pub fn kind(&self) -> RejectionCode {
        match self {
            Self::OrderNotFound => RejectionCode::OrderNotFound,
            Self::OrderExists => RejectionCode::OrderExists,
            Self::InvalidState { .. } => RejectionCode::InvalidState,
            Self::ValidationFailed { .. } => RejectionCode::ValidationFailed,
            Self::AmountMismatch { .. } => RejectionCode::AmountMismatch,
            Self::RefundExceedsCaptured { .. } => RejectionCode::RefundExceedsCaptured,
        }
    }

    /// The stable error code the API returns (schema.graphql).
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
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
