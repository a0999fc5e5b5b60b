//! The read models a serving node holds: each projection's store and
//! progress, and the waits that make read-your-writes work.

use std::sync::Arc;
use std::time::Duration;

use eventlog::processor::messages::parse_consistency_tokens;
use projections::worker::Progress;
use projections::ProjectionStore;

use crate::error::ApiError;

/// One projection as the API sees it.
#[derive(Debug, Clone)]
pub struct ProjectionHandle {
    pub name: &'static str,
    /// The blue/green generation being served.
    pub version: u32,
    pub store: ProjectionStore,
    pub progress: Arc<Progress>,
}

impl ProjectionHandle {
    /// Waits (bounded) until this projection has applied the event named by
    /// a consistency token.
    pub async fn wait_for(&self, token: Option<&str>, timeout: Duration) -> Result<(), ApiError> {
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(());
        };
        let positions = parse_consistency_tokens(token).ok_or_else(|| {
            ApiError::invalid(
                "consistentWith",
                "not a consistency token (expected partition:offset, several joined with commas)",
            )
        })?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut reached = true;
        for (partition, offset) in positions {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            reached &= self.progress.wait_past(partition, offset, left).await;
        }
        if reached {
            Ok(())
        } else {
            Err(ApiError::timeout(format!(
                "the {} projection did not reach {token} within {} ms",
                self.name,
                timeout.as_millis()
            )))
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReadModels {
    pub history: ProjectionHandle,
    pub customer: ProjectionHandle,
    pub finance: ProjectionHandle,
}

impl ReadModels {
    pub fn all(&self) -> [&ProjectionHandle; 3] {
        [&self.history, &self.customer, &self.finance]
    }

    pub fn by_name(&self, name: &str) -> Option<&ProjectionHandle> {
        self.all().into_iter().find(|p| p.name == name)
    }
}
