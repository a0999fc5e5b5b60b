//! `GET /export`: the events as CloudEvents JSON lines, streamed, for
//! `orderstore export` on a data directory this server owns (its files
//! are locked while it runs). Query parameters: `since`, `until` (RFC
//! 3339), `type` (comma-separated), `order`, `follow` (true: keep
//! streaming new events until the client goes). Admin access, like the
//! operator operations. `x-orderstore-export-records` tells how many records
//! lie between the start and the end (an upper bound of the lines).

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use replay::export::{ExportFilter, ExportPlan};
use serde::Deserialize;

use crate::state::AdminAccess;

#[derive(Debug, Deserialize)]
pub struct ExportParams {
    pub since: Option<String>,
    pub until: Option<String>,
    #[serde(rename = "type")]
    pub types: Option<String>,
    pub order: Option<String>,
    #[serde(default)]
    pub follow: bool,
}

fn time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| format!("{name}: {v:?} is not an RFC 3339 time ({e})"))
        })
        .transpose()
}

/// Checks the parameters into a filter (shared with the CLI's own checks).
pub fn filter(params: &ExportParams) -> Result<ExportFilter, String> {
    let filter = ExportFilter {
        since: time("since", params.since.as_deref())?,
        until: time("until", params.until.as_deref())?,
        types: params
            .types
            .as_deref()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        order_id: params.order.clone(),
    };
    replay::export::check(filter)
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "errors": [{ "message": message }] })),
    )
        .into_response()
}

/// The export's stream ended because the client went away.
#[derive(Debug)]
enum Ended {
    ClientGone,
    Log(eventlog::LogError),
}

impl From<eventlog::LogError> for Ended {
    fn from(error: eventlog::LogError) -> Self {
        Self::Log(error)
    }
}

pub(crate) async fn export(
    State(http): State<crate::http::Http>,
    Extension(AdminAccess(admin)): Extension<AdminAccess>,
    Query(params): Query<ExportParams>,
) -> Response {
    if !admin {
        return refuse(
            StatusCode::FORBIDDEN,
            "export needs the server's bearer token (or, on a server without one, a client on this machine)".into(),
        );
    }
    let state = http.state.clone();
    let filter = match filter(&params) {
        Ok(filter) => filter,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let plan = match ExportPlan::new(state.log.as_ref(), &state.topics, filter).await {
        Ok(plan) => plan,
        Err(error) => {
            tracing::error!(%error, "export: cannot read the log");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the log: {error}"),
            );
        }
    };
    let records = plan.records();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let follow = params.follow;
    tokio::spawn(async move {
        let gone = tx.clone();
        let ended = plan
            .run(
                state.log.as_ref(),
                follow,
                async move { gone.closed().await },
                |line| {
                    let tx = tx.clone();
                    async move {
                        tx.send(Ok(Bytes::from(line)))
                            .await
                            .map_err(|_| Ended::ClientGone)
                    }
                },
                |_| {},
            )
            .await;
        if let Err(Ended::Log(error)) = ended {
            tracing::warn!(%error, "export stopped");
            // The client sees the stream break, not a clean end.
            let _ = tx.send(Err(std::io::Error::other(error.to_string()))).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (
                header::HeaderName::from_static("x-orderstore-export-records"),
                records.to_string(),
            ),
        ],
        body,
    )
        .into_response()
}
