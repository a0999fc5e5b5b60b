//! Raw Kafka peers for `orderstore bench commands`: what the client library
//! does on the same broker without orderstore around it. Transactional
//! lanes doing back-to-back transactions of a given shape (one partition,
//! or the pipeline lane's three partitions and consumed offset), and an
//! idempotent producer at full speed.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::{kafka_error, KafkaConfig};
use crate::LogError;

/// What a peer did in its time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeerRun {
    /// Records acknowledged.
    pub records: u64,
    /// Transactions committed (0 for the idempotent producer).
    pub transactions: u64,
    pub elapsed: Duration,
    /// Median time of one transaction.
    pub transaction_p50: Duration,
}

impl PeerRun {
    pub fn records_per_second(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn producer(
    config: &KafkaConfig,
    transactional_id: Option<&str>,
) -> Result<ThreadedProducer<rdkafka::producer::DefaultProducerContext>, LogError> {
    let mut client: ClientConfig = config.client();
    client
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2");
    if let Some(id) = transactional_id {
        // As the lanes' producers are configured.
        client
            .set("transactional.id", id)
            .set("linger.ms", "0")
            .set("retry.backoff.ms", super::transaction::RETRY_BACKOFF_MS);
    }
    client.create().map_err(kafka_error)
}

/// What one transaction of a raw lane holds.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionShape {
    /// Records per transaction in each of the lane's partitions.
    pub records_per_partition: usize,
    /// Partitions a lane writes: lane `i` writes partitions `i`,
    /// `i + lanes`, `i + 2 * lanes`, ... of the topic (the topic needs
    /// `lanes * partitions_per_lane` partitions).
    pub partitions_per_lane: u32,
    /// When set, every transaction also commits lane `i`'s offset of
    /// partition `i` for this consumer group (send_offsets_to_transaction,
    /// started after the records, so it runs beside their produce requests,
    /// as the pipeline's lanes do).
    pub offsets_group: Option<String>,
    pub value_bytes: usize,
}

impl TransactionShape {
    /// The plainest transaction: `records` records in one partition.
    pub fn one_partition(records: usize, value_bytes: usize) -> Self {
        Self {
            records_per_partition: records,
            partitions_per_lane: 1,
            offsets_group: None,
            value_bytes,
        }
    }

    /// The transaction of a pipeline lane deciding `commands` commands: one
    /// record per command in each of three partitions (its events,
    /// snapshots and replies partitions) and the consumed offset of its
    /// commands partition, for `group`.
    pub fn pipeline_lane(commands: usize, value_bytes: usize, group: &str) -> Self {
        Self {
            records_per_partition: commands,
            partitions_per_lane: 3,
            offsets_group: Some(group.to_owned()),
            value_bytes,
        }
    }
}

/// `lanes` transactional producers committing back-to-back transactions
/// of `shape` in `topic` for `duration`. Every commit waits for its
/// delivery reports first, as `eventlog` does (docs/adr/0006).
pub fn transactional_lanes(
    config: &KafkaConfig,
    topic: &str,
    lanes: u32,
    shape: &TransactionShape,
    duration: Duration,
) -> Result<PeerRun, LogError> {
    let value = vec![b'x'; shape.value_bytes];
    // Every lane claims its transactional id and group metadata first; the
    // clock starts when all are ready (init_transactions is not measured).
    let ready = std::sync::Barrier::new(lanes as usize);
    type LaneRun = (u64, Vec<Duration>, Duration);
    let outcomes: Vec<Result<LaneRun, LogError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                let (value, ready) = (&value, &ready);
                scope.spawn(move || {
                    let setup = lane_setup(config, topic, lane, shape);
                    // Every lane waits here, ready or not, so none is left
                    // waiting for a lane that failed to start.
                    ready.wait();
                    let (producer, group) = setup?;
                    let mut times = Vec::new();
                    let mut records = 0;
                    let mut consumed: i64 = 0;
                    let started = Instant::now();
                    while started.elapsed() < duration {
                        let txn = Instant::now();
                        producer.begin_transaction().map_err(kafka_error)?;
                        for k in 0..shape.partitions_per_lane {
                            let partition = (lane + k * lanes) as i32;
                            for _ in 0..shape.records_per_partition {
                                let record = BaseRecord::<[u8], [u8]>::to(topic)
                                    .key(b"order")
                                    .payload(value.as_slice())
                                    .partition(partition);
                                producer.send(record).map_err(|(e, _)| kafka_error(e))?;
                            }
                        }
                        if let Some(metadata) = &group {
                            consumed += shape.records_per_partition as i64;
                            let mut offsets = TopicPartitionList::new();
                            offsets
                                .add_partition_offset(topic, lane as i32, Offset::Offset(consumed))
                                .map_err(kafka_error)?;
                            producer
                                .send_offsets_to_transaction(&offsets, metadata, config.timeout)
                                .map_err(kafka_error)?;
                        }
                        while producer.in_flight_count() > 0 {
                            std::thread::sleep(Duration::from_micros(20));
                        }
                        producer
                            .commit_transaction(config.timeout)
                            .map_err(kafka_error)?;
                        times.push(txn.elapsed());
                        records += (shape.records_per_partition
                            * shape.partitions_per_lane as usize)
                            as u64;
                    }
                    Ok((records, times, started.elapsed()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(LogError::Kafka("a peer lane panicked".into())))
            })
            .collect()
    });
    let mut elapsed = Duration::ZERO;
    let mut records = 0;
    let mut times = Vec::new();
    for outcome in outcomes {
        let (lane_records, lane_times, lane_elapsed) = outcome?;
        records += lane_records;
        times.extend(lane_times);
        elapsed = elapsed.max(lane_elapsed);
    }
    times.sort();
    Ok(PeerRun {
        records,
        transactions: times.len() as u64,
        elapsed,
        transaction_p50: times.get(times.len() / 2).copied().unwrap_or_default(),
    })
}

