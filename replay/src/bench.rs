//! `orderstore bench rebuild`: how fast every projection rebuilds from N
//! events, against two raw peers measured in the same run on the same data:
//! a raw consumer reading the events topic (no decoding), and raw sled
//! ingest of rows of the same number and size into the same trees, in the
//! same batches and with the same flush policy (no decoding, no logic).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use commands::Topics;
use domain::order::{LineItem, OrderPlaced};
use domain::{
    CommandId, Currency, CustomerId, EventMeta, Money, OrderEvent, OrderId, Recorded, RecordedEvent,
};
use eventlog::embedded::EmbeddedLog;
use eventlog::{EventLog, OutgoingRecord, Record, TopicPartition};
use projections::worker::BATCH;
use projections::ProjectionStore;

use projections::serving::rebuild::{rebuild_into, RebuildError};

/// Rows the projections write per event, on average: history 2 (the event
/// and the order's state), customer 2 (order row and customer row), finance
/// about 1, trace 1.
const ROWS_PER_EVENT: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchReport {
    pub events: u64,
    pub raw_consumer_events_per_second: f64,
    pub raw_sled_events_per_second: f64,
    pub rebuild_events_per_second: f64,
}

impl BenchReport {
    /// Ours against the slower of the two peers.
    pub fn ratio(&self) -> f64 {
        self.rebuild_events_per_second
            / self
                .raw_consumer_events_per_second
                .min(self.raw_sled_events_per_second)
    }
}

fn per_second(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The five events of a delivered order, as the processor would write them.
fn lifecycle(order: u64, base_micros: i64) -> Vec<RecordedEvent> {
    let currency =
        Currency::parse(["USD", "EUR", "JPY"][(order % 3) as usize]).expect("a known currency");
    let order_id = OrderId::parse(format!("bench-{order}")).expect("a valid id");
    let events = [
        OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: CustomerId::parse(format!("customer-{}", order % 5000))
                .expect("a valid id"),
            currency,
            items: vec![LineItem {
                sku: "SKU-1".into(),
                quantity: 2,
                unit_price: 1250,
            }],
            subtotal: 2500,
            tax: 200,
            total: 2700,
        }),
        OrderEvent::InventoryReserved {
            items: vec![LineItem {
                sku: "SKU-1".into(),
                quantity: 2,
                unit_price: 1250,
            }],
        },
        OrderEvent::PaymentConfirmed {
            payment_id: format!("pay-{order}"),
            amount: Money::new(2700, currency),
        },
        OrderEvent::OrderShipped {
            carrier: "DHL".into(),
            tracking_number: format!("TRK{order}"),
        },
        OrderEvent::OrderDelivered,
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let recorded = Recorded {
                order_id: order_id.clone(),
                sequence: i as u64 + 1,
                time: Utc
                    .timestamp_micros(base_micros + i as i64)
                    .single()
                    .unwrap_or_else(Utc::now),
                command_id: CommandId::parse(format!("c-{order}-{i}")).expect("a valid id"),
                event,
            };
            RecordedEvent::new(
                &recorded,
                EventMeta {
                    id: format!("e-{order}-{i}"),
                    correlation_id: "bench".into(),
                    // Real events carry their command's trace context.
                    trace: Some(domain::TraceContext::fresh(
                        u128::from(order) + 1,
                        i as u64 + 1,
                    )),
                },
            )
        })
        .collect()
}

/// Event time of the first generated order (2026-01-01T00:00:00Z).
pub const GENERATED_FROM_MICROS: i64 = 1_767_225_600_000_000;

