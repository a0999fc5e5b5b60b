//! `orderstore load`: a realistic workload against a running server over
//! GraphQL. Each order goes through its lifecycle: placed, reserved, paid,
//! then mostly shipped and delivered, with a share of cancellations (before
//! and after payment) and partial refunds. Shows a progress bar; reports
//! commands per second and latency percentiles.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub url: String,
    pub orders: u64,
    pub concurrency: usize,
    pub auth_token: Option<String>,
    pub seed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{operation} was refused: {message}")]
    Refused {
        operation: &'static str,
        message: String,
    },
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub orders: u64,
    pub commands: u64,
    pub elapsed: Duration,
    pub latencies_ms: Vec<f64>,
}

impl LoadReport {
    pub fn commands_per_second(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_ms.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let index = ((sorted.len() - 1) as f64 * p).round() as usize;
        sorted[index]
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} orders, {} commands in {:.1} s: {:.0} commands/s; latency p50 {:.1} ms, p99 {:.1} ms",
            self.orders,
            self.commands,
            self.elapsed.as_secs_f64(),
            self.commands_per_second(),
            self.percentile(0.5),
            self.percentile(0.99),
        )
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
    latencies: Mutex<Vec<f64>>,
}

impl Client {
    async fn call(
        &self,
        operation: &'static str,
        query: &str,
        input: Value,
    ) -> Result<Value, LoadError> {
        let started = Instant::now();
        let mut request = self
            .http
            .post(&self.config.url)
            .json(&json!({ "query": query, "variables": { "input": input } }));
        if let Some(token) = &self.config.auth_token {
            request = request.bearer_auth(token);
        }
        let http = |source| LoadError::Http {
            url: self.config.url.clone(),
            source,
        };
        let body: Value = request
            .send()
            .await
            .map_err(http)?
            .json()
            .await
            .map_err(http)?;
        self.latencies
            .lock()
            .await
            .push(started.elapsed().as_secs_f64() * 1000.0);
        if let Some(errors) = body.get("errors") {
            return Err(LoadError::Refused {
                operation,
                message: errors.to_string(),
            });
        }
        Ok(body["data"].clone())
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
) -> Result<u64, LoadError> {
    let order_id = format!("load-{run}-{index}");
    let customers = (client.config.orders / 5).max(10);
    let (currency, price) = CURRENCIES[rng.random_range(0..CURRENCIES.len())];
    let items: Vec<Value> = (0..rng.random_range(1..=4))
        .map(|i| json!({ "sku": format!("SKU-{}", (index + i) % 97), "quantity": rng.random_range(1..=3), "unitPrice": price }))
        .collect();
    let key = |step: &str| format!("{order_id}-{step}");
    let tax_rate_bps = [0, 500, 825, 2000][rng.random_range(0..4)];
    let placed = client
        .call(
            "placeOrder",
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
        client.call("cancelOrder", CANCEL, json!({ "orderId": order_id, "reason": "changed mind", "idempotencyKey": key("cancel") })).await?;
        return Ok(2);
    }
    client
        .call("reserveInventory", RESERVE, reference("reserve"))
        .await?;
    client.call("confirmPayment", PAY, json!({ "orderId": order_id, "paymentId": key("pay"), "amount": total, "idempotencyKey": key("pay") })).await?;
    if roll < 0.13 {
        client.call("cancelOrder", CANCEL, json!({ "orderId": order_id, "reason": "out of stock", "idempotencyKey": key("cancel") })).await?;
        return Ok(4);
    }
    client.call("shipOrder", SHIP, json!({ "orderId": order_id, "carrier": "DHL", "trackingNumber": format!("TRK{index:09}"), "idempotencyKey": key("ship") })).await?;
    client
        .call("deliverOrder", DELIVER, reference("deliver"))
        .await?;
    if roll > 0.9 && currency != "JPY" {
        client.call("refundPayment", REFUND, json!({ "orderId": order_id, "amount": "1.00", "reason": "damaged box", "idempotencyKey": key("refund") })).await?;
        return Ok(6);
    }
    Ok(5)
}

pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(config.concurrency)
        .build()
        .map_err(|source| LoadError::Http {
            url: config.url.clone(),
            source,
        })?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let bar = ProgressBar::new(config.orders);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders {per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let client = Arc::new(Client {
        http,
        config: config.clone(),
        latencies: Mutex::new(Vec::new()),
    });
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..config.concurrency)
        .map(|_| {
            let (client, next, bar, run_id) =
                (client.clone(), next.clone(), bar.clone(), run_id.clone());
            tokio::spawn(async move {
                let mut commands = 0;
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if index >= client.config.orders {
                        return Ok::<u64, LoadError>(commands);
                    }
                    let mut rng = StdRng::seed_from_u64(
                        client.config.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                    );
                    commands += order_lifecycle(&client, &run_id, index, &mut rng).await?;
                    bar.inc(1);
                }
            })
        })
        .collect();
    let mut commands = 0;
    let mut first_error = None;
    for worker in workers {
        match worker.await {
            Ok(Ok(n)) => commands += n,
            Ok(Err(error)) => first_error = first_error.or(Some(error)),
            Err(join) => tracing::error!(%join, "load worker panicked"),
        }
    }
    bar.finish_and_clear();
    if let Some(error) = first_error {
        return Err(error);
    }
    let latencies_ms = std::mem::take(&mut *client.latencies.lock().await);
    Ok(LoadReport {
        orders: config.orders,
        commands,
        elapsed: started.elapsed(),
        latencies_ms,
    })
}
