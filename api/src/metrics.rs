//! Prometheus metrics: command latency, per-projection lag (events and
//! seconds), applied events and dead letters. Lag is measured at scrape time
//! from the log's watermarks and each projection's positions.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    pub projection: String,
    pub partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// How a GraphQL request's document was validated: `strict` (every rule)
/// or `variables` (a document that passed every rule before; only this
/// request's variables checked; see api::schema::validated).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabel {
    pub validation: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub command_latency: Histogram,
    pub commands: Family<OutcomeLabel, Counter>,
    pub graphql_requests: Family<ValidationLabel, Counter>,
    pub lag_events: Family<ProjectionLabel, Gauge>,
    pub lag_seconds: Family<ProjectionLabel, Gauge<f64, AtomicU64>>,
    pub partition_lag: Family<PartitionLabel, Gauge>,
    pub applied: Family<ProjectionLabel, Counter>,
    pub dead_letters: Family<ProjectionLabel, Gauge>,
    pub oldest_dead_letter_seconds: Family<ProjectionLabel, Gauge<f64, AtomicU64>>,
    pub generation: Family<ProjectionLabel, Gauge>,
    pub rebuild_applied: Family<ProjectionLabel, Gauge>,
    pub rebuild_total: Family<ProjectionLabel, Gauge>,
    pub sinks: SinkMetrics,
    pub disk_free: Gauge,
    pub disk_reserve: Gauge,
    pub lane_transactions: Counter,
    pub lane_mispredictions: Counter,
}

/// Per sink (`serve --sink`): lag, deliveries, retries, parked events.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    pub lag_events: Family<SinkLabel, Gauge>,
    pub lag_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    pub delivered: Family<SinkLabel, Counter>,
    pub retries: Family<SinkLabel, Counter>,
    pub retrying: Family<SinkLabel, Gauge>,
    pub parked: Family<SinkLabel, Gauge>,
}

impl SinkMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "sink_lag_events",
            "Events in the log the sink's receiver has not acknowledged",
            self.lag_events.clone(),
        );
        registry.register(
            "sink_lag_seconds",
            "Age of the oldest event the sink's receiver has not acknowledged",
            self.lag_seconds.clone(),
        );
        registry.register(
            "sink_delivered_events",
            "Events the receiver acknowledged (rate() gives events/s)",
            self.delivered.clone(),
        );
        registry.register(
            "sink_retries",
            "Requests retried after a 408, 429, 5xx, timeout or transport error",
            self.retries.clone(),
        );
        registry.register(
            "sink_retrying_orders",
            "Orders whose next event waits for a retry",
            self.retrying.clone(),
        );
        registry.register(
            "sink_parked_events",
            "Events parked after a refusal (sink list shows them)",
            self.parked.clone(),
        );
    }

    pub fn set(&self, status: &projections::sinks::SinkStatus) {
        let label = SinkLabel {
            sink: status.name.clone(),
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.lag_events.get_or_create(&label).set(gauge(status.lag));
        self.lag_seconds
            .get_or_create(&label)
            .set(status.lag_seconds);
        for (counter, value) in [
            (&self.delivered, status.delivered),
            (&self.retries, status.retries),
        ] {
            let counter = counter.get_or_create(&label);
            counter.inc_by(value.saturating_sub(counter.get()));
        }
        self.retrying
            .get_or_create(&label)
            .set(gauge(status.retrying));
        self.parked.get_or_create(&label).set(gauge(status.parked));
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("orderstore");
        let command_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let commands = Family::<OutcomeLabel, Counter>::default();
        let graphql_requests = Family::<ValidationLabel, Counter>::default();
        let lag_events = Family::<ProjectionLabel, Gauge>::default();
        let lag_seconds = Family::<ProjectionLabel, Gauge<f64, AtomicU64>>::default();
        let partition_lag = Family::<PartitionLabel, Gauge>::default();
        let applied = Family::<ProjectionLabel, Counter>::default();
        let dead_letters = Family::<ProjectionLabel, Gauge>::default();
        let oldest_dead_letter_seconds =
            Family::<ProjectionLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "command_latency_seconds",
            "Time from receiving a mutation to its reply",
            command_latency.clone(),
        );
        registry.register(
            "commands",
            "Commands answered, by outcome",
            commands.clone(),
        );
        registry.register(
            "graphql_requests",
            "GraphQL operations executed, by validation: strict (every rule) or variables (a query document that passed every rule before, with only its variables checked)",
            graphql_requests.clone(),
        );
        registry.register(
            "projection_lag_events",
            "Events in the log not yet applied",
            lag_events.clone(),
        );
        registry.register(
            "projection_lag_seconds",
            "Age of the oldest event not yet applied",
            lag_seconds.clone(),
        );
        registry.register(
            "projection_partition_lag_events",
            "Events not yet applied, per partition of the events topic",
            partition_lag.clone(),
        );
        registry.register(
            "projection_applied_events",
            "Events applied since start (rate() gives events/s)",
            applied.clone(),
        );
        registry.register(
            "projection_dead_letters",
            "Dead letters parked",
            dead_letters.clone(),
        );
        registry.register(
            "projection_oldest_dead_letter_seconds",
            "Age of the oldest dead letter",
            oldest_dead_letter_seconds.clone(),
        );
        let generation = Family::<ProjectionLabel, Gauge>::default();
        let rebuild_applied = Family::<ProjectionLabel, Gauge>::default();
        let rebuild_total = Family::<ProjectionLabel, Gauge>::default();
        registry.register(
            "projection_generation",
            "The blue/green generation served",
            generation.clone(),
        );
        registry.register(
            "projection_rebuild_applied_events",
            "Events applied by the running rebuild (0 when none runs)",
            rebuild_applied.clone(),
        );
        registry.register(
            "projection_rebuild_total_events",
            "Events the running rebuild has to apply (0 when none runs)",
            rebuild_total.clone(),
        );
        let sinks = SinkMetrics::default();
        sinks.register(&mut registry);
        let disk_free = Gauge::default();
        let disk_reserve = Gauge::default();
        registry.register_with_unit(
            "data_dir_free",
            "Bytes free on the data directory's disk",
            prometheus_client::registry::Unit::Bytes,
            disk_free.clone(),
        );
        registry.register_with_unit(
            "data_dir_reserve",
            "Commands are refused while the free bytes are under this (--disk-reserve-mb)",
            prometheus_client::registry::Unit::Bytes,
            disk_reserve.clone(),
        );
        let lane_transactions = Counter::default();
        let lane_mispredictions = Counter::default();
        registry.register(
            "processor_transactions",
            "Transactions the command lanes of this node committed (rate() gives transactions/s; commands/s over it is the batch size)",
            lane_transactions.clone(),
        );
        registry.register(
            "processor_offset_mispredictions",
            "Lane batches whose events did not land at the offset the lane predicted (another writer in the partition): each was aborted and sent again",
            lane_mispredictions.clone(),
        );
        Self {
            registry,
            sinks,
            lane_transactions,
            lane_mispredictions,
            disk_free,
            disk_reserve,
            command_latency,
            commands,
            graphql_requests,
            lag_events,
            lag_seconds,
            partition_lag,
            applied,
            dead_letters,
            oldest_dead_letter_seconds,
            generation,
            rebuild_applied,
            rebuild_total,
        }
    }
}

