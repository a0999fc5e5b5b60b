//! One partition of the events topic delivered to one sink. Orders go in
//! parallel; each order's events go one at a time, in log order. An order
//! whose event waits for a retry holds only its own later events; one
//! whose event is refused parks, with its later events behind it, as the
//! DLQ does. The checkpoint is the first offset neither delivered nor
//! parked, so a restart (or a kill -9) sends again what was in flight and
//! skips nothing. At most `WINDOW` events past the checkpoint are held:
//! a receiver that stays down grows lag, never memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use eventlog::{EventLog, LogConsumer, LogError, StoredRecord, TopicPartition};
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::delivery::{self, Outcome, Request};
use super::store::{ParkedEvent, SinkBatch};
use super::{SinkError, SinkShared};
use crate::worker::decode_event;

/// Most events held past the checkpoint of one partition.
pub const WINDOW: usize = 1000;
/// Most records one read takes.
const READ: usize = 200;

/// What an operator asks a partition's delivery to do.
#[derive(Debug)]
pub enum Control {
    /// Send the parked events of one order (or of every order) again, in
    /// order; answers how many were queued.
    Retry {
        order_id: Option<String>,
        reply: oneshot::Sender<usize>,
    },
    /// Drop one parked event for good; answers it, if it was there.
    Discard {
        partition: u32,
        offset: u64,
        reply: oneshot::Sender<Option<ParkedEvent>>,
    },
}

/// One event waiting in its order's queue.
struct Queued {
    offset: u64,
    request: Result<Request, String>,
    /// Kept from the record, for parking it.
    record: StoredRecord,
    /// Sent again from the parked events (its offset is behind the checkpoint).
    from_parked: bool,
}

/// Records read from the log, and the consumer's position after them.
struct Read {
    records: Vec<StoredRecord>,
    position: Option<u64>,
}

/// Reads the partition into a bounded channel on its own task, so reading
/// never races a delivery for the same `select!`.
fn spawn_reader(
    mut consumer: Box<dyn LogConsumer>,
    tp: TopicPartition,
    out: mpsc::Sender<Result<Read, LogError>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = None;
        loop {
            let read = consumer.poll(READ, Duration::from_millis(250)).await;
            let read = read.map(|records| Read {
                records,
                position: consumer.position(&tp),
            });
            let moved = match &read {
                Ok(read) => !read.records.is_empty() || read.position != last,
                Err(_) => true,
            };
            if let Ok(read) = &read {
                last = read.position;
            }
            let failed = read.is_err();
            if moved && out.send(read).await.is_err() {
                return; // the delivery stopped
            }
            if failed {
                return;
            }
        }
    })
}

