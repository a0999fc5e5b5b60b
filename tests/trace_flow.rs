//! Tracing a business flow: every event carrying a correlation id, across
//! orders, in event-time order, as of any time, paged; through GraphQL and
//! `orderstore inspect trace`, on both backends.

use serde_json::{json, Value};

use crate::support::{
    data, error_code, error_field, order_input, order_ref, orderstore_ok, Backend, TestServer,
    CONFIRM, PLACE, RESERVE,
};

const TRACE: &str = "query($id: String!, $asOf: DateTime, $first: Int, $after: String) { trace(correlationId: $id, asOf: $asOf, first: $first, after: $after) { edges { cursor node { id type subject time sequence correlationId causationId partition offset } } pageInfo { hasNextPage endCursor } } }";

/// Sends `mutation` with `input`, its correlation id set; answers its data.
async fn send(s: &TestServer, mutation: &str, mut input: Value, correlation: &str) -> Value {
    input["input"]["correlationId"] = json!(correlation);
    data(s.gql(mutation, input).await)
}

async fn trace(s: &TestServer, variables: Value) -> Value {
    data(s.gql(TRACE, variables).await)["trace"].clone()
}

async fn a_checkout_flow_across_orders_is_traced_in_time_order(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    // One checkout places two orders and pays one; another flow interleaves.
    send(&s, PLACE, order_input("flow-a", "fay"), "checkout-1").await;
    send(&s, PLACE, order_input("other", "gus"), "checkout-2").await;
    send(&s, PLACE, order_input("flow-b", "fay"), "checkout-1").await;
    send(&s, RESERVE, order_ref("flow-a"), "checkout-1").await;
    let mut pay = order_ref("flow-a");
    pay["input"]["paymentId"] = json!("p-1");
    pay["input"]["amount"] = json!("36.79");
    send(&s, CONFIRM, pay, "checkout-1").await;
    s.wait_ready().await;

    let flow = trace(&s, json!({ "id": "checkout-1" })).await;
    let edges = flow["edges"].as_array().unwrap();
    let seen: Vec<(String, String)> = edges
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["subject"].as_str().unwrap().to_owned(),
                node["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("flow-a".into(), "com.orderstore.order.placed".into()),
            ("flow-b".into(), "com.orderstore.order.placed".into()),
            ("flow-a".into(), "com.orderstore.inventory.reserved".into()),
            ("flow-a".into(), "com.orderstore.payment.confirmed".into()),
        ],
        "{flow}"
    );
    let times: Vec<&str> = edges
        .iter()
        .map(|e| e["node"]["time"].as_str().unwrap())
        .collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> =
        times.iter().map(|t| t.parse().unwrap()).collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(edges
        .iter()
        .all(|e| e["node"]["correlationId"] == "checkout-1"
            && !e["node"]["causationId"].as_str().unwrap().is_empty()));
    assert_eq!(flow["pageInfo"]["hasNextPage"], false);

    // Pages: two, then the rest after the cursor.
    let first = trace(&s, json!({ "id": "checkout-1", "first": 2 })).await;
    assert_eq!(first["edges"].as_array().unwrap().len(), 2);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let rest = trace(
        &s,
        json!({ "id": "checkout-1", "after": first["pageInfo"]["endCursor"] }),
    )
    .await;
    let rest_ids: Vec<&Value> = rest["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["id"])
        .collect();
    let all_ids: Vec<&Value> = edges.iter().map(|e| &e["node"]["id"]).collect();
    assert_eq!(rest_ids, all_ids[2..]);

    // As of the second event: the flow up to then.
    let early = trace(&s, json!({ "id": "checkout-1", "asOf": times[1] })).await;
    assert_eq!(early["edges"].as_array().unwrap().len(), 2, "{early}");
    let other = trace(&s, json!({ "id": "checkout-2" })).await;
    assert_eq!(other["edges"].as_array().unwrap().len(), 1);
    assert!(trace(&s, json!({ "id": "nobody" })).await["edges"]
        .as_array()
        .unwrap()
        .is_empty());

    // The command prints the same flow, as a table and as JSON.
    let table = orderstore_ok(&["inspect", "trace", "checkout-1"], s.dir.path());
    assert!(
        table.contains("flow-a") && table.contains("flow-b") && table.contains("PaymentConfirmed"),
        "{table}"
    );
    let printed: Value = serde_json::from_str(&orderstore_ok(
        &["inspect", "trace", "checkout-1", "--json"],
        s.dir.path(),
    ))
    .unwrap();
    let printed_ids: Vec<&Value> = printed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(printed_ids, all_ids);
    let all_ids: Vec<Value> = all_ids.into_iter().cloned().collect();

    // With no server, the command reads the trace read model's files.
    let dir = s.stop().await;
    let printed: Value = serde_json::from_str(&orderstore_ok(
        &["inspect", "trace", "checkout-1", "--json"],
        dir.path(),
    ))
    .unwrap();
    let printed_ids: Vec<Value> = printed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(printed_ids, all_ids);
    let refused = crate::support::orderstore(&["inspect", "trace", "bad id"], dir.path());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("1 to 128 visible ASCII"));
}

crate::on_both_backends!(a_checkout_flow_across_orders_is_traced_in_time_order);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_correlation_id_or_cursor_is_refused_naming_its_argument() {
    let s = TestServer::start().await;
    for (variables, field) in [
        (json!({ "id": "" }), "correlationId"),
        (json!({ "id": "has space" }), "correlationId"),
        (json!({ "id": "x".repeat(129) }), "correlationId"),
        (json!({ "id": "ok", "after": "not-a-cursor" }), "after"),
        (json!({ "id": "ok", "first": 0 }), "first"),
    ] {
        let body = s.gql(TRACE, variables.clone()).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some("VALIDATION_FAILED"),
            "{variables}: {body}"
        );
        assert_eq!(
            error_field(&body).as_deref(),
            Some(field),
            "{variables}: {body}"
        );
    }
    s.stop().await;
}
