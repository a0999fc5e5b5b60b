//! `orderstore export`: CloudEvents JSON lines that the CloudEvents SDK
//! reads back, through the running server and straight from the log, with
//! filters, `--follow`, bad flags refused, and a full disk that leaves only
//! whole lines.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use crate::sinks::place;

const PLACED: &str = "com.orderstore.order.placed";
use crate::support::*;

/// Parses every line with the CloudEvents SDK; answers (subject, sequence, type) per line.
fn parse(output: &str) -> Vec<(String, u64, String)> {
    output
        .lines()
        .map(|line| {
            let event: cloudevents::Event = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a CloudEvent ({e}): {line}"));
            use cloudevents::AttributesReader;
            let sequence = event
                .extension("sequence")
                .unwrap()
                .to_string()
                .parse()
                .unwrap();
            assert_eq!(event.datacontenttype(), Some("application/json"));
            assert!(event.data().is_some());
            (
                event.subject().unwrap().to_owned(),
                sequence,
                event.ty().to_owned(),
            )
        })
        .collect()
}

/// Each order's events come whole and in order.
fn check_orders(events: &[(String, u64, String)], expected: &BTreeMap<String, u64>) {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (order, sequence, _) in events {
        let previous = last.entry(order.as_str()).or_insert(0);
        assert_eq!(*sequence, *previous + 1, "{order}: {events:?}");
        *previous = *sequence;
    }
    for (order, count) in expected {
        assert_eq!(last.get(order.as_str()), Some(count), "{order}");
    }
}

async fn run(args: Vec<String>, dir: std::path::PathBuf) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        orderstore(&args, &dir)
    })
    .await
    .unwrap()
}

fn ok(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn export_writes_cloudevents_in_order_per_order(backend: Backend) {
    let server = TestServer::start_on(backend, |_| {}).await;
    let expected = place(&server, "exp", 6).await;
    let total: u64 = expected.values().sum();
    let dir = server.dir.path().to_path_buf();
    // Through the server that owns the data directory.
    let all = parse(&ok(&run(vec!["export".into()], dir.clone()).await));
    assert_eq!(all.len() as u64, total);
    check_orders(&all, &expected);
    let placed = parse(&ok(&run(
        vec!["export".into(), "--type".into(), "OrderPlaced".into()],
        dir.clone(),
    )
    .await));
    assert_eq!(placed.len(), 6);
    assert!(placed.iter().all(|(_, _, t)| t == PLACED));
    let two = parse(&ok(&run(
        vec![
            "export".into(),
            "--type".into(),
            "com.orderstore.order.placed,InventoryReserved".into(),
        ],
        dir.clone(),
    )
    .await));
    assert_eq!(two.len(), 6 + 3);
    let one = parse(&ok(&run(
        vec!["export".into(), "--order".into(), "exp-0".into()],
        dir.clone(),
    )
    .await));
    assert_eq!(one.len(), 3);
    check_orders(&one, &BTreeMap::from([("exp-0".to_owned(), 3)]));
    let future = parse(&ok(&run(
        vec![
            "export".into(),
            "--since".into(),
            "2999-01-01T00:00:00Z".into(),
        ],
        dir.clone(),
    )
    .await));
    assert!(future.is_empty());
    let past = parse(&ok(&run(
        vec![
            "export".into(),
            "--until".into(),
            "2000-01-01T00:00:00Z".into(),
        ],
        dir.clone(),
    )
    .await));
    assert!(past.is_empty());

    // --follow keeps writing new events until stopped.
    let mut follow = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["export", "--follow", "--type", "OrderPlaced", "--data-dir"])
        .arg(&dir)
        .env_remove("ORDERSTORE_KAFKA")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    for _ in 0..6 {
        tokio::time::timeout(Duration::from_secs(30), lines.recv())
            .await
            .unwrap()
            .unwrap();
    }
    place(&server, "later", 1).await;
    let line = tokio::time::timeout(Duration::from_secs(30), lines.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parse(&line)[0].0, "later-0");
    follow.kill().unwrap();
    follow.wait().unwrap();

    // Straight from the log: the same events.
    let direct = match backend {
        Backend::Embedded => {
            let dir = server.stop().await;
            let output = ok(&run(vec!["export".into()], dir.path().to_path_buf()).await);
            drop(dir);
            output
        }
        Backend::Kafka => {
            let prefix = server.config.topic_prefix.clone();
            let empty = tempfile::tempdir().unwrap();
            let output = ok(&run(
                vec![
                    "export".into(),
                    "--kafka".into(),
                    kafka_bootstrap(),
                    "--topic-prefix".into(),
                    prefix,
                ],
                empty.path().to_path_buf(),
            )
            .await);
            server.stop().await;
            output
        }
    };
    let mut direct = parse(&direct);
    let mut expected_all = all.clone();
    expected_all.extend([
        ("later-0".into(), 1, PLACED.into()),
        (
            "later-0".into(),
            2,
            "com.orderstore.inventory.reserved".into(),
        ),
        (
            "later-0".into(),
            3,
            "com.orderstore.payment.confirmed".into(),
        ),
    ]);
    direct.sort();
    expected_all.sort();
    assert_eq!(direct, expected_all);
}

crate::on_both_backends!(export_writes_cloudevents_in_order_per_order);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_export_flags_are_refused() {
    let server = TestServer::start().await;
    let dir = server.dir.path().to_path_buf();
    for (flags, expected) in [
        (vec!["--since", "yesterday"], "is not an RFC 3339 time"),
        (vec!["--type", "OrderLost"], "is not an event type"),
        (
            vec![
                "--since",
                "2026-02-01T00:00:00Z",
                "--until",
                "2026-01-01T00:00:00Z",
            ],
            "is after --until",
        ),
        (vec!["--order", "no spaces allowed"], "--order"),
    ] {
        let mut args = vec!["export".to_owned()];
        args.extend(flags.iter().map(|f| f.to_string()));
        let output = run(args, dir.clone()).await;
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
    server.stop().await;
    let missing = tempfile::tempdir().unwrap();
    let output = run(vec!["export".into()], missing.path().join("nothing")).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no embedded log"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_to_a_full_disk_stops_with_an_error_and_keeps_whole_lines() {
    let server = TestServer::start().await;
    place(&server, "full", 120).await; // 240 events, about 150 KiB of lines
                                       // Through the server (which is not under the limit): only the export's file is.
    let dir = &server.dir;
    let out = dir.path().join("events.jsonl");
    // A file size limit stands in for a full disk: writes past 96 KiB fail
    // (EFBIG, with SIGXFSZ ignored) as they would with ENOSPC.
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 96; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_orderstore"))
        .args(["export", "--output"])
        .arg(&out)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("ORDERSTORE_KAFKA")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("whole lines"),
        "{stderr}"
    );
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(!written.is_empty(), "nothing was kept");
    assert!(written.ends_with('\n'), "a half-written last line");
    let events = parse(&written);
    assert!(
        events.len() < 240,
        "{} lines fit under the limit",
        events.len()
    );
    // With room again, the whole export goes through.
    let again = run(
        vec![
            "export".into(),
            "--output".into(),
            out.display().to_string(),
        ],
        dir.path().to_path_buf(),
    )
    .await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(parse(&std::fs::read_to_string(&out).unwrap()).len(), 240);
    server.stop().await;
}
