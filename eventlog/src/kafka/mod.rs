//! The Kafka backend of `EventLog`, on rdkafka (librdkafka, vendored build).
//!
//! - Placement: this crate's murmur2 partitioner picks every partition, so
//!   records land where the embedded backend and the Java client put them.
//! - Plain appends: an idempotent producer with `acks=all`.
//! - Transactions: one transactional producer per log handle
//!   (`transactional.id` from the config) and per lane (`EventLog::lane`:
//!   `<id>.<lane>`); a second producer with the same id fences the first,
//!   whose next commit fails as fatal.
//! - Consumers: `read_committed`, manual assignment, no auto commit.
//!
//! Only this module knows rdkafka. It must never report a record as written
//! before the broker acknowledged it, and never swallow a fatal producer error.

mod consumer;
pub mod peers;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::partitioner::partition_for;
use crate::{
    EventLog, GroupOffset, LogConsumer, LogError, LogTransaction, OutgoingRecord, Position, Record,
    TopicPartition, TopicSpec,
};
use consumer::KafkaConsumer;
use transaction::{KafkaTransaction, TransactionalProducer};

/// The default group session timeout: a dead member is replaced within
/// seconds (Kafka's client default is 45 s).
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach and use a Kafka cluster.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// Replication factor of the topics this log creates.
    pub replication_factor: i32,
    /// `transactional.id` of this handle's transactional producer.
    pub transactional_id: String,
    /// Static membership (`group.instance.id`) in the groups this handle
    /// joins: a restarted node takes its partitions back at once instead of
    /// waiting out the dead member's session.
    pub group_instance_id: Option<String>,
    /// `session.timeout.ms` of the groups this handle joins: how long a
    /// member that stopped heartbeating (killed, paused, cut off) keeps its
    /// partitions. Shorter fails over sooner but rebalances on shorter stalls.
    pub session_timeout: Duration,
    /// Bound of every blocking call to the cluster.
    pub timeout: Duration,
}

impl KafkaConfig {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            replication_factor: 1,
            transactional_id: "orderstore-command-processor".into(),
            group_instance_id: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            timeout: Duration::from_secs(15),
        }
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("log_level", "4");
        config
    }
}

/// Classifies a Kafka error once: codes that no retry can fix are
/// permanent, everything else (the cluster away, leaders moving,
/// coordinators loading) is worth starting over for.
pub(crate) fn kafka_error(error: KafkaError) -> LogError {
    match error.rdkafka_error_code() {
        Some(code) if is_permanent(code) => LogError::KafkaPermanent(error.to_string()),
        _ => LogError::Kafka(error.to_string()),
    }
}

fn is_permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::DelegationTokenAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::MessageSizeTooLarge
            | C::InvalidRequiredAcks
            | C::UnsupportedVersion
            | C::UnsupportedForMessageFormat
            | C::InvalidPartitions
            | C::InvalidReplicationFactor
            | C::InvalidConfig
            | C::PolicyViolation
            | C::InvalidArgument
    )
}

/// The Kafka log. Cheap to clone.
#[derive(Clone)]
pub struct KafkaLog {
    inner: Arc<Inner>,
    /// This handle's transactional producer; each lane has its own.
    transactional: Arc<tokio::sync::Mutex<TransactionalProducer>>,
}

struct Inner {
    config: KafkaConfig,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// For metadata, watermarks and offsets for times.
    meta: Arc<BaseConsumer>,
    partitions: Mutex<HashMap<String, u32>>,
    /// One non-member consumer per group, for committed offsets and group metadata.
    groups: Mutex<HashMap<String, Arc<BaseConsumer>>>,
    /// The live member of each group this handle joined: its group metadata
    /// (generation) goes into transactions, so a stale member is fenced.
    members: Mutex<HashMap<String, Weak<consumer::Reader>>>,
    /// Per partition, the offset after the last record of the transactions
    /// committed through this handle or its lanes (`EventLog::committed_end`).
    committed_ends: Mutex<HashMap<TopicPartition, u64>>,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .finish()
    }
}

/// Runs a blocking rdkafka call off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| LogError::Kafka(format!("blocking call failed: {e}")))?
        .map_err(kafka_error)
}

