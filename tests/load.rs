//! `orderstore load` as a load tool: it keeps going past errors and counts
//! them by code, runs for a duration or an open-loop rate, exits non-zero
//! only when `--max-errors` asks, and never prints a backtrace.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::TestServer;

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .arg("load")
        .args(args)
        .env_remove("ORDERSTORE_AUTH_TOKEN")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn texts(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_places_every_order_and_reports_it() {
    let s = TestServer::start().await;
    let output = load(&["--url", &s.url, "--orders", "12", "--concurrency", "4"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("12 orders started, 12 completed") && stdout.contains(" 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("p99.9"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_by_code_and_fail_the_run_only_past_max_errors() {
    let s = TestServer::start_with(|c| c.auth_token = Some("secret".into())).await;
    // Without the token every order's first command is refused: counted, not fatal.
    let output = load(&["--url", &s.url, "--orders", "5", "--concurrency", "2"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("5 orders started, 0 completed"), "{stdout}");
    assert!(stdout.contains("errors by code: HTTP_401 5"), "{stdout}");
    assert!(!stderr.contains("backtrace"), "{stderr}");

    let output = load(&["--url", &s.url, "--orders", "3", "--max-errors", "2"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("3 commands failed, more than --max-errors 2"),
        "{stderr}"
    );

    // With the token, the same run is clean and --max-errors 0 holds.
    let output = load(&[
        "--url",
        &s.url,
        "--orders",
        "3",
        "--max-errors",
        "0",
        "--auth-token",
        "secret",
    ]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("3 completed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_for_a_duration_stops_on_time() {
    let s = TestServer::start().await;
    let started = Instant::now();
    let output = load(&["--url", &s.url, "--duration", "1", "--rate", "20"]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    // About 20 orders in one second; allow for a slow machine.
    let started_orders: u64 = stdout
        .split(" orders started")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout}"));
    assert!((5..=25).contains(&started_orders), "{stdout}");
}

#[test]
fn an_unreachable_server_and_bad_flags_are_clear_errors_without_backtraces() {
    let output = load(&["--url", "http://127.0.0.1:1/graphql", "--orders", "1"]);
    let (stdout, stderr) = texts(&output);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("does not answer"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");

    for (flag, value, says) in [
        ("--rate", "0", "--rate must be a positive number"),
        ("--duration", "0", "--duration must be a positive number"),
        ("--concurrency", "0", "--concurrency"),
    ] {
        let output = load(&["--url", "http://127.0.0.1:1/graphql", flag, value]);
        let (_, stderr) = texts(&output);
        assert!(!output.status.success(), "{flag} {value}");
        assert!(stderr.contains(says), "{flag} {value}: {stderr}");
        assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    }
}