type TransactionalPeer = ThreadedProducer<rdkafka::producer::DefaultProducerContext>;

/// A lane's transactional producer, ready for its first transaction, and
/// the group metadata its offsets are committed with (a non-member's:
/// the peer joins no group; the pipeline's lanes send their dispatcher's),
/// when its shape commits offsets.
fn lane_setup(
    config: &KafkaConfig,
    topic: &str,
    lane: u32,
    shape: &TransactionShape,
) -> Result<(TransactionalPeer, Option<ConsumerGroupMetadata>), LogError> {
    let id = format!("{topic}.peer-lane-{lane}-{}", std::process::id());
    let producer = producer(config, Some(&id))?;
    producer
        .init_transactions(config.timeout)
        .map_err(kafka_error)?;
    let group = match &shape.offsets_group {
        Some(group) => {
            let consumer: BaseConsumer = config
                .client()
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(kafka_error)?;
            // The metadata is a copy of its own: the consumer may go.
            let metadata = consumer
                .group_metadata()
                .ok_or_else(|| LogError::Kafka(format!("no group metadata for {group}")))?;
            Some(metadata)
        }
        None => None,
    };
    Ok((producer, group))
}

/// An idempotent producer (acks=all) sending records of `value_bytes` over
/// every partition of `topic` for `duration`, as fast as its local queue
/// takes them; then flushed (so every counted record is acknowledged).
pub fn idempotent_producer(
    config: &KafkaConfig,
    topic: &str,
    partitions: u32,
    value_bytes: usize,
    duration: Duration,
) -> Result<PeerRun, LogError> {
    let producer = producer(config, None)?;
    let value = vec![b'x'; value_bytes];
    let started = Instant::now();
    let mut sent: u64 = 0;
    while started.elapsed() < duration {
        let record = BaseRecord::<[u8], [u8]>::to(topic)
            .key(b"order")
            .payload(value.as_slice())
            .partition((sent % u64::from(partitions.max(1))) as i32);
        match producer.send(record) {
            Ok(()) => sent += 1,
            // The local queue is full: let the broker catch up.
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                _,
            )) => std::thread::sleep(Duration::from_micros(200)),
            Err((error, _)) => return Err(kafka_error(error)),
        }
    }
    producer.flush(config.timeout).map_err(kafka_error)?;
    Ok(PeerRun {
        records: sent,
        transactions: 0,
        elapsed: started.elapsed(),
        transaction_p50: Duration::ZERO,
    })
}
