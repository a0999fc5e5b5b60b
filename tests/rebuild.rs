//! `orderstore replay rebuild`: a new generation built from the log serves
//! exactly what the old one did; `--until` builds a frozen generation beside
//! the served one.

use serde_json::{json, Value};

use crate::support::*;

const VIEWS: &str = "query($t: String) { order(id: \"rb-1\", consistentWith: $t) { status version history { type } } customer(id: \"rita\", consistentWith: $t) { orderCount openOrders lifetimeValue { amount currency } } projections { name version } }";

/// `orderstore replay rebuild all` on a stopped server's data directory
/// (and, on Kafka, its cluster and topic prefix).
fn rebuild(dir: &std::path::Path, log: &[String], extra: &[&str]) -> String {
    let log: Vec<&str> = log.iter().map(String::as_str).collect();
    orderstore_ok(
        &[&["replay", "rebuild", "all"], &log[..], extra].concat(),
        dir,
    )
}

fn without_versions(mut views: Value) -> Value {
    views["projections"] = Value::Null;
    views
}

crate::on_both_backends!(a_rebuilt_generation_serves_what_the_old_one_did);

async fn a_rebuilt_generation_serves_what_the_old_one_did(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let config = s.config.clone();
    let mut log = vec!["--topic-prefix".to_owned(), config.topic_prefix.clone()];
    if backend == Backend::Kafka {
        log.extend(["--kafka".to_owned(), kafka_bootstrap()]);
    }
    data(s.gql(PLACE, order_input("rb-1", "rita")).await);
    data(s.gql(RESERVE, order_ref("rb-1")).await);
    let paid = data(
        s.gql(
            CONFIRM,
            json!({ "input": { "orderId": "rb-1", "paymentId": "p", "amount": "36.79" } }),
        )
        .await,
    );
    let token = paid["confirmPayment"]["consistencyToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = data(s.gql(VIEWS, json!({ "t": token })).await);
    assert_eq!(before["projections"][0]["version"], 1);
    let dir = s.stop().await;

    let printed = rebuild(dir.path(), &log, &["--until", "2000-01-01T00:00:00Z"]);
    assert!(printed.contains("built from 0 events"), "{printed}");
    assert!(dir.path().join("projections/history/v2").exists());
    assert!(
        !dir.path().join("projections/history/CURRENT").exists(),
        "--until must not switch"
    );

    let printed = rebuild(dir.path(), &log, &[]);
    assert!(
        printed.contains("history: generation v3 built from 3 events"),
        "{printed}"
    );
    assert!(
        !dir.path().join("projections/history/v1").exists(),
        "the old generation is removed"
    );
    assert!(
        dir.path().join("projections/history/v2").exists(),
        "the frozen generation stays"
    );

    let s = TestServer::start_in(dir, |c| *c = config.clone()).await;
    let after = data(s.gql(VIEWS, json!({ "t": token })).await);
    assert_eq!(without_versions(after.clone()), without_versions(before));
    for projection in after["projections"].as_array().unwrap() {
        assert_eq!(projection["version"], 3, "{projection}");
    }
    let dir = s.stop().await;
    rebuild(dir.path(), &log, &["--keep-previous"]);
    assert!(
        dir.path().join("projections/customer/v3").exists(),
        "--keep-previous keeps v3"
    );
    assert!(dir.path().join("projections/customer/v4").exists());
}

/// `bench rebuild --kafka`: the same benchmark on the real broker rebuilds
/// real read models (numbers are for the command; no timing is asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_benchmark_runs_on_kafka() {
    let log = std::sync::Arc::new(
        eventlog::kafka::KafkaLog::connect(eventlog::kafka::KafkaConfig::new(kafka_bootstrap()))
            .await
            .expect("Kafka tests need scripts/test or scripts/kafka/kafka start"),
    );
    let topics = commands::Topics::new(&format!("bench-test-{}", uuid::Uuid::new_v4().simple()));
    let dir = tempfile::tempdir().unwrap();
    let report = replay::bench::rebuild_benchmark_on(log, &topics, dir.path(), 1000)
        .await
        .unwrap();
    assert_eq!(report.events, 1000);
    assert!(report.raw_consumer_events_per_second > 0.0 && report.rebuild_events_per_second > 0.0);
    let store =
        projections::ProjectionStore::open(&dir.path().join("projections/customer")).unwrap();
    let view = projections::customer::view(
        &store,
        "customer-7",
        chrono::DateTime::<chrono::Utc>::MAX_UTC,
    )
    .unwrap()
    .unwrap();
    assert_eq!(view.orders.len(), 1);
    assert_eq!(view.orders[0].status, domain::OrderStatus::Delivered);
}
