//! The fault scenarios. Each runs the workload (or its own operations),
//! injects its faults on a schedule drawn from the seed, lets the node
//! recover, and runs the checker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::check::{check, Findings};
use super::node::{Backend, ChildNode, InProcessNode};
use super::workload::{self, Client, Ledger, Outcome};

/// One scenario's figures.
#[derive(Debug, Default)]
pub struct Row {
    pub scenario: &'static str,
    pub backend: &'static str,
    pub operations: u64,
    pub faults: u64,
    pub ok: u64,
    pub failed: u64,
    pub indeterminate: u64,
    pub violations: Vec<String>,
    /// Longest time from a fault's end to the node being ready again.
    pub recovery: Option<Duration>,
    pub events: u64,
    /// What the scenario saw worth telling (the error a node gave, say).
    pub note: Option<String>,
    /// Commands not acknowledged, by code.
    pub codes: std::collections::BTreeMap<String, u64>,
}

impl Row {
    fn new(scenario: &'static str, backend: &Backend) -> Self {
        Self {
            scenario,
            backend: backend.name(),
            ..Self::default()
        }
    }

    fn ledger(&mut self, ledger: &Ledger) {
        self.operations += ledger.operations();
        self.ok += ledger.ok;
        self.failed += ledger.failed;
        self.indeterminate += ledger.indeterminate;
        for (code, n) in &ledger.codes {
            *self.codes.entry(code.clone()).or_default() += n;
        }
    }

    fn findings(&mut self, findings: Findings) {
        self.events = findings.events;
        self.violations.extend(findings.violations);
    }

    /// A node's log must not show a panic, whatever the fault.
    fn no_panics(&mut self, log: &std::path::Path) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains("panicked")) {
            self.violations.push(format!(
                "a node panicked: {}",
                line.chars().take(300).collect::<String>()
            ));
        }
    }

    fn recovered(&mut self, took: Duration) {
        self.recovery = Some(self.recovery.map_or(took, |r| r.max(took)));
    }
}

/// Runs the workload on `client` until `body` is done; answers its ledger.
async fn under_load<F: std::future::Future<Output = anyhow::Result<()>>>(
    client: &Client,
    workers: usize,
    seed: u64,
    tag: &str,
    body: F,
) -> anyhow::Result<Ledger> {
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(workload::run(
        client.clone(),
        workers,
        seed,
        tag.to_owned(),
        stop.clone(),
    ));
    let done = body.await;
    stop.store(true, Ordering::Relaxed);
    let ledger = load.await?;
    done?;
    Ok(ledger)
}

/// kill -9 of `serve` under load, `kills` times at random moments, each
/// followed by a restart on the same data directory.
pub async fn kill9(backend: &Backend, kills: usize, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("kill -9 of serve under load", backend);
    let dir = tempfile::tempdir()?;
    let mut node = ChildNode::start(
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
        backend,
        &[],
    )
    .await?;
    node.ready().await?;
    let client = node.client.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recoveries = Vec::new();
    let ledger = under_load(&client, 8, seed, "kill", async {
        for _ in 0..kills {
            tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
            node.restart()?; // kill -9, then start again
            recoveries.push(node.ready().await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    })
    .await?;
    for took in recoveries {
        row.recovered(took);
    }
    row.faults = kills as u64;
    row.ledger(&ledger);
    node.ready().await?;
    row.findings(check(&client, &ledger, false).await);
    row.no_panics(&node.log);
    Ok(row)
}

/// 50 concurrent refunds of 1.00 on one paid order of 36.79: exactly 36
/// are accepted, each at its own version, and the refunded total is theirs.
pub async fn conflicts(backend: &Backend) -> anyhow::Result<Row> {
    let mut row = Row::new("50 concurrent conflicting commands on one order", backend);
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path(), backend, |_| {}).await?;
    let client = node.client.clone();
    let mut ledger = Ledger::default();
    let order = "conflict-1";
    let setup = [
        (
            "placeOrder",
            "PlaceOrderInput",
            json!({ "input": { "orderId": order, "customerId": "kim", "currency": "EUR", "items": [{ "sku": "MUG", "quantity": 2, "unitPrice": "12.50" }, { "sku": "TEA", "quantity": 1, "unitPrice": "8.99" }], "taxRateBps": 825 } }),
        ),
        (
            "reserveInventory",
            "OrderRefInput",
            json!({ "input": { "orderId": order } }),
        ),
        (
            "confirmPayment",
            "ConfirmPaymentInput",
            json!({ "input": { "orderId": order, "paymentId": "p1", "amount": "36.79" } }),
        ),
    ];
    for (field, input, variables) in setup {
        let query = format!("mutation($input: {input}!) {{ {field}(input: $input) {{ orderId version events {{ id sequence }} }} }}");
        let (outcome, events) = client.command(&query, variables, field).await;
        anyhow::ensure!(outcome == Outcome::Ok, "{field} failed");
        ledger.ok += 1;
        ledger.acked.extend(events);
    }
    ledger.orders.push(order.into());
    let refunds: Vec<_> = (0..50)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let query = "mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { orderId version events { id sequence } } }";
                client
                    .command(query, json!({ "input": { "orderId": "conflict-1", "amount": "1.00", "reason": format!("refund {i}"), "idempotencyKey": format!("refund-{i}") } }), "refundPayment")
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for refund in refunds {
        let (outcome, events) = refund.await?;
        match outcome {
            Outcome::Ok => {
                ledger.ok += 1;
                versions.extend(events.iter().map(|e| e.sequence));
                ledger.acked.extend(events);
            }
            Outcome::Failed => ledger.failed += 1,
            Outcome::Indeterminate => ledger.indeterminate += 1,
        }
    }
    versions.sort_unstable();
    if versions != (4..40).collect::<Vec<u64>>() {
        row.violations.push(format!(
            "accepted refunds took versions {versions:?}, not 4..=39"
        ));
    }
    // Read models follow the log: read once they have caught up.
    client.ready(Duration::from_secs(60)).await;
    let body = client
        .gql(
            "{ order(id: \"conflict-1\") { version refunded { amount } } }",
            json!({}),
        )
        .await?;
    if body["data"]["order"]["refunded"]["amount"] != "36.00" {
        row.violations
            .push(format!("the order's refunded total is not 36.00: {body}"));
    }
    row.faults = 50;
    row.ledger(&ledger);
    row.findings(check(&client, &ledger, false).await);
    node.stop().await?;
    Ok(row)
}

/// Every record of the events topic, read from the start to the end now.
async fn events_topic(node: &InProcessNode) -> anyhow::Result<Vec<eventlog::StoredRecord>> {
    let log = node.log()?;
    let topic = &node.topics.events;
    let partitions = log.partition_count(topic).await?;
    let mut ends = std::collections::BTreeMap::new();
    let mut assignment = Vec::new();
    for p in 0..partitions {
        let tp = eventlog::TopicPartition::new(topic, p);
        let (low, high) = log.watermarks(&tp).await?;
        ends.insert(p, high);
        assignment.push((tp, low));
    }
    let mut consumer = log.consumer().await?;
    consumer.assign(assignment).await?;
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let done = ends.iter().all(|(p, end)| {
            consumer
                .position(&eventlog::TopicPartition::new(topic, *p))
                .is_some_and(|at| at >= *end)
        });
        if done {
            break;
        }
        for record in consumer.poll(1000, Duration::from_millis(200)).await? {
            if record.offset < ends[&record.partition] {
                records.push(record);
            }
        }
    }
    Ok(records)
}

