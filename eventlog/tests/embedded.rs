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
