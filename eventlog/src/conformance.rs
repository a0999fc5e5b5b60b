//! The conformance suite every backend of `EventLog` must pass. Backends call
//! `run_all` from their own tests with a log and a topic prefix unique to the
//! run (so a shared Kafka broker can host many runs).
//!
//! Panics on the first broken promise, with what was expected; it is test
//! support and is compiled into the library so every backend runs the same code.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use domain::Header;

use crate::partitioner::partition_for;
use crate::{EventLog, GroupOffset, OutgoingRecord, Record, TopicPartition, TopicSpec};

fn record(key: &str, value: &str, timestamp_ms: i64) -> Record {
    Record {
        key: key.as_bytes().to_vec(),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![Header::new("ce_id", value), Header::new("empty", "")],
        timestamp_ms,
    }
}

fn to(topic: &str, record: Record) -> OutgoingRecord {
    OutgoingRecord {
        topic: topic.to_owned(),
        partition: None,
        record,
    }
}

/// Every value a fresh reader gets from the start of a partition.
async fn values_from_start(log: &dyn EventLog, tp: &TopicPartition) -> Vec<Vec<u8>> {
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), 0)]).await.unwrap();
    let read = consumer.poll(10, Duration::from_secs(10)).await.unwrap();
    read.into_iter().map(|r| r.record.value.unwrap()).collect()
}

async fn topic(log: &dyn EventLog, name: String, partitions: u32, compacted: bool) -> String {
    log.create_topic(&TopicSpec {
        name: name.clone(),
        partitions,
        compacted,
        retention_ms: None,
    })
    .await
    .unwrap();
    name
}

/// Runs every check in turn.
pub async fn run_all(log: &dyn EventLog, prefix: &str) {
    topics_are_created_once_with_fixed_partitions(log, prefix).await;
    records_go_to_the_murmur2_partition_and_read_back_exactly(log, prefix).await;
    a_committed_transaction_shows_records_and_positions_together(log, prefix).await;
    an_aborted_transaction_leaves_nothing(log, prefix).await;
    lanes_have_transactions_open_at_once(log, prefix).await;
    a_single_writers_next_transaction_lands_after_its_markers(log, prefix).await;
    a_reader_at_rest_is_at_the_end_past_markers_and_aborted_records(log, prefix).await;
    open_transactions_are_invisible_to_consumers(log, prefix).await;
    a_waiting_consumer_wakes_on_new_records(log, prefix).await;
    unsynced_appends_are_read_in_offset_order_with_synced_ones(log, prefix).await;
    offsets_for_times_find_the_first_record_at_or_after(log, prefix).await;
    a_compacted_topic_keeps_the_latest_value_per_key(log, prefix).await;
    unknown_topics_and_partitions_are_errors(log, prefix).await;
}

pub async fn topics_are_created_once_with_fixed_partitions(log: &dyn EventLog, prefix: &str) {
    let name = topic(log, format!("{prefix}.fixed"), 3, false).await;
    log.create_topic(&TopicSpec {
        name: name.clone(),
        partitions: 3,
        compacted: false,
        retention_ms: None,
    })
    .await
    .unwrap();
    assert_eq!(log.partition_count(&name).await.unwrap(), 3);
    let mismatch = log
        .create_topic(&TopicSpec {
            name: name.clone(),
            partitions: 4,
            compacted: false,
            retention_ms: None,
        })
        .await;
    assert!(
        mismatch.is_err(),
        "re-creating with other partitions must fail"
    );
}

pub async fn records_go_to_the_murmur2_partition_and_read_back_exactly(
    log: &dyn EventLog,
    prefix: &str,
) {
    let name = topic(log, format!("{prefix}.keyed"), 4, false).await;
    let records: Vec<Record> = (0..40)
        .map(|i| record(&format!("order-{i}"), &format!("v{i}"), 1_000 + i))
        .collect();
    let positions = log
        .append(records.iter().cloned().map(|r| to(&name, r)).collect())
        .await
        .unwrap();
    let mut expected_next: BTreeMap<u32, u64> = BTreeMap::new();
    for (record, position) in records.iter().zip(&positions) {
        assert_eq!(
            position.partition,
            partition_for(&record.key, 4),
            "murmur2 placement"
        );
        let next = expected_next.entry(position.partition).or_insert(0);
        assert_eq!(
            position.offset, *next,
            "offsets are dense from 0 in a fresh partition"
        );
        *next += 1;
    }
    let mut consumer = log.consumer().await.unwrap();
    let assignment = (0..4).map(|p| (TopicPartition::new(&name, p), 0)).collect();
    consumer.assign(assignment).await.unwrap();
    let mut read = Vec::new();
    while read.len() < records.len() {
        let batch = consumer.poll(7, Duration::from_secs(10)).await.unwrap();
        assert!(
            !batch.is_empty(),
            "records went missing: read {} of {}",
            read.len(),
            records.len()
        );
        read.extend(batch);
    }
    for stored in &read {
        let index = records
            .iter()
            .position(|r| r.key == stored.record.key)
            .unwrap();
        assert_eq!(stored.record, records[index], "record read back differs");
        assert_eq!(stored.partition, positions[index].partition);
        assert_eq!(stored.offset, positions[index].offset);
    }
    for (partition, next) in expected_next {
        let tp = TopicPartition::new(&name, partition);
        assert_eq!(log.watermarks(&tp).await.unwrap(), (0, next));
        assert_eq!(consumer.position(&tp), Some(next));
    }
}