/// Appends, retrying while the processor holds a partition in a transaction.
async fn append(
    node: &InProcessNode,
    records: Vec<eventlog::OutgoingRecord>,
) -> anyhow::Result<()> {
    for chunk in records.chunks(200) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match node.log()?.append(chunk.to_vec()).await {
                Ok(_) => break,
                Err(error) if Instant::now() < deadline => {
                    tracing::debug!(%error, "append refused; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

/// 10% of the events published a second time, same id, same order: the
/// read models must not count them twice.
pub async fn duplicates(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("10% of events published twice with the same id", backend);
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path(), backend, |_| {}).await?;
    let client = node.client.clone();
    let ledger = under_load(&client, 4, seed, "dup", async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    })
    .await?;
    let mut rng = StdRng::seed_from_u64(seed);
    let again: Vec<eventlog::OutgoingRecord> = events_topic(&node)
        .await?
        .into_iter()
        .filter(|_| rng.random_bool(0.1))
        .map(|stored| eventlog::OutgoingRecord {
            topic: node.topics.events.clone(),
            partition: Some(stored.partition),
            record: stored.record,
        })
        .collect();
    row.faults = again.len() as u64;
    append(&node, again).await?;
    row.recovered(
        client
            .ready(Duration::from_secs(120))
            .await
            .unwrap_or(Duration::MAX),
    );
    row.ledger(&ledger);
    let findings = check(&client, &ledger, true).await;
    if findings.repeated_ids != row.faults {
        row.violations.push(format!(
            "{} events republished, the log shows {} repeats",
            row.faults, findings.repeated_ids
        ));
    }
    row.findings(findings);
    node.stop().await?;
    Ok(row)
}

/// 1,000 records that are not readable events, appended while orders flow:
/// every projection parks all of them, its lag returns to 0, and the
/// other orders keep flowing.
pub async fn poison(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("1,000 poison records", backend);
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path(), backend, |_| {}).await?;
    let client = node.client.clone();
    let poison: Vec<eventlog::OutgoingRecord> = (0..1000)
        .map(|i| eventlog::OutgoingRecord {
            topic: node.topics.events.clone(),
            partition: None,
            record: eventlog::Record {
                key: format!("poison-{i}").into_bytes(),
                value: Some(vec![0xff; 16]),
                headers: vec![domain::Header::new(
                    "ce_type",
                    "com.orderstore.order.placed",
                )],
                timestamp_ms: chrono::Utc::now().timestamp_millis(),
            },
        })
        .collect();
    let ledger = under_load(&client, 4, seed, "poison", async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        append(&node, poison).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    row.faults = 1000;
    let started = Instant::now();
    if client.ready(Duration::from_secs(120)).await.is_none() {
        row.violations
            .push("the projections did not catch up (lag not back to 0)".into());
    }
    row.recovered(started.elapsed());
    let body = client
        .gql("{ projections { name lag } }", json!({}))
        .await?;
    for projection in body["data"]["projections"].as_array().into_iter().flatten() {
        if projection["lag"] != "0" {
            row.violations.push(format!("lag is not 0: {projection}"));
        }
    }
    let metrics = client
        .http
        .get(format!("{}/metrics", client.base))
        .send()
        .await?
        .text()
        .await?;
    for name in projections::names() {
        let line = format!("orderstore_projection_dead_letters{{projection=\"{name}\"}} 1000");
        if !metrics.lines().any(|l| l == line) {
            row.violations
                .push(format!("{name} did not park exactly 1000 records"));
        }
    }
    if ledger.ok == 0 {
        row.violations
            .push("no order flowed beside the poison".into());
    }
    row.ledger(&ledger);
    row.findings(check(&client, &ledger, false).await);
    node.stop().await?;
    Ok(row)
}

fn random_text(rng: &mut StdRng) -> String {
    let len = rng.random_range(0..40);
    (0..len)
        .map(|_| match rng.random_range(0..6) {
            0 => char::from_u32(rng.random_range(0x20..0x7f)).unwrap_or('x'),
            1 => ['"', '\\', '{', '}', '$', '\n', '\u{0}'][rng.random_range(0..7)],
            2 => char::from_u32(rng.random_range(0xa0..0x2fff)).unwrap_or('é'),
            _ => char::from(rng.random_range(b'a'..=b'z')),
        })
        .collect()
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..8) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random::<f64>() * 1e12),
        4 if depth < 3 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        5 if depth < 3 => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(0..4) {
                object.insert(random_text(rng), random_value(rng, depth + 1));
            }
            Value::Object(object)
        }
        _ => json!(random_text(rng)),
    }
}

