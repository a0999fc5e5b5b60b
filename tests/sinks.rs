//! CloudEvents HTTP sinks (`serve --sink NAME=URL`), on both backends,
//! against a receiver in the test: every event arrives in the binary mode,
//! at least once and in order per order, across a restart and a kill -9;
//! a receiver that fails its first requests gets everything once it
//! answers; one that refuses an order parks that order only; a receiver
//! that stays down grows lag, not memory; bad flags and an unreachable
//! receiver are refused at start.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// One request the receiver saw.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Delivery {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
    fn subject(&self) -> &str {
        self.header("ce-subject")
    }
    fn sequence(&self) -> u64 {
        self.header("ce-sequence").parse().unwrap()
    }
}

/// A webhook receiver: what it got (acknowledged or not) and how it answers.
#[derive(Default)]
pub struct Receiver {
    pub acknowledged: Mutex<Vec<Delivery>>,
    pub requests: AtomicUsize,
    /// Answer 503 to this many requests first.
    pub fail_first: AtomicUsize,
    /// Answer 503 to everything while set.
    pub down: AtomicBool,
    /// Answer 400 to this order's events.
    pub refuse: Mutex<Option<String>>,
    /// Wait this long before each answer.
    pub delay_ms: AtomicUsize,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    receiver.requests.fetch_add(1, Ordering::SeqCst);
    let delay = receiver.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    if receiver.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if receiver
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let refused = receiver.refuse.lock().unwrap().clone();
    if refused.is_some_and(|order| headers.get("ce-subject") == Some(&order)) {
        return StatusCode::BAD_REQUEST;
    }
    let body = serde_json::from_str(&body).unwrap();
    receiver
        .acknowledged
        .lock()
        .unwrap()
        .push(Delivery { headers, body });
    StatusCode::NO_CONTENT
}

/// Starts a receiver on a free port: its state and its URL.
pub async fn start_receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new()
        .route("/events", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, format!("http://{addr}/events"))
}

fn sink(name: &str, url: &str) -> projections::sinks::SinkSpec {
    let mut spec = projections::sinks::SinkSpec::parse(&format!("{name}={url}")).unwrap();
    spec.headers
        .push(("Authorization".into(), "Bearer hook-secret".into()));
    spec
}

/// Places `orders` orders, confirms and reserves every other one: their
/// ids and how many events each has.
pub async fn place(server: &TestServer, prefix: &str, orders: usize) -> BTreeMap<String, u64> {
    let mut events = BTreeMap::new();
    for i in 0..orders {
        let order = format!("{prefix}-{i}");
        data(server.gql(PLACE, order_input(&order, "kim")).await);
        let mut count = 1;
        if i % 2 == 0 {
            let pay = json!({ "input": { "orderId": order, "paymentId": format!("pay-{i}"), "amount": "36.79" } });
            data(server.gql(RESERVE, order_ref(&order)).await);
            data(server.gql(CONFIRM, pay).await);
            count += 2;
        }
        events.insert(order, count);
    }
    events
}

/// Every event of `expected` was acknowledged at least once, and each
/// order's events arrived in order: no event before all its order's earlier
/// ones had arrived (a redelivery may repeat earlier ones).
fn check_delivered(acknowledged: &[Delivery], expected: &BTreeMap<String, u64>) -> bool {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for delivery in acknowledged {
        let highest = seen.entry(delivery.subject()).or_insert(0);
        let sequence = delivery.sequence();
        assert!(
            sequence <= *highest + 1,
            "{} event {sequence} arrived before event {}",
            delivery.subject(),
            *highest + 1
        );
        *highest = (*highest).max(sequence);
    }
    expected
        .iter()
        .all(|(order, count)| seen.get(order.as_str()).copied().unwrap_or(0) >= *count)
}

async fn wait_delivered(receiver: &Receiver, expected: &BTreeMap<String, u64>) {
    eventually(
        Duration::from_secs(60),
        "every event reaches the receiver",
        || async {
            check_delivered(&receiver.acknowledged.lock().unwrap(), expected).then_some(())
        },
    )
    .await
}

