//! Property tests for the laws of the decider and the codec (style.md 9).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use chrono::{DateTime, TimeZone, Utc};
use domain::codec::{self, wire, CodecError, KNOWN_VERSIONS};
use domain::order::{
    CancelOrder, ConfirmPayment, LineItem, LineItemInput, OrderPlaced, PlaceOrder, RefundPayment,
    ShipOrder,
};
use domain::{
    decide, evolve, initial_state, Command, CommandBody, CommandId, Currency, CustomerId, Envelope,
    Header, Money, OrderEvent, OrderId, OrderState, OrderStatus, PaymentStatus, Recorded,
    RecordedEvent,
};
use proptest::prelude::*;

/// A command shape whose amounts are filled in from the state at run time,
/// so that random sequences reach every status.
#[derive(Debug, Clone)]
enum Step {
    Place {
        items: Vec<(i64, i64)>,
        tax: i64,
        currency: &'static str,
    },
    PayExact,
    PayAmount(i64),
    Reserve,
    Ship,
    Deliver,
    Cancel,
    RefundPart(u8),
    RefundAmount(i64),
    RepeatEarlier(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            prop::collection::vec((-2i64..5, -100i64..100_000), 0..4),
            -10i64..10_010,
            prop::sample::select(vec!["USD", "JPY", "KWD", "EUR", "XYZ"])
        )
            .prop_map(|(items, tax, currency)| Step::Place {
                items,
                tax,
                currency
            }),
        Just(Step::PayExact),
        (-10i64..1_000_000).prop_map(Step::PayAmount),
        Just(Step::Reserve),
        Just(Step::Ship),
        Just(Step::Deliver),
        Just(Step::Cancel),
        any::<u8>().prop_map(Step::RefundPart),
        (-10i64..1_000_000).prop_map(Step::RefundAmount),
        (0usize..20).prop_map(Step::RepeatEarlier),
    ]
}

fn minor_text(minor: i64, state: &OrderState) -> String {
    let currency = state
        .order
        .as_ref()
        .map(|o| o.currency)
        .unwrap_or_else(|| Currency::parse("USD").unwrap());
    Money::new(minor, currency).to_decimal_string()
}

fn body(step: &Step, state: &OrderState) -> CommandBody {
    let total = state.order.as_ref().map_or(0, |o| o.total);
    let refundable = state.order.as_ref().map_or(0, |o| o.captured - o.refunded);
    match step {
        Step::Place {
            items,
            tax,
            currency,
        } => CommandBody::PlaceOrder(PlaceOrder {
            customer_id: "cust-1".into(),
            currency: (*currency).into(),
            items: items
                .iter()
                .map(|(q, p)| LineItemInput {
                    sku: "sku".into(),
                    quantity: *q,
                    unit_price: Money::new(*p, Currency::parse("USD").unwrap()).to_decimal_string(),
                })
                .collect(),
            tax_rate_bps: *tax,
        }),
        Step::PayExact => CommandBody::ConfirmPayment(ConfirmPayment {
            payment_id: "p".into(),
            amount: minor_text(total, state),
        }),
        Step::PayAmount(a) => CommandBody::ConfirmPayment(ConfirmPayment {
            payment_id: "p".into(),
            amount: minor_text(*a, state),
        }),
        Step::Reserve => CommandBody::ReserveInventory,
        Step::Ship => CommandBody::ShipOrder(ShipOrder {
            carrier: "c".into(),
            tracking_number: "t".into(),
        }),
        Step::Deliver => CommandBody::DeliverOrder,
        Step::Cancel => CommandBody::CancelOrder(CancelOrder { reason: "r".into() }),
        Step::RefundPart(share) => CommandBody::RefundPayment(RefundPayment {
            amount: minor_text(refundable * i64::from(*share) / 255, state),
            reason: "r".into(),
        }),
        Step::RefundAmount(a) => CommandBody::RefundPayment(RefundPayment {
            amount: minor_text(*a, state),
            reason: "r".into(),
        }),
        Step::RepeatEarlier(_) => CommandBody::DeliverOrder,
    }
}