const DOCUMENTS: &[&str] = &[
    "query($id: ID!) { order(id: $id) { id status total { amount currency } history { type } } }",
    "query($id: ID!, $t: DateTime) { order(id: $id, asOf: $t) { status version } }",
    "query($id: ID!, $n: Int) { orderHistory(orderId: $id, first: $n) { edges { node { type } } } }",
    "query($id: ID!) { customer(id: $id) { orderCount lifetimeValue { amount } } }",
    "query($c: String!) { trace(correlationId: $c) { edges { node { id } } } }",
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { orderId } }",
    "mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { version } }",
    "{ projections { name lag } sinks { name } }",
    "{ __schema { types { name } } }",
];

fn random_document(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => random_text(rng),
        1 => {
            // Deep nesting, past the depth limit or not.
            let depth = rng.random_range(1..40);
            format!("{}{}", "{ a ".repeat(depth), "}".repeat(depth))
        }
        2 => {
            let mut document = DOCUMENTS[rng.random_range(0..DOCUMENTS.len())].to_owned();
            let cut = rng.random_range(0..document.len());
            document.truncate(cut);
            document
        }
        _ => DOCUMENTS[rng.random_range(0..DOCUMENTS.len())].to_owned(),
    }
}

fn random_body(rng: &mut StdRng) -> Vec<u8> {
    let request = |rng: &mut StdRng| {
        let mut variables = serde_json::Map::new();
        for name in ["id", "t", "n", "c", "input"] {
            if rng.random_bool(0.6) {
                variables.insert(name.into(), random_value(rng, 0));
            }
        }
        json!({ "query": random_document(rng), "variables": variables })
    };
    match rng.random_range(0..20) {
        0 => random_text(rng).into_bytes(),
        1 => vec![b'x'; rng.random_range(200_000..400_000)],
        2 | 3 => serde_json::to_vec(&Value::Array(
            (0..rng.random_range(0..40)).map(|_| request(rng)).collect(),
        ))
        .unwrap_or_default(),
        4 => serde_json::to_vec(&random_value(rng, 0)).unwrap_or_default(),
        _ => serde_json::to_vec(&request(rng)).unwrap_or_default(),
    }
}

