//! The HTTP surface: GraphiQL on `GET /`, GraphQL on `/graphql` (POST;
//! GET for queries only), subscriptions on `/graphql/ws`, `/health`,
//! `/ready`, `/metrics`. Bodies are bounded (413), batches are bounded,
//! malformed JSON is a 400, and with a token every route but the health
//! checks needs `Authorization: Bearer <token>`.

use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, Request};
use async_graphql_axum::GraphQLSubscription;
use axum::body::Bytes;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};

use crate::graphql_http;
use crate::schema::Schemas;
use crate::state::{AdminAccess, AppState, CommandHeaders};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most operations in one batch request.
pub const MAX_BATCH: usize = 16;

/// What every route's handler reads. One `Arc`: axum clones a handler's
/// state for every request, and cloning and dropping the eight `Arc`s
/// inside (three schemas, counters, the document cache, the app state, the
/// token) was 3% of a point read's CPU in `perf`, their counters' cache
/// lines moving between the cores.
#[derive(Clone)]
pub(crate) struct Http(Arc<HttpShared>);

pub(crate) struct HttpShared {
    schemas: Schemas,
    pub(crate) state: Arc<AppState>,
    auth_token: Option<Arc<str>>,
}

impl std::ops::Deref for Http {
    type Target = HttpShared;

    fn deref(&self) -> &HttpShared {
        &self.0
    }
}

pub fn router(schemas: Schemas, state: Arc<AppState>, auth_token: Option<String>) -> Router {
    let schema = schemas.main.clone();
    let http = Http(Arc::new(HttpShared {
        schemas,
        state,
        auth_token: auth_token.map(Arc::from),
    }));
    let protected = Router::new()
        .route("/", get(graphiql))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route_service("/graphql/ws", GraphQLSubscription::new(schema))
        .route("/metrics", get(metrics))
        .route("/export", get(crate::export::export))
        .layer(middleware::from_fn_with_state(http.clone(), authorize));
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .merge(protected)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::map_response(close_after_unread_body))
        .with_state(http)
}

/// A 413 leaves the rest of the body unread, so the connection cannot carry
/// another request: say so (`Connection: close`), or a client that reuses it
/// sees its next request fail with a broken pipe (found by `orderstore
/// chaos --scenario fuzz`).
async fn close_after_unread_body(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

fn problem(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "errors": [{ "message": message }] })),
    )
        .into_response()
}

fn not_acceptable() -> Response {
    problem(
        StatusCode::NOT_ACCEPTABLE,
        "responses are application/graphql-response+json or application/json",
    )
}

async fn authorize(State(http): State<Http>, mut request: HttpRequest, next: Next) -> Response {
    let Some(token) = &http.auth_token else {
        // No token: admin operations only from this machine.
        let loopback = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_some_and(|peer| peer.0.ip().is_loopback());
        request.extensions_mut().insert(AdminAccess(loopback));
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(token.as_ref()) {
        request.extensions_mut().insert(AdminAccess(true));
        next.run(request).await
    } else {
        let mut response = problem(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        response
    }
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

fn command_headers(headers: &HeaderMap) -> CommandHeaders {
    let text = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
    };
    let traceparent = match text("traceparent")[..] {
        [one] => Some(one.to_owned()),
        _ => None,
    };
    let tracestate = Some(text("tracestate").join(",")).filter(|s| !s.is_empty());
    CommandHeaders {
        correlation_id: text("x-correlation-id").first().map(|v| (*v).to_owned()),
        traceparent,
        tracestate,
    }
}

async fn graphql_post(
    State(http): State<Http>,
    Extension(admin): Extension<AdminAccess>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(format) = graphql_http::negotiate(&headers) else {
        return not_acceptable();
    };
    if !graphql_http::is_json_body(&headers) {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a GraphQL POST needs Content-Type: application/json",
        );
    }
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a GraphQL request in JSON: {error}"),
            )
        }
    };
    let correlation = command_headers(&headers);
    let batch = match batch {
        BatchRequest::Single(request) => {
            BatchRequest::Single(request.data(correlation).data(admin))
        }
        BatchRequest::Batch(requests) if requests.len() > MAX_BATCH => {
            return problem(
                StatusCode::BAD_REQUEST,
                &format!("a batch may hold at most {MAX_BATCH} operations"),
            );
        }
        BatchRequest::Batch(requests) => BatchRequest::Batch(
            requests
                .into_iter()
                .map(|r| r.data(correlation.clone()).data(admin))
                .collect(),
        ),
    };
    graphql_http::respond(format, http.schemas.execute_batch(batch).await)
}

