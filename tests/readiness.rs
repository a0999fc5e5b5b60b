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