/// Random GraphQL requests (documents, variables, sizes, batches): no
/// 5xx, no broken connection, the node alive after; then each limit
/// checked once on purpose.
pub async fn fuzz(backend: &Backend, requests: usize, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("fuzzed GraphQL requests", backend);
    let dir = tempfile::tempdir()?;
    let node = InProcessNode::start(dir.path(), backend, |_| {}).await?;
    let client = node.client.clone();
    let violations = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lanes: Vec<_> = (0..8)
        .map(|lane| {
            let (client, violations, answered) =
                (client.clone(), violations.clone(), answered.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(seed.wrapping_add(lane));
                for _ in (lane as usize..requests).step_by(8) {
                    let body = random_body(&mut rng);
                    let size = body.len();
                    let get = rng.random_bool(0.1);
                    let request = if get {
                        client.http.get(client.url(
                            "/graphql",
                            &[(
                                "query",
                                &String::from_utf8_lossy(&body[..body.len().min(4000)]),
                            )],
                        ))
                    } else {
                        client
                            .http
                            .post(format!("{}/graphql", client.base))
                            .header("content-type", "application/json")
                            .body(body)
                    };
                    match request.send().await {
                        Ok(response) if response.status().is_server_error() => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            violations
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(format!("{status}: {}", &text[..text.len().min(300)]));
                        }
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            let mut text = format!(
                                "transport ({} {size} bytes): {error}",
                                if get { "GET" } else { "POST" }
                            );
                            let mut source = std::error::Error::source(&error);
                            while let Some(cause) = source {
                                text.push_str(&format!(": {cause}"));
                                source = cause.source();
                            }
                            violations
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(text)
                        }
                    }
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await?;
    }
    row.operations = requests as u64;
    row.ok = answered.load(Ordering::Relaxed);
    row.failed = row.operations - row.ok;
    row.violations.extend(
        violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..),
    );
    // Each limit, once on purpose.
    let deep = format!(
        "{}{}",
        "{ order(id: \"x\") { history { ".repeat(8),
        "} } }".repeat(8)
    );
    let body = client.gql(&deep, json!({})).await?;
    if body["errors"].as_array().is_none_or(Vec::is_empty) {
        row.violations
            .push("a query 24 levels deep was answered".into());
    }
    let batch = Value::Array(
        (0..17)
            .map(|_| json!({ "query": "{ __typename }" }))
            .collect(),
    );
    let response = client
        .http
        .post(format!("{}/graphql", client.base))
        .json(&batch)
        .send()
        .await?;
    if response.status().is_success() && !response.text().await?.contains("errors") {
        row.violations
            .push("a batch of 17 operations was run".into());
    }
    let big = client
        .http
        .post(format!("{}/graphql", client.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 300 << 10])
        .send()
        .await?;
    if big.status() != reqwest::StatusCode::PAYLOAD_TOO_LARGE {
        row.violations
            .push(format!("a 300 KiB body got {}", big.status()));
    }
    let get = client
        .http
        .get(client.url(
            "/graphql",
            &[(
                "query",
                "mutation { cancelOrder(input: {orderId: \"x\", reason: \"y\"}) { version } }",
            )],
        ))
        .send()
        .await?;
    if get.status().is_success() {
        row.violations.push("a mutation over GET was run".into());
    }
    if client
        .http
        .get(format!("{}/health", client.base))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        row.violations
            .push("the node stopped answering /health".into());
    }
    row.faults = row.operations;
    node.stop().await?;
    Ok(row)
}

/// Every endpoint without a token, with a wrong one and with the right one,
/// and mutations over GET: 0 unauthorized successes.
pub async fn auth(backend: &Backend) -> anyhow::Result<Row> {
    let mut row = Row::new("auth matrix", backend);
    let dir = tempfile::tempdir()?;
    let token = "chaos-token";
    let node =
        InProcessNode::start(dir.path(), backend, |c| c.auth_token = Some(token.into())).await?;
    let base = node.client.base.clone();
    let http = reqwest::Client::new();
    let protected = [
        ("GET", "/", None),
        ("GET", "/graphql?query=%7B__typename%7D", None),
        (
            "POST",
            "/graphql",
            Some(json!({ "query": "{ __typename }" })),
        ),
        (
            "POST",
            "/graphql",
            Some(
                json!({ "query": "mutation { retryDeadLetters(projection: \"history\") { applied } }" }),
            ),
        ),
        ("GET", "/graphql/ws", None),
        ("GET", "/metrics", None),
        ("GET", "/export", None),
    ];
    for (presented, name) in [
        (None, "no token"),
        (Some("wrong"), "a wrong token"),
        (Some(token), "the token"),
    ] {
        for (method, path, body) in &protected {
            let mut request = match *method {
                "GET" => http.get(format!("{base}{path}")),
                _ => http
                    .post(format!("{base}{path}"))
                    .json(body.as_ref().unwrap_or(&Value::Null)),
            };
            if let Some(presented) = presented {
                request = request.bearer_auth(presented);
            }
            let status = request.send().await?.status();
            row.operations += 1;
            let allowed = presented == Some(token);
            let refused = status == reqwest::StatusCode::UNAUTHORIZED;
            if allowed == refused {
                row.violations
                    .push(format!("{method} {path} with {name}: {status}"));
            } else if allowed {
                row.ok += 1;
            } else {
                row.failed += 1;
            }
        }
    }
    for path in ["/health", "/ready"] {
        row.operations += 1;
        let status = http.get(format!("{base}{path}")).send().await?.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            row.violations.push(format!("{path} wants a token"));
        } else {
            row.ok += 1;
        }
    }
    // A mutation over GET is refused even with the token.
    row.operations += 1;
    let response = http
        .get(node.client.url(
            "/graphql",
            &[(
                "query",
                "mutation { cancelOrder(input: {orderId: \"x\", reason: \"y\"}) { version } }",
            )],
        ))
        .bearer_auth(token)
        .send()
        .await?;
    if response.status().is_success() {
        row.violations.push("a mutation over GET was run".into());
    } else {
        row.failed += 1;
    }
    row.faults = row.operations;
    node.stop().await?;
    Ok(row)
}

