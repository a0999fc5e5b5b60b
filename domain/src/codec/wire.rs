//! Frozen wire shapes, one struct per (event type, schema version).
//!
//! Never change a struct here once it has shipped: add a new version and an
//! upcaster instead. Golden fixtures in `domain/tests/fixtures/` hold their
//! bytes and fail the build when a shape drifts.

use bincode::{Decode, Encode};

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct LineItemV1 {
    pub sku: String,
    pub quantity: u32,
    pub unit_price: i64,
}

/// `com.orderstore.order.placed` v1: the amount only (the first producers).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OrderPlacedV1 {
    pub order_id: String,
    pub customer_id: String,
    pub amount: i64,
    pub currency: String,
}

/// `com.orderstore.order.placed` v2: items, subtotal, tax, total.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OrderPlacedV2 {
    pub customer_id: String,
    pub currency: String,
    pub items: Vec<LineItemV1>,
    pub subtotal: i64,
    pub tax: i64,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PaymentConfirmedV1 {
    pub payment_id: String,
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct InventoryReservedV1 {
    pub items: Vec<LineItemV1>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OrderShippedV1 {
    pub carrier: String,
    pub tracking_number: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OrderDeliveredV1 {}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct OrderCancelledV1 {
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PaymentRefundedV1 {
    pub amount: i64,
    pub currency: String,
    pub reason: String,
}
