//! Kafka's own tools agree with orderstore: at rest, the consumer-group
//! tool (kafka-tools' ConsumerGroupCommand, fetched by the harness) shows
//! lag 0 on every partition of every orderstore group, although the events
//! topic holds transaction markers and an aborted transaction.

use std::collections::BTreeMap;
use std::time::Duration;

use commands::Topics;
use eventlog::kafka::{KafkaConfig, KafkaLog};
use eventlog::{EventLog, OutgoingRecord, Record};
use serde_json::json;

use crate::support::{
    data, eventually, kafka_bootstrap, order_input, order_ref, Backend, TestServer, CANCEL,
    CONFIRM, PLACE, RESERVE,
};

/// One row of `--describe`: where the group is and how far behind.
#[derive(Debug)]
struct GroupRow {
    group: String,
    topic: String,
    partition: u32,
    current: Option<u64>,
    lag: Option<u64>,
}

/// Runs ConsumerGroupCommand through the harness script; answers its rows.
fn describe(groups: &[String]) -> Vec<GroupRow> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka/kafka");
    let mut command = std::process::Command::new(script);
    command.args([
        "tool",
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--bootstrap-server",
        &kafka_bootstrap(),
        "--describe",
    ]);
    for group in groups {
        command.args(["--group", group]);
    }
    let output = command.output().expect("scripts/kafka/kafka runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ConsumerGroupCommand failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |field: &str| field.parse::<u64>().ok();
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [group, topic, partition, current, _end, lag, ..] = fields[..] else {
                return None;
            };
            Some(GroupRow {
                group: group.to_owned(),
                topic: topic.to_owned(),
                partition: partition.parse().ok()?,
                current: number(current),
                lag: number(lag),
            })
        })
        .filter(|row| groups.contains(&row.group))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkas_consumer_group_tool_shows_lag_0_at_rest_on_every_orderstore_group() {
    let s = TestServer::start_on(Backend::Kafka, |_| {}).await;
    let partitions = s.config.partitions.unwrap();
    let topics = Topics::new(&s.config.topic_prefix);
    for i in 0..16 {
        let order = format!("lag-{i}");
        data(s.gql(PLACE, order_input(&order, "ann")).await);
        data(s.gql(RESERVE, order_ref(&order)).await);
        if i % 2 == 0 {
            let pay = json!({ "input": { "orderId": order, "paymentId": "p", "amount": "36.79" } });
            data(s.gql(CONFIRM, pay).await);
        } else {
            let cancel = json!({ "input": { "orderId": order, "reason": "changed my mind" } });
            data(s.gql(CANCEL, cancel).await);
        }
    }
    // A zombie's transaction on the events topic that never commits: its
    // records and its abort marker are offsets no reader is ever shown.
    let mut config = KafkaConfig::new(kafka_bootstrap());
    config.transactional_id = format!("{}.zombie", topics.prefix);
    let zombie = KafkaLog::connect(config).await.unwrap();
    zombie.init_transactions().await.unwrap();
    let mut txn = zombie.begin().await.unwrap();
    let junk = (0..partitions)
        .map(|p| OutgoingRecord {
            topic: topics.events.clone(),
            partition: Some(p),
            record: Record {
                key: b"zombie".to_vec(),
                value: Some(b"never committed".to_vec()),
                headers: vec![],
                timestamp_ms: 0,
            },
        })
        .collect();
    txn.send(junk).await.unwrap();
    txn.abort().await.unwrap();

    let mut groups = vec![topics.processor_group()];
    groups.extend(
        projections::names()
            .into_iter()
            .map(|name| topics.projection_group(name)),
    );
    let rows = eventually(
        Duration::from_secs(60),
        "Kafka's consumer-group tool shows lag 0 everywhere",
        || async {
            let rows = describe(&groups);
            let complete = groups.iter().all(|group| {
                (0..partitions).all(|p| rows.iter().any(|r| &r.group == group && r.partition == p))
            });
            let at_rest = rows.iter().all(|row| row.lag == Some(0));
            if !(complete && at_rest) {
                eprintln!("not yet at rest: {rows:?}");
            }
            (complete && at_rest).then_some(rows)
        },
    )
    .await;
    // Each projection group is at its events topic's end, past the markers.
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let tp = eventlog::TopicPartition::new(&topics.events, p);
        ends.insert(p, s.server().log.watermarks(&tp).await.unwrap().1);
    }
    for row in rows.iter().filter(|r| r.topic == topics.events) {
        assert_eq!(row.current, Some(ends[&row.partition]), "{row:?}");
    }
    assert_eq!(
        rows.iter().filter(|r| r.topic == topics.events).count() as u32,
        partitions * projections::names().len() as u32
    );
}
