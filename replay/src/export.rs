//! `orderstore export`: events as CloudEvents JSON lines (structured mode,
//! data as JSON), filtered by time, type and order, in log order per
//! partition; up to the log's end when it starts, or on (`follow`) until
//! shutdown. The same code serves the running server's `/export` stream and
//! a direct read of a data directory or a Kafka cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use commands::Topics;
use eventlog::{EventLog, LogError, StoredRecord, TopicPartition};

/// Which events an export writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only these CloudEvents types (`OrderPlaced`, ...); all when empty.
    pub types: Vec<String>,
    /// Only this order's events.
    pub order_id: Option<String>,
}

/// Where an export starts and (unless it follows) ends, per partition.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    filter: ExportFilter,
    topic: String,
    start: BTreeMap<u32, u64>,
    end: BTreeMap<u32, u64>,
}

/// What an export met besides the lines it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub written: u64,
    /// Records read (the filter dropped those not written).
    pub read: u64,
    /// Records that are not readable events (reported, not written).
    pub unreadable: u64,
}

impl ExportPlan {
    /// Finds the offsets: from `since` (or the log's start) to the end now.
    pub async fn new(
        log: &dyn EventLog,
        topics: &Topics,
        filter: ExportFilter,
    ) -> Result<Self, LogError> {
        let partitions = log.partition_count(&topics.events).await?;
        let only = filter
            .order_id
            .as_ref()
            .map(|id| eventlog::partitioner::partition_for(id.as_bytes(), partitions));
        let (mut start, mut end) = (BTreeMap::new(), BTreeMap::new());
        for partition in (0..partitions).filter(|p| only.is_none_or(|only| only == *p)) {
            let tp = TopicPartition::new(&topics.events, partition);
            let (low, high) = log.watermarks(&tp).await?;
            let from = match filter.since {
                // Record timestamps are event times.
                Some(since) => log
                    .offset_for_time(&tp, since.timestamp_millis())
                    .await?
                    .unwrap_or(high),
                None => low,
            };
            start.insert(partition, from.max(low));
            end.insert(partition, high);
        }
        Ok(Self {
            filter,
            topic: topics.events.clone(),
            start,
            end,
        })
    }

    /// Records between the start and the end (an upper bound of the lines).
    pub fn records(&self) -> u64 {
        self.start
            .iter()
            .map(|(p, from)| self.end[p].saturating_sub(*from))
            .sum()
    }

    /// Reads the plan's records and hands each line (JSON and a newline)
    /// to `emit`, which may refuse (a full disk, a gone client) to stop the
    /// export with its error. Without `follow` it ends at the plan's end;
    /// with it, at `shutdown`.
    pub async fn run<E, F, Fut>(
        &self,
        log: &dyn EventLog,
        follow: bool,
        shutdown: impl std::future::Future<Output = ()>,
        mut emit: F,
        mut progress: impl FnMut(&ExportSummary),
    ) -> Result<ExportSummary, E>
    where
        E: From<LogError>,
        F: FnMut(Vec<u8>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
    {
        let mut summary = ExportSummary::default();
        let mut open: BTreeMap<u32, u64> = self
            .start
            .iter()
            .filter(|(p, from)| follow || **from < self.end[p])
            .map(|(p, from)| (*p, *from))
            .collect();
        if open.is_empty() {
            return Ok(summary);
        }
        let mut consumer = log.consumer().await?;
        if follow {
            consumer.follow();
        }
        consumer
            .assign(
                open.iter()
                    .map(|(p, from)| (TopicPartition::new(&self.topic, *p), *from))
                    .collect(),
            )
            .await?;
        tokio::pin!(shutdown);
        while !open.is_empty() {
            let records = tokio::select! {
                _ = &mut shutdown => break,
                polled = consumer.poll(500, Duration::from_millis(250)) => polled?,
            };
            for stored in records {
                if !follow && stored.offset >= self.end[&stored.partition] {
                    continue;
                }
                summary.read += 1;
                if let Some(line) = self.line(&stored, &mut summary) {
                    emit(line).await?;
                    summary.written += 1;
                }
            }
            if !follow {
                // Done with a partition once its position passes the end
                // (past transaction markers too).
                open.retain(|p, _| {
                    let tp = TopicPartition::new(&self.topic, *p);
                    consumer.position(&tp).is_none_or(|at| at < self.end[p])
                });
            }
            progress(&summary);
        }
        if summary.unreadable > 0 {
            tracing::warn!(
                records = summary.unreadable,
                "records of the events topic are not readable events and were not exported"
            );
        }
        Ok(summary)
    }

    /// The record's line, when the filter keeps it.
    fn line(&self, stored: &StoredRecord, summary: &mut ExportSummary) -> Option<Vec<u8>> {
        let filter = &self.filter;
        if let Some(order_id) = &filter.order_id {
            if stored.record.key != order_id.as_bytes() {
                return None;
            }
        }
        if !filter.types.is_empty() {
            let event_type = stored.record.header(domain::envelope::header::TYPE)?;
            if !filter.types.iter().any(|t| t.as_bytes() == event_type) {
                return None;
            }
        }
        let decoded = projections::worker::decode_event(
            &stored.record.headers,
            stored.record.value.as_deref(),
        );
        let event = match decoded {
            Ok(event) => event,
            Err(error) => {
                summary.unreadable += 1;
                tracing::debug!(partition = stored.partition, offset = stored.offset, %error, "not exported: the record is not a readable event");
                return None;
            }
        };
        let time = event.envelope.time;
        if filter.since.is_some_and(|since| time < since)
            || filter.until.is_some_and(|until| time > until)
        {
            return None;
        }
        let mut line = event.to_cloudevent_json().to_string().into_bytes();
        line.push(b'\n');
        Some(line)
    }
}

/// Refuses a filter that can match nothing by mistake, and names each
/// type as the log does (`OrderPlaced` or `com.orderstore.order.placed`
/// both mean the latter).
pub fn check(mut filter: ExportFilter) -> Result<ExportFilter, String> {
    use domain::order::EventType;
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since > until {
            return Err(format!(
                "--since {} is after --until {}",
                domain::envelope::format_time(&since),
                domain::envelope::format_time(&until)
            ));
        }
    }
    for t in &mut filter.types {
        let known = EventType::ALL
            .iter()
            .find(|known| known.as_str() == t.as_str() || known.name() == t.as_str());
        match known {
            Some(known) => *t = known.as_str().to_owned(),
            None => {
                let names: Vec<&str> = EventType::ALL.iter().map(|k| k.name()).collect();
                return Err(format!(
                    "{t:?} is not an event type (one of: {}, or their CloudEvents types such as com.orderstore.order.placed)",
                    names.join(", ")
                ));
            }
        }
    }
    if let Some(order_id) = &filter.order_id {
        domain::OrderId::parse(order_id.as_str()).map_err(|e| format!("--order: {e}"))?;
    }
    Ok(filter)
}
