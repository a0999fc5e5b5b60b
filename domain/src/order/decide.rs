//! `decide`: given the state and a command, the events to record or the
//! reason to refuse. Each command has its own small function.

use crate::ids::CustomerId;
use crate::money::{Currency, Money};
use crate::order::command::{
    CancelOrder, CommandBody, ConfirmPayment, LineItemInput, PlaceOrder, RefundPayment, ShipOrder,
};
use crate::order::{
    validate, Command, LineItem, Order, OrderEvent, OrderPlaced, OrderState, OrderStatus,
    Rejection, MAX_ITEMS, MAX_TAX_RATE_BPS,
};

/// Highest quantity of one line.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// Decides what `command` does to the order in `state`.
///
/// A command id already applied to this order returns no events (an
/// idempotent repeat); the caller answers with the original events.
pub fn decide(command: &Command, state: &OrderState) -> Result<Vec<OrderEvent>, Rejection> {
    if state.applied_commands.contains_key(&command.command_id) {
        return Ok(Vec::new());
    }
    match &command.body {
        CommandBody::PlaceOrder(place) => place_order(place, state),
        CommandBody::ConfirmPayment(confirm) => confirm_payment(confirm, existing(state)?),
        CommandBody::ReserveInventory => reserve_inventory(existing(state)?),
        CommandBody::ShipOrder(ship) => ship_order(ship, state),
        CommandBody::DeliverOrder => deliver_order(existing(state)?),
        CommandBody::CancelOrder(cancel) => cancel_order(cancel, state),
        CommandBody::RefundPayment(refund) => refund_payment(refund, state),
    }
}

fn existing(state: &OrderState) -> Result<&Order, Rejection> {
    state.order.as_ref().ok_or(Rejection::OrderNotFound)
}

fn invalid_state(command: &'static str, order: &Order, reason: &'static str) -> Rejection {
    Rejection::InvalidState {
        command,
        status: order.status,
        reason,
    }
}

fn place_order(place: &PlaceOrder, state: &OrderState) -> Result<Vec<OrderEvent>, Rejection> {
    let customer_id = CustomerId::parse(place.customer_id.as_str())
        .map_err(|e| Rejection::invalid("customerId", e.reason))?;
    let currency =
        Currency::parse(&place.currency).map_err(|e| validate::money_error("currency", e))?;
    if place.items.is_empty() {
        return Err(Rejection::invalid(
            "items",
            "an order needs at least one item",
        ));
    }
    if place.items.len() > MAX_ITEMS {
        return Err(Rejection::invalid(
            "items",
            format!("an order has at most {MAX_ITEMS} items"),
        ));
    }
    let items = place
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| line_item(index, item, currency))
        .collect::<Result<Vec<_>, _>>()?;
    let tax_rate = u32::try_from(place.tax_rate_bps)
        .ok()
        .filter(|bps| i64::from(*bps) <= MAX_TAX_RATE_BPS)
        .ok_or_else(|| {
            Rejection::invalid(
                "taxRateBps",
                format!("must be between 0 and {MAX_TAX_RATE_BPS}"),
            )
        })?;
    let (subtotal, tax, total) = totals(&items, currency, tax_rate)?;
    if state.order.is_some() {
        return Err(Rejection::OrderExists);
    }
    Ok(vec![OrderEvent::OrderPlaced(OrderPlaced {
        customer_id,
        currency,
        items,
        subtotal,
        tax,
        total,
    })])
}

fn line_item(
    index: usize,
    item: &LineItemInput,
    currency: Currency,
) -> Result<LineItem, Rejection> {
    let field = |name: &str| format!("items[{index}].{name}");
    validate::text(&field("sku"), &item.sku)?;
    let quantity = u32::try_from(item.quantity)
        .ok()
        .filter(|q| *q >= 1 && i64::from(*q) <= MAX_QUANTITY)
        .ok_or_else(|| {
            Rejection::invalid(
                field("quantity"),
                format!("must be between 1 and {MAX_QUANTITY}"),
            )
        })?;
    let unit_price = validate::amount(&field("unitPrice"), &item.unit_price, currency)?;
    Ok(LineItem {
        sku: item.sku.clone(),
        quantity,
        unit_price: unit_price.minor,
    })
}

