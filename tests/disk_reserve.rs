//! The disk reserve (`serve --disk-reserve-mb`): while the data directory's
//! disk has less than the reserve free, commands are refused unsent with
//! UNAVAILABLE, a retry hint and plain words, reads keep working, and once
//! there is room again commands are taken without a restart. The disk is
//! filled for real: a file allocated on the same file system.

use std::time::Duration;

use fs2::FileExt;
use serde_json::json;

use crate::on_both_backends;
use crate::support::*;

/// Room the filler leaves on either side of the reserve, so other tests
/// writing to the same disk meanwhile cannot tip it.
const MARGIN: u64 = 256 << 20;

async fn commands_wait_for_room_and_reads_go_on(backend: Backend) {
    let scratch = tempfile::tempdir().unwrap();
    let free = fs2::available_space(scratch.path()).unwrap();
    assert!(
        free > 4 * MARGIN,
        "this test needs {} MiB free on {}, and it has {} MiB",
        (4 * MARGIN) >> 20,
        scratch.path().display(),
        free >> 20
    );
    // A reserve just under what is free now: the node takes commands.
    let s = TestServer::start_on(backend, |c| {
        c.disk_reserve_bytes = free - MARGIN;
    })
    .await;
    s.wait_ready().await;
    data(s.gql(PLACE, order_input("before-full", "dee")).await);
    let (_, body) = s.ready_body().await;
    assert_eq!(body["disk"]["refusingCommands"], false, "{body}");
    assert_eq!(body["disk"]["reserveBytes"], free - MARGIN, "{body}");

    // Fill the disk past the reserve: commands are refused, unsent.
    let filler = tempfile::tempfile_in(scratch.path()).unwrap();
    filler.allocate(3 * MARGIN).unwrap();
    eventually(
        Duration::from_secs(10),
        "the node to see the disk full",
        || async {
            let (_, body) = s.ready_body().await;
            (body["disk"]["refusingCommands"] == true).then_some(())
        },
    )
    .await;
    let refused = s.gql(PLACE, order_input("while-full", "dee")).await;
    assert_eq!(
        error_code(&refused).as_deref(),
        Some("UNAVAILABLE"),
        "{refused}"
    );
    let error = &refused["errors"][0];
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("--disk-reserve-mb"), "{refused}");
    assert!(message.contains("not applied"), "{refused}");
    assert!(
        message.contains(&s.config.data_dir.display().to_string()),
        "{refused}"
    );
    assert_eq!(error["extensions"]["retryAfterMs"], 5000, "{refused}");

    // The node stays ready, says why it refuses, and serves reads.
    let (status, body) = s.ready_body().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disk"]["refusingCommands"], true, "{body}");
    let read = data(
        s.gql(
            "query($id: ID!) { order(id: $id) { status } }",
            json!({ "id": "before-full" }),
        )
        .await,
    );
    assert_eq!(read["order"]["status"], "PLACED", "{read}");
    let metrics = s.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("orderstore_data_dir_free_bytes ")),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("orderstore_data_dir_reserve_bytes {}", free - MARGIN)),
        "{metrics}"
    );
    // A rebuild, which writes a whole generation, is not started either.
    let rebuild = s
        .gql(
            r#"mutation { rebuildProjection(name: "history") { targetVersion } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&rebuild).as_deref(),
        Some("UNAVAILABLE"),
        "{rebuild}"
    );

    // Room again: the same node takes commands by itself, and the refused
    // one was never applied (placing it now is its first time).
    drop(filler);
    let placed = eventually(Duration::from_secs(10), "commands taken again", || async {
        let answer = s.gql(PLACE, order_input("while-full", "dee")).await;
        answer.get("errors").is_none().then_some(answer)
    })
    .await;
    assert_eq!(data(placed)["placeOrder"]["version"], 1);
    let (_, body) = s.ready_body().await;
    assert_eq!(body["disk"]["refusingCommands"], false, "{body}");
}

on_both_backends!(commands_wait_for_room_and_reads_go_on);