impl KafkaLog {
    /// Connects and checks, within the configured timeout, that the cluster answers.
    pub async fn connect(config: KafkaConfig) -> Result<Self, LogError> {
        let producer: FutureProducer = config
            .client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // No linger: a command's append is on its path (2.6 ms at
            // concurrency 1 with 2 ms of linger, 0.7 ms without); under
            // load, records still batch behind the requests in flight.
            .set("linger.ms", "0")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", config.timeout.as_millis().to_string())
            .create()
            .map_err(kafka_error)?;
        let admin: AdminClient<DefaultClientContext> =
            config.client().create().map_err(kafka_error)?;
        let meta: BaseConsumer = config
            .client()
            .set("group.id", "orderstore.metadata")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(kafka_error)?;
        let meta = Arc::new(meta);
        let probe = meta.clone();
        let timeout = config.timeout;
        blocking(move || probe.fetch_metadata(None, timeout).map(|_| ()))
            .await
            .map_err(|e| {
                LogError::Unreachable(format!(
                    "{} within {} s: {e}",
                    config.bootstrap_servers,
                    timeout.as_secs()
                ))
            })?;
        let transactional = Arc::new(tokio::sync::Mutex::new(TransactionalProducer::new(
            config.clone(),
        )));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                producer,
                admin,
                meta,
                partitions: Mutex::new(HashMap::new()),
                groups: Mutex::new(HashMap::new()),
                members: Mutex::new(HashMap::new()),
                committed_ends: Mutex::new(HashMap::new()),
            }),
            transactional,
        })
    }

    fn group_consumer(&self, group: &str) -> Result<Arc<BaseConsumer>, LogError> {
        let mut groups = self
            .inner
            .groups
            .lock()
            .map_err(|_| LogError::Invalid("lock poisoned".into()))?;
        if let Some(consumer) = groups.get(group) {
            return Ok(consumer.clone());
        }
        let consumer: BaseConsumer = self
            .inner
            .config
            .client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .map_err(kafka_error)?;
        let consumer = Arc::new(consumer);
        groups.insert(group.to_owned(), consumer.clone());
        Ok(consumer)
    }

    pub(crate) fn register_member(
        &self,
        group: &str,
        consumer: &Arc<consumer::Reader>,
    ) -> Result<(), LogError> {
        let mut members = self
            .inner
            .members
            .lock()
            .map_err(|_| LogError::Invalid("lock poisoned".into()))?;
        members.insert(group.to_owned(), Arc::downgrade(consumer));
        Ok(())
    }

    /// The group metadata for a transaction's offsets: the live member's if
    /// this handle joined the group, else a non-member's (generation -1).
    pub(crate) fn group_metadata(&self, group: &str) -> Result<ConsumerGroupMetadata, LogError> {
        let member = self
            .inner
            .members
            .lock()
            .ok()
            .and_then(|m| m.get(group).and_then(Weak::upgrade));
        let metadata = match member {
            Some(member) => member.group_metadata(),
            None => self.group_consumer(group)?.group_metadata(),
        };
        metadata.ok_or_else(|| LogError::Kafka(format!("no group metadata for {group}")))
    }

    async fn partitions_of(&self, topic: &str) -> Result<u32, LogError> {
        if let Some(count) = self
            .inner
            .partitions
            .lock()
            .ok()
            .and_then(|p| p.get(topic).copied())
        {
            return Ok(count);
        }
        let (meta, name, timeout) = (
            self.inner.meta.clone(),
            topic.to_owned(),
            self.inner.config.timeout,
        );
        let count = blocking(move || {
            let metadata = meta.fetch_metadata(Some(&name), timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none())
                .map(|t| t.partitions().len() as u32))
        })
        .await?
        .filter(|count| *count > 0)
        .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?;
        if let Ok(mut cache) = self.inner.partitions.lock() {
            cache.insert(topic.to_owned(), count);
        }
        Ok(count)
    }

    /// Resolves each record's partition (murmur2 by key unless given).
    pub(crate) async fn place(&self, record: &OutgoingRecord) -> Result<u32, LogError> {
        let count = self.partitions_of(&record.topic).await?;
        match record.partition {
            Some(p) if p < count => Ok(p),
            Some(p) => Err(LogError::UnknownPartition {
                topic: record.topic.clone(),
                partition: p,
            }),
            None => Ok(partition_for(&record.record.key, count)),
        }
    }

    async fn watermarks_once(&self, tp: &TopicPartition) -> Result<(u64, u64), LogError> {
        let (meta, tp, timeout) = (
            self.inner.meta.clone(),
            tp.clone(),
            self.inner.config.timeout,
        );
        let (low, high) =
            blocking(move || meta.fetch_watermarks(&tp.topic, tp.partition as i32, timeout))
                .await?;
        Ok((low.max(0) as u64, high.max(0) as u64))
    }

    /// Records the ends of a transaction that has just committed.
    pub(crate) fn note_committed(&self, ends: &HashMap<TopicPartition, u64>) {
        if let Ok(mut known) = self.inner.committed_ends.lock() {
            for (tp, end) in ends {
                let at = known.entry(tp.clone()).or_insert(0);
                *at = (*at).max(*end);
            }
        }
    }

    fn check_partition(&self, count: u32, tp: &TopicPartition) -> Result<(), LogError> {
        if tp.partition < count {
            Ok(())
        } else {
            Err(LogError::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
        }
    }
}

