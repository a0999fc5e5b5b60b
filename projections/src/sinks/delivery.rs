//! One event to one receiver over the CloudEvents HTTP binding (binary
//! mode), and what its answer means: 2xx acknowledges; 408, 429, 5xx,
//! timeouts and transport errors are retried with exponential backoff and
//! jitter (never sooner than a `Retry-After` asks); any other answer parks
//! the event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use backon::BackoffBuilder;
use domain::RecordedEvent;

use super::SinkShared;

/// Longest a receiver may take to answer one event.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first retry's pause and the longest one.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// An event ready to send: its `ce-` headers and JSON body.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(event: &RecordedEvent) -> Self {
        let (headers, body) = event.to_http_binary();
        Self { headers, body }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Refused for good: the receiver's status and what it said.
    Parked {
        status: Option<u16>,
        error: String,
    },
}

enum Attempt {
    Delivered,
    Retry {
        error: String,
        after: Option<Duration>,
    },
    Park {
        status: u16,
        error: String,
    },
}

async fn attempt(shared: &SinkShared, request: &Request) -> Attempt {
    let mut builder = shared
        .http
        .post(&shared.spec.url)
        .timeout(REQUEST_TIMEOUT)
        .body(request.body.clone());
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    for (name, value) in &shared.spec.headers {
        builder = builder.header(name, value);
    }
    let response = match builder.send().await {
        Ok(response) => response,
        Err(error) => {
            return Attempt::Retry {
                error: transport_error(&error),
                after: None,
            }
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered;
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|seconds| Duration::from_secs(seconds).min(LONGEST_RETRY));
    let text = response.text().await.unwrap_or_default();
    let said: String = text.chars().take(300).collect();
    let error = format!("{status}{}{said}", if said.is_empty() { "" } else { ": " });
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        Attempt::Retry { error, after }
    } else {
        Attempt::Park {
            status: status.as_u16(),
            error,
        }
    }
}

fn transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "transport error"
    };
    let mut text = format!("{kind}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Delivers one event, retrying until the receiver acknowledges or refuses
/// it; holds one of the sink's in-flight permits only while a request is
/// out. Dropping the future (shutdown) abandons the event: it is not
/// checkpointed, so the next start sends it again.
pub async fn deliver(shared: Arc<SinkShared>, request: Request) -> Outcome {
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(LONGEST_RETRY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let mut retrying = Retrying(None);
    loop {
        let answer = {
            let Ok(_permit) = shared.in_flight.acquire().await else {
                return Outcome::Parked {
                    status: None,
                    error: "the sink stopped".into(),
                };
            };
            attempt(&shared, &request).await
        };
        match answer {
            Attempt::Delivered => return Outcome::Delivered,
            Attempt::Park { status, error } => {
                return Outcome::Parked {
                    status: Some(status),
                    error,
                }
            }
            Attempt::Retry { error, after } => {
                shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                retrying.start(&shared);
                let pause = backoff.next().unwrap_or(LONGEST_RETRY);
                let pause = after.map_or(pause, |after| after.max(pause));
                tracing::debug!(sink = shared.spec.name, %error, ?pause, "retrying an event");
                *shared
                    .counters
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(error);
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// Counts this delivery among the sink's retrying orders while it waits
/// to try again, until it ends (or is dropped).
struct Retrying(Option<Arc<SinkShared>>);

impl Retrying {
    fn start(&mut self, shared: &Arc<SinkShared>) {
        if self.0.is_none() {
            shared.counters.retrying.fetch_add(1, Ordering::Relaxed);
            self.0 = Some(shared.clone());
        }
    }
}

impl Drop for Retrying {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.counters.retrying.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Whether the receiver answers at all (any HTTP status will do), asked
/// once at start with the CloudEvents webhook's `OPTIONS` handshake.
pub async fn reachable(http: &reqwest::Client, url: &str) -> Result<(), String> {
    http.request(reqwest::Method::OPTIONS, url)
        .header("WebHook-Request-Origin", "orderstore")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map(|_| ())
        .map_err(|error| transport_error(&error))
}
