//! The Grafana dashboard shipped in deploy/grafana queries only what
//! `/metrics` serves: every metric name, and every label it groups by.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::{data, order_input, TestServer, PLACE};

const DASHBOARD: &str = include_str!("../deploy/grafana/orderstore.json");

/// Every PromQL expression of every panel.
fn expressions(dashboard: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dashboard];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    found.push(expr.clone());
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The `orderstore_*` metric names an expression reads.
fn metrics_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("orderstore_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The labels of `by (...)` clauses.
fn grouped_by(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for part in expr.split("by (").skip(1) {
        let inside = part.split(')').next().unwrap_or_default();
        labels.extend(inside.split(',').map(|l| l.trim().to_owned()));
    }
    labels
}

/// Sample names of a classic-text scrape, with the label names each has.
fn samples(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let labels = found.entry(line[..name_end].to_owned()).or_default();
        if let Some(inside) = line[name_end..]
            .strip_prefix('{')
            .and_then(|l| l.split('}').next())
        {
            for pair in inside.split(',').filter(|p| !p.is_empty()) {
                labels.insert(pair.split('=').next().unwrap_or_default().to_owned());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_and_label_the_grafana_dashboard_queries_is_served() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "orderstore");
    let exprs = expressions(&dashboard);
    for needed in [
        "orderstore_commands_total",
        "orderstore_command_latency_seconds_bucket",
        "orderstore_projection_lag_events",
        "orderstore_projection_lag_seconds",
        "orderstore_projection_dead_letters",
        "orderstore_projection_oldest_dead_letter_seconds",
        "orderstore_projection_rebuild_applied_events",
    ] {
        assert!(
            exprs.iter().any(|e| metrics_in(e).contains(needed)),
            "the dashboard has no panel on {needed}"
        );
    }

    let s = TestServer::start().await;
    data(s.gql(PLACE, order_input("dash-1", "dana")).await);
    s.wait_ready().await;
    let served = samples(&s.metrics().await);
    // Labels Prometheus itself adds at scrape time.
    let added: BTreeSet<String> = ["job", "instance"].map(String::from).into();
    for expr in &exprs {
        let metrics = metrics_in(expr);
        assert!(
            !metrics.is_empty(),
            "a panel queries no orderstore metric: {expr}"
        );
        for metric in &metrics {
            assert!(
                served.contains_key(metric),
                "the dashboard queries {metric}, which /metrics does not serve"
            );
        }
        for label in grouped_by(expr).difference(&added) {
            assert!(
                metrics.iter().any(|m| served[m].contains(label)),
                "the dashboard groups {metrics:?} by {label}, which they do not carry: {expr}"
            );
        }
    }
}