pub async fn a_committed_transaction_shows_records_and_positions_together(
    log: &dyn EventLog,
    prefix: &str,
) {
    let out = topic(log, format!("{prefix}.txn-out"), 2, false).await;
    let input = topic(log, format!("{prefix}.txn-in"), 2, false).await;
    let group = format!("{prefix}.group");
    let tp_in = TopicPartition::new(&input, 1);
    assert_eq!(log.committed(&group, &tp_in).await.unwrap(), None);
    let mut txn = log.begin().await.unwrap();
    let sent = txn
        .send(vec![
            OutgoingRecord {
                topic: out.clone(),
                partition: Some(0),
                record: record("a", "1", 1),
            },
            OutgoingRecord {
                topic: out.clone(),
                partition: Some(0),
                record: record("b", "2", 2),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        sent.iter()
            .map(|p| (p.partition, p.offset))
            .collect::<Vec<_>>(),
        vec![(0, 0), (0, 1)]
    );
    txn.commit(vec![GroupOffset {
        group: group.clone(),
        partition: tp_in.clone(),
        next_offset: 17,
    }])
    .await
    .unwrap();
    assert_eq!(log.committed(&group, &tp_in).await.unwrap(), Some(17));
    // Kafka writes commit markers just after the commit returns, so the
    // (read_committed) high watermark reaches the records shortly after, and
    // counts the marker too; what matters is that both records are readable.
    let mut high = 0;
    for _ in 0..100 {
        high = log
            .watermarks(&TopicPartition::new(&out, 0))
            .await
            .unwrap()
            .1;
        if high >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        high >= 2,
        "high watermark {high} after two committed records"
    );
    let mut consumer = log.consumer().await.unwrap();
    consumer
        .assign(vec![(TopicPartition::new(&out, 0), 0)])
        .await
        .unwrap();
    let read = consumer.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        read.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1]
    );
    log.commit_offsets(vec![GroupOffset {
        group: group.clone(),
        partition: tp_in.clone(),
        next_offset: 18,
    }])
    .await
    .unwrap();
    assert_eq!(log.committed(&group, &tp_in).await.unwrap(), Some(18));
}

pub async fn an_aborted_transaction_leaves_nothing(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.abort"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let mut txn = log.begin().await.unwrap();
    txn.send(vec![to(&out, record("a", "doomed", 1))])
        .await
        .unwrap();
    txn.abort().await.unwrap();
    let mut txn = log.begin().await.unwrap();
    txn.send(vec![to(&out, record("a", "kept", 2))])
        .await
        .unwrap();
    txn.commit(vec![]).await.unwrap();
    assert_eq!(
        values_from_start(log, &tp).await,
        vec![b"kept".to_vec()],
        "an aborted record was read"
    );
}