/// GET carries queries only: a mutation over GET could be triggered by a link.
async fn graphql_get(State(http): State<Http>, headers: HeaderMap, uri: Uri) -> Response {
    let Some(format) = graphql_http::negotiate(&headers) else {
        return not_acceptable();
    };
    let request: Request =
        match async_graphql::http::parse_query_string(uri.query().unwrap_or_default()) {
            Ok(request) => request,
            Err(error) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &format!("bad GraphQL query string: {error}"),
                )
            }
        };
    if let Ok(document) = async_graphql::parser::parse_query(&request.query) {
        let mutation = document
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == OperationType::Mutation);
        if mutation {
            return problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "mutations must be sent with POST",
            );
        }
    }
    let response = http
        .schemas
        .execute(request.data(command_headers(&headers)))
        .await;
    graphql_http::respond(format, async_graphql::BatchResponse::Single(response))
}

/// Ready when the log answers, this node's command processor (if it runs
/// one) has joined its group, got its assignment and restored it, and
/// every projection has applied everything in the log. A 503's body says
/// which condition is missing (`waitingFor`). It also tells the disk
/// reserve (`disk`): a node refusing commands for want of room stays ready,
/// because its reads still work.
async fn ready(State(http): State<Http>) -> Response {
    let mut waiting_for = Vec::new();
    let processor = http.state.processor.as_ref().map(|status| status.phase());
    if let Some(phase) = processor.as_ref().filter(|phase| !phase.is_serving()) {
        waiting_for.push(format!("command processor: {phase}"));
    }
    let mut behind = serde_json::Map::new();
    for handle in http.state.read.all() {
        match projections::serving::lag::lag(
            http.state.log.as_ref(),
            &http.state.topics,
            &handle,
            &http.state.lag_probes,
        )
        .await
        {
            Ok(lag) if lag.events == 0 => {}
            Ok(lag) => {
                behind.insert(handle.name.to_owned(), lag.events.into());
            }
            Err(error) => {
                waiting_for.insert(0, format!("the event log: {error}"));
                break;
            }
        }
    }
    for (name, events) in &behind {
        waiting_for.push(format!("projection {name}: {events} events behind"));
    }
    // A disk under its reserve refuses commands but still serves reads, so
    // it is told here and does not make the node unready.
    let reserve = &http.state.disk;
    let disk = serde_json::json!({
        "freeBytes": reserve.free(),
        "reserveBytes": reserve.reserve(),
        "refusingCommands": reserve.check().is_err(),
    });
    let body = serde_json::json!({
        "ready": waiting_for.is_empty(),
        "waitingFor": waiting_for,
        "processor": processor.map_or_else(|| "not run on this node".to_owned(), |p| p.to_string()),
        "lag": behind,
        "disk": disk,
    });
    let status = if waiting_for.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(http): State<Http>, headers: HeaderMap) -> Response {
    let state = &http.state;
    for slot in state.read.slots() {
        let handle = slot.served();
        state.metrics.set_generation(
            handle.name,
            handle.version,
            slot.rebuilding().map(|r| (r.applied, r.total)),
        );
        if let Ok(lag) = projections::serving::lag::lag(
            state.log.as_ref(),
            &state.topics,
            &handle,
            &state.lag_probes,
        )
        .await
        {
            state
                .metrics
                .set_projection(handle.name, lag.events, lag.seconds, lag.applied);
            for partition in &lag.partitions {
                state
                    .metrics
                    .set_partition_lag(handle.name, partition.partition, partition.lag);
            }
        }
        if let Ok(letters) = handle.store.dead_letters() {
            let oldest = letters.iter().map(|l| l.received_at).min();
            let age = oldest.map_or(0.0, |t| {
                (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
            });
            state
                .metrics
                .set_dead_letters(handle.name, letters.len(), age);
        }
    }
    state.metrics.set_disk(&state.disk);
    if let Some(processor) = &state.processor {
        state.metrics.set_processor(processor);
    }
    for sink in &state.sinks {
        if let Ok(status) = crate::state::sink_status(state, sink).await {
            state.metrics.sinks.set(&status);
        }
    }
    // OpenMetrics for those who ask for it (Prometheus does); the classic
    // text format otherwise (promtool, curl, older scrapers).
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if openmetrics {
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        return (
            [(header::CONTENT_TYPE, content_type)],
            state.metrics.encode(),
        )
            .into_response();
    }
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    let text = crate::metrics::prometheus_text(&state.metrics.encode());
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}