/// A private single-node broker of the Kafka harness (its own home and
/// ports), so stopping it disturbs nothing else.
struct Harness {
    script: std::path::PathBuf,
    home: tempfile::TempDir,
    port: u16,
}

impl Harness {
    fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = std::process::Command::new(&self.script)
            .args(args)
            .env("ORDERSTORE_KAFKA_HOME", self.home.path())
            .env("ORDERSTORE_KAFKA_PORT", self.port.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "{} {args:?} failed",
            self.script.display()
        );
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    fn start(script: &std::path::Path) -> anyhow::Result<(Self, String)> {
        Self::start_nodes(script, 1)
    }

    fn start_nodes(script: &std::path::Path, nodes: u32) -> anyhow::Result<(Self, String)> {
        // Two free neighbouring ports: clients, controller.
        let port = (0..200)
            .map(|i| {
                21_000
                    + ((std::process::id() as u16)
                        .wrapping_mul(7)
                        .wrapping_add(i * 6))
                        % 20_000
            })
            // Each node takes two ports: clients, controller.
            .find(|p| {
                (0..2 * nodes as u16)
                    .all(|i| std::net::TcpListener::bind(("127.0.0.1", *p + i)).is_ok())
            })
            .ok_or_else(|| anyhow::anyhow!("no free ports for {nodes} broker(s)"))?;
        let harness = Self {
            script: script.to_path_buf(),
            home: tempfile::tempdir()?,
            port,
        };
        let bootstrap = harness.command(&["start", "--nodes", &nodes.to_string()])?;
        Ok((harness, bootstrap))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.command(&["resume"]);
        let _ = self.command(&["stop"]);
    }
}

