//! `orderstore bench queries` end to end on a small data set: it loads
//! through the write path, drives every query with wrk and open loop,
//! checks every answer, and reports each figure beside its peers. The
//! figures themselves are not asserted (targets are the bench's business);
//! that every one was measured, and that bad flags are clear errors, is.

use std::process::{Command, Output};

use serde_json::Value;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["bench", "queries"])
        .args(args)
        .env_remove("ORDERSTORE_KAFKA")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// wrk as scripts/test provides it; under CI its absence is a failure.
fn wrk() -> Option<String> {
    match std::env::var("ORDERSTORE_WRK") {
        Ok(path) => Some(path),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("ORDERSTORE_WRK is not set: scripts/test fetches wrk with scripts/wrk")
        }
        Err(_) => {
            eprintln!("skipped: ORDERSTORE_WRK is not set (run through scripts/test)");
            None
        }
    }
}

#[test]
fn every_query_and_peer_is_measured_with_checked_answers() {
    let Some(wrk) = wrk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("queries.json");
    let output = bench(&[
        "--orders",
        "30",
        "--duration",
        "1",
        "--rounds",
        "1",
        "--connections",
        "4",
        "--wrk",
        &wrk,
        "--json",
        json.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let queries = report["queries"].as_array().unwrap();
    let names: Vec<&str> = queries
        .iter()
        .map(|q| q["query"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "__typename",
            "static axum",
            "order",
            "order asOf",
            "orderHistory",
            "customer",
            "finance"
        ]
    );
    for query in queries {
        assert!(
            query["requests_per_second"].as_f64().unwrap() > 0.0,
            "{query}"
        );
        if let Some(open) = query["open_loop"].as_object() {
            assert!(open["p99_ms_at_25"].as_f64().unwrap() > 0.0, "{query}");
            assert!(open["p99_ms_at_70"].as_f64().unwrap() > 0.0, "{query}");
        }
    }
    assert!(report["raw_sled_gets_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["rss_bytes"]["peak_serving"].as_u64().unwrap() > 0);
    assert!(report["disk_ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(report["targets"].as_array().unwrap().len(), 7);
    assert!(
        stdout.contains("raw sled get") && stdout.contains("disk:"),
        "{stdout}"
    );
}

#[test]
fn a_missing_load_tool_and_bad_flags_are_clear_errors_before_any_load() {
    let output = bench(&["--orders", "30", "--wrk", "/nonexistent/wrk"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot run /nonexistent/wrk (install Debian's `wrk`"),
        "{stderr}"
    );
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert!(!stdout.contains("loading"), "{stdout}");
    let output = bench(&["--orders", "5"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--orders"), "{stderr}");
}
