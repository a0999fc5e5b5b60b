//! What operator operations answer: typed values that both the local
//! implementation and the remote one (over the server's GraphQL) produce,
//! and that the CLI presents. Serde names follow the GraphQL fields, so a
//! remote answer deserializes straight into them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `inspect order` / `inspect diff`: the table people read and the JSON
/// scripts read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inspection {
    pub text: String,
    pub json: serde_json::Value,
}

/// One projection's served generation compared with a scratch rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionVerification {
    pub name: String,
    pub version: u32,
    #[serde(with = "as_string")]
    pub events: u64,
    #[serde(with = "as_string")]
    pub entries: u64,
    #[serde(with = "as_string")]
    pub different: u64,
    /// The first differences (all are counted in `different`).
    pub differences: Vec<EntryDifference>,
}

impl ProjectionVerification {
    pub fn is_clean(&self) -> bool {
        self.different == 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryDifference {
    pub entry: String,
    /// None: missing from the served generation.
    pub served: Option<String>,
    /// None: missing from the rebuild.
    pub rebuilt: Option<String>,
}

/// The compacted snapshots topic against a fold of the events topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotVerification {
    pub orders: usize,
    pub snapshots: usize,
    /// Records of the events topic that are not readable events.
    #[serde(with = "as_string")]
    pub undecodable: u64,
    /// One line per order whose snapshot and fold differ.
    pub differences: Vec<String>,
}

impl SnapshotVerification {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A dead letter as tools show it (the payload as its size and first bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    pub projection: String,
    pub partition: u32,
    #[serde(with = "as_string")]
    pub offset: u64,
    pub order_id: Option<String>,
    pub event_type: Option<String>,
    pub received_at: DateTime<Utc>,
    pub error: String,
    pub headers: Vec<HeaderView>,
    pub payload_bytes: Option<usize>,
    /// The first 256 bytes of the payload, in hex.
    pub payload_hex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderView {
    pub key: String,
    /// The value as UTF-8 (lossy).
    pub value: String,
}

impl DeadLetterView {
    pub fn new(projection: &str, letter: &projections::DeadLetter) -> Self {
        Self {
            projection: projection.to_owned(),
            partition: letter.partition,
            offset: letter.offset,
            order_id: letter.order_id.clone(),
            event_type: letter.event_type.clone(),
            received_at: letter.received_at,
            error: letter.error.clone(),
            headers: letter
                .headers
                .iter()
                .map(|h| HeaderView {
                    key: h.key.clone(),
                    value: String::from_utf8_lossy(&h.value).into_owned(),
                })
                .collect(),
            payload_bytes: letter.payload.as_ref().map(Vec::len),
            payload_hex: letter
                .payload
                .as_deref()
                .map(projections::store::hex_prefix),
        }
    }

    /// "partition:offset", how tools name it.
    pub fn position(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }
}

/// What to do to the served generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebuildKind {
    /// Build the next generation from the log, then serve it (or, `until` a
    /// time, build a frozen one beside the served one).
    Rebuild {
        until: Option<DateTime<Utc>>,
        keep_previous: bool,
    },
    /// Serve an existing generation (a rollback to a kept or frozen one).
    SwitchTo(u32),
}

/// How far one rebuild has come.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildProgress {
    pub applied: u64,
    pub total: u64,
    pub events_per_second: f64,
    /// "building", then "catching up".
    pub phase: String,
}

/// How one rebuild or switch ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub name: String,
    pub target_version: u32,
    /// Events read from the log while building.
    pub events: u64,
    pub seconds: f64,
    /// Served after it.
    pub served_version: u32,
    /// Why it failed (the served generation did not change).
    pub error: Option<String>,
    /// A frozen build: the served generation is unchanged.
    pub frozen_at: Option<DateTime<Utc>>,
    /// Offline: where the frozen generation or the kept previous one is.
    pub left_in: Option<std::path::PathBuf>,
    /// Offline switch: takes effect when `serve` next starts.
    pub at_next_start: bool,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Where a rebuild's progress goes (the CLI draws bars from it).
pub trait RebuildWatch: Send + Sync {
    fn started(&self, name: &str, target_version: u32);
    fn progress(&self, name: &str, progress: &RebuildProgress);
    fn finished(&self, report: &RebuildReport);
}

/// Numbers past 2^53 travel as strings in GraphQL (its Int is 32-bit).
mod as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
