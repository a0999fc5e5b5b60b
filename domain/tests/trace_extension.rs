//! The W3C trace context of a command rides on its events as the
//! CloudEvents distributed-tracing extension, and the CloudEvents SDK reads
//! it there: from the Kafka record (binary mode, through the SDK's message
//! traits with its Kafka binding's rules) and from the structured JSON.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::collections::HashMap;

use chrono::{TimeZone, Utc};
use cloudevents::event::{ExtensionValue, SpecVersion};
use cloudevents::message::{
    BinaryDeserializer, BinarySerializer, Encoding, MessageAttributeValue, MessageDeserializer,
    StructuredDeserializer, StructuredSerializer,
};
use cloudevents::AttributesReader;
use domain::order::OrderEvent;
use domain::{CommandId, EventMeta, Money, OrderId, Recorded, RecordedEvent, TraceContext};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// A Kafka record's headers and value, read the way the SDK's rdkafka
/// binding reads a consumer record (cloudevents-sdk 0.9,
/// binding/rdkafka/kafka_consumer_record.rs): `ce_specversion` first,
/// `content-type` as datacontenttype, every other `ce_*` header an
/// attribute when the spec names it and an extension otherwise.
struct KafkaRecord {
    headers: HashMap<String, Vec<u8>>,
    payload: Option<Vec<u8>>,
}

fn text(value: Vec<u8>) -> MessageAttributeValue {
    MessageAttributeValue::String(String::from_utf8(value).unwrap())
}

impl BinaryDeserializer for KafkaRecord {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        mut self,
        mut visitor: V,
    ) -> cloudevents::message::Result<R> {
        let spec = self.headers.remove("ce_specversion").unwrap();
        let spec = SpecVersion::try_from(std::str::from_utf8(&spec).unwrap())?;
        let attributes = spec.attribute_names();
        visitor = visitor.set_spec_version(spec)?;
        if let Some(content_type) = self.headers.remove("content-type") {
            visitor = visitor.set_attribute("datacontenttype", text(content_type))?;
        }
        for (key, value) in self.headers {
            let Some(name) = key.strip_prefix("ce_") else {
                continue;
            };
            visitor = if attributes.contains(&name) {
                visitor.set_attribute(name, text(value))?
            } else {
                visitor.set_extension(name, text(value))?
            };
        }
        match self.payload {
            Some(payload) => visitor.end_with_data(payload),
            None => visitor.end(),
        }
    }
}

impl StructuredDeserializer for KafkaRecord {
    fn deserialize_structured<R: Sized, V: StructuredSerializer<R>>(
        self,
        visitor: V,
    ) -> cloudevents::message::Result<R> {
        visitor.set_structured_event(self.payload.unwrap_or_default())
    }
}

impl MessageDeserializer for KafkaRecord {
    fn encoding(&self) -> Encoding {
        if self.headers.contains_key("ce_specversion") {
            Encoding::BINARY
        } else {
            Encoding::UNKNOWN
        }
    }
}

fn traced_event() -> RecordedEvent {
    let order_id = OrderId::parse("order-7").unwrap();
    let recorded = Recorded {
        order_id,
        sequence: 2,
        time: Utc.with_ymd_and_hms(2026, 12, 2, 6, 0, 0).unwrap(),
        command_id: CommandId::parse("cmd-7").unwrap(),
        event: OrderEvent::PaymentConfirmed {
            payment_id: "pay-7".into(),
            amount: Money::parse("36.79", domain::Currency::parse("USD").unwrap()).unwrap(),
        },
    };
    let trace = TraceContext::parse(TRACEPARENT, Some(TRACESTATE)).unwrap();
    RecordedEvent::new(
        &recorded,
        EventMeta {
            id: "evt-7".into(),
            correlation_id: "checkout-7".into(),
            trace: Some(trace),
        },
    )
}

fn extension(event: &cloudevents::Event, name: &str) -> Option<String> {
    match event.extension(name)? {
        ExtensionValue::String(value) => Some(value.clone()),
        other => Some(other.to_string()),
    }
}

#[test]
fn the_sdk_reads_the_trace_extension_of_a_kafka_record() {
    let (headers, payload) = traced_event().encode();
    let record = KafkaRecord {
        headers: headers.into_iter().map(|h| (h.key, h.value)).collect(),
        payload: Some(payload),
    };
    let event = MessageDeserializer::into_event(record).unwrap();
    assert_eq!(event.id(), "evt-7");
    assert_eq!(event.subject(), Some("order-7"));
    assert_eq!(
        extension(&event, "traceparent").as_deref(),
        Some(TRACEPARENT)
    );
    assert_eq!(extension(&event, "tracestate").as_deref(), Some(TRACESTATE));
    assert_eq!(
        extension(&event, "correlationid").as_deref(),
        Some("checkout-7")
    );
}

#[test]
fn the_sdk_reads_the_trace_extension_of_the_structured_json() {
    let json = traced_event().to_cloudevent_json();
    let event: cloudevents::Event = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(
        extension(&event, "traceparent").as_deref(),
        Some(TRACEPARENT)
    );
    assert_eq!(extension(&event, "tracestate").as_deref(), Some(TRACESTATE));
    // And this store's own reader of the structured form agrees.
    let structured = domain::envelope::StructuredEvent::from_json(&json).unwrap();
    assert_eq!(structured.traceparent.as_deref(), Some(TRACEPARENT));
    assert_eq!(structured.tracestate.as_deref(), Some(TRACESTATE));
}

#[test]
fn an_event_round_trips_its_trace_through_the_log_headers() {
    let event = traced_event();
    let (headers, payload) = event.encode();
    let decoded = RecordedEvent::decode(&headers, &payload).unwrap();
    assert_eq!(decoded.envelope.trace, event.envelope.trace);
    // Without trace context there are no trace headers at all.
    let mut untraced = event.clone();
    untraced.envelope.trace = None;
    let (headers, _) = untraced.encode();
    assert!(headers.iter().all(|h| !h.key.contains("trace")));
    let json = untraced.to_cloudevent_json();
    assert!(json.get("traceparent").is_none());
}
