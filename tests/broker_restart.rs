//! A broker restart in the middle of a workload: the node reconnects by
//! itself, every acknowledged command is still there, and a client that
//! retries with the same idempotency key gets one outcome, never two.
//! Runs its own broker (own home and ports) so other tests keep theirs.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

struct Broker {
    home: tempfile::TempDir,
    port: u16,
}

impl Broker {
    fn harness(&self, action: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka/kafka");
        let output = Command::new(script)
            .arg(action)
            .env("ORDERSTORE_KAFKA_HOME", self.home.path())
            .env("ORDERSTORE_KAFKA_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "kafka {action}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka/kafka"))
            .arg("stop")
            .env("ORDERSTORE_KAFKA_HOME", self.home.path())
            .env("ORDERSTORE_KAFKA_PORT", self.port.to_string())
            .output();
    }
}

fn placed_version(body: &Value) -> Option<i64> {
    body.get("errors")
        .is_none()
        .then(|| body["data"]["placeOrder"]["version"].as_i64())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_load_loses_nothing_acknowledged() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
    let broker = Broker {
        home: tempfile::tempdir().unwrap(),
        port: 29_192,
    };
    let bootstrap = broker.harness("start");
    let s = TestServer::start_with(|c| {
        c.backend = api::serve::Backend::Kafka(api::serve::KafkaSettings {
            bootstrap_servers: bootstrap.clone(),
            replication_factor: 1,
            transactional_id: None,
            session_timeout: None,
        });
        c.topic_prefix = "restart".into();
        c.command_timeout = Duration::from_secs(5);
    })
    .await;
    let input = |i: usize| {
        let mut input = order_input(&format!("survivor-{i}"), "nia");
        input["input"]["idempotencyKey"] = json!(format!("survivor-{i}-place"));
        input
    };
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        if i == 10 {
            broker.harness("stop");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if i == 14 {
            broker.harness("start");
        }
        let body = s.gql(PLACE, input(i)).await;
        if let Some(version) = placed_version(&body) {
            assert_eq!(version, 1);
            acknowledged.push(i);
        }
    }
    assert!(
        acknowledged.len() >= 10,
        "only {} acknowledged",
        acknowledged.len()
    );
    // Every order, acknowledged or not, is placed exactly once when retried with its key.
    for i in 0..30 {
        let what = format!("order {i} succeeds after the restart");
        eventually(Duration::from_secs(120), &what, || async {
            let body = s.gql(PLACE, input(i)).await;
            let version = placed_version(&body)?;
            assert_eq!(version, 1, "order {i} was applied twice");
            Some(())
        })
        .await;
    }
    for i in acknowledged {
        let what = format!("acknowledged order {i} is read back");
        eventually(Duration::from_secs(20), &what, || async {
            let body = s
                .gql(
                    "query($id: ID!) { order(id: $id) { version } }",
                    json!({ "id": format!("survivor-{i}") }),
                )
                .await;
            (data(body)["order"]["version"] == json!(1)).then_some(())
        })
        .await;
    }
    s.stop().await;
}
