//! The embedded backend: the log on sled, for one machine with no Kafka.
//!
//! Same contract as Kafka: offsets per partition, murmur2 placement,
//! read_committed visibility, atomic transactions with consumer positions,
//! compacted topics. Writes go through one writer task that group-commits:
//! every request waiting when it wakes is applied in one atomic sled batch
//! and made durable with one flush, and only then acknowledged.

mod consumer;
mod keys;
mod retention;
mod transaction;
mod writer;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::partitioner::partition_for;
use crate::{
    EventLog, GroupOffset, LogConsumer, LogError, LogTransaction, OutgoingRecord, Position,
    StoredRecord, TopicPartition, TopicSpec,
};
use consumer::EmbeddedConsumer;
use transaction::EmbeddedTransaction;
use writer::{Write, WriteRequest};

/// See [`EmbeddedLog::closed`]. Holding it does not keep the log open.
#[derive(Debug, Clone)]
pub struct Closed(watch::Receiver<bool>);

impl Closed {
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|closed| *closed).await;
    }
}

/// Where a partition lives in the tree.
type PartitionId = (u32, u32);

#[derive(Debug, Clone, Copy)]
struct TopicMeta {
    id: u32,
    partitions: u32,
    compacted: bool,
    /// `retention.ms` of a topic that is not compacted (see `retention`).
    retention_ms: Option<i64>,
}

impl TopicMeta {
    /// The stored form: "id partitions compacted" (retention is kept under
    /// its own key, so that an earlier version of orderstore still opens
    /// the log).
    fn text(&self) -> String {
        format!(
            "{} {} {}",
            self.id,
            self.partitions,
            u8::from(self.compacted)
        )
    }

    fn parse(text: &str) -> Result<Self, LogError> {
        let corrupt = || LogError::Corrupt(format!("topic meta {text:?}"));
        let fields: Vec<i64> = text
            .split(' ')
            .map(|f| f.parse().map_err(|_| corrupt()))
            .collect::<Result<_, _>>()?;
        let [id, partitions, compacted] = fields[..] else {
            return Err(corrupt());
        };
        Ok(Self {
            id: u32::try_from(id).map_err(|_| corrupt())?,
            partitions: u32::try_from(partitions).map_err(|_| corrupt())?,
            compacted: compacted == 1,
            retention_ms: None,
        })
    }
}

/// Offsets handed out but maybe not yet durable, and partitions held by an
/// open transaction.
#[derive(Debug, Default)]
struct Assigned {
    next: HashMap<PartitionId, u64>,
    held: HashSet<PartitionId>,
}

#[derive(Debug)]
struct Shared {
    tree: sled::Tree,
    topics: RwLock<HashMap<String, TopicMeta>>,
    assigned: Mutex<Assigned>,
    /// High watermarks: what readers may see. The writer raises them after
    /// each flush, before it wakes consumers, or, for a group of only
    /// unsynced appends (`append_unsynced`), once it is applied.
    durable: Arc<RwLock<HashMap<PartitionId, u64>>>,
    writes: mpsc::UnboundedSender<WriteRequest>,
    /// Bumped after every durable commit; consumers wait on it.
    committed: watch::Receiver<u64>,
    /// Turns true once the writer has flushed and released the database.
    closed: watch::Receiver<bool>,
}

/// The embedded log. Cheap to clone; all clones share one database.
#[derive(Debug, Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
    /// One open transaction at a time per handle (its transactional
    /// producer); each lane has its own.
    transaction: Arc<tokio::sync::Mutex<()>>,
}

