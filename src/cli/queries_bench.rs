//! `orderstore bench queries`: the read path as clients drive it. N orders
//! go through the real write path (`load` against a `serve` child process),
//! then a fresh `serve` on the same data directory answers the queries:
//! closed loop with wrk (a Lua script checks every body for `errors`), and
//! open loop at 25% and 70% of each query's own saturation rate with an HDR
//! histogram of latency from each request's intended start (wrk has no
//! fixed-rate mode and Debian packages no wrk2). Peers in the same run,
//! interleaved: GraphQL `{ __typename }`, a static axum handler answering a
//! body of the point read's size, and raw sled gets of the same state rows.
//! Also the server's RSS (peak and after load) and its bytes on disk over
//! the logical bytes of its stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Datelike, Utc};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::load::{self, LoadConfig};

#[derive(Debug, Clone)]
pub struct Options {
    pub orders: u64,
    pub duration: f64,
    pub rounds: usize,
    pub connections: u64,
    pub wrk: PathBuf,
    pub json: Option<PathBuf>,
}

/// Distinct request bodies each query cycles through.
const SAMPLES: usize = 500;

/// One kind of request the bench sends.
#[derive(Debug, Clone)]
struct Target {
    name: &'static str,
    /// The URL wrk and the open-loop driver post to.
    url: String,
    bodies: Vec<String>,
    /// Open-loop latencies are measured for it, at shares of this query's
    /// saturation rate (its own; the static peer takes the point read's, so
    /// it shows what the load tool and HTTP alone add at those rates).
    open_loop: Option<&'static str>,
}

/// A `serve` child process on a data directory.
struct ServeChild {
    child: Child,
    base: String,
}

impl ServeChild {
    fn start(data_dir: &Path, log: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let stderr = std::fs::File::create(log)?;
        let child = Command::new(std::env::current_exe()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("ORDERSTORE_KAFKA")
            .env_remove("ORDERSTORE_AUTH_TOKEN")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("cannot start `orderstore serve`")?;
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    async fn wait_ready(&mut self, http: &reqwest::Client, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("`orderstore serve` exited early ({status})");
            }
            let ready = http.get(format!("{}/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("`orderstore serve` was not ready within {within:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (peak, current) resident set size in bytes, from /proc.
    fn rss(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn graphql_body(query: &str, variables: Value) -> String {
    json!({ "query": query, "variables": variables }).to_string()
}

/// The Lua script wrk runs: cycles through the bodies, counts answers that
/// are not 200 or carry `errors`, and prints one line wrk's caller reads.
fn wrk_script(bodies: &[String]) -> String {
    let mut script = String::from("bodies = {\n");
    for body in bodies {
        script.push_str("[==[");
        script.push_str(body);
        script.push_str("]==],\n");
    }
    script.push_str(
        r#"}
bad = 0
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    bad = bad + 1
  end
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + thread:get("bad") end
  local e = summary.errors
  io.write(string.format("ORDERSTORE-WRK %d %d %d %d\n", summary.requests, summary.duration,
    failed, e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
    );
    script
}

/// One closed-loop wrk run: requests per second.
fn wrk_run(
    wrk: &Path,
    script: &Path,
    url: &str,
    connections: u64,
    seconds: f64,
) -> anyhow::Result<f64> {
    let out = Command::new(wrk)
        .args(["-t1", "-c", &connections.to_string()])
        .arg(format!("-d{}s", seconds.ceil().max(1.0) as u64))
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} (install Debian's `wrk`, or name it with --wrk)",
                wrk.display()
            )
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("ORDERSTORE-WRK "))
    else {
        bail!(
            "wrk printed no summary: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    let [requests, duration_us, bad, socket_errors] = numbers[..] else {
        bail!("cannot read wrk's summary `{line}`");
    };
    if bad > 0 || socket_errors > 0 {
        bail!("{url}: {bad} of {requests} answers were not 200 or carried errors, {socket_errors} socket errors");
    }
    if requests == 0 {
        bail!("{url}: wrk sent no request");
    }
    Ok(requests as f64 / (duration_us as f64 / 1e6).max(1e-9))
}

/// Connections the open-loop driver keeps (enough for 70% of saturation
/// at several milliseconds each).
const OPEN_LOOP_CONNECTIONS: usize = 64;

/// One open-loop run at `rate` requests per second: latency (µs) of each
/// request from its intended start, so a stalled server is not hidden
/// (no coordinated omission). The schedule runs on its own thread with the
/// OS's sleep (tokio's timer ticks in milliseconds, which would add up to
/// one to every latency); the requests go out from a single-threaded
/// runtime on another thread over a fixed set of connections.
fn open_loop(target: &Target, rate: f64, seconds: f64) -> anyhow::Result<Histogram<u64>> {
    let total = (rate * seconds).max(1.0) as u64;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let bodies = target.bodies.clone();
    let url = target.url.clone();
    let name = target.name;
    let sender = std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(OPEN_LOOP_CONNECTIONS)
                .build()?;
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            let bodies = Arc::new(bodies);
            let failed = Arc::new(AtomicU64::new(0));
            let mut workers = tokio::task::JoinSet::new();
            for _ in 0..OPEN_LOOP_CONNECTIONS {
                let (http, rx, bodies, failed, url) = (
                    http.clone(),
                    rx.clone(),
                    bodies.clone(),
                    failed.clone(),
                    url.clone(),
                );
                workers.spawn(async move {
                    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    loop {
                        let next = rx.lock().await.recv().await;
                        let Some((intended, i)) = next else { break };
                        let answer = http
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[i % bodies.len()].clone())
                            .send()
                            .await;
                        let ok = match answer {
                            Ok(response) if response.status().is_success() => response
                                .bytes()
                                .await
                                .is_ok_and(|b| !b.windows(8).any(|w| w == b"\"errors\"")),
                            _ => false,
                        };
                        if !ok {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        histogram.record((intended.elapsed().as_micros() as u64).max(1))?;
                    }
                    anyhow::Ok(histogram)
                });
            }
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
            while let Some(worker) = workers.join_next().await {
                histogram.add(worker??)?;
            }
            let failed = failed.load(Ordering::Relaxed);
            if failed > 0 {
                bail!(
                    "{name}: {failed} of {total} open-loop answers were not 200 or carried errors"
                );
            }
            Ok(histogram)
        })
    });
    let start = Instant::now();
    for i in 0..total {
        let intended = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        if tx.send((intended, i as usize)).is_err() {
            break;
        }
    }
    drop(tx);
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the open-loop driver panicked"))?
}

/// A static axum handler answering `body` to every POST: the HTTP ceiling.
async fn static_peer(body: String) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let body = Arc::new(body);
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    (*body).clone(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/graphql", listener.local_addr()?);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

/// Every sled database under `dir` (a directory holding `conf` and `db`).
fn sled_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("conf").is_file() && dir.join("db").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                sled_dirs(&entry.path(), out);
            }
        }
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                total += disk_bytes(&path);
            } else if let Ok(meta) = entry.metadata() {
                total += meta.len();
            }
        }
    }
    total
}

