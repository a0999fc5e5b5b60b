//! The reproduction of docs/adr/0006: back-to-back Kafka transactions
//! through rust-rdkafka, each with a few records over three partitions,
//! committed right after the sends (`plain`) and after the producer's
//! polling thread has served every delivery report (`served`, what
//! `eventlog` does). Interleaved rounds; prints the median and p90 of each.
//!
//!   cargo run --release -p eventlog --example txn_probe [-- ROUNDS [key=value ...]]
//!
//! `key=value` arguments go to the producer's configuration (for example
//! `debug=eos,protocol` together with RUST_LOG-free stderr logging below).
//! The broker is ORDERSTORE_KAFKA (default 127.0.0.1:9092).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a probe: a panic is its error report

mod support;

use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

/// Prints librdkafka's log lines with the time since start, when `debug` is set.
struct Timestamped(Instant);

impl ClientContext for Timestamped {
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, message: &str) {
        let ms = self.0.elapsed().as_secs_f64() * 1000.0;
        eprintln!("{ms:>10.3} ms {facility} {message}");
    }
}

impl ProducerContext for Timestamped {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// One transaction of three records; answers how long it took.
fn transaction(producer: &ThreadedProducer<Timestamped>, topic: &str, served: bool) -> Duration {
    let started = Instant::now();
    producer.begin_transaction().unwrap();
    for partition in 0..3 {
        let record = BaseRecord::<str, str>::to(topic)
            .key("order")
            .payload("event")
            .partition(partition);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    if served {
        while producer.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    producer
        .commit_transaction(Duration::from_secs(10))
        .unwrap();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let bootstrap = support::bootstrap();
    let mut args = std::env::args().skip(1).peekable();
    let rounds: usize = match args.peek().and_then(|a| a.parse().ok()) {
        Some(rounds) => {
            args.next();
            rounds
        }
        None => 5,
    };
    let scratch =
        support::ScratchTopic::create(&bootstrap, format!("txn-probe-{}", std::process::id()), 3)
            .await;
    let topic = scratch.name.clone();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("transactional.id", &topic)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0");
    for arg in args {
        let (key, value) = arg.split_once('=').expect("arguments are key=value");
        config.set(key, value);
    }
    config.set_log_level(RDKafkaLogLevel::Debug);
    let producer: ThreadedProducer<Timestamped> = config
        .create_with_context(Timestamped(Instant::now()))
        .unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    transaction(&producer, &topic, true); // warm-up: coordinator and partitions known
    let (mut plain, mut served) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..10 {
            plain.push(transaction(&producer, &topic, false));
        }
        for _ in 0..10 {
            served.push(transaction(&producer, &topic, true));
        }
    }
    let (plain, served) = (support::median_p90(plain), support::median_p90(served));
    println!(
        "one transaction, 3 records: plain median {:?} p90 {:?}; served median {:?} p90 {:?}",
        plain.0, plain.1, served.0, served.1
    );
    scratch.delete().await;
}