/// Two lanes of one handle hold open transactions at the same time, each
/// on its own partition, and each commits its records and its offsets
/// alone. The handle's own transaction is a third, independent one.
pub async fn lanes_have_transactions_open_at_once(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.lanes"), 2, false).await;
    let group = format!("{prefix}.lanes-group");
    let (first, second) = (log.lane("p0"), log.lane("p1"));
    first.init_transactions().await.unwrap();
    second.init_transactions().await.unwrap();
    let on = |partition, value| OutgoingRecord {
        partition: Some(partition),
        ..to(&out, record("k", value, 1))
    };
    let offset = |partition, next_offset| GroupOffset {
        group: group.clone(),
        partition: TopicPartition::new(&out, partition),
        next_offset,
    };
    let mut one = first.begin().await.unwrap();
    let mut two = tokio::time::timeout(Duration::from_secs(10), second.begin())
        .await
        .expect("a second lane waited for the first lane's transaction")
        .unwrap();
    let mut own = tokio::time::timeout(Duration::from_secs(10), log.begin())
        .await
        .expect("the handle waited for a lane's transaction")
        .unwrap();
    // Offsets given before the sends commit with the transaction, and go
    // with it when it aborts.
    own.send_offsets(vec![offset(0, 99)]).await.unwrap();
    two.send_offsets(vec![offset(1, 5)]).await.unwrap();
    one.send(vec![on(0, "lane 0")]).await.unwrap();
    two.send(vec![on(1, "lane 1")]).await.unwrap();
    own.abort().await.unwrap();
    two.commit(vec![]).await.unwrap();
    one.commit(vec![offset(0, 7)]).await.unwrap();
    for (partition, value, next) in [(0, "lane 0", 7), (1, "lane 1", 5)] {
        let tp = TopicPartition::new(&out, partition);
        assert_eq!(
            values_from_start(log, &tp).await,
            vec![value.as_bytes().to_vec()],
            "partition {partition}"
        );
        assert_eq!(log.committed(&group, &tp).await.unwrap(), Some(next));
    }
}

/// The single writer of a partition knows where its next transaction's
/// records land: after its last record and the markers
/// of its committed transactions (`EventLog::marker_offsets`: one per
/// transaction on Kafka). The command lanes rely on it, and check it
/// against the positions each send answers.
pub async fn a_single_writers_next_transaction_lands_after_its_markers(
    log: &dyn EventLog,
    prefix: &str,
) {
    let out = topic(log, format!("{prefix}.predicted"), 1, false).await;
    let writer = log.lane("predicted");
    writer.init_transactions().await.unwrap();
    let markers = writer.marker_offsets();
    let mut next: Option<u64> = None;
    for round in 0..4 {
        let mut txn = writer.begin().await.unwrap();
        let sent = txn
            .send(vec![
                to(&out, record("k", &format!("{round}a"), 1)),
                to(&out, record("k", &format!("{round}b"), 1)),
            ])
            .await
            .unwrap();
        if let Some(expected) = next {
            assert_eq!(
                sent[0].offset, expected,
                "round {round}: the writer's next record, after {markers} marker offsets"
            );
        }
        assert_eq!(sent[1].offset, sent[0].offset + 1, "round {round}");
        txn.commit(vec![]).await.unwrap();
        next = Some(sent[1].offset + 1 + markers);
    }
}

/// What lag tooling needs: once a reader has taken every committed record
/// and polled again, its position is the partition's end, past transaction
/// markers (Kafka) and aborted records, which it never returns.
pub async fn a_reader_at_rest_is_at_the_end_past_markers_and_aborted_records(
    log: &dyn EventLog,
    prefix: &str,
) {
    let out = topic(log, format!("{prefix}.at-rest"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let mut txn = log.begin().await.unwrap();
    txn.send(vec![
        to(&out, record("a", "one", 1)),
        to(&out, record("a", "two", 1)),
    ])
    .await
    .unwrap();
    txn.commit(vec![]).await.unwrap();
    let mut txn = log.begin().await.unwrap();
    txn.send(vec![to(&out, record("a", "dropped", 2))])
        .await
        .unwrap();
    txn.abort().await.unwrap();
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), 0)]).await.unwrap();
    let mut read = Vec::new();
    // Kafka writes the markers a moment after the transaction ends: at
    // rest is when the end stops moving and the reader has polled past it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let polled = consumer.poll(10, Duration::from_millis(500)).await.unwrap();
        read.extend(polled.into_iter().map(|r| r.record.value.unwrap()));
        let (_, high) = log.watermarks(&tp).await.unwrap();
        if consumer.position(&tp) == Some(high) && high >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a reader at rest is at {:?}, short of the end {high}",
            consumer.position(&tp)
        );
    }
    assert_eq!(read, vec![b"one".to_vec(), b"two".to_vec()]);
}

pub async fn open_transactions_are_invisible_to_consumers(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.isolation"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), 0)]).await.unwrap();
    let mut txn = log.begin().await.unwrap();
    txn.send(vec![to(&out, record("k", "pending", 1))])
        .await
        .unwrap();
    let early = consumer.poll(10, Duration::from_millis(300)).await.unwrap();
    assert!(
        early.is_empty(),
        "read_committed consumer saw an open transaction"
    );
    txn.commit(vec![]).await.unwrap();
    let late = consumer.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(late.len(), 1);
}

