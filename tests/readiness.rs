//! Readiness that tells the truth: `/ready` names what it waits for (the
//! log, this node's command processor, the projections), and a command sent
//! to a node whose processor cannot take it yet is refused within its
//! timeout with UNAVAILABLE and a retry hint, unsent, instead of a TIMEOUT.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

async fn ready_says_what_the_processor_does(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    s.wait_ready().await;
    let (status, body) = s.ready_body().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["waitingFor"], json!([]));
    assert_eq!(
        body["processor"], "serving commands partitions 0, 1, 2, 3",
        "{body}"
    );

    // A node without a processor is ready on the log and projections alone.
    let reader = TestServer::start_on(backend, |c| {
        c.process_commands = false;
        c.topic_prefix = s.config.topic_prefix.clone();
    })
    .await;
    reader.wait_ready().await;
    let (status, body) = reader.ready_body().await;
    assert_eq!(
        (status, &body["processor"]),
        (200, &json!("not run on this node"))
    );
}

on_both_backends!(ready_says_what_the_processor_does);

/// A node that says it is ready has applied every acknowledged command in
/// every projection, even when asked at once: on Kafka a lane answers as
/// soon as its transaction commits, a moment before the coordinator's
/// markers make the events readable, and readiness must count them.
async fn ready_at_once_after_an_answer_covers_its_events(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    s.wait_ready().await;
    for i in 0..12 {
        let placed = data(
            s.gql(PLACE, order_input(&format!("ready-{i}"), "rae"))
                .await,
        );
        let events = placed["placeOrder"]["events"].as_array().unwrap().clone();
        assert!(!events.is_empty(), "{placed}");
        s.wait_ready().await;
        let body = data(
            s.gql(
                "{ projections { name partitions { partition position } } }",
                json!({}),
            )
            .await,
        );
        for projection in body["projections"].as_array().unwrap() {
            for event in &events {
                let (partition, offset) = (
                    event["partition"].as_i64().unwrap(),
                    event["offset"].as_str().unwrap().parse::<u64>().unwrap(),
                );
                let position = projection["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["partition"].as_i64() == Some(partition))
                    .and_then(|p| p["position"].as_str()?.parse::<u64>().ok())
                    .unwrap();
                assert!(
                    position > offset,
                    "ready, but {} is at {position} of partition {partition}, \
                     short of the acknowledged event at {offset}",
                    projection["name"]
                );
            }
        }
    }
}

on_both_backends!(ready_at_once_after_an_answer_covers_its_events);

/// On Kafka, a replacement node (fresh data directory, so a new static
/// member) waits for the group until the old member's session expires: it
/// says so, and refuses commands quickly and unsent until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_its_group_is_not_ready_and_refuses_commands_unsent() {
    let session = Duration::from_secs(6);
    let with_session = |c: &mut api::serve::ServeConfig| {
        if let api::serve::Backend::Kafka(kafka) = &mut c.backend {
            kafka.session_timeout = Some(session);
        }
    };
    let first = TestServer::start_on(Backend::Kafka, with_session).await;
    data(first.gql(PLACE, order_input("before", "rae")).await);
    let prefix = first.config.topic_prefix.clone();
    // A static member stays in the group after it stops, until its session ends.
    first.stop().await;
    let stopped = Instant::now();
    let second = TestServer::start_on(Backend::Kafka, |c| {
        with_session(c);
        c.topic_prefix = prefix;
        c.command_timeout = Duration::from_millis(800);
    })
    .await;

    let (status, body) = second.ready_body().await;
    if stopped.elapsed() < session - Duration::from_secs(2) {
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["ready"], false);
        let waiting = body["waitingFor"][0].as_str().unwrap();
        assert!(waiting.starts_with("command processor: joining"), "{body}");

        let sent = Instant::now();
        let refused = second.gql(PLACE, order_input("while-joining", "rae")).await;
        assert_eq!(
            error_code(&refused).as_deref(),
            Some("UNAVAILABLE"),
            "{refused}"
        );
        assert_eq!(refused["errors"][0]["extensions"]["retryAfterMs"], 1000);
        let message = refused["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("not applied"), "{message}");
        assert!(
            sent.elapsed() < Duration::from_secs(3),
            "refused after {:?}",
            sent.elapsed()
        );
    } else {
        panic!(
            "the replacement took {:?} to start; the window to check closed",
            stopped.elapsed()
        );
    }

    // Once the old member's session is over, the node serves, and the
    // refused command was never applied: placing it now is its first time.
    second.wait_ready().await;
    let placed = data(second.gql(PLACE, order_input("while-joining", "rae")).await);
    assert_eq!(placed["placeOrder"]["version"], 1, "{placed}");
    assert!(
        stopped.elapsed() < session + Duration::from_secs(5),
        "ready only after {:?}",
        stopped.elapsed()
    );
}

/// On Kafka a committed transaction's records become readable a moment
/// after `commit` returns, when the coordinator has written the markers:
/// the lag taken at once counts them (the last stable offset alone did
/// not), and an open transaction's records do not count at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lag_counts_a_committed_transaction_before_its_markers_are_written() {
    let s = TestServer::start_on(Backend::Kafka, |_| {}).await;
    let log = s.server().log.clone();
    let topics = commands::Topics::new(&format!("{}.lag", s.config.topic_prefix));
    log.create_topic(&eventlog::TopicSpec {
        name: topics.events.clone(),
        partitions: 1,
        compacted: false,
        retention_ms: None,
    })
    .await
    .unwrap();
    let progress = projections::worker::Progress::default();
    progress.set_position(0, 0);
    let probes = projections::serving::lag::LagProbes::default();
    let lag =
        || projections::serving::lag::lag_of(log.as_ref(), &topics, "probe", &progress, &probes);
    let records = |n: usize| -> Vec<eventlog::OutgoingRecord> {
        (0..n)
            .map(|i| eventlog::OutgoingRecord {
                topic: topics.events.clone(),
                partition: Some(0),
                record: eventlog::Record {
                    key: b"k".to_vec(),
                    value: Some(format!("v{i}").into_bytes()),
                    headers: vec![],
                    timestamp_ms: chrono::Utc::now().timestamp_millis(),
                },
            })
            .collect()
    };
    let writer = log.lane("lag-probe");
    writer.init_transactions().await.unwrap();

    let mut open = writer.begin().await.unwrap();
    open.send(records(3)).await.unwrap();
    let while_open = lag().await.unwrap();
    assert_eq!(
        while_open.events, 0,
        "an open transaction is not lag: {while_open:?}"
    );
    open.abort().await.unwrap();

    let mut txn = writer.begin().await.unwrap();
    let sent = txn.send(records(2)).await.unwrap();
    txn.commit(vec![]).await.unwrap();
    let last = sent.last().unwrap().offset;
    let at_once = lag().await.unwrap();
    assert!(at_once.partitions[0].end > last, "{at_once:?}");
    assert!(
        at_once.events >= 2,
        "committed records not counted: {at_once:?}"
    );

    // Applied, and past the markers: nothing left.
    progress.set_position(0, last + 1);
    let applied = eventually(
        Duration::from_secs(30),
        "the markers are written",
        || async {
            let lag = lag().await.unwrap();
            (lag.events == 0).then_some(lag)
        },
    )
    .await;
    assert!(applied.partitions[0].end > last, "{applied:?}");
}
