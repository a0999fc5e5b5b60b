//! The short fault suite, as CI runs it on every submission: a few kill -9s
//! on each backend, conflicting commands, republished events, poison, the
//! fuzzer for 10,000 requests, the auth matrix, a private broker stopped,
//! killed and paused, and (as root) a full disk with the disk reserve
//! refusing commands until there is room; every invariant holds.
//! RELIABILITY.md has the long run (`orderstore chaos --kafka ...`).

use crate::support::*;

#[test]
fn the_short_fault_suite_finds_no_violation() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args([
            "chaos",
            // Every scenario but the 3-node cluster and the full disk
            // without a reserve (RELIABILITY.md has both). The full disk
            // needs root (a tmpfs); without it, it is skipped, and counted
            // so below.
            "--scenario",
            "kill9,worker-crash,conflicts,duplicates,poison,fuzz,auth,broker,two-nodes,replace,disk-full",
            "--seed",
            "7",
            "--kills",
            "3",
            "--requests",
            "10000",
            "--kafka",
        ])
        .arg(kafka_bootstrap())
        .arg("--harness")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka/kafka"))
        .arg("--json")
        .arg(&json)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    // Every scenario ran: five on both backends, two on the embedded one,
    // the broker's on a private broker, two nodes and a replacement node
    // on Kafka, and as root the full disk on both.
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let disk = if root { 2 } else { 0 };
    assert_eq!(rows.len(), 5 * 2 + 2 + 1 + 2 + disk, "{stdout}");
    assert_eq!(
        rows.iter()
            .filter(|r| r["scenario"] == "the data directory's disk full")
            .count(),
        disk,
        "{stdout}"
    );
    // Each node ran on the backend its row names: an embedded row's events
    // are its own workload's, not a shared cluster's.
    for row in rows.iter().filter(|r| r["backend"] == "embedded") {
        let (ok, events) = (row["ok"].as_u64().unwrap(), row["events"].as_u64().unwrap());
        assert!(
            events <= 2 * ok + 100,
            "more events than the workload wrote: {row}"
        );
    }
    for row in &rows {
        assert_eq!(row["violations"], serde_json::json!([]), "{row}");
        assert!(row["operations"].as_u64().unwrap() > 0, "{row}");
        assert!(row["faults"].as_u64().unwrap() > 0, "{row}");
    }
    let kills: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| {
            r["scenario"]
                .as_str()
                .unwrap()
                .starts_with("kill -9 of serve")
        })
        .collect();
    assert_eq!(kills.len(), 2);
    for row in kills {
        assert_eq!(row["faults"], 3);
        assert!(
            row["ok"].as_u64().unwrap() > 0 && row["events"].as_u64().unwrap() > 0,
            "{row}"
        );
    }
    assert!(
        stdout.contains("| scenario | backend | operations |"),
        "{stdout}"
    );
}

#[test]
fn an_unknown_scenario_is_refused() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["chaos", "--scenario", "kill9,meteor"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no scenario is called \"meteor\""),
        "{stderr}"
    );
}
