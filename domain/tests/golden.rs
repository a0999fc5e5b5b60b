//! Golden fixtures of the wire format: the bincode bytes and the header set
//! of every (event type, schema version), committed once under
//! `tests/fixtures/` and decoded on every run. A change that breaks an old
//! fixture fails here. To add a fixture for a new version, run once with
//! `ORDERSTORE_WRITE_FIXTURES=1` and commit the new files; existing files
//! are never overwritten.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use domain::codec::{self, wire, KNOWN_VERSIONS};
use domain::order::{EventType, LineItem, OrderPlaced};
use domain::{Currency, CustomerId, Envelope, Header, Money, OrderEvent, RecordedEvent};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").unwrap())
}

fn items() -> Vec<LineItem> {
    vec![
        LineItem {
            sku: "SKU-RED-MUG".into(),
            quantity: 2,
            unit_price: 1250,
        },
        LineItem {
            sku: "SKU-TEA".into(),
            quantity: 1,
            unit_price: 899,
        },
    ]
}

/// The event each fixture holds, in the current (upcast) shape, and the
/// payload an old producer wrote for versions that are no longer current.
fn sample(event_type: EventType, version: u32) -> (OrderEvent, Option<Vec<u8>>) {
    let customer = CustomerId::parse("cust-42").unwrap();
    match (event_type, version) {
        (EventType::OrderPlaced, 1) => (
            OrderEvent::OrderPlaced(OrderPlaced {
                customer_id: customer,
                currency: Currency::parse("EUR").unwrap(),
                items: vec![],
                subtotal: 14990,
                tax: 0,
                total: 14990,
            }),
            Some(codec::encode_wire(&wire::OrderPlacedV1 {
                order_id: "order-0001".into(),
                customer_id: "cust-42".into(),
                amount: 14990,
                currency: "EUR".into(),
            })),
        ),
        (EventType::OrderPlaced, 2) => (
            OrderEvent::OrderPlaced(OrderPlaced {
                customer_id: customer,
                currency: Currency::parse("USD").unwrap(),
                items: items(),
                subtotal: 3399,
                tax: 280,
                total: 3679,
            }),
            None,
        ),
        (EventType::PaymentConfirmed, 1) => (
            OrderEvent::PaymentConfirmed {
                payment_id: "pay-777".into(),
                amount: usd(3679),
            },
            None,
        ),
        (EventType::InventoryReserved, 1) => {
            (OrderEvent::InventoryReserved { items: items() }, None)
        }
        (EventType::OrderShipped, 1) => (
            OrderEvent::OrderShipped {
                carrier: "DHL".into(),
                tracking_number: "JD014600006281230".into(),
            },
            None,
        ),
        (EventType::OrderDelivered, 1) => (OrderEvent::OrderDelivered, None),
        (EventType::OrderCancelled, 1) => (
            OrderEvent::OrderCancelled {
                reason: "customer request".into(),
            },
            None,
        ),
        (EventType::PaymentRefunded, 1) => (
            OrderEvent::PaymentRefunded {
                amount: usd(1250),
                reason: "damaged mug".into(),
            },
            None,
        ),
        other => panic!("no sample for {other:?}: add one with its fixture"),
    }
}

fn envelope(event_type: EventType, version: u32) -> Envelope {
    Envelope {
        id: format!("evt-{}-v{version}", event_type.name()),
        source: "/orderstore/command-processor".into(),
        event_type: event_type.as_str().into(),
        time: Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap()
            + chrono::Duration::microseconds(123_456),
        subject: "order-0001".into(),
        correlation_id: "corr-abc".into(),
        causation_id: "cmd-xyz".into(),
        sequence: 3,
        schema_version: version,
        partition_key: "order-0001".into(),
        // Events written before trace context have none: the fixtures keep
        // showing that they still decode.
        trace: None,
    }
}

fn paths(event_type: EventType, version: u32) -> (PathBuf, PathBuf) {
    let stem = format!("{}.v{version}", event_type.as_str());
    let dir = fixtures_dir();
    (
        dir.join(format!("{stem}.bin")),
        dir.join(format!("{stem}.headers.json")),
    )
}

