//! Point-in-time state three ways must agree on random histories: GraphQL
//! `order(id, asOf)` (folded from the history read model), and `inspect`'s
//! fold of the log itself, at every event time and just before it; the
//! `orderstore inspect` command prints the same (asking the running server).

use chrono::{DateTime, Duration, Utc};
use commands::Topics;
use replay::inspect::OrderView;
use replay::log_fold::fold_order;
use serde_json::{json, Value};

use crate::support::*;

/// A small deterministic generator (xorshift), so a failing history can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// Sends a random sequence of commands to one order; returns the last token.
async fn random_history(s: &TestServer, order: &str, dice: &mut Dice) -> String {
    let mut token = data(s.gql(PLACE, order_input(order, "quinn")).await)["placeOrder"]
        ["consistencyToken"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..dice.roll(7) {
        let (mutation, field, input) = match dice.roll(7) {
            0 => (RESERVE, "reserveInventory", order_ref(order)),
            1 => (
                CONFIRM,
                "confirmPayment",
                json!({ "input": { "orderId": order, "paymentId": "p", "amount": "36.79" } }),
            ),
            2 => (
                SHIP,
                "shipOrder",
                json!({ "input": { "orderId": order, "carrier": "UPS", "trackingNumber": "1Z" } }),
            ),
            3 => (DELIVER, "deliverOrder", order_ref(order)),
            4 => (
                CANCEL,
                "cancelOrder",
                json!({ "input": { "orderId": order, "reason": "r" } }),
            ),
            _ => (
                REFUND,
                "refundPayment",
                json!({ "input": { "orderId": order, "amount": "1.00", "reason": "r" } }),
            ),
        };
        let body = s.gql(mutation, input).await;
        if let Some(t) = body["data"][field]["consistencyToken"].as_str() {
            token = t.to_owned();
        }
    }
    token
}

const AS_OF: &str = "query($id: ID!, $at: DateTime, $t: String) { order(id: $id, asOf: $at, consistentWith: $t) { status paymentStatus inventoryReserved total { amount } captured { amount } refunded { amount } version } }";

/// The GraphQL answer in the shape `inspect` prints.
fn from_graphql(order: &Value) -> Option<Value> {
    (!order.is_null()).then(|| {
        json!({
            "status": order["status"], "paymentStatus": order["paymentStatus"],
            "inventoryReserved": order["inventoryReserved"], "total": order["total"]["amount"],
            "captured": order["captured"]["amount"], "refunded": order["refunded"]["amount"],
            "version": order["version"],
        })
    })
}

fn from_log(view: Option<OrderView>) -> Option<Value> {
    view.map(|v| {
        json!({
            "status": v.status, "paymentStatus": v.payment_status, "inventoryReserved": v.inventory_reserved,
            "total": v.total, "captured": v.captured, "refunded": v.refunded, "version": v.version,
        })
    })
}

async fn point_in_time_views_agree_with_a_fold_of_the_log(backend: Backend) {
    let s = TestServer::start_on(backend, |_| {}).await;
    let topics = Topics::new(&s.config.topic_prefix);
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    for n in 0..6 {
        let order = format!("pit-{n}");
        let token = random_history(&s, &order, &mut dice).await;
        let history = data(
            s.gql(
                "query($id: ID!) { orderHistory(id: $id) { edges { node { time } } } }",
                json!({ "id": order }),
            )
            .await,
        );
        let mut times: Vec<DateTime<Utc>> = Vec::new();
        for edge in history["orderHistory"]["edges"].as_array().unwrap() {
            let time: DateTime<Utc> = edge["node"]["time"].as_str().unwrap().parse().unwrap();
            times.extend([time - Duration::microseconds(1), time]);
        }
        times.push(Utc::now());
        for at in times {
            let graphql = data(
                s.gql(
                    AS_OF,
                    json!({ "id": order, "at": at.to_rfc3339(), "t": token }),
                )
                .await,
            );
            let folded = fold_order(s.server().log.as_ref(), &topics, &order, at)
                .await
                .unwrap();
            assert_eq!(
                from_graphql(&graphql["order"]),
                from_log(OrderView::of(&folded.state)),
                "{order} at {at}: GraphQL and the log disagree"
            );
            assert!(folded.events.iter().all(|e| e.event.envelope.time <= at));
            if n == 0 {
                // The command prints the same state (through the running server).
                let printed = inspect(
                    &["order", &order, "--at", &at.to_rfc3339(), "--json"],
                    s.dir.path(),
                );
                let printed: Value = serde_json::from_str(&printed).unwrap();
                let state = &printed["state"];
                let from_cli = (!state.is_null()).then(|| {
                    json!({
                        "status": state["status"], "paymentStatus": state["paymentStatus"],
                        "inventoryReserved": state["inventoryReserved"], "total": state["total"],
                        "captured": state["captured"], "refunded": state["refunded"],
                        "version": state["version"],
                    })
                });
                assert_eq!(
                    from_cli,
                    from_graphql(&graphql["order"]),
                    "{order} at {at}: inspect and GraphQL disagree"
                );
                assert_eq!(
                    printed["events"].as_array().unwrap().len(),
                    folded.events.len()
                );
            }
        }
        if n == 0 {
            let first = times_of(&history)[0];
            let diff = inspect(
                &[
                    "diff",
                    &order,
                    "--from",
                    &(first - Duration::microseconds(1)).to_rfc3339(),
                    "--to",
                    &Utc::now().to_rfc3339(),
                ],
                s.dir.path(),
            );
            assert!(
                diff.contains("status") && diff.contains("OrderPlaced"),
                "{diff}"
            );
        }
    }
    s.stop().await;
}

fn times_of(history: &Value) -> Vec<DateTime<Utc>> {
    history["orderHistory"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["time"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Runs `orderstore inspect` on a data directory; returns what it printed.
fn inspect(args: &[&str], dir: &std::path::Path) -> String {
    orderstore_ok(&[&["inspect"], args].concat(), dir)
}

crate::on_both_backends!(point_in_time_views_agree_with_a_fold_of_the_log);
