//! The customer projection: per customer, one row per order (status, total,
//! captured, refunded), from which order count, open orders and lifetime
//! value per currency are derived at read time, as of any time.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{Currency, Money, OrderEvent, OrderStatus, RecordedEvent};
use serde::{Deserialize, Serialize};

use crate::store::{ProjectionStore, RowKey, StoreError};
use crate::worker::{ApplyError, Change, Projection, ReadRow};

pub const ORDERS: &str = "customer-order";
pub const BY_CUSTOMER: &str = "customer";

/// This projection's name: its directory, topics and API name.
pub const NAME: &str = "customer";

/// One order as the customer view sees it.
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

impl OrderSummary {
    fn currency(&self) -> Result<Currency, StoreError> {
        Currency::parse(&self.currency).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// `minor` of this order's currency plus `amount`, checked (an amount in
    /// another currency, or an overflow, breaks this projection's rules).
    fn add(&self, minor: i64, amount: &Money) -> Result<i64, ApplyError> {
        Money::new(minor, self.currency()?)
            .checked_add(*amount)
            .map(|sum| sum.minor)
            .map_err(|e| ApplyError::Rule(format!("order {}: {e}", self.order_id)))
    }

    /// Captured minus refunded.
    pub fn lifetime_value(&self) -> Result<Money, StoreError> {
        let currency = self.currency()?;
        Money::new(self.captured, currency)
            .checked_sub(Money::new(self.refunded, currency))
            .map_err(|e| StoreError::Corrupt(format!("order {}: {e}", self.order_id)))
    }
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
                summary.captured = summary.add(summary.captured, amount)?;
                summary.paid = true;
            }
            OrderEvent::InventoryReserved { .. } => summary.reserved = true,
            OrderEvent::OrderShipped { .. } => summary.status = OrderStatus::Shipped,
            OrderEvent::OrderDelivered => summary.status = OrderStatus::Delivered,
            OrderEvent::OrderCancelled { .. } => summary.status = OrderStatus::Cancelled,
            OrderEvent::PaymentRefunded { amount, .. } => {
                summary.refunded = summary.add(summary.refunded, amount)?
            }
        }
        summary.status = domain::status_when(summary.status, summary.paid, summary.reserved);
        let value = serde_json::to_vec(&summary).map_err(|e| ApplyError::Rule(e.to_string()))?;
        Ok(vec![
            Change::new(
                RowKey::new(BY_CUSTOMER, &[&summary.customer_id, order_id]),
                value.clone(),
            ),
            Change::new(order_key, value),
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
    // One scan: each of the customer's order rows has a version per event
    // of that order, a handful.
    for (_, value) in store.rows_as_of_with_prefix(BY_CUSTOMER, &[customer_id, ""], at)? {
        let summary = parse(&value)?;
        if summary.status.is_open() {
            view.open_orders += 1;
        }
        let value = summary.lifetime_value()?;
        let total = view
            .lifetime_value
            .entry(summary.currency.clone())
            .or_insert(0);
        *total = Money::new(*total, value.currency)
            .checked_add(value)
            .map_err(|e| StoreError::Corrupt(format!("customer {customer_id}: {e}")))?
            .minor;
        view.orders.push(summary);
    }
    view.orders
        .sort_by(|a, b| (a.placed_at, &a.order_id).cmp(&(b.placed_at, &b.order_id)));
    Ok((!view.orders.is_empty()).then_some(view))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

    use super::*;
    use domain::Currency;

    fn summary() -> OrderSummary {
        OrderSummary {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            status: OrderStatus::Placed,
            currency: "USD".into(),
            total: 1_000,
            captured: 1_000,
            refunded: 0,
            placed_at: DateTime::<Utc>::MIN_UTC,
            paid: true,
            reserved: false,
        }
    }

    #[test]
    fn amounts_in_another_currency_or_past_i64_break_the_rules() {
        let usd = Currency::parse("USD").unwrap();
        let eur = Currency::parse("EUR").unwrap();
        let order = summary();
        assert_eq!(order.add(5, &Money::new(7, usd)).unwrap(), 12);
        assert!(matches!(
            order.add(5, &Money::new(7, eur)),
            Err(ApplyError::Rule(_))
        ));
        assert!(matches!(
            order.add(i64::MAX, &Money::new(1, usd)),
            Err(ApplyError::Rule(_))
        ));
        assert_eq!(order.lifetime_value().unwrap(), Money::new(1_000, usd));
    }
}