/// The single broker stopped, killed with kill -9, and paused with
/// SIGSTOP, each for a few seconds, under load.
pub async fn broker(script: &std::path::Path, seed: u64) -> anyhow::Result<Row> {
    let (harness, bootstrap) = Harness::start(script)?;
    let backend = Backend::Kafka {
        bootstrap,
        prefix: "chaos-broker".into(),
    };
    let mut row = Row::new("the single broker stopped, killed and paused", &backend);
    let dir = tempfile::tempdir()?;
    let node = ChildNode::start(
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
        &backend,
        &[],
    )
    .await?;
    node.ready().await?;
    let client = node.client.clone();
    let mut recoveries = Vec::new();
    let ledger = under_load(&client, 8, seed, "broker", async {
        for (down, up) in [
            (["stop"], ["start"]),
            (["kill"], ["start"]),
            (["pause"], ["resume"]),
        ] {
            tokio::time::sleep(Duration::from_secs(1)).await;
            harness.command(&down)?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            harness.command(&up)?;
            let started = Instant::now();
            node.ready().await?;
            recoveries.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .await?;
    for took in recoveries {
        row.recovered(took);
    }
    row.faults = 3;
    row.ledger(&ledger);
    node.ready().await?;
    row.findings(check(&client, &ledger, false).await);
    row.no_panics(&node.log);
    drop(node);
    drop(harness);
    Ok(row)
}

/// A small tmpfs for a data directory, unmounted on drop.
struct Tmpfs {
    mount: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// On Kafka the data directory holds only the state store and the read
    /// models, which fill more slowly: a smaller disk.
    fn for_backend(backend: &Backend) -> anyhow::Result<Self> {
        let size = match backend {
            Backend::Embedded => "size=96m",
            Backend::Kafka { .. } => "size=64m",
        };
        let dir = tempfile::tempdir()?;
        let mount = dir.path().join("disk");
        std::fs::create_dir_all(&mount)?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", size, "tmpfs"])
            .arg(&mount)
            .status()?;
        anyhow::ensure!(
            mounted.success(),
            "cannot mount a tmpfs (the disk-full scenarios need root)"
        );
        Ok(Self { mount, _dir: dir })
    }

    /// A ready `serve` with its data directory here (a small cache, and
    /// this disk reserve in MiB); its log beside the mount.
    async fn node(&self, backend: &Backend, reserve_mb: &str) -> anyhow::Result<ChildNode> {
        let node = ChildNode::start(
            &self.mount.join("data"),
            &self.mount.with_extension("log"),
            backend,
            &[
                "--cache-mb".into(),
                "16".into(),
                "--disk-reserve-mb".into(),
                reserve_mb.into(),
            ],
        )
        .await?;
        node.ready().await?;
        Ok(node)
    }

    /// Room again: the tmpfs grown to 512 MiB.
    fn grow(&self) -> anyhow::Result<()> {
        let grown = std::process::Command::new("mount")
            .args(["-o", "remount,size=512m"])
            .arg(&self.mount)
            .status()?;
        anyhow::ensure!(grown.success(), "cannot grow the tmpfs");
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mount)
            .status();
    }
}

/// The reserve of the disk-full scenario: a third of its small disk. After
/// the last accepted command the node still writes about 10 MiB here (the
/// read models catching up, sled's own rewrites), more on a loaded machine.
fn disk_reserve_mb(backend: &Backend) -> &'static str {
    match backend {
        Backend::Embedded => "32",
        Backend::Kafka { .. } => "20",
    }
}

/// The data directory's disk fills up under load (a small tmpfs), with the
/// disk reserve on (as `serve` runs by default): once less than the reserve
/// is free, commands are refused with UNAVAILABLE and the reserve's words,
/// the node keeps running and serving reads, and when there is room again
/// it takes commands by itself, without a restart. Nothing acknowledged is
/// lost, nothing is corrupt. Needs root (it mounts the tmpfs).
pub async fn disk_full(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("the data directory's disk full", backend);
    let disk = Tmpfs::for_backend(backend)?;
    let mut node = disk.node(backend, disk_reserve_mb(backend)).await?;
    let client = node.client.clone();
    let ledger = under_load(&client, 8, seed, "full", async {
        // Until the node says it refuses commands, then 2 s of refusals.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if refusing_commands(&client).await == Some(true) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the node did not refuse commands within 240 s (free: {} bytes)",
                fs_free(&disk.mount)
            );
        }
        Ok(())
    })
    .await?;
    row.faults = 1;
    if node.exited() {
        row.violations
            .push("the node stopped when its disk reached the reserve".into());
    }
    // Refused in plain words, with a retry hint.
    let refusal = client
        .gql(
            &workload::mutation("placeOrder", "PlaceOrderInput"),
            json!({ "input": workload::place_input("disk-full-probe", "probe") }),
        )
        .await
        .unwrap_or_default();
    let error = &refusal["errors"][0];
    let words = error["message"].as_str().unwrap_or_default();
    if error["extensions"]["code"] != "UNAVAILABLE"
        || !words.contains("--disk-reserve-mb")
        || error["extensions"]["retryAfterMs"].as_u64().is_none()
    {
        row.violations.push(format!(
            "a command on a full disk was not refused with the reserve's words: {refusal}"
        ));
    }
    row.note = Some(words.chars().take(400).collect());
    if ledger.codes.get("UNAVAILABLE").copied().unwrap_or(0) == 0 {
        row.violations
            .push("no command of the workload was refused for want of room".into());
    }
    // Reads go on.
    if let Some(order) = ledger.orders.first() {
        let read = client
            .gql(
                "query($id: ID!) { order(id: $id) { version } }",
                json!({ "id": order }),
            )
            .await
            .unwrap_or_default();
        if read["data"]["order"]["version"].as_u64().is_none() {
            row.violations
                .push(format!("a read failed while the disk was full: {read}"));
        }
    }
    // Room again: the same node, not restarted, takes commands.
    disk.grow()?;
    let started = Instant::now();
    let mut recovered = false;
    while started.elapsed() < Duration::from_secs(30) {
        if refusing_commands(&client).await == Some(false) {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if recovered {
        row.recovered(started.elapsed());
    } else {
        row.violations
            .push("the node still refused commands 30 s after the disk had room".into());
    }
    let after = under_load(&client, 2, seed + 1, "after", async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .await?;
    if after.ok == 0 {
        row.violations
            .push("no command succeeded once there was room again".into());
    }
    if node.exited() {
        row.violations
            .push("the node stopped; it should have waited for room".into());
    }
    row.ledger(&ledger);
    row.ledger(&after);
    let mut all = ledger;
    all.acked.extend(after.acked);
    all.orders.extend(after.orders);
    row.findings(check(&client, &all, false).await);
    row.no_panics(&node.log);
    drop(node);
    Ok(row)
}

/// Whether the node says it refuses commands for want of room (`/ready`);
/// `None` when it does not answer.
async fn refusing_commands(client: &Client) -> Option<bool> {
    let response = client
        .http
        .get(format!("{}/ready", client.base))
        .send()
        .await
        .ok()?;
    let body = response.json::<serde_json::Value>().await.ok()?;
    body["disk"]["refusingCommands"].as_bool()
}

/// The backstop: the disk fills with the reserve off (`--disk-reserve-mb
/// 0`), so sled's writes fail. The node stops and says the disk is full in
/// plain words; started again with room, it serves with nothing lost.
pub async fn disk_full_no_reserve(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("the data directory's disk full, no reserve", backend);
    let disk = Tmpfs::for_backend(backend)?;
    let mut node = disk.node(backend, "0").await?;
    let client = node.client.clone();
    let ledger = under_load(&client, 8, seed, "full", async {
        // Until the disk is full and the node refuses or stops.
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if fs_free(&disk.mount) < 64 << 10 {
                tokio::time::sleep(Duration::from_secs(2)).await;
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the disk did not fill within 240 s"
            );
        }
        Ok(())
    })
    .await?;
    row.faults = 1;
    // A node whose disk is full stops (every part of it that writes fails
    // for good) and says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.exited() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !node.exited() {
        row.violations
            .push("the node did not stop within 30 s of its disk filling".into());
    }
    // What the node said.
    let said = std::fs::read_to_string(&node.log).unwrap_or_default();
    row.note = said
        .lines()
        .find(|l| l.contains("is full; free space"))
        .map(|l| l.chars().take(400).collect());
    if row.note.is_none() {
        let tail: Vec<&str> = said.lines().rev().take(5).collect();
        row.violations.push(format!(
            "the node's log does not say the disk is full; it ends: {tail:?}"
        ));
    }
    // Room again: grow the tmpfs, restart the node, check everything.
    disk.grow()?;
    let started = Instant::now();
    node.restart()?;
    node.ready().await?;
    row.recovered(started.elapsed());
    row.ledger(&ledger);
    row.findings(check(&client, &ledger, false).await);
    row.no_panics(&node.log);
    // And it takes new commands.
    let after = under_load(&client, 2, seed + 1, "after", async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .await?;
    if after.ok == 0 {
        row.violations
            .push("no command succeeded once there was room again".into());
    }
    row.ledger(&after);
    drop(node);
    Ok(row)
}

/// Bytes free on the file system holding `path` (`u64::MAX` when it
/// cannot be asked).
fn fs_free(path: &std::path::Path) -> u64 {
    fs2::available_space(path).unwrap_or(u64::MAX)
}

/// Whether this process may mount a tmpfs.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Two `serve` nodes on one Kafka cluster, both taking commands; each is
/// killed with kill -9 and started again in turn, so the commands
/// partitions move between them. Both nodes' read models are checked.
pub async fn two_nodes(backend: &Backend, rounds: usize, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new(
        "two serve nodes, each killed and restarted in turn",
        backend,
    );
    let dir = tempfile::tempdir()?;
    let mut a = ChildNode::start(
        &dir.path().join("a"),
        &dir.path().join("a.log"),
        backend,
        &[],
    )
    .await?;
    a.ready().await?;
    let mut b = ChildNode::start(
        &dir.path().join("b"),
        &dir.path().join("b.log"),
        backend,
        &[],
    )
    .await?;
    b.ready().await?;
    let (client_a, client_b) = (a.client.clone(), b.client.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let load_b = tokio::spawn(workload::run(
        client_b.clone(),
        4,
        seed + 1000,
        "two-b".into(),
        stop.clone(),
    ));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recoveries = Vec::new();
    let ledger_a = under_load(&client_a, 4, seed, "two-a", async {
        for round in 0..rounds * 2 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..2000))).await;
            let node = if round % 2 == 0 { &mut a } else { &mut b };
            node.restart()?;
            recoveries.push(node.ready().await?);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    })
    .await?;
    stop.store(true, Ordering::Relaxed);
    let ledger_b = load_b.await?;
    for took in recoveries {
        row.recovered(took);
    }
    row.faults = (rounds * 2) as u64;
    row.ledger(&ledger_a);
    row.ledger(&ledger_b);
    let mut ledger = ledger_a;
    ledger.acked.extend(ledger_b.acked);
    ledger.orders.extend(ledger_b.orders);
    row.no_panics(&a.log);
    row.no_panics(&b.log);
    for client in [&client_a, &client_b] {
        client.ready(Duration::from_secs(120)).await;
        let findings = check(client, &ledger, false).await;
        row.events = findings.events;
        row.violations.extend(findings.violations);
    }
    Ok(row)
}