/// subtotal = sum(quantity x unit price); tax rounded half to even; total.
fn totals(
    items: &[LineItem],
    currency: Currency,
    tax_rate: u32,
) -> Result<(i64, i64, i64), Rejection> {
    let overflow = |_| Rejection::invalid("items", "the order total is too large");
    let subtotal = items.iter().try_fold(Money::zero(currency), |sum, item| {
        Money::new(item.unit_price, currency)
            .checked_mul(item.quantity)
            .and_then(|line| sum.checked_add(line))
    });
    let subtotal = subtotal.map_err(overflow)?;
    let tax = subtotal
        .basis_points_half_even(tax_rate)
        .map_err(overflow)?;
    let total = subtotal.checked_add(tax).map_err(overflow)?;
    Ok((subtotal.minor, tax.minor, total.minor))
}

fn confirm_payment(confirm: &ConfirmPayment, order: &Order) -> Result<Vec<OrderEvent>, Rejection> {
    const COMMAND: &str = "ConfirmPayment";
    validate::text("paymentId", &confirm.payment_id)?;
    let amount = validate::amount("amount", &confirm.amount, order.currency)?;
    if !matches!(order.status, OrderStatus::Placed | OrderStatus::Confirmed) {
        return Err(invalid_state(
            COMMAND,
            order,
            "the order is no longer open for payment",
        ));
    }
    if order.paid {
        return Err(invalid_state(COMMAND, order, "the order is already paid"));
    }
    if amount.minor != order.total {
        return Err(Rejection::AmountMismatch {
            expected: order.money(order.total),
            given: amount,
        });
    }
    Ok(vec![OrderEvent::PaymentConfirmed {
        payment_id: confirm.payment_id.clone(),
        amount,
    }])
}

fn reserve_inventory(order: &Order) -> Result<Vec<OrderEvent>, Rejection> {
    const COMMAND: &str = "ReserveInventory";
    if order.status != OrderStatus::Placed {
        return Err(invalid_state(
            COMMAND,
            order,
            "only a PLACED order can be reserved",
        ));
    }
    if order.inventory_reserved {
        return Err(invalid_state(
            COMMAND,
            order,
            "inventory is already reserved",
        ));
    }
    Ok(vec![OrderEvent::InventoryReserved {
        items: order.items.clone(),
    }])
}

fn ship_order(ship: &ShipOrder, state: &OrderState) -> Result<Vec<OrderEvent>, Rejection> {
    validate::text("carrier", &ship.carrier)?;
    validate::text("trackingNumber", &ship.tracking_number)?;
    let order = existing(state)?;
    if order.status != OrderStatus::Confirmed {
        return Err(invalid_state(
            "ShipOrder",
            order,
            "only a CONFIRMED order (paid and reserved) can ship",
        ));
    }
    Ok(vec![OrderEvent::OrderShipped {
        carrier: ship.carrier.clone(),
        tracking_number: ship.tracking_number.clone(),
    }])
}

fn deliver_order(order: &Order) -> Result<Vec<OrderEvent>, Rejection> {
    if order.status != OrderStatus::Shipped {
        return Err(invalid_state(
            "DeliverOrder",
            order,
            "only a SHIPPED order can be delivered",
        ));
    }
    Ok(vec![OrderEvent::OrderDelivered])
}

fn cancel_order(cancel: &CancelOrder, state: &OrderState) -> Result<Vec<OrderEvent>, Rejection> {
    validate::text("reason", &cancel.reason)?;
    let order = existing(state)?;
    if !matches!(order.status, OrderStatus::Placed | OrderStatus::Confirmed) {
        return Err(invalid_state(
            "CancelOrder",
            order,
            "only a PLACED or CONFIRMED order can be cancelled",
        ));
    }
    let mut events = vec![OrderEvent::OrderCancelled {
        reason: cancel.reason.clone(),
    }];
    let refundable = order.refundable();
    if refundable > 0 {
        events.push(OrderEvent::PaymentRefunded {
            amount: order.money(refundable),
            reason: cancel.reason.clone(),
        });
    }
    Ok(events)
}

fn refund_payment(
    refund: &RefundPayment,
    state: &OrderState,
) -> Result<Vec<OrderEvent>, Rejection> {
    validate::text("reason", &refund.reason)?;
    let order = existing(state)?;
    let amount = validate::amount("amount", &refund.amount, order.currency)?;
    if amount.minor == 0 {
        return Err(Rejection::invalid("amount", "must be greater than zero"));
    }
    if !order.paid {
        return Err(invalid_state(
            "RefundPayment",
            order,
            "the order has not been paid",
        ));
    }
    let refundable = order.refundable();
    if amount.minor > refundable {
        return Err(Rejection::RefundExceedsCaptured {
            requested: amount,
            refundable: order.money(refundable),
        });
    }
    Ok(vec![OrderEvent::PaymentRefunded {
        amount,
        reason: refund.reason.clone(),
    }])
}
