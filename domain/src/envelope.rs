//! The CloudEvents 1.0 envelope of an order event: Kafka binary-mode
//! headers (`ce_*`, `content-type`) for the log, and the structured JSON
//! format for people and exports. No I/O; ids and times are given.

use chrono::{DateTime, SecondsFormat, Utc};
use cloudevents::{EventBuilder, EventBuilderV10};
use serde_json::Value;
use thiserror::Error;

use crate::codec::{self, CodecError};
use crate::ids::{CommandId, OrderId};
use crate::order::{OrderEvent, Recorded};
use crate::trace::TraceContext;

pub const SPEC_VERSION: &str = "1.0";
/// Content type of the bincode payload in binary mode.
pub const CONTENT_TYPE: &str = "application/x-bincode";
/// Content type of the structured JSON format.
pub const JSON_CONTENT_TYPE: &str = "application/cloudevents+json";
/// CloudEvents `source` of events written by the command processor.
pub const SOURCE: &str = "/orderstore/command-processor";

pub mod header {
    pub const SPEC_VERSION: &str = "ce_specversion";
    pub const ID: &str = "ce_id";
    pub const SOURCE: &str = "ce_source";
    pub const TYPE: &str = "ce_type";
    pub const TIME: &str = "ce_time";
    pub const SUBJECT: &str = "ce_subject";
    pub const CORRELATION_ID: &str = "ce_correlationid";
    pub const CAUSATION_ID: &str = "ce_causationid";
    pub const SEQUENCE: &str = "ce_sequence";
    pub const SCHEMA_VERSION: &str = "ce_schemaversion";
    pub const PARTITION_KEY: &str = "ce_partitionkey";
    /// The CloudEvents distributed-tracing extension (W3C trace context).
    pub const TRACEPARENT: &str = "ce_traceparent";
    pub const TRACESTATE: &str = "ce_tracestate";
    pub const CONTENT_TYPE: &str = "content-type";
}

/// One record header, as Kafka carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    pub key: String,
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(key: &str, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.to_owned(),
            value: value.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EnvelopeError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("header {name} is invalid: {reason}")]
    InvalidHeader { name: &'static str, reason: String },
    #[error(transparent)]
    Payload(#[from] CodecError),
}

/// The CloudEvents attributes of one order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub source: String,
    /// The `type` string as found; may be one this build does not know.
    pub event_type: String,
    pub time: DateTime<Utc>,
    /// The order id.
    pub subject: String,
    pub correlation_id: String,
    /// The command id.
    pub causation_id: String,
    /// Aggregate version, 1-based.
    pub sequence: u64,
    pub schema_version: u32,
    pub partition_key: String,
    /// The trace context of the command that caused it; events written
    /// before trace context was recorded have none.
    pub trace: Option<TraceContext>,
}

/// RFC 3339 with microseconds, the one text form of event time.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl Envelope {
    /// Kafka binary content mode: attributes as `ce_*` headers.
    pub fn to_headers(&self) -> Vec<Header> {
        let mut headers = vec![
            Header::new(header::SPEC_VERSION, SPEC_VERSION),
            Header::new(header::ID, self.id.as_str()),
            Header::new(header::SOURCE, self.source.as_str()),
            Header::new(header::TYPE, self.event_type.as_str()),
            Header::new(header::TIME, format_time(&self.time)),
            Header::new(header::SUBJECT, self.subject.as_str()),
            Header::new(header::CORRELATION_ID, self.correlation_id.as_str()),
            Header::new(header::CAUSATION_ID, self.causation_id.as_str()),
            Header::new(header::SEQUENCE, self.sequence.to_string()),
            Header::new(header::SCHEMA_VERSION, self.schema_version.to_string()),
            Header::new(header::PARTITION_KEY, self.partition_key.as_str()),
            Header::new(header::CONTENT_TYPE, CONTENT_TYPE),
        ];
        if let Some(trace) = &self.trace {
            headers.push(Header::new(header::TRACEPARENT, trace.traceparent.as_str()));
            if let Some(state) = &trace.tracestate {
                headers.push(Header::new(header::TRACESTATE, state.as_str()));
            }
        }
        headers
    }

    /// Reads the envelope back from record headers; every attribute is required.
    pub fn from_headers(headers: &[Header]) -> Result<Self, EnvelopeError> {
        let spec = text(headers, header::SPEC_VERSION)?;
        if spec != SPEC_VERSION {
            return Err(invalid(
                header::SPEC_VERSION,
                format!("unsupported specversion {spec:?}"),
            ));
        }
        let content_type = text(headers, header::CONTENT_TYPE)?;
        if content_type != CONTENT_TYPE {
            return Err(invalid(
                header::CONTENT_TYPE,
                format!("expected {CONTENT_TYPE}, found {content_type:?}"),
            ));
        }
        let time = text(headers, header::TIME)?;
        let time = DateTime::parse_from_rfc3339(time)
            .map_err(|e| invalid(header::TIME, e.to_string()))?
            .with_timezone(&Utc);
        Ok(Self {
            id: text(headers, header::ID)?.to_owned(),
            source: text(headers, header::SOURCE)?.to_owned(),
            event_type: text(headers, header::TYPE)?.to_owned(),
            time,
            subject: text(headers, header::SUBJECT)?.to_owned(),
            correlation_id: text(headers, header::CORRELATION_ID)?.to_owned(),
            causation_id: text(headers, header::CAUSATION_ID)?.to_owned(),
            sequence: number(headers, header::SEQUENCE)?,
            schema_version: number(headers, header::SCHEMA_VERSION)?,
            partition_key: text(headers, header::PARTITION_KEY)?.to_owned(),
            trace: trace_of(headers),
        })
    }
}