/// kill -9 of the only node on Kafka, and a replacement on a fresh data
/// directory: the time from the kill to its first acknowledged command
/// (one `placeOrder` every 250 ms), which waits out the dead node's
/// session (`--session-timeout-ms`, 10 s by default).
pub async fn replace(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("kill -9 of the only node, a fresh replacement", backend);
    let dir = tempfile::tempdir()?;
    let mut old = ChildNode::start(
        &dir.path().join("old"),
        &dir.path().join("old.log"),
        backend,
        &[],
    )
    .await?;
    old.ready().await?;
    let mut ledger = under_load(&old.client, 8, seed, "replaced", async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    old.kill9()?;
    let killed = Instant::now();
    let new = ChildNode::start(
        &dir.path().join("new"),
        &dir.path().join("new.log"),
        backend,
        &[],
    )
    .await?;
    let query = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { orderId version events { id sequence } } }";
    let mut attempt = 0;
    loop {
        anyhow::ensure!(
            killed.elapsed() < Duration::from_secs(120),
            "no command succeeded within 120 s of the kill"
        );
        attempt += 1;
        let order = format!("replacement-{attempt}");
        let variables = json!({ "input": { "orderId": order, "customerId": "kim", "currency": "EUR",
            "items": [{ "sku": "MUG", "quantity": 1, "unitPrice": "1.00" }] } });
        let (outcome, events, code) = new
            .client
            .command_with_code(query, variables, "placeOrder")
            .await;
        match outcome {
            Outcome::Ok => {
                ledger.ok += 1;
                ledger.acked.extend(events);
                ledger.orders.push(order);
                break;
            }
            Outcome::Failed => ledger.failed += 1,
            Outcome::Indeterminate => ledger.indeterminate += 1,
        }
        *ledger.codes.entry(code).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    row.recovered(killed.elapsed());
    row.note = Some(format!(
        "first command acknowledged {:.1} s after the kill, at attempt {attempt}",
        killed.elapsed().as_secs_f64()
    ));
    let after = under_load(&new.client, 4, seed + 1, "replacement", async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    })
    .await?;
    row.faults = 1;
    row.ledger(&ledger);
    row.ledger(&after);
    ledger.acked.extend(after.acked);
    ledger.orders.extend(after.orders);
    new.ready().await?;
    row.findings(check(&new.client, &ledger, false).await);
    row.no_panics(&old.log);
    row.no_panics(&new.log);
    Ok(row)
}