fn time(i: usize) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + i as i64, 1000).unwrap()
}

/// Runs the steps through decide/evolve; returns every recorded event.
fn run(steps: &[Step]) -> (OrderState, Vec<Recorded>, Vec<OrderState>) {
    let order_id = OrderId::parse("o-1").unwrap();
    let mut state = initial_state();
    let mut history = Vec::new();
    let mut states_after = Vec::new();
    let mut issued: Vec<Command> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let command = match step {
            Step::RepeatEarlier(k) if !issued.is_empty() => issued[k % issued.len()].clone(),
            _ => Command {
                command_id: CommandId::parse(format!("cmd-{i}")).unwrap(),
                order_id: order_id.clone(),
                body: body(step, &state),
            },
        };
        issued.push(command.clone());
        let already_applied = state.applied_commands.contains_key(&command.command_id);
        match decide(&command, &state) {
            Ok(events) => {
                if already_applied {
                    assert!(events.is_empty(), "a repeated command must write nothing");
                }
                for event in events {
                    let recorded = Recorded {
                        order_id: order_id.clone(),
                        sequence: state.version + 1,
                        time: time(history.len()),
                        command_id: command.command_id.clone(),
                        event,
                    };
                    state = evolve(state, &recorded);
                    history.push(recorded);
                    states_after.push(state.clone());
                }
            }
            Err(rejection) => assert!(!already_applied, "a repeat returned {rejection:?}"),
        }
        check_invariants(&state);
    }
    (state, history, states_after)
}

fn check_invariants(state: &OrderState) {
    let Some(order) = &state.order else {
        assert_eq!(state.version, 0);
        return;
    };
    assert!(order.refunded >= 0 && order.refunded <= order.captured);
    assert!(order.captured == 0 || order.captured == order.total);
    assert_eq!(order.total, order.subtotal + order.tax);
    if order.status == OrderStatus::Confirmed || order.status == OrderStatus::Shipped {
        assert!(order.paid && order.inventory_reserved);
    }
    if order.payment_status() == PaymentStatus::Unpaid {
        assert_eq!(order.refunded, 0);
    }
}

fn fold(history: &[Recorded]) -> OrderState {
    history.iter().fold(initial_state(), evolve)
}

fn money() -> impl Strategy<Value = Money> {
    (
        any::<i64>(),
        prop::sample::select(vec!["USD", "JPY", "KWD", "EUR"]),
    )
        .prop_map(|(m, c)| Money::new(m, Currency::parse(c).unwrap()))
}

fn line_items() -> impl Strategy<Value = Vec<LineItem>> {
    prop::collection::vec(
        (".{0,12}", any::<u32>(), any::<i64>()).prop_map(|(sku, quantity, unit_price)| LineItem {
            sku,
            quantity,
            unit_price,
        }),
        0..5,
    )
}