fn lock_error<T>(_: T) -> LogError {
    LogError::Invalid("internal lock poisoned".into())
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `dir`. Must be called inside a tokio
    /// runtime: it starts the writer task, which ends when every clone of
    /// the log is dropped.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        // The files of a log that was just closed (a node that stopped, a
        // start that was refused) can stay locked for a moment after its
        // last handle went: try again for up to 2 s before saying so.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .cache_capacity(crate::cache::bytes_for(crate::cache::CacheUse::Log))
                .open();
            match opened {
                Err(sled::Error::Io(error))
                    if error.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                opened => break opened?,
            }
        };
        Self::from_db(db)
    }

    fn from_db(db: sled::Db) -> Result<Self, LogError> {
        let tree = db.open_tree("log")?;
        let topics = load_topics(&tree)?;
        let mut next = HashMap::new();
        for meta in topics.values() {
            for partition in 0..meta.partitions {
                next.insert(
                    (meta.id, partition),
                    end_of_partition(&tree, meta.id, partition)?,
                );
            }
        }
        let (writes, requests) = mpsc::unbounded_channel();
        let (notify, committed) = watch::channel(0);
        let durable = Arc::new(RwLock::new(next.clone()));
        let (closed_tx, closed) = watch::channel(false);
        let writer = writer::run(db, tree.clone(), requests, durable.clone(), notify);
        let closed_for_retention = closed.clone();
        tokio::spawn(async move {
            // `run` owns the database: when it returns, the files are released.
            writer.await;
            closed_tx.send_replace(true);
        });
        let shared = Shared {
            tree,
            topics: RwLock::new(topics),
            durable,
            assigned: Mutex::new(Assigned {
                next,
                held: HashSet::new(),
            }),
            writes,
            committed,
            closed,
        };
        let shared = Arc::new(shared);
        tokio::spawn(retention::run(
            Arc::downgrade(&shared),
            closed_for_retention,
        ));
        Ok(Self {
            shared,
            transaction: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn store_retention(&self, topic: &str, retention_ms: Option<i64>) -> Result<(), LogError> {
        let key = keys::retention_key(topic);
        match retention_ms {
            Some(ms) => self
                .shared
                .tree
                .insert(key, &(ms.max(0) as u64).to_be_bytes())?,
            None => self.shared.tree.remove(key)?,
        };
        Ok(())
    }

    /// Deletes records older than their topic's retention at `now_ms` (ms
    /// since the epoch), keeping each partition's last record; returns how
    /// many. The log does this by itself once a minute (see `retention`).
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64, LogError> {
        retention::sweep(&self.shared, now_ms, u64::MAX)
    }

    /// A signal that fires once every handle is dropped and the database is
    /// flushed and released, so the directory can be opened again.
    pub fn closed(&self) -> Closed {
        Closed(self.shared.closed.clone())
    }

    fn topic(&self, name: &str) -> Result<TopicMeta, LogError> {
        self.shared
            .topics
            .read()
            .map_err(lock_error)?
            .get(name)
            .copied()
            .ok_or_else(|| LogError::UnknownTopic(name.to_owned()))
    }

    fn partition_id(&self, tp: &TopicPartition) -> Result<(TopicMeta, PartitionId), LogError> {
        let meta = self.topic(&tp.topic)?;
        if tp.partition >= meta.partitions {
            return Err(LogError::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            });
        }
        Ok((meta, (meta.id, tp.partition)))
    }

    /// Resolves topic and partition (by key when not given).
    fn place(&self, record: &OutgoingRecord) -> Result<(TopicMeta, u32), LogError> {
        let meta = self.topic(&record.topic)?;
        let partition = match record.partition {
            Some(p) if p < meta.partitions => p,
            Some(p) => {
                return Err(LogError::UnknownPartition {
                    topic: record.topic.clone(),
                    partition: p,
                })
            }
            None => partition_for(&record.record.key, meta.partitions),
        };
        Ok((meta, partition))
    }

    fn high_watermark(&self, id: PartitionId) -> Result<u64, LogError> {
        Ok(self
            .shared
            .durable
            .read()
            .map_err(lock_error)?
            .get(&id)
            .copied()
            .unwrap_or(0))
    }

    /// Committed records of one partition from `from`, at most `max`.
    fn read(
        &self,
        tp: &TopicPartition,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        let (_, (topic_id, partition)) = self.partition_id(tp)?;
        let high = self.high_watermark((topic_id, partition))?;
        if from >= high || max == 0 {
            return Ok(Vec::new());
        }
        let start = keys::log_key(topic_id, partition, from);
        let end = keys::log_key(topic_id, partition, high);
        let mut out = Vec::with_capacity(max.min((high - from) as usize));
        for entry in self.shared.tree.range(start..end).take(max) {
            let (key, value) = entry?;
            out.push(StoredRecord {
                topic: tp.topic.clone(),
                partition,
                offset: keys::offset_of_log_key(&key)?,
                record: keys::decode_record(&value)?,
            });
        }
        Ok(out)
    }

    /// Appends outside any transaction; `sync`: acknowledged once durable,
    /// else once applied (durable with the next flush, `append_unsynced`).
    async fn append_with(
        &self,
        records: Vec<OutgoingRecord>,
        sync: bool,
    ) -> Result<Vec<Position>, LogError> {
        let placed: Vec<_> = records
            .into_iter()
            .map(|r| self.place(&r).map(|(meta, partition)| (meta, partition, r)))
            .collect::<Result<_, _>>()?;
        let (done, outcome) = oneshot::channel();
        let positions;
        {
            // Offsets are assigned and the request queued under one lock, so
            // the writer applies records in offset order.
            let mut assigned = self.shared.assigned.lock().map_err(lock_error)?;
            let busy = placed
                .iter()
                .find(|(m, p, _)| assigned.held.contains(&(m.id, *p)));
            if let Some((_, partition, record)) = busy {
                return Err(LogError::PartitionBusy {
                    topic: record.topic.clone(),
                    partition: *partition,
                });
            }
            let mut with_offsets = Vec::with_capacity(placed.len());
            for (meta, partition, record) in placed {
                let next = assigned.next.entry((meta.id, partition)).or_insert(0);
                with_offsets.push((meta, partition, *next, record));
                *next += 1;
            }
            positions = with_offsets
                .iter()
                .map(|(_, p, o, _)| Position {
                    partition: *p,
                    offset: *o,
                })
                .collect();
            self.submit(WriteRequest {
                writes: Self::writes_for(with_offsets),
                sync,
                done,
            })?;
        }
        outcome.await.map_err(|_| LogError::Closed)??;
        Ok(positions)
    }

    fn submit(&self, request: WriteRequest) -> Result<(), LogError> {
        self.shared
            .writes
            .send(request)
            .map_err(|_| LogError::Closed)
    }

    /// Builds the writes of placed records with their assigned offsets.
    fn writes_for(placed: Vec<(TopicMeta, u32, u64, OutgoingRecord)>) -> Vec<Write> {
        placed
            .into_iter()
            .map(|(meta, partition, offset, outgoing)| Write::Record {
                topic_id: meta.id,
                partition,
                offset,
                compacted: meta.compacted,
                record: outgoing.record,
            })
            .collect()
    }
}

fn load_topics(tree: &sled::Tree) -> Result<HashMap<String, TopicMeta>, LogError> {
    let mut topics = HashMap::new();
    for entry in tree.scan_prefix([keys::TOPIC]) {
        let (key, value) = entry?;
        let name = String::from_utf8(key[1..].to_vec())
            .map_err(|_| LogError::Corrupt("topic name".into()))?;
        let text =
            std::str::from_utf8(&value).map_err(|_| LogError::Corrupt("topic meta".into()))?;
        let mut meta = TopicMeta::parse(text)?;
        meta.retention_ms = tree
            .get(keys::retention_key(&name))?
            .map(|v| keys::u64_value(&v).map(|ms| ms as i64))
            .transpose()?;
        topics.insert(name, meta);
    }
    Ok(topics)
}

fn end_of_partition(tree: &sled::Tree, topic_id: u32, partition: u32) -> Result<u64, LogError> {
    match tree
        .scan_prefix(keys::partition_prefix(keys::LOG, topic_id, partition))
        .next_back()
    {
        Some(entry) => Ok(keys::offset_of_log_key(&entry?.0)? + 1),
        None => Ok(0),
    }
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), LogError> {
        if spec.partitions == 0 {
            return Err(LogError::Invalid(format!(
                "topic {:?} needs at least one partition",
                spec.name
            )));
        }
        let mut topics = self.shared.topics.write().map_err(lock_error)?;
        let retention_ms = spec.retention_ms.filter(|_| !spec.compacted);
        if let Some(existing) = topics.get_mut(&spec.name) {
            if existing.partitions != spec.partitions {
                return Err(LogError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing: existing.partitions,
                    requested: spec.partitions,
                });
            }
            // The node's topic specs are the embedded log's only topic
            // configuration: retention follows them (a log written before
            // retention was kept takes it on its next start).
            if existing.retention_ms != retention_ms {
                existing.retention_ms = retention_ms;
                self.store_retention(&spec.name, retention_ms)?;
                self.shared.tree.flush()?;
            }
            return Ok(());
        }
        let id = topics.values().map(|m| m.id + 1).max().unwrap_or(0);
        let meta = TopicMeta {
            id,
            partitions: spec.partitions,
            compacted: spec.compacted,
            retention_ms,
        };
        self.shared
            .tree
            .insert(keys::topic_key(&spec.name), meta.text().as_bytes())?;
        self.store_retention(&spec.name, retention_ms)?;
        // Rare and small: a blocking flush keeps the topic table locked throughout.
        self.shared.tree.flush()?;
        let mut assigned = self.shared.assigned.lock().map_err(lock_error)?;
        let mut durable = self.shared.durable.write().map_err(lock_error)?;
        for partition in 0..spec.partitions {
            assigned.next.insert((id, partition), 0);
            durable.insert((id, partition), 0);
        }
        topics.insert(spec.name.clone(), meta);
        Ok(())
    }

    async fn partition_count(&self, topic: &str) -> Result<u32, LogError> {
        Ok(self.topic(topic)?.partitions)
    }

    async fn append(&self, records: Vec<OutgoingRecord>) -> Result<Vec<Position>, LogError> {
        self.append_with(records, true).await
    }

    async fn append_unsynced(
        &self,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Position>, LogError> {
        self.append_with(records, false).await
    }

    async fn init_transactions(&self) -> Result<(), LogError> {
        // One process owns the database (sled's file lock): nobody to fence.
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn LogTransaction>, LogError> {
        let guard = self.transaction.clone().lock_owned().await;
        Ok(Box::new(EmbeddedTransaction::new(self.clone(), guard)))
    }

    fn lane(&self, _lane: &str) -> Arc<dyn EventLog> {
        // Lanes of one database never conflict: each transaction holds
        // the partitions it writes, and the writer folds concurrent
        // commits into one flush.
        Arc::new(Self {
            shared: self.shared.clone(),
            transaction: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    async fn watermarks(&self, tp: &TopicPartition) -> Result<(u64, u64), LogError> {
        let (_, (topic_id, partition)) = self.partition_id(tp)?;
        let high = self.high_watermark((topic_id, partition))?;
        let prefix = keys::partition_prefix(keys::LOG, topic_id, partition);
        let low = match self.shared.tree.scan_prefix(prefix).next() {
            Some(entry) => keys::offset_of_log_key(&entry?.0)?.min(high),
            None => high,
        };
        Ok((low, high))
    }

    async fn offset_for_time(
        &self,
        tp: &TopicPartition,
        timestamp_ms: i64,
    ) -> Result<Option<u64>, LogError> {
        let (low, high) = self.watermarks(tp).await?;
        // Binary search for the first record at or after the time; exact
        // when timestamps grow with offsets (the events topic), like Kafka's
        // time index otherwise.
        let (mut lo, mut hi) = (low, high);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.read(tp, mid, 1)?.into_iter().next() {
                Some(found) if found.record.timestamp_ms < timestamp_ms => lo = found.offset + 1,
                Some(_) => hi = mid,
                None => hi = mid,
            }
        }
        Ok(self.read(tp, lo, 1)?.into_iter().next().map(|r| r.offset))
    }

    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        let (_, (topic_id, partition)) = self.partition_id(tp)?;
        self.shared
            .tree
            .get(keys::group_key(group, topic_id, partition))?
            .map(|v| keys::u64_value(&v))
            .transpose()
    }

    async fn commit_offsets(&self, offsets: Vec<GroupOffset>) -> Result<(), LogError> {
        let writes = self.group_writes(&offsets)?;
        let (done, outcome) = oneshot::channel();
        // A progress report, durable with the next flush (see the trait).
        self.submit(WriteRequest {
            writes,
            sync: false,
            done,
        })?;
        outcome.await.map_err(|_| LogError::Closed)??;
        Ok(())
    }

    async fn consumer(&self) -> Result<Box<dyn LogConsumer>, LogError> {
        Ok(Box::new(EmbeddedConsumer::new(self.clone())))
    }
}

impl EmbeddedLog {
    fn group_writes(&self, offsets: &[GroupOffset]) -> Result<Vec<Write>, LogError> {
        offsets
            .iter()
            .map(|o| {
                let (_, (topic_id, partition)) = self.partition_id(&o.partition)?;
                Ok(Write::GroupOffset {
                    key: keys::group_key(&o.group, topic_id, partition),
                    next_offset: o.next_offset,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::TopicMeta;

    #[test]
    fn topic_meta_reads_its_stored_form_and_refuses_others() {
        let meta = TopicMeta::parse("3 6 1").unwrap();
        assert_eq!((meta.id, meta.partitions, meta.compacted), (3, 6, true));
        assert_eq!(meta.text(), "3 6 1");
        for bad in ["", "1 2", "1 2 0 5", "-1 2 0", "1 x 0", "1 2 y"] {
            assert!(TopicMeta::parse(bad).is_err(), "{bad:?}");
        }
    }
}