/// The optional trace extension. A malformed one (not written by this
/// store) is left out rather than making the event unreadable.
fn trace_of(headers: &[Header]) -> Option<TraceContext> {
    let traceparent = text(headers, header::TRACEPARENT).ok()?;
    let tracestate = text(headers, header::TRACESTATE).ok();
    TraceContext::parse(traceparent, tracestate).ok()
}

fn invalid(name: &'static str, reason: impl Into<String>) -> EnvelopeError {
    EnvelopeError::InvalidHeader {
        name,
        reason: reason.into(),
    }
}

fn text<'h>(headers: &'h [Header], name: &'static str) -> Result<&'h str, EnvelopeError> {
    let found = headers
        .iter()
        .rev()
        .find(|h| h.key == name)
        .ok_or(EnvelopeError::MissingHeader(name))?;
    std::str::from_utf8(&found.value).map_err(|_| invalid(name, "not UTF-8"))
}

fn number<T: std::str::FromStr>(
    headers: &[Header],
    name: &'static str,
) -> Result<T, EnvelopeError> {
    let value = text(headers, name)?;
    value
        .parse()
        .map_err(|_| invalid(name, format!("{value:?} is not a number")))
}

/// An event with its envelope: what one record of the events topic holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub envelope: Envelope,
    pub event: OrderEvent,
}

/// What the command processor knows about an event beyond the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub id: String,
    pub correlation_id: String,
    pub trace: Option<TraceContext>,
}

impl RecordedEvent {
    /// Wraps a recorded domain event in its envelope (current schema version).
    pub fn new(recorded: &Recorded, meta: EventMeta) -> Self {
        let event_type = recorded.event.event_type();
        Self {
            envelope: Envelope {
                id: meta.id,
                source: SOURCE.to_owned(),
                event_type: event_type.as_str().to_owned(),
                time: recorded.time,
                subject: recorded.order_id.to_string(),
                correlation_id: meta.correlation_id,
                causation_id: recorded.command_id.to_string(),
                sequence: recorded.sequence,
                schema_version: codec::current_version(event_type),
                partition_key: recorded.order_id.to_string(),
                trace: meta.trace,
            },
            event: recorded.event.clone(),
        }
    }

    /// Headers and bincode payload for the log.
    pub fn encode(&self) -> (Vec<Header>, Vec<u8>) {
        let encoded = codec::encode(&self.event);
        let mut envelope = self.envelope.clone();
        envelope.schema_version = encoded.schema_version;
        (envelope.to_headers(), encoded.bytes)
    }

    /// Reads one record of the events topic: headers, then the payload by
    /// its (type, schema version).
    pub fn decode(headers: &[Header], payload: &[u8]) -> Result<Self, EnvelopeError> {
        let envelope = Envelope::from_headers(headers)?;
        let event = codec::decode(&envelope.event_type, envelope.schema_version, payload)?;
        Ok(Self { envelope, event })
    }

    /// The domain view, for `evolve`.
    pub fn to_recorded(&self) -> Result<Recorded, EnvelopeError> {
        let order_id = OrderId::parse(self.envelope.subject.as_str())
            .map_err(|e| invalid(header::SUBJECT, e.to_string()))?;
        let command_id = CommandId::parse(self.envelope.causation_id.as_str())
            .map_err(|e| invalid(header::CAUSATION_ID, e.to_string()))?;
        Ok(Recorded {
            order_id,
            sequence: self.envelope.sequence,
            time: self.envelope.time,
            command_id,
            event: self.event.clone(),
        })
    }

    /// The structured form as a typed value, built directly (no JSON round
    /// trip): what the API shows of an event.
    pub fn to_structured(&self) -> StructuredEvent {
        StructuredEvent {
            data: codec::event_data_json(&self.event),
            ..self.structured_attributes()
        }
    }

    /// The structured form with its `data` left null: for a reader that
    /// renders the data (`codec::event_data_json`) only when it is asked
    /// for, as GraphQL does when a query selects `data`.
    pub fn structured_attributes(&self) -> StructuredEvent {
        let e = &self.envelope;
        StructuredEvent {
            id: e.id.clone(),
            source: e.source.clone(),
            event_type: e.event_type.clone(),
            subject: e.subject.clone(),
            time: e.time,
            sequence: e.sequence,
            schema_version: codec::current_version(self.event.event_type()),
            correlation_id: e.correlation_id.clone(),
            causation_id: e.causation_id.clone(),
            traceparent: e.trace.as_ref().map(|t| t.traceparent.clone()),
            tracestate: e.trace.as_ref().and_then(|t| t.tracestate.clone()),
            data: serde_json::Value::Null,
        }
    }

