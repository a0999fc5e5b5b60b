//! Operator operations done here, over the log and the files of a data
//! directory that no server owns.
//!
//! A tool opens the log read-mostly: it never creates an embedded log
//! where there is none and never claims the processor's transactional
//! identity (what `serve` does when it opens one).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use commands::Topics;
use domain::OrderId;
use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::{KafkaConfig, KafkaLog};
use eventlog::{EventLog, Shutdown};
use projections::dlq::RetryReport;
use projections::serving::generation;
use projections::serving::rebuild::rebuild_offline;
use tokio::sync::OnceCell;

use super::{
    DeadLetterView, Inspection, Operations, OpsError, ProjectionVerification, RebuildKind,
    RebuildProgress, RebuildReport, RebuildWatch, SnapshotVerification,
};

/// Which log a tool reads: the embedded one in the data directory, or a
/// Kafka cluster.
#[derive(Debug, Clone)]
pub struct LogLocation {
    pub data_dir: PathBuf,
    pub kafka: Option<String>,
    pub topic_prefix: String,
}

impl LogLocation {
    pub fn topics(&self) -> Topics {
        Topics::new(&self.topic_prefix)
    }

    /// Opens the log (an embedded one must exist already).
    pub async fn open(&self) -> Result<Arc<dyn EventLog>, OpsError> {
        match &self.kafka {
            Some(servers) => Ok(Arc::new(
                KafkaLog::connect(KafkaConfig::new(servers)).await?,
            )),
            None => {
                let dir = self.data_dir.join("log");
                if !dir.exists() {
                    return Err(OpsError::NotFound(format!(
                        "no embedded log in {} (pass --data-dir, or --kafka)",
                        self.data_dir.display()
                    )));
                }
                let log = EmbeddedLog::open(&dir).map_err(|e| {
                    OpsError::Invalid(format!(
                        "cannot open {}: is `orderstore serve` running on it? Stop it first ({e})",
                        dir.display()
                    ))
                })?;
                Ok(Arc::new(log))
            }
        }
    }
}

/// The operations over a data directory's files and its log, opened on
/// first need (the dead-letter operations need no log).
#[derive(Debug)]
pub struct LocalOperations {
    location: LogLocation,
    log: OnceCell<Arc<dyn EventLog>>,
}

impl LocalOperations {
    pub fn new(location: LogLocation) -> Self {
        Self {
            location,
            log: OnceCell::new(),
        }
    }

    async fn log(&self) -> Result<&Arc<dyn EventLog>, OpsError> {
        self.log.get_or_try_init(|| self.location.open()).await
    }

    fn served(&self, name: &str) -> Result<(u32, projections::ProjectionStore), OpsError> {
        super::projection_names(name, false)?;
        Ok(generation::open_served(&self.location.data_dir, name)?)
    }

    async fn rebuild_one(
        &self,
        name: &'static str,
        kind: RebuildKind,
        watch: &dyn RebuildWatch,
        shutdown: Shutdown,
    ) -> Result<RebuildReport, OpsError> {
        let data_dir = &self.location.data_dir;
        let (until, keep_previous) = match kind {
            RebuildKind::SwitchTo(target) => {
                let served_before = generation::switch_to_existing(data_dir, name, target)?;
                let report = RebuildReport {
                    name: name.to_owned(),
                    target_version: target,
                    events: 0,
                    seconds: 0.0,
                    served_version: target,
                    error: None,
                    frozen_at: None,
                    left_in: Some(generation::generation_dir(data_dir, name, served_before)),
                    at_next_start: true,
                };
                watch.finished(&report);
                return Ok(report);
            }
            RebuildKind::Rebuild {
                until,
                keep_previous,
            } => (until, keep_previous),
        };
        let projection = super::projection(name)?;
        let log = self.log().await?;
        watch.started(name, generation::next_generation(data_dir, name));
        let built = rebuild_offline(
            projection.as_ref(),
            log.as_ref(),
            &self.location.topics(),
            data_dir,
            until,
            keep_previous,
            shutdown,
            |p| {
                watch.progress(
                    name,
                    &RebuildProgress {
                        applied: p.applied,
                        total: p.total,
                        events_per_second: p.events_per_second,
                        phase: "building".into(),
                    },
                )
            },
        )
        .await?;
        let report = RebuildReport {
            name: name.to_owned(),
            target_version: built.version,
            events: built.rebuilt.events,
            seconds: built.rebuilt.elapsed.as_secs_f64(),
            served_version: if until.is_some() {
                built.served_before
            } else {
                built.version
            },
            error: None,
            frozen_at: until,
            left_in: built.frozen_in.or(built.kept),
            at_next_start: false,
        };
        watch.finished(&report);
        Ok(report)
    }
}

#[async_trait]
impl Operations for LocalOperations {
    fn server(&self) -> Option<&str> {
        None
    }

    async fn inspect_order(
        &self,
        order_id: &OrderId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError> {
        let log = self.log().await?;
        super::inspect_order(log.as_ref(), &self.location.topics(), order_id, at).await
    }

    async fn inspect_diff(
        &self,
        order_id: &OrderId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Inspection, OpsError> {
        let log = self.log().await?;
        super::inspect_diff(log.as_ref(), &self.location.topics(), order_id, from, to).await
    }

    async fn inspect_trace(
        &self,
        correlation_id: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Inspection, OpsError> {
        let (_, store) = self.served(projections::trace::NAME)?;
        super::inspect_trace(&store, correlation_id, at)
    }

    async fn verify_snapshots(&self) -> Result<SnapshotVerification, OpsError> {
        let log = self.log().await?;
        super::verify_snapshots(log.as_ref(), &self.location.topics()).await
    }

    async fn verify_projection(&self, name: &str) -> Result<ProjectionVerification, OpsError> {
        let projection = super::projection(name)?;
        let (version, store) = self.served(name)?;
        let log = self.log().await?;
        super::verify_projection(
            projection.as_ref(),
            log.as_ref(),
            &self.location.topics(),
            (version, &store),
            &self.location.data_dir,
            eventlog::shared_shutdown(std::future::pending()),
        )
        .await
    }

    async fn dead_letters(
        &self,
        projection: Option<&str>,
    ) -> Result<Vec<DeadLetterView>, OpsError> {
        let names = match projection {
            Some(name) => super::projection_names(name, false)?,
            None => projections::names(),
        };
        let mut letters = Vec::new();
        for name in names {
            let (_, store) = self.served(name)?;
            letters.extend(super::dead_letters(name, &store)?);
        }
        Ok(letters)
    }

    async fn retry_dead_letters(
        &self,
        projection: &str,
        order_id: Option<&str>,
    ) -> Result<RetryReport, OpsError> {
        let code = super::projection(projection)?;
        let (_, store) = self.served(projection)?;
        super::retry_dead_letters(code.as_ref(), &store, order_id).await
    }

    async fn discard_dead_letter(
        &self,
        projection: &str,
        partition: u32,
        offset: u64,
    ) -> Result<DeadLetterView, OpsError> {
        let (_, store) = self.served(projection)?;
        super::discard_dead_letter(projection, &store, partition, offset).await
    }

    async fn rebuild(
        &self,
        names: &[&'static str],
        kind: RebuildKind,
        watch: &dyn RebuildWatch,
        shutdown: Shutdown,
    ) -> Result<Vec<RebuildReport>, OpsError> {
        let mut reports = Vec::with_capacity(names.len());
        for name in names {
            reports.push(
                self.rebuild_one(name, kind, watch, shutdown.clone())
                    .await?,
            );
        }
        Ok(reports)
    }
}