/// The keys and values in every sled database of a stopped server's data
/// directory: what its log, state store and read models hold.
fn logical_bytes(data_dir: &Path) -> anyhow::Result<u64> {
    let mut dirs = Vec::new();
    sled_dirs(data_dir, &mut dirs);
    let mut total = 0u64;
    for dir in dirs {
        let db = sled::Config::new().path(&dir).open()?;
        for name in db.tree_names() {
            for entry in db.open_tree(&name)?.iter() {
                let (key, value) = entry?;
                total += (key.len() + value.len()) as u64;
            }
        }
    }
    Ok(total)
}

/// Copies the current state rows of `ids` from the served history store
/// into a fresh sled database keyed by order id: the raw peer's rows.
fn raw_rows(data_dir: &Path, ids: &[String], into: &Path) -> anyhow::Result<sled::Tree> {
    let generation = projections::serving::generation::current_generation(data_dir, "history");
    let dir = projections::serving::generation::generation_dir(data_dir, "history", generation);
    let store = projections::ProjectionStore::open(&dir)?;
    let raw = sled::Config::new()
        .path(into)
        .cache_capacity(128 << 20)
        .open()?;
    let tree = raw.open_tree("rows")?;
    for id in ids {
        let row = projections::history::current_state_row(&store, id)?
            .with_context(|| format!("order {id} has no state row"))?;
        tree.insert(id.as_bytes(), row)?;
    }
    raw.flush()?;
    Ok(tree)
}

