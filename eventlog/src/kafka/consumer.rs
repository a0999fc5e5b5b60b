//! A read_committed consumer of the Kafka log: manual assignment, or
//! membership of a consumer group (`subscribe`) whose partitions move
//! between members on rebalance.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::Header;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};

use super::{kafka_error, KafkaLog};
use crate::{LogConsumer, LogError, Record, StoredRecord, TopicPartition};

/// What a group member learns from its rebalance callbacks: whether the
/// group has given it an assignment (possibly empty) and not revoked it.
#[derive(Debug, Default)]
pub(crate) struct MemberContext {
    assigned: AtomicBool,
}

impl ClientContext for MemberContext {
    /// Reaching a partition's end (`enable.partition.eof`) is not an
    /// error, whichever queue librdkafka reports it on; the rest is logged.
    fn error(&self, error: KafkaError, reason: &str) {
        if let KafkaError::PartitionEOF(_)
        | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF) = error
        {
            tracing::trace!(reason, "end of partition");
        } else {
            tracing::error!(%error, reason, "librdkafka");
        }
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) | Rebalance::Error(_) = rebalance {
            self.assigned.store(false, Ordering::Release);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assigned.store(true, Ordering::Release);
        }
    }
}

/// Every consumer of the Kafka backend.
pub(crate) type Reader = StreamConsumer<MemberContext>;

pub(crate) struct KafkaConsumer {
    log: KafkaLog,
    consumer: Arc<Reader>,
    positions: BTreeMap<TopicPartition, u64>,
    /// librdkafka's positions from before the last `assign`: it resets them
    /// on its own thread a little later, so until a partition's position
    /// differs from this it may still be the previous assignment's.
    stale: BTreeMap<TopicPartition, i64>,
    /// Partitions whose end this consumer reached (librdkafka's partition
    /// EOF) and has read nothing from since.
    at_end: BTreeSet<TopicPartition>,
    /// Joined a consumer group (`subscribe`).
    member: bool,
    /// Follows the head: never answers early at the end of its data.
    following: bool,
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        if !self.member {
            return;
        }
        // Closing a group member runs a last rebalance inside librdkafka,
        // which can block (seen when the member had not finished joining).
        // Close it on its own thread so that never stalls a shutdown.
        let consumer = self.consumer.clone();
        let closing = std::thread::Builder::new()
            .name("kafka-consumer-close".into())
            .spawn(move || drop(consumer));
        if let Err(error) = closing {
            tracing::warn!(%error, "could not close a group consumer on its own thread");
        }
    }
}

impl std::fmt::Debug for KafkaConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConsumer")
            .field("positions", &self.positions)
            .finish()
    }
}

impl KafkaConsumer {
    pub(crate) fn new(log: &KafkaLog) -> Result<Self, LogError> {
        // Assignment is manual; the group id is required by librdkafka but never joined.
        let consumer = create(log, "orderstore.reader", None)?;
        Ok(Self {
            log: log.clone(),
            consumer: Arc::new(consumer),
            positions: BTreeMap::new(),
            stale: BTreeMap::new(),
            at_end: BTreeSet::new(),
            member: false,
            following: false,
        })
    }
}

fn create(log: &KafkaLog, group: &str, instance: Option<&str>) -> Result<Reader, LogError> {
    let mut config = log.inner.config.client();
    if let Some(instance) = instance {
        config.set("group.instance.id", instance);
    }
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "50")
        // Reaching the end is an event, so a reader of a partition's end
        // stops there instead of waiting out its poll.
        .set("enable.partition.eof", "true")
        // A member that died is replaced within seconds, not the default 45.
        .set(
            "session.timeout.ms",
            log.inner.config.session_timeout.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "1000")
        .create_with_context(MemberContext::default())
        .map_err(kafka_error)
}

impl KafkaConsumer {
    /// Moves the positions past what librdkafka has consumed without
    /// showing it: transaction markers and aborted records. Its position
    /// advances over a marker when a poll passes it, in queue order, so it
    /// never runs ahead of a record not yet returned.
    fn step_past_markers(&mut self) {
        let current: Vec<_> = self.librdkafka_positions().collect();
        for (tp, next) in current {
            if self.stale.get(&tp) == Some(&next) {
                continue;
            }
            self.stale.remove(&tp);
            let Ok(next) = u64::try_from(next) else {
                continue; // not consumed from yet
            };
            let position = self.positions.entry(tp).or_insert(next);
            *position = (*position).max(next);
        }
    }

