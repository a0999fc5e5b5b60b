//! Kafka transactions: begin, send, send_offsets_to_transaction with the
//! consumer group's metadata, commit; abortable errors abort, fatal errors
//! (such as being fenced by a newer producer with the same transactional.id)
//! drop the producer so the next transaction starts a new one.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::OwnedMutexGuard;

use super::{blocking, kafka_error, produce, KafkaConfig, KafkaLog};
use crate::{GroupOffset, LogError, LogTransaction, OutgoingRecord, Position, TopicPartition};

/// The transactional producer of one log handle, created on first use.
pub(crate) struct TransactionalProducer {
    config: KafkaConfig,
    producer: Option<FutureProducer>,
}

impl TransactionalProducer {
    pub(crate) fn new(config: KafkaConfig) -> Self {
        Self {
            config,
            producer: None,
        }
    }

    pub(crate) async fn ready(&mut self) -> Result<FutureProducer, LogError> {
        if let Some(producer) = &self.producer {
            return Ok(producer.clone());
        }
        let producer: FutureProducer = self
            .config
            .client()
            .set("transactional.id", &self.config.transactional_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // A lane hands over each send's records at once and then waits
            // for them: lingering would only add to every round trip.
            .set("linger.ms", "0")
            // A lane begins its next transaction the moment its last one
            // committed, while the coordinator is still writing that one's
            // markers: the first AddOffsetsToTxn then gets
            // CONCURRENT_TRANSACTIONS, and librdkafka retries it after
            // `retry.backoff.ms` (100 ms by default, a 100 ms stall of the
            // lane). Retries start at 2 ms and back off exponentially to
            // `retry.backoff.max.ms` (1 s), so a broker in trouble still
            // sees few retries.
            .set("retry.backoff.ms", RETRY_BACKOFF_MS)
            .set("transaction.timeout.ms", "60000")
            .set(
                "message.timeout.ms",
                self.config.timeout.as_millis().to_string(),
            )
            .create()
            .map_err(kafka_error)?;
        let (init, timeout) = (producer.clone(), self.config.timeout);
        blocking(move || init.init_transactions(timeout)).await?;
        self.producer = Some(producer.clone());
        Ok(producer)
    }
}

/// First retry backoff of a transactional producer (see `ready`).
pub(crate) const RETRY_BACKOFF_MS: &str = "2";

pub(crate) struct KafkaTransaction {
    log: KafkaLog,
    producer: FutureProducer,
    state: OwnedMutexGuard<TransactionalProducer>,
    /// send_offsets_to_transaction started early, running beside the sends.
    offsets: Option<tokio::task::JoinHandle<Result<(), KafkaError>>>,
    /// Per partition, the offset after the last record sent in it.
    written: HashMap<TopicPartition, u64>,
    finished: bool,
}

impl std::fmt::Debug for KafkaTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransaction")
            .field("finished", &self.finished)
            .finish()
    }
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_fatal())
}

fn requires_abort(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.txn_requires_abort())
}

fn is_retriable(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(e) if e.is_retriable())
}

impl KafkaTransaction {
    pub(crate) async fn begin(
        log: KafkaLog,
        mut state: OwnedMutexGuard<TransactionalProducer>,
    ) -> Result<Self, LogError> {
        let producer = state.ready().await?;
        if let Err(error) = producer.begin_transaction() {
            if is_fatal(&error) {
                state.producer = None;
            }
            return Err(kafka_error(error));
        }
        Ok(Self {
            log,
            producer,
            state,
            offsets: None,
            written: HashMap::new(),
            finished: false,
        })
    }

    fn timeout(&self) -> Duration {
        self.log.inner.config.timeout
    }

    /// Starts send_offsets_to_transaction on a blocking thread (it waits
    /// for the group coordinator); the transaction's records keep flowing
    /// meanwhile. Transactional calls never overlap: the next one first
    /// awaits this (`await_offsets`).
    fn start_offsets(
        &self,
        offsets: &[GroupOffset],
    ) -> Result<Option<tokio::task::JoinHandle<Result<(), KafkaError>>>, LogError> {
        let Some(group) = offsets.first().map(|o| o.group.clone()) else {
            return Ok(None);
        };
        let mut list = TopicPartitionList::new();
        for offset in offsets {
            list.add_partition_offset(
                &offset.partition.topic,
                offset.partition.partition as i32,
                Offset::Offset(offset.next_offset as i64),
            )
            .map_err(kafka_error)?;
        }
        let metadata = self.log.group_metadata(&group)?;
        let (producer, timeout) = (self.producer.clone(), self.timeout());
        Ok(Some(tokio::task::spawn_blocking(move || {
            producer.send_offsets_to_transaction(&list, &metadata, timeout)
        })))
    }

