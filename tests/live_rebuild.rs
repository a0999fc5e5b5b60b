//! Blue/green rebuilds in a running server: `orderstore replay rebuild`
//! finds the server that owns the data directory and asks it to rebuild;
//! clients reading and writing throughout never see an error or a missing
//! order, and the new generation is served (and survives a restart).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commands::Topics;
use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

const READ: &str = "query($id: ID!) { order(id: $id) { status } generated: order(id: \"bench-7\") { status } customer(id: \"lena\") { orderCount } projections { name version rebuilding { phase } } }";
const CHECK: &str = "query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { status } }";

/// Generated history, so that the rebuild takes a while (bench-<n> orders).
const GENERATED_EVENTS: u64 = 30_000;

on_both_backends!(a_rebuild_in_a_running_server_never_interrupts_reads);

async fn a_rebuild_in_a_running_server_never_interrupts_reads(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let topics = Topics::new(&s.config.topic_prefix);
    replay::bench::generate(s.server().log.as_ref(), &topics, GENERATED_EVENTS)
        .await
        .unwrap();
    let mut placed = Vec::new();
    for i in 0..10 {
        let id = format!("live-{i}");
        data(s.gql(PLACE, order_input(&id, "lena")).await);
        placed.push(id);
    }
    s.wait_ready().await;
    let dir = s.dir.path().to_path_buf();
    let s = Arc::new(s);
    let stop = Arc::new(AtomicBool::new(false));
    let problems = Arc::new(Mutex::new(Vec::<String>::new()));
    let reads_during_rebuild = Arc::new(AtomicU64::new(0));

    let reader = {
        let (s, stop, problems, during) = (
            s.clone(),
            stop.clone(),
            problems.clone(),
            reads_during_rebuild.clone(),
        );
        let placed = placed.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = &placed[reads as usize % placed.len()];
                let body = s.gql(READ, json!({ "id": id })).await;
                reads += 1;
                if body.get("errors").is_some() {
                    problems.lock().unwrap().push(format!("read error: {body}"));
                    continue;
                }
                let d = &body["data"];
                if d["order"].is_null() || d["generated"].is_null() {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("missing order: {body}"));
                }
                if d["customer"]["orderCount"].as_i64().unwrap_or(0) < 10 {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("customer lost orders: {body}"));
                }
                let rebuilding = d["projections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| !p["rebuilding"].is_null());
                if rebuilding {
                    during.fetch_add(1, Ordering::Relaxed);
                }
            }
            reads
        })
    };
    let writer = {
        let (s, stop, problems) = (s.clone(), stop.clone(), problems.clone());
        tokio::spawn(async move {
            let mut written = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = format!("during-{}", written.len());
                let body = s.gql(PLACE, order_input(&id, "lena")).await;
                let Some(token) = body["data"]["placeOrder"]["consistencyToken"].as_str() else {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("write error: {body}"));
                    continue;
                };
                let read = s.gql(CHECK, json!({ "id": id, "t": token })).await;
                if read.get("errors").is_some() || read["data"]["order"].is_null() {
                    problems
                        .lock()
                        .unwrap()
                        .push(format!("own write not readable: {read}"));
                }
                written.push(id);
            }
            written
        })
    };

    let cli_dir = dir.clone();
    let output =
        tokio::task::spawn_blocking(move || orderstore(&["replay", "rebuild", "all"], &cli_dir))
            .await
            .unwrap();
    stop.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    let written = writer.await.unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rebuild failed: {printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("asking the server at"), "{printed}");
    for name in ["history", "customer", "finance"] {
        assert!(
            printed.contains(&format!("{name}: generation v2 built from")),
            "{printed}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(format!("projections/{name}/CURRENT"))).unwrap(),
            "2"
        );
    }
    assert!(printed.contains("now served: v2"), "{printed}");
    let problems = problems.lock().unwrap().clone();
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for problem in &problems {
        let kind: String = problem.chars().take(40).collect();
        *kinds.entry(kind).or_default() += 1;
    }
    assert!(
        problems.is_empty(),
        "{} problems ({kinds:?}), first: {:?}, last: {:?}",
        problems.len(),
        problems.first(),
        problems.last()
    );
    assert!(
        reads > 0 && !written.is_empty(),
        "reads {reads}, writes {}",
        written.len()
    );
    assert!(
        reads_during_rebuild.load(Ordering::Relaxed) > 0,
        "no read happened while a rebuild was running"
    );

    let status = data(s.gql("{ projections { name version rebuilding { phase } lastRebuild { targetVersion error events } } }", json!({})).await);
    for p in status["projections"].as_array().unwrap() {
        assert_eq!(p["version"], 2, "{p}");
        assert!(p["rebuilding"].is_null(), "{p}");
        assert_eq!(p["lastRebuild"]["targetVersion"], 2, "{p}");
        assert!(p["lastRebuild"]["error"].is_null(), "{p}");
    }
    let metrics = s.metrics().await;
    for name in ["history", "customer", "finance"] {
        for line in [
            format!("orderstore_projection_generation{{projection=\"{name}\"}} 2"),
            format!("orderstore_projection_rebuild_total_events{{projection=\"{name}\"}} 0"),
        ] {
            assert!(metrics.contains(&line), "{line} not in {metrics}");
        }
    }

    // The old generations go once no request reads them.
    eventually(Duration::from_secs(10), "the v1 directories go", || async {
        ["history", "customer", "finance"]
            .iter()
            .all(|n| !dir.join(format!("projections/{n}/v1")).exists())
            .then_some(())
    })
    .await;
    for name in ["history", "customer", "finance"] {
        assert!(
            !dir.join(format!("projections/{name}/v1")).exists(),
            "{name} v1 left behind"
        );
    }

    let s = Arc::try_unwrap(s).ok().expect("no task holds the server");
    let s = s.restart(|_| {}).await;
    s.wait_ready().await;
    let status = data(
        s.gql(
            "{ projections { version } customer(id: \"lena\") { orderCount } }",
            json!({}),
        )
        .await,
    );
    for p in status["projections"].as_array().unwrap() {
        assert_eq!(p["version"], 2, "{p}");
    }
    assert_eq!(
        status["customer"]["orderCount"].as_u64().unwrap(),
        10 + written.len() as u64
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_requests_that_cannot_run_are_refused() {
    let s = TestServer::start().await;
    let topics = Topics::new(&s.config.topic_prefix);
    replay::bench::generate(s.server().log.as_ref(), &topics, GENERATED_EVENTS)
        .await
        .unwrap();
    const REBUILD: &str = "mutation($name: String!, $until: DateTime) { rebuildProjection(name: $name, until: $until) { targetVersion servedVersion } }";

    let unknown = s.gql(REBUILD, json!({ "name": "ledger" })).await;
    assert_eq!(
        error_code(&unknown).as_deref(),
        Some("VALIDATION_FAILED"),
        "{unknown}"
    );

    // Without the access marker HTTP gives, an operation may not rebuild.
    let request = async_graphql::Request::new(REBUILD).variables(
        async_graphql::Variables::from_json(json!({ "name": "history" })),
    );
    let refused = serde_json::to_value(s.server().schema.execute(request).await).unwrap();
    assert_eq!(
        error_code(&refused).as_deref(),
        Some("FORBIDDEN"),
        "{refused}"
    );

    let first = data(s.gql(REBUILD, json!({ "name": "history" })).await);
    assert_eq!(first["rebuildProjection"]["targetVersion"], 2);
    assert_eq!(first["rebuildProjection"]["servedVersion"], 1);
    let second = s.gql(REBUILD, json!({ "name": "history" })).await;
    assert_eq!(error_code(&second).as_deref(), Some("CONFLICT"), "{second}");

    // A frozen generation is built beside the served one; nothing switches.
    let frozen = data(
        s.gql(
            REBUILD,
            json!({ "name": "finance", "until": "2026-01-01T00:00:03Z" }),
        )
        .await,
    );
    assert_eq!(frozen["rebuildProjection"]["targetVersion"], 2);
    let last = eventually(Duration::from_secs(60), "the frozen build ends", || async {
        let last = data(s.gql("{ projections { name version rebuilding { phase } lastRebuild { targetVersion until error } } }", json!({})).await);
        last["projections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["rebuilding"].is_null())
            .then_some(last)
    })
    .await;
    let finance = &last["projections"][2];
    assert_eq!(finance["name"], "finance");
    assert_eq!(finance["version"], 1, "{finance}");
    assert_eq!(finance["lastRebuild"]["targetVersion"], 2, "{finance}");
    assert!(finance["lastRebuild"]["error"].is_null(), "{finance}");
    let frozen_dir = s.dir.path().join("projections/finance/v2");
    assert!(frozen_dir.exists() && !frozen_dir.join("BUILDING").exists());
    assert_eq!(last["projections"][0]["version"], 2, "{last}");

    // The frozen generation answers side by side with the served one, and
    // agrees with the served one read as of its time.
    const FINANCE: &str = "query($g: Int, $at: DateTime) { finance(from: \"2026-01-01\", to: \"2026-01-02\", generation: $g, asOf: $at) { totals { currency ordersPlaced gross { amount } captured { amount } } } }";
    let frozen = data(s.gql(FINANCE, json!({ "g": 2 })).await);
    let as_of = data(
        s.gql(FINANCE, json!({ "at": "2026-01-01T00:00:03Z" }))
            .await,
    );
    let now = data(s.gql(FINANCE, json!({})).await);
    assert_eq!(frozen, as_of);
    assert_ne!(frozen, now, "the frozen generation stops at its time");
    let placed: i64 = frozen["finance"]["totals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ordersPlaced"].as_i64().unwrap())
        .sum();
    assert!(placed > 0, "{frozen}");
    for (generation, code, field) in [
        (json!(9), "NOT_FOUND", None),
        (json!(0), "VALIDATION_FAILED", Some("generation")),
    ] {
        let body = s.gql(FINANCE, json!({ "g": generation })).await;
        assert_eq!(error_code(&body).as_deref(), Some(code), "{body}");
        assert_eq!(error_field(&body).as_deref(), field, "{body}");
    }
    let body = s
        .gql(
            "{ finance(from: \"2026-01-01\", to: \"2026-01-01\", generation: 2, consistentWith: \"0:0\") { totals { gross { amount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_field(&body).as_deref(),
        Some("consistentWith"),
        "{body}"
    );

    // A server with a token: the command without it is refused, clearly.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |c| c.auth_token = Some("sesame".into())).await;
    let output = orderstore(&["replay", "rebuild", "customer"], s.dir.path());
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refused to rebuild customer") && stderr.contains("401"),
        "{stderr}"
    );
    s.stop().await;
}

