//! The Kafka-shaped log trait. Small on purpose: what the command
//! processor, the projections and the API need, in Kafka's own terms, so
//! that rdkafka's transactional producer and read_committed consumer
//! implement it directly.

use std::time::Duration;

use async_trait::async_trait;

use crate::{LogError, OutgoingRecord, Position, StoredRecord, TopicPartition, TopicSpec};

/// A consumer group's position in one partition: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    pub group: String,
    pub partition: TopicPartition,
    pub next_offset: u64,
}

#[async_trait]
pub trait EventLog: Send + Sync + std::fmt::Debug + 'static {
    /// Creates the topic if missing; an existing topic must match its spec.
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError>;

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError>;

    /// Appends records outside any transaction. Returns once they are
    /// durable, with where each landed (same order as given).
    async fn append(&self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError>;

    /// Appends records that become durable with the log's next durable
    /// write, and returns once readers can see them. For a writer that
    /// acknowledges nothing until a later durable write of its own: the
    /// gateway's commands, which a client learns the outcome of only from a
    /// reply the processor commits after reading them (a durable commit makes
    /// every record before it durable too). After a crash such a record may
    /// be gone, and then nothing that depended on it was committed. The
    /// embedded log skips the record's own flush (one flush per command
    /// instead of two); Kafka has no such write, and appends as `append`.
    async fn append_unsynced(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Position>, LogError> {
        self.append(records).await
    }

    /// Claims this handle's transactional identity (Kafka: init_transactions),
    /// fencing a previous owner and aborting its open transaction. A writer
    /// calls it before reading the state it will write on.
    async fn init_transactions(&self) -> Result<(), LogError>;

    /// Starts a transaction (Kafka: begin_transaction on the transactional
    /// producer). One open transaction per log handle at a time.
    async fn begin(&self) -> Result<Box<dyn LogTransaction>, LogError>;

    /// A handle on the same log with a transactional identity of its own,
    /// named `lane` (Kafka: a transactional producer with `transactional.id`
    /// `<this handle's id>.<lane>`). It shares this handle's connections,
    /// group memberships and metadata. Transactions of different lanes are
    /// open at the same time; claiming a lane (`init_transactions`) fences
    /// only that lane's previous owner, wherever it runs.
    fn lane(&self, lane: &str) -> std::sync::Arc<dyn EventLog>;

    /// How many offsets a committed transaction's end takes in each
    /// partition it wrote to: Kafka writes one control record there (the
    /// commit marker), the embedded log none. So the single writer of a
    /// partition knows where its next transaction's records land: right
    /// after its last committed record plus this (after an abort it does
    /// not; it learns again from its next send). A lane sends its replies
    /// beside its events on that prediction and checks it against the
    /// positions the log answers before it commits.
    fn marker_offsets(&self) -> u64 {
        0
    }

    /// The first offset kept and the readable end: the offset after the
    /// last record a read_committed reader can see now. On Kafka that is
    /// the last stable offset: the records of an open transaction lie past
    /// it, and so, for a moment after `commit` returned, do those of a
    /// committed one whose markers the coordinator is still writing. A
    /// reader that starts at the readable end misses nothing committed.
    async fn watermarks(&self, partition: &TopicPartition) -> Result<(u64, u64), LogError>;

    /// The offset after the last record of the transactions this process
    /// committed on `partition` (through this handle or its lanes), when it
    /// knows one. On Kafka those records lie past the readable end from the
    /// moment `commit` returns until the coordinator has written their
    /// markers, a moment later: how far a reader is behind counts to here.
    /// `None` where a committed transaction is readable at once (embedded).
    fn committed_end(&self, _partition: &TopicPartition) -> Option<u64> {
        None
    }

    /// The earliest offset whose timestamp is at or after `timestamp_ms`, or
    /// None past the end (Kafka: offsets_for_times).
    async fn offset_for_time(
        &self,
        partition: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, LogError>;

    /// The committed position of a consumer group.
    async fn committed(
        &self,
        group: &str,
        partition: &TopicPartition,
    ) -> Result<Option<u64>, LogError>;

    /// Commits consumer group positions outside any transaction: a progress
    /// report, what tools read a group's lag from. The embedded log makes
    /// it durable with its next durable write, so a crash may lose the last
    /// report; a writer that resumes from its positions commits them in its
    /// transaction instead (the processor), or keeps its own checkpoints
    /// (projection workers and sinks).
    async fn commit_offsets(&self, offsets: Vec<GroupOffset>) -> Result<(), LogError>;

    /// A consumer that reads committed records only (read_committed).
    async fn consumer(&self) -> Result<Box<dyn LogConsumer>, LogError>;
}

/// An open transaction: records sent in it become visible together when
/// it commits, along with the consumer positions given to `commit`
/// (send_offsets_to_transaction), or not at all.
#[async_trait]
pub trait LogTransaction: Send + std::fmt::Debug {
    /// Sends records; returns where each will land if the transaction commits.
    async fn send(&mut self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError>;

    /// Adds consumer positions to the transaction as soon as they are
    /// known, so the log can register them while records are still being
    /// sent (Kafka: send_offsets_to_transaction runs beside the sends).
    /// They commit with everything else, or not at all.
    async fn send_offsets(&mut self, offsets: Vec<GroupOffset>) -> Result<(), LogError>;

    /// Commits the records and the consumer positions (those sent before
    /// and `offsets`) atomically and durably.
    async fn commit(self: Box<Self>, offsets: Vec<GroupOffset>) -> Result<(), LogError>;

    /// Discards everything sent.
    async fn abort(self: Box<Self>) -> Result<(), LogError>;
}

#[async_trait]
pub trait LogConsumer: Send + std::fmt::Debug {
    /// Reads these partitions from these offsets from now on.
    async fn assign(&mut self, positions: Vec<(TopicPartition, u64)>) -> Result<(), LogError>;

    /// Joins consumer `group` on `topic`: the group decides which partitions
    /// this member reads (and moves them between members), each from the
    /// group's committed offset. On the embedded log the one member gets all.
    async fn subscribe(&mut self, group: &str, topic: &str) -> Result<(), LogError>;

    /// The partitions this consumer reads now (changes after a rebalance).
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Up to `max` committed records from the assigned partitions, in
    /// offset order within each partition. Waits up to `timeout` (without
    /// busy polling) when nothing is there; an empty result is not an error.
    async fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<StoredRecord>, LogError>;

    /// The next offset this consumer will read from a partition.
    fn position(&self, partition: &TopicPartition) -> Option<u64>;

    /// Marks this consumer as following the head of its partitions for as
    /// long as it lives (a tailer: the reply router, the dispatcher, the
    /// projection workers): at the end of its data `poll` keeps waiting for
    /// its timeout instead of answering at once. Knowing the data has
    /// ended costs a watermark query per partition on Kafka, which is
    /// worth it only for reads that stop there (restore, folds, rebuilds).
    fn follow(&mut self) {}

    /// Whether this consumer has its partitions: after `subscribe`, once
    /// the group has given it an assignment (possibly empty, when the
    /// group has more members than partitions) and while no rebalance
    /// has taken it away; always with a manual assignment.
    fn group_assigned(&self) -> bool;
}
