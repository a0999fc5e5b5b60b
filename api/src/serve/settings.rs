//! Settings fixed when a data directory is created: which log it follows
//! (its local state only makes sense for that log), the topic prefix and the
//! partition count. A later start that contradicts them is refused.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{ServeConfig, ServeError};

pub const DEFAULT_PARTITIONS: u32 = 6;

/// Where the log lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The embedded log in `<data-dir>/log`.
    Embedded,
    Kafka(KafkaSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    pub bootstrap_servers: String,
    pub replication_factor: i32,
    /// The prefix of the processor lanes' transactional ids (partition N's
    /// lane is `<id>.pN`); defaults to `<prefix>.command-processor`.
    pub transactional_id: Option<String>,
    /// The processor group's session timeout (default 10 s): how long a
    /// dead node keeps its commands partitions before another takes them.
    pub session_timeout: Option<std::time::Duration>,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Kafka(kafka) => write!(f, "kafka://{}", kafka.bootstrap_servers),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Settings {
    pub(super) partitions: u32,
    #[serde(default = "embedded")]
    backend: String,
    #[serde(default = "default_prefix")]
    topic_prefix: String,
}

fn embedded() -> String {
    "embedded".into()
}

fn default_prefix() -> String {
    "orderstore".into()
}

/// Reads the stored settings (or stores them on first start) and checks the
/// configuration against them.
pub(super) fn fixed(
    dir: &Path,
    config: &ServeConfig,
    partitions: Option<u32>,
) -> Result<Settings, ServeError> {
    let path = dir.join("orderstore.json");
    let requested = Settings {
        partitions: partitions.unwrap_or(DEFAULT_PARTITIONS).clamp(1, 1024),
        backend: config.backend.to_string(),
        topic_prefix: config.topic_prefix.clone(),
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        let text = serde_json::to_string_pretty(&requested).map_err(|e| ServeError::Task {
            task: "settings",
            message: e.to_string(),
        })?;
        std::fs::write(&path, text)?;
        return Ok(requested);
    };
    let stored: Settings = serde_json::from_str(&text).map_err(|e| ServeError::Open {
        what: "settings",
        dir: dir.into(),
        source: Box::new(e),
    })?;
    let identity = |s: &Settings| format!("{} (topic prefix {})", s.backend, s.topic_prefix);
    if stored.backend != requested.backend || stored.topic_prefix != requested.topic_prefix {
        return Err(ServeError::Backend {
            dir: dir.into(),
            stored: identity(&stored),
            requested: identity(&requested),
        });
    }
    if let Some(requested) = partitions.filter(|r| *r != stored.partitions) {
        return Err(ServeError::Partitions {
            dir: dir.into(),
            stored: stored.partitions,
            requested,
        });
    }
    Ok(stored)
}