/// The node leading partition 0 of `topic`, as Kafka's TopicCommand tells.
fn leader_of(harness: &Harness, bootstrap: &str, topic: &str) -> anyhow::Result<(u32, String)> {
    let described = harness.command(&[
        "tool",
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        bootstrap,
        "--describe",
        "--topic",
        topic,
    ])?;
    let leader = described
        .lines()
        .find(|l| l.contains("Partition: 0"))
        .and_then(|l| l.split("Leader:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|id| id.parse::<u32>().ok())
        .ok_or_else(|| anyhow::anyhow!("no leader of {topic} partition 0 in: {described}"))?;
    Ok((leader, described))
}

/// A 3-node KRaft cluster (replication factor 3, `min.insync.replicas` 2):
/// kill -9 of the node leading the events topic, then the start of it
/// again, then another node paused with SIGSTOP, each for a few seconds,
/// under load.
pub async fn cluster(script: &std::path::Path, seed: u64) -> anyhow::Result<Row> {
    let (harness, bootstrap) = Harness::start_nodes(script, 3)?;
    let prefix = "chaos-cluster";
    let backend = Backend::Kafka {
        bootstrap: bootstrap.clone(),
        prefix: prefix.into(),
    };
    let mut row = Row::new(
        "3-node cluster: the events leader killed, a node paused",
        &backend,
    );
    let dir = tempfile::tempdir()?;
    let node = ChildNode::start(
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
        &backend,
        &["--replication-factor".into(), "3".into()],
    )
    .await?;
    node.ready().await?;
    let client = node.client.clone();
    let (leader, described) = leader_of(&harness, &bootstrap, &format!("{prefix}.events"))?;
    if !described.contains("min.insync.replicas=2") || !described.contains("ReplicationFactor: 3") {
        row.violations.push(format!(
            "the events topic is not RF 3 with min.insync.replicas 2: {described}"
        ));
    }
    let paused = leader % 3 + 1;
    let mut recoveries = Vec::new();
    let ledger = under_load(&client, 8, seed, "cluster", async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        harness.command(&["kill", &leader.to_string()])?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        harness.command(&["start", "--nodes", "3"])?;
        let started = Instant::now();
        node.ready().await?;
        recoveries.push(started.elapsed());
        tokio::time::sleep(Duration::from_secs(2)).await;
        harness.command(&["pause", &paused.to_string()])?;
        tokio::time::sleep(Duration::from_secs(4)).await;
        harness.command(&["resume", &paused.to_string()])?;
        let started = Instant::now();
        node.ready().await?;
        recoveries.push(started.elapsed());
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok(())
    })
    .await?;
    for took in recoveries {
        row.recovered(took);
    }
    row.note = Some(format!(
        "killed node {leader} (leading {prefix}.events partition 0), paused node {paused}"
    ));
    row.faults = 2;
    row.ledger(&ledger);
    node.ready().await?;
    row.findings(check(&client, &ledger, false).await);
    row.no_panics(&node.log);
    drop(node);
    drop(harness);
    Ok(row)
}

/// Each projection worker stopped between a batch's DLQ append and its
/// store commit (the failpoint `projection-batch:<name>`, which aborts the
/// process as kill -9 would), under load, then the node started again.
pub async fn worker_crash(backend: &Backend, seed: u64) -> anyhow::Result<Row> {
    let mut row = Row::new("a projection worker stopped mid-batch (failpoint)", backend);
    let dir = tempfile::tempdir()?;
    let mut node = ChildNode::start(
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
        backend,
        &[],
    )
    .await?;
    node.ready().await?;
    let client = node.client.clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut recoveries = Vec::new();
    let mut fired = Vec::new();
    let ledger = under_load(&client, 8, seed, "crash", async {
        for name in projections::names() {
            let pass = rng.random_range(5..40);
            node.env = vec![(
                "ORDERSTORE_FAILPOINT".into(),
                format!("projection-batch:{name}:{pass}"),
            )];
            node.restart()?; // kill -9, then a start with the failpoint armed
            let deadline = Instant::now() + Duration::from_secs(60);
            while !node.exited() {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the {name} failpoint did not fire within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            fired.push(format!("{name} at batch {pass}"));
            node.env.clear();
            let started = Instant::now();
            node.restart()?;
            node.ready().await?;
            recoveries.push(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    })
    .await?;
    for took in recoveries {
        row.recovered(took);
    }
    row.faults = fired.len() as u64;
    row.note = Some(format!("stopped {}", fired.join(", ")));
    row.ledger(&ledger);
    node.ready().await?;
    row.findings(check(&client, &ledger, false).await);
    row.no_panics(&node.log);
    Ok(row)
}
