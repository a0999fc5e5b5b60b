//! The JSON form of event data, as the API, `inspect` and exports show it:
//! camelCase fields, money as {"amount": "149.90", "currency": "USD"}.

use serde_json::{json, Value};

use crate::money::{Currency, Money};
use crate::order::{LineItem, OrderEvent};

fn money(minor: i64, currency: Currency) -> Value {
    money_value(Money::new(minor, currency))
}

fn money_value(amount: Money) -> Value {
    json!({ "amount": amount.to_decimal_string(), "currency": amount.currency.code() })
}

fn items(items: &[LineItem], currency: Option<Currency>) -> Value {
    let item = |item: &LineItem| match currency {
        Some(currency) => json!({
            "sku": item.sku,
            "quantity": item.quantity,
            "unitPrice": money(item.unit_price, currency),
        }),
        None => json!({ "sku": item.sku, "quantity": item.quantity }),
    };
    Value::Array(items.iter().map(item).collect())
}

/// The `data` of an event in the structured (JSON) CloudEvents format.
pub fn event_data_json(event: &OrderEvent) -> Value {
    match event {
        OrderEvent::OrderPlaced(placed) => json!({
            "customerId": placed.customer_id.as_str(),
            "currency": placed.currency.code(),
            "items": items(&placed.items, Some(placed.currency)),
            "subtotal": money(placed.subtotal, placed.currency),
            "tax": money(placed.tax, placed.currency),
            "total": money(placed.total, placed.currency),
        }),
        OrderEvent::PaymentConfirmed { payment_id, amount } => {
            json!({ "paymentId": payment_id, "amount": money_value(*amount) })
        }
        OrderEvent::InventoryReserved { items: reserved } => {
            json!({ "items": items(reserved, None) })
        }
        OrderEvent::OrderShipped {
            carrier,
            tracking_number,
        } => json!({ "carrier": carrier, "trackingNumber": tracking_number }),
        OrderEvent::OrderDelivered => json!({}),
        OrderEvent::OrderCancelled { reason } => json!({ "reason": reason }),
        OrderEvent::PaymentRefunded { amount, reason } => {
            json!({ "amount": money_value(*amount), "reason": reason })
        }
    }
}
