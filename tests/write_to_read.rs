//! The write side feeding the read side on the embedded backend: a command
//! through the processor, its events through a projection worker, read back
//! after waiting on the reply's consistency token.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::parse_consistency_token;
use commands::processor;
use commands::Topics;
use commands::{CommandMessage, Outcome, Reply, StateStore, SystemClock};
use domain::order::{LineItemInput, PlaceOrder};
use domain::{Command, CommandBody, CommandId, OrderId};
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, OutgoingRecord, Record, TopicPartition};
use projections::worker::{self, Progress};
use projections::{customer, history, ProjectionStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_command_is_readable_once_the_projection_passes_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let topics = Topics::default();
    for spec in topics.write_side(4) {
        log.create_topic(&spec).await.unwrap();
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let store = StateStore::open(&dir.path().join("state")).unwrap();
    let processor = tokio::spawn(processor::run(
        log.clone(),
        topics.clone(),
        store,
        Arc::new(SystemClock),
        100,
        Default::default(),
        wait(stopped.clone()),
    ));
    let history_store = ProjectionStore::open(&dir.path().join("history")).unwrap();
    let customer_store = ProjectionStore::open(&dir.path().join("customer")).unwrap();
    let history_progress = Arc::new(Progress::default());
    let customer_progress = Arc::new(Progress::default());
    let history_worker = tokio::spawn(worker::run(
        Arc::new(history::History),
        log.clone(),
        topics.clone(),
        history_store.clone(),
        history_progress.clone(),
        wait(stopped.clone()),
    ));
    let customer_worker = tokio::spawn(worker::run(
        Arc::new(customer::Customer),
        log.clone(),
        topics.clone(),
        customer_store.clone(),
        customer_progress.clone(),
        wait(stopped.clone()),
    ));

    let message = CommandMessage {
        command: Command {
            command_id: CommandId::parse("cmd-1").unwrap(),
            order_id: OrderId::parse("order-42").unwrap(),
            body: CommandBody::PlaceOrder(PlaceOrder {
                customer_id: "carol".into(),
                currency: "EUR".into(),
                items: vec![LineItemInput {
                    sku: "book".into(),
                    quantity: 3,
                    unit_price: "12.50".into(),
                }],
                tax_rate_bps: 700,
            }),
        },
        correlation_id: "corr-1".into(),
        reply_to: "test".into(),
        trace: Some(
            domain::TraceContext::parse(
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                Some("congo=t61rcWkgMzE"),
            )
            .unwrap(),
        ),
    };
    let record = Record {
        key: b"order-42".to_vec(),
        value: Some(serde_json::to_vec(&message).unwrap()),
        headers: vec![],
        timestamp_ms: 0,
    };
    let mut replies = log.consumer().await.unwrap();
    replies
        .assign(
            (0..4)
                .map(|p| (TopicPartition::new(&topics.replies, p), 0))
                .collect(),
        )
        .await
        .unwrap();
    log.append(vec![OutgoingRecord {
        topic: topics.commands.clone(),
        partition: None,
        record,
    }])
    .await
    .unwrap();
    let reply: Reply = loop {
        let batch = replies.poll(10, Duration::from_secs(10)).await.unwrap();
        assert!(!batch.is_empty(), "no reply");
        if let Some(found) = batch.into_iter().next() {
            break serde_json::from_slice(found.record.value.as_ref().unwrap()).unwrap();
        }
    };
    let Outcome::Accepted {
        consistency_token,
        events,
        ..
    } = reply.outcome
    else {
        panic!("rejected: {reply:?}")
    };
    // 37.50 + 7% tax: 2.625 rounds half to even, to 2.62.
    assert_eq!(events[0].cloudevent["data"]["total"]["amount"], "40.12");
    // The command's trace context is on its event, as CloudEvents extensions.
    assert_eq!(
        events[0].cloudevent["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(events[0].cloudevent["tracestate"], "congo=t61rcWkgMzE");
    let (partition, offset) = parse_consistency_token(&consistency_token).unwrap();
    assert!(
        history_progress
            .wait_past(partition, offset, Duration::from_secs(10))
            .await
    );
    assert!(
        customer_progress
            .wait_past(partition, offset, Duration::from_secs(10))
            .await
    );

    let entries = history::events(&history_store, "order-42", DateTime::<Utc>::MAX_UTC).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].decode().unwrap().envelope.correlation_id,
        "corr-1"
    );
    let view = customer::view(&customer_store, "carol", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!(view.orders[0].total, 4012);

    stop.send(true).unwrap();
    processor.await.unwrap().unwrap();
    history_worker.await.unwrap().unwrap();
    customer_worker.await.unwrap().unwrap();
    // On stop, each worker left its consumer group offsets where it stands (for lag tooling).
    let group = topics.projection_group("history");
    let tp = TopicPartition::new(&topics.events, partition);
    assert_eq!(log.committed(&group, &tp).await.unwrap(), Some(offset + 1));
}
