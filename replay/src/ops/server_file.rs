//! How a tool finds the server that owns a data directory: a serving node
//! writes `<data dir>/server.json` with its URL and pid once it listens,
//! and removes it when it stops. A file whose process is gone is ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file a serving node leaves in its data directory.
pub const SERVER_FILE: &str = "server.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Recorded {
    url: String,
    pid: Option<u32>,
}

/// Where a server's URL is recorded for a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(SERVER_FILE)
}

/// Records the URL of the node serving `data_dir` (replaced atomically).
pub fn write(data_dir: &Path, url: &str) -> std::io::Result<()> {
    let temporary = data_dir.join("server.json.next");
    let recorded = Recorded {
        url: url.to_owned(),
        pid: Some(std::process::id()),
    };
    std::fs::write(&temporary, serde_json::to_vec(&recorded)?)?;
    std::fs::rename(&temporary, path(data_dir))
}

pub fn remove(data_dir: &Path) {
    let _ = std::fs::remove_file(path(data_dir));
}

/// The URL recorded for `data_dir`, unless the process that wrote it is
/// gone (where /proc tells). Whether it answers is the caller's to check.
pub fn recorded_url(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path(data_dir)).ok()?;
    let recorded: Recorded = serde_json::from_str(&text).ok()?;
    if let Some(pid) = recorded.pid {
        let proc = Path::new("/proc");
        if proc.join("self").exists() && !proc.join(pid.to_string()).exists() {
            return None;
        }
    }
    Some(recorded.url)
}