/// Raw sled gets per second of the rows, one thread, for `seconds`.
fn raw_gets(tree: &sled::Tree, ids: &[String], seconds: f64) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut gets = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for id in ids.iter().take(100) {
            let row = tree.get(id.as_bytes())?;
            std::hint::black_box(row);
            gets += 1;
        }
    }
    Ok(gets as f64 / start.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The orders the point reads ask for: `load` names its orders
/// `load-<run>-<index>`.
fn sample_order_ids(run: &str, orders: u64) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(7);
    (0..SAMPLES)
        .map(|_| format!("load-{run}-{}", rng.random_range(0..orders)))
        .collect()
}

fn targets(
    url: &str,
    order_ids: &[String],
    orders: u64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<Target> {
    let customers = (orders / 5).max(10);
    let span = (to - from).num_microseconds().unwrap_or(1).max(1);
    let bodies = |f: &mut dyn FnMut(usize, &mut StdRng) -> String| -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(11);
        (0..SAMPLES).map(|i| f(i, &mut rng)).collect()
    };
    const ORDER: &str = "query($id: ID!) { order(id: $id) { id status paymentStatus total { amount currency } captured { amount } version updatedAt } }";
    const ORDER_AS_OF: &str = "query($id: ID!, $at: DateTime) { order(id: $id, asOf: $at) { id status paymentStatus total { amount currency } captured { amount } version updatedAt } }";
    const HISTORY: &str = "query($id: ID!) { orderHistory(id: $id, first: 10) { edges { cursor node { type time sequence } } pageInfo { hasNextPage } } }";
    const CUSTOMER: &str = "query($id: ID!) { customer(id: $id) { id orderCount openOrders lifetimeValue { amount currency } orders(first: 10) { edges { node { id status total { amount } } } } } }";
    const FINANCE: &str = "query($from: Date!, $to: Date!) { finance(from: $from, to: $to) { rows { date currency ordersPlaced gross { amount } net { amount } } totals { currency net { amount } } } }";
    let target = |name: &'static str, bodies, open_loop: bool| Target {
        name,
        url: url.to_owned(),
        bodies,
        open_loop: open_loop.then_some(name),
    };
    let month_start = from.date_naive().with_day0(0).unwrap_or(from.date_naive());
    let month_end = month_start + chrono::Months::new(1) - chrono::Days::new(1);
    vec![
        target(
            "__typename",
            vec![graphql_body("{ __typename }", json!({}))],
            false,
        ),
        target(
            "order",
            bodies(&mut |i, _| graphql_body(ORDER, json!({ "id": order_ids[i] }))),
            true,
        ),
        target(
            "order asOf",
            bodies(&mut |i, rng| {
                let at = from + chrono::Duration::microseconds(rng.random_range(0..span));
                graphql_body(
                    ORDER_AS_OF,
                    json!({ "id": order_ids[i], "at": at.to_rfc3339() }),
                )
            }),
            true,
        ),
        target(
            "orderHistory",
            bodies(&mut |i, _| graphql_body(HISTORY, json!({ "id": order_ids[i] }))),
            true,
        ),
        target(
            "customer",
            bodies(&mut |_, rng| {
                let id = format!("customer-{}", rng.random_range(0..customers));
                graphql_body(CUSTOMER, json!({ "id": id }))
            }),
            true,
        ),
        target(
            "finance",
            vec![graphql_body(
                FINANCE,
                json!({ "from": month_start.to_string(), "to": month_end.to_string() }),
            )],
            true,
        ),
    ]
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    // A missing load tool is found before minutes of loading, not after.
    Command::new(&options.wrk)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| {
            format!(
                "cannot run {} (install Debian's `wrk`, or name it with --wrk)",
                options.wrk.display()
            )
        })?;
    let scratch = tempfile::tempdir()?;
    let data_dir = scratch.path().join("node");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(256)
        .build()?;

    // 1. Load through the write path.
    let mut loader = ServeChild::start(&data_dir, &scratch.path().join("serve-load.log"))?;
    loader.wait_ready(&http, Duration::from_secs(120)).await?;
    println!(
        "loading {} orders through serve (embedded) ...",
        options.orders
    );
    let from = Utc::now();
    let report = load::run(
        LoadConfig {
            url: format!("{}/graphql", loader.base),
            orders: Some(options.orders),
            duration: None,
            rate: None,
            concurrency: 64,
            auth_token: None,
            seed: 1,
        },
        std::future::pending::<()>(),
    )
    .await?;
    let to = Utc::now();
    if report.error_count() > 0 {
        bail!("the load met errors, so the read figures would be of another data set: {report}");
    }
    println!("{report}");
    // Wait until the read models hold every event, then stop.
    loader.wait_ready(&http, Duration::from_secs(600)).await?;
    let (load_peak_rss, _) = loader.rss();
    loader.stop()?;

    // 2. Sizes and the raw peer's rows, from the stopped server's files.
    let disk = disk_bytes(&data_dir);
    let logical = logical_bytes(&data_dir)?;
    let order_ids = sample_order_ids(&report.run_id, options.orders);
    let raw = raw_rows(&data_dir, &order_ids, &scratch.path().join("raw"))?;

    // 3. A fresh server on the loaded data answers the queries.
    let mut server = ServeChild::start(&data_dir, &scratch.path().join("serve-read.log"))?;
    let started = Instant::now();
    server.wait_ready(&http, Duration::from_secs(600)).await?;
    let ready_after = started.elapsed();
    let url = format!("{}/graphql", server.base);
    let mut targets = targets(&url, &order_ids, options.orders, from, to);
    let sample = http
        .post(&url)
        .header("content-type", "application/json")
        .body(targets[1].bodies[0].clone())
        .send()
        .await?
        .text()
        .await?;
    if sample.contains("\"errors\"") || !sample.contains("\"order\":{") {
        bail!("the point read does not answer an order: {sample}");
    }
    let (static_url, static_task) = static_peer(sample.clone()).await?;
    targets.insert(
        1,
        Target {
            name: "static axum",
            url: static_url,
            bodies: vec![targets[1].bodies[0].clone()],
            open_loop: Some("order"),
        },
    );
    let scripts: Vec<PathBuf> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = scratch.path().join(format!("query-{i}.lua"));
            std::fs::write(&path, wrk_script(&t.bodies)).map(|_| path)
        })
        .collect::<Result<_, _>>()?;

    // 4. Rounds: round 0 is the warm-up.
    let mut closed: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut raw_rounds = Vec::new();
    for round in 0..=options.rounds {
        for (target, script) in targets.iter().zip(&scripts) {
            let wrk = options.wrk.clone();
            let (script, url, connections, seconds) = (
                script.clone(),
                target.url.clone(),
                options.connections,
                options.duration,
            );
            let rate = tokio::task::spawn_blocking(move || {
                wrk_run(&wrk, &script, &url, connections, seconds)
            })
            .await??;
            if round > 0 {
                closed.entry(target.name).or_default().push(rate);
            }
        }
        let gets = raw_gets(&raw, &order_ids, options.duration / 2.0)?;
        if round > 0 {
            raw_rounds.push(gets);
        }
        println!(
            "round {round} done{}",
            if round == 0 { " (warm-up)" } else { "" }
        );
    }
    let saturation: BTreeMap<&str, f64> = closed
        .iter()
        .map(|(name, rates)| (*name, median(rates.clone())))
        .collect();

    // 5. Open loop at 25% and 70% of each query's saturation, interleaved.
    let mut open: BTreeMap<(&str, u32), Vec<(f64, f64)>> = BTreeMap::new();
    for _ in 0..options.rounds {
        for target in &targets {
            let Some(rate_of) = target.open_loop else {
                continue;
            };
            for share in [25u32, 70] {
                let rate = saturation[rate_of] * f64::from(share) / 100.0;
                let (sent, seconds) = (target.clone(), options.duration);
                let histogram =
                    tokio::task::spawn_blocking(move || open_loop(&sent, rate.max(1.0), seconds))
                        .await??;
                let ms = |q| histogram.value_at_quantile(q) as f64 / 1000.0;
                open.entry((target.name, share))
                    .or_default()
                    .push((ms(0.5), ms(0.99)));
            }
        }
    }
    let (peak_rss, rss_after) = server.rss();
    static_task.abort();
    server.stop()?;

    // 6. The table.
    let stat = saturation["static axum"];
    let current = saturation["order"];
    let open_ms = |name: &str, share: u32, p99: bool| {
        median(
            open.get(&(name, share))
                .map(|v| {
                    v.iter()
                        .map(|(p50, p99v)| if p99 { *p99v } else { *p50 })
                        .collect()
                })
                .unwrap_or_default(),
        )
    };
    println!(
        "\nbench queries: {} orders, {} s per measurement, median of {} rounds after a warm-up; wrk -t1 -c{}",
        options.orders, options.duration, options.rounds, options.connections
    );
    println!(
        "{:<14} {:>10} {:>9} {:>12} {:>12} {:>12} {:>12}",
        "query", "req/s", "/static", "p50 @25%", "p99 @25%", "p50 @70%", "p99 @70%"
    );
    let mut rows = Vec::new();
    for target in &targets {
        let rate = saturation[target.name];
        let cells: Vec<f64> = [(25, false), (25, true), (70, false), (70, true)]
            .iter()
            .map(|(share, p99)| open_ms(target.name, *share, *p99))
            .collect();
        let shown = |v: f64| {
            if target.open_loop.is_some() {
                format!("{v:.2} ms")
            } else {
                "-".into()
            }
        };
        println!(
            "{:<14} {:>10.0} {:>9.2} {:>12} {:>12} {:>12} {:>12}",
            target.name,
            rate,
            rate / stat.max(1e-9),
            shown(cells[0]),
            shown(cells[1]),
            shown(cells[2]),
            shown(cells[3]),
        );
        rows.push(json!({
            "query": target.name,
            "requests_per_second": rate,
            "rounds": closed[target.name],
            "ratio_to_static": rate / stat.max(1e-9),
            "open_loop": target.open_loop.map(|rate_of| json!({
                "at_rates_of": rate_of,
                "p50_ms_at_25": cells[0], "p99_ms_at_25": cells[1],
                "p50_ms_at_70": cells[2], "p99_ms_at_70": cells[3],
            })),
        }));
    }
    println!("(open loop: latency from each request's intended start; static axum runs at the point read's rates, the floor of this load tool)");
    let raw_rate = median(raw_rounds.clone());
    println!(
        "{:<14} {:>10.0}   (one thread, no HTTP)",
        "raw sled get", raw_rate
    );
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "server RSS: peak {:.0} MiB while loading, peak {:.0} MiB serving, {:.0} MiB after the load; ready {:.1} s after a restart",
        mib(load_peak_rss),
        mib(peak_rss),
        mib(rss_after),
        ready_after.as_secs_f64()
    );
    println!(
        "disk: {:.1} MiB for {:.1} MiB of keys and values: {:.2}x",
        mib(disk),
        mib(logical),
        disk as f64 / logical.max(1) as f64
    );
    let as_of_ratio = saturation["order asOf"] / current.max(1e-9);
    let as_of_p99 = open_ms("order asOf", 25, true) / open_ms("order", 25, true).max(1e-9);
    println!("\ntargets (issue 10):");
    let verdict = |ok: bool| if ok { "holds" } else { "MISSED" };
    let checks = [
        (
            "order(id) >= 0.4 of static",
            current / stat.max(1e-9),
            current / stat.max(1e-9) >= 0.4,
        ),
        (
            "customer(id) >= 0.4 of static",
            saturation["customer"] / stat.max(1e-9),
            saturation["customer"] / stat.max(1e-9) >= 0.4,
        ),
        (
            "order(asOf) >= 0.7 of current",
            as_of_ratio,
            as_of_ratio >= 0.7,
        ),
        (
            "point read p99 @25% <= 2 ms",
            open_ms("order", 25, true),
            open_ms("order", 25, true) <= 2.0,
        ),
        (
            "as-of p99 <= 1.5x current p99 @25%",
            as_of_p99,
            as_of_p99 <= 1.5,
        ),
        (
            "RSS <= 1 GiB",
            mib(peak_rss.max(load_peak_rss)),
            peak_rss.max(load_peak_rss) <= 1 << 30,
        ),
        (
            "disk <= 3x logical",
            disk as f64 / logical.max(1) as f64,
            disk <= 3 * logical.max(1),
        ),
    ];
    for (what, value, ok) in &checks {
        println!("  {what:<36} {value:>10.2}  {}", verdict(*ok));
    }
    if let Some(path) = &options.json {
        let out = json!({
            "orders": options.orders,
            "commands": report.commands_ok,
            "duration_s": options.duration,
            "rounds": options.rounds,
            "connections": options.connections,
            "queries": rows,
            "raw_sled_gets_per_second": raw_rate,
            "raw_sled_rounds": raw_rounds,
            "rss_bytes": { "peak_loading": load_peak_rss, "peak_serving": peak_rss, "after_load": rss_after },
            "ready_after_restart_s": ready_after.as_secs_f64(),
            "disk_bytes": disk,
            "logical_bytes": logical,
            "disk_ratio": disk as f64 / logical.max(1) as f64,
            "targets": checks.iter().map(|(what, value, ok)| json!({ "target": what, "value": value, "holds": ok })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