    async fn await_offsets(&mut self) -> Result<(), LogError> {
        let Some(sending) = self.offsets.take() else {
            return Ok(());
        };
        match sending.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.fail(error).await),
            Err(error) => Err(LogError::Kafka(format!(
                "send_offsets_to_transaction: {error}"
            ))),
        }
    }

    /// Waits for an early send_offsets_to_transaction whatever its outcome,
    /// before an abort (transactional calls must not overlap).
    async fn settle_offsets(&mut self) {
        if let Some(sending) = self.offsets.take() {
            let _ = sending.await;
        }
    }

    /// Handles a failed transactional call the way librdkafka documents:
    /// fatal drops the producer, abortable aborts, anything else is returned.
    async fn fail(&mut self, error: KafkaError) -> LogError {
        self.finished = true;
        if is_fatal(&error) {
            tracing::error!(%error, "fatal transactional producer error (fenced?); a new producer will be created");
            self.state.producer = None;
            return LogError::Fenced(error.to_string());
        }
        if requires_abort(&error) {
            let (producer, timeout) = (self.producer.clone(), self.timeout());
            if let Err(abort) = blocking(move || producer.abort_transaction(timeout)).await {
                tracing::error!(%abort, "abort after a failed transaction failed; recreating the producer");
                self.state.producer = None;
            }
            return LogError::Aborted(error.to_string());
        }
        kafka_error(error)
    }
}

#[async_trait]
impl LogTransaction for KafkaTransaction {
    async fn send(&mut self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError> {
        let producer = self.producer.clone();
        let topics: Vec<String> = records.iter().map(|r| r.topic.clone()).collect();
        match produce(&self.log, &producer, records).await {
            Ok(positions) => {
                for (topic, position) in topics.into_iter().zip(&positions) {
                    let end = self
                        .written
                        .entry(TopicPartition::new(&topic, position.partition))
                        .or_insert(0);
                    *end = (*end).max(position.offset + 1);
                }
                Ok(positions)
            }
            Err(error) => {
                // A failed send leaves the transaction unusable: abort it.
                self.settle_offsets().await;
                self.finished = true;
                let (producer, timeout) = (self.producer.clone(), self.timeout());
                if let Err(abort) = blocking(move || producer.abort_transaction(timeout)).await {
                    tracing::error!(%abort, "abort after a failed send failed; recreating the producer");
                    self.state.producer = None;
                }
                Err(error)
            }
        }
    }

    async fn send_offsets(&mut self, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        self.await_offsets().await?;
        self.offsets = self.start_offsets(&offsets)?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        let timeout = self.timeout();
        self.await_offsets().await?;
        self.offsets = self.start_offsets(&offsets)?;
        self.await_offsets().await?;
        for attempt in 0..3 {
            let producer = self.producer.clone();
            let committed = tokio::task::spawn_blocking(move || {
                delivery_reports_served(&producer, timeout);
                producer.commit_transaction(timeout)
            })
            .await
            .map_err(|e| LogError::Kafka(e.to_string()))?;
            match committed {
                Ok(()) => {
                    self.finished = true;
                    self.log.note_committed(&self.written);
                    return Ok(());
                }
                Err(error) if is_retriable(&error) && attempt < 2 => {
                    tracing::warn!(%error, "commit_transaction is retriable; retrying");
                }
                Err(error) => return Err(self.fail(error).await),
            }
        }
        Err(LogError::Kafka("commit_transaction kept failing".into()))
    }

    async fn abort(mut self: Box<Self>) -> Result<(), LogError> {
        self.settle_offsets().await;
        self.finished = true;
        let (producer, timeout) = (self.producer.clone(), self.timeout());
        blocking(move || producer.abort_transaction(timeout)).await
    }
}

/// Waits (up to `timeout`) until the producer's polling thread has served
/// every delivery report. rust-rdkafka 0.39's `commit_transaction` first
/// flushes, and while any report is unserved its flush polls for 100 ms,
/// and its poll always runs to its deadline: every transaction took 101 ms
/// (docs/adr/0006). Every record is acknowledged before a commit (`send`
/// awaits its deliveries), so only the reports' last step is left: this
/// takes microseconds, and the commit then goes straight to EndTxn.
fn delivery_reports_served(producer: &FutureProducer, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
        // No condition variable is exposed for this; the wait is short.
        std::thread::sleep(Duration::from_micros(20));
    }
}

impl Drop for KafkaTransaction {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped without commit or abort: abort synchronously so the
            // next transaction starts clean.
            if let Err(error) = self.producer.abort_transaction(Duration::from_secs(10)) {
                tracing::error!(%error, "abort of a dropped transaction failed; recreating the producer");
                self.state.producer = None;
            }
        }
    }
}
