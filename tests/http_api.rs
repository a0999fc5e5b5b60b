//! End to end over real HTTP on the embedded backend: the lifecycle of
//! several orders, every rejection code, idempotent repeats, read-your-writes,
//! poison events in the DLQ, and the live subscription.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::support::*;

async fn place(s: &TestServer, order: &str, customer: &str) -> Value {
    data(s.gql(PLACE, order_input(order, customer)).await)["placeOrder"].clone()
}

async fn ok(s: &TestServer, mutation: &str, variables: Value) -> Value {
    data(s.gql(mutation, variables).await)
}

fn pay(order: &str, amount: &str) -> Value {
    json!({ "input": { "orderId": order, "paymentId": format!("pay-{order}"), "amount": amount } })
}

const ORDER: &str = "query($id: ID!, $asOf: DateTime, $token: String) { order(id: $id, asOf: $asOf, consistentWith: $token) { id customerId status paymentStatus inventoryReserved items { sku quantity unitPrice { amount currency } } subtotal { amount } tax { amount } total { amount currency } captured { amount } refunded { amount } version placedAt updatedAt history { type sequence } } }";

async fn order(s: &TestServer, id: &str, as_of: Option<&str>, token: &str) -> Value {
    data(
        s.gql(ORDER, json!({ "id": id, "asOf": as_of, "token": token }))
            .await,
    )["order"]
        .clone()
}