pub(super) async fn run(
    shared: Arc<SinkShared>,
    log: Arc<dyn EventLog>,
    events_topic: String,
    partition: u32,
    control: &mut mpsc::Receiver<Control>,
    shutdown: eventlog::Shutdown,
) -> Result<(), SinkError> {
    let tp = TopicPartition::new(&events_topic, partition);
    let start = match shared.store.checkpoint(partition)? {
        Some(next) => next,
        None => log.watermarks(&tp).await?.0,
    };
    let mut consumer = log.consumer().await?;
    consumer.follow();
    consumer.assign(vec![(tp.clone(), start)]).await?;
    let (reads_tx, mut reads) = mpsc::channel(2);
    let reader = spawn_reader(consumer, tp, reads_tx);
    let _reader = AbortOnDrop(reader);

    let mut state = State {
        shared: shared.clone(),
        partition,
        window: BTreeMap::new(),
        orders: HashMap::new(),
        parked: shared.store.parked_orders(partition)?,
        position: start,
        delivered: shared.store.delivered(partition)?,
        checkpoint: start,
        batch: SinkBatch::default(),
    };
    shared.progress.set_position(partition, start);
    let mut in_flight = FuturesUnordered::new();
    let mut shutdown = shutdown;
    loop {
        let room = state.window.len() < WINDOW;
        tokio::select! {
            _ = &mut shutdown => break,
            Some(request) = control.recv() => state.control(request, &mut in_flight),
            Some((order_id, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                state.finished(order_id, outcome, &mut in_flight);
            }
            read = reads.recv(), if room => match read {
                Some(Ok(read)) => state.read(read, &mut in_flight),
                Some(Err(error)) => return Err(error.into()),
                None => return Err(SinkError::Stopped("the partition's reader")),
            },
        }
        state.commit()?;
    }
    state.commit()?;
    shared.store.flush().await?;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type InFlight = FuturesUnordered<
    std::pin::Pin<Box<dyn std::future::Future<Output = (String, Outcome)> + Send>>,
>;

struct State {
    shared: Arc<SinkShared>,
    partition: u32,
    /// Offsets past the checkpoint read so far: done (delivered or parked) or not.
    window: BTreeMap<u64, bool>,
    /// Per order, its events not yet done; the first is being delivered.
    orders: HashMap<String, VecDeque<Queued>>,
    /// Orders with parked events, whose later events park behind them.
    parked: BTreeSet<String>,
    /// The consumer's position: the checkpoint once the window is empty.
    position: u64,
    delivered: u64,
    checkpoint: u64,
    batch: SinkBatch,
}

impl State {
    fn read(&mut self, read: Read, in_flight: &mut InFlight) {
        for stored in read.records {
            let offset = stored.offset;
            self.position = self.position.max(offset + 1);
            let decoded = decode_event(&stored.record.headers, stored.record.value.as_deref());
            let order_id = match &decoded {
                Ok(event) => event.envelope.subject.clone(),
                Err(_) => String::from_utf8(stored.record.key.clone()).unwrap_or_default(),
            };
            self.window.insert(offset, false);
            let queued = Queued {
                offset,
                request: decoded.map(|event| Request::new(&event)),
                record: stored,
                from_parked: false,
            };
            if self.parked.contains(&order_id) {
                let error = "parked behind an earlier parked event of this order".to_owned();
                self.park(&order_id, &queued, None, error);
                continue;
            }
            let queue = self.orders.entry(order_id.clone()).or_default();
            queue.push_back(queued);
            if queue.len() == 1 {
                self.start_head(&order_id, in_flight);
            }
        }
        if let Some(position) = read.position {
            self.position = self.position.max(position);
        }
    }

    /// Starts delivering the first queued event of `order_id` (parking it
    /// at once when it cannot be read).
    fn start_head(&mut self, order_id: &str, in_flight: &mut InFlight) {
        loop {
            let Some(head) = self.orders.get(order_id).and_then(|q| q.front()) else {
                self.orders.remove(order_id);
                return;
            };
            match &head.request {
                Ok(request) => {
                    let (shared, request, order) =
                        (self.shared.clone(), request.clone(), order_id.to_owned());
                    in_flight.push(Box::pin(async move {
                        (order, delivery::deliver(shared, request).await)
                    }));
                    return;
                }
                Err(error) => {
                    let error = error.clone();
                    self.finished_head(
                        order_id,
                        Outcome::Parked {
                            status: None,
                            error,
                        },
                    );
                }
            }
        }
    }

    fn finished(&mut self, order_id: String, outcome: Outcome, in_flight: &mut InFlight) {
        self.finished_head(&order_id, outcome);
        if self.orders.contains_key(&order_id) {
            self.start_head(&order_id, in_flight);
        }
    }

    /// Records the outcome of the first queued event of `order_id`; a
    /// parked one parks the order's whole queue.
    fn finished_head(&mut self, order_id: &str, outcome: Outcome) {
        let Some(queue) = self.orders.get_mut(order_id) else {
            return;
        };
        let Some(head) = queue.pop_front() else {
            return;
        };
        match outcome {
            Outcome::Delivered => {
                self.delivered += 1;
                self.shared.progress.applied.fetch_add(1, Ordering::Relaxed);
                self.batch.delivered = Some((self.partition, self.delivered));
                if head.from_parked {
                    self.batch
                        .unpark
                        .push((order_id.to_owned(), self.partition, head.offset));
                } else {
                    self.window.insert(head.offset, true);
                }
                if self.orders.get(order_id).is_some_and(VecDeque::is_empty) {
                    self.orders.remove(order_id);
                }
            }
            Outcome::Parked { status, error } => {
                tracing::warn!(sink = self.shared.spec.name, order_id, offset = head.offset, %error, "parking an event the receiver refused");
                self.park(order_id, &head, status, error);
                let rest = self.orders.remove(order_id).unwrap_or_default();
                for queued in rest {
                    if !queued.from_parked {
                        let error = "parked behind an earlier parked event of this order".into();
                        self.park(order_id, &queued, None, error);
                    }
                }
            }
        }
    }

    fn park(&mut self, order_id: &str, queued: &Queued, status: Option<u16>, error: String) {
        let record = &queued.record.record;
        let header = |name: &str| {
            record
                .header(name)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        self.batch.park.push(ParkedEvent {
            partition: self.partition,
            offset: queued.offset,
            order_id: order_id.to_owned(),
            event_id: header(domain::envelope::header::ID),
            event_type: header(domain::envelope::header::TYPE),
            sequence: header(domain::envelope::header::SEQUENCE).and_then(|s| s.parse().ok()),
            status,
            error,
            parked_at: Utc::now(),
            headers: record.headers.clone(),
            payload: record.value.clone(),
        });
        self.parked.insert(order_id.to_owned());
        if !queued.from_parked {
            self.window.insert(queued.offset, true);
        }
    }

    fn control(&mut self, request: Control, in_flight: &mut InFlight) {
        match request {
            Control::Retry { order_id, reply } => {
                let orders: Vec<String> = match order_id {
                    Some(order) => self
                        .parked
                        .iter()
                        .filter(|o| **o == order)
                        .cloned()
                        .collect(),
                    None => self.parked.iter().cloned().collect(),
                };
                let mut queued = 0;
                for order in orders {
                    let events = match self.shared.store.parked_of(&order) {
                        Ok(events) => events,
                        Err(error) => {
                            tracing::error!(sink = self.shared.spec.name, %error, "cannot read parked events");
                            continue;
                        }
                    };
                    self.parked.remove(&order);
                    let queue = self.orders.entry(order.clone()).or_default();
                    for event in events.into_iter().filter(|e| e.partition == self.partition) {
                        queue.push_back(requeued(event));
                        queued += 1;
                    }
                    self.start_head(&order, in_flight);
                }
                let _ = reply.send(queued);
            }
            Control::Discard {
                partition,
                offset,
                reply,
            } => {
                let found = self
                    .shared
                    .store
                    .parked()
                    .ok()
                    .and_then(|all| {
                        all.into_iter()
                            .find(|e| e.partition == partition && e.offset == offset)
                    })
                    // An order being sent again is not parked now.
                    .filter(|e| self.parked.contains(&e.order_id));
                if let Some(event) = &found {
                    self.batch
                        .unpark
                        .push((event.order_id.clone(), partition, offset));
                    let others = self
                        .shared
                        .store
                        .parked_of(&event.order_id)
                        .map(|all| all.iter().any(|e| e.offset != offset))
                        .unwrap_or(true);
                    if !others {
                        self.parked.remove(&event.order_id);
                    }
                }
                let _ = reply.send(found);
            }
        }
    }

    /// Moves the checkpoint over done events and writes what changed.
    fn commit(&mut self) -> Result<(), SinkError> {
        while let Some(entry) = self.window.first_entry() {
            if !*entry.get() {
                break;
            }
            entry.remove();
        }
        let checkpoint = self.window.keys().next().copied().unwrap_or(self.position);
        if checkpoint > self.checkpoint {
            self.checkpoint = checkpoint;
            self.batch.checkpoint = Some((self.partition, checkpoint));
        }
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        self.shared.store.commit(batch)?;
        self.shared
            .progress
            .set_position(self.partition, self.checkpoint);
        Ok(())
    }
}

/// A parked event, queued to be sent again.
fn requeued(event: ParkedEvent) -> Queued {
    let request = decode_event(&event.headers, event.payload.as_deref())
        .map(|decoded| Request::new(&decoded));
    Queued {
        offset: event.offset,
        request,
        record: StoredRecord {
            topic: String::new(),
            partition: event.partition,
            offset: event.offset,
            record: eventlog::Record {
                key: event.order_id.into_bytes(),
                value: event.payload,
                headers: event.headers,
                timestamp_ms: 0,
            },
        },
        from_parked: true,
    }
}
