//! The command processor over the embedded log: outcomes, idempotent
//! repeats, event time, and restoring state from the snapshots topic.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use commands::processor;
use commands::reply_waiters::ReplyWaiters;
use commands::Topics;
use commands::{Clock, CommandMessage, Outcome, ProcessorStatus, Reply, Snapshot, StateStore};
use domain::order::{ConfirmPayment, LineItemInput, PlaceOrder};
use domain::{
    evolve, initial_state, Command, CommandBody, CommandId, OrderId, OrderState, RecordedEvent,
};
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, LogConsumer, OutgoingRecord, Record, TopicPartition};
use tokio::sync::oneshot;

/// A clock stuck at one instant, to prove event time still increases.
#[derive(Debug)]
struct FrozenClock(DateTime<Utc>);

impl Clock for FrozenClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

struct Harness {
    log: Arc<dyn EventLog>,
    replies: Box<dyn LogConsumer>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

const PARTITIONS: u32 = 3;

async fn start(log: Arc<dyn EventLog>, state_dir: &std::path::Path) -> Harness {
    start_with(log, state_dir, Default::default()).await
}

async fn start_with(
    log: Arc<dyn EventLog>,
    state_dir: &std::path::Path,
    status: Arc<ProcessorStatus>,
) -> Harness {
    for spec in Topics::default().write_side(PARTITIONS) {
        log.create_topic(&spec).await.unwrap();
    }
    let store = StateStore::open(state_dir).unwrap();
    let clock = Arc::new(FrozenClock(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let (stop, stopped) = oneshot::channel::<()>();
    let task_log = log.clone();
    let task = tokio::spawn(async move {
        processor::run(
            task_log,
            Topics::default(),
            store,
            clock,
            100,
            status,
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    let mut replies = log.consumer().await.unwrap();
    let mut assignment = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(&Topics::default().replies, p);
        let (_, high) = log.watermarks(&tp).await.unwrap();
        assignment.push((tp, high));
    }
    replies.assign(assignment).await.unwrap();
    Harness {
        log,
        replies,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Harness {
    /// The high watermark of one events partition.
    async fn events_high(&self, partition: u32) -> u64 {
        let tp = TopicPartition::new(&Topics::default().events, partition);
        self.log.watermarks(&tp).await.unwrap().1
    }

    async fn stop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    async fn send(&mut self, command_id: &str, order: &str, body: CommandBody) -> Reply {
        self.send_to("test", command_id, order, body).await
    }

    /// Sends a command whose reply is addressed to `reply_to`; answers the
    /// reply as read from the replies topic.
    async fn send_to(
        &mut self,
        reply_to: &str,
        command_id: &str,
        order: &str,
        body: CommandBody,
    ) -> Reply {
        let message = CommandMessage {
            command: Command {
                command_id: CommandId::parse(command_id).unwrap(),
                order_id: OrderId::parse(order).unwrap(),
                body,
            },
            correlation_id: format!("corr-{command_id}"),
            reply_to: reply_to.into(),
            trace: None,
        };
        let record = Record {
            key: order.as_bytes().to_vec(),
            value: Some(serde_json::to_vec(&message).unwrap()),
            headers: vec![],
            timestamp_ms: 0,
        };
        self.log
            .append(vec![OutgoingRecord {
                topic: Topics::default().commands,
                partition: None,
                record,
            }])
            .await
            .unwrap();
        loop {
            let batch = self
                .replies
                .poll(100, Duration::from_secs(10))
                .await
                .unwrap();
            assert!(!batch.is_empty(), "no reply to {command_id}");
            for stored in batch {
                let reply: Reply =
                    serde_json::from_slice(stored.record.value.as_ref().unwrap()).unwrap();
                if reply.command_id == command_id {
                    return reply;
                }
            }
        }
    }
}

fn place(items: usize) -> CommandBody {
    CommandBody::PlaceOrder(PlaceOrder {
        customer_id: "cust-1".into(),
        currency: "USD".into(),
        items: (0..items)
            .map(|i| LineItemInput {
                sku: format!("sku-{i}"),
                quantity: 1,
                unit_price: "10.00".into(),
            })
            .collect(),
        tax_rate_bps: 0,
    })
}

fn confirm(amount: &str) -> CommandBody {
    CommandBody::ConfirmPayment(ConfirmPayment {
        payment_id: "pay".into(),
        amount: amount.into(),
    })
}

fn accepted(reply: &Reply) -> (u64, Vec<(u32, u64)>, String) {
    match &reply.outcome {
        Outcome::Accepted {
            version,
            events,
            consistency_token,
        } => (
            *version,
            events.iter().map(|e| (e.partition, e.offset)).collect(),
            consistency_token.clone(),
        ),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn rejected_code(reply: &Reply) -> String {
    match &reply.outcome {
        Outcome::Rejected(r) => r.code.to_string(),
        other => panic!("expected rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_decided_and_repeats_return_the_original_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let mut h = start(log, &dir.path().join("state")).await;

    let placed = h.send("c1", "order-1", place(2)).await;
    let (version, events, token) = accepted(&placed);
    assert_eq!(version, 1);
    assert_eq!(events.len(), 1);
    assert_eq!(token, format!("{}:{}", events[0].0, events[0].1));

    assert_eq!(
        rejected_code(&h.send("c2", "order-1", confirm("19.99")).await),
        "AMOUNT_MISMATCH"
    );
    assert_eq!(
        rejected_code(&h.send("c3", "order-1", place(1)).await),
        "ORDER_EXISTS"
    );
    assert_eq!(
        rejected_code(&h.send("c4", "nope", confirm("1")).await),
        "ORDER_NOT_FOUND"
    );

    // The same command id again: the same events, nothing new written.
    let high_before = h.events_high(events[0].0).await;
    let repeat = h.send("c1", "order-1", place(2)).await;
    assert_eq!(repeat.outcome, placed.outcome);
    // A rejected command repeated gets the same rejection even though it would now differ.
    let paid = h.send("c5", "order-1", confirm("20.00")).await;
    assert_eq!(accepted(&paid).0, 2);
    assert_eq!(
        rejected_code(&h.send("c2", "order-1", confirm("19.99")).await),
        "AMOUNT_MISMATCH"
    );
    let high_after = h.events_high(events[0].0).await;
    assert_eq!(high_after, high_before + 1, "only c5 wrote an event");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_carry_their_write_time_and_outlive_a_retention_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let log: Arc<dyn EventLog> = embedded.clone();
    let mut h = start(log.clone(), &dir.path().join("state")).await;
    // One order: all three replies in one partition, so a sweep that took
    // them for expired would delete all but the last.
    h.send("r1", "order-r", place(1)).await;
    h.send("r2", "order-r", confirm("1")).await;
    h.send("r3", "order-r", confirm("10.00")).await;
    let written = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let a_minute_later = written.timestamp_millis() + 60_000;
    assert_eq!(embedded.apply_retention(a_minute_later).unwrap(), 0);
    let replies = read_all(log.as_ref(), &Topics::default().replies).await;
    assert_eq!(replies.len(), 3, "every reply is still there");
    for stored in &replies {
        assert_eq!(
            stored.record.timestamp_ms,
            written.timestamp_millis(),
            "a reply is stamped with the processor's clock"
        );
    }
    // A week and a minute later they are past the topic's retention.
    let a_week_later = a_minute_later + 7 * 24 * 3600 * 1000;
    assert_eq!(embedded.apply_retention(a_week_later).unwrap(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lane_hands_committed_replies_to_this_nodes_waiting_commands() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let status = Arc::new(ProcessorStatus::default());
    let here = Arc::new(ReplyWaiters::new("here".into()));
    status.answer_here(here.clone());
    let mut h = start_with(log, &dir.path().join("state"), status).await;

    // Nothing reads the replies topic for "here": only the lane can answer.
    let mut placed = here.wait_for("h1").unwrap();
    let mut elsewhere = here.wait_for("h2").unwrap();
    let from_topic = h.send_to("here", "h1", "order-h", place(1)).await;
    let handed = tokio::time::timeout(Duration::from_secs(5), &mut placed)
        .await
        .expect("the lane answered the waiting command")
        .unwrap();
    assert_eq!(handed, from_topic, "the same reply as the topic's copy");
    assert_eq!(accepted(&handed).0, 1);

    // A reply to another gateway is not handed to these waiters.
    h.send_to("another-node", "h2", "order-h", confirm("1"))
        .await;
    // The same order's next command is in the same lane, after h2's commit.
    let mut next = here.wait_for("h3").unwrap();
    h.send_to("here", "h3", "order-h", confirm("10.00")).await;
    tokio::time::timeout(Duration::from_secs(5), &mut next)
        .await
        .expect("the lane answered h3")
        .unwrap();
    assert!(elsewhere.try_recv().is_err());
    assert_eq!(here.len(), 1, "h2 is still waited on here");
    h.stop().await;
}

async fn read_all(log: &dyn EventLog, topic: &str) -> Vec<eventlog::StoredRecord> {
    let mut consumer = log.consumer().await.unwrap();
    let mut assignment = Vec::new();
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic, p);
        let (low, _) = log.watermarks(&tp).await.unwrap();
        assignment.push((tp, low));
    }
    consumer.assign(assignment).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = consumer
            .poll(1000, Duration::from_millis(200))
            .await
            .unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Folds the whole events topic into per-order states.
async fn fold_events(log: &dyn EventLog) -> std::collections::BTreeMap<String, OrderState> {
    let mut states = std::collections::BTreeMap::new();
    for stored in read_all(log, &Topics::default().events).await {
        let event = RecordedEvent::decode(
            &stored.record.headers,
            stored.record.value.as_ref().unwrap(),
        )
        .unwrap();
        let recorded = event.to_recorded().unwrap();
        let state = states
            .remove(&event.envelope.subject)
            .unwrap_or_else(initial_state);
        states.insert(event.envelope.subject.clone(), evolve(state, &recorded));
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_time_strictly_increases_per_partition_even_with_a_frozen_clock() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let mut h = start(log.clone(), &dir.path().join("state")).await;
    for i in 0..20 {
        h.send(&format!("p{i}"), &format!("order-{i}"), place(1))
            .await;
        h.send(&format!("pay{i}"), &format!("order-{i}"), confirm("10.00"))
            .await;
    }
    h.stop().await;
    let mut last: std::collections::HashMap<u32, DateTime<Utc>> = Default::default();
    for stored in read_all(log.as_ref(), &Topics::default().events).await {
        let event = RecordedEvent::decode(
            &stored.record.headers,
            stored.record.value.as_ref().unwrap(),
        )
        .unwrap();
        if let Some(previous) = last.get(&stored.partition) {
            assert!(
                event.envelope.time > *previous,
                "time went backwards in partition {}",
                stored.partition
            );
        }
        last.insert(stored.partition, event.envelope.time);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_restored_from_snapshots_equals_the_fold_of_the_events_topic() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let mut h = start(log.clone(), &dir.path().join("state")).await;
    for i in 0..15 {
        h.send(&format!("p{i}"), &format!("order-{i}"), place(1 + i % 3))
            .await;
        if i % 2 == 0 {
            let total = format!("{}.00", 10 * (1 + i % 3));
            h.send(&format!("pay{i}"), &format!("order-{i}"), confirm(&total))
                .await;
        }
    }
    h.stop().await;

    // A node with no local state: a fresh state directory.
    let mut h = start(log.clone(), &dir.path().join("fresh-state")).await;
    // It answers a repeat from restored state, and decides new commands on it.
    let repeat = h.send("p3", "order-3", place(1)).await;
    assert_eq!(accepted(&repeat).0, 1);
    assert_eq!(
        rejected_code(&h.send("again", "order-2", confirm("30.00")).await),
        "INVALID_STATE"
    );
    h.stop().await;

    let folded = fold_events(log.as_ref()).await;
    let store = StateStore::open(&dir.path().join("fresh-state")).unwrap();
    assert_eq!(folded.len(), 15);
    for (order_id, state) in &folded {
        let restored: Snapshot = store.load(order_id).unwrap().unwrap();
        assert_eq!(&restored.state, state, "{order_id}");
    }
    // And the compacted snapshots topic holds one snapshot per order.
    let snapshots = read_all(log.as_ref(), &Topics::default().snapshots).await;
    assert_eq!(snapshots.len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_within_the_same_batch_returns_the_original_events() {
    let dir = tempfile::tempdir().unwrap();
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.path().join("log")).unwrap());
    let mut h = start(log.clone(), &dir.path().join("state")).await;
    let message = CommandMessage {
        command: Command {
            command_id: CommandId::parse("twice").unwrap(),
            order_id: OrderId::parse("order-9").unwrap(),
            body: place(1),
        },
        correlation_id: "corr".into(),
        reply_to: "test".into(),
        trace: None,
    };
    let record = OutgoingRecord {
        topic: Topics::default().commands,
        partition: None,
        record: Record {
            key: b"order-9".to_vec(),
            value: Some(serde_json::to_vec(&message).unwrap()),
            headers: vec![],
            timestamp_ms: 0,
        },
    };
    // One append: both land before the processor polls, or in one poll.
    log.append(vec![record.clone(), record]).await.unwrap();
    let mut replies = Vec::new();
    while replies.len() < 2 {
        let batch = h.replies.poll(10, Duration::from_secs(10)).await.unwrap();
        assert!(!batch.is_empty(), "missing replies");
        for stored in batch {
            replies.push(
                serde_json::from_slice::<Reply>(stored.record.value.as_ref().unwrap()).unwrap(),
            );
        }
    }
    let (v1, events1, _) = accepted(&replies[0]);
    let (v2, events2, _) = accepted(&replies[1]);
    assert_eq!((v1, v2), (1, 1));
    assert_eq!(events1.len(), 1);
    assert_eq!(events1, events2, "the repeat must carry the original event");
    h.stop().await;
}