/// Writes `events` (a multiple of five: whole delivered orders `bench-<n>`)
/// into the events topic of `log`, creating the topics when missing.
pub async fn generate(
    log: &dyn EventLog,
    topics: &Topics,
    events: u64,
) -> Result<(), RebuildError> {
    let partitions = log.partition_count(&topics.events).await.unwrap_or(6);
    for spec in topics.write_side(partitions) {
        log.create_topic(&spec).await?;
    }
    let orders = events / 5;
    let mut batch = Vec::with_capacity(BATCH);
    for order in 0..orders {
        // Orders one millisecond apart keep event time growing in every
        // partition, from 2026-01-01T00:00:00Z: in the past, since Kafka
        // refuses records more than an hour ahead of its clock.
        for event in lifecycle(order, GENERATED_FROM_MICROS + order as i64 * 1000) {
            let (headers, payload) = event.encode();
            batch.push(OutgoingRecord {
                topic: topics.events.clone(),
                partition: None,
                record: Record {
                    key: event.envelope.subject.as_bytes().to_vec(),
                    value: Some(payload),
                    headers,
                    timestamp_ms: event.envelope.time.timestamp_millis(),
                },
            });
        }
        if batch.len() >= BATCH {
            log.append(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        log.append(batch).await?;
    }
    Ok(())
}

/// Reads every record of `topic` without decoding it: how many, how long.
async fn raw_consumer(log: &dyn EventLog, topic: &str) -> Result<(u64, Duration), RebuildError> {
    let started = Instant::now();
    let mut assignment = Vec::new();
    let mut end = 0;
    for partition in 0..log.partition_count(topic).await? {
        let tp = TopicPartition::new(topic, partition);
        end += log.watermarks(&tp).await?.1;
        assignment.push((tp, 0));
    }
    let mut consumer = log.consumer().await?;
    consumer.assign(assignment).await?;
    let mut read = 0;
    while read < end {
        let records = consumer.poll(BATCH, Duration::from_millis(500)).await?;
        if records.is_empty() {
            break;
        }
        read += records.len() as u64;
    }
    Ok((read, started.elapsed()))
}

/// Rows of realistic size into one tree per projection, `ROWS_PER_EVENT` per
/// event, one `apply_batch` per `BATCH` events, no flush per batch.
fn raw_sled(dir: &Path, events: u64) -> Result<Duration, RebuildError> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(128 << 20)
        .open()
        .map_err(projections::store::StoreError::from)?;
    let trees = projections::names()
        .into_iter()
        .map(|name| db.open_tree(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(projections::store::StoreError::from)?;
    let value = vec![7u8; 300];
    let started = Instant::now();
    let mut event = 0;
    while event < events {
        let mut batches: Vec<sled::Batch> = trees.iter().map(|_| sled::Batch::default()).collect();
        for e in event..(event + BATCH as u64).min(events) {
            for row in 0..ROWS_PER_EVENT {
                let key = format!("row-{}-{e:012}-{row}", e % 1000);
                batches[row % trees.len()].insert(key.as_bytes(), value.as_slice());
            }
        }
        for (tree, batch) in trees.iter().zip(batches) {
            tree.apply_batch(batch)
                .map_err(projections::store::StoreError::from)?;
        }
        event += BATCH as u64;
    }
    db.flush().map_err(projections::store::StoreError::from)?;
    Ok(started.elapsed())
}

/// Runs the whole benchmark in `dir` (which it fills) on the embedded log.
pub async fn rebuild_benchmark(dir: &Path, events: u64) -> Result<BenchReport, RebuildError> {
    let log: Arc<dyn EventLog> = Arc::new(EmbeddedLog::open(&dir.join("log"))?);
    rebuild_benchmark_on(log, &Topics::default(), dir, events).await
}

/// Runs the whole benchmark on `log` (fresh topics under `topics`; on
/// Kafka the raw consumer is a plain rdkafka consumer of the same topic),
/// with the read models in `dir`.
pub async fn rebuild_benchmark_on(
    log: Arc<dyn EventLog>,
    topics: &Topics,
    dir: &Path,
    events: u64,
) -> Result<BenchReport, RebuildError> {
    let events = (events / 5).max(1) * 5;
    let topics = topics.clone();
    generate(log.as_ref(), &topics, events).await?;

    let (read, consumer_time) = raw_consumer(log.as_ref(), &topics.events).await?;
    let sled_time = raw_sled(&dir.join("raw-sled"), events)?;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for projection in projections::all() {
        let store = ProjectionStore::open(&dir.join("projections").join(projection.name()))?;
        let (log, topics) = (log.clone(), topics.clone());
        tasks.push(tokio::spawn(async move {
            rebuild_into(
                projection.as_ref(),
                log.as_ref(),
                &topics,
                &store,
                projections::serving::rebuild::Target::LogEnd,
                std::future::pending(),
                |_| {},
            )
            .await
        }));
    }
    for task in tasks {
        task.await
            .map_err(|e| RebuildError::Io(std::io::Error::other(e.to_string())))??;
    }
    let rebuild_time = started.elapsed();
    Ok(BenchReport {
        events,
        raw_consumer_events_per_second: per_second(read, consumer_time),
        raw_sled_events_per_second: per_second(events, sled_time),
        rebuild_events_per_second: per_second(events, rebuild_time),
    })
}

/// What the raw sled peer of `bench commands` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupCommitRun {
    /// "Commands" written: each `records` values, then durable.
    pub commands: u64,
    pub elapsed: Duration,
    /// Median time from a command's first insert to its flush returning.
    pub p50: Duration,
}

impl GroupCommitRun {
    pub fn commands_per_second(&self) -> f64 {
        per_second(self.commands, self.elapsed)
    }
}

/// The embedded write path's raw peer: `concurrency` writers, each
/// inserting `records` values of `value_bytes` (a command's event,
/// snapshot and reply) and then flushing, for `duration`. Concurrent
/// flushes share sled's log flush, so each waits for one fsync that covers
/// every writer's inserts so far (group commit). Writers are threads:
/// sled's flush blocks.
pub async fn raw_sled_group_commit(
    dir: &Path,
    concurrency: usize,
    records: usize,
    value_bytes: usize,
    duration: Duration,
) -> Result<GroupCommitRun, RebuildError> {
    let db = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(projections::store::StoreError::from)?;
    let started = Instant::now();
    let writers: Vec<_> = (0..concurrency)
        .map(|writer| {
            let db = db.clone();
            tokio::task::spawn_blocking(move || {
                let value = vec![b'x'; value_bytes];
                let mut times = Vec::new();
                let mut n: u64 = 0;
                while started.elapsed() < duration {
                    let begun = Instant::now();
                    for r in 0..records {
                        db.insert(format!("{writer}/{n}/{r}").as_bytes(), value.as_slice())?;
                    }
                    db.flush()?;
                    times.push(begun.elapsed());
                    n += 1;
                }
                Ok::<_, sled::Error>(times)
            })
        })
        .collect();
    let mut times = Vec::new();
    for writer in writers {
        let writer = writer
            .await
            .map_err(|e| RebuildError::Io(std::io::Error::other(e)))?;
        times.extend(writer.map_err(projections::store::StoreError::from)?);
    }
    let elapsed = started.elapsed();
    times.sort();
    Ok(GroupCommitRun {
        commands: times.len() as u64,
        elapsed,
        p50: times.get(times.len() / 2).copied().unwrap_or_default(),
    })
}

/// One round of `bench restore`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreRound {
    /// Every commands partition restored at once from the snapshots topic
    /// into a fresh state store, as a node adopting them does.
    pub restore_orders_per_second: f64,
    pub restore_elapsed: Duration,
    /// The raw peer: a consumer reading the same snapshots, nothing decoded.
    pub raw_consumer_orders_per_second: f64,
}

/// What `bench restore` measured: the rounds after the warm-up, and their
/// medians.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    pub orders: u64,
    pub partitions: u32,
    pub rounds: Vec<RestoreRound>,
    pub restore_orders_per_second: f64,
    pub raw_consumer_orders_per_second: f64,
    /// The median of each round's restore / raw.
    pub ratio: f64,
}