fn headers_to_json(headers: &[Header]) -> String {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|h| (h.key.clone(), String::from_utf8(h.value.clone()).unwrap()))
        .collect();
    serde_json::to_string_pretty(&pairs).unwrap() + "\n"
}

fn headers_from_json(text: &str) -> Vec<Header> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).unwrap();
    pairs
        .into_iter()
        .map(|(k, v)| Header {
            key: k,
            value: v.into_bytes(),
        })
        .collect()
}

/// Writes a missing fixture when asked to; never overwrites one.
fn write_missing(event_type: EventType, version: u32) {
    let (bin, hdr) = paths(event_type, version);
    if bin.exists() || std::env::var_os("ORDERSTORE_WRITE_FIXTURES").is_none() {
        return;
    }
    let (event, legacy) = sample(event_type, version);
    let bytes = legacy.unwrap_or_else(|| codec::encode(&event).bytes);
    std::fs::create_dir_all(fixtures_dir()).unwrap();
    std::fs::write(&bin, bytes).unwrap();
    std::fs::write(
        &hdr,
        headers_to_json(&envelope(event_type, version).to_headers()),
    )
    .unwrap();
}

#[test]
fn every_known_version_has_a_fixture_that_still_decodes() {
    for &(event_type, version) in KNOWN_VERSIONS {
        write_missing(event_type, version);
        let (bin, hdr) = paths(event_type, version);
        let bytes =
            std::fs::read(&bin).unwrap_or_else(|_| panic!("missing fixture {}", bin.display()));
        let headers = headers_from_json(&std::fs::read_to_string(&hdr).unwrap());
        let expected_envelope = envelope(event_type, version);
        assert_eq!(
            Envelope::from_headers(&headers).unwrap(),
            expected_envelope,
            "{}",
            hdr.display()
        );
        let (expected_event, _) = sample(event_type, version);
        let decoded = RecordedEvent::decode(&headers, &bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        assert_eq!(decoded.event, expected_event, "{}", bin.display());
    }
}

#[test]
fn current_versions_encode_to_exactly_the_fixture_bytes() {
    for &(event_type, version) in KNOWN_VERSIONS {
        if version != codec::current_version(event_type) {
            continue;
        }
        write_missing(event_type, version);
        let (bin, hdr) = paths(event_type, version);
        let (event, _) = sample(event_type, version);
        let fixture =
            std::fs::read(&bin).unwrap_or_else(|_| panic!("missing fixture {}", bin.display()));
        assert_eq!(
            codec::encode(&event).bytes,
            fixture,
            "wire drift in {}",
            bin.display()
        );
        let headers = std::fs::read_to_string(&hdr).unwrap();
        assert_eq!(
            headers_to_json(&envelope(event_type, version).to_headers()),
            headers
        );
    }
}

#[test]
fn every_fixture_file_belongs_to_a_known_version() {
    let expected: Vec<PathBuf> = KNOWN_VERSIONS
        .iter()
        .flat_map(|&(t, v)| {
            let (a, b) = paths(t, v);
            [a, b]
        })
        .collect();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            expected.contains(&path),
            "fixture {} is not decoded by any test",
            path.display()
        );
    }
}

#[test]
fn structured_json_has_the_cloudevents_attributes_and_json_data() {
    let (event, _) = sample(EventType::PaymentConfirmed, 1);
    let recorded = RecordedEvent {
        envelope: envelope(EventType::PaymentConfirmed, 1),
        event,
    };
    let json = recorded.to_cloudevent_json();
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["type"], "com.orderstore.payment.confirmed");
    assert_eq!(json["subject"], "order-0001");
    assert_eq!(json["time"], "2026-11-27T09:30:00.123456Z");
    assert_eq!(json["correlationid"], "corr-abc");
    assert_eq!(json["causationid"], "cmd-xyz");
    assert_eq!(json["sequence"], "3");
    assert_eq!(json["schemaversion"], "1");
    assert_eq!(json["datacontenttype"], "application/json");
    assert_eq!(json["data"]["amount"]["amount"], "36.79");
    assert_eq!(json["data"]["amount"]["currency"], "USD");
    assert_eq!(json["data"]["paymentId"], "pay-777");
}
