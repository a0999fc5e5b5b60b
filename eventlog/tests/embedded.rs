//! The embedded backend: the conformance suite, plus what only a local
//! database can show (durability across reopen, group commit).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use domain::Header;
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, OutgoingRecord, Record, TopicPartition, TopicSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_log_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path()).unwrap();
    eventlog::conformance::run_all(&log, "conf").await;
}

fn rec(i: u64) -> OutgoingRecord {
    OutgoingRecord {
        topic: "t".into(),
        partition: None,
        record: Record {
            key: format!("key-{i}").into_bytes(),
            value: Some(i.to_be_bytes().to_vec()),
            headers: vec![Header::new("n", i.to_string())],
            timestamp_ms: i as i64,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec {
            name: "t".into(),
            partitions: 3,
            compacted: false,
            retention_ms: None,
        })
        .await
        .unwrap();
        log.append((0..100).map(rec).collect()).await.unwrap();
    }
    // The writer task ends when the last handle drops; give it a moment to release the files.
    let log = reopen(dir.path()).await;
    let mut total = 0;
    for p in 0..3 {
        total += log
            .watermarks(&TopicPartition::new("t", p))
            .await
            .unwrap()
            .1;
    }
    assert_eq!(total, 100);
    // New appends continue after the old offsets.
    let positions = log.append(vec![rec(1000)]).await.unwrap();
    let (_, high) = log
        .watermarks(&TopicPartition::new("t", positions[0].partition))
        .await
        .unwrap();
    assert_eq!(positions[0].offset + 1, high);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsynced_appends_keep_their_offsets_and_order_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&TopicSpec {
            name: "t".into(),
            partitions: 1,
            compacted: false,
            retention_ms: None,
        })
        .await
        .unwrap();
        // One record per call, so each group is written as plain inserts;
        // then one call of many records (a batch); then a durable append (their
        // survival of a kill -9 is the restart tests' job: this one closes
        // the log, which flushes).
        for i in 0..30 {
            log.append_unsynced(vec![rec(i)]).await.unwrap();
        }
        log.append_unsynced((30..50).map(rec).collect())
            .await
            .unwrap();
        log.append(vec![rec(50)]).await.unwrap();
    }
    let log = reopen(dir.path()).await;
    let tp = TopicPartition::new("t", 0);
    assert_eq!(log.watermarks(&tp).await.unwrap(), (0, 51));
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp, 0)]).await.unwrap();
    let mut read = Vec::new();
    while read.len() < 51 {
        let batch = consumer.poll(100, Duration::from_secs(10)).await.unwrap();
        assert!(!batch.is_empty(), "read {} of 51", read.len());
        read.extend(batch);
    }
    for (i, stored) in read.iter().enumerate() {
        assert_eq!(stored.offset, i as u64);
        assert_eq!(stored.record, rec(i as u64).record);
    }
}

async fn reopen(path: &std::path::Path) -> EmbeddedLog {
    for _ in 0..100 {
        match EmbeddedLog::open(path) {
            Ok(log) => return log,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    EmbeddedLog::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
    log.create_topic(&TopicSpec {
        name: "t".into(),
        partitions: 2,
        compacted: false,
        retention_ms: None,
    })
    .await
    .unwrap();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.append(vec![rec(i)]).await })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.unwrap().unwrap()[0]);
    }
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), 200, "two appends got the same offset");
}

/// Records past their topic's retention are deleted (the low watermark
/// rises, readers from an earlier offset get the records kept), each
/// partition's last record is kept so offsets continue across a reopen,
/// and topics without retention or compacted ones keep everything. A log
/// whose topic was created without retention takes it from the spec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_their_retention_are_deleted_and_offsets_continue() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_800_000_000_000_i64;
    let at = |topic: &str, timestamp_ms: i64| OutgoingRecord {
        topic: topic.into(),
        partition: Some(0),
        record: Record {
            key: b"k".to_vec(),
            value: Some(timestamp_ms.to_be_bytes().to_vec()),
            headers: vec![],
            timestamp_ms,
        },
    };
    let spec = |name: &str, compacted, retention_ms| TopicSpec {
        name: name.into(),
        partitions: 1,
        compacted,
        retention_ms,
    };
    {
        let log = EmbeddedLog::open(dir.path()).unwrap();
        log.create_topic(&spec("kept", false, None)).await.unwrap();
        log.create_topic(&spec("compacted", true, Some(1_000)))
            .await
            .unwrap();
        // Created without retention; the next start's spec brings it.
        log.create_topic(&spec("replies", false, None))
            .await
            .unwrap();
        for topic in ["kept", "compacted", "replies"] {
            log.append((0..5).map(|i| at(topic, now - 10_000 + i)).collect())
                .await
                .unwrap();
        }
        log.append(vec![at("replies", now - 10), at("replies", now)])
            .await
            .unwrap();
        log.create_topic(&spec("all-old", false, Some(1_000)))
            .await
            .unwrap();
        log.append((0..4).map(|i| at("all-old", now - 10_000 + i)).collect())
            .await
            .unwrap();
        assert_eq!(
            log.apply_retention(now).unwrap(),
            3,
            "only all-old has retention yet"
        );
    }
    let log = reopen(dir.path()).await;
    log.create_topic(&spec("replies", false, Some(1_000)))
        .await
        .unwrap();
    assert_eq!(log.apply_retention(now).unwrap(), 5);
    assert_eq!(log.apply_retention(now).unwrap(), 0, "nothing more is old");
    let marks = |topic: &str| {
        let log = log.clone();
        let tp = TopicPartition::new(topic, 0);
        async move { log.watermarks(&tp).await.unwrap() }
    };
    assert_eq!(marks("replies").await, (5, 7));
    assert_eq!(marks("all-old").await, (3, 4), "the last record stays");
    assert_eq!(marks("kept").await, (0, 5));
    assert_eq!(marks("compacted").await.1, 5);
    let mut consumer = log.consumer().await.unwrap();
    consumer
        .assign(vec![(TopicPartition::new("replies", 0), 0)])
        .await
        .unwrap();
    let read = consumer.poll(100, Duration::from_secs(10)).await.unwrap();
    let offsets: Vec<u64> = read.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [5, 6]);
    assert_eq!(read[0].record.timestamp_ms, now - 10);
    drop(consumer);
    drop(log);
    // Offsets continue after a reopen, also where only the last record is left.
    let log = reopen(dir.path()).await;
    let positions = log
        .append(vec![at("all-old", now), at("replies", now)])
        .await
        .unwrap();
    assert_eq!(positions[0].offset, 4);
    assert_eq!(positions[1].offset, 7);
}
