//! GraphQL over HTTP (the GraphQL-over-HTTP spec): which media type a
//! response has, by the request's `Accept` header, and which status.
//!
//! - `application/graphql-response+json`: a request error (the document
//!   does not parse or validate, or the variables do not coerce) is a 400;
//!   anything that was executed is a 200.
//! - `application/json` (also for `*/*`, `application/*` and no `Accept`):
//!   always 200 for a well-formed request, as the spec says for that type.
//! - Neither acceptable: 406.
//!
//! A request error never carries a `data` entry (execution never began).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
pub const JSON: &str = "application/json";

/// The media type a response is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    GraphQlResponseJson,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Self::GraphQlResponseJson => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

/// The first acceptable media type of `Accept` (by quality, then order);
/// `None` when it names none we can write.
pub fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Some(Format::Json);
    };
    let accept = accept.to_str().ok()?;
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            GRAPHQL_RESPONSE_JSON => Format::GraphQlResponseJson,
            JSON | "*/*" | "application/*" => Format::Json,
            _ => continue,
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, format));
        }
    }
    best.map(|(_, format)| format)
}

/// Whether a POST body's `Content-Type` is JSON (a GraphQL request).
pub fn is_json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(JSON))
}

/// A required variable (non-null, no default) that the request does not
/// give: a variable-coercion failure, so a request error before execution.
/// (async-graphql would report it only when a field reads the variable, as a
/// field error.) `None` when the variables are complete, or the document
/// does not parse (execution then reports the parse error).
pub fn missing_variable(
    request: &async_graphql::Request,
    document: &async_graphql::parser::types::ExecutableDocument,
) -> Option<async_graphql::Response> {
    let operation = match &request.operation_name {
        Some(name) => {
            document
                .operations
                .iter()
                .find(|(n, _)| n.map(|n| n.as_str()) == Some(name.as_str()))?
                .1
        }
        // Several operations and no name: execution says which is missing.
        None if document.operations.iter().count() > 1 => return None,
        None => document.operations.iter().next()?.1,
    };
    let missing = operation
        .node
        .variable_definitions
        .iter()
        .find(|definition| {
            let definition = &definition.node;
            !definition.var_type.node.nullable
                && definition.default_value.is_none()
                && matches!(
                    request.variables.get(definition.name.node.as_str()),
                    None | Some(async_graphql::Value::Null)
                )
        })?;
    let name = &missing.node.name.node;
    let error = async_graphql::ServerError::new(
        format!(
            "variable ${name} of type {} is required",
            missing.node.var_type.node
        ),
        Some(missing.pos),
    );
    Some(async_graphql::Response::from_errors(vec![error]))
}

/// An error before execution: no `data`, and no error has a `path`.
fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// One response as JSON, without `data` for a request error.
fn body(response: &async_graphql::Response) -> serde_json::Value {
    let mut value = serde_json::to_value(response).unwrap_or_else(|e| {
        serde_json::json!({ "errors": [{ "message": format!("cannot encode the response: {e}") }] })
    });
    if is_request_error(response) {
        if let Some(object) = value.as_object_mut() {
            object.remove("data");
        }
    }
    value
}

/// Writes a GraphQL response (or batch) in `format`, with its status.
pub fn respond(format: Format, batch: async_graphql::BatchResponse) -> Response {
    let (status, value, headers) = match &batch {
        async_graphql::BatchResponse::Single(response) => {
            let status = if format == Format::GraphQlResponseJson && is_request_error(response) {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            (status, body(response), Some(response.http_headers.clone()))
        }
        async_graphql::BatchResponse::Batch(responses) => (
            StatusCode::OK,
            serde_json::Value::Array(responses.iter().map(body).collect()),
            None,
        ),
    };
    let mut http = (status, value.to_string()).into_response();
    if let Some(extra) = headers {
        http.headers_mut().extend(extra);
    }
    http.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    http
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_accept_header_picks_the_media_type() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Format::Json));
        assert_eq!(negotiate(&accept("application/json")), Some(Format::Json));
        assert_eq!(negotiate(&accept("*/*")), Some(Format::Json));
        assert_eq!(
            negotiate(&accept("application/graphql-response+json")),
            Some(Format::GraphQlResponseJson)
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json, application/json;q=0.9"
            )),
            Some(Format::GraphQlResponseJson)
        );
        assert_eq!(
            negotiate(&accept(
                "application/graphql-response+json;q=0.5, application/json"
            )),
            Some(Format::Json)
        );
        assert_eq!(negotiate(&accept("text/html")), None);
        assert_eq!(negotiate(&accept("application/json;q=0")), None);
    }

    #[test]
    fn only_a_json_content_type_is_a_graphql_post() {
        let mut headers = HeaderMap::new();
        assert!(!is_json_body(&headers));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_json_body(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(is_json_body(&headers));
    }
}
