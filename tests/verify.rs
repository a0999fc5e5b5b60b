//! `orderstore replay verify`: a served read model that matches its rebuild
//! passes; one entry changed by hand is reported, with both values, and the
//! command exits 1; through a running server and offline, on both backends.

use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

fn verify(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let output = orderstore(&[&["replay", "verify"], args].concat(), dir);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "verify crashed: {printed}"
    );
    (output.status.success(), printed)
}

on_both_backends!(verify_reports_exactly_what_differs_from_a_rebuild);

async fn verify_reports_exactly_what_differs_from_a_rebuild(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    for i in 0..3 {
        let id = format!("v-{i}");
        data(s.gql(PLACE, order_input(&id, "vera")).await);
        data(s.gql(RESERVE, order_ref(&id)).await);
        data(
            s.gql(
                CONFIRM,
                json!({ "input": { "orderId": id, "paymentId": "p", "amount": "36.79" } }),
            )
            .await,
        );
    }
    s.wait_ready().await;

    let (clean, printed) = verify(&["all"], s.dir.path());
    assert!(clean, "{printed}");
    assert!(printed.contains("asking the server at"), "{printed}");
    for name in ["history", "customer", "finance"] {
        assert!(
            printed.contains(&format!("{name} v1: "))
                && printed.contains("entries match a rebuild from 9 events"),
            "{printed}"
        );
    }

    let snapshots = orderstore(&["replay", "snapshots", "--verify"], s.dir.path());
    let printed = String::from_utf8_lossy(&snapshots.stdout);
    assert!(snapshots.status.success(), "{printed}");
    assert!(
        printed.contains("asking the server at")
            && printed.contains("3 orders folded")
            && printed.contains("snapshots match the events"),
        "{printed}"
    );

    // A hand edit: a row no event made.
    let config = s.config.clone();
    let prefix = config.topic_prefix.clone();
    let dir = s.stop().await;
    {
        let store = projections::ProjectionStore::open(&dir.path().join("projections/customer/v1"))
            .unwrap();
        let mut batch = projections::store::StoreBatch::default();
        batch.put_row(
            &projections::RowKey::new(projections::customer::ORDERS, &["forged"]),
            chrono::Utc::now(),
            b"{\"forged\":true}",
        );
        store.commit(batch).unwrap();
        store.flush().await.unwrap();
    }
    let kafka = kafka_bootstrap();
    let mut offline = vec!["customer", "--topic-prefix", prefix.as_str()];
    if backend == Backend::Kafka {
        offline.extend(["--kafka", kafka.as_str()]);
    }
    let (clean, printed) = verify(&offline, dir.path());
    assert!(!clean, "{printed}");
    assert!(!printed.contains("asking the server"), "{printed}");
    assert!(printed.contains("customer v1: 1 of "), "{printed}");
    assert!(
        printed.contains("DIFFERENT row customer-order/forged valid from"),
        "{printed}"
    );
    assert!(printed.contains("served:  {\"forged\":true}"), "{printed}");
    assert!(printed.contains("rebuilt: (missing)"), "{printed}");
    assert!(
        std::fs::read_dir(dir.path().join("projections/customer"))
            .unwrap()
            .all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("verify-")),
        "the scratch store is removed"
    );

    // The same through a running server.
    let s = TestServer::start_in(dir, |c| *c = config).await;
    s.wait_ready().await;
    let (clean, printed) = verify(&["all"], s.dir.path());
    assert!(!clean, "{printed}");
    assert!(printed.contains("asking the server at"), "{printed}");
    assert!(
        printed.contains("history v1: ") && printed.contains("customer v1: 1 of "),
        "{printed}"
    );
    assert!(
        printed.contains("DIFFERENT row customer-order/forged"),
        "{printed}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_an_unknown_projection() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, printed) = verify(&["ledger"], dir.path());
    assert!(!clean);
    assert!(
        printed.contains("unknown projection \"ledger\""),
        "{printed}"
    );
}

on_both_backends!(a_republished_event_is_folded_once);

/// An event published a second time (same id, same sequence), as an
/// at-least-once producer outside orderstore may do: the log's fold behind
/// `verifySnapshots` and `inspect` folds it once, as the projections do.
/// (Found by `orderstore chaos --scenario duplicates`.)
async fn a_republished_event_is_folded_once(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let placed = data(s.gql(PLACE, order_input("dup-1", "vera")).await);
    data(s.gql(RESERVE, order_ref("dup-1")).await);
    let first = &placed["placeOrder"]["events"][0];
    let (partition, offset) = (
        first["partition"].as_u64().unwrap() as u32,
        first["offset"]
            .as_str()
            .map_or_else(|| first["offset"].as_u64().unwrap(), |o| o.parse().unwrap()),
    );
    let log = s.server().log.clone();
    let topics = commands::Topics::new(&s.config.topic_prefix);
    let tp = eventlog::TopicPartition::new(&topics.events, partition);
    let mut consumer = log.consumer().await.unwrap();
    consumer.assign(vec![(tp, offset)]).await.unwrap();
    let record = consumer
        .poll(1, std::time::Duration::from_secs(10))
        .await
        .unwrap()
        .remove(0);
    append_eventually(
        log.as_ref(),
        vec![eventlog::OutgoingRecord {
            topic: topics.events.clone(),
            partition: Some(partition),
            record: record.record,
        }],
    )
    .await;
    s.wait_ready().await;
    let verified = data(
        s.gql("{ verifySnapshots { orders differences } }", json!({}))
            .await,
    );
    assert_eq!(
        verified["verifySnapshots"]["differences"],
        json!([]),
        "{verified}"
    );
    let inspected = data(
        s.gql("{ inspectOrder(id: \"dup-1\") { json } }", json!({}))
            .await,
    );
    assert_eq!(
        inspected["inspectOrder"]["json"]["state"]["version"], 2,
        "{inspected}"
    );
    let order = data(
        s.gql(
            "{ order(id: \"dup-1\") { version history { sequence } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(order["order"]["version"], 2);
    assert_eq!(order["order"]["history"].as_array().unwrap().len(), 2);
}
