//! Given / when / then for every command: given these events, when this
//! command, then exactly these events or exactly this rejection.

use chrono::{DateTime, TimeZone, Utc};

use crate::money::{Currency, Money};
use crate::order::command::*;
use crate::order::*;
use crate::{CommandId, CustomerId, OrderId};

fn usd() -> Currency {
    Currency::parse("USD").unwrap()
}

fn usd_money(minor: i64) -> Money {
    Money::new(minor, usd())
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn order_id() -> OrderId {
    OrderId::parse("order-1").unwrap()
}

/// A scenario: the events so far, each recorded under its own command id.
struct Given {
    state: OrderState,
}

fn given(events: Vec<OrderEvent>) -> Given {
    given_with_commands(
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| (format!("c{i}"), e))
            .collect(),
    )
}

fn given_with_commands(events: Vec<(String, OrderEvent)>) -> Given {
    let state =
        events
            .into_iter()
            .enumerate()
            .fold(initial_state(), |state, (i, (command_id, event))| {
                let recorded = Recorded {
                    order_id: order_id(),
                    sequence: i as u64 + 1,
                    time: at(i as i64),
                    command_id: CommandId::parse(command_id).unwrap(),
                    event,
                };
                evolve(state, &recorded)
            });
    Given { state }
}

impl Given {
    fn when(&self, body: CommandBody) -> Result<Vec<OrderEvent>, Rejection> {
        self.when_id("new-command", body)
    }

    fn when_id(&self, command_id: &str, body: CommandBody) -> Result<Vec<OrderEvent>, Rejection> {
        let command = Command {
            command_id: CommandId::parse(command_id).unwrap(),
            order_id: order_id(),
            body,
        };
        decide(&command, &self.state)
    }
}

fn item(sku: &str, quantity: i64, unit_price: &str) -> LineItemInput {
    LineItemInput {
        sku: sku.to_owned(),
        quantity,
        unit_price: unit_price.to_owned(),
    }
}

fn place(items: Vec<LineItemInput>, tax_rate_bps: i64) -> CommandBody {
    CommandBody::PlaceOrder(PlaceOrder {
        customer_id: "cust-1".to_owned(),
        currency: "USD".to_owned(),
        items,
        tax_rate_bps,
    })
}

fn placed(total: i64) -> OrderEvent {
    OrderEvent::OrderPlaced(OrderPlaced {
        customer_id: CustomerId::parse("cust-1").unwrap(),
        currency: usd(),
        items: vec![LineItem {
            sku: "sku-1".to_owned(),
            quantity: 1,
            unit_price: total,
        }],
        subtotal: total,
        tax: 0,
        total,
    })
}

fn paid(total: i64) -> OrderEvent {
    OrderEvent::PaymentConfirmed {
        payment_id: "pay-1".to_owned(),
        amount: usd_money(total),
    }
}

fn reserved() -> OrderEvent {
    OrderEvent::InventoryReserved {
        items: vec![LineItem {
            sku: "sku-1".to_owned(),
            quantity: 1,
            unit_price: 1000,
        }],
    }
}

fn shipped() -> OrderEvent {
    OrderEvent::OrderShipped {
        carrier: "DHL".to_owned(),
        tracking_number: "TN1".to_owned(),
    }
}

/// The whole happy path up to delivery.
fn delivered() -> Vec<OrderEvent> {
    vec![
        placed(1000),
        paid(1000),
        reserved(),
        shipped(),
        OrderEvent::OrderDelivered,
    ]
}

fn confirm(amount: &str) -> CommandBody {
    CommandBody::ConfirmPayment(ConfirmPayment {
        payment_id: "pay-1".to_owned(),
        amount: amount.to_owned(),
    })
}

fn ship() -> CommandBody {
    CommandBody::ShipOrder(ShipOrder {
        carrier: "DHL".to_owned(),
        tracking_number: "TN1".to_owned(),
    })
}

fn cancel(reason: &str) -> CommandBody {
    CommandBody::CancelOrder(CancelOrder {
        reason: reason.to_owned(),
    })
}

fn refund(amount: &str) -> CommandBody {
    CommandBody::RefundPayment(RefundPayment {
        amount: amount.to_owned(),
        reason: "damaged".to_owned(),
    })
}