fn order_event() -> impl Strategy<Value = OrderEvent> {
    prop_oneof![
        (
            "[a-z0-9]{1,10}",
            money(),
            line_items(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>()
        )
            .prop_map(
                |(customer, m, items, subtotal, tax, total)| OrderEvent::OrderPlaced(OrderPlaced {
                    customer_id: CustomerId::parse(customer).unwrap(),
                    currency: m.currency,
                    items,
                    subtotal,
                    tax,
                    total,
                })
            ),
        (".{0,20}", money())
            .prop_map(|(payment_id, amount)| OrderEvent::PaymentConfirmed { payment_id, amount }),
        line_items().prop_map(|items| OrderEvent::InventoryReserved { items }),
        (".{0,20}", ".{0,20}").prop_map(|(carrier, tracking_number)| OrderEvent::OrderShipped {
            carrier,
            tracking_number
        }),
        Just(OrderEvent::OrderDelivered),
        ".{0,40}".prop_map(|reason| OrderEvent::OrderCancelled { reason }),
        (money(), ".{0,40}")
            .prop_map(|(amount, reason)| OrderEvent::PaymentRefunded { amount, reason }),
    ]
}

/// One event of order o-1 at `sequence` and `micros`, recorded and enveloped.
fn recorded_event(event: OrderEvent, sequence: u64, micros: i64) -> (Recorded, RecordedEvent) {
    let recorded = Recorded {
        order_id: OrderId::parse("o-1").unwrap(),
        sequence,
        time: Utc.timestamp_micros(micros).unwrap(),
        command_id: CommandId::parse("c-1").unwrap(),
        event,
    };
    let meta = domain::EventMeta {
        id: "e-1".into(),
        correlation_id: "corr".into(),
        trace: Some(domain::TraceContext::fresh(
            u128::from(micros.unsigned_abs()),
            7,
        )),
    };
    let enveloped = RecordedEvent::new(&recorded, meta);
    (recorded, enveloped)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_command_sequences_never_panic_and_keep_the_invariants(steps in prop::collection::vec(step(), 0..40)) {
        run(&steps);
    }

    #[test]
    fn folding_the_same_history_twice_gives_the_same_state(steps in prop::collection::vec(step(), 0..40)) {
        let (state, history, _) = run(&steps);
        prop_assert_eq!(fold(&history), state.clone());
        prop_assert_eq!(fold(&history), fold(&history));
    }

    #[test]
    fn the_state_after_a_prefix_is_the_fold_of_that_prefix(steps in prop::collection::vec(step(), 0..40)) {
        let (_, history, states_after) = run(&steps);
        for (n, expected) in states_after.iter().enumerate() {
            prop_assert_eq!(&fold(&history[..=n]), expected);
        }
    }

    #[test]
    fn encode_then_decode_is_the_identity(event in order_event()) {
        let encoded = codec::encode(&event);
        let decoded = codec::decode(encoded.event_type.as_str(), encoded.schema_version, &encoded.bytes);
        prop_assert_eq!(decoded, Ok(event));
    }

    #[test]
    fn order_placed_v1_upcasts_to_v2(customer in "[a-z0-9]{1,10}", amount in any::<i64>(), currency in prop::sample::select(vec!["USD", "JPY"])) {
        let bytes = codec::encode_wire(&wire::OrderPlacedV1 {
            order_id: "o-1".into(),
            customer_id: customer.clone(),
            amount,
            currency: currency.into(),
        });
        let decoded = codec::decode("com.orderstore.order.placed", 1, &bytes);
        prop_assert_eq!(decoded, Ok(OrderEvent::OrderPlaced(OrderPlaced {
            customer_id: CustomerId::parse(customer).unwrap(),
            currency: Currency::parse(currency).unwrap(),
            items: vec![],
            subtotal: amount,
            tax: 0,
            total: amount,
        })));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for (event_type, version) in KNOWN_VERSIONS {
            let _ = codec::decode(event_type.as_str(), *version, &bytes);
        }
        let _ = codec::decode("com.orderstore.order.placed", 99, &bytes);
    }

    #[test]
    fn envelope_headers_round_trip(event in order_event(), sequence in 1u64..u64::MAX, micros in 0i64..4_000_000_000_000_000) {
        let (recorded, original) = recorded_event(event, sequence, micros);
        let (headers, bytes) = original.encode();
        let decoded = RecordedEvent::decode(&headers, &bytes).unwrap();
        prop_assert_eq!(decoded.to_recorded().unwrap(), recorded);
        prop_assert_eq!(decoded, original);
    }

    #[test]
    fn the_structured_json_reads_back_as_the_typed_structured_event(event in order_event(), sequence in 1u64..u64::MAX, micros in 0i64..4_000_000_000_000_000) {
        let (_, original) = recorded_event(event, sequence, micros);
        let json = original.to_cloudevent_json();
        prop_assert_eq!(domain::envelope::StructuredEvent::from_json(&json).unwrap(), original.to_structured());
        for (name, bad) in [("sequence", serde_json::json!("x")), ("time", serde_json::json!("yesterday")), ("id", serde_json::json!(7))] {
            let mut damaged = json.clone();
            damaged[name] = bad;
            prop_assert!(domain::envelope::StructuredEvent::from_json(&damaged).is_err(), "{} accepted", name);
        }
        let mut missing = json.clone();
        missing.as_object_mut().unwrap().remove("causationid");
        prop_assert!(domain::envelope::StructuredEvent::from_json(&missing).is_err());
    }

    #[test]
    fn the_http_binary_mode_carries_what_the_structured_form_does(event in order_event(), sequence in 1u64..u64::MAX, micros in 0i64..4_000_000_000_000_000) {
        let (_, original) = recorded_event(event, sequence, micros);
        let json = original.to_cloudevent_json();
        let (headers, body) = original.to_http_binary();
        let mut attributes = 0;
        for (name, value) in &headers {
            if let Some(attribute) = name.strip_prefix("ce-") {
                prop_assert_eq!(json[attribute].as_str(), Some(value.as_str()), "{}", name);
                attributes += 1;
            }
        }
        // Every attribute but the content type (a header of its own) and the data.
        let object = json.as_object().unwrap();
        prop_assert_eq!(attributes, object.len() - 2);
        prop_assert!(headers.contains(&("content-type", "application/json".to_owned())));
        prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap(), json["data"].clone());
    }

    #[test]
    fn arbitrary_headers_never_panic_the_envelope_reader(
        headers in prop::collection::vec(("ce_[a-z]{2,14}|content-type", prop::collection::vec(any::<u8>(), 0..40)), 0..14)
    ) {
        let headers: Vec<Header> = headers.into_iter().map(|(k, v)| Header { key: k, value: v }).collect();
        let _ = Envelope::from_headers(&headers);
    }
}