/// The rdkafka form of our headers.
pub(crate) fn kafka_headers(record: &Record) -> OwnedHeaders {
    record.headers.iter().fold(
        OwnedHeaders::new_with_capacity(record.headers.len()),
        |headers, h| {
            headers.insert(KafkaHeader {
                key: h.key.as_str(),
                value: Some(h.value.as_slice()),
            })
        },
    )
}

/// Sends records through `producer` and waits for each acknowledgement.
pub(crate) async fn produce(
    log: &KafkaLog,
    producer: &FutureProducer,
    records: Vec<OutgoingRecord>,
) -> Result<Vec<Position>, LogError> {
    let mut pending = Vec::with_capacity(records.len());
    for outgoing in &records {
        let partition = log.place(outgoing).await?;
        let headers = kafka_headers(&outgoing.record);
        let mut record = FutureRecord::<[u8], [u8]>::to(&outgoing.topic)
            .key(outgoing.record.key.as_slice())
            .partition(partition as i32)
            .timestamp(outgoing.record.timestamp_ms)
            .headers(headers);
        if let Some(value) = &outgoing.record.value {
            record = record.payload(value.as_slice());
        }
        let future = producer
            .send_result(record)
            .map_err(|(error, _)| kafka_error(error))?;
        pending.push(future);
    }
    let mut positions = Vec::with_capacity(pending.len());
    for future in pending {
        let delivery = future
            .await
            .map_err(|_| LogError::Kafka("the producer dropped a delivery".into()))?
            .map_err(|(error, _)| kafka_error(error))?;
        positions.push(Position {
            partition: delivery.partition as u32,
            offset: delivery.offset as u64,
        });
    }
    Ok(positions)
}

fn topic_configs(spec: &TopicSpec) -> Vec<(&'static str, String)> {
    if spec.compacted {
        vec![
            ("cleanup.policy", "compact".into()),
            ("min.cleanable.dirty.ratio", "0.1".into()),
        ]
    } else {
        let retention = spec
            .retention_ms
            .map_or("-1".to_owned(), |ms| ms.to_string());
        vec![
            ("cleanup.policy", "delete".into()),
            ("retention.ms", retention),
            ("retention.bytes", "-1".into()),
        ]
    }
}