/// Writes the latest snapshot of `orders` delivered orders to the
/// snapshots topic (as the processor would), then times a node's adoption
/// of every partition (`restore_partition`, all at once, into a fresh state
/// store each round) against a raw consumer reading the same records,
/// interleaved: a warm-up round, then `rounds` rounds, each the raw read
/// first, so the restore never profits from a warmer cache.
pub async fn restore_benchmark(
    log: Arc<dyn EventLog>,
    topics: &Topics,
    dir: &Path,
    orders: u64,
    rounds: usize,
) -> Result<RestoreReport, RebuildError> {
    let partitions = log.partition_count(&topics.snapshots).await?;
    let mut batch = Vec::new();
    let mut keys = Vec::new();
    for order in 0..orders {
        let events = lifecycle(order, GENERATED_FROM_MICROS + order as i64 * 1000);
        let mut snapshot = commands::Snapshot::empty();
        for (i, event) in events.iter().enumerate() {
            let recorded = event
                .to_recorded()
                .map_err(|e| RebuildError::Io(std::io::Error::other(e.to_string())))?;
            snapshot.state = domain::evolve(snapshot.state, &recorded);
            snapshot.event_offsets.push(order * 5 + i as u64);
        }
        let key = events[0].envelope.subject.clone();
        keys.push(key.clone());
        let value = serde_json::to_vec(&snapshot)
            .map_err(|e| RebuildError::Io(std::io::Error::other(e)))?;
        batch.push(OutgoingRecord {
            topic: topics.snapshots.clone(),
            partition: None,
            record: Record {
                key: key.into_bytes(),
                value: Some(value),
                headers: vec![],
                timestamp_ms: GENERATED_FROM_MICROS / 1000,
            },
        });
        if batch.len() == 1000 {
            log.append(std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        log.append(batch).await?;
    }
    let mut measured = Vec::new();
    for round in 0..=rounds.max(1) {
        // The raw peer.
        let (_, raw) = raw_consumer(log.as_ref(), &topics.snapshots).await?;
        // The adoption.
        let state_dir = dir.join(format!("restore-state-{round}"));
        let store = commands::StateStore::open(&state_dir)
            .map_err(|e| RebuildError::Io(std::io::Error::other(e.to_string())))?;
        let started = Instant::now();
        let restores = (0..partitions)
            .map(|p| commands::processor::restore_partition(log.as_ref(), topics, &store, p));
        for restored in futures_util::future::join_all(restores).await {
            restored.map_err(|e| RebuildError::Io(std::io::Error::other(e.to_string())))?;
        }
        let restore_elapsed = started.elapsed();
        // Every order restored, checked outside the timing.
        let io =
            |e: commands::CommandsError| RebuildError::Io(std::io::Error::other(e.to_string()));
        let mut missing = 0;
        for key in &keys {
            if store.load(key).map_err(io)?.is_none() {
                missing += 1;
            }
        }
        if missing > 0 {
            return Err(RebuildError::Io(std::io::Error::other(format!(
                "the restore of round {round} missed {missing} of {orders} orders"
            ))));
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&state_dir);
        // Round 0 warms the broker's page cache and the code paths up.
        if round > 0 {
            measured.push(RestoreRound {
                restore_orders_per_second: per_second(orders, restore_elapsed),
                restore_elapsed,
                raw_consumer_orders_per_second: per_second(orders, raw),
            });
        }
    }
    let median = |f: &dyn Fn(&RestoreRound) -> f64| {
        let mut values: Vec<f64> = measured.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    Ok(RestoreReport {
        orders,
        partitions,
        restore_orders_per_second: median(&|r| r.restore_orders_per_second),
        raw_consumer_orders_per_second: median(&|r| r.raw_consumer_orders_per_second),
        ratio: median(&|r| {
            r.restore_orders_per_second / r.raw_consumer_orders_per_second.max(1e-9)
        }),
        rounds: measured,
    })
}
