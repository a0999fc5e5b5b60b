//! The Kafka backend on a real broker: the same conformance suite as the
//! embedded backend, and fencing of a stale transactional producer.
//!
//! The broker comes from `scripts/kafka/kafka start` (scripts/test starts it
//! and sets ORDERSTORE_KAFKA). These tests never skip: without a broker they
//! fail and say how to start one.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::time::Duration;

use eventlog::kafka::{KafkaConfig, KafkaLog};
use eventlog::{
    EventLog, GroupOffset, LogError, OutgoingRecord, Record, TopicPartition, TopicSpec,
};

fn bootstrap() -> String {
    std::env::var("ORDERSTORE_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

async fn connect(transactional_id: &str) -> KafkaLog {
    let mut config = KafkaConfig::new(bootstrap());
    config.transactional_id = transactional_id.into();
    config.timeout = Duration::from_secs(20);
    match KafkaLog::connect(config).await {
        Ok(log) => log,
        Err(error) => panic!(
            "no Kafka broker at {}: {error}. Run scripts/test, or scripts/kafka/kafka start first.",
            bootstrap()
        ),
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kafka_log_passes_the_conformance_suite() {
    let log = connect(&unique("conformance-txn")).await;
    eventlog::conformance::run_all(&log, &unique("conf")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_clear_error_within_the_timeout() {
    let mut config = KafkaConfig::new("127.0.0.1:1");
    config.timeout = Duration::from_secs(2);
    let started = std::time::Instant::now();
    let error = KafkaLog::connect(config).await.unwrap_err();
    assert!(matches!(error, LogError::Unreachable(_)), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "connect hung for {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_transactional_id_was_taken_over_cannot_commit() {
    let id = unique("fencing");
    let topic = unique("fenced");
    let group = unique("fenced-group");
    let first = connect(&id).await;
    first
        .create_topic(&TopicSpec {
            name: topic.clone(),
            partitions: 1,
            compacted: false,
            retention_ms: None,
        })
        .await
        .unwrap();
    let record = |value: &str| OutgoingRecord {
        topic: topic.clone(),
        partition: Some(0),
        record: Record {
            key: b"k".to_vec(),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp_ms: 1,
        },
    };
    let offsets = |next| {
        vec![GroupOffset {
            group: group.clone(),
            partition: TopicPartition::new(&topic, 0),
            next_offset: next,
        }]
    };

    let mut zombie = first.begin().await.unwrap();
    zombie.send(vec![record("from the zombie")]).await.unwrap();
    // A new owner with the same transactional.id starts: the old producer is fenced.
    let second = connect(&id).await;
    let mut owner = second.begin().await.unwrap();
    owner.send(vec![record("from the owner")]).await.unwrap();
    owner.commit(offsets(1)).await.unwrap();
    let refused = zombie.commit(offsets(99)).await;
    assert!(refused.is_err(), "a fenced producer committed");
    assert_eq!(
        second
            .committed(&group, &TopicPartition::new(&topic, 0))
            .await
            .unwrap(),
        Some(1)
    );

    let mut consumer = second.consumer().await.unwrap();
    consumer
        .assign(vec![(TopicPartition::new(&topic, 0), 0)])
        .await
        .unwrap();
    let mut values = Vec::new();
    loop {
        let batch = consumer.poll(10, Duration::from_secs(3)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        values.extend(
            batch
                .into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap()).unwrap()),
        );
    }
    assert_eq!(
        values,
        vec!["from the owner"],
        "only the owner's records are visible"
    );
}
