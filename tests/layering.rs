//! Dependencies point one way (design.md section 2): the domain has no
//! async runtime, no Kafka, no sled and no web server among its dependencies;
//! each crate names only the crates above it; the API carries no CLI concerns.

use std::process::Command;

fn normal_dependencies_of(package: &str) -> Vec<String> {
    tree_of(package, &[])
}

/// `cargo tree` of `package`'s normal dependencies, one package name a line.
fn tree_of(package: &str, extra: &[&str]) -> Vec<String> {
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
        .args(extra)
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

/// The crates a package names directly (its own manifest, normal deps).
fn direct_dependencies_of(package: &str) -> Vec<String> {
    // The first line is the package itself.
    tree_of(package, &["--depth", "1"])
        .into_iter()
        .skip(1)
        .collect()
}

#[test]
fn each_crate_names_only_the_crates_above_it() {
    let order = [
        "domain",
        "eventlog",
        "commands",
        "projections",
        "replay",
        "api",
    ];
    for (index, package) in order.iter().enumerate() {
        let deps = direct_dependencies_of(package);
        for later in &order[index..] {
            assert!(
                !deps.iter().any(|d| d == later),
                "{package} depends on {later}, listed at or below it: {deps:?}"
            );
        }
    }
}

#[test]
fn the_api_holds_no_http_client_progress_bars_or_workload_generator() {
    let deps = direct_dependencies_of("api");
    assert!(deps.iter().any(|d| d == "axum"), "{deps:?}");
    for forbidden in ["reqwest", "indicatif", "rand", "clap"] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "api depends on {forbidden}: CLI concerns live in src/cli"
        );
    }
}

/// Every Rust source file of the workspace (crates, binary, tests), but
/// not the build output.
fn workspace_sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                workspace_sources(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_code_calls_sleds_flush_async_but_through_eventlog_flush() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    workspace_sources(root, &mut sources);
    assert!(sources.len() > 50, "{}", sources.len());
    let call = [".flush", "_async("].concat();
    let offenders: Vec<_> = sources
        .iter()
        .filter(|path| {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .contains(&call)
        })
        .map(|path| path.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        offenders.is_empty(),
        "sled's flush_async can hang the process (eventlog/src/flush.rs says why); use eventlog::flush::flush in {offenders:?}"
    );
}
