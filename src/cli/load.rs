//! `orderstore load`: a realistic workload against a running server over
//! GraphQL. Each order goes through its lifecycle: placed, reserved, paid,
//! then mostly shipped and delivered, with a share of cancellations (before
//! and after payment) and partial refunds.
//!
//! A load tool, not a test: it keeps going past errors, counts them by code
//! (the GraphQL `extensions.code`, `TRANSPORT`, `HTTP_<status>`) and drops
//! only the order that met one. Closed loop by default (`--concurrency`
//! orders in flight); open loop with `--rate` (orders started per second,
//! at most `--concurrency` in flight: a start that finds no room is counted
//! as skipped, so the rate actually offered is visible). It stops after
//! `--orders`, after `--duration`, or on Ctrl-C, and reports commands per
//! second and latency percentiles from an HDR histogram.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{Mutex, Semaphore};

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub url: String,
    /// Stop after this many orders (None: only the duration bounds it).
    pub orders: Option<u64>,
    /// Stop starting orders after this long.
    pub duration: Option<Duration>,
    /// Open loop: orders started per second.
    pub rate: Option<f64>,
    pub concurrency: usize,
    pub auth_token: Option<String>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("the server at {url} does not answer: {message}")]
    Unreachable { url: String, message: String },
}

/// What went wrong with one command: its code and what the server said.
#[derive(Debug, Clone)]
struct CallError {
    code: String,
    message: String,
}

#[derive(Debug, Clone)]
pub struct LoadReport {
    /// This run's id: its orders are `load-<run_id>-<index>`.
    pub run_id: String,
    pub orders_started: u64,
    pub orders_completed: u64,
    /// Open loop: starts that found `--concurrency` orders in flight.
    pub orders_skipped: u64,
    pub commands_ok: u64,
    /// Failed commands by code.
    pub errors: BTreeMap<String, u64>,
    /// One message per code, as the server gave it first.
    pub first_messages: BTreeMap<String, String>,
    pub elapsed: Duration,
    /// Latency of answered commands, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl LoadReport {
    pub fn commands_per_second(&self) -> f64 {
        self.commands_ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn percentile_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} orders started, {} completed; {} commands ok, {} failed in {:.1} s: {:.0} commands/s; latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
            self.orders_started,
            self.orders_completed,
            self.commands_ok,
            self.error_count(),
            self.elapsed.as_secs_f64(),
            self.commands_per_second(),
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.percentile_ms(0.999),
        )?;
        if self.orders_skipped > 0 {
            write!(
                f,
                "\n{} starts skipped: --concurrency orders were already in flight",
                self.orders_skipped
            )?;
        }
        if !self.errors.is_empty() {
            let counts: Vec<String> = self
                .errors
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            write!(f, "\nerrors by code: {}", counts.join(", "))?;
            for (code, message) in &self.first_messages {
                write!(f, "\n  {code}: {message}")?;
            }
        }
        Ok(())
    }
}

const PLACE: &str =
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { orderId events { data } } }";
const RESERVE: &str =
    "mutation($input: OrderRefInput!) { reserveInventory(input: $input) { version } }";
const PAY: &str =
    "mutation($input: ConfirmPaymentInput!) { confirmPayment(input: $input) { version } }";
const SHIP: &str = "mutation($input: ShipOrderInput!) { shipOrder(input: $input) { version } }";
const DELIVER: &str =
    "mutation($input: OrderRefInput!) { deliverOrder(input: $input) { version } }";
const CANCEL: &str =
    "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { version } }";
const REFUND: &str =
    "mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { version } }";

struct Client {
    http: reqwest::Client,
    config: LoadConfig,
    latency_us: Mutex<Histogram<u64>>,
}

/// The code of a GraphQL error body: its first error's `extensions.code`.
fn error_code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

