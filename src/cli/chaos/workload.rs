//! The chaos workload: workers that drive order lifecycles over GraphQL
//! and keep a ledger of every command's outcome. Acknowledged commands
//! carry the events the server said it wrote; the checker looks for each
//! of them in the log afterwards.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// How one command ended, as a client can know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: its events are in the ledger.
    Ok,
    /// Definitely not applied: rejected, refused (UNAVAILABLE), or never sent.
    Failed,
    /// May or may not have applied: TIMEOUT, or the connection broke mid-request.
    Indeterminate,
}

/// One event an acknowledged command wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedEvent {
    pub order_id: String,
    pub id: String,
    pub sequence: u64,
}

#[derive(Debug, Default)]
pub struct Ledger {
    pub ok: u64,
    pub failed: u64,
    pub indeterminate: u64,
    pub acked: Vec<AckedEvent>,
    /// Orders with at least one acknowledged command.
    pub orders: Vec<String>,
    /// Commands not acknowledged, by error code (TRANSPORT, CONNECT for
    /// a refused connection).
    pub codes: std::collections::BTreeMap<String, u64>,
}

impl Ledger {
    pub fn operations(&self) -> u64 {
        self.ok + self.failed + self.indeterminate
    }
}

/// A GraphQL client of one node.
#[derive(Debug, Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap_or_default(),
            token,
        }
    }

    /// Posts one operation: the body, or the transport error.
    pub async fn gql(&self, query: &str, variables: Value) -> Result<Value, reqwest::Error> {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await?.json().await
    }

    /// One mutation, classified, with the events it answered.
    pub async fn command(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> (Outcome, Vec<AckedEvent>) {
        let (outcome, events, _) = self.command_with_code(query, variables, field).await;
        (outcome, events)
    }

    /// The same, with the error code of a command not acknowledged
    /// (CONNECT for a refused connection, TRANSPORT for a broken one).
    pub async fn command_with_code(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> (Outcome, Vec<AckedEvent>, String) {
        match self.gql(query, variables).await {
            Ok(body) => {
                if let Some(events) = body["data"][field]["events"].as_array() {
                    let acked = events
                        .iter()
                        .filter_map(|e| {
                            Some(AckedEvent {
                                order_id: body["data"][field]["orderId"].as_str()?.to_owned(),
                                id: e["id"].as_str()?.to_owned(),
                                sequence: e["sequence"].as_u64()?,
                            })
                        })
                        .collect();
                    return (Outcome::Ok, acked, String::new());
                }
                let code = body["errors"][0]["extensions"]["code"]
                    .as_str()
                    .unwrap_or("NO_CODE")
                    .to_owned();
                if code == "TIMEOUT" || code == "INTERNAL" {
                    (Outcome::Indeterminate, Vec::new(), code)
                } else {
                    (Outcome::Failed, Vec::new(), code)
                }
            }
            // Refused connections never reached the server.
            Err(error) if error.is_connect() => (Outcome::Failed, Vec::new(), "CONNECT".into()),
            Err(_) => (Outcome::Indeterminate, Vec::new(), "TRANSPORT".into()),
        }
    }

    /// `path` on this node with a query string.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Url {
        let base = format!("{}{path}", self.base);
        reqwest::Url::parse_with_params(&base, query)
            .unwrap_or_else(|_| reqwest::Url::parse("http://127.0.0.1:1/").expect("a literal URL"))
    }

    pub async fn ready(&self, within: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        while started.elapsed() < within {
            if let Ok(response) = self.http.get(format!("{}/ready", self.base)).send().await {
                if response.status().is_success() {
                    return Some(started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

const FIELDS: &str = "orderId version events { id sequence }";

pub fn mutation(name: &str, input: &str) -> String {
    format!("mutation($input: {input}!) {{ {name}(input: $input) {{ {FIELDS} }} }}")
}

/// The input of the workload's `placeOrder` (36.79 EUR with tax).
pub fn place_input(order_id: &str, customer: &str) -> Value {
    json!({ "orderId": order_id, "customerId": customer, "currency": "EUR",
        "items": [{ "sku": "MUG", "quantity": 2, "unitPrice": "12.50" }, { "sku": "TEA", "quantity": 1, "unitPrice": "8.99" }],
        "taxRateBps": 825 })
}

/// The lifecycle steps of an order: (field, input type, variables).
fn steps(
    order_id: &str,
    customer: &str,
    rng: &mut StdRng,
) -> Vec<(&'static str, &'static str, Value)> {
    let mut steps = vec![(
        "placeOrder",
        "PlaceOrderInput",
        json!({ "input": place_input(order_id, customer) }),
    )];
    let reference = json!({ "input": { "orderId": order_id } });
    steps.push(("reserveInventory", "OrderRefInput", reference.clone()));
    steps.push((
        "confirmPayment",
        "ConfirmPaymentInput",
        json!({ "input": { "orderId": order_id, "paymentId": format!("pay-{order_id}"), "amount": "36.79" } }),
    ));
    if rng.random_bool(0.2) {
        steps.push((
            "cancelOrder",
            "CancelOrderInput",
            json!({ "input": { "orderId": order_id, "reason": "changed my mind" } }),
        ));
        return steps;
    }
    steps.push((
        "shipOrder",
        "ShipOrderInput",
        json!({ "input": { "orderId": order_id, "carrier": "UPS", "trackingNumber": "1Z999" } }),
    ));
    steps.push(("deliverOrder", "OrderRefInput", reference));
    if rng.random_bool(0.2) {
        steps.push((
            "refundPayment",
            "RefundPaymentInput",
            json!({ "input": { "orderId": order_id, "amount": "5.00", "reason": "a broken mug" } }),
        ));
    }
    steps
}

/// Runs `workers` workers until `stop` is set; each order goes through its
/// lifecycle until a command does not succeed, then the next order starts.
pub async fn run(
    client: Client,
    workers: usize,
    seed: u64,
    tag: String,
    stop: Arc<AtomicBool>,
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (client, ledger, stop, tag) =
            (client.clone(), ledger.clone(), stop.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let order_id = format!("{tag}-{worker}-{index}");
                index += 1;
                let customer = format!("cust-{}", rng.random_range(0..20));
                let mut acknowledged = false;
                for (field, input, variables) in steps(&order_id, &customer, &mut rng) {
                    let (outcome, events, code) = client
                        .command_with_code(&mutation(field, input), variables, field)
                        .await;
                    {
                        let mut ledger = ledger.lock().unwrap_or_else(|p| p.into_inner());
                        match outcome {
                            Outcome::Ok => {
                                ledger.ok += 1;
                                ledger.acked.extend(events);
                                if !acknowledged {
                                    ledger.orders.push(order_id.clone());
                                    acknowledged = true;
                                }
                            }
                            Outcome::Failed => ledger.failed += 1,
                            Outcome::Indeterminate => ledger.indeterminate += 1,
                        }
                        if outcome != Outcome::Ok {
                            *ledger.codes.entry(code).or_default() += 1;
                        }
                    }
                    if outcome != Outcome::Ok {
                        // The node may be down: give it a moment.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        break;
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Arc::try_unwrap(ledger)
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default()
}
