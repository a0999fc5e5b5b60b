//! The topic layout (design.md section 2): names and specs of every topic.

use crate::TopicSpec;

pub const COMMANDS: &str = "orderstore.commands";
pub const EVENTS: &str = "orderstore.events";
pub const SNAPSHOTS: &str = "orderstore.snapshots";
pub const REPLIES: &str = "orderstore.replies";

/// The dead-letter topic of one projection.
pub fn dlq(projection: &str) -> String {
    format!("orderstore.dlq.{projection}")
}

/// The consumer group of the command processor.
pub const PROCESSOR_GROUP: &str = "orderstore.command-processor";

/// Every topic the write side needs, with `partitions` for the keyed ones.
pub fn write_side(partitions: u32) -> Vec<TopicSpec> {
    vec![
        TopicSpec {
            name: COMMANDS.into(),
            partitions,
            compacted: false,
            retention_ms: None,
        },
        TopicSpec {
            name: EVENTS.into(),
            partitions,
            compacted: false,
            retention_ms: None,
        },
        TopicSpec {
            name: SNAPSHOTS.into(),
            partitions,
            compacted: true,
            retention_ms: None,
        },
        TopicSpec {
            name: REPLIES.into(),
            partitions,
            // Replies matter only while a client waits; a week is plenty.
            compacted: false,
            retention_ms: Some(7 * 24 * 3600 * 1000),
        },
    ]
}
