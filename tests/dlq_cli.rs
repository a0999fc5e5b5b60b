//! `orderstore dlq`: list, show, retry and discard dead letters, from a
//! stopped server's files and through a running server, on both backends;
//! discarding needs an explicit --confirm.

use std::process::Output;
use std::time::Duration;

use commands::Topics;
use eventlog::{OutgoingRecord, Record};
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

fn dlq(args: &[&str], dir: &std::path::Path) -> Output {
    orderstore(&[&["dlq"], args].concat(), dir)
}

fn dlq_ok(args: &[&str], dir: &std::path::Path) -> String {
    orderstore_ok(&[&["dlq"], args].concat(), dir)
}

on_both_backends!(
    dead_letters_are_handled_from_a_stopped_servers_files,
    dead_letters_are_handled_through_a_running_server,
);

async fn dead_letters_are_handled_from_a_stopped_servers_files(backend: Backend) {
    dead_letters_are_listed_shown_retried_and_discarded(backend, false).await;
}

async fn dead_letters_are_handled_through_a_running_server(backend: Backend) {
    dead_letters_are_listed_shown_retried_and_discarded(backend, true).await;
}

async fn dead_letters_are_listed_shown_retried_and_discarded(backend: Backend, running: bool) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let garbage = OutgoingRecord {
        topic: Topics::new(&s.config.topic_prefix).events,
        partition: Some(0),
        record: Record {
            key: b"junk-1".to_vec(),
            value: Some(vec![9, 9, 9]),
            headers: vec![],
            timestamp_ms: 0,
        },
    };
    let position = append_eventually(s.server().log.as_ref(), vec![garbage]).await[0];
    let projections = projections::names().len();
    let letters = eventually(
        Duration::from_secs(5),
        "a dead letter per projection",
        || async {
            let letters = data(s.gql("{ deadLetters { id } }", json!({})).await);
            (letters["deadLetters"].as_array().unwrap().len() == projections).then_some(letters)
        },
    )
    .await;
    assert_eq!(
        letters["deadLetters"].as_array().unwrap().len(),
        projections,
        "one per projection"
    );
    let at = format!("{}:{}", position.partition, position.offset);
    let dir = s.dir.path().to_path_buf();
    // Kept to the end: the running server, or the stopped one's directory.
    let (server, _files) = if running {
        (Some(s), None)
    } else {
        (None, Some(s.stop().await))
    };

    let listed = dlq_ok(&["list"], &dir);
    assert_eq!(
        listed.lines().count(),
        projections,
        "one per projection: {listed}"
    );
    assert!(
        listed
            .lines()
            .all(|l| l.contains(&at) && l.contains("junk-1")),
        "{listed}"
    );
    let shown: Value = serde_json::from_str(&dlq_ok(&["show", "history", &at], &dir)).unwrap();
    assert_eq!(
        (shown["payloadHex"].as_str(), shown["orderId"].as_str()),
        (Some("090909"), Some("junk-1"))
    );

    assert!(dlq_ok(&["retry", "history"], &dir).contains("0 applied, 1 still parked"));
    let refused = dlq(&["discard", "history", &at], &dir);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--confirm"));
    dlq_ok(&["discard", "history", &at, "--confirm"], &dir);
    assert_eq!(dlq_ok(&["list", "--projection", "history"], &dir), "");
    assert!(!dlq(&["show", "nope", &at], &dir).status.success());
    let missing = dlq(&["discard", "history", &at, "--confirm"], &dir);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no dead letter at"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let asked = dlq(&["list"], &dir);
    if running {
        // Every command above went through the server (its files are locked).
        let server = server.unwrap();
        let left = data(server.gql("{ deadLetters { id } }", json!({})).await);
        assert_eq!(
            left["deadLetters"].as_array().unwrap().len(),
            projections - 1,
            "{left}"
        );
        server.stop().await;
    }
    assert!(asked.status.success());
}
