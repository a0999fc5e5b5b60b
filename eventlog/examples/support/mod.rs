//! What the Kafka probes share: the broker, a scratch topic, and how their
//! timings are summarised.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The broker: ORDERSTORE_KAFKA, default 127.0.0.1:9092.
pub fn bootstrap() -> String {
    std::env::var("ORDERSTORE_KAFKA").unwrap_or("127.0.0.1:9092".into())
}

/// A topic of `partitions` that lives as long as the probe.
pub struct ScratchTopic {
    pub name: String,
    admin: AdminClient<DefaultClientContext>,
}

impl ScratchTopic {
    pub async fn create(bootstrap: &str, name: String, partitions: i32) -> Self {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        let created = admin
            .create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        Self { name, admin }
    }

    pub async fn delete(self) {
        self.admin
            .delete_topics(&[&self.name], &AdminOptions::new())
            .await
            .unwrap();
    }
}

/// The median and the 90th percentile.
pub fn median_p90(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 9 / 10])
}
