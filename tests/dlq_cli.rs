//! `orderstore dlq`: list, show, retry and discard dead letters of a stopped
//! server's read models; discarding needs an explicit --confirm.

use std::process::{Command, Output};
use std::time::Duration;

use eventlog::topics::Topics;
use eventlog::{OutgoingRecord, Record};
use serde_json::{json, Value};

use crate::support::*;

fn dlq(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .arg("dlq")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("ORDERSTORE_KAFKA")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_retried_and_discarded_from_the_command_line() {
    let s = TestServer::start().await;
    let garbage = OutgoingRecord {
        topic: Topics::default().events,
        partition: Some(0),
        record: Record {
            key: b"junk-1".to_vec(),
            value: Some(vec![9, 9, 9]),
            headers: vec![],
            timestamp_ms: 0,
        },
    };
    let mut appended = s.server().log.append(vec![garbage.clone()]).await;
    while appended.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
        appended = s.server().log.append(vec![garbage.clone()]).await;
    }
    let position = appended.unwrap()[0];
    let mut letters = Value::Null;
    for _ in 0..100 {
        letters = data(
            s.gql("{ deadLetters(projection: \"history\") { id } }", json!({}))
                .await,
        );
        if !letters["deadLetters"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(letters["deadLetters"].as_array().unwrap().len(), 1);
    let dir = s.stop().await;
    let at = format!("{}:{}", position.partition, position.offset);

    let listed = stdout(&dlq(&["list"], dir.path()));
    assert_eq!(listed.lines().count(), 3, "one per projection: {listed}");
    assert!(
        listed
            .lines()
            .all(|l| l.contains(&at) && l.contains("junk-1")),
        "{listed}"
    );
    let shown: Value =
        serde_json::from_str(&stdout(&dlq(&["show", "history", &at], dir.path()))).unwrap();
    assert_eq!(
        (shown["payloadHex"].as_str(), shown["orderId"].as_str()),
        (Some("090909"), Some("junk-1"))
    );

    assert!(stdout(&dlq(&["retry", "history"], dir.path())).contains("0 applied, 1 still parked"));
    let refused = dlq(&["discard", "history", &at], dir.path());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--confirm"));
    stdout(&dlq(&["discard", "history", &at, "--confirm"], dir.path()));
    assert_eq!(
        stdout(&dlq(&["list", "--projection", "history"], dir.path())),
        ""
    );
    assert!(!dlq(&["show", "nope", &at], dir.path()).status.success());
}
