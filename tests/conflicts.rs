//! 50 concurrent conflicting commands on one order: each is decided against
//! the state the previous one left (one writer per partition), so no
//! update is lost, versions are contiguous, and the rule that refunds never
//! exceed the captured amount holds exactly.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::on_both_backends;
use crate::support::*;

async fn fifty_concurrent_refunds_on_one_order_lose_no_update(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let order = "contended";
    data(s.gql(PLACE, order_input(order, "cory")).await);
    data(s.gql(RESERVE, order_ref(order)).await);
    let pay = json!({ "input": { "orderId": order, "paymentId": "p", "amount": "36.79" } });
    data(s.gql(CONFIRM, pay).await);

    // 50 refunds of 1.00 at once against 36.79 captured: 36 fit, 14 do not.
    let refunds = (0..50).map(|i| {
        let s = &s;
        async move {
            let input = json!({ "input": {
                "orderId": order, "amount": "1.00", "reason": format!("refund {i}"),
            }});
            s.gql(REFUND, input).await
        }
    });
    let answers: Vec<Value> = futures_util::future::join_all(refunds).await;
    let mut versions = BTreeSet::new();
    let mut rejected = 0;
    for answer in &answers {
        match error_code(answer) {
            None => {
                let version = answer["data"]["refundPayment"]["version"].as_u64().unwrap();
                assert!(versions.insert(version), "version {version} twice");
            }
            Some(code) => {
                assert_eq!(code, "REFUND_EXCEEDS_CAPTURED", "{answer}");
                rejected += 1;
            }
        }
    }
    assert_eq!((versions.len(), rejected), (36, 14));
    // Placed, reserved, paid: versions 1-3; the refunds took 4-39, each once.
    assert_eq!(versions, (4..=39).collect::<BTreeSet<u64>>());

    let token = answers
        .iter()
        .filter_map(|a| a["data"]["refundPayment"]["consistencyToken"].as_str())
        .collect::<Vec<_>>()
        .join(",");
    let read = data(
        s.gql(
            "query($id: ID!, $token: String) { order(id: $id, consistentWith: $token) { version refunded { amount } captured { amount } history { sequence } } }",
            json!({ "id": order, "token": token }),
        )
        .await,
    );
    let read = &read["order"];
    assert_eq!(read["version"], 39);
    assert_eq!(read["refunded"]["amount"], "36.00");
    assert_eq!(read["captured"]["amount"], "36.79");
    let sequences: Vec<u64> = read["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, (1..=39).collect::<Vec<u64>>());
}

on_both_backends!(fifty_concurrent_refunds_on_one_order_lose_no_update);
