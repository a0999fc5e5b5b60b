//! The event payload codec: bincode `=2.0.1` behind this one module.
//!
//! bincode is not self-describing, so a payload is decoded by its
//! (type, schema version) into that version's frozen struct (`wire`) and
//! upcast to the current `OrderEvent`. Encoding always writes the current
//! version. Bad bytes, unknown types and unknown versions are typed errors:
//! nothing here may panic on input from outside the process.

mod json;
mod upcast;
pub mod wire;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::{Decode, Encode};
use thiserror::Error;

pub use json::event_data_json;

use crate::order::{EventType, LineItem, OrderEvent};

/// Longest payload the decoder accepts, so a hostile length prefix cannot
/// make it allocate without bound.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_PAYLOAD_BYTES>>;

/// The one bincode configuration of the wire format. Changing it breaks
/// every stored event.
const CONFIG: Config = bincode::config::standard().with_limit::<MAX_PAYLOAD_BYTES>();

/// Every (type, schema version) this build can decode. Each has a golden fixture.
pub const KNOWN_VERSIONS: &[(EventType, u32)] = &[
    (EventType::OrderPlaced, 1),
    (EventType::OrderPlaced, 2),
    (EventType::PaymentConfirmed, 1),
    (EventType::InventoryReserved, 1),
    (EventType::OrderShipped, 1),
    (EventType::OrderDelivered, 1),
    (EventType::OrderCancelled, 1),
    (EventType::PaymentRefunded, 1),
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unknown schema version {version} of {event_type}")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("malformed {event_type} v{version} payload: {reason}")]
    Malformed {
        event_type: String,
        version: u32,
        reason: String,
    },
}

/// The schema version that `encode` writes for a type.
pub fn current_version(event_type: EventType) -> u32 {
    match event_type {
        EventType::OrderPlaced => 2,
        _ => 1,
    }
}

/// A payload ready for the log: its type, schema version and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub event_type: EventType,
    pub schema_version: u32,
    pub bytes: Vec<u8>,
}

/// Encodes an event in the current schema version of its type.
pub fn encode(event: &OrderEvent) -> Encoded {
    let event_type = event.event_type();
    let bytes = match event {
        OrderEvent::OrderPlaced(placed) => encode_wire(&wire::OrderPlacedV2 {
            customer_id: placed.customer_id.to_string(),
            currency: placed.currency.to_string(),
            items: placed.items.iter().map(line_item_to_wire).collect(),
            subtotal: placed.subtotal,
            tax: placed.tax,
            total: placed.total,
        }),
        OrderEvent::PaymentConfirmed { payment_id, amount } => {
            encode_wire(&wire::PaymentConfirmedV1 {
                payment_id: payment_id.clone(),
                amount: amount.minor,
                currency: amount.currency.to_string(),
            })
        }
        OrderEvent::InventoryReserved { items } => encode_wire(&wire::InventoryReservedV1 {
            items: items.iter().map(line_item_to_wire).collect(),
        }),
        OrderEvent::OrderShipped {
            carrier,
            tracking_number,
        } => encode_wire(&wire::OrderShippedV1 {
            carrier: carrier.clone(),
            tracking_number: tracking_number.clone(),
        }),
        OrderEvent::OrderDelivered => encode_wire(&wire::OrderDeliveredV1 {}),
        OrderEvent::OrderCancelled { reason } => encode_wire(&wire::OrderCancelledV1 {
            reason: reason.clone(),
        }),
        OrderEvent::PaymentRefunded { amount, reason } => encode_wire(&wire::PaymentRefundedV1 {
            amount: amount.minor,
            currency: amount.currency.to_string(),
            reason: reason.clone(),
        }),
    };
    Encoded {
        event_type,
        schema_version: current_version(event_type),
        bytes,
    }
}

/// Encodes one frozen wire struct. Public so that tests and tools can write
/// payloads the way an older producer did (e.g. `OrderPlacedV1`).
pub fn encode_wire<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding into a Vec cannot fail for these plain structs; an empty
    // payload would be refused by the decoder rather than pass silently.
    bincode::encode_to_vec(value, CONFIG).unwrap_or_default()
}

/// Decodes a payload of `event_type` (the CloudEvents `type` string) at
/// `schema_version` and upcasts it to the current shape.
pub fn decode(
    event_type: &str,
    schema_version: u32,
    bytes: &[u8],
) -> Result<OrderEvent, CodecError> {
    let known = EventType::parse(event_type)
        .ok_or_else(|| CodecError::UnknownType(event_type.to_owned()))?;
    upcast::decode_version(known, schema_version, bytes)
}

/// Decodes exactly one `T` from all of `bytes`; trailing bytes are an error.
pub(crate) fn decode_wire<T: Decode<()>>(
    event_type: EventType,
    version: u32,
    bytes: &[u8],
) -> Result<T, CodecError> {
    let malformed = |reason: String| CodecError::Malformed {
        event_type: event_type.as_str().to_owned(),
        version,
        reason,
    };
    let (value, used) =
        bincode::decode_from_slice::<T, _>(bytes, CONFIG).map_err(|e| malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(malformed(format!(
            "{} trailing bytes after the payload",
            bytes.len() - used
        )));
    }
    Ok(value)
}

fn line_item_to_wire(item: &LineItem) -> wire::LineItemV1 {
    wire::LineItemV1 {
        sku: item.sku.clone(),
        quantity: item.quantity,
        unit_price: item.unit_price,
    }
}
