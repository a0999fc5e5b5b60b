//! The nodes a scenario runs: an `orderstore serve` child (for kill -9),
//! or a node in this process (for scenarios that write to its log).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use eventlog::EventLog;

use super::workload::Client;

/// Which log the scenario's nodes run on.
#[derive(Debug, Clone)]
pub enum Backend {
    Embedded,
    Kafka { bootstrap: String, prefix: String },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Embedded => "embedded",
            Self::Kafka { .. } => "kafka",
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Self::Embedded => Vec::new(),
            Self::Kafka { bootstrap, prefix } => vec![
                "--kafka".into(),
                bootstrap.clone(),
                "--topic-prefix".into(),
                prefix.clone(),
            ],
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `orderstore serve` as a child process on a fixed port.
#[derive(Debug)]
pub struct ChildNode {
    child: Option<Child>,
    /// Where its stderr goes (beside the data directory's file system).
    pub log: PathBuf,
    args: Vec<String>,
    /// Extra environment of the next start (a failpoint, say).
    pub env: Vec<(String, String)>,
    pub client: Client,
}

impl ChildNode {
    pub async fn start(
        dir: &Path,
        log: &Path,
        backend: &Backend,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let mut args = vec![
            "serve".to_owned(),
            "--data-dir".into(),
            dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--partitions".into(),
            "3".into(),
        ];
        args.extend(backend.args());
        args.extend_from_slice(extra);
        let mut node = Self {
            child: None,
            log: log.to_path_buf(),
            env: Vec::new(),
            args,
            client: Client::new(&format!("http://127.0.0.1:{port}"), None),
        };
        node.spawn()?;
        Ok(node)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(std::env::current_exe()?);
        // The node is what its flags say, and nothing of this shell's
        // ORDERSTORE_* settings: `serve` reads ORDERSTORE_KAFKA, so an
        // "embedded" node started from a shell (or CI) that exports it
        // would run on that cluster, under the shared default prefix.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ORDERSTORE_") {
                command.env_remove(&name);
            }
        }
        let child = command
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `/ready`; answers how long it took.
    pub async fn ready(&self) -> anyhow::Result<Duration> {
        match self.client.ready(Duration::from_secs(120)).await {
            Some(took) => Ok(took),
            None => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                // Kept for a look: the scenario's directory goes with it.
                let kept = std::env::temp_dir()
                    .join(format!("chaos-not-ready-{}.log", std::process::id()));
                let _ = std::fs::write(&kept, &log);
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                // What it answers now, and whether it still runs.
                let answer = match self
                    .client
                    .http
                    .get(format!("{}/ready", self.client.base))
                    .send()
                    .await
                {
                    Ok(response) => format!(
                        "{} {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    ),
                    Err(error) => format!("no answer ({error})"),
                };
                anyhow::bail!("the node at {} was not ready within 120 s; /ready answers: {answer}; its log is kept in {}; it ends: {tail:#?}", self.client.base, kept.display())
            }
        }
    }

    /// Whether the process has exited on its own (a failpoint fired).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().ok().flatten().is_some())
    }

    /// SIGKILL: no graceful shutdown.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.spawn()
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        let _ = self.kill9();
    }
}

/// A node in this process, with its log at hand.
pub struct InProcessNode {
    pub server: Option<api::serve::Server>,
    log: Option<Arc<dyn EventLog>>,
    pub topics: commands::Topics,
    pub client: Client,
}

impl std::fmt::Debug for InProcessNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessNode").finish_non_exhaustive()
    }
}

impl InProcessNode {
    pub async fn start(
        dir: &Path,
        backend: &Backend,
        configure: impl FnOnce(&mut api::serve::ServeConfig),
    ) -> anyhow::Result<Self> {
        let mut config = api::serve::ServeConfig::new(dir.to_path_buf(), "127.0.0.1:0".parse()?);
        config.partitions = Some(3);
        if let Backend::Kafka { bootstrap, prefix } = backend {
            config.backend = api::serve::Backend::Kafka(api::serve::KafkaSettings {
                bootstrap_servers: bootstrap.clone(),
                replication_factor: 1,
                transactional_id: None,
                session_timeout: None,
            });
            config.topic_prefix = prefix.clone();
        }
        configure(&mut config);
        let token = config.auth_token.clone();
        let topics = commands::Topics::new(&config.topic_prefix);
        let server = api::serve::start(config).await?;
        let client = Client::new(&format!("http://{}", server.addr), token);
        Ok(Self {
            log: Some(server.log.clone()),
            server: Some(server),
            topics,
            client,
        })
    }

    /// The node's log (until it stops).
    pub fn log(&self) -> anyhow::Result<&dyn EventLog> {
        self.log
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("the node has stopped"))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        // The node releases its log's files once the last handle goes.
        self.log = None;
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        Ok(())
    }
}
