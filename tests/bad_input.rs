//! Bad input over HTTP: a clear error, the right status, nothing written,
//! nothing panics.

use serde_json::{json, Value};

use crate::support::*;

async fn post_body(s: &TestServer, body: impl Into<reqwest::Body>) -> (u16, String) {
    let response = s
        .http
        .post(&s.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_overlarge_requests_are_refused_over_http() {
    let s = TestServer::start().await;
    let (status, text) = post_body(&s, "{ not json").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("not a GraphQL request"), "{text}");

    let huge = json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(300 * 1024) } })
        .to_string();
    let (status, _) = post_body(&s, huge.clone()).await;
    assert_eq!(status, 413);
    // The unread rest of the body makes the connection unusable: the
    // answer says so, and the client's next request goes on a new one.
    let http = reqwest::Client::new();
    let response = http
        .post(&s.url)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["connection"], "close");
    for _ in 0..20 {
        let next = http
            .post(&s.url)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await;
        assert_eq!(next.unwrap().status(), 200);
    }

    let batch: Vec<Value> = (0..17)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, text) = post_body(&s, Value::Array(batch).to_string()).await;
    assert_eq!(status, 400, "{text}");
    let small: Vec<Value> = (0..2)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, text) = post_body(&s, Value::Array(small).to_string()).await;
    assert_eq!((status, text.matches("Query").count()), (200, 2), "{text}");

    let mutation = "mutation { deliverOrder(input: {orderId: \"x\"}) { version } }";
    let response = s
        .http
        .get(reqwest::Url::parse_with_params(&s.url, &[("query", mutation)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    let response = s
        .http
        .get(reqwest::Url::parse_with_params(&s.url, &[("query", "{ __typename }")]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_deep_and_over_complex_queries_are_rejected_with_a_clear_error() {
    let s = TestServer::start().await;
    // Past even the deeper limit of introspection-only operations (24); the
    // ordinary limit (12) is tested next to data in `introspection`.
    let levels = 22;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {}name{} }} }} }} }} }}",
        "ofType { ".repeat(levels),
        " }".repeat(levels)
    );
    let body = s.gql(&deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too deep"),
        "{body}"
    );
    let wide: String = (0..1100)
        .map(|i| format!("a{i}: order(id: \"x\") {{ id }} "))
        .collect();
    let body = s.gql(&format!("{{ {wide} }}"), json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_owned_fields_are_validated_and_name_their_field() {
    let s = TestServer::start().await;
    let mut bad_key = order_input("v1", "ivy");
    bad_key["input"]["idempotencyKey"] = json!("has space");
    let mut bad_correlation = order_input("v1", "ivy");
    bad_correlation["input"]["correlationId"] = json!("");
    let cases: Vec<(&str, Value, &str)> = vec![
        (PLACE, order_input("bad id!", "ivy"), "orderId"),
        (PLACE, bad_key, "idempotencyKey"),
        (PLACE, bad_correlation, "correlationId"),
        (PLACE, order_input("v1", ""), "customerId"),
        (RESERVE, order_ref(""), "orderId"),
    ];
    for (mutation, variables, field) in cases {
        let body = s.gql(mutation, variables).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("VALIDATION_FAILED"),
            "{body}"
        );
        assert_eq!(error_field(&body).as_deref(), Some(field), "{body}");
    }
    let mut wrong_item = order_input("v1", "ivy");
    wrong_item["input"]["items"][1]["quantity"] = json!(0);
    let body = s.gql(PLACE, wrong_item).await;
    assert_eq!(
        error_field(&body).as_deref(),
        Some("items[1].quantity"),
        "{body}"
    );

    let queries = [
        ("{ orderHistory(id: \"v1\", first: 0) { edges { cursor } } }", "first"),
        ("{ orderHistory(id: \"v1\", after: \"zz\") { edges { cursor } } }", "after"),
        ("{ order(id: \"a b\") { id } }", "id"),
        ("{ finance(from: \"2026-02-01\", to: \"2026-01-01\") { rows { date } } }", "to"),
        ("{ finance(from: \"2020-01-01\", to: \"2026-01-01\") { rows { date } } }", "to"),
        ("{ finance(from: \"2026-01-01\", to: \"2026-01-02\", currency: \"XYZ\") { rows { date } } }", "currency"),
        ("{ deadLetters(projection: \"nope\") { id } }", "projection"),
    ];
    for (query, field) in queries {
        let body = s.gql(query, json!({})).await;
        assert_eq!(
            error_field(&body).as_deref(),
            Some(field),
            "{query}: {body}"
        );
    }
    let body = s
        .gql(
            "{ finance(from: \"yesterday\", to: \"2026-01-01\") { rows { date } } }",
            json!({}),
        )
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not a date"),
        "{body}"
    );
    // Nothing was written by any of it.
    assert_eq!(
        data(s.gql("{ order(id: \"v1\") { id } }", json!({})).await)["order"],
        Value::Null
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_protects_every_route_but_health_and_ready() {
    let s = TestServer::start_with(|c| c.auth_token = Some("s3cret".into())).await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = s.http.get(format!("{}{path}", s.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(get("/health", None).await.unwrap().status().as_u16(), 200);
    // /ready needs no token at any time: before this node serves it answers
    // 503 (not 401), and 200 once it serves.
    assert_ne!(get("/ready", None).await.unwrap().status().as_u16(), 401);
    s.wait_ready().await;
    assert_eq!(get("/ready", None).await.unwrap().status().as_u16(), 200);
    for path in ["/", "/metrics", "/graphql?query=%7B__typename%7D"] {
        assert_eq!(
            get(path, None).await.unwrap().status().as_u16(),
            401,
            "{path}"
        );
        assert_eq!(
            get(path, Some("wrong")).await.unwrap().status().as_u16(),
            401,
            "{path}"
        );
        assert_eq!(
            get(path, Some("s3cret")).await.unwrap().status().as_u16(),
            200,
            "{path}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_or_inconsistent_settings_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        api::serve::ServeConfig::new(dir.path().to_path_buf(), "0.0.0.0:0".parse().unwrap());
    let refused = api::serve::start(config.clone()).await.unwrap_err();
    assert!(refused.to_string().contains("--auth-token"), "{refused}");

    config.listen = "127.0.0.1:0".parse().unwrap();
    config.partitions = Some(3);
    api::serve::start(config.clone())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    config.partitions = Some(5);
    let refused = api::serve::start(config.clone()).await.unwrap_err();
    assert!(refused.to_string().contains("3 partitions"), "{refused}");
    // Without the flag the stored count is used.
    config.partitions = None;
    let server = api::serve::start(config).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_mutations_refuse_bad_input_and_clients_without_access() {
    let s = TestServer::start().await;
    let cases = [
        (
            "mutation { verifyProjection(name: \"ledger\") { different } }",
            "VALIDATION_FAILED",
            Some("name"),
        ),
        (
            "mutation { retryDeadLetters(projection: \"ledger\") { applied } }",
            "VALIDATION_FAILED",
            Some("projection"),
        ),
        (
            "mutation { discardDeadLetter(id: \"history\", confirm: true) { id } }",
            "VALIDATION_FAILED",
            Some("id"),
        ),
        (
            "mutation { discardDeadLetter(id: \"ledger:0:1\", confirm: true) { id } }",
            "VALIDATION_FAILED",
            Some("id"),
        ),
        (
            "mutation { discardDeadLetter(id: \"history:0:1\", confirm: false) { id } }",
            "VALIDATION_FAILED",
            Some("confirm"),
        ),
        (
            "mutation { discardDeadLetter(id: \"history:0:1\", confirm: true) { id } }",
            "NOT_FOUND",
            None,
        ),
    ];
    for (query, code, field) in cases {
        let body = s.gql(query, json!({})).await;
        assert_eq!(error_code(&body).as_deref(), Some(code), "{query}: {body}");
        assert_eq!(error_field(&body).as_deref(), field, "{query}: {body}");
    }
    // Without the access marker the HTTP layer gives, every admin mutation is refused.
    for query in [
        "mutation { rebuildProjection(name: \"history\") { targetVersion } }",
        "mutation { verifyProjection(name: \"history\") { different } }",
        "mutation { retryDeadLetters(projection: \"history\") { applied } }",
        "mutation { discardDeadLetter(id: \"history:0:1\", confirm: true) { id } }",
    ] {
        let body = serde_json::to_value(s.server().schema.execute(query).await).unwrap();
        assert_eq!(
            error_code(&body).as_deref(),
            Some("FORBIDDEN"),
            "{query}: {body}"
        );
    }
    let status = data(
        s.gql(
            "{ projections { version rebuilding { phase } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        status["projections"][0]["version"], 1,
        "nothing was rebuilt"
    );
}

/// POSTs `query` with the given headers; answers status, content type, body.
async fn post_with(s: &TestServer, headers: &[(&str, &str)], body: String) -> (u16, String, Value) {
    let mut request = s.http.post(&s.url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    (
        status,
        content_type,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_follow_graphql_over_http_by_the_accept_header() {
    let s = TestServer::start().await;
    let json_body = |query: &str| json!({ "query": query }).to_string();
    const JSON: (&str, &str) = ("content-type", "application/json");
    const GRJ: &str = "application/graphql-response+json";

    // A good request: its media type follows Accept (JSON without one).
    for (accept, expected) in [
        (None, "application/json"),
        (Some("application/json"), "application/json"),
        (Some("*/*"), "application/json"),
        (Some(GRJ), GRJ),
    ] {
        let mut headers = vec![JSON];
        if let Some(accept) = accept {
            headers.push(("accept", accept));
        }
        let (status, content_type, body) =
            post_with(&s, &headers, json_body("{ __typename }")).await;
        assert_eq!(status, 200, "{accept:?}: {body}");
        assert!(
            content_type.starts_with(expected),
            "{accept:?}: {content_type}"
        );
        assert_eq!(body["data"]["__typename"], "Query");
    }

    // Request errors: 400 with graphql-response+json, 200 with JSON; never `data`.
    let bad_documents = [
        json_body("{ __typename"),
        json_body("{ noSuchField }"),
        json!({ "query": "query($id: ID!) { order(id: $id) { status } }", "variables": {} })
            .to_string(),
    ];
    for document in &bad_documents {
        let (status, content_type, body) =
            post_with(&s, &[JSON, ("accept", GRJ)], document.clone()).await;
        assert_eq!(status, 400, "{document}: {body}");
        assert!(content_type.starts_with(GRJ), "{content_type}");
        assert!(
            body.get("data").is_none() && body["errors"][0]["message"].is_string(),
            "{body}"
        );
        let (status, _, body) = post_with(
            &s,
            &[JSON, ("accept", "application/json")],
            document.clone(),
        )
        .await;
        assert_eq!(status, 200, "{document}: {body}");
        assert!(body.get("data").is_none(), "{body}");
    }

    // A field error is an executed request: 200, with its data.
    let (status, _, body) = post_with(
        &s,
        &[JSON, ("accept", GRJ)],
        json_body("{ order(id: \"\") { status } }"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.get("data").is_some() && body["errors"].is_array(),
        "{body}"
    );

    // No content type, or another one: 415. Nothing acceptable: 406.
    let (status, _, body) = post_with(&s, &[], json_body("{ __typename }")).await;
    assert_eq!(status, 415, "{body}");
    let (status, _, _) = post_with(
        &s,
        &[("content-type", "text/plain")],
        json_body("{ __typename }"),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _, _) = post_with(
        &s,
        &[JSON, ("accept", "text/html")],
        json_body("{ __typename }"),
    )
    .await;
    assert_eq!(status, 406);
    s.stop().await;
}

#[test]
fn serve_refuses_flags_out_of_range_with_their_bounds() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, says) in [
        ("--session-timeout-ms", "500", "6000..=1800000"),
        ("--session-timeout-ms", "soon", "invalid digit"),
        ("--log-format", "xml", "possible values: text, json"),
        ("--cache-mb", "8", "16..=1048576"),
        ("--cache-mb", "lots", "invalid digit"),
        ("--disk-reserve-mb", "2000000", "0..=1048576"),
        ("--disk-reserve-mb", "some", "invalid digit"),
    ] {
        let output = orderstore(&["serve", flag, value], dir.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
}

/// How many GraphQL requests skipped the strict rules so far.
async fn requests_validated_by_variables(s: &TestServer) -> u64 {
    let metrics = s.metrics().await;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("orderstore_graphql_requests_total{validation=\"variables\"} ")
        })
        .map_or(0, |n| n.parse().unwrap())
}

/// A query document that passed every validation rule once skips them on
/// later requests, with only its variables checked (api::schema::validated).
/// Bad variables (and null or missing ones) are answered the same before
/// and after, status and body, and the metrics show which requests took the
/// shorter way: those whose values the variable check cannot refuse
/// (DateTime and Date accept every value in validation, as in async-graphql;
/// an Int beyond 32 bits or a negative one is an integer), which execution
/// then refuses or answers, on either path alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validated_documents_answer_bad_variables_as_strict_validation_does() {
    let s = TestServer::start().await;
    let (strict, skips) = (false, true);
    let cases = [
        (
            "query($id: ID!, $at: DateTime) { order(id: $id, asOf: $at) { id status } }",
            json!({ "id": "v-1", "at": "2026-12-01T00:00:00Z" }),
            vec![
                (json!({ "id": 1.5, "at": "2026-12-01T00:00:00Z" }), strict),
                (json!({ "id": true }), strict),
                (json!({ "id": { "a": 1 } }), strict),
                (json!({ "id": ["v-1"] }), strict),
                (json!({ "id": "v-1", "at": "garbage" }), skips),
                (json!({ "id": "v-1", "at": 5 }), skips),
                // Valid, but null or missing: the strict path answers.
                (json!({ "id": "v-1", "at": null }), strict),
                (json!({ "id": "v-1" }), strict),
                (json!({ "id": null }), strict),
            ],
        ),
        (
            "query($id: ID!, $n: Int) { orderHistory(id: $id, first: $n) { edges { cursor } } }",
            json!({ "id": "v-1", "n": 5 }),
            vec![
                (json!({ "id": "v-1", "n": "5" }), strict),
                (json!({ "id": "v-1", "n": 2.5 }), strict),
                (json!({ "id": "v-1", "n": 99_999_999_999_i64 }), skips),
                (json!({ "id": "v-1", "n": -1 }), skips),
                (json!({ "id": "v-1", "n": [5] }), strict),
            ],
        ),
        (
            "query($from: Date!, $to: Date!) { finance(from: $from, to: $to) { totals { currency } } }",
            json!({ "from": "2026-12-01", "to": "2026-12-02" }),
            vec![
                (json!({ "from": "12/01/2026", "to": "2026-12-02" }), skips),
                (json!({ "from": 20_261_201, "to": "2026-12-02" }), skips),
            ],
        ),
        (
            "query($id: ID!, $s: Boolean!) { order(id: $id) @skip(if: $s) { id } }",
            json!({ "id": "v-1", "s": false }),
            vec![
                (json!({ "id": "v-1", "s": "yes" }), strict),
                (json!({ "id": "v-1", "s": 1 }), strict),
            ],
        ),
    ];
    let body = |query: &str, variables: &Value| {
        json!({ "query": query, "variables": variables }).to_string()
    };
    // The answer and whether the request skipped the strict rules.
    let send = |query: &'static str, variables: Value| {
        let s = &s;
        async move {
            let skipped = requests_validated_by_variables(s).await;
            let answer = post_body(s, body(query, &variables)).await;
            (answer, requests_validated_by_variables(s).await > skipped)
        }
    };
    for (query, good, others) in cases {
        let mut before = Vec::new();
        for (variables, _) in &others {
            let (answer, skipped) = send(query, variables.clone()).await;
            assert!(!skipped, "not validated yet: {query} {variables}");
            before.push(answer);
        }
        let ((status, text), _) = send(query, good.clone()).await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains("\"errors\""), "{query}: {text}");
        let (again, skipped) = send(query, good.clone()).await;
        assert!(skipped, "{query}");
        assert_eq!(again, (status, text));
        for ((variables, skips), before) in others.into_iter().zip(before) {
            let (after, skipped) = send(query, variables.clone()).await;
            assert_eq!(after, before, "{query} {variables}");
            assert_eq!(skipped, skips, "{query} {variables}");
        }
    }
    s.stop().await;
}