#[async_trait]
impl EventLog for KafkaLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        let mut configs = topic_configs(spec);
        // With three or more replicas, an acknowledged write (acks=all) is
        // on at least two of them: losing one broker loses nothing.
        if self.inner.config.replication_factor >= 3 {
            configs.push(("min.insync.replicas", "2".into()));
        }
        let mut topic = NewTopic::new(
            &spec.name,
            spec.partitions as i32,
            TopicReplication::Fixed(self.inner.config.replication_factor),
        );
        for (key, value) in &configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(self.inner.config.timeout));
        let results = self
            .inner
            .admin
            .create_topics([&topic], &options)
            .await
            .map_err(kafka_error)?;
        for result in results {
            match result {
                Ok(_) => {}
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    let existing = self.partitions_of(&spec.name).await?;
                    if existing != spec.partitions {
                        return Err(LogError::PartitionMismatch {
                            topic: spec.name.clone(),
                            existing,
                            requested: spec.partitions,
                        });
                    }
                }
                Err((name, code)) if is_permanent(code) => {
                    return Err(LogError::KafkaPermanent(format!(
                        "creating topic {name}: {code}"
                    )))
                }
                Err((name, code)) => {
                    return Err(LogError::Kafka(format!("creating topic {name}: {code}")))
                }
            }
        }
        // A new topic takes a moment to reach the metadata and elect its
        // leaders: wait until every partition answers.
        for _ in 0..100 {
            if let Ok(mut cache) = self.inner.partitions.lock() {
                cache.remove(&spec.name);
            }
            if matches!(self.partitions_of(&spec.name).await, Ok(n) if n == spec.partitions) {
                let mut ready = true;
                for partition in 0..spec.partitions {
                    let tp = TopicPartition::new(&spec.name, partition);
                    ready &= self.watermarks_once(&tp).await.is_ok();
                }
                if ready {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(LogError::Kafka(format!(
            "topic {} did not become ready",
            spec.name
        )))
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        self.partitions_of(topic).await
    }

    async fn append(&self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError> {
        produce(self, &self.inner.producer, records).await
    }

    async fn init_transactions(&self) -> Result<(), LogError> {
        self.transactional.lock().await.ready().await.map(|_| ())
    }

    async fn begin(&self) -> Result<Box<dyn LogTransaction>, LogError> {
        let guard = self.transactional.clone().lock_owned().await;
        Ok(Box::new(
            KafkaTransaction::begin(self.clone(), guard).await?,
        ))
    }

    fn lane(&self, lane: &str) -> Arc<dyn EventLog> {
        let mut config = self.inner.config.clone();
        config.transactional_id = format!("{}.{lane}", config.transactional_id);
        Arc::new(Self {
            inner: self.inner.clone(),
            transactional: Arc::new(tokio::sync::Mutex::new(TransactionalProducer::new(config))),
        })
    }

    async fn watermarks(&self, tp: &TopicPartition) -> Result<(u64, u64), LogError> {
        let count = self.partitions_of(&tp.topic).await?;
        self.check_partition(count, tp)?;
        // Leadership moves (a broker restart, a new topic): retry briefly.
        let mut attempt = 0;
        loop {
            match self.watermarks_once(tp).await {
                Err(error) if attempt < 20 => {
                    attempt += 1;
                    tracing::debug!(%error, %tp, "watermarks not available yet; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    fn marker_offsets(&self) -> u64 {
        1
    }

    fn committed_end(&self, tp: &TopicPartition) -> Option<u64> {
        self.inner.committed_ends.lock().ok()?.get(tp).copied()
    }

    async fn offset_for_time(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, LogError> {
        let count = self.partitions_of(&tp.topic).await?;
        self.check_partition(count, tp)?;
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(timestamp_ms))
            .map_err(kafka_error)?;
        let (meta, timeout) = (self.inner.meta.clone(), self.inner.config.timeout);
        let found = blocking(move || meta.offsets_for_times(list, timeout)).await?;
        Ok(found.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
            _ => None,
        }))
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let count = self.partitions_of(&tp.topic).await?;
        self.check_partition(count, tp)?;
        let consumer = self.group_consumer(group)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&tp.topic, tp.partition as i32);
        let timeout = self.inner.config.timeout;
        let committed = blocking(move || consumer.committed_offsets(list, timeout)).await?;
        Ok(committed.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset as u64),
            _ => None,
        }))
    }

    async fn commit_offsets(&self, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        let mut by_group: HashMap<String, TopicPartitionList> = HashMap::new();
        for offset in offsets {
            by_group
                .entry(offset.group.clone())
                .or_default()
                .add_partition_offset(
                    &offset.partition.topic,
                    offset.partition.partition as i32,
                    Offset::Offset(offset.next_offset as i64),
                )
                .map_err(kafka_error)?;
        }
        for (group, list) in by_group {
            let consumer = self.group_consumer(&group)?;
            blocking(move || consumer.commit(&list, CommitMode::Sync)).await?;
        }
        Ok(())
    }

    async fn consumer(&self) -> Result<Box<dyn LogConsumer>, LogError> {
        Ok(Box::new(KafkaConsumer::new(self)?))
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::{is_permanent, kafka_error};
    use crate::LogError;

    #[test]
    fn kafka_errors_no_retry_can_fix_are_permanent_and_the_rest_transient() {
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::SaslAuthenticationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidConfig,
        ] {
            assert!(is_permanent(code), "{code:?}");
        }
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ] {
            assert!(!is_permanent(code), "{code:?}");
        }
        let refused = kafka_error(KafkaError::MetadataFetch(
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ));
        assert!(matches!(refused, LogError::KafkaPermanent(_)) && !refused.is_transient());
        let away = kafka_error(KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure,
        ));
        assert!(matches!(away, LogError::Kafka(_)) && away.is_transient());
    }
}
