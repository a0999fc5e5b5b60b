//! Schema evolution end to end: an `OrderPlaced` v1 record, written the way
//! the first producers wrote it (amount only), sits in the log beside v2
//! records; every reader (history, customer and finance projections, GraphQL
//! `order`, the log fold behind `inspect`) upcasts it to v2.

use chrono::{TimeZone, Utc};
use commands::Topics;
use domain::codec::{encode_wire, wire};
use domain::{Envelope, RecordedEvent};
use eventlog::{OutgoingRecord, Record};
use serde_json::json;

use crate::support::*;

fn legacy_order_placed(order: &str, customer: &str, amount: i64) -> OutgoingRecord {
    let time = Utc.with_ymd_and_hms(2026, 11, 27, 8, 0, 0).unwrap();
    let envelope = Envelope {
        id: format!("legacy-{order}"),
        source: "/legacy/order-service".into(),
        event_type: "com.orderstore.order.placed".into(),
        time,
        subject: order.into(),
        correlation_id: "legacy".into(),
        causation_id: format!("legacy-cmd-{order}"),
        sequence: 1,
        schema_version: 1,
        partition_key: order.into(),
        trace: None,
    };
    let payload = encode_wire(&wire::OrderPlacedV1 {
        order_id: order.into(),
        customer_id: customer.into(),
        amount,
        currency: "EUR".into(),
    });
    // It decodes through the upcaster, as every reader will see it.
    assert!(RecordedEvent::decode(&envelope.to_headers(), &payload).is_ok());
    OutgoingRecord {
        topic: Topics::default().events,
        partition: None,
        record: Record {
            key: order.as_bytes().to_vec(),
            value: Some(payload),
            headers: envelope.to_headers(),
            timestamp_ms: time.timestamp_millis(),
        },
    }
}

async fn v1_and_v2_order_placed_are_read_alike(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let topics = Topics::new(&s.config.topic_prefix);
    let mut legacy = legacy_order_placed("legacy-1", "old-customer", 4999);
    legacy.topic = topics.events.clone();
    let position = append_eventually(s.server().log.as_ref(), vec![legacy]).await[0];
    let placed = data(s.gql(PLACE, order_input("modern-1", "old-customer")).await);
    let token = format!(
        "{}:{},{}",
        position.partition,
        position.offset,
        placed["placeOrder"]["consistencyToken"].as_str().unwrap()
    );

    let read = data(
        s.gql(
            "query($t: String) { order(id: \"legacy-1\", consistentWith: $t) { status items { sku } subtotal { amount currency } tax { amount } total { amount } history { schemaVersion data } } customer(id: \"old-customer\", consistentWith: $t) { orderCount lifetimeValue { amount currency } orders { edges { node { id total { amount currency } } } } } }",
            json!({ "t": token }),
        )
        .await,
    );
    let order = &read["order"];
    assert_eq!(order["status"], "PLACED");
    assert_eq!(order["items"], json!([]));
    assert_eq!(
        order["subtotal"],
        json!({ "amount": "49.99", "currency": "EUR" })
    );
    assert_eq!(
        (
            order["tax"]["amount"].clone(),
            order["total"]["amount"].clone()
        ),
        (json!("0.00"), json!("49.99"))
    );
    // Readers see the current shape and version; the log keeps v1.
    assert_eq!(order["history"][0]["schemaVersion"], "2");
    let mut consumer = s.server().log.consumer().await.unwrap();
    let tp = eventlog::TopicPartition::new(&topics.events, position.partition);
    consumer.assign(vec![(tp, position.offset)]).await.unwrap();
    let raw = consumer
        .poll(1, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        raw[0].record.header("ce_schemaversion"),
        Some(&b"1"[..]),
        "the record stays v1 on the wire"
    );
    assert_eq!(
        order["history"][0]["data"]["total"]["amount"], "49.99",
        "and reads as v2"
    );
    let customer = &read["customer"];
    assert_eq!(
        customer["orderCount"], 2,
        "the customer sees the v1 and the v2 order"
    );
    let totals: Vec<&str> = customer["orders"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["total"]["amount"].as_str().unwrap())
        .collect();
    assert_eq!(totals, ["49.99", "36.79"]);

    let day = "2026-11-27";
    let finance = data(
        s.gql(
            "query($d: Date!, $t: String) { finance(from: $d, to: $d, currency: \"EUR\", consistentWith: $t) { rows { ordersPlaced gross { amount } } } }",
            json!({ "d": day, "t": token }),
        )
        .await,
    );
    assert_eq!(
        finance["finance"]["rows"],
        json!([{ "ordersPlaced": 1, "gross": { "amount": "49.99" } }])
    );

    let folded =
        replay::log_fold::fold_order(s.server().log.as_ref(), &topics, "legacy-1", Utc::now())
            .await
            .unwrap();
    let view = replay::inspect::OrderView::of(&folded.state).unwrap();
    assert_eq!(
        (view.total.as_str(), view.items, view.version),
        ("49.99", 0, 1)
    );
    s.stop().await;
}

crate::on_both_backends!(v1_and_v2_order_placed_are_read_alike);
