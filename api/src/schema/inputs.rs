//! Mutation inputs, named as in the schema, and their conversion to domain
//! commands. Only the fields the API owns (ids, keys, correlation ids) are
//! checked here; every business field is validated by `domain::decide`.

use async_graphql::{InputObject, ID};
use domain::order::{
    CancelOrder, ConfirmPayment, LineItemInput as DomainLineItem, PlaceOrder, RefundPayment,
    ShipOrder,
};
use domain::{CommandBody, CommandId, OrderId};

use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// Largest page a connection field answers.
pub const MAX_PAGE: i32 = 1000;

#[derive(Debug, Clone, InputObject)]
pub struct LineItemInput {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: String,
}

#[derive(Debug, Clone, InputObject)]
pub struct PlaceOrderInput {
    pub order_id: Option<ID>,
    pub customer_id: ID,
    pub currency: String,
    pub items: Vec<LineItemInput>,
    #[graphql(default = 0)]
    pub tax_rate_bps: Option<i32>,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub struct OrderRefInput {
    pub order_id: ID,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub struct ConfirmPaymentInput {
    pub order_id: ID,
    pub payment_id: String,
    pub amount: String,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub struct ShipOrderInput {
    pub order_id: ID,
    pub carrier: String,
    pub tracking_number: String,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub struct CancelOrderInput {
    pub order_id: ID,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, InputObject)]
pub struct RefundPaymentInput {
    pub order_id: ID,
    pub amount: String,
    pub reason: String,
    pub idempotency_key: Option<String>,
    pub correlation_id: Option<String>,
}

/// The idempotency key and correlation id every mutation input carries.
pub trait CommandInput {
    fn keys(&self) -> (Option<&str>, Option<&str>);
}

macro_rules! command_input {
    ($($input:ty),*) => {$(
        impl CommandInput for $input {
            fn keys(&self) -> (Option<&str>, Option<&str>) {
                (self.idempotency_key.as_deref(), self.correlation_id.as_deref())
            }
        }
    )*};
}

command_input!(
    PlaceOrderInput,
    OrderRefInput,
    ConfirmPaymentInput,
    ShipOrderInput,
    CancelOrderInput,
    RefundPaymentInput
);

/// What every mutation carries besides its body.
#[derive(Debug)]
pub struct Envelope {
    pub order_id: OrderId,
    pub command_id: CommandId,
    pub correlation_id: Option<String>,
}

pub fn order_id(id: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(id).map_err(|e| ApiError::invalid("orderId", e.reason))
}

/// Validates the API-owned fields; generates a command id when no key is given.
pub fn envelope(
    order: &str,
    key: Option<&str>,
    correlation: Option<&str>,
) -> Result<Envelope, ApiError> {
    let command_id = match key {
        Some(key) => {
            CommandId::parse(key).map_err(|e| ApiError::invalid("idempotencyKey", e.reason))?
        }
        None => CommandId::parse(uuid::Uuid::new_v4().to_string()).map_err(ApiError::internal)?,
    };
    let correlation_id = correlation
        .map(|c| correlation_id("correlationId", c))
        .transpose()?;
    Ok(Envelope {
        order_id: order_id(order)?,
        command_id,
        correlation_id,
    })
}

/// A correlation id: 1 to 128 visible ASCII characters.
pub fn correlation_id(field: &str, value: &str) -> Result<String, ApiError> {
    let ok = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ApiError::invalid(
            field,
            "must be 1 to 128 visible ASCII characters",
        ))
    }
}

impl PlaceOrderInput {
    pub fn body(&self) -> CommandBody {
        CommandBody::PlaceOrder(PlaceOrder {
            customer_id: self.customer_id.to_string(),
            currency: self.currency.clone(),
            items: self
                .items
                .iter()
                .map(|i| DomainLineItem {
                    sku: i.sku.clone(),
                    quantity: i64::from(i.quantity),
                    unit_price: i.unit_price.clone(),
                })
                .collect(),
            tax_rate_bps: i64::from(self.tax_rate_bps.unwrap_or(0)),
        })
    }
}

impl ConfirmPaymentInput {
    pub fn body(&self) -> CommandBody {
        CommandBody::ConfirmPayment(ConfirmPayment {
            payment_id: self.payment_id.clone(),
            amount: self.amount.clone(),
        })
    }
}

impl ShipOrderInput {
    pub fn body(&self) -> CommandBody {
        CommandBody::ShipOrder(ShipOrder {
            carrier: self.carrier.clone(),
            tracking_number: self.tracking_number.clone(),
        })
    }
}

impl CancelOrderInput {
    pub fn body(&self) -> CommandBody {
        CommandBody::CancelOrder(CancelOrder {
            reason: self.reason.clone(),
        })
    }
}

impl RefundPaymentInput {
    pub fn body(&self) -> CommandBody {
        CommandBody::RefundPayment(RefundPayment {
            amount: self.amount.clone(),
            reason: self.reason.clone(),
        })
    }
}

/// A page size; null means the field's default.
pub(crate) fn page_size(field: &str, first: Option<i32>, default: i32) -> Result<usize, ApiError> {
    let first = first.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&first) {
        Ok(first as usize)
    } else {
        Err(ApiError::invalid(
            field,
            format!("must be between 1 and {}", MAX_PAGE),
        ))
    }
}

/// The time an `asOf` argument names (none: the latest).
pub(crate) fn at(as_of: Option<DateTime<Utc>>) -> DateTime<Utc> {
    as_of.unwrap_or(DateTime::<Utc>::MAX_UTC)
}
