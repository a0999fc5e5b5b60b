//! Compaction of the snapshots topic on real Kafka: after the log cleaner
//! runs, about one snapshot per order is left, and a node with no local state
//! restores from it exactly the states that folding the events topic gives.

use std::collections::BTreeMap;
use std::time::Duration;

use commands::StateStore;
use commands::Topics;
use domain::{evolve, initial_state, OrderState, RecordedEvent};
use eventlog::{EventLog, OutgoingRecord, Record, StoredRecord, TopicPartition};
use serde_json::json;

use crate::support::*;

const PARTITIONS: u32 = 4;

async fn read_all(log: &dyn EventLog, topic: &str) -> Vec<StoredRecord> {
    let mut consumer = log.consumer().await.unwrap();
    let mut assignment = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic, p);
        assignment.push((tp.clone(), log.watermarks(&tp).await.unwrap().0));
    }
    consumer.assign(assignment).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = consumer.poll(1000, Duration::from_secs(2)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Reads what `consumer` has not read yet of `topic`, up to its current
/// end (past transaction markers); answers how many records it read.
async fn drain(log: &dyn EventLog, consumer: &mut dyn eventlog::LogConsumer, topic: &str) -> usize {
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic, p);
        ends.push((tp.clone(), log.watermarks(&tp).await.unwrap().1));
    }
    let mut read = 0;
    while ends
        .iter()
        .any(|(tp, end)| consumer.position(tp).unwrap_or(0) < *end)
    {
        let batch = consumer.poll(1000, Duration::from_secs(2)).await.unwrap();
        if batch.is_empty() {
            break; // only transaction markers are left below the ends
        }
        read += batch.len();
    }
    read
}

async fn fold_events(log: &dyn EventLog, topics: &Topics) -> BTreeMap<String, OrderState> {
    let mut states = BTreeMap::new();
    for stored in read_all(log, &topics.events).await {
        let event = RecordedEvent::decode(
            &stored.record.headers,
            stored.record.value.as_ref().unwrap(),
        )
        .unwrap();
        let state = states
            .remove(&event.envelope.subject)
            .unwrap_or_else(initial_state);
        states.insert(
            event.envelope.subject.clone(),
            evolve(state, &event.to_recorded().unwrap()),
        );
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_leaves_one_snapshot_per_order_and_a_fresh_node_restores_from_it() {
    let s = TestServer::start_on(Backend::Kafka, |_| {}).await;
    let orders = 12;
    let topics = Topics::new(&s.config.topic_prefix);
    let log = s.server().log.clone();
    // Snapshots are read as they are written: the harness rolls segments
    // after 5 s and its cleaner may compact them any time after that.
    let mut snapshots = log.consumer().await.unwrap();
    let mut assignment = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(&topics.snapshots, p);
        assignment.push((tp.clone(), log.watermarks(&tp).await.unwrap().0));
    }
    snapshots.assign(assignment).await.unwrap();
    let mut written = 0;
    for i in 0..orders {
        let order = format!("compact-{i}");
        data(s.gql(PLACE, order_input(&order, "lee")).await);
        data(s.gql(RESERVE, order_ref(&order)).await);
        let pay = json!({ "input": { "orderId": order, "paymentId": "p", "amount": "36.79" } });
        data(s.gql(CONFIRM, pay).await);
        written += drain(log.as_ref(), snapshots.as_mut(), &topics.snapshots).await;
    }
    let dir = s.stop().await;
    assert_eq!(
        written,
        orders * 3,
        "one snapshot per command before cleaning"
    );

    // The harness rolls segments after 5 s of age, on the next write: poke
    // every partition with a tombstone (restores ignore them), then wait for the cleaner.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let pokes = (0..PARTITIONS)
        .map(|p| OutgoingRecord {
            topic: topics.snapshots.clone(),
            partition: Some(p),
            record: Record {
                key: b"compaction-poke".to_vec(),
                value: None,
                headers: vec![],
                timestamp_ms: 0,
            },
        })
        .collect();
    log.append(pokes).await.unwrap();
    eventually(
        Duration::from_secs(90),
        "the cleaner leaves one snapshot per order",
        || async {
            let left = read_all(log.as_ref(), &topics.snapshots)
                .await
                .iter()
                .filter(|r| r.record.value.is_some())
                .count();
            (left == orders).then_some(())
        },
    )
    .await;

    // A node with no local state restores from the compacted topic.
    let fresh = StateStore::open(&dir.path().join("fresh-state")).unwrap();
    for partition in 0..PARTITIONS {
        commands::processor::restore_partition(log.as_ref(), &topics, &fresh, partition)
            .await
            .unwrap();
    }
    let folded = fold_events(log.as_ref(), &topics).await;
    assert_eq!(folded.len(), orders);
    for (order_id, state) in &folded {
        assert_eq!(
            &fresh.load(order_id).unwrap().unwrap().state,
            state,
            "{order_id}"
        );
    }
}
