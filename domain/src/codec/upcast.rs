//! Upcasters: each (type, version) decoded into its frozen struct and
//! lifted to the current `OrderEvent`. Old versions must decode forever.

use crate::codec::{decode_wire, wire, CodecError};
use crate::ids::CustomerId;
use crate::money::{Currency, Money};
use crate::order::{EventType, LineItem, OrderEvent, OrderPlaced};

pub(super) fn decode_version(
    event_type: EventType,
    version: u32,
    bytes: &[u8],
) -> Result<OrderEvent, CodecError> {
    let lift = Lift {
        event_type,
        version,
    };
    match (event_type, version) {
        (EventType::OrderPlaced, 1) => lift.order_placed_v1(lift.decode(bytes)?),
        (EventType::OrderPlaced, 2) => lift.order_placed_v2(lift.decode(bytes)?),
        (EventType::PaymentConfirmed, 1) => {
            let v1: wire::PaymentConfirmedV1 = lift.decode(bytes)?;
            Ok(OrderEvent::PaymentConfirmed {
                payment_id: v1.payment_id,
                amount: lift.money(v1.amount, &v1.currency)?,
            })
        }
        (EventType::InventoryReserved, 1) => {
            let v1: wire::InventoryReservedV1 = lift.decode(bytes)?;
            Ok(OrderEvent::InventoryReserved {
                items: v1.items.into_iter().map(line_item).collect(),
            })
        }
        (EventType::OrderShipped, 1) => {
            let v1: wire::OrderShippedV1 = lift.decode(bytes)?;
            Ok(OrderEvent::OrderShipped {
                carrier: v1.carrier,
                tracking_number: v1.tracking_number,
            })
        }
        (EventType::OrderDelivered, 1) => {
            let _: wire::OrderDeliveredV1 = lift.decode(bytes)?;
            Ok(OrderEvent::OrderDelivered)
        }
        (EventType::OrderCancelled, 1) => {
            let v1: wire::OrderCancelledV1 = lift.decode(bytes)?;
            Ok(OrderEvent::OrderCancelled { reason: v1.reason })
        }
        (EventType::PaymentRefunded, 1) => {
            let v1: wire::PaymentRefundedV1 = lift.decode(bytes)?;
            Ok(OrderEvent::PaymentRefunded {
                amount: lift.money(v1.amount, &v1.currency)?,
                reason: v1.reason,
            })
        }
        _ => Err(CodecError::UnknownVersion {
            event_type: event_type.as_str().to_owned(),
            version,
        }),
    }
}

/// The (type, version) being decoded, for error messages.
struct Lift {
    event_type: EventType,
    version: u32,
}

impl Lift {
    fn decode<T: bincode::Decode<()>>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        decode_wire(self.event_type, self.version, bytes)
    }

    fn malformed(&self, reason: String) -> CodecError {
        CodecError::Malformed {
            event_type: self.event_type.as_str().to_owned(),
            version: self.version,
            reason,
        }
    }

    fn currency(&self, code: &str) -> Result<Currency, CodecError> {
        Currency::parse(code).map_err(|e| self.malformed(e.to_string()))
    }

    fn money(&self, minor: i64, code: &str) -> Result<Money, CodecError> {
        Ok(Money::new(minor, self.currency(code)?))
    }

    fn customer(&self, id: String) -> Result<CustomerId, CodecError> {
        CustomerId::parse(id).map_err(|e| self.malformed(e.to_string()))
    }

    /// v1 -> current: no items, subtotal = total = amount, tax = 0.
    fn order_placed_v1(&self, v1: wire::OrderPlacedV1) -> Result<OrderEvent, CodecError> {
        Ok(OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: self.customer(v1.customer_id)?,
            currency: self.currency(&v1.currency)?,
            items: Vec::new(),
            subtotal: v1.amount,
            tax: 0,
            total: v1.amount,
        }))
    }

    fn order_placed_v2(&self, v2: wire::OrderPlacedV2) -> Result<OrderEvent, CodecError> {
        Ok(OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: self.customer(v2.customer_id)?,
            currency: self.currency(&v2.currency)?,
            items: v2.items.into_iter().map(line_item).collect(),
            subtotal: v2.subtotal,
            tax: v2.tax,
            total: v2.total,
        }))
    }
}

fn line_item(item: wire::LineItemV1) -> LineItem {
    LineItem {
        sku: item.sku,
        quantity: item.quantity,
        unit_price: item.unit_price,
    }
}