    /// Whether every partition's position has reached its readable end now
    /// (`EventLog::watermarks`: the last stable offset). An end-of-partition
    /// event alone does not say so: it may be from before the last `assign`,
    /// or records may have been committed since it was queued. A partition
    /// short of its end is no longer counted as at its end.
    async fn at_readable_ends(&mut self, assigned: &[TopicPartition]) -> Result<bool, LogError> {
        self.step_past_markers();
        let mut all = true;
        for tp in assigned {
            let (_, high) = crate::EventLog::watermarks(&self.log, tp).await?;
            if self.positions.get(tp).copied().unwrap_or(0) < high {
                self.at_end.remove(tp);
                all = false;
            }
        }
        Ok(all)
    }

    /// librdkafka's next offset per assigned partition (negative: none yet).
    fn librdkafka_positions(&self) -> impl Iterator<Item = (TopicPartition, i64)> {
        let list = self.consumer.position().unwrap_or_default();
        list.elements()
            .into_iter()
            .map(|e| {
                let next = match e.offset() {
                    Offset::Offset(next) => next,
                    _ => -1,
                };
                (TopicPartition::new(e.topic(), e.partition() as u32), next)
            })
            .collect::<Vec<_>>()
            .into_iter()
    }
}

fn stored(message: &BorrowedMessage<'_>) -> StoredRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    StoredRecord {
        topic: message.topic().to_owned(),
        partition: message.partition() as u32,
        offset: message.offset() as u64,
        record: Record {
            key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
        },
    }
}

#[async_trait]
impl LogConsumer for KafkaConsumer {
    async fn assign(&mut self, positions: Vec<(TopicPartition, u64)>) -> Result<(), LogError> {
        let mut list = TopicPartitionList::new();
        for (tp, offset) in &positions {
            list.add_partition_offset(
                &tp.topic,
                tp.partition as i32,
                Offset::Offset(*offset as i64),
            )
            .map_err(kafka_error)?;
        }
        self.stale = self.librdkafka_positions().collect();
        self.consumer.assign(&list).map_err(kafka_error)?;
        self.positions = positions.into_iter().collect();
        self.at_end.clear();
        Ok(())
    }

    async fn subscribe(&mut self, group: &str, topic: &str) -> Result<(), LogError> {
        let instance = self.log.inner.config.group_instance_id.clone();
        let consumer = Arc::new(create(&self.log, group, instance.as_deref())?);
        consumer.subscribe(&[topic]).map_err(kafka_error)?;
        self.log.register_member(group, &consumer)?;
        self.consumer = consumer;
        self.member = true;
        self.positions.clear();
        self.stale.clear();
        self.at_end.clear();
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.consumer
            .assignment()
            .map(|list| {
                list.elements()
                    .iter()
                    .map(|e| TopicPartition::new(e.topic(), e.partition() as u32))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<StoredRecord>, LogError> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wait = timeout;
        while out.len() < max {
            match tokio::time::timeout(wait, self.consumer.recv()).await {
                Err(_) => break,
                // librdkafka reports connection trouble (a broker restarting,
                // all brokers down) as consumption errors and recovers by
                // itself: keep waiting rather than tear the consumer down.
                Ok(Err(KafkaError::MessageConsumption(code))) => {
                    tracing::debug!(%code, "consumer: transient consumption error");
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    if out.is_empty() {
                        tokio::time::sleep(Duration::from_millis(100).min(deadline - now)).await;
                        wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                    }
                }
                // The end of a partition: when every partition read is at
                // its end (its high watermark) and nothing came, answer now,
                // not at the timeout. (The event comes once per arrival at
                // the end, so an idle reader still waits.)
                Ok(Err(KafkaError::PartitionEOF(_))) if self.following => {
                    if out.is_empty() {
                        wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                        if wait.is_zero() {
                            break;
                        }
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(tp) = self
                        .assignment()
                        .into_iter()
                        .find(|tp| tp.partition == partition as u32)
                    {
                        self.at_end.insert(tp);
                    }
                    let assigned = self.assignment();
                    if out.is_empty()
                        && !assigned.is_empty()
                        && assigned.iter().all(|tp| self.at_end.contains(tp))
                        && self.at_readable_ends(&assigned).await?
                    {
                        break;
                    }
                    if out.is_empty() {
                        wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                        if wait.is_zero() {
                            break;
                        }
                    }
                }
                Ok(Err(error)) => return Err(kafka_error(error)),
                Ok(Ok(message)) => {
                    let record = stored(&message);
                    let tp = TopicPartition::new(&record.topic, record.partition);
                    self.at_end.remove(&tp);
                    self.positions.insert(tp, record.offset + 1);
                    out.push(record);
                    // After the first record, take only what is already there.
                    wait = Duration::ZERO;
                }
            }
        }
        self.step_past_markers();
        Ok(out)
    }

    fn group_assigned(&self) -> bool {
        !self.member || self.consumer.context().assigned.load(Ordering::Acquire)
    }

    fn position(&self, tp: &TopicPartition) -> Option<u64> {
        self.positions.get(tp).copied()
    }

    fn follow(&mut self) {
        self.following = true;
    }
}
