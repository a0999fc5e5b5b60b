//! The topic layout (design.md section 2): names and specs of every topic
//! and consumer group, under one prefix so that several installations (or
//! test runs) can share a Kafka cluster.

use eventlog::TopicSpec;

/// The names one installation uses. `Topics::default()` is prefix `orderstore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub prefix: String,
    pub commands: String,
    pub events: String,
    pub snapshots: String,
    pub replies: String,
}

impl Default for Topics {
    fn default() -> Self {
        Self::new("orderstore")
    }
}

impl Topics {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            commands: format!("{prefix}.commands"),
            events: format!("{prefix}.events"),
            snapshots: format!("{prefix}.snapshots"),
            replies: format!("{prefix}.replies"),
        }
    }

    /// The dead-letter topic of one projection.
    pub fn dlq(&self, projection: &str) -> String {
        format!("{}.dlq.{projection}", self.prefix)
    }

    /// The consumer group of the command processor.
    pub fn processor_group(&self) -> String {
        format!("{}.command-processor", self.prefix)
    }

    /// The consumer group of a projection (for lag tooling only).
    pub fn projection_group(&self, projection: &str) -> String {
        format!("{}.projection.{projection}", self.prefix)
    }

    /// The consumer group a sink's checkpoints are committed to (for lag tooling only).
    pub fn sink_group(&self, sink: &str) -> String {
        format!("{}.sink.{sink}", self.prefix)
    }

    /// Every topic the write side needs, with `partitions` for each.
    pub fn write_side(&self, partitions: u32) -> Vec<TopicSpec> {
        let spec = |name: &String, compacted, retention_ms| TopicSpec {
            name: name.clone(),
            partitions,
            compacted,
            retention_ms,
        };
        vec![
            spec(&self.commands, false, None),
            spec(&self.events, false, None),
            spec(&self.snapshots, true, None),
            // Replies matter only while a client waits; a week is plenty.
            spec(&self.replies, false, Some(7 * 24 * 3600 * 1000)),
        ]
    }
}
