//! Crash safety of the real binary: every acknowledged command survives a
//! `kill -9` of `orderstore serve`, and the restarted node carries on.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

struct Node {
    child: Child,
    url: String,
}

fn spawn(dir: &std::path::Path, backend: &[String]) -> Node {
    let mut args = vec!["--partitions".to_owned(), "3".to_owned()];
    args.extend_from_slice(backend);
    let (child, addr) = spawn_serve(dir, &args, "warn", Stdio::null());
    Node {
        child,
        url: format!("http://{addr}/graphql"),
    }
}

async fn gql(http: &reqwest::Client, url: &str, query: &str, variables: Value) -> Value {
    http.post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn a_killed_server_keeps_every_acknowledged_command(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let args = match backend {
        Backend::Embedded => vec![],
        Backend::Kafka => vec![
            "--kafka".to_owned(),
            kafka_bootstrap(),
            "--topic-prefix".to_owned(),
            format!("crash-{}", uuid::Uuid::new_v4().simple()),
        ],
    };
    let http = reqwest::Client::new();
    let mut node = spawn(dir.path(), &args);
    // Acknowledged: (order, version, token of its last event).
    let mut acknowledged = Vec::new();
    for i in 0..24 {
        let order = format!("crash-{i}");
        let placed = data(gql(&http, &node.url, PLACE, order_input(&order, "kim")).await);
        let mut last = (
            1,
            placed["placeOrder"]["consistencyToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
        if i % 2 == 0 {
            let reserved = data(gql(&http, &node.url, RESERVE, order_ref(&order)).await);
            last = (
                2,
                reserved["reserveInventory"]["consistencyToken"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        acknowledged.push((order, last.0, last.1));
    }
    // Commands in flight at the moment of the kill may or may not apply; the acknowledged ones must.
    let in_flight: Vec<_> = (0..8)
        .map(|i| {
            let (http, url) = (http.clone(), node.url.clone());
            tokio::spawn(async move {
                let _ = http.post(&url).json(&json!({ "query": PLACE, "variables": order_input(&format!("maybe-{i}"), "kim") })).send().await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    node.child.kill().unwrap(); // SIGKILL: no graceful shutdown
    node.child.wait().unwrap();
    for task in in_flight {
        let _ = task.await;
    }
    // The killed node's server.json stays behind; tools see it is stale and
    // open the files themselves instead of asking a dead server.
    assert!(dir.path().join("server.json").exists());
    let listed = Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["dlq", "list", "--data-dir"])
        .arg(dir.path())
        .env_remove("ORDERSTORE_KAFKA")
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    let mut node = spawn(dir.path(), &args);
    for (order, version, token) in &acknowledged {
        let body = gql(
            &http,
            &node.url,
            "query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { version status } }",
            json!({ "id": order, "t": token }),
        )
        .await;
        assert_eq!(
            data(body)["order"]["version"],
            *version,
            "{order} lost an acknowledged event"
        );
    }
    // The restarted node decides on the restored state: sequences continue.
    let next = data(gql(&http, &node.url, RESERVE, order_ref("crash-1")).await);
    assert_eq!(next["reserveInventory"]["version"], 2);
    let repeat = gql(&http, &node.url, RESERVE, order_ref("crash-0")).await;
    assert_eq!(
        error_code(&repeat).as_deref(),
        Some("INVALID_STATE"),
        "crash-0 was reserved before the kill"
    );
    node.child.kill().unwrap();
    node.child.wait().unwrap();
}

crate::on_both_backends!(a_killed_server_keeps_every_acknowledged_command);
