//! Shared support of the integration tests: an in-process server on port 0
//! with a temporary data directory, and a small GraphQL client.

use std::time::Duration;

use api::serve::{self, ServeConfig, Server};
use serde_json::{json, Value};

pub struct TestServer {
    pub server: Option<Server>,
    pub url: String,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub config: ServeConfig,
}

/// Which log a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// The broker at ORDERSTORE_KAFKA (scripts/test starts one), with topics
    /// under a prefix of the test's own.
    Kafka,
}

/// Runs an async test body once per backend: `name::embedded` and `name::kafka`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$name($crate::support::Backend::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn kafka() {
                super::$name($crate::support::Backend::Kafka).await
            }
        }
    )*};
}

pub fn kafka_bootstrap() -> String {
    std::env::var("ORDERSTORE_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_on(backend: Backend, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        Self::start_with(|config| {
            if backend == Backend::Kafka {
                config.backend = serve::Backend::Kafka(serve::KafkaSettings {
                    bootstrap_servers: kafka_bootstrap(),
                    replication_factor: 1,
                    transactional_id: None,
                    session_timeout: None,
                });
                config.topic_prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
            }
            configure(config);
        })
        .await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, configure).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let mut config = ServeConfig::new(dir.path().to_path_buf(), "127.0.0.1:0".parse().unwrap());
        config.partitions = Some(4);
        configure(&mut config);
        let server = match serve::start(config.clone()).await {
            Ok(server) => server,
            Err(error) => panic!("the test server did not start: {error} (Kafka tests need scripts/test or scripts/kafka/kafka start)"),
        };
        let base = format!("http://{}", server.addr);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            url: format!("{base}/graphql"),
            base,
            server: Some(server),
            dir,
            http,
            config,
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    /// Posts a GraphQL request; returns the whole response body.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Waits (up to a minute) until `/ready`: every projection caught up.
    pub async fn wait_ready(&self) {
        let url = format!("{}/ready", self.base);
        eventually(
            Duration::from_secs(60),
            "the projections catch up",
            || async {
                let ready = self.http.get(&url).send().await.unwrap();
                ready.status().is_success().then_some(())
            },
        )
        .await
    }

    /// `/ready`: its status and its body.
    pub async fn ready_body(&self) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/ready", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and starts it again on the same data directory (and
    /// topics), with `configure` applied to its configuration.
    pub async fn restart(mut self, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut config = self.config.clone();
        configure(&mut config);
        self.server.take().unwrap().shutdown().await.unwrap();
        Self::start_in(self.dir, |c| *c = config).await
    }

    /// Stops the server and returns its data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.server.take().unwrap().shutdown().await.unwrap();
        self.dir
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_owned)
}

pub fn error_field(body: &Value) -> Option<String> {
    body["errors"][0]["extensions"]["field"]
        .as_str()
        .map(str::to_owned)
}

/// Asserts the response has no errors and returns its data.
pub fn data(body: Value) -> Value {
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

pub const PLACE: &str = "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { orderId version consistencyToken events { id type sequence time correlationId causationId data partition offset } } }";
pub const CONFIRM: &str = "mutation($input: ConfirmPaymentInput!) { confirmPayment(input: $input) { version consistencyToken events { type } } }";
pub const RESERVE: &str = "mutation($input: OrderRefInput!) { reserveInventory(input: $input) { version consistencyToken } }";
pub const SHIP: &str =
    "mutation($input: ShipOrderInput!) { shipOrder(input: $input) { version consistencyToken } }";
pub const DELIVER: &str =
    "mutation($input: OrderRefInput!) { deliverOrder(input: $input) { version consistencyToken } }";
pub const CANCEL: &str = "mutation($input: CancelOrderInput!) { cancelOrder(input: $input) { version consistencyToken events { type data } } }";
pub const REFUND: &str = "mutation($input: RefundPaymentInput!) { refundPayment(input: $input) { version consistencyToken events { type data } } }";

/// A PlaceOrder input: two mugs at 12.50 and a tea at 8.99, 8.25% tax (total 36.79).
pub fn order_input(order_id: &str, customer: &str) -> Value {
    json!({ "input": {
        "orderId": order_id,
        "customerId": customer,
        "currency": "USD",
        "items": [
            { "sku": "MUG", "quantity": 2, "unitPrice": "12.50" },
            { "sku": "TEA", "quantity": 1, "unitPrice": "8.99" }
        ],
        "taxRateBps": 825
    }})
}

pub fn order_ref(order_id: &str) -> Value {
    json!({ "input": { "orderId": order_id } })
}

/// Tries `attempt` until it answers `Some` and answers that, pausing a
/// little longer each time (10 ms up to 200 ms); fails the test, naming
/// `what` was awaited, when `within` has passed. For conditions that hold
/// eventually (a projection catching up, a file going); never a fixed sleep.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(found) = attempt().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Appends records directly to the log, retrying while the processor holds
/// a partition in an open transaction (the log refuses plain appends then).
pub async fn append_eventually(
    log: &dyn eventlog::EventLog,
    records: Vec<eventlog::OutgoingRecord>,
) -> Vec<eventlog::Position> {
    eventually(Duration::from_secs(10), "the log takes the append", || {
        let records = records.clone();
        async move { log.append(records).await.ok() }
    })
    .await
}

/// Runs `orderstore` like `orderstore()`, requires success and answers
/// what it printed on stdout.
pub fn orderstore_ok(args: &[&str], dir: &std::path::Path) -> String {
    let output = orderstore(args, dir);
    assert!(
        output.status.success(),
        "orderstore {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs the `orderstore` binary with `args` on the data directory `dir`,
/// without the environment's Kafka address or token (each test says what
/// it means), and without backtraces in its error output.
pub fn orderstore(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("ORDERSTORE_KAFKA")
        .env_remove("ORDERSTORE_AUTH_TOKEN")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

/// Starts the real `orderstore serve` binary on `dir` at a free port, with
/// `args` added and RUST_LOG `log`, without the environment's Kafka
/// address; answers the child and the address it printed.
pub fn spawn_serve(
    dir: &std::path::Path,
    args: &[String],
    log: &str,
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_orderstore"))
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("ORDERSTORE_KAFKA")
        .env("RUST_LOG", log)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_owned();
    assert!(!addr.is_empty(), "serve printed {line:?}");
    (child, addr)
}