impl Client {
    async fn call(&self, query: &str, input: Value) -> Result<Value, CallError> {
        let started = Instant::now();
        let mut request = self
            .http
            .post(&self.config.url)
            .json(&json!({ "query": query, "variables": { "input": input } }));
        if let Some(token) = &self.config.auth_token {
            request = request.bearer_auth(token);
        }
        let transport = |error: reqwest::Error| CallError {
            code: "TRANSPORT".into(),
            message: error.to_string(),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_us.lock().await.saturating_record(took);
        match body {
            Some(body) if body.get("errors").is_some() => Err(CallError {
                code: error_code(&body).unwrap_or_else(|| format!("HTTP_{}", status.as_u16())),
                message: body["errors"][0]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }),
            Some(body) if status.is_success() => Ok(body["data"].clone()),
            _ => Err(CallError {
                code: format!("HTTP_{}", status.as_u16()),
                message: text.chars().take(200).collect(),
            }),
        }
    }
}

const CURRENCIES: [(&str, &str); 4] = [
    ("USD", "19.99"),
    ("EUR", "24.50"),
    ("GBP", "12.00"),
    ("JPY", "1500"),
];

/// One order's whole lifecycle; returns the commands it sent.
async fn order_lifecycle(
    client: &Client,
    run: &str,
    index: u64,
    rng: &mut StdRng,
    ok: &AtomicU64,
) -> Result<(), CallError> {
    let order_id = format!("load-{run}-{index}");
    let customers = (client.config.orders.unwrap_or(10_000) / 5).max(10);
    let (currency, price) = CURRENCIES[rng.random_range(0..CURRENCIES.len())];
    let items: Vec<Value> = (0..rng.random_range(1..=4))
        .map(|i| json!({ "sku": format!("SKU-{}", (index + i) % 97), "quantity": rng.random_range(1..=3), "unitPrice": price }))
        .collect();
    let key = |step: &str| format!("{order_id}-{step}");
    let tax_rate_bps = [0, 500, 825, 2000][rng.random_range(0..4)];
    let placed = step(
        client,
        ok,
        PLACE,
        json!({
            "orderId": order_id,
            "customerId": format!("customer-{}", rng.random_range(0..customers)),
            "currency": currency,
            "items": items,
            "taxRateBps": tax_rate_bps,
            "idempotencyKey": key("place"),
        }),
    )
    .await?;
    let total = placed["placeOrder"]["events"][0]["data"]["total"]["amount"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let reference = |step: &str| json!({ "orderId": order_id, "idempotencyKey": key(step) });
    let roll: f64 = rng.random();
    if roll < 0.08 {
        step(client, ok, CANCEL, json!({ "orderId": order_id, "reason": "changed mind", "idempotencyKey": key("cancel") })).await?;
        return Ok(());
    }
    step(client, ok, RESERVE, reference("reserve")).await?;
    step(client, ok, PAY, json!({ "orderId": order_id, "paymentId": key("pay"), "amount": total, "idempotencyKey": key("pay") })).await?;
    if roll < 0.13 {
        step(client, ok, CANCEL, json!({ "orderId": order_id, "reason": "out of stock", "idempotencyKey": key("cancel") })).await?;
        return Ok(());
    }
    step(client, ok, SHIP, json!({ "orderId": order_id, "carrier": "DHL", "trackingNumber": format!("TRK{index:09}"), "idempotencyKey": key("ship") })).await?;
    step(client, ok, DELIVER, reference("deliver")).await?;
    if roll > 0.9 && currency != "JPY" {
        step(client, ok, REFUND, json!({ "orderId": order_id, "amount": "1.00", "reason": "damaged box", "idempotencyKey": key("refund") })).await?;
        return Ok(());
    }
    Ok(())
}

/// One command of a lifecycle, counted when it succeeds.
async fn step(
    client: &Client,
    ok: &AtomicU64,
    query: &str,
    input: Value,
) -> Result<Value, CallError> {
    let data = client.call(query, input).await?;
    ok.fetch_add(1, Ordering::Relaxed);
    Ok(data)
}

/// Counts of a run, shared by its tasks.
#[derive(Default)]
struct Tally {
    started: AtomicU64,
    completed: AtomicU64,
    skipped: AtomicU64,
    ok: AtomicU64,
    errors: std::sync::Mutex<(BTreeMap<String, u64>, BTreeMap<String, String>)>,
}

impl Tally {
    fn failed(&self, error: CallError) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.0.entry(error.code.clone()).or_default() += 1;
            errors.1.entry(error.code).or_insert(error.message);
        }
    }
}