async fn sink_status(server: &TestServer) -> Value {
    data(
        server
            .gql(
                "{ sinks { name url lag lagSeconds delivered retrying parked } }",
                json!({}),
            )
            .await,
    )["sinks"][0]
        .clone()
}

async fn every_event_arrives_in_order_across_a_restart(backend: Backend) {
    let (receiver, url) = start_receiver().await;
    receiver.fail_first.store(5, Ordering::SeqCst);
    let server = TestServer::start_on(backend, |c| c.sinks = vec![sink("hook", &url)]).await;
    let mut expected = place(&server, "sink", 8).await;
    wait_delivered(&receiver, &expected).await;
    assert!(receiver.requests.load(Ordering::SeqCst) >= 5 + 16);

    // The binary mode of the CloudEvents HTTP binding, with the sink's header.
    let first = receiver.acknowledged.lock().unwrap()[0].clone();
    assert_eq!(first.header("ce-specversion"), "1.0");
    assert_eq!(first.header("content-type"), "application/json");
    assert_eq!(first.header("authorization"), "Bearer hook-secret");
    for name in [
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "ce-correlationid",
        "ce-causationid",
        "ce-traceparent",
    ] {
        assert!(!first.header(name).is_empty(), "{name} missing: {first:?}");
    }
    let placed = receiver
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .find(|d| d.header("ce-type") == "com.orderstore.order.placed")
        .cloned()
        .unwrap();
    assert_eq!(placed.body["customerId"], "kim");
    assert_eq!(placed.body["total"]["amount"], "36.79");
    // The same event as the API shows it: same id, type, subject, sequence.
    let history = data(
        server
            .gql(
                "query($id: ID!) { order(id: $id) { history { id type sequence } } }",
                json!({ "id": placed.subject() }),
            )
            .await,
    );
    assert_eq!(history["order"]["history"][0]["id"], placed.header("ce-id"));

    let status = eventually(
        Duration::from_secs(30),
        "the sink's status settles",
        || async {
            let status = sink_status(&server).await;
            (status["lag"] == "0" && status["delivered"] == "16").then_some(status)
        },
    )
    .await;
    assert_eq!(status["name"], "hook");
    assert_eq!(status["url"], url.as_str());
    assert_eq!(status["retrying"], 0);
    assert_eq!(status["parked"], 0);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("orderstore_sink_delivered_events_total{sink=\"hook\"} 16"),
        "{metrics}"
    );
    assert!(
        metrics.contains("orderstore_sink_lag_events{sink=\"hook\"} 0"),
        "{metrics}"
    );
    let retries = metrics
        .lines()
        .find(|l| l.starts_with("orderstore_sink_retries_total{sink=\"hook\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(retries >= 5, "{metrics}");

    // A restart resumes from the checkpoint: the new events arrive, the
    // old ones are not all sent again.
    let before = receiver.acknowledged.lock().unwrap().len();
    let server = server.restart(|_| {}).await;
    expected.extend(place(&server, "again", 3).await);
    wait_delivered(&receiver, &expected).await;
    let after = receiver.acknowledged.lock().unwrap().len();
    assert!(
        after - before < 16 + 6,
        "a restart sent everything again: {before} then {after}"
    );
    if backend == Backend::Kafka {
        // Kafka's tools see the sink's checkpoints as its group's offsets.
        let log = server.server().log.clone();
        let topics = commands::Topics::new(&server.config.topic_prefix);
        eventually(
            Duration::from_secs(30),
            "the sink's group offsets are committed",
            || async {
                let mut committed = 0;
                for p in 0..4 {
                    let tp = eventlog::TopicPartition::new(&topics.events, p);
                    committed += log
                        .committed(&topics.sink_group("hook"), &tp)
                        .await
                        .unwrap()
                        .unwrap_or(0);
                }
                (committed > 0).then_some(())
            },
        )
        .await;
    }
    server.stop().await;
}

async fn a_refused_order_parks_while_the_others_flow(backend: Backend) {
    let (receiver, url) = start_receiver().await;
    *receiver.refuse.lock().unwrap() = Some("bad-0".into());
    let server = TestServer::start_on(backend, |c| c.sinks = vec![sink("hook", &url)]).await;
    let mut expected = place(&server, "bad", 1).await;
    let others = place(&server, "good", 4).await;
    wait_delivered(&receiver, &others).await;
    let parked = eventually(
        Duration::from_secs(30),
        "bad-0's three events park",
        || async {
            let parked = data(
                server
                    .gql(
                        "{ sinkParked(sink: \"hook\") { id orderId sequence status error } }",
                        json!({}),
                    )
                    .await,
            )["sinkParked"]
                .clone();
            (parked.as_array().unwrap().len() == 3).then_some(parked)
        },
    )
    .await;
    assert_eq!(parked[0]["orderId"], "bad-0");
    assert_eq!(parked[0]["sequence"], "1");
    assert_eq!(parked[0]["status"], 400);
    assert!(
        parked[1]["error"]
            .as_str()
            .unwrap()
            .contains("parked behind"),
        "{parked}"
    );
    assert!(receiver
        .acknowledged
        .lock()
        .unwrap()
        .iter()
        .all(|d| d.subject() != "bad-0"));
    // Later events of the parked order park behind it.
    data(server.gql(SHIP, json!({ "input": { "orderId": "bad-0", "carrier": "UPS", "trackingNumber": "1Z" } })).await);
    eventually(
        Duration::from_secs(30),
        "the new event parks too",
        || async {
            let status = sink_status(&server).await;
            (status["parked"] == 4).then_some(())
        },
    )
    .await;

    // Refused flags and unknown sinks are told.
    let unconfirmed = server
        .gql(
            "mutation { discardSinkEvent(id: \"hook:0:0\", confirm: false) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&unconfirmed).as_deref(),
        Some("VALIDATION_FAILED"),
        "{unconfirmed}"
    );
    let unknown = server
        .gql("mutation { retrySinkEvents(sink: \"nope\") }", json!({}))
        .await;
    assert_eq!(
        error_code(&unknown).as_deref(),
        Some("NOT_FOUND"),
        "{unknown}"
    );

    // Once the receiver takes the order, a retry sends its events in order.
    *receiver.refuse.lock().unwrap() = None;
    let queued = data(
        server
            .gql(
                "mutation { retrySinkEvents(sink: \"hook\", orderId: \"bad-0\") }",
                json!({}),
            )
            .await,
    );
    assert_eq!(queued["retrySinkEvents"], 4);
    expected.insert("bad-0".into(), 4);
    wait_delivered(&receiver, &expected).await;
    eventually(Duration::from_secs(30), "nothing stays parked", || async {
        (sink_status(&server).await["parked"] == 0).then_some(())
    })
    .await;

    // Discarding the only parked event of an order lets its later ones flow.
    *receiver.refuse.lock().unwrap() = Some("worse-0".into());
    place(&server, "worse", 1).await; // 3 events: all parked
    let parked = eventually(Duration::from_secs(30), "worse-0 parks", || async {
        let parked = data(
            server
                .gql("{ sinkParked(sink: \"hook\") { id orderId } }", json!({}))
                .await,
        )["sinkParked"]
            .clone();
        (parked.as_array().unwrap().len() == 3).then_some(parked)
    })
    .await;
    *receiver.refuse.lock().unwrap() = None;
    for event in parked.as_array().unwrap() {
        let discarded = data(
            server
                .gql(
                    "mutation($id: ID!) { discardSinkEvent(id: $id, confirm: true) { id } }",
                    json!({ "id": event["id"] }),
                )
                .await,
        );
        assert_eq!(discarded["discardSinkEvent"]["id"], event["id"]);
    }
    data(server.gql(SHIP, json!({ "input": { "orderId": "worse-0", "carrier": "UPS", "trackingNumber": "1Z" } })).await);
    eventually(
        Duration::from_secs(30),
        "worse-0's next event arrives",
        || async {
            receiver
                .acknowledged
                .lock()
                .unwrap()
                .iter()
                .any(|d| d.subject() == "worse-0" && d.sequence() == 4)
                .then_some(())
        },
    )
    .await;
    server.stop().await;
}

async fn a_receiver_that_stays_down_grows_lag_not_memory(backend: Backend) {
    let (receiver, url) = start_receiver().await;
    receiver.down.store(true, Ordering::SeqCst);
    let server = TestServer::start_on(backend, |c| c.sinks = vec![sink("hook", &url)]).await;
    // More events in one partition than a sink holds in memory.
    let events = projections::sinks::WINDOW + 500;
    let topics = commands::Topics::new(&server.config.topic_prefix);
    let records = (0..events)
        .map(|i| {
            let recorded = domain::Recorded {
                order_id: domain::OrderId::parse(format!("held-{i}")).unwrap(),
                sequence: 1,
                time: chrono::Utc::now(),
                command_id: domain::CommandId::parse(uuid::Uuid::new_v4().to_string()).unwrap(),
                event: domain::OrderEvent::OrderDelivered,
            };
            let event = domain::RecordedEvent::new(
                &recorded,
                domain::EventMeta {
                    id: uuid::Uuid::new_v4().to_string(),
                    correlation_id: "held".into(),
                    trace: None,
                },
            );
            let (headers, payload) = event.encode();
            eventlog::OutgoingRecord {
                topic: topics.events.clone(),
                partition: Some(0),
                record: eventlog::Record {
                    key: format!("held-{i}").into_bytes(),
                    value: Some(payload),
                    headers,
                    timestamp_ms: recorded.time.timestamp_millis(),
                },
            }
        })
        .collect();
    append_eventually(server.server().log.as_ref(), records).await;
    let status = eventually(
        Duration::from_secs(60),
        "the sink falls behind by what it cannot hold",
        || async {
            let status = sink_status(&server).await;
            let lag: u64 = status["lag"].as_str().unwrap().parse().unwrap();
            (lag == events as u64 && status["retrying"].as_i64().unwrap() > 0).then_some(status)
        },
    )
    .await;
    // It holds at most a window of events per partition; the rest wait in the log.
    let retrying = status["retrying"].as_i64().unwrap() as usize;
    assert!(retrying <= projections::sinks::WINDOW, "{status}");
    assert_eq!(status["delivered"], "0");
    // When the receiver is back, everything arrives.
    receiver.down.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(120),
        "the receiver catches up",
        || async { (receiver.acknowledged.lock().unwrap().len() >= events).then_some(()) },
    )
    .await;
    eventually(Duration::from_secs(30), "the lag is back to 0", || async {
        (sink_status(&server).await["lag"] == "0").then_some(())
    })
    .await;
    server.stop().await;
}