impl Metrics {
    pub fn label(projection: &str) -> ProjectionLabel {
        ProjectionLabel {
            projection: projection.to_owned(),
        }
    }

    pub fn record_command(&self, seconds: f64, outcome: &str) {
        self.command_latency.observe(seconds);
        self.commands
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn set_projection(&self, name: &str, lag: u64, lag_seconds: f64, applied: u64) {
        let label = Self::label(name);
        self.lag_events
            .get_or_create(&label)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        self.lag_seconds.get_or_create(&label).set(lag_seconds);
        // The worker's count is the truth; the counter catches up to it.
        let counter = self.applied.get_or_create(&label);
        counter.inc_by(applied.saturating_sub(counter.get()));
    }

    /// The served generation and the running rebuild's progress (applied, total).
    pub fn set_generation(&self, name: &str, generation: u32, rebuild: Option<(u64, u64)>) {
        let label = Self::label(name);
        self.generation
            .get_or_create(&label)
            .set(i64::from(generation));
        let (applied, total) = rebuild.unwrap_or((0, 0));
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.rebuild_applied
            .get_or_create(&label)
            .set(gauge(applied));
        self.rebuild_total.get_or_create(&label).set(gauge(total));
    }

    pub fn set_disk(&self, disk: &eventlog::disk::DiskReserve) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        if let Some(free) = disk.free() {
            self.disk_free.set(gauge(free));
        }
        self.disk_reserve.set(gauge(disk.reserve()));
    }

    /// The command lanes' counts (the processor's own are the truth).
    pub fn set_processor(&self, status: &commands::ProcessorStatus) {
        for (counter, count) in [
            (&self.lane_transactions, status.transactions()),
            (&self.lane_mispredictions, status.mispredictions()),
        ] {
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }

    pub fn set_partition_lag(&self, name: &str, partition: u32, lag: u64) {
        let label = PartitionLabel {
            projection: name.to_owned(),
            partition: partition.to_string(),
        };
        self.partition_lag
            .get_or_create(&label)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    pub fn set_dead_letters(&self, name: &str, count: usize, oldest_seconds: f64) {
        let label = Self::label(name);
        self.dead_letters
            .get_or_create(&label)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        self.oldest_dead_letter_seconds
            .get_or_create(&label)
            .set(oldest_seconds);
    }

    /// The Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "metrics encoding failed");
        }
        out
    }
}

/// The Prometheus text format (version 0.0.4) of an OpenMetrics exposition,
/// for scrapers and linters that ask for it (`promtool check metrics`): a
/// counter family is named with its `_total` suffix in HELP and TYPE, as
/// its samples are, and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_names_counters_with_their_total_suffix() {
        let metrics = Metrics::default();
        metrics.record_command(0.01, "accepted");
        metrics.set_projection("history", 0, 0.0, 3);
        let text = prometheus_text(&metrics.encode());
        assert!(text.contains("# HELP orderstore_commands_total "), "{text}");
        assert!(
            text.contains("# TYPE orderstore_commands_total counter"),
            "{text}"
        );
        assert!(
            text.contains("orderstore_commands_total{outcome=\"accepted\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE orderstore_projection_applied_events_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE orderstore_command_latency_seconds histogram"));
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }
}
