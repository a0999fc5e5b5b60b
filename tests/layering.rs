//! Dependencies point one way (design.md section 2): the domain has no
//! async runtime, no Kafka, no sled and no web server among its dependencies.

use std::process::Command;

fn normal_dependencies_of(package: &str) -> Vec<String> {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn domain_depends_on_no_runtime_kafka_sled_or_web_crate() {
    let deps = normal_dependencies_of("domain");
    assert!(
        deps.iter().any(|d| d == "bincode"),
        "cargo tree output looks wrong: {deps:?}"
    );
    for forbidden in [
        "tokio",
        "rdkafka",
        "rdkafka-sys",
        "sled",
        "axum",
        "hyper",
        "async-graphql",
        "mio",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "domain depends on {forbidden}"
        );
    }
}