pub async fn a_waiting_consumer_wakes_on_new_records(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.wake"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), 0)]).await.unwrap();
    assert!(consumer
        .poll(10, Duration::from_millis(100))
        .await
        .unwrap()
        .is_empty());
    let (polled, appended) = tokio::join!(consumer.poll(10, Duration::from_secs(20)), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        log.append(vec![to(&out, record("k", "late", 5))]).await
    });
    appended.unwrap();
    assert_eq!(
        polled.unwrap().len(),
        1,
        "the waiting consumer missed a record"
    );
}

pub async fn unsynced_appends_are_read_in_offset_order_with_synced_ones(
    log: &dyn EventLog,
    prefix: &str,
) {
    let out = topic(log, format!("{prefix}.unsynced"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), 0)]).await.unwrap();
    let first = log
        .append_unsynced(vec![to(&out, record("k", "u0", 1))])
        .await
        .unwrap();
    assert_eq!(first[0].offset, 0);
    // Readable once the call returns, before any durable write follows it.
    let read = consumer.poll(10, Duration::from_secs(10)).await.unwrap();
    assert_eq!(read.len(), 1, "an unsynced append was not readable");
    assert_eq!(read[0].record.value.as_deref(), Some(&b"u0"[..]));
    let second = log
        .append(vec![to(&out, record("k", "s1", 2))])
        .await
        .unwrap();
    let third = log
        .append_unsynced(vec![to(&out, record("k", "u2", 3))])
        .await
        .unwrap();
    assert_eq!((second[0].offset, third[0].offset), (1, 2));
    assert_eq!(
        values_from_start(log, &tp).await,
        vec![b"u0".to_vec(), b"s1".to_vec(), b"u2".to_vec()]
    );
}

pub async fn offsets_for_times_find_the_first_record_at_or_after(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.times"), 1, false).await;
    let tp = TopicPartition::new(&out, 0);
    let records = [100, 200, 200, 300]
        .iter()
        .enumerate()
        .map(|(i, ts)| to(&out, record("k", &i.to_string(), *ts)))
        .collect();
    log.append(records).await.unwrap();
    assert_eq!(log.offset_for_time(&tp, 50).await.unwrap(), Some(0));
    assert_eq!(log.offset_for_time(&tp, 100).await.unwrap(), Some(0));
    assert_eq!(log.offset_for_time(&tp, 150).await.unwrap(), Some(1));
    assert_eq!(log.offset_for_time(&tp, 200).await.unwrap(), Some(1));
    assert_eq!(log.offset_for_time(&tp, 300).await.unwrap(), Some(3));
    assert_eq!(log.offset_for_time(&tp, 301).await.unwrap(), None);
}

pub async fn a_compacted_topic_keeps_the_latest_value_per_key(log: &dyn EventLog, prefix: &str) {
    let out = topic(log, format!("{prefix}.compacted"), 1, true).await;
    let tp = TopicPartition::new(&out, 0);
    for round in 0..3 {
        let records = (0..5)
            .map(|k| {
                to(
                    &out,
                    record(&format!("key-{k}"), &format!("r{round}"), round),
                )
            })
            .collect();
        log.append(records).await.unwrap();
    }
    let (_, high) = log.watermarks(&tp).await.unwrap();
    assert_eq!(
        high, 15,
        "compaction keeps offsets: the high watermark still counts every record"
    );
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp, 0)]).await.unwrap();
    let mut latest = BTreeMap::new();
    loop {
        let batch = consumer
            .poll(100, Duration::from_millis(500))
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        for stored in batch {
            latest.insert(
                stored.record.key.clone(),
                stored.record.value.clone().unwrap(),
            );
        }
    }
    assert_eq!(latest.len(), 5);
    assert!(
        latest.values().all(|v| v == b"r2"),
        "a stale value survived: {latest:?}"
    );
}

pub async fn unknown_topics_and_partitions_are_errors(log: &dyn EventLog, prefix: &str) {
    let missing = format!("{prefix}.missing");
    assert!(log.partition_count(&missing).await.is_err());
    assert!(log
        .append(vec![to(&missing, record("k", "v", 1))])
        .await
        .is_err());
    let name = topic(log, format!("{prefix}.small"), 1, false).await;
    assert!(log
        .watermarks(&TopicPartition::new(&name, 5))
        .await
        .is_err());
    let bad = OutgoingRecord {
        topic: name,
        partition: Some(9),
        record: record("k", "v", 1),
    };
    assert!(log.append(vec![bad]).await.is_err());
}
