//! How long after a write a waiting `read_committed` consumer sees it, on
//! the harness broker: a transactional record (seen once the commit
//! markers land) and a plain idempotent `acks=all` record, for each
//! `fetch.wait.max.ms` given. Interleaved; prints the median and p90.
//!
//!   cargo run --release -p eventlog --example visibility_probe [-- ROUNDS [WAIT_MS ...]]
//!
//! The broker is ORDERSTORE_KAFKA (default 127.0.0.1:9092).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a probe: a panic is its error report

mod support;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

fn producer(
    bootstrap: &str,
    transactional_id: Option<&str>,
) -> ThreadedProducer<DefaultProducerContext> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0");
    if let Some(id) = transactional_id {
        config.set("transactional.id", id);
    }
    config.create().unwrap()
}

fn consumer(bootstrap: &str, topic: &str, wait_ms: u32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "visibility-probe")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", wait_ms.to_string())
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::End).unwrap();
    consumer.assign(&list).unwrap();
    // Settle at the end.
    let _ = consumer.poll(Duration::from_millis(500));
    consumer
}

/// Writes one record and answers how long until the consumer has it,
/// counted from when the write returned.
fn once(
    producer: &ThreadedProducer<DefaultProducerContext>,
    consumer: &BaseConsumer,
    topic: &str,
    transactional: bool,
) -> Duration {
    if transactional {
        producer.begin_transaction().unwrap();
    }
    producer
        .send(
            BaseRecord::<str, str>::to(topic)
                .key("k")
                .payload("v")
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    if transactional {
        while producer.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
        producer
            .commit_transaction(Duration::from_secs(10))
            .unwrap();
    } else {
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let written = Instant::now();
    loop {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(_)) => return written.elapsed(),
            Some(Err(_)) => continue,
            None => panic!("the record never became visible"),
        }
    }
}

#[tokio::main]
async fn main() {
    let bootstrap = support::bootstrap();
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut waits: Vec<u32> = args.filter_map(|a| a.parse().ok()).collect();
    if waits.is_empty() {
        waits = vec![50, 500];
    }
    let scratch = support::ScratchTopic::create(
        &bootstrap,
        format!("visibility-probe-{}", std::process::id()),
        1,
    )
    .await;
    let topic = scratch.name.clone();
    let txn = producer(&bootstrap, Some(&topic));
    txn.init_transactions(Duration::from_secs(10)).unwrap();
    let plain = producer(&bootstrap, None);
    let consumers: Vec<_> = waits
        .iter()
        .map(|w| consumer(&bootstrap, &topic, *w))
        .collect();
    let mut times = vec![(Vec::new(), Vec::new()); waits.len()];
    for _ in 0..rounds {
        for (i, consumer) in consumers.iter().enumerate() {
            for _ in 0..10 {
                times[i].0.push(once(&txn, consumer, &topic, true));
                times[i].1.push(once(&plain, consumer, &topic, false));
            }
        }
    }
    for (wait, (txn, plain)) in waits.iter().zip(times) {
        let (txn, plain) = (support::median_p90(txn), support::median_p90(plain));
        println!(
            "fetch.wait.max.ms={wait}: transactional median {:?} p90 {:?}; plain median {:?} p90 {:?}",
            txn.0, txn.1, plain.0, plain.1
        );
    }
    scratch.delete().await;
}
