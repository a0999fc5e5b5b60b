//! The client side of admin operations: how a command-line tool finds the
//! server that owns a data directory and asks it to do the work (rebuilds,
//! verification, dead letters) instead of opening the files itself.
//!
//! A serving node writes `<data dir>/server.json` with its URL once it
//! listens, and removes it when it stops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

/// The file a serving node leaves in its data directory.
pub const SERVER_FILE: &str = "server.json";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("request to {url} failed: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("the server answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{code}: {message}")]
    Refused { code: String, message: String },
}

/// Where a server's URL is recorded for a data directory.
pub fn server_file(data_dir: &Path) -> PathBuf {
    data_dir.join(SERVER_FILE)
}

/// Records the URL of the node serving `data_dir`.
pub fn write_server_file(data_dir: &Path, url: &str) -> std::io::Result<()> {
    let temporary = data_dir.join("server.json.next");
    let body = json!({ "url": url, "pid": std::process::id() });
    std::fs::write(&temporary, body.to_string())?;
    std::fs::rename(&temporary, server_file(data_dir))
}

pub fn remove_server_file(data_dir: &Path) {
    let _ = std::fs::remove_file(server_file(data_dir));
}

/// The URL of the live server owning `data_dir`, if one answers.
pub async fn running_server(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(server_file(data_dir)).ok()?;
    let recorded = serde_json::from_str::<Value>(&text).ok()?;
    let url = recorded["url"].as_str()?.to_owned();
    // A file left by a killed server: its process is gone (where we can tell).
    if let Some(pid) = recorded["pid"].as_u64() {
        let proc = Path::new("/proc");
        if proc.join("self").exists() && !proc.join(pid.to_string()).exists() {
            return None;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let health = http.get(format!("{url}/health")).send().await.ok()?;
    health.status().is_success().then_some(url)
}

/// GraphQL over HTTP to one server, with its bearer token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    url: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// `url` is the server's base URL (`http://127.0.0.1:8080`).
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one operation; answers its `data`, or the first error.
    pub async fn gql(&self, query: &str, variables: Value) -> Result<Value, AdminError> {
        let url = format!("{}/graphql", self.url);
        let mut request = self
            .http
            .post(&url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|source| AdminError::Http {
            url: url.clone(),
            source,
        })?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|source| AdminError::Http {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            let message = body["errors"][0]["message"]
                .as_str()
                .map_or_else(|| body.to_string(), str::to_owned);
            return Err(AdminError::Status {
                status: status.as_u16(),
                body: message,
            });
        }
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            return Err(AdminError::Refused {
                code: error["extensions"]["code"]
                    .as_str()
                    .unwrap_or("ERROR")
                    .to_owned(),
                message: error["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(body["data"].clone())
    }
}
