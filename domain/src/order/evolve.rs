//! `evolve`: fold one recorded event into the state. Total: no rules, no
//! errors, no panics; rules belong to `decide`.

use crate::order::{Order, OrderEvent, OrderPlaced, OrderState, OrderStatus, Recorded, Shipment};

/// Applies `recorded` to `state`.
pub fn evolve(mut state: OrderState, recorded: &Recorded) -> OrderState {
    state.version = recorded.sequence;
    state
        .applied_commands
        .entry(recorded.command_id.clone())
        .and_modify(|(_, last)| *last = recorded.sequence)
        .or_insert((recorded.sequence, recorded.sequence));
    if let OrderEvent::OrderPlaced(placed) = &recorded.event {
        state.order = Some(placed_order(placed, recorded));
    } else if let Some(order) = state.order.as_mut() {
        apply(order, &recorded.event);
        order.updated_at = recorded.time;
    }
    state
}

fn placed_order(placed: &OrderPlaced, recorded: &Recorded) -> Order {
    Order {
        id: recorded.order_id.clone(),
        customer_id: placed.customer_id.clone(),
        currency: placed.currency,
        items: placed.items.clone(),
        subtotal: placed.subtotal,
        tax: placed.tax,
        total: placed.total,
        status: OrderStatus::Placed,
        paid: false,
        payment_id: None,
        inventory_reserved: false,
        captured: 0,
        refunded: 0,
        shipment: None,
        cancel_reason: None,
        placed_at: recorded.time,
        updated_at: recorded.time,
    }
}

fn apply(order: &mut Order, event: &OrderEvent) {
    match event {
        OrderEvent::OrderPlaced(_) => {}
        OrderEvent::PaymentConfirmed { payment_id, amount } => {
            order.paid = true;
            order.payment_id = Some(payment_id.clone());
            order.captured = order.captured.saturating_add(amount.minor);
            confirm_when_paid_and_reserved(order);
        }
        OrderEvent::InventoryReserved { .. } => {
            order.inventory_reserved = true;
            confirm_when_paid_and_reserved(order);
        }
        OrderEvent::OrderShipped {
            carrier,
            tracking_number,
        } => {
            order.status = OrderStatus::Shipped;
            order.shipment = Some(Shipment {
                carrier: carrier.clone(),
                tracking_number: tracking_number.clone(),
            });
        }
        OrderEvent::OrderDelivered => order.status = OrderStatus::Delivered,
        OrderEvent::OrderCancelled { reason } => {
            order.status = OrderStatus::Cancelled;
            order.cancel_reason = Some(reason.clone());
        }
        OrderEvent::PaymentRefunded { amount, .. } => {
            order.refunded = order.refunded.saturating_add(amount.minor);
        }
    }
}

fn confirm_when_paid_and_reserved(order: &mut Order) {
    order.status = status_when(order.status, order.paid, order.inventory_reserved);
}

/// The status rule of payment and reservation: a PLACED order becomes
/// CONFIRMED when it is both paid and reserved, whichever comes second.
/// Read models that track status use this, not a copy of it.
pub fn status_when(status: OrderStatus, paid: bool, reserved: bool) -> OrderStatus {
    if status == OrderStatus::Placed && paid && reserved {
        OrderStatus::Confirmed
    } else {
        status
    }
}
