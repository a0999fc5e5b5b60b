//! `replay snapshots --verify` on the embedded log: clean after normal
//! processing, and a snapshot that disagrees with the events is reported.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use commands::processor;
use commands::Topics;
use commands::{CommandMessage, Snapshot, StateStore, SystemClock};
use domain::order::{LineItemInput, PlaceOrder};
use domain::{Command, CommandBody, CommandId, OrderId};
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, OutgoingRecord, Record};

fn command(order: &str) -> OutgoingRecord {
    let message = CommandMessage {
        command: Command {
            command_id: CommandId::parse(format!("c-{order}")).unwrap(),
            order_id: OrderId::parse(order).unwrap(),
            body: CommandBody::PlaceOrder(PlaceOrder {
                customer_id: "c".into(),
                currency: "EUR".into(),
                items: vec![LineItemInput {
                    sku: "s".into(),
                    quantity: 1,
                    unit_price: "1.00".into(),
                }],
                tax_rate_bps: 0,
            }),
        },
        correlation_id: "corr".into(),
        reply_to: "nobody".into(),
        trace: None,
    };
    OutgoingRecord {
        topic: Topics::default().commands,
        partition: None,
        record: Record {
            key: order.as_bytes().to_vec(),
            value: Some(serde_json::to_vec(&message).unwrap()),
            headers: vec![],
            timestamp_ms: 0,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_match_the_events_until_one_is_tampered_with() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let topics = Topics::default();
    for spec in topics.write_side(3) {
        log.create_topic(&spec).await.unwrap();
    }
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let processor = tokio::spawn(processor::run(
        log.clone(),
        topics.clone(),
        store,
        Arc::new(SystemClock),
        100,
        Default::default(),
        async {
            let _ = stopped.await;
        },
    ));
    log.append((0..10).map(|i| command(&format!("o-{i}"))).collect())
        .await
        .unwrap();
    // Wait until all ten orders have their snapshot.
    for _ in 0..100 {
        if replay::snapshots::verify(log.as_ref(), &topics)
            .await
            .unwrap()
            .snapshots
            == 10
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(()).unwrap();
    processor.await.unwrap().unwrap();

    let clean = replay::snapshots::verify(log.as_ref(), &topics)
        .await
        .unwrap();
    assert_eq!((clean.orders, clean.snapshots), (10, 10));
    assert!(clean.is_clean(), "{:?}", clean.differences);

    // A snapshot that says o-3 is at version 7: the fold disagrees.
    let mut wrong = Snapshot::empty();
    wrong.state.version = 7;
    let tampered = OutgoingRecord {
        topic: topics.snapshots.clone(),
        partition: None,
        record: Record {
            key: b"o-3".to_vec(),
            value: Some(serde_json::to_vec(&wrong).unwrap()),
            headers: vec![],
            timestamp_ms: 0,
        },
    };
    log.append(vec![tampered]).await.unwrap();
    let report = replay::snapshots::verify(log.as_ref(), &topics)
        .await
        .unwrap();
    assert_eq!(report.differences.len(), 1, "{:?}", report.differences);
    assert!(
        report.differences[0].starts_with("o-3:"),
        "{:?}",
        report.differences
    );
}