    /// The CloudEvents HTTP binding's binary content mode: every attribute
    /// and extension as a `ce-` header (the same ones, with the same
    /// values, as `to_cloudevent_json`), and the data as the JSON body
    /// (`content-type: application/json`).
    pub fn to_http_binary(&self) -> (Vec<(&'static str, String)>, Vec<u8>) {
        let e = &self.envelope;
        let mut headers = vec![
            ("ce-specversion", SPEC_VERSION.to_owned()),
            ("ce-id", e.id.clone()),
            ("ce-source", e.source.clone()),
            ("ce-type", e.event_type.clone()),
            // As the structured form writes it (the SDK's serde: trailing
            // zero digits trimmed to ms or s), so a receiver sees one time
            // whichever mode carried it.
            (
                "ce-time",
                e.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ),
            ("ce-subject", e.subject.clone()),
            ("ce-correlationid", e.correlation_id.clone()),
            ("ce-causationid", e.causation_id.clone()),
            ("ce-sequence", e.sequence.to_string()),
            (
                "ce-schemaversion",
                codec::current_version(self.event.event_type()).to_string(),
            ),
            ("ce-partitionkey", e.partition_key.clone()),
            ("content-type", "application/json".to_owned()),
        ];
        if let Some(trace) = &e.trace {
            headers.push(("ce-traceparent", trace.traceparent.clone()));
            if let Some(state) = &trace.tracestate {
                headers.push(("ce-tracestate", state.clone()));
            }
        }
        let body = codec::event_data_json(&self.event).to_string().into_bytes();
        (headers, body)
    }

    /// The structured CloudEvents JSON form (`application/cloudevents+json`),
    /// with the data as JSON in the current (upcast) shape.
    pub fn to_cloudevent_json(&self) -> Value {
        let e = &self.envelope;
        let mut builder = EventBuilderV10::new()
            .id(e.id.as_str())
            .source(e.source.as_str())
            .ty(e.event_type.as_str())
            .time(e.time)
            .subject(e.subject.as_str())
            .extension("correlationid", e.correlation_id.as_str())
            .extension("causationid", e.causation_id.as_str())
            .extension("sequence", e.sequence.to_string())
            // The data is rendered in the current shape, so it carries the
            // current version; the log keeps the version it was written in.
            .extension(
                "schemaversion",
                codec::current_version(self.event.event_type()).to_string(),
            )
            .extension("partitionkey", e.partition_key.as_str());
        if let Some(trace) = &e.trace {
            builder = builder.extension("traceparent", trace.traceparent.as_str());
            if let Some(state) = &trace.tracestate {
                builder = builder.extension("tracestate", state.as_str());
            }
        }
        let built = builder
            .data("application/json", codec::event_data_json(&self.event))
            .build();
        match built.map(|event| serde_json::to_value(&event)) {
            Ok(Ok(value)) => value,
            // Only an invalid `source` URI can fail here; keep the event visible.
            Ok(Err(error)) => serde_json::json!({ "error": error.to_string() }),
            Err(error) => serde_json::json!({ "error": error.to_string() }),
        }
    }
}

/// One event in structured CloudEvents terms, typed: the attributes, the
/// extensions this store sets, and the data as JSON in the current shape.
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredEvent {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub sequence: u64,
    pub schema_version: u32,
    pub correlation_id: String,
    pub causation_id: String,
    /// The distributed-tracing extension, when the event has one.
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub data: Value,
}

impl StructuredEvent {
    /// Reads the structured JSON form (`to_cloudevent_json`) back. Every
    /// attribute must be there and well-formed: nothing defaults.
    pub fn from_json(json: &Value) -> Result<Self, EnvelopeError> {
        let text = |name: &'static str| -> Result<String, EnvelopeError> {
            json.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(EnvelopeError::MissingHeader(name))
        };
        let number = |name: &'static str| -> Result<u64, EnvelopeError> {
            let value = text(name)?;
            value
                .parse()
                .map_err(|_| invalid(name, format!("{value:?} is not a number")))
        };
        let time = text("time")?;
        let time = DateTime::parse_from_rfc3339(&time)
            .map_err(|e| invalid("time", format!("{time:?}: {e}")))?
            .with_timezone(&Utc);
        let schema_version = number("schemaversion")?;
        Ok(Self {
            id: text("id")?,
            source: text("source")?,
            event_type: text("type")?,
            subject: text("subject")?,
            time,
            sequence: number("sequence")?,
            schema_version: u32::try_from(schema_version)
                .map_err(|_| invalid("schemaversion", "out of range"))?,
            correlation_id: text("correlationid")?,
            causation_id: text("causationid")?,
            traceparent: text("traceparent").ok(),
            tracestate: text("tracestate").ok(),
            data: json
                .get("data")
                .cloned()
                .ok_or(EnvelopeError::MissingHeader("data"))?,
        })
    }
}