on_both_backends!(a_kept_generation_can_be_switched_back_to);

async fn customer_orders(s: &TestServer, generation: Option<u32>) -> Value {
    let body = data(
        s.gql(
            "query($g: Int) { customer(id: \"rollo\", generation: $g) { orderCount } projections { name version } }",
            json!({ "g": generation }),
        )
        .await,
    );
    json!({ "orders": body["customer"]["orderCount"], "served": body["projections"][1]["version"] })
}

async fn place_and_wait(s: &TestServer, id: &str) {
    let placed = data(s.gql(PLACE, order_input(id, "rollo")).await);
    let token = placed["placeOrder"]["consistencyToken"].as_str().unwrap();
    data(
        s.gql(
            "query($t: String) { customer(id: \"rollo\", consistentWith: $t) { orderCount } }",
            json!({ "t": token }),
        )
        .await,
    );
}

async fn a_kept_generation_can_be_switched_back_to(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    for i in 0..3 {
        place_and_wait(&s, &format!("r-{i}")).await;
    }
    let dir = s.dir.path().to_path_buf();
    let run = |args: &'static [&'static str]| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || orderstore(args, &dir))
    };
    let output = run(&["replay", "rebuild", "customer", "--keep-previous"])
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        customer_orders(&s, None).await,
        json!({ "orders": 3, "served": 2 })
    );
    place_and_wait(&s, "r-3").await;
    place_and_wait(&s, "r-4").await;
    // The kept generation stopped at the switch, and is readable as it was.
    assert_eq!(
        customer_orders(&s, Some(1)).await,
        json!({ "orders": 3, "served": 2 })
    );
    let listed = data(
        s.gql("{ projections { name generations } }", json!({}))
            .await,
    );
    assert_eq!(
        listed["projections"][1]["generations"],
        json!([1, 2]),
        "{listed}"
    );
    assert_eq!(
        listed["projections"][0]["generations"],
        json!([1]),
        "{listed}"
    );

    let output = run(&["replay", "switch", "customer", "1"]).await.unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("customer: now served: v1 (caught up with the log)"),
        "{printed}"
    );
    assert_eq!(
        customer_orders(&s, None).await,
        json!({ "orders": 5, "served": 1 })
    );
    assert_eq!(
        customer_orders(&s, Some(2)).await,
        json!({ "orders": 5, "served": 1 })
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("projections/customer/CURRENT")).unwrap(),
        "1"
    );

    let refused = run(&["replay", "switch", "customer", "7"]).await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no generation v7 of customer"), "{stderr}");
    let refused = run(&["replay", "switch", "customer", "1"]).await.unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already served"));

    // Offline: the switch takes effect at the next start, which catches up.
    place_and_wait(&s, "r-5").await;
    let config = s.config.clone();
    let dir = s.stop().await;
    let output = orderstore(&["replay", "switch", "customer", "2"], dir.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let s = TestServer::start_in(dir, |c| *c = config).await;
    place_and_wait(&s, "r-6").await;
    assert_eq!(
        customer_orders(&s, None).await,
        json!({ "orders": 7, "served": 2 })
    );
    s.stop().await;
}

/// What a crash in the middle of a rebuild, a retirement or a verification
/// leaves behind is removed at the next start; the served generation and
/// kept ones are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_removes_what_an_interrupted_rebuild_left() {
    let s = TestServer::start().await;
    place_and_wait(&s, "left-1").await;
    let config = s.config.clone();
    let dir = s.stop().await;
    let generations = dir.path().join("projections/customer");
    for (name, marker) in [
        ("v2", Some("BUILDING")),
        ("v3", Some("RETIRED")),
        ("v4", None),
    ] {
        std::fs::create_dir_all(generations.join(name)).unwrap();
        if let Some(marker) = marker {
            std::fs::write(generations.join(name).join(marker), b"").unwrap();
        }
    }
    std::fs::create_dir_all(generations.join("verify-1-2")).unwrap();

    let s = TestServer::start_in(dir, |c| *c = config).await;
    let mut left: Vec<String> = std::fs::read_dir(&generations)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["v1", "v4"],
        "half-built, retired and scratch stores go; kept ones stay"
    );
    assert_eq!(
        customer_orders(&s, None).await,
        json!({ "orders": 1, "served": 1 })
    );
    s.stop().await;
}
