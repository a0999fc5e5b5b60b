//! The invariant checker run after every scenario, against the node once
//! it is ready again. It reads the whole events topic through the node's
//! `/export` and asks the node to verify each read model and the snapshots
//! against the log:
//!
//! - every acknowledged command's events are in the log exactly once, at
//!   the sequence the client was told;
//! - each order's sequences are 1, 2, 3, ... in log order, with no gap and
//!   no repeat (events republished on purpose with the same id excepted);
//! - every read model equals a rebuild from the log, entry by entry (money
//!   rows to the minor unit), and every snapshot equals a fold of the log;
//! - the history read model holds, for each acknowledged order, the
//!   version the log has.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::workload::{Client, Ledger};

/// What the checker found: each violation, described.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// Events in the log (all records read).
    pub events: u64,
    /// Records whose id had been seen already (a republished event).
    pub repeated_ids: u64,
}

impl Findings {
    fn violation(&mut self, text: String) {
        if self.violations.len() < 1000 {
            self.violations.push(text);
        }
    }
}

/// `allow_repeated_ids`: the scenario republished events with their ids.
pub async fn check(client: &Client, ledger: &Ledger, allow_repeated_ids: bool) -> Findings {
    let mut findings = Findings::default();
    // Commands left in flight by a fault (indeterminate ones) may still be
    // applied after the workload stops: check once the log is still.
    let mut export = match read_export(client).await {
        Ok(text) => text,
        Err(error) => {
            findings.violation(error);
            return findings;
        }
    };
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        client.ready(std::time::Duration::from_secs(30)).await;
        match read_export(client).await {
            Ok(again) if again.len() == export.len() => break,
            Ok(again) => export = again,
            Err(error) => {
                findings.violation(error);
                return findings;
            }
        }
    }
    // Per order, its events' (id, sequence) in log order.
    let mut orders: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    let mut ids: HashMap<String, (String, u64)> = HashMap::new();
    for line in export.lines() {
        findings.events += 1;
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            findings.violation(format!("an export line is not JSON: {line}"));
            continue;
        };
        let (Some(id), Some(subject), Some(sequence)) = (
            event["id"].as_str(),
            event["subject"].as_str(),
            event["sequence"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok()),
        ) else {
            findings.violation(format!("an event lacks id, subject or sequence: {line}"));
            continue;
        };
        if let Some(first) = ids.get(id) {
            findings.repeated_ids += 1;
            if !allow_repeated_ids || *first != (subject.to_owned(), sequence) {
                findings.violation(format!(
                    "event id {id} is in the log twice ({subject} {sequence})"
                ));
            }
            continue;
        }
        ids.insert(id.to_owned(), (subject.to_owned(), sequence));
        orders
            .entry(subject.to_owned())
            .or_default()
            .push((id.to_owned(), sequence));
    }
    for (order, events) in &orders {
        for (index, (_, sequence)) in events.iter().enumerate() {
            if *sequence != index as u64 + 1 {
                findings.violation(format!(
                    "{order}: event {} of the log has sequence {sequence}",
                    index + 1
                ));
                break;
            }
        }
    }
    let mut acked_ids = HashSet::new();
    for acked in &ledger.acked {
        acked_ids.insert(acked.id.clone());
        match ids.get(&acked.id) {
            None => findings.violation(format!(
                "acknowledged event {} ({} {}) is not in the log",
                acked.id, acked.order_id, acked.sequence
            )),
            Some((subject, sequence))
                if *subject != acked.order_id || *sequence != acked.sequence =>
            {
                findings.violation(format!(
                    "acknowledged event {} was {} {}, the log has {subject} {sequence}",
                    acked.id, acked.order_id, acked.sequence
                ))
            }
            Some(_) => {}
        }
    }
    verify_read_models(client, &mut findings).await;
    // The read model's version of each acknowledged order is the log's.
    let expected: BTreeMap<&str, usize> = ledger
        .orders
        .iter()
        .filter_map(|o| orders.get(o).map(|events| (o.as_str(), events.len())))
        .collect();
    for chunk in expected.iter().collect::<Vec<_>>().chunks(50) {
        let query: String = chunk
            .iter()
            .enumerate()
            .map(|(i, (order, _))| format!("o{i}: order(id: {}) {{ version }} ", json!(order)))
            .collect();
        match client.gql(&format!("{{ {query} }}"), json!({})).await {
            Ok(body) => {
                for (i, (order, count)) in chunk.iter().enumerate() {
                    let version = body["data"][format!("o{i}")]["version"].as_u64();
                    if version != Some(**count as u64) {
                        findings.violation(format!(
                            "{order}: the read model has version {version:?}, the log {count}"
                        ));
                    }
                }
            }
            Err(error) => findings.violation(format!("cannot read orders back: {error}")),
        }
    }
    findings
}

/// The whole events topic as the node exports it.
async fn read_export(client: &Client) -> Result<String, String> {
    let response = client
        .http
        .get(format!("{}/export", client.base))
        .bearer_auth(client.token.clone().unwrap_or_default())
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .map_err(|error| format!("the export failed: {error}"))?;
    if !response.status().is_success() {
        return Err(format!("the export answered {}", response.status()));
    }
    response
        .text()
        .await
        .map_err(|error| format!("the export broke: {error}"))
}

async fn verify_read_models(client: &Client, findings: &mut Findings) {
    for name in projections::names() {
        let body = client
            .gql(
                "mutation($n: String!) { verifyProjection(name: $n) { different differences { entry } } }",
                json!({ "n": name }),
            )
            .await;
        match body {
            Ok(body) if body["data"]["verifyProjection"]["different"] == "0" => {}
            Ok(body) => {
                findings.violation(format!("read model {name} differs from the log: {body}"))
            }
            Err(error) => findings.violation(format!("cannot verify {name}: {error}")),
        }
    }
    match client
        .gql("{ verifySnapshots { differences } }", json!({}))
        .await
    {
        Ok(body)
            if body["data"]["verifySnapshots"]["differences"]
                .as_array()
                .is_some_and(Vec::is_empty) => {}
        Ok(body) => findings.violation(format!("snapshots differ from the log: {body}")),
        Err(error) => findings.violation(format!("cannot verify snapshots: {error}")),
    }
}
