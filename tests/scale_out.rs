//! Two `serve` nodes on one Kafka: the command processor is a consumer group,
//! so commands for orders in every partition succeed through either node;
//! when one stops its partitions move, commands keep succeeding, nothing
//! acknowledged is lost or applied twice, and both nodes' read models agree.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const ORDER: &str = "query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { id status version history { type sequence } } }";

async fn read(s: &TestServer, order: &str, token: &str) -> Value {
    data(s.gql(ORDER, json!({ "id": order, "t": token })).await)["order"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    let slow = |c: &mut api::serve::ServeConfig| c.command_timeout = Duration::from_secs(40);
    let a = TestServer::start_on(Backend::Kafka, slow).await;
    let prefix = a.config.topic_prefix.clone();
    let b = TestServer::start_on(Backend::Kafka, |c| {
        slow(c);
        c.topic_prefix = prefix.clone();
    })
    .await;

    // Orders spread over all four partitions, placed through both nodes.
    let orders: Vec<String> = (0..16).map(|i| format!("scale-{i}")).collect();
    let mut last_token = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        let node = if i % 2 == 0 { &a } else { &b };
        let placed = data(node.gql(PLACE, order_input(order, "max")).await);
        last_token.push(
            placed["placeOrder"]["consistencyToken"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let partitions: std::collections::BTreeSet<String> = last_token
        .iter()
        .map(|t| t.split(':').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        partitions.len(),
        4,
        "the orders should cover every partition: {partitions:?}"
    );
    // Both nodes' read models agree on every order.
    for (order, token) in orders.iter().zip(&last_token) {
        assert_eq!(
            read(&a, order, token).await,
            read(&b, order, token).await,
            "{order}"
        );
    }

    // One node stops; the other takes its partitions and goes on.
    a.stop().await;
    for (order, token) in orders.iter().zip(last_token.iter_mut()) {
        let reserved = data(b.gql(RESERVE, order_ref(order)).await);
        assert_eq!(reserved["reserveInventory"]["version"], 2, "{order}");
        *token = reserved["reserveInventory"]["consistencyToken"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    for (order, token) in orders.iter().zip(&last_token) {
        let seen = read(&b, order, token).await;
        // Exactly two events: nothing lost, nothing applied twice.
        assert_eq!(
            seen["history"],
            json!([
                { "type": "com.orderstore.order.placed", "sequence": 1 },
                { "type": "com.orderstore.inventory.reserved", "sequence": 2 }
            ]),
            "{order}"
        );
    }
    b.stop().await;
}
