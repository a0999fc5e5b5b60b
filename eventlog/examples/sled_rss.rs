//! How much memory sled itself holds for a node's data directory, apart
//! from everything else `serve` does (issue 10's RSS question): opens every
//! sled database under the directory with the node's cache budget, and
//! prints the process's RSS after opening each, then after reading every
//! key of every tree once.
//!
//! `cargo run --release -p eventlog --example sled_rss -- <data-dir> [cache-mb]`
//! (on a stopped node's directory: sled locks its files).

use std::path::{Path, PathBuf};

use eventlog::cache::{self, CacheUse};

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .and_then(|rest| rest.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .unwrap_or(0)
        >> 10
}

fn databases(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if dir.join("conf").is_file() && dir.join("db").is_file() {
        found.push(dir.to_path_buf());
        return;
    }
    for entry in entries.flatten() {
        if entry.path().is_dir() {
            databases(&entry.path(), found);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: sled_rss <data-dir> [cache-mb]")?);
    let cache_mb: u64 = args.next().map_or(Ok(512), |a| a.parse())?;
    cache::set_budget(cache_mb << 20);
    let mut found = Vec::new();
    databases(&dir, &mut found);
    found.sort();
    println!(
        "{} sled databases under {}, cache budget {cache_mb} MiB; at start RSS {} MiB",
        found.len(),
        dir.display(),
        status("VmRSS:")
    );
    println!("| database | db file MiB | cache MiB | RSS after open MiB | anon MiB |");
    println!("|---|---|---|---|---|");
    let mut open = Vec::new();
    for path in &found {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let usage = if name.starts_with("log") {
            CacheUse::Log
        } else if name.starts_with("state") {
            CacheUse::State
        } else {
            CacheUse::Projection
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache::bytes_for(usage))
            .open()?;
        for tree in db.tree_names() {
            db.open_tree(tree)?;
        }
        let file = std::fs::metadata(path.join("db")).map_or(0, |m| m.len()) >> 20;
        println!(
            "| {name} | {file} | {} | {} | {} |",
            cache::bytes_for(usage) >> 20,
            status("VmRSS:"),
            status("RssAnon:")
        );
        open.push(db);
    }
    let mut keys = 0u64;
    // Logical bytes by database and kind of key (its leading printable
    // bytes up to a digit: a tag and a table name, or a topic), to see what
    // the bytes are.
    let mut kinds: std::collections::BTreeMap<(String, String), (u64, u64, u64)> =
        Default::default();
    for (db, path) in open.iter().zip(&found) {
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        for tree in db.tree_names() {
            for item in db.open_tree(tree)?.iter() {
                let (key, value) = item?;
                keys += 1;
                let kind: String = key
                    .iter()
                    .take_while(|b| b.is_ascii_graphic() && !b.is_ascii_digit())
                    .take(24)
                    .map(|&b| b as char)
                    .collect();
                let entry = kinds.entry((name.clone(), kind)).or_default();
                entry.0 += 1;
                entry.1 += key.len() as u64;
                entry.2 += value.len() as u64;
            }
        }
    }
    println!("| database | kind of key | entries | key MiB | value MiB | bytes per entry |");
    println!("|---|---|---|---|---|---|");
    for ((db, kind), (n, k, v)) in &kinds {
        println!(
            "| {db} | {kind} | {n} | {:.1} | {:.1} | {} |",
            *k as f64 / 1048576.0,
            *v as f64 / 1048576.0,
            (k + v) / n.max(&1)
        );
    }
    println!(
        "after reading all {keys} keys once: RSS {} MiB (anon {} MiB), peak {} MiB",
        status("VmRSS:"),
        status("RssAnon:"),
        status("VmHWM:")
    );
    Ok(())
}