async fn several_orders_go_through_their_lifecycles_and_every_view_agrees(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    // o1: placed, reserved, paid -> CONFIRMED, shipped, delivered, partly refunded.
    let placed = place(&s, "o1", "alice").await;
    assert_eq!(placed["version"], 1);
    assert_eq!(placed["events"][0]["data"]["total"]["amount"], "36.79");
    let placed_at = placed["events"][0]["time"].as_str().unwrap().to_owned();
    ok(&s, RESERVE, order_ref("o1")).await;
    let paid = ok(&s, CONFIRM, pay("o1", "36.79")).await;
    assert_eq!(paid["confirmPayment"]["version"], 3);
    ok(
        &s,
        SHIP,
        json!({ "input": { "orderId": "o1", "carrier": "DHL", "trackingNumber": "T1" } }),
    )
    .await;
    ok(&s, DELIVER, order_ref("o1")).await;
    let refund = ok(
        &s,
        REFUND,
        json!({ "input": { "orderId": "o1", "amount": "5.00", "reason": "chipped mug" } }),
    )
    .await;
    let token = refund["refundPayment"]["consistencyToken"]
        .as_str()
        .unwrap()
        .to_owned();
    // o2: paid then cancelled: the whole capture is refunded with the cancellation.
    place(&s, "o2", "alice").await;
    ok(&s, CONFIRM, pay("o2", "36.79")).await;
    let cancelled = ok(
        &s,
        CANCEL,
        json!({ "input": { "orderId": "o2", "reason": "out of stock" } }),
    )
    .await;
    let types: Vec<&str> = cancelled["cancelOrder"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "com.orderstore.order.cancelled",
            "com.orderstore.payment.refunded"
        ]
    );
    // o3: only placed, by another customer.
    let last = place(&s, "o3", "bob").await;
    // Several orders were written: their tokens together cover every partition touched.
    let last_token = format!(
        "{token},{},{}",
        cancelled["cancelOrder"]["consistencyToken"]
            .as_str()
            .unwrap(),
        last["consistencyToken"].as_str().unwrap()
    );

    let o1 = order(&s, "o1", None, &token).await;
    assert_eq!(o1["status"], "DELIVERED");
    assert_eq!(o1["paymentStatus"], "PARTIALLY_REFUNDED");
    assert_eq!(o1["inventoryReserved"], true);
    assert_eq!(
        (
            o1["subtotal"]["amount"].clone(),
            o1["tax"]["amount"].clone()
        ),
        (json!("33.99"), json!("2.80"))
    );
    assert_eq!(
        (
            o1["captured"]["amount"].clone(),
            o1["refunded"]["amount"].clone()
        ),
        (json!("36.79"), json!("5.00"))
    );
    assert_eq!(o1["version"], 6);
    assert_eq!(o1["history"].as_array().unwrap().len(), 6);
    assert_eq!(
        o1["items"][0]["unitPrice"],
        json!({ "amount": "12.50", "currency": "USD" })
    );

    // As of the moment it was placed, o1 was PLACED with one event.
    let then = order(&s, "o1", Some(&placed_at), "").await;
    assert_eq!(
        (then["status"].clone(), then["version"].clone()),
        (json!("PLACED"), json!(1))
    );
    assert_eq!(then["placedAt"], o1["placedAt"]);
    // Before it existed, it was nothing.
    assert_eq!(
        order(&s, "o1", Some("2000-01-01T00:00:00Z"), "").await,
        Value::Null
    );

    let o2 = order(&s, "o2", None, &last_token).await;
    assert_eq!(
        (o2["status"].clone(), o2["paymentStatus"].clone()),
        (json!("CANCELLED"), json!("REFUNDED"))
    );

    let customer = data(
        s.gql(
            "query($t: String) { customer(id: \"alice\", consistentWith: $t) { id orderCount openOrders lifetimeValue { amount currency } orders(first: 1) { edges { cursor node { id status total { amount } } } pageInfo { hasNextPage endCursor } } } }",
            json!({ "t": last_token }),
        )
        .await,
    )["customer"]
        .clone();
    assert_eq!(customer["orderCount"], 2);
    assert_eq!(customer["openOrders"], 0);
    assert_eq!(
        customer["lifetimeValue"],
        json!([{ "amount": "31.79", "currency": "USD" }])
    );
    assert_eq!(customer["orders"]["edges"][0]["node"]["id"], "o1");
    assert_eq!(customer["orders"]["pageInfo"]["hasNextPage"], true);
    let next = data(
        s.gql("{ customer(id: \"alice\") { orders(first: 5, after: \"o1\") { edges { node { id status } } pageInfo { hasNextPage } } } }", json!({})).await,
    );
    assert_eq!(
        next["customer"]["orders"]["edges"],
        json!([{ "node": { "id": "o2", "status": "CANCELLED" } }])
    );
    let cancelled_only = data(
        s.gql(
            "{ customer(id: \"alice\") { orders(status: CANCELLED) { edges { node { id } } } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        cancelled_only["customer"]["orders"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let today = chrono::Utc::now().date_naive().to_string();
    let finance = data(
        s.gql(
            "query($d: Date!, $t: String) { finance(from: $d, to: $d, currency: \"USD\", consistentWith: $t) { rows { date currency ordersPlaced gross { amount } tax { amount } captured { amount } refunded { amount } net { amount } cancelled } totals { date currency gross { amount } } } }",
            json!({ "d": today, "t": last_token }),
        )
        .await,
    )["finance"]
        .clone();
    let row = &finance["rows"][0];
    assert_eq!(row["ordersPlaced"], 3);
    assert_eq!(row["gross"]["amount"], "110.37");
    assert_eq!(row["tax"]["amount"], "8.40");
    assert_eq!(row["captured"]["amount"], "73.58");
    assert_eq!(row["refunded"]["amount"], "41.79");
    assert_eq!(row["net"]["amount"], "31.79");
    assert_eq!(row["cancelled"], 1);
    assert_eq!(finance["totals"][0]["gross"]["amount"], "110.37");

    let history = data(s.gql("{ orderHistory(id: \"o1\", first: 4) { edges { cursor node { sequence type } } pageInfo { hasNextPage endCursor } } }", json!({})).await);
    assert_eq!(
        history["orderHistory"]["edges"].as_array().unwrap().len(),
        4
    );
    assert_eq!(
        history["orderHistory"]["pageInfo"],
        json!({ "hasNextPage": true, "endCursor": "4" })
    );
    // The data of a read model's event, rendered when selected, is the
    // command's answer's own.
    let first = data(
        s.gql(
            "{ orderHistory(id: \"o1\", first: 1) { edges { node { type data } } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        first["orderHistory"]["edges"][0]["node"]["data"], placed["events"][0]["data"],
        "{first}"
    );
    let rest = data(s.gql("{ orderHistory(id: \"o1\", after: \"4\") { edges { node { sequence } } pageInfo { hasNextPage } } }", json!({})).await);
    assert_eq!(
        rest["orderHistory"]["edges"],
        json!([{ "node": { "sequence": 5 } }, { "node": { "sequence": 6 } }])
    );

    let statuses = data(
        s.gql(
            "{ projections { name version lag eventsApplied } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        statuses["projections"].as_array().unwrap().len(),
        projections::names().len()
    );
    let per_partition = data(
        s.gql(
            "{ projections { name partitions { partition position end lag } } }",
            json!({}),
        )
        .await,
    );
    for projection in per_partition["projections"].as_array().unwrap() {
        assert_eq!(
            projection["partitions"].as_array().unwrap().len(),
            4,
            "{projection}"
        );
    }
    let metrics = s.metrics().await;
    assert!(
        metrics.contains(
            "orderstore_projection_partition_lag_events{projection=\"history\",partition=\"0\"}"
        ),
        "{metrics}"
    );
    s.stop().await;
}

async fn every_rejection_code_reaches_the_client_and_writes_nothing(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    place(&s, "r1", "carol").await;
    let cases = [
        (CONFIRM, pay("missing", "1.00"), "ORDER_NOT_FOUND", None),
        (PLACE, order_input("r1", "carol"), "ORDER_EXISTS", None),
        (
            SHIP,
            json!({ "input": { "orderId": "r1", "carrier": "DHL", "trackingNumber": "T" } }),
            "INVALID_STATE",
            None,
        ),
        (CONFIRM, pay("r1", "36.78"), "AMOUNT_MISMATCH", None),
        (
            CONFIRM,
            pay("r1", "36.789"),
            "VALIDATION_FAILED",
            Some("amount"),
        ),
        (
            CANCEL,
            json!({ "input": { "orderId": "r1", "reason": " " } }),
            "VALIDATION_FAILED",
            Some("reason"),
        ),
    ];
    for (mutation, variables, code, field) in cases {
        let body = s.gql(mutation, variables.clone()).await;
        assert_eq!(
            error_code(&body).as_deref(),
            Some(code),
            "{variables}: {body}"
        );
        assert_eq!(error_field(&body).as_deref(), field, "{body}");
    }
    let paid = ok(&s, CONFIRM, pay("r1", "36.79")).await;
    let paid_token = paid["confirmPayment"]["consistencyToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = s
        .gql(
            REFUND,
            json!({ "input": { "orderId": "r1", "amount": "36.80", "reason": "r" } }),
        )
        .await;
    assert_eq!(
        error_code(&body).as_deref(),
        Some("REFUND_EXCEEDS_CAPTURED"),
        "{body}"
    );
    let version = order(&s, "r1", None, &paid_token).await["version"].clone();
    assert_eq!(version, 2, "rejections wrote nothing");
    s.stop().await;

    // A reply that cannot arrive in time is a TIMEOUT, with advice to retry:
    // here no processor runs, so the command waits in the log.
    let slow = TestServer::start_on(backend, |c| {
        c.process_commands = false;
        c.command_timeout = Duration::from_millis(300);
    })
    .await;
    let mut input = order_input("t1", "dave");
    input["input"]["idempotencyKey"] = json!("t1-place");
    let body = slow.gql(PLACE, input.clone()).await;
    assert_eq!(error_code(&body).as_deref(), Some("TIMEOUT"), "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("idempotencyKey"));
    // Once a processor runs, the waiting command applies, and the retry learns its outcome.
    let s = slow
        .restart(|c| {
            c.process_commands = true;
            c.command_timeout = Duration::from_secs(20);
        })
        .await;
    let retried = data(s.gql(PLACE, input).await)["placeOrder"].clone();
    assert_eq!(retried["version"], 1);
    assert_eq!(retried["events"].as_array().unwrap().len(), 1);
    s.stop().await;
}

async fn a_repeated_idempotency_key_returns_the_original_events(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let mut input = order_input("i1", "erin");
    input["input"]["idempotencyKey"] = json!("key-1");
    input["input"]["correlationId"] = json!("corr-first");
    let first = data(s.gql(PLACE, input.clone()).await)["placeOrder"].clone();
    assert_eq!(first["events"][0]["correlationId"], "corr-first");
    assert_eq!(first["events"][0]["causationId"], "key-1");
    input["input"]["correlationId"] = json!("corr-second");
    let again = data(s.gql(PLACE, input).await)["placeOrder"].clone();
    assert_eq!(
        again, first,
        "a repeat answers with the original events and token"
    );
    // The correlation id also comes from the header when the input has none.
    let response = s
        .http
        .post(&s.url)
        .header("X-Correlation-Id", "from-header")
        .json(&json!({ "query": RESERVE, "variables": order_ref("i1") }))
        .send()
        .await
        .unwrap();
    let reserved = data(response.json().await.unwrap());
    let token = reserved["reserveInventory"]["consistencyToken"]
        .as_str()
        .unwrap();
    let read = data(
        s.gql("query($t: String) { order(id: \"i1\", consistentWith: $t) { history { correlationId } } }", json!({ "t": token }))
            .await,
    );
    assert_eq!(
        read["order"]["history"],
        json!([{ "correlationId": "corr-first" }, { "correlationId": "from-header" }])
    );
    s.stop().await;
}

async fn consistent_with_reads_your_own_write_and_times_out_on_a_future_token(backend: Backend) {
    let s = TestServer::start_on(backend, |c| {
        c.consistency_timeout = Duration::from_millis(300)
    })
    .await;
    for i in 0..20 {
        let placed = place(&s, &format!("ryw-{i}"), "frank").await;
        let token = placed["consistencyToken"].as_str().unwrap();
        let read = order(&s, &format!("ryw-{i}"), None, token).await;
        assert_eq!(read["version"], 1, "read {i} missed its own write");
    }
    let body = s
        .gql(ORDER, json!({ "id": "ryw-0", "token": "0:999999" }))
        .await;
    assert_eq!(error_code(&body).as_deref(), Some("TIMEOUT"), "{body}");
    let body = s
        .gql(ORDER, json!({ "id": "ryw-0", "token": "not-a-token" }))
        .await;
    assert_eq!(
        error_field(&body).as_deref(),
        Some("consistentWith"),
        "{body}"
    );
    s.stop().await;
}

async fn poison_records_land_in_the_dlq_while_other_orders_keep_flowing(backend: Backend) {
    use eventlog::{OutgoingRecord, Record};
    let s = TestServer::start_on(backend, |_| {}).await;
    let poison = |key: &str, headers: Vec<domain::Header>| OutgoingRecord {
        topic: commands::Topics::new(&s.config.topic_prefix).events,
        partition: None,
        record: Record {
            key: key.as_bytes().to_vec(),
            value: Some(vec![0xde, 0xad, 0xbe, 0xef]),
            headers,
            timestamp_ms: 0,
        },
    };
    let records = vec![
        poison("stranger-1", vec![]),
        poison(
            "stranger-2",
            vec![domain::Header::new("ce_type", "com.example.unknown")],
        ),
    ];
    // The processor may hold an events partition in a transaction for a moment.
    append_eventually(s.server().log.as_ref(), records).await;
    let placed = place(&s, "healthy", "gina").await;
    let token = placed["consistencyToken"].as_str().unwrap();
    assert_eq!(order(&s, "healthy", None, token).await["status"], "PLACED");
    // Every projection dead-lettered both records.
    let expected = 2 * projections::names().len();
    let letters = eventually(
        Duration::from_secs(5),
        "two dead letters per projection",
        || async {
            let letters = data(
                s.gql(
                    "{ deadLetters { id projection partition offset error eventType receivedAt } }",
                    json!({}),
                )
                .await,
            );
            (letters["deadLetters"].as_array().unwrap().len() == expected).then_some(letters)
        },
    )
    .await;
    let list = letters["deadLetters"].as_array().unwrap();
    assert_eq!(list.len(), expected, "{letters}");
    assert!(list.iter().any(|l| l["eventType"] == "com.example.unknown"));
    let history_only = data(
        s.gql("{ deadLetters(projection: \"history\") { id } }", json!({}))
            .await,
    );
    assert_eq!(history_only["deadLetters"].as_array().unwrap().len(), 2);
    // Each projection also sent its two dead letters to its DLQ topic, with the original bytes.
    for projection in projections::names() {
        let topic = commands::Topics::new(&s.config.topic_prefix).dlq(projection);
        let mut total = 0;
        for partition in 0..4 {
            let tp = eventlog::TopicPartition::new(&topic, partition);
            total += s.server().log.watermarks(&tp).await.unwrap().1;
        }
        assert_eq!(total, 2, "{topic}");
    }
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("orderstore_projection_dead_letters{projection=\"history\"} 2"),
        "{metrics}"
    );
    s.stop().await;
}

async fn the_subscription_streams_events_of_one_order(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let request = async_graphql::Request::new(
        "subscription { orderEvents(orderId: \"live-1\") { type subject sequence } }",
    );
    let mut stream = s.server().schema.execute_stream(request);
    let first =
        tokio::spawn(
            async move { tokio::time::timeout(Duration::from_secs(10), stream.next()).await },
        );
    eventually(
        Duration::from_secs(5),
        "the subscription attaches",
        || async { (s.server().live_subscribers() == 1).then_some(()) },
    )
    .await;
    place(&s, "other", "hank").await;
    place(&s, "live-1", "hank").await;
    let response = first.await.unwrap().expect("an event arrives").unwrap();
    let value = response.data.into_json().unwrap();
    assert_eq!(
        value["orderEvents"],
        json!({ "type": "com.orderstore.order.placed", "subject": "live-1", "sequence": 1 })
    );
    s.stop().await;
}

async fn the_subscription_streams_a_customers_events_over_websocket(backend: Backend) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let s = TestServer::start_on(backend, |_| {}).await;
    let mut request = format!("ws://{}/graphql/ws", s.server().addr)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let next_json = async |socket: &mut tokio_tungstenite::WebSocketStream<_>| -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    };
    socket
        .send(Message::text(
            json!({ "type": "connection_init" }).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": "subscription { orderEvents(customerId: \"ws-customer\") { type subject } }" }
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the subscription attaches",
        || async { (s.server().live_subscribers() == 1).then_some(()) },
    )
    .await;
    place(&s, "ws-other", "someone-else").await;
    place(&s, "ws-1", "ws-customer").await;
    ok(&s, RESERVE, order_ref("ws-1")).await;
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(
        first["payload"]["data"]["orderEvents"],
        json!({ "type": "com.orderstore.order.placed", "subject": "ws-1" })
    );
    // Later events of the customer's order are matched through the customer read model.
    let second = next_json(&mut socket).await;
    assert_eq!(
        second["payload"]["data"]["orderEvents"]["type"], "com.orderstore.inventory.reserved",
        "{second}"
    );
    socket.close(None).await.unwrap();
    s.stop().await;
}

crate::on_both_backends!(
    several_orders_go_through_their_lifecycles_and_every_view_agrees,
    every_rejection_code_reaches_the_client_and_writes_nothing,
    a_repeated_idempotency_key_returns_the_original_events,
    consistent_with_reads_your_own_write_and_times_out_on_a_future_token,
    poison_records_land_in_the_dlq_while_other_orders_keep_flowing,
    the_subscription_streams_events_of_one_order,
    the_subscription_streams_a_customers_events_over_websocket,
);

/// Lag in events and seconds, per projection and partition, while one
/// projection is held still (its store's write lock), and back to 0 after.
async fn a_held_projection_shows_its_lag_and_catches_up(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let topics = commands::Topics::new(&s.config.topic_prefix);
    let held = s
        .server()
        .read
        .slot(projections::customer::NAME)
        .expect("the customer projection is served")
        .served()
        .store
        .lock_writes()
        .await;
    // One generated order: five events from 2026-01-01, in one partition.
    replay::bench::generate(s.server().log.as_ref(), &topics, 5)
        .await
        .unwrap();
    const STATUS: &str = "{ projections { name lag lagSeconds partitions { lag } } }";
    let status = eventually(
        Duration::from_secs(5),
        "every projection but customer catches up",
        || async {
            let status = data(s.gql(STATUS, json!({})).await);
            // Trace as well: /ready below names every projection behind.
            status["projections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["name"] == "customer" || p["lag"] == "0")
                .then_some(status)
        },
    )
    .await;
    let customer = &status["projections"][1];
    assert_eq!(customer["name"], "customer");
    assert_eq!(customer["lag"], "5", "{status}");
    let lagging: Vec<&Value> = customer["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["lag"] != "0")
        .collect();
    assert_eq!(lagging.len(), 1, "{status}");
    assert_eq!(lagging[0]["lag"], "5");
    // The oldest unapplied event is from 2026-01-01: months old.
    assert!(
        customer["lagSeconds"].as_f64().unwrap() > 3600.0,
        "{status}"
    );
    let ready = s
        .http
        .get(format!("{}/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // It names the lagging projection (on Kafka the processor may also
    // still be joining its group this soon after the start).
    let waiting: Value = ready.json().await.unwrap();
    let reasons = waiting["waitingFor"].as_array().unwrap();
    assert!(
        reasons.contains(&json!("projection customer: 5 events behind"))
            && reasons.iter().all(|r| r.as_str().is_some_and(|r| r
                .starts_with("projection customer")
                || r.starts_with("command processor"))),
        "{waiting}"
    );

    drop(held);
    let status = eventually(
        Duration::from_secs(5),
        "the customer projection catches up",
        || async {
            let status = data(s.gql(STATUS, json!({})).await);
            (status["projections"][1]["lag"] == "0").then_some(status)
        },
    )
    .await;
    assert_eq!(status["projections"][1]["lag"], "0", "{status}");
    assert_eq!(status["projections"][1]["lagSeconds"], 0.0, "{status}");
    s.stop().await;
}

crate::on_both_backends!(a_held_projection_shows_its_lag_and_catches_up);
