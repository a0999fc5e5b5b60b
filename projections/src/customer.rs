//! The customer projection: per customer, one row per order (status, total,
//! captured, refunded), from which order count, open orders and lifetime
//! value per currency are derived at read time, as of any time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{OrderEvent, OrderStatus, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const ORDERS: &str = "customer-order";
pub const BY_CUSTOMER: &str = "customer";

/// One order as the customer view sees it.
/// This projection's name: its directory, topics and API name.
pub const NAME: &str = "customer";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub currency: String,
    pub total: i64,
    pub captured: i64,
    pub refunded: i64,
    pub placed_at: DateTime<Utc>,
    #[serde(default)]
    pub paid: bool,
    #[serde(default)]
    pub reserved: bool,
}

#[derive(Debug, Default)]
pub struct Customer;

fn parse(value: &[u8]) -> Result<OrderSummary, StoreError> {
    serde_json::from_slice(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Projection for Customer {
    fn name(&self) -> &'static str {
        NAME
    }

    fn apply(
        &self,
        read: &ReadRow<'_>,
        event: &RecordedEvent,
        _partition: u32,
        _offset: u64,
    ) -> Result<Vec<Change>, ApplyError> {
        let order_id = event.envelope.subject.as_str();
        let order_key = RowKey::new(ORDERS, &[order_id]);
        let mut summary = match (&event.event, read(&order_key)?) {
            (OrderEvent::OrderPlaced(placed), _) => OrderSummary {
                order_id: order_id.to_owned(),
                customer_id: placed.customer_id.to_string(),
                status: OrderStatus::Placed,
                currency: placed.currency.to_string(),
                total: placed.total,
                captured: 0,
                refunded: 0,
                placed_at: event.envelope.time,
                paid: false,
                reserved: false,
            },
            (_, Some(value)) => parse(&value)?,
            (_, None) => {
                return Err(ApplyError::Rule(format!(
                    "{} for order {order_id}, which was never placed",
                    event.envelope.event_type
                )))
            }
        };
        match &event.event {
            OrderEvent::OrderPlaced(_) => {}
            OrderEvent::PaymentConfirmed { amount, .. } => {
                summary.captured += amount.minor;
                summary.paid = true;
            }
            OrderEvent::InventoryReserved { .. } => summary.reserved = true,
            OrderEvent::OrderShipped { .. } => summary.status = OrderStatus::Shipped,
            OrderEvent::OrderDelivered => summary.status = OrderStatus::Delivered,
            OrderEvent::OrderCancelled { .. } => summary.status = OrderStatus::Cancelled,
            OrderEvent::PaymentRefunded { amount, .. } => summary.refunded += amount.minor,
        }
        // CONFIRMED follows the aggregate's rule: paid and reserved, whichever is second.
        if summary.status == OrderStatus::Placed && summary.paid && summary.reserved {
            summary.status = OrderStatus::Confirmed;
        }
        let value = serde_json::to_vec(&summary).map_err(|e| ApplyError::Rule(e.to_string()))?;
        Ok(vec![
            Change {
                key: RowKey::new(BY_CUSTOMER, &[&summary.customer_id, order_id]),
                value: value.clone(),
            },
            Change {
                key: order_key,
                value,
            },
        ])
    }
}

/// The customer view as of `at`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerView {
    pub orders: Vec<OrderSummary>,
    pub open_orders: u64,
    /// Captured minus refunded, per currency.
    pub lifetime_value: BTreeMap<String, i64>,
}

pub fn view(
    store: &ProjectionStore,
    customer_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<CustomerView>, StoreError> {
    let mut view = CustomerView::default();
    for key in store.keys_with_prefix(BY_CUSTOMER, &[customer_id, ""])? {
        if let Some(value) = store.row_as_of(&key, at)? {
            let summary = parse(&value)?;
            if summary.status.is_open() {
                view.open_orders += 1;
            }
            *view
                .lifetime_value
                .entry(summary.currency.clone())
                .or_insert(0) += summary.captured - summary.refunded;
            view.orders.push(summary);
        }
    }
    view.orders
        .sort_by(|a, b| (a.placed_at, &a.order_id).cmp(&(b.placed_at, &b.order_id)));
    Ok((!view.orders.is_empty()).then_some(view))
}
