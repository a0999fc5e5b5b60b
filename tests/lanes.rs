//! A command lane predicts where its next events land and sends replies and
//! snapshots beside them (commands/src/processor/batch.rs). Another writer
//! in its events partition must cost a retry, never an answer that points
//! at the wrong records.

use std::time::Duration;

use commands::Topics;
use eventlog::{OutgoingRecord, Record, TopicPartition};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

const RESERVE_EVENTS: &str = "mutation($input: OrderRefInput!) { reserveInventory(input: $input) { version consistencyToken events { id sequence partition offset } } }";
const CONFIRM_EVENTS: &str = "mutation($input: ConfirmPaymentInput!) { confirmPayment(input: $input) { version consistencyToken events { id sequence partition offset } } }";
const SHIP_EVENTS: &str = "mutation($input: ShipOrderInput!) { shipOrder(input: $input) { version consistencyToken events { id sequence partition offset } } }";

/// A counter's value in the Prometheus text of `/metrics`.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or_else(|| panic!("no {name} in /metrics:\n{metrics}"), |v| v as u64)
}

/// The (partition, offset, id) of each event an answer names.
fn positions(answer: &Value, field: &str) -> Vec<(u32, u64, String)> {
    data(answer.clone())[field]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["partition"].as_u64().unwrap() as u32,
                e["offset"].as_str().unwrap().parse().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn a_foreign_writer_in_a_lanes_partition_costs_a_retry_not_a_wrong_answer(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let order = "lane-predicted";
    let placed = s.gql(PLACE, order_input(order, "pat")).await;
    let reserved = s.gql(RESERVE_EVENTS, order_ref(order)).await;
    let (partition, _, _) = positions(&reserved, "reserveInventory")[0].clone();
    let before = counter(
        &s.metrics().await,
        "orderstore_processor_offset_mispredictions_total",
    );
    assert_eq!(before, 0, "one writer per partition: every prediction held");

    // Another writer takes offsets in the lane's events partition: an
    // aborted transaction (its records and marker keep their offsets on
    // Kafka; the embedded log gives them back). Nothing readable.
    let topics = Topics::new(&s.config.topic_prefix);
    let foreign = s.server().log.lane("foreign");
    foreign.init_transactions().await.unwrap();
    let mut txn = foreign.begin().await.unwrap();
    txn.send(vec![OutgoingRecord {
        topic: topics.events.clone(),
        partition: Some(partition),
        record: Record {
            key: b"not-an-order".to_vec(),
            value: Some(b"aborted".to_vec()),
            headers: vec![],
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        },
    }])
    .await
    .unwrap();
    txn.abort().await.unwrap();

    let pay = json!({ "input": { "orderId": order, "paymentId": "p", "amount": "36.79" } });
    let confirmed = s.gql(CONFIRM_EVENTS, pay).await;
    let ship = json!({ "input": { "orderId": order, "carrier": "ups", "trackingNumber": "1Z" } });
    let shipped = s.gql(SHIP_EVENTS, ship).await;
    let metrics = s.metrics().await;
    let mispredicted = counter(&metrics, "orderstore_processor_offset_mispredictions_total");
    if backend == Backend::Kafka {
        // The confirm's batch was predicted past the foreign records, sent
        // again; the ship's was predicted right from the confirm's commit.
        assert_eq!(mispredicted, 1, "{metrics}");
    } else {
        assert_eq!(mispredicted, 0, "{metrics}");
    }
    assert!(counter(&metrics, "orderstore_processor_transactions_total") >= 4);

    // Every answer names exactly the records the log holds, in sequence.
    let mut named = positions(&placed, "placeOrder");
    named.extend(positions(&reserved, "reserveInventory"));
    named.extend(positions(&confirmed, "confirmPayment"));
    named.extend(positions(&shipped, "shipOrder"));
    let offsets: std::collections::BTreeSet<u64> = named.iter().map(|(_, o, _)| *o).collect();
    assert_eq!(
        offsets.len(),
        named.len(),
        "an offset named twice: {named:?}"
    );
    let tp = TopicPartition::new(&topics.events, partition);
    let mut reader = s.server().log.consumer().await.unwrap();
    reader.assign(vec![(tp, 0)]).await.unwrap();
    let mut in_log = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while in_log.len() < named.len() && tokio::time::Instant::now() < deadline {
        for stored in reader.poll(100, Duration::from_millis(500)).await.unwrap() {
            let id = stored
                .record
                .headers
                .iter()
                .find(|h| h.key == domain::envelope::header::ID)
                .map(|h| String::from_utf8_lossy(&h.value).into_owned());
            in_log.insert(stored.offset, (stored.record.key.clone(), id));
        }
    }
    assert_eq!(in_log.len(), named.len(), "{in_log:?}");
    for (p, offset, id) in &named {
        assert_eq!(*p, partition);
        assert_eq!(
            in_log.get(offset),
            Some(&(order.as_bytes().to_vec(), Some(id.clone()))),
            "the answer names {offset} for event {id}; the log: {in_log:?}"
        );
    }
    let shipped = data(shipped)["shipOrder"].clone();
    let token = shipped["consistencyToken"].as_str().unwrap().to_owned();
    let read = data(
        s.gql(
            "query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { version status } }",
            json!({ "id": order, "t": token }),
        )
        .await,
    );
    assert_eq!(
        read["order"],
        json!({ "version": shipped["version"], "status": "SHIPPED" })
    );
}

on_both_backends!(a_foreign_writer_in_a_lanes_partition_costs_a_retry_not_a_wrong_answer);