fn invalid(field: &str, reason: &str) -> Rejection {
    Rejection::ValidationFailed {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

fn state_of(g: &Given) -> &Order {
    g.state.order.as_ref().unwrap()
}

// ---- PlaceOrder ----

#[test]
fn placing_an_order_computes_subtotal_tax_and_total() {
    let events = given(vec![])
        .when(place(
            vec![item("a", 2, "10.00"), item("b", 1, "5.50")],
            825,
        ))
        .unwrap();
    // subtotal 25.50; tax 2550 x 0.0825 = 210.375 -> 210; total 27.60.
    assert_eq!(
        events,
        vec![OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: CustomerId::parse("cust-1").unwrap(),
            currency: usd(),
            items: vec![
                LineItem {
                    sku: "a".into(),
                    quantity: 2,
                    unit_price: 1000
                },
                LineItem {
                    sku: "b".into(),
                    quantity: 1,
                    unit_price: 550
                },
            ],
            subtotal: 2550,
            tax: 210,
            total: 2760,
        })]
    );
}

#[test]
fn tax_rounds_half_to_even() {
    let tax_of = |price: &str, bps: i64| match &given(vec![])
        .when(place(vec![item("a", 1, price)], bps))
        .unwrap()[0]
    {
        OrderEvent::OrderPlaced(p) => (p.tax, p.total),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(tax_of("0.25", 1000), (2, 27)); // 2.5 -> 2
    assert_eq!(tax_of("0.35", 1000), (4, 39)); // 3.5 -> 4
    assert_eq!(tax_of("0.05", 5000), (2, 7)); // 2.5 -> 2
    assert_eq!(tax_of("0.07", 5000), (4, 11)); // 3.5 -> 4
    assert_eq!(tax_of("100.00", 10000), (10000, 20000));
}

#[test]
fn a_free_item_is_allowed() {
    assert!(given(vec![])
        .when(place(vec![item("gift", 1, "0")], 0))
        .is_ok());
}

#[test]
fn placing_an_existing_order_is_refused() {
    assert_eq!(
        given(vec![placed(1000)]).when(place(vec![item("a", 1, "1")], 0)),
        Err(Rejection::OrderExists)
    );
}

#[test]
fn place_order_validates_every_field() {
    let g = given(vec![]);
    let with = |f: &dyn Fn(&mut PlaceOrder)| {
        let mut p = PlaceOrder {
            customer_id: "cust-1".into(),
            currency: "USD".into(),
            items: vec![item("a", 1, "1.00")],
            tax_rate_bps: 0,
        };
        f(&mut p);
        g.when(CommandBody::PlaceOrder(p)).unwrap_err()
    };
    assert_eq!(
        with(&|p| p.customer_id = String::new()).field(),
        Some("customerId")
    );
    assert_eq!(
        with(&|p| p.customer_id = "a b".into()).field(),
        Some("customerId")
    );
    assert_eq!(
        with(&|p| p.currency = "XYZ".into()).field(),
        Some("currency")
    );
    assert_eq!(
        with(&|p| p.currency = "usd".into()).field(),
        Some("currency")
    );
    assert_eq!(
        with(&|p| p.items.clear()),
        invalid("items", "an order needs at least one item")
    );
    assert_eq!(
        with(&|p| p.items = vec![item("a", 1, "1"); 101]),
        invalid("items", "an order has at most 100 items")
    );
    assert_eq!(
        with(&|p| p.items[0].sku = "  ".into()),
        invalid("items[0].sku", "must not be blank")
    );
    assert_eq!(
        with(&|p| p.items[0].quantity = 0),
        invalid("items[0].quantity", "must be between 1 and 1000000")
    );
    assert_eq!(
        with(&|p| p.items[0].quantity = -3).field(),
        Some("items[0].quantity")
    );
    assert_eq!(
        with(&|p| p.items[0].unit_price = "-1.00".into()),
        invalid("items[0].unitPrice", "must not be negative")
    );
    assert_eq!(
        with(&|p| p.items[0].unit_price = "1.001".into()).field(),
        Some("items[0].unitPrice")
    );
    assert_eq!(
        with(&|p| p.items[0].unit_price = "ten".into()).field(),
        Some("items[0].unitPrice")
    );
    assert_eq!(
        with(&|p| p.tax_rate_bps = 10001),
        invalid("taxRateBps", "must be between 0 and 10000")
    );
    assert_eq!(with(&|p| p.tax_rate_bps = -1).field(), Some("taxRateBps"));
    assert_eq!(
        with(&|p| p.items = vec![item("a", 1_000_000, "92233720368547758.07")]),
        invalid("items", "the order total is too large")
    );
}

#[test]
fn exactly_100_items_are_allowed() {
    assert!(given(vec![])
        .when(place(vec![item("a", 1, "1"); 100], 0))
        .is_ok());
}

// ---- ConfirmPayment ----

#[test]
fn confirming_payment_of_the_total_records_it() {
    let g = given(vec![placed(1000)]);
    assert_eq!(g.when(confirm("10.00")), Ok(vec![paid(1000)]));
    assert_eq!(g.when(confirm("10")), Ok(vec![paid(1000)]));
}

#[test]
fn payment_of_another_amount_is_a_mismatch() {
    assert_eq!(
        given(vec![placed(1000)]).when(confirm("9.99")),
        Err(Rejection::AmountMismatch {
            expected: usd_money(1000),
            given: usd_money(999)
        })
    );
}

#[test]
fn paying_twice_is_an_invalid_state() {
    let rejection = given(vec![placed(1000), paid(1000)])
        .when(confirm("10.00"))
        .unwrap_err();
    assert_eq!(rejection.code(), "INVALID_STATE");
}

#[test]
fn paying_a_cancelled_order_is_an_invalid_state() {
    let rejection = given(vec![
        placed(1000),
        OrderEvent::OrderCancelled { reason: "x".into() },
    ])
    .when(confirm("10.00"))
    .unwrap_err();
    assert_eq!(
        rejection,
        Rejection::InvalidState {
            command: "ConfirmPayment",
            status: OrderStatus::Cancelled,
            reason: "the order is no longer open for payment"
        }
    );
}

#[test]
fn confirm_payment_validates_its_fields() {
    let g = given(vec![placed(1000)]);
    assert_eq!(g.when(confirm("abc")).unwrap_err().field(), Some("amount"));
    assert_eq!(
        g.when(confirm("10.001")).unwrap_err().field(),
        Some("amount")
    );
    let blank_id = CommandBody::ConfirmPayment(ConfirmPayment {
        payment_id: "".into(),
        amount: "10.00".into(),
    });
    assert_eq!(
        g.when(blank_id),
        Err(invalid("paymentId", "must not be blank"))
    );
}

#[test]
fn commands_on_a_missing_order_are_not_found() {
    let g = given(vec![]);
    for body in [
        confirm("1.00"),
        CommandBody::ReserveInventory,
        ship(),
        CommandBody::DeliverOrder,
        cancel("x"),
        refund("1.00"),
    ] {
        assert_eq!(g.when(body), Err(Rejection::OrderNotFound));
    }
}

// ---- ReserveInventory and CONFIRMED ----

#[test]
fn reserving_inventory_copies_the_items() {
    let events = given(vec![placed(1000)])
        .when(CommandBody::ReserveInventory)
        .unwrap();
    assert_eq!(
        events,
        vec![OrderEvent::InventoryReserved {
            items: vec![LineItem {
                sku: "sku-1".into(),
                quantity: 1,
                unit_price: 1000
            }]
        }]
    );
}

#[test]
fn an_order_is_confirmed_when_paid_and_reserved_in_either_order() {
    let paid_first = given(vec![placed(1000), paid(1000), reserved()]);
    let reserved_first = given(vec![placed(1000), reserved(), paid(1000)]);
    assert_eq!(state_of(&paid_first).status, OrderStatus::Confirmed);
    assert_eq!(state_of(&reserved_first).status, OrderStatus::Confirmed);
    assert_eq!(
        state_of(&given(vec![placed(1000), paid(1000)])).status,
        OrderStatus::Placed
    );
    assert_eq!(
        state_of(&given(vec![placed(1000), reserved()])).status,
        OrderStatus::Placed
    );
}

#[test]
fn reserving_twice_or_after_confirmation_is_an_invalid_state() {
    let twice = given(vec![placed(1000), reserved()]).when(CommandBody::ReserveInventory);
    assert_eq!(twice.unwrap_err().code(), "INVALID_STATE");
    let confirmed =
        given(vec![placed(1000), paid(1000), reserved()]).when(CommandBody::ReserveInventory);
    assert_eq!(confirmed.unwrap_err().code(), "INVALID_STATE");
}

// ---- ShipOrder, DeliverOrder ----

#[test]
fn a_confirmed_order_ships_and_then_is_delivered() {
    let g = given(vec![placed(1000), paid(1000), reserved()]);
    assert_eq!(g.when(ship()), Ok(vec![shipped()]));
    let g = given(vec![placed(1000), paid(1000), reserved(), shipped()]);
    assert_eq!(state_of(&g).status, OrderStatus::Shipped);
    assert_eq!(
        g.when(CommandBody::DeliverOrder),
        Ok(vec![OrderEvent::OrderDelivered])
    );
    let g = given(delivered());
    assert_eq!(state_of(&g).status, OrderStatus::Delivered);
    assert!(is_terminal(&g.state));
}

#[test]
fn shipping_an_unconfirmed_order_is_an_invalid_state() {
    for history in [
        vec![placed(1000)],
        vec![placed(1000), paid(1000)],
        vec![placed(1000), reserved()],
    ] {
        assert_eq!(
            given(history).when(ship()).unwrap_err().code(),
            "INVALID_STATE"
        );
    }
}

#[test]
fn delivering_an_unshipped_order_is_an_invalid_state() {
    let g = given(vec![placed(1000), paid(1000), reserved()]);
    assert_eq!(
        g.when(CommandBody::DeliverOrder).unwrap_err().code(),
        "INVALID_STATE"
    );
}

#[test]
fn ship_order_validates_carrier_and_tracking_number() {
    let g = given(vec![placed(1000), paid(1000), reserved()]);
    let body = |carrier: &str, tracking: &str| {
        CommandBody::ShipOrder(ShipOrder {
            carrier: carrier.into(),
            tracking_number: tracking.into(),
        })
    };
    assert_eq!(g.when(body("", "T")).unwrap_err().field(), Some("carrier"));
    assert_eq!(
        g.when(body("DHL", "\n")).unwrap_err().field(),
        Some("trackingNumber")
    );
    assert_eq!(
        g.when(body("DHL", "a\u{7}b")),
        Err(invalid(
            "trackingNumber",
            "must not contain control characters"
        ))
    );
    assert_eq!(
        g.when(body(&"x".repeat(257), "T")),
        Err(invalid("carrier", "must be at most 256 bytes"))
    );
}

// ---- CancelOrder ----

#[test]
fn cancelling_an_unpaid_order_refunds_nothing() {
    assert_eq!(
        given(vec![placed(1000)]).when(cancel("changed mind")),
        Ok(vec![OrderEvent::OrderCancelled {
            reason: "changed mind".into()
        }])
    );
}

#[test]
fn cancelling_a_paid_order_refunds_what_is_still_captured() {
    let partially = OrderEvent::PaymentRefunded {
        amount: usd_money(300),
        reason: "x".into(),
    };
    let g = given(vec![placed(1000), paid(1000), reserved(), partially]);
    assert_eq!(
        g.when(cancel("out of stock")),
        Ok(vec![
            OrderEvent::OrderCancelled {
                reason: "out of stock".into()
            },
            OrderEvent::PaymentRefunded {
                amount: usd_money(700),
                reason: "out of stock".into()
            },
        ])
    );
}

#[test]
fn cancelling_a_shipped_delivered_or_cancelled_order_is_an_invalid_state() {
    let cancelled = OrderEvent::OrderCancelled { reason: "x".into() };
    for history in [
        vec![placed(1000), paid(1000), reserved(), shipped()],
        vec![
            placed(1000),
            paid(1000),
            reserved(),
            shipped(),
            OrderEvent::OrderDelivered,
        ],
        vec![placed(1000), cancelled],
    ] {
        assert_eq!(
            given(history).when(cancel("x")).unwrap_err().code(),
            "INVALID_STATE"
        );
    }
}

#[test]
fn cancel_needs_a_reason() {
    assert_eq!(
        given(vec![placed(1000)]).when(cancel(" ")),
        Err(invalid("reason", "must not be blank"))
    );
}

// ---- RefundPayment ----

#[test]
fn refunds_move_payment_status_through_partial_to_refunded() {
    let g = given(vec![placed(1000), paid(1000)]);
    assert_eq!(state_of(&g).payment_status(), PaymentStatus::Paid);
    assert_eq!(
        g.when(refund("4.00")),
        Ok(vec![OrderEvent::PaymentRefunded {
            amount: usd_money(400),
            reason: "damaged".into()
        }])
    );
    let partial = OrderEvent::PaymentRefunded {
        amount: usd_money(400),
        reason: "d".into(),
    };
    let g = given(vec![placed(1000), paid(1000), partial.clone()]);
    assert_eq!(
        state_of(&g).payment_status(),
        PaymentStatus::PartiallyRefunded
    );
    let rest = OrderEvent::PaymentRefunded {
        amount: usd_money(600),
        reason: "d".into(),
    };
    let g = given(vec![placed(1000), paid(1000), partial, rest]);
    assert_eq!(state_of(&g).payment_status(), PaymentStatus::Refunded);
    assert_eq!(state_of(&g).refunded, 1000);
}

#[test]
fn refunding_more_than_captured_is_refused() {
    let g = given(vec![placed(1000), paid(1000)]);
    assert_eq!(
        g.when(refund("10.01")),
        Err(Rejection::RefundExceedsCaptured {
            requested: usd_money(1001),
            refundable: usd_money(1000)
        })
    );
    assert!(g.when(refund("10.00")).is_ok());
}

#[test]
fn refunding_an_unpaid_order_is_an_invalid_state() {
    assert_eq!(
        given(vec![placed(1000)]).when(refund("1.00")),
        Err(Rejection::InvalidState {
            command: "RefundPayment",
            status: OrderStatus::Placed,
            reason: "the order has not been paid"
        })
    );
}

#[test]
fn refund_amount_must_be_positive_and_well_formed() {
    let g = given(vec![placed(1000), paid(1000)]);
    assert_eq!(
        g.when(refund("0")),
        Err(invalid("amount", "must be greater than zero"))
    );
    assert_eq!(
        g.when(refund("-1")),
        Err(invalid("amount", "must not be negative"))
    );
    assert_eq!(g.when(refund("1.234")).unwrap_err().field(), Some("amount"));
}

#[test]
fn a_delivered_order_can_still_be_refunded() {
    let g = given(delivered());
    assert!(g.when(refund("1.00")).is_ok());
}

// ---- Idempotency ----

#[test]
fn a_repeated_command_id_writes_nothing_and_remembers_its_events() {
    let g = given_with_commands(vec![
        ("place-1".into(), placed(1000)),
        (
            "cancel-1".into(),
            OrderEvent::OrderCancelled { reason: "x".into() },
        ),
    ]);
    assert_eq!(
        g.when_id("place-1", place(vec![item("a", 1, "1")], 0)),
        Ok(vec![])
    );
    assert_eq!(g.when_id("cancel-1", cancel("x")), Ok(vec![]));
    assert_eq!(
        g.state.outcome_of(&CommandId::parse("cancel-1").unwrap()),
        Some((2, 2))
    );
    // A new id is decided on its own merits.
    assert_eq!(
        g.when_id("cancel-2", cancel("x")).unwrap_err().code(),
        "INVALID_STATE"
    );
}

#[test]
fn a_command_with_two_events_remembers_both_sequences() {
    let g = given_with_commands(vec![
        ("p".into(), placed(1000)),
        ("pay".into(), paid(1000)),
        (
            "c".into(),
            OrderEvent::OrderCancelled { reason: "x".into() },
        ),
        (
            "c".into(),
            OrderEvent::PaymentRefunded {
                amount: usd_money(1000),
                reason: "x".into(),
            },
        ),
    ]);
    assert_eq!(
        g.state.outcome_of(&CommandId::parse("c").unwrap()),
        Some((3, 4))
    );
    assert_eq!(g.state.version, 4);
}

#[test]
fn state_tracks_times_and_version() {
    let g = given(vec![placed(1000), paid(1000), reserved()]);
    let order = state_of(&g);
    assert_eq!(order.placed_at, at(0));
    assert_eq!(order.updated_at, at(2));
    assert_eq!(g.state.version, 3);
    assert_eq!(order.id, order_id());
}

#[test]
fn every_rejection_has_its_stable_code() {
    let codes: Vec<&str> = [
        Rejection::OrderNotFound,
        Rejection::OrderExists,
        Rejection::InvalidState {
            command: "X",
            status: OrderStatus::Placed,
            reason: "r",
        },
        invalid("f", "r"),
        Rejection::AmountMismatch {
            expected: usd_money(1),
            given: usd_money(2),
        },
        Rejection::RefundExceedsCaptured {
            requested: usd_money(1),
            refundable: usd_money(0),
        },
    ]
    .iter()
    .map(Rejection::code)
    .collect();
    assert_eq!(
        codes,
        [
            "ORDER_NOT_FOUND",
            "ORDER_EXISTS",
            "INVALID_STATE",
            "VALIDATION_FAILED",
            "AMOUNT_MISMATCH",
            "REFUND_EXCEEDS_CAPTURED"
        ]
    );
}
