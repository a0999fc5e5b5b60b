//! The GraphQL object types of shared/schema.graphql, built from domain
//! and read-model values. Names follow the schema exactly.

use std::borrow::Cow;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContextSelectionSet, Enum, Json, OutputType, Positioned, Scalar, ScalarType, ServerResult,
    SimpleObject, Value, ID,
};
use chrono::{DateTime, NaiveDate, Utc};
use domain::{Currency, Money as DomainMoney};

use crate::error::ApiError;

/// A calendar date, "2026-11-27" (the schema's `Date`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> async_graphql::InputValueResult<Self> {
        match &value {
            Value::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| {
                    async_graphql::InputValueError::custom(format!(
                        "{text:?} is not a date (YYYY-MM-DD)"
                    ))
                }),
            _ => Err(async_graphql::InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct Money {
    pub amount: String,
    pub currency: String,
}

impl From<DomainMoney> for Money {
    fn from(money: DomainMoney) -> Self {
        Self {
            amount: money.to_decimal_string(),
            currency: money.currency.to_string(),
        }
    }
}

impl Money {
    pub fn of(minor: i64, currency: Currency) -> Self {
        DomainMoney::new(minor, currency).into()
    }

    /// For read-model rows that keep the currency as its code.
    pub fn of_code(minor: i64, code: &str) -> Result<Self, ApiError> {
        let currency = Currency::parse(code).map_err(ApiError::internal)?;
        Ok(Self::of(minor, currency))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum OrderStatus {
    Placed,
    Confirmed,
    Shipped,
    Delivered,
    Cancelled,
}

impl From<domain::OrderStatus> for OrderStatus {
    fn from(status: domain::OrderStatus) -> Self {
        match status {
            domain::OrderStatus::Placed => Self::Placed,
            domain::OrderStatus::Confirmed => Self::Confirmed,
            domain::OrderStatus::Shipped => Self::Shipped,
            domain::OrderStatus::Delivered => Self::Delivered,
            domain::OrderStatus::Cancelled => Self::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum PaymentStatus {
    Unpaid,
    Paid,
    PartiallyRefunded,
    Refunded,
}

impl From<domain::PaymentStatus> for PaymentStatus {
    fn from(status: domain::PaymentStatus) -> Self {
        match status {
            domain::PaymentStatus::Unpaid => Self::Unpaid,
            domain::PaymentStatus::Paid => Self::Paid,
            domain::PaymentStatus::PartiallyRefunded => Self::PartiallyRefunded,
            domain::PaymentStatus::Refunded => Self::Refunded,
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct LineItem {
    pub sku: String,
    pub quantity: i32,
    pub unit_price: Money,
}

/// One event in CloudEvents 1.0 terms.
#[derive(Debug, Clone, SimpleObject)]
pub struct Event {
    pub id: ID,
    #[graphql(name = "type")]
    pub event_type: String,
    pub source: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub sequence: i32,
    pub schema_version: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub data: EventData,
    pub partition: i32,
    pub offset: String,
    /// W3C trace context of the command that caused it (CloudEvents
    /// distributed-tracing extension); none on events written before it
    /// was recorded.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

impl Event {
    /// From a typed structured event and its log position.
    pub fn new(event: domain::envelope::StructuredEvent, partition: u32, offset: u64) -> Self {
        Self {
            id: ID(event.id),
            event_type: event.event_type,
            source: event.source,
            subject: event.subject,
            time: event.time,
            sequence: i32::try_from(event.sequence).unwrap_or(i32::MAX),
            schema_version: event.schema_version.to_string(),
            correlation_id: event.correlation_id,
            causation_id: event.causation_id,
            data: EventData::Rendered(event.data),
            partition: i32::try_from(partition).unwrap_or(i32::MAX),
            offset: offset.to_string(),
            traceparent: event.traceparent,
            tracestate: event.tracestate,
        }
    }

    /// An event read from the log or a read model: typed all the way, its
    /// data rendered only if the query selects it.
    pub fn from_recorded(event: &domain::RecordedEvent, partition: u32, offset: u64) -> Self {
        Self {
            data: EventData::Typed(event.event.clone()),
            ..Self::new(event.structured_attributes(), partition, offset)
        }
    }

    /// An event of a command's reply (structured JSON on the replies
    /// topic), read strictly: a malformed one is an internal error.
    pub fn from_reply(event: &commands::ReplyEvent) -> Result<Self, ApiError> {
        let structured = domain::envelope::StructuredEvent::from_json(&event.cloudevent)
            .map_err(ApiError::internal)?;
        Ok(Self::new(structured, event.partition, event.offset))
    }
}

/// An event's `data`, the JSON scalar: as it came (a reply, a live event)
/// or, for an event of a read model, rendered from the typed event only
/// when a query selects it (a history page asking for types and times
/// spent 9% of its time rendering data nobody read).
#[derive(Debug, Clone)]
pub enum EventData {
    Rendered(serde_json::Value),
    Typed(domain::OrderEvent),
}

impl OutputType for EventData {
    fn type_name() -> Cow<'static, str> {
        <Json<serde_json::Value> as OutputType>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        <Json<serde_json::Value> as OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        // As `Json` resolves its value.
        Ok(match self {
            Self::Rendered(data) => async_graphql::to_value(data),
            Self::Typed(event) => async_graphql::to_value(domain::codec::event_data_json(event)),
        }
        .unwrap_or_default())
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct EventEdge {
    pub cursor: String,
    pub node: Event,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct EventConnection {
    pub edges: Vec<EventEdge>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct CommandResult {
    pub order_id: ID,
    pub version: i32,
    pub events: Vec<Event>,
    pub consistency_token: String,
}

#[derive(Debug, Clone, SimpleObject)]
#[graphql(complex)]
pub struct Order {
    pub id: ID,
    pub customer_id: ID,
    pub status: OrderStatus,
    pub payment_status: PaymentStatus,
    pub inventory_reserved: bool,
    pub items: Vec<LineItem>,
    pub subtotal: Money,
    pub tax: Money,
    pub total: Money,
    pub captured: Money,
    pub refunded: Money,
    pub version: i32,
    pub placed_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Where `history` is read from, when a query selects it.
    #[graphql(skip)]
    pub events: OrderEvents,
}

/// The events of an order up to a time, read from the history read model
/// only when a query selects them.
#[derive(Clone)]
pub struct OrderEvents {
    pub history: std::sync::Arc<projections::serving::ProjectionHandle>,
    pub at: DateTime<Utc>,
    /// The state's version: events the worker applied after the state was
    /// read are not this state's.
    pub version: u64,
}

impl std::fmt::Debug for OrderEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderEvents")
            .field("generation", &self.history.version)
            .field("at", &self.at)
            .field("version", &self.version)
            .finish()
    }
}

#[async_graphql::ComplexObject]
impl Order {
    /// The events folded into this state.
    async fn history(&self) -> async_graphql::Result<Vec<Event>> {
        let entries = projections::history::events(
            &self.events.history.store,
            self.id.as_str(),
            self.events.at,
        )
        .map_err(ApiError::internal)?;
        let folded = projections::history::fold(&entries).map_err(ApiError::internal)?;
        Ok(folded
            .events
            .iter()
            .filter(|(e, _, _)| e.envelope.sequence <= self.events.version)
            .map(|(e, p, o)| Event::from_recorded(e, *p, *o))
            .collect())
    }
}

impl Order {
    pub fn new(order: &domain::Order, version: u64, events: OrderEvents) -> Self {
        let money = |minor| Money::of(minor, order.currency);
        Self {
            id: ID(order.id.to_string()),
            customer_id: ID(order.customer_id.to_string()),
            status: order.status.into(),
            payment_status: order.payment_status().into(),
            inventory_reserved: order.inventory_reserved,
            items: order
                .items
                .iter()
                .map(|i| LineItem {
                    sku: i.sku.clone(),
                    quantity: i32::try_from(i.quantity).unwrap_or(i32::MAX),
                    unit_price: money(i.unit_price),
                })
                .collect(),
            subtotal: money(order.subtotal),
            tax: money(order.tax),
            total: money(order.total),
            captured: money(order.captured),
            refunded: money(order.refunded),
            version: i32::try_from(version).unwrap_or(i32::MAX),
            placed_at: order.placed_at,
            updated_at: order.updated_at,
            events,
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct OrderSummary {
    pub id: ID,
    pub status: OrderStatus,
    pub total: Money,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct OrderSummaryEdge {
    pub cursor: String,
    pub node: OrderSummary,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct OrderSummaryConnection {
    pub edges: Vec<OrderSummaryEdge>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct FinanceRow {
    pub date: Date,
    pub currency: String,
    pub orders_placed: i32,
    pub gross: Money,
    pub tax: Money,
    pub captured: Money,
    pub refunded: Money,
    pub net: Money,
    pub cancelled: i32,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct FinanceReport {
    pub rows: Vec<FinanceRow>,
    pub totals: Vec<FinanceRow>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct RebuildProgress {
    pub target_version: i32,
    pub applied: String,
    pub total: String,
    pub events_per_second: f64,
    /// "building" (reading the log from the start), then "catching up"
    /// (following the live log until as far as the served generation).
    pub phase: String,
    /// Set when building a generation frozen at this time.
    pub until: Option<DateTime<Utc>>,
}

impl From<&projections::serving::RebuildStatus> for RebuildProgress {
    fn from(status: &projections::serving::RebuildStatus) -> Self {
        Self {
            target_version: i32::try_from(status.target_version).unwrap_or(i32::MAX),
            applied: status.applied.to_string(),
            total: status.total.to_string(),
            events_per_second: status.events_per_second,
            phase: status.phase.to_owned(),
            until: status.until,
        }
    }
}

/// How the last rebuild of a projection on this node ended.
#[derive(Debug, Clone, SimpleObject)]
pub struct RebuildOutcome {
    pub target_version: i32,
    pub until: Option<DateTime<Utc>>,
    /// Events read from the log while building.
    pub events: String,
    pub seconds: f64,
    pub finished_at: DateTime<Utc>,
    /// Why it failed (the served generation did not change); null on success.
    pub error: Option<String>,
}

impl From<&projections::serving::RebuildOutcome> for RebuildOutcome {
    fn from(outcome: &projections::serving::RebuildOutcome) -> Self {
        Self {
            target_version: i32::try_from(outcome.target_version).unwrap_or(i32::MAX),
            until: outcome.until,
            events: outcome.events.to_string(),
            seconds: outcome.seconds,
            finished_at: outcome.finished_at,
            error: outcome.error.clone(),
        }
    }
}

/// A rebuild that has started: follow it with `projections { rebuilding }`.
#[derive(Debug, Clone, SimpleObject)]
pub struct RebuildStarted {
    pub name: String,
    /// The generation being built.
    pub target_version: i32,
    /// The generation served meanwhile.
    pub served_version: i32,
}

/// A CloudEvents HTTP sink of this node (`serve --sink NAME=URL`).
#[derive(Debug, Clone, SimpleObject)]
pub struct SinkStatus {
    pub name: String,
    /// Without credentials.
    pub url: String,
    /// Events not yet acknowledged by the receiver.
    pub lag: String,
    pub lag_seconds: Option<f64>,
    /// Events acknowledged (2xx) since the sink was created.
    pub delivered: String,
    /// Orders whose next event is waiting for a retry.
    pub retrying: i32,
    /// Events parked after a non-retryable 4xx.
    pub parked: i32,
    /// Requests retried since this node started.
    pub retries: String,
    /// The last failed attempt's error, since this node started.
    pub last_error: Option<String>,
}

impl From<projections::sinks::SinkStatus> for SinkStatus {
    fn from(status: projections::sinks::SinkStatus) -> Self {
        let int = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            name: status.name,
            url: status.url,
            lag: status.lag.to_string(),
            lag_seconds: Some(status.lag_seconds),
            delivered: status.delivered.to_string(),
            retrying: int(status.retrying),
            parked: int(status.parked),
            retries: status.retries.to_string(),
            last_error: status.last_error,
        }
    }
}

/// An event a sink's receiver refused (or one parked behind it).
#[derive(Debug, Clone, SimpleObject)]
pub struct SinkParkedEvent {
    /// `sink:partition:offset`.
    pub id: ID,
    pub sink: String,
    pub partition: i32,
    pub offset: String,
    pub order_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub sequence: Option<String>,
    /// The receiver's status code, when it answered.
    pub status: Option<i32>,
    pub error: String,
    pub parked_at: DateTime<Utc>,
}

impl SinkParkedEvent {
    pub fn new(sink: &str, event: projections::sinks::ParkedEvent) -> Self {
        Self {
            id: ID(format!("{sink}:{}:{}", event.partition, event.offset)),
            sink: sink.to_owned(),
            partition: i32::try_from(event.partition).unwrap_or(i32::MAX),
            offset: event.offset.to_string(),
            order_id: event.order_id,
            event_id: event.event_id,
            event_type: event.event_type,
            sequence: event.sequence.map(|s| s.to_string()),
            status: event.status.map(i32::from),
            error: event.error,
            parked_at: event.parked_at,
        }
    }
}

#[derive(Debug, Clone, SimpleObject)]
pub struct ProjectionStatus {
    pub name: String,
    pub version: i32,
    pub lag: String,
    pub lag_seconds: Option<f64>,
    pub events_applied: String,
    pub rebuilding: Option<RebuildProgress>,
    /// The last rebuild on this node since it started.
    pub last_rebuild: Option<RebuildOutcome>,
    /// Every complete generation on disk (the served one, kept and frozen
    /// ones): what `generation:` arguments and `switchProjection` may name.
    pub generations: Vec<i32>,
    /// Lag per partition of the events topic.
    pub partitions: Vec<PartitionLag>,
}

/// How far a projection is behind one partition of the events topic.
#[derive(Debug, Clone, SimpleObject)]
pub struct PartitionLag {
    pub partition: i32,
    /// Next offset the projection will apply.
    pub position: String,
    /// The end of the log's committed records (Kafka: the last stable
    /// offset, or the end of a transaction this node committed while its
    /// markers are being written).
    pub end: String,
    pub lag: String,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct DeadLetter {
    pub id: ID,
    pub projection: String,
    pub partition: i32,
    pub offset: String,
    pub error: String,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    /// The order it belongs to (null when the record could not be read at all).
    pub order_id: Option<String>,
    /// The record's headers as they were on the log.
    pub headers: Vec<RecordHeader>,
    /// Size of the payload (null for a tombstone).
    pub payload_bytes: Option<i32>,
    /// The first 256 bytes of the payload, in hex.
    pub payload_hex: Option<String>,
}

#[derive(Debug, Clone, SimpleObject)]
pub struct RecordHeader {
    pub key: String,
    /// The value as UTF-8 (lossy).
    pub value: String,
}

impl From<replay::ops::DeadLetterView> for DeadLetter {
    fn from(letter: replay::ops::DeadLetterView) -> Self {
        Self {
            id: ID(format!("{}:{}", letter.projection, letter.position())),
            partition: i32::try_from(letter.partition).unwrap_or(i32::MAX),
            offset: letter.offset.to_string(),
            projection: letter.projection,
            error: letter.error,
            event_type: letter.event_type,
            received_at: letter.received_at,
            order_id: letter.order_id,
            headers: letter
                .headers
                .into_iter()
                .map(|h| RecordHeader {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
            payload_bytes: letter
                .payload_bytes
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            payload_hex: letter.payload_hex,
        }
    }
}

/// What `retryDeadLetters` did.
#[derive(Debug, Clone, SimpleObject)]
pub struct DeadLetterRetry {
    /// Dead letters that applied now (or were already applied) and are gone.
    pub applied: i32,
    /// Dead letters still parked (the first still failing and those after it).
    pub still_parked: i32,
}

/// `verifyProjection`: the served generation against a scratch rebuild up to
/// the same checkpoints.
#[derive(Debug, Clone, SimpleObject)]
pub struct ProjectionVerification {
    pub name: String,
    /// The generation compared.
    pub version: i32,
    /// Events the scratch rebuild applied.
    pub events: String,
    /// Entries compared (rows, sequences, checkpoints, parked orders, dead letters).
    pub entries: String,
    /// Entries that differ (all counted; the first 100 listed).
    pub different: String,
    pub differences: Vec<EntryDifference>,
}

/// One entry that differs: its value in the served generation and in the rebuild.
#[derive(Debug, Clone, SimpleObject)]
pub struct EntryDifference {
    pub entry: String,
    /// Null: missing from the served generation.
    pub served: Option<String>,
    /// Null: missing from the rebuild.
    pub rebuilt: Option<String>,
}

/// `inspectOrder` / `inspectDiff`: the log's own answer, as the `inspect`
/// command prints it (a table for people, JSON for scripts).
#[derive(Debug, Clone, SimpleObject)]
pub struct Inspection {
    pub text: String,
    pub json: Json<serde_json::Value>,
}

impl From<replay::ops::Inspection> for Inspection {
    fn from(inspection: replay::ops::Inspection) -> Self {
        Self {
            text: inspection.text,
            json: Json(inspection.json),
        }
    }
}

impl From<replay::ops::ProjectionVerification> for ProjectionVerification {
    fn from(v: replay::ops::ProjectionVerification) -> Self {
        Self {
            name: v.name,
            version: i32::try_from(v.version).unwrap_or(i32::MAX),
            events: v.events.to_string(),
            entries: v.entries.to_string(),
            different: v.different.to_string(),
            differences: v
                .differences
                .into_iter()
                .map(|d| EntryDifference {
                    entry: d.entry,
                    served: d.served,
                    rebuilt: d.rebuilt,
                })
                .collect(),
        }
    }
}

/// `verifySnapshots`: every order folded from the events topic against its
/// latest snapshot.
#[derive(Debug, Clone, SimpleObject)]
pub struct SnapshotVerification {
    pub orders: i32,
    pub snapshots: i32,
    /// Records of the events topic that are not readable events.
    pub undecodable: String,
    /// One line per order whose snapshot and fold differ.
    pub differences: Vec<String>,
}
