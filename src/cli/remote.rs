//! The operator operations done by the server that owns a data directory,
//! over its GraphQL admin fields. Answers deserialize into the same typed
//! values the local implementation returns; a missing or malformed field
//! is an error, never a default.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::OrderId;
use eventlog::Shutdown;
use projections::dlq::RetryReport;
use replay::ops::{
    DeadLetterView, Inspection, Operations, OpsError, ProjectionVerification, RebuildKind,
    RebuildProgress, RebuildReport, RebuildWatch, SnapshotVerification,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// How often a watched rebuild's progress is asked for.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// GraphQL over HTTP to one server, with its bearer token.
#[derive(Debug, Clone)]
pub struct RemoteOperations {
    url: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The URL of the live server owning `data_dir`, if one answers.
pub async fn running_server(data_dir: &std::path::Path) -> Option<String> {
    let url = replay::ops::server_file::recorded_url(data_dir)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let health = http.get(format!("{url}/health")).send().await.ok()?;
    health.status().is_success().then_some(url)
}

#[derive(Debug, Deserialize)]
struct GraphQlError {
    message: String,
    #[serde(default)]
    extensions: Option<ErrorExtensions>,
}

#[derive(Debug, Deserialize)]
struct ErrorExtensions {
    code: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Response {
    data: Option<Value>,
    #[serde(default)]
    errors: Vec<GraphQlError>,
}

impl RemoteOperations {
    /// `url` is the server's base URL (`http://127.0.0.1:8080`).
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Runs one operation and answers its one field, typed.
    async fn ask<T: DeserializeOwned>(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Result<T, OpsError> {
        let url = format!("{}/graphql", self.url);
        let mut request = self
            .http
            .post(&url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let failed = |e: reqwest::Error| OpsError::Remote(format!("request to {url} failed: {e}"));
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = response.text().await.map_err(failed)?;
        let answer: Result<Response, _> = serde_json::from_str(&body);
        if !status.is_success() {
            let message = match &answer {
                Ok(Response { errors, .. }) if !errors.is_empty() => errors[0].message.clone(),
                _ => body,
            };
            return Err(OpsError::Remote(format!(
                "the server answered {}: {message}",
                status.as_u16()
            )));
        }
        let answer = answer
            .map_err(|e| OpsError::Remote(format!("the server's answer is not GraphQL: {e}")))?;
        if let Some(error) = answer.errors.into_iter().next() {
            return Err(OpsError::Refused {
                code: error
                    .extensions
                    .and_then(|e| e.code)
                    .unwrap_or_else(|| "ERROR".into()),
                message: error.message,
            });
        }
        let value = answer
            .data
            .and_then(|mut data| data.get_mut(field).map(Value::take))
            .ok_or_else(|| OpsError::Remote(format!("the server's answer has no {field}")))?;
        serde_json::from_value(value)
            .map_err(|e| OpsError::Remote(format!("the server's {field} is not as expected: {e}")))
    }

    /// Runs one operation and answers its one field as JSON (for the sink
    /// commands, which only print what they get).
    pub async fn field(
        &self,
        query: &str,
        variables: Value,
        field: &str,
    ) -> Result<Value, OpsError> {
        self.ask(query, variables, field).await
    }

    /// Starts a rebuild or switch of one projection: its target generation.
    async fn start(&self, name: &str, kind: RebuildKind) -> Result<u32, OpsError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Started {
            target_version: u32,
        }
        let (verb, started): (&str, Result<Started, _>) = match kind {
            RebuildKind::Rebuild {
                until,
                keep_previous,
            } => (
                "rebuild",
                self.ask(
                    "mutation($name: String!, $until: DateTime, $keep: Boolean) { rebuildProjection(name: $name, until: $until, keepPrevious: $keep) { targetVersion } }",
                    json!({ "name": name, "until": until, "keep": keep_previous }),
                    "rebuildProjection",
                )
                .await,
            ),
            RebuildKind::SwitchTo(generation) => (
                "switch",
                self.ask(
                    "mutation($name: String!, $generation: Int!) { switchProjection(name: $name, generation: $generation) { targetVersion } }",
                    json!({ "name": name, "generation": generation }),
                    "switchProjection",
                )
                .await,
            ),
        };
        started
            .map(|s| s.target_version)
            .map_err(|e| OpsError::Remote(format!("the server refused to {verb} {name}: {e}")))
    }
}

/// One projection's rebuild state as the `projections` query shows it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProjectionState {
    name: String,
    version: u32,
    rebuilding: Option<Rebuilding>,
    last_rebuild: Option<LastRebuild>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rebuilding {
    target_version: u32,
    applied: Count,
    total: Count,
    events_per_second: f64,
    phase: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastRebuild {
    target_version: u32,
    until: Option<DateTime<Utc>>,
    events: Count,
    seconds: f64,
    error: Option<String>,
}

/// A count the schema carries as a string.
#[derive(Debug, Clone, Copy)]
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Count).map_err(serde::de::Error::custom)
    }
}

const PROJECTIONS_STATE: &str = "{ projections { name version rebuilding { targetVersion applied total eventsPerSecond phase } lastRebuild { targetVersion until events seconds error } } }";

#[async_trait]
impl Operations for RemoteOperations {
    fn server(&self) -> Option<&str> {
        Some(&self.url)
    }

    async fn inspect_order(
        &self,
        order_id: &OrderId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError> {
        self.ask(
            "query($id: ID!, $at: DateTime) { inspectOrder(id: $id, at: $at) { text json } }",
            json!({ "id": order_id.as_str(), "at": at }),
            "inspectOrder",
        )
        .await
    }

    async fn inspect_diff(
        &self,
        order_id: &OrderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Inspection, OpsError> {
        self.ask(
            "query($id: ID!, $from: DateTime!, $to: DateTime!) { inspectDiff(id: $id, from: $from, to: $to) { text json } }",
            json!({ "id": order_id.as_str(), "from": from, "to": to }),
            "inspectDiff",
        )
        .await
    }

    async fn inspect_trace(
        &self,
        correlation_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError> {
        self.ask(
            "query($id: String!, $at: DateTime) { inspectTrace(correlationId: $id, at: $at) { text json } }",
            json!({ "id": correlation_id, "at": at }),
            "inspectTrace",
        )
        .await
    }

    async fn verify_snapshots(&self) -> Result<SnapshotVerification, OpsError> {
        self.ask(
            "{ verifySnapshots { orders snapshots undecodable differences } }",
            json!({}),
            "verifySnapshots",
        )
        .await
    }

    async fn verify_projection(&self, name: &str) -> Result<ProjectionVerification, OpsError> {
        self.ask(
            "mutation($name: String!) { verifyProjection(name: $name) { name version events entries different differences { entry served rebuilt } } }",
            json!({ "name": name }),
            "verifyProjection",
        )
        .await
        .map_err(|e| OpsError::Remote(format!("the server could not verify {name}: {e}")))
    }

    async fn dead_letters(
        &self,
        projection: Option<&str>,
    ) -> Result<Vec<DeadLetterView>, OpsError> {
        self.ask(
            "query($p: String) { deadLetters(projection: $p, first: 1000) { projection partition offset orderId eventType receivedAt error headers { key value } payloadBytes payloadHex } }",
            json!({ "p": projection }),
            "deadLetters",
        )
        .await
    }

    async fn retry_dead_letters(
        &self,
        projection: &str,
        order_id: Option<&str>,
    ) -> Result<RetryReport, OpsError> {
        self.ask(
            "mutation($p: String!, $o: ID) { retryDeadLetters(projection: $p, orderId: $o) { applied stillParked } }",
            json!({ "p": projection, "o": order_id }),
            "retryDeadLetters",
        )
        .await
    }

    async fn discard_dead_letter(
        &self,
        projection: &str,
        partition: u32,
        offset: u64,
    ) -> Result<DeadLetterView, OpsError> {
        let discarded = self
            .ask(
                "mutation($id: ID!) { discardDeadLetter(id: $id, confirm: true) { projection partition offset orderId eventType receivedAt error headers { key value } payloadBytes payloadHex } }",
                json!({ "id": format!("{projection}:{partition}:{offset}") }),
                "discardDeadLetter",
            )
            .await;
        match discarded {
            Err(OpsError::Refused { code, .. }) if code == "NOT_FOUND" => Err(OpsError::NotFound(
                format!("no dead letter at {partition}:{offset} in {projection}"),
            )),
            other => other,
        }
    }

    async fn rebuild(
        &self,
        names: &[&'static str],
        kind: RebuildKind,
        watch: &dyn RebuildWatch,
        shutdown: Shutdown,
    ) -> Result<Vec<RebuildReport>, OpsError> {
        let mut pending: HashMap<&str, u32> = HashMap::new();
        for name in names {
            let target = self.start(name, kind).await?;
            watch.started(name, target);
            pending.insert(name, target);
        }
        let mut reports = Vec::new();
        loop {
            let states: Vec<ProjectionState> = tokio::select! {
                states = self.ask(PROJECTIONS_STATE, json!({}), "projections") => states?,
                _ = shutdown.clone() => return Err(OpsError::Detached),
            };
            for state in states {
                let Some(&target) = pending.get(state.name.as_str()) else {
                    continue;
                };
                if let Some(running) = state
                    .rebuilding
                    .as_ref()
                    .filter(|r| r.target_version == target)
                {
                    watch.progress(
                        &state.name,
                        &RebuildProgress {
                            applied: running.applied.0,
                            total: running.total.0,
                            events_per_second: running.events_per_second,
                            phase: running.phase.clone(),
                        },
                    );
                    continue;
                }
                let Some(last) = state.last_rebuild.filter(|l| l.target_version == target) else {
                    continue; // not started yet
                };
                let report = RebuildReport {
                    name: state.name.clone(),
                    target_version: target,
                    events: last.events.0,
                    seconds: last.seconds,
                    served_version: state.version,
                    error: last.error,
                    frozen_at: last.until,
                    left_in: None,
                    at_next_start: false,
                };
                watch.finished(&report);
                pending.remove(state.name.as_str());
                reports.push(report);
            }
            if pending.is_empty() {
                return Ok(reports);
            }
            tokio::time::sleep(PROGRESS_EVERY).await;
        }
    }
}