/// Runs one order's lifecycle and counts how it ended.
async fn one_order(client: Arc<Client>, tally: Arc<Tally>, run_id: Arc<str>, index: u64) {
    let mut rng =
        StdRng::seed_from_u64(client.config.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    match order_lifecycle(&client, &run_id, index, &mut rng, &tally.ok).await {
        Ok(()) => {
            tally.completed.fetch_add(1, Ordering::Relaxed);
        }
        Err(error) => tally.failed(error),
    }
}

/// Runs the workload until its orders or duration are used up, or
/// `shutdown` resolves (orders in flight then finish).
pub async fn run(
    config: LoadConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<LoadReport, LoadError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(config.concurrency)
        .build()
        .map_err(LoadError::Client)?;
    // A server that does not answer at all is a setup error, not a load result.
    let base = config.url.trim_end_matches("/graphql").to_owned();
    if let Err(error) = http.get(format!("{base}/health")).send().await {
        return Err(LoadError::Unreachable {
            url: config.url.clone(),
            message: error.to_string(),
        });
    }
    let run_id: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..8].into();
    let bar = match config.orders {
        Some(orders) => ProgressBar::new(orders).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} orders {per_sec} ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} orders {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    let latency =
        Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| LoadError::Unreachable {
            url: config.url.clone(),
            message: format!("histogram: {e}"),
        })?;
    let client = Arc::new(Client {
        http,
        config: config.clone(),
        latency_us: Mutex::new(latency),
    });
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = config.duration.map(|d| started + d);
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    // The next order's index, while the budget, the deadline and Ctrl-C allow.
    let take = {
        let (next, stop, orders) = (next.clone(), stop.clone(), config.orders);
        move || {
            if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            let index = next.fetch_add(1, Ordering::Relaxed);
            (orders.is_none_or(|orders| index < orders)).then_some(index)
        }
    };
    let driver = async {
        match config.rate {
            None => {
                let workers: Vec<_> = (0..config.concurrency)
                    .map(|_| {
                        let (client, tally, run_id, bar, take) = (
                            client.clone(),
                            tally.clone(),
                            run_id.clone(),
                            bar.clone(),
                            take.clone(),
                        );
                        tokio::spawn(async move {
                            while let Some(index) = take() {
                                tally.started.fetch_add(1, Ordering::Relaxed);
                                one_order(client.clone(), tally.clone(), run_id.clone(), index)
                                    .await;
                                bar.inc(1);
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    if let Err(join) = worker.await {
                        tracing::error!(%join, "a load worker panicked");
                    }
                }
            }
            Some(rate) => {
                let room = Arc::new(Semaphore::new(config.concurrency));
                let mut ticks =
                    tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let mut running = tokio::task::JoinSet::new();
                loop {
                    ticks.tick().await;
                    let Some(index) = take() else { break };
                    let Ok(permit) = room.clone().try_acquire_owned() else {
                        tally.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    tally.started.fetch_add(1, Ordering::Relaxed);
                    let (client, tally, run_id, bar) =
                        (client.clone(), tally.clone(), run_id.clone(), bar.clone());
                    running.spawn(async move {
                        one_order(client, tally, run_id, index).await;
                        bar.inc(1);
                        drop(permit);
                    });
                    while running.try_join_next().is_some() {}
                }
                while running.join_next().await.is_some() {}
            }
        }
    };
    tokio::pin!(driver);
    tokio::pin!(shutdown);
    tokio::select! {
        () = &mut driver => {}
        () = &mut shutdown => {
            // Start nothing new; let the orders in flight finish.
            stop.store(true, Ordering::Relaxed);
            driver.await;
        }
    }
    bar.finish_and_clear();
    let (errors, first_messages) = tally.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let latency_us = client.latency_us.lock().await.clone();
    Ok(LoadReport {
        run_id: run_id.to_string(),
        orders_started: tally.started.load(Ordering::Relaxed),
        orders_completed: tally.completed.load(Ordering::Relaxed),
        orders_skipped: tally.skipped.load(Ordering::Relaxed),
        commands_ok: tally.ok.load(Ordering::Relaxed),
        errors,
        first_messages,
        elapsed: started.elapsed(),
        latency_us,
    })
}
