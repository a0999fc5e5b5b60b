//! W3C trace context end to end: a `traceparent` (and `tracestate`) sent
//! with a mutation lands on every event the command causes, in the log as
//! the CloudEvents distributed-tracing extension (`ce_traceparent`,
//! `ce_tracestate`) and in GraphQL; without a valid one, each command
//! starts a fresh trace.

use std::time::Duration;

use commands::Topics;
use eventlog::{EventLog, TopicPartition};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

const PLACE_TRACED: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { consistencyToken events { id traceparent tracestate } } }";
const HISTORY: &str = "query($id: ID!, $token: String) { order(id: $id, consistentWith: $token) { history { id traceparent tracestate } } }";
/// Asked after HISTORY, whose `consistentWith` waited for the history read
/// model (top-level fields resolve concurrently, and `orderHistory` takes
/// no token).
const PAGES: &str =
    "query($id: ID!) { orderHistory(id: $id) { edges { node { traceparent tracestate } } } }";

/// Places `order` with these request headers; answers the mutation's data.
async fn place(s: &TestServer, order: &str, headers: &[(&str, &str)]) -> Value {
    let mut request = s.http.post(&s.url).json(&json!({
        "query": PLACE_TRACED,
        "variables": order_input(order, "tess"),
    }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    data(body)["placeOrder"].clone()
}

/// A traceparent's trace id, checking it is well-formed as it goes.
fn trace_id(traceparent: &Value) -> String {
    let text = traceparent.as_str().expect("a traceparent");
    let parsed = domain::TraceContext::parse(text, None).expect("a valid traceparent");
    parsed.trace_id().to_owned()
}

async fn a_traceparent_sent_with_a_mutation_comes_back_on_its_events(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let placed = place(
        &s,
        "traced-1",
        &[("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)],
    )
    .await;
    let event = &placed["events"][0];
    assert_eq!(event["traceparent"], TRACEPARENT, "{placed}");
    assert_eq!(event["tracestate"], TRACESTATE);

    // The read models keep it: the order's history and its event pages.
    let token = placed["consistencyToken"].clone();
    let read = data(
        s.gql(HISTORY, json!({ "id": "traced-1", "token": token }))
            .await,
    );
    assert_eq!(read["order"]["history"][0]["traceparent"], TRACEPARENT);
    assert_eq!(read["order"]["history"][0]["tracestate"], TRACESTATE);
    let pages = data(s.gql(PAGES, json!({ "id": "traced-1" })).await);
    let node = &pages["orderHistory"]["edges"][0]["node"];
    assert_eq!(node["traceparent"], TRACEPARENT);

    // In the log it is the CloudEvents extension, as binary-mode headers.
    let topics = Topics::new(&s.config.topic_prefix);
    let log = s.server().log.clone();
    let token = placed["consistencyToken"].as_str().unwrap();
    let (partition, offset) = commands::parse_consistency_token(token).unwrap();
    let tp = TopicPartition::new(&topics.events, partition);
    let record = record_at(log.as_ref(), &tp, offset).await;
    let header = |name: &str| {
        record
            .record
            .header(name)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(header("ce_traceparent").as_deref(), Some(TRACEPARENT));
    assert_eq!(header("ce_tracestate").as_deref(), Some(TRACESTATE));

    // Without one, every command starts its own fresh, valid trace.
    let first = place(&s, "fresh-1", &[]).await;
    let second = place(&s, "fresh-2", &[]).await;
    let (a, b) = (
        trace_id(&first["events"][0]["traceparent"]),
        trace_id(&second["events"][0]["traceparent"]),
    );
    assert_ne!(a, b, "two untraced commands share a trace id");
    assert_ne!(a, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(first["events"][0]["tracestate"].is_null());

    // An invalid traceparent restarts the trace, as the spec says (and its
    // tracestate goes with it); the command itself is not refused.
    for (i, bad) in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
    ]
    .into_iter()
    .enumerate()
    {
        let order = format!("bad-{i}");
        let placed = place(
            &s,
            &order,
            &[("traceparent", bad), ("tracestate", TRACESTATE)],
        )
        .await;
        let event = &placed["events"][0];
        assert_ne!(event["traceparent"], bad);
        assert_ne!(
            trace_id(&event["traceparent"]),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(event["tracestate"].is_null(), "{bad}: {event}");
    }
}

/// The record at `offset` of `tp`.
async fn record_at(log: &dyn EventLog, tp: &TopicPartition, offset: u64) -> eventlog::StoredRecord {
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp.clone(), offset)]).await.unwrap();
    let found = consumer.poll(1, Duration::from_secs(10)).await.unwrap();
    let record = found.into_iter().next().expect("the event is in the log");
    assert_eq!(record.offset, offset);
    record
}

on_both_backends!(a_traceparent_sent_with_a_mutation_comes_back_on_its_events);

/// `serve --log-format json` writes one JSON object per line, and the line
/// about a command carries its trace and correlation ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_trace_and_correlation_ids_of_a_command() {
    use std::io::Read;
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let args = ["--log-format".to_owned(), "json".to_owned()];
    let log = "info,sled=warn,commands=debug";
    let (mut child, addr) = spawn_serve(dir.path(), &args, log, Stdio::piped());
    let body: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .header("traceparent", TRACEPARENT)
        .header("x-correlation-id", "checkout-77")
        .json(&json!({ "query": PLACE_TRACED, "variables": order_input("logged-1", "lou") }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data(body);
    // SIGTERM: a clean shutdown flushes and closes stderr.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
    let answered = lines
        .iter()
        .find(|l| l["message"] == "command answered")
        .unwrap_or_else(|| panic!("no line about the command in {stderr}"));
    assert_eq!(answered["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(answered["correlation_id"], "checkout-77");
    assert_eq!(answered["order_id"], "logged-1");
}
