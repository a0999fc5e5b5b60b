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

async fn create_topic(log: &KafkaLog, name: &str, partitions: u32) {
    log.create_topic(&TopicSpec {
        name: name.to_owned(),
        partitions,
        compacted: false,
        retention_ms: None,
    })
    .await
    .unwrap();
}

fn record(topic: &str, partition: u32, value: &str) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_owned(),
        partition: Some(partition),
        record: Record {
            key: b"k".to_vec(),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
            timestamp_ms: 1,
        },
    }
}

fn offsets(group: &str, topic: &str, partition: u32, next_offset: u64) -> Vec<GroupOffset> {
    vec![GroupOffset {
        group: group.to_owned(),
        partition: TopicPartition::new(topic, partition),
        next_offset,
    }]
}

/// Every committed value of a partition, read from its start until a poll
/// brings nothing.
async fn values(log: &KafkaLog, topic: &str, partition: u32) -> Vec<String> {
    let mut consumer = log.consumer().await.unwrap();
    consumer
        .assign(vec![(TopicPartition::new(topic, partition), 0)])
        .await
        .unwrap();
    let mut values = Vec::new();
    loop {
        let batch = consumer.poll(10, Duration::from_secs(3)).await.unwrap();
        if batch.is_empty() {
            return values;
        }
        values.extend(
            batch
                .into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap()).unwrap()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_transactional_id_was_taken_over_cannot_commit() {
    let id = unique("fencing");
    let topic = unique("fenced");
    let group = unique("fenced-group");
    let first = connect(&id).await;
    create_topic(&first, &topic, 1).await;

    let mut zombie = first.begin().await.unwrap();
    zombie
        .send(vec![record(&topic, 0, "from the zombie")])
        .await
        .unwrap();
    // A new owner with the same transactional.id starts: the old producer is fenced.
    let second = connect(&id).await;
    let mut owner = second.begin().await.unwrap();
    owner
        .send(vec![record(&topic, 0, "from the owner")])
        .await
        .unwrap();
    owner.commit(offsets(&group, &topic, 0, 1)).await.unwrap();
    let refused = zombie.commit(offsets(&group, &topic, 0, 99)).await;
    assert!(refused.is_err(), "a fenced producer committed");
    assert_eq!(
        second
            .committed(&group, &TopicPartition::new(&topic, 0))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        values(&second, &topic, 0).await,
        vec!["from the owner"],
        "only the owner's records are visible"
    );
}

/// Lanes of the same base id on two handles (two nodes): claiming a lane
/// fences only that lane's previous writer; the old node's other lane
/// still commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_a_lane_fences_only_that_lanes_previous_writer() {
    let id = unique("lanes");
    let topic = unique("lanes");
    let group = unique("lanes-group");
    let old_node = connect(&id).await;
    create_topic(&old_node, &topic, 2).await;
    let (old_p0, old_p1) = (old_node.lane("p0"), old_node.lane("p1"));
    let mut zombie = old_p0.begin().await.unwrap();
    zombie
        .send(vec![record(&topic, 0, "old p0")])
        .await
        .unwrap();
    let mut kept = old_p1.begin().await.unwrap();
    kept.send(vec![record(&topic, 1, "old p1")]).await.unwrap();

    // A new node takes partition 0 over: it claims lane p0 only.
    let new_node = connect(&id).await;
    let new_p0 = new_node.lane("p0");
    new_p0.init_transactions().await.unwrap();
    let mut owner = new_p0.begin().await.unwrap();
    owner.send(vec![record(&topic, 0, "new p0")]).await.unwrap();
    owner.commit(offsets(&group, &topic, 0, 1)).await.unwrap();

    let refused = zombie.commit(offsets(&group, &topic, 0, 99)).await;
    assert!(
        matches!(
            refused,
            Err(LogError::Fenced(_)) | Err(LogError::Aborted(_))
        ),
        "the old writer of lane p0 committed: {refused:?}"
    );
    kept.commit(offsets(&group, &topic, 1, 3)).await.unwrap();

    for (partition, expected, next) in [(0, "new p0", 1), (1, "old p1", 3)] {
        let tp = TopicPartition::new(&topic, partition);
        assert_eq!(new_node.committed(&group, &tp).await.unwrap(), Some(next));
        assert_eq!(
            values(&new_node, &topic, partition).await,
            vec![expected],
            "partition {partition}"
        );
    }
}

/// The raw peer of `bench commands` shaped as a pipeline lane writes what a
/// lane writes: per transaction one record per command in each of its three
/// partitions, committed with the lane's consumed offset for the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_shaped_peer_commits_three_partitions_and_its_offset_per_transaction() {
    use eventlog::kafka::peers::{transactional_lanes, TransactionShape};
    let log = connect(&unique("peer-shape-txn")).await;
    let topic = unique("peer-shape");
    let group = unique("peer-shape-group");
    let lanes = 2;
    create_topic(&log, &topic, lanes * 3).await;
    let mut config = KafkaConfig::new(bootstrap());
    config.timeout = Duration::from_secs(20);
    let shape = TransactionShape::pipeline_lane(4, 100, &group);
    let (peer_topic, peer_config, peer_shape) = (topic.clone(), config.clone(), shape.clone());
    let run = tokio::task::spawn_blocking(move || {
        transactional_lanes(
            &peer_config,
            &peer_topic,
            lanes,
            &peer_shape,
            Duration::from_millis(500),
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(run.transactions >= lanes as u64, "{run:?}");
    assert_eq!(run.records, run.transactions * 4 * 3, "{run:?}");
    let mut transactions_by_lane = Vec::new();
    for lane in 0..lanes {
        // Lane `lane` writes partitions lane, lane + lanes, lane + 2 * lanes,
        // the same number of records in each.
        let counts: Vec<usize> =
            futures_util::future::join_all((0..3).map(|k| values(&log, &topic, lane + k * lanes)))
                .await
                .iter()
                .map(Vec::len)
                .collect();
        assert!(
            counts[0] > 0 && counts.iter().all(|c| *c == counts[0]),
            "{counts:?}"
        );
        assert_eq!(counts[0] % 4, 0, "{counts:?}");
        // Its consumed offset advanced by 4 per committed transaction.
        let committed = log
            .committed(&group, &TopicPartition::new(&topic, lane))
            .await
            .unwrap();
        assert_eq!(committed, Some(counts[0] as u64), "lane {lane}");
        transactions_by_lane.push(counts[0] as u64 / 4);
    }
    assert_eq!(transactions_by_lane.iter().sum::<u64>(), run.transactions);
}