async fn a_killed_server_delivers_every_event_after_its_restart(backend: Backend) {
    let (receiver, url) = start_receiver().await;
    // Slow enough that no order has both its events delivered by the kill.
    receiver.delay_ms.store(500, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--partitions".to_owned(),
        "3".to_owned(),
        "--sink".to_owned(),
        format!("hook={url}"),
    ];
    if backend == Backend::Kafka {
        args.extend([
            "--kafka".to_owned(),
            kafka_bootstrap(),
            "--topic-prefix".to_owned(),
            format!("sinkkill-{}", uuid::Uuid::new_v4().simple()),
        ]);
    }
    let http = reqwest::Client::new();
    let (mut child, addr) = spawn_serve(dir.path(), &args, "warn", std::process::Stdio::null());
    let gql = |addr: String, query: &'static str, variables: Value| {
        let http = http.clone();
        async move {
            http.post(format!("http://{addr}/graphql"))
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut expected = BTreeMap::new();
    for i in 0..20 {
        let order = format!("kill-{i}");
        data(gql(addr.clone(), PLACE, order_input(&order, "kim")).await);
        data(gql(addr.clone(), RESERVE, order_ref(&order)).await);
        expected.insert(order, 2);
    }
    // Killed while the receiver is part way through.
    eventually(Duration::from_secs(30), "some events arrive", || async {
        (receiver.acknowledged.lock().unwrap().len() >= 5).then_some(())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    let delivered_before = receiver.acknowledged.lock().unwrap().len();
    assert!(
        delivered_before < 40,
        "everything arrived before the kill: {delivered_before}"
    );
    receiver.delay_ms.store(0, Ordering::SeqCst);
    let (mut child, _addr) = spawn_serve(dir.path(), &args, "warn", std::process::Stdio::null());
    wait_delivered(&receiver, &expected).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

crate::on_both_backends!(
    every_event_arrives_in_order_across_a_restart,
    a_refused_order_parks_while_the_others_flow,
    a_receiver_that_stays_down_grows_lag_not_memory,
    a_killed_server_delivers_every_event_after_its_restart,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_receiver_stops_the_start_with_a_clear_error() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        api::serve::ServeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
    config.sinks = vec![sink("hook", &format!("http://127.0.0.1:{port}/events"))];
    let error = api::serve::start(config).await.unwrap_err().to_string();
    assert!(error.contains("sink hook: cannot reach"), "{error}");
    assert!(
        error.contains("start the receiver or fix --sink"),
        "{error}"
    );
}

#[test]
fn bad_sink_flags_are_refused_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    for (flags, expected) in [
        (
            vec!["--sink", "hook"],
            "expected NAME=URL, e.g. --sink webhook=http://127.0.0.1:9000/events",
        ),
        (vec!["--sink", "hook=ftp://x/"], "is not an http:// URL"),
        (
            vec!["--sink", "a=http://h/", "--sink-header", "b:X=1"],
            "no --sink is named \"b\"",
        ),
        (
            vec!["--sink", "a=http://h/", "--sink-header", "a:NoValue"],
            "expected NAME:Header=Value",
        ),
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend(flags.iter().copied());
        let output = orderstore(&args, dir.path());
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_commands_go_through_the_running_server() {
    let (receiver, url) = start_receiver().await;
    *receiver.refuse.lock().unwrap() = Some("cli-0".into());
    let server = TestServer::start_with(|c| c.sinks = vec![sink("hook", &url)]).await;
    place(&server, "cli", 1).await;
    eventually(
        Duration::from_secs(30),
        "cli-0's three events park",
        || async { (sink_status(&server).await["parked"] == 3).then_some(()) },
    )
    .await;
    let dir = server.dir.path().to_path_buf();
    let list = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || orderstore_ok(&["sink", "list"], &dir)
    })
    .await
    .unwrap();
    assert!(list.contains("sink hook"), "{list}");
    assert!(
        list.contains("cli-0") && list.contains("400 Bad Request"),
        "{list}"
    );
    let position = list
        .lines()
        .find(|l| l.contains("cli-0"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_owned();
    let shown = tokio::task::spawn_blocking({
        let (dir, position) = (dir.clone(), position.clone());
        move || orderstore_ok(&["sink", "show", "hook", &position], &dir)
    })
    .await
    .unwrap();
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["orderId"], "cli-0");
    let refused = tokio::task::spawn_blocking({
        let (dir, position) = (dir.clone(), position.clone());
        move || orderstore(&["sink", "discard", "hook", &position], &dir)
    })
    .await
    .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("pass --confirm"));
    *receiver.refuse.lock().unwrap() = None;
    let retried = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || orderstore_ok(&["sink", "retry", "hook", "--order", "cli-0"], &dir)
    })
    .await
    .unwrap();
    assert!(retried.contains("3 parked event(s) queued"), "{retried}");
    wait_delivered(&receiver, &BTreeMap::from([("cli-0".to_owned(), 3)])).await;
    server.stop().await;
    // Without a server there is nothing to ask.
    let alone = tokio::task::spawn_blocking(move || orderstore(&["sink", "list"], &dir))
        .await
        .unwrap();
    assert!(!alone.status.success());
    assert!(String::from_utf8_lossy(&alone.stderr).contains("no running server owns"));
}