/// The case proptest found: a time with whole milliseconds, which the
/// structured form writes as `.135Z`.
#[test]
fn the_http_binary_time_is_the_structured_forms_for_whole_milliseconds() {
    for micros in [
        3_402_781_613_135_000,
        3_402_781_613_000_000,
        3_402_781_613_135_001,
    ] {
        let (_, event) =
            recorded_event(OrderEvent::OrderCancelled { reason: "r".into() }, 1, micros);
        let json = event.to_cloudevent_json();
        let (headers, _) = event.to_http_binary();
        let time = headers.iter().find(|(name, _)| *name == "ce-time").unwrap();
        assert_eq!(json["time"].as_str(), Some(time.1.as_str()), "{micros}");
    }
}

#[test]
fn unknown_types_and_versions_are_typed_errors() {
    assert_eq!(
        codec::decode("com.example.other", 1, &[]),
        Err(CodecError::UnknownType("com.example.other".into()))
    );
    assert_eq!(
        codec::decode("com.orderstore.order.placed", 3, &[]),
        Err(CodecError::UnknownVersion {
            event_type: "com.orderstore.order.placed".into(),
            version: 3
        })
    );
    assert!(matches!(
        codec::decode("com.orderstore.order.delivered", 1, &[1, 2, 3]),
        Err(CodecError::Malformed { .. })
    ));
    assert!(matches!(
        codec::decode("com.orderstore.order.placed", 2, &[]),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating() {
    // varint 0xFD then a u64 length of ~2^62 for the first string.
    let bytes = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40];
    assert!(matches!(
        codec::decode("com.orderstore.order.cancelled", 1, &bytes),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn an_unknown_currency_in_a_payload_is_malformed() {
    let bytes = codec::encode_wire(&wire::PaymentRefundedV1 {
        amount: 1,
        currency: "XYZ".into(),
        reason: "r".into(),
    });
    assert!(matches!(
        codec::decode("com.orderstore.payment.refunded", 1, &bytes),
        Err(CodecError::Malformed { .. })
    ));
}

#[test]
fn random_sequences_reach_every_status_so_the_properties_mean_something() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::HashSet::new();
    let mut payment = std::collections::HashSet::new();
    for _ in 0..3000 {
        let steps = prop::collection::vec(step(), 0..40)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (_, _, states) = run(&steps);
        for state in states {
            let order = state.order.unwrap();
            seen.insert(order.status);
            payment.insert(order.payment_status());
        }
    }
    assert_eq!(seen.len(), 5, "statuses reached: {seen:?}");
    assert_eq!(payment.len(), 4, "payment statuses reached: {payment:?}");
}
