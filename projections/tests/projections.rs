//! Given events, then rows: each projection, temporal reads, duplicates and
//! sequenced dead-lettering, through the same `apply_batch` the worker uses.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use domain::order::{LineItem, OrderPlaced};
use domain::{
    CommandId, Currency, CustomerId, EventMeta, Header, Money, OrderEvent, OrderId, OrderStatus,
    Recorded, RecordedEvent,
};
use eventlog::{Record, StoredRecord};
use projections::customer::{self, Customer};
use projections::finance::{self, Finance};
use projections::history::{self, History};
use projections::worker::{apply_batch, Projection};
use projections::ProjectionStore;

fn t(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::parse("USD").unwrap())
}

fn placed(customer: &str, total: i64, tax: i64) -> OrderEvent {
    OrderEvent::OrderPlaced(OrderPlaced {
        customer_id: CustomerId::parse(customer).unwrap(),
        currency: Currency::parse("USD").unwrap(),
        items: vec![LineItem {
            sku: "s".into(),
            quantity: 1,
            unit_price: total - tax,
        }],
        subtotal: total - tax,
        tax,
        total,
    })
}

/// A stored record of an event at (partition, offset).
fn stored(
    order: &str,
    sequence: u64,
    time: DateTime<Utc>,
    event: OrderEvent,
    partition: u32,
    offset: u64,
) -> StoredRecord {
    let recorded = Recorded {
        order_id: OrderId::parse(order).unwrap(),
        sequence,
        time,
        command_id: CommandId::parse(format!("cmd-{order}-{sequence}")).unwrap(),
        event,
    };
    let event = RecordedEvent::new(
        &recorded,
        EventMeta {
            id: format!("e-{order}-{sequence}"),
            correlation_id: "corr".into(),
            trace: None,
        },
    );
    let (headers, payload) = event.encode();
    StoredRecord {
        topic: "events".into(),
        partition,
        offset,
        record: Record {
            key: order.as_bytes().to_vec(),
            value: Some(payload),
            headers,
            timestamp_ms: time.timestamp_millis(),
        },
    }
}

fn lifecycle() -> Vec<StoredRecord> {
    vec![
        stored("o1", 1, t(1, 10), placed("alice", 1100, 100), 0, 0),
        stored(
            "o1",
            2,
            t(1, 11),
            OrderEvent::PaymentConfirmed {
                payment_id: "p".into(),
                amount: usd(1100),
            },
            0,
            1,
        ),
        stored(
            "o1",
            3,
            t(1, 12),
            OrderEvent::InventoryReserved { items: vec![] },
            0,
            2,
        ),
        stored("o2", 1, t(2, 9), placed("alice", 500, 0), 1, 0),
        stored(
            "o1",
            4,
            t(2, 10),
            OrderEvent::PaymentRefunded {
                amount: usd(300),
                reason: "r".into(),
            },
            0,
            3,
        ),
        stored(
            "o2",
            2,
            t(2, 11),
            OrderEvent::OrderCancelled { reason: "r".into() },
            1,
            1,
        ),
    ]
}

fn apply(
    projection: &dyn Projection,
    records: Vec<StoredRecord>,
) -> (tempfile::TempDir, ProjectionStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    apply_batch(projection, &store, records).unwrap();
    (dir, store)
}

#[test]
fn history_keeps_each_orders_events_and_reads_them_as_of_a_time() {
    let (_dir, store) = apply(&History, lifecycle());
    let all = history::events(&store, "o1", DateTime::<Utc>::MAX_UTC).unwrap();
    assert_eq!(
        all.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    let early = history::events(&store, "o1", t(1, 11)).unwrap();
    assert_eq!(early.len(), 2);
    assert_eq!(early[1].decode().unwrap().envelope.sequence, 2);
    assert!(history::events(&store, "o1", t(1, 9)).unwrap().is_empty());
}

/// The reference: the order folded from its history rows with time <= at
/// (as the log's fold does), its order and version.
fn folded(store: &ProjectionStore, order: &str, at: DateTime<Utc>) -> Option<(domain::Order, u64)> {
    let state = history::fold(&history::events(store, order, at).unwrap())
        .unwrap()
        .state;
    state.order.map(|o| (o, state.version))
}

/// Every time at which an answer may change, and around it.
fn probe_times(records: &[StoredRecord]) -> Vec<DateTime<Utc>> {
    let mut times = vec![DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC];
    for record in records {
        let time = DateTime::from_timestamp_millis(record.record.timestamp_ms).unwrap();
        times.extend([
            time - Duration::microseconds(1),
            time,
            time + Duration::microseconds(1),
        ]);
    }
    times
}

fn assert_state_rows_answer_like_a_fold(store: &ProjectionStore, records: &[StoredRecord]) {
    for order in ["o1", "o2", "o3", "nope"] {
        for at in probe_times(records) {
            assert_eq!(
                history::order_as_of(store, order, at).unwrap(),
                folded(store, order, at),
                "{order} at {at}"
            );
        }
    }
}

#[test]
fn the_state_row_answers_current_and_as_of_reads_like_a_fold_of_the_history() {
    // One batch, and one batch per event (reads through the store, not the
    // batch's overlay).
    let (_dir, store) = apply(&History, lifecycle());
    assert_state_rows_answer_like_a_fold(&store, &lifecycle());
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    for record in lifecycle() {
        apply_batch(&History, &store, vec![record]).unwrap();
    }
    assert_state_rows_answer_like_a_fold(&store, &lifecycle());
    let (order, version) = history::order_as_of(&store, "o1", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!((order.captured, order.refunded, version), (1100, 300, 4));
    let (order, version) = history::order_as_of(&store, "o1", t(1, 11))
        .unwrap()
        .unwrap();
    assert_eq!((order.captured, order.refunded, version), (1100, 0, 2));
    assert_eq!(history::order_as_of(&store, "o1", t(1, 9)).unwrap(), None);
}

#[test]
fn an_event_earlier_than_its_orders_latest_time_keeps_every_read_exact() {
    // o3's third event is earlier than its second: the current state still
    // has all three, and as-of reads fold (the fold filters by time).
    let records = vec![
        stored("o3", 1, t(3, 10), placed("carol", 900, 0), 2, 0),
        stored(
            "o3",
            2,
            t(3, 14),
            OrderEvent::InventoryReserved { items: vec![] },
            2,
            1,
        ),
        stored(
            "o3",
            3,
            t(3, 12),
            OrderEvent::PaymentConfirmed {
                payment_id: "p".into(),
                amount: usd(900),
            },
            2,
            2,
        ),
        stored("o3", 4, t(3, 16), OrderEvent::OrderDelivered, 2, 3),
    ];
    for per_event in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        if per_event {
            for record in records.clone() {
                apply_batch(&History, &store, vec![record]).unwrap();
            }
        } else {
            apply_batch(&History, &store, records.clone()).unwrap();
        }
        assert_state_rows_answer_like_a_fold(&store, &records);
        let (order, version) = history::order_as_of(&store, "o3", t(3, 13))
            .unwrap()
            .unwrap();
        assert_eq!(
            (order.captured, order.inventory_reserved, version),
            (900, false, 3)
        );
    }
}

/// The history projection as it was before state rows: history rows only.
#[derive(Debug)]
struct HistoryRowsOnly;

impl Projection for HistoryRowsOnly {
    fn name(&self) -> &'static str {
        history::NAME
    }

    fn apply(
        &self,
        read: &projections::worker::ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<projections::worker::Change>, projections::worker::ApplyError> {
        let changes = History.apply(read, event, partition, offset)?;
        Ok(changes
            .into_iter()
            .filter(|c| c.key.table == history::TABLE)
            .collect())
    }
}

#[test]
fn a_store_written_before_state_rows_existed_still_answers_exactly() {
    let records = lifecycle();
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    // o1's first two events and o2's first were written by the old version.
    let (old, new): (Vec<_>, Vec<_>) = records
        .iter()
        .cloned()
        .partition(|r| r.offset < 2 && !(r.partition == 1 && r.offset == 1));
    apply_batch(&HistoryRowsOnly, &store, old).unwrap();
    assert_state_rows_answer_like_a_fold(&store, &records);
    apply_batch(&History, &store, new).unwrap();
    assert_state_rows_answer_like_a_fold(&store, &records);
    let (order, version) = history::order_as_of(&store, "o1", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!((order.refunded, version), (300, 4));
}

#[test]
fn rows_with_many_versions_and_keys_that_extend_others_are_each_read_once() {
    // o1's row has five versions; o10's key extends o1's.
    let mut records = lifecycle();
    records.push(stored("o10", 1, t(3, 9), placed("alice", 700, 0), 2, 0));
    records.push(stored(
        "o10",
        2,
        t(3, 10),
        OrderEvent::InventoryReserved { items: vec![] },
        2,
        1,
    ));
    let (_dir, store) = apply(&Customer, records);
    let now = customer::view(&store, "alice", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    let ids: Vec<&str> = now.orders.iter().map(|o| o.order_id.as_str()).collect();
    assert_eq!(ids, ["o1", "o2", "o10"]);
    let before = customer::view(&store, "alice", t(3, 9)).unwrap().unwrap();
    assert_eq!(before.orders.len(), 3);
    assert_eq!(before.orders[2].status, OrderStatus::Placed);
}

#[test]
fn the_customer_view_counts_orders_open_orders_and_lifetime_value() {
    let (_dir, store) = apply(&Customer, lifecycle());
    let now = customer::view(&store, "alice", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!(now.orders.len(), 2);
    assert_eq!(now.orders[0].status, OrderStatus::Confirmed);
    assert_eq!(now.orders[1].status, OrderStatus::Cancelled);
    assert_eq!(now.open_orders, 1);
    assert_eq!(now.lifetime_value.get("USD"), Some(&800));

    let day_one = customer::view(&store, "alice", t(1, 11)).unwrap().unwrap();
    assert_eq!(day_one.orders.len(), 1);
    assert_eq!(
        day_one.orders[0].status,
        OrderStatus::Placed,
        "paid but not yet reserved"
    );
    assert_eq!(day_one.lifetime_value.get("USD"), Some(&1100));
    assert!(customer::view(&store, "alice", t(1, 9)).unwrap().is_none());
    assert!(customer::view(&store, "bob", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .is_none());
}

#[test]
fn finance_rows_are_per_day_and_currency_merged_over_partitions() {
    let mut records = lifecycle();
    records.push(stored("o3", 1, t(1, 15), placed("bob", 200, 0), 2, 0));
    let (_dir, store) = apply(&Finance, records);
    let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let rows = finance::report(&store, day(1), day(2), None, DateTime::<Utc>::MAX_UTC).unwrap();
    let d1 = rows[&(day(1), "USD".to_owned())];
    assert_eq!(
        (d1.orders_placed, d1.gross, d1.tax, d1.captured),
        (2, 1300, 100, 1100)
    );
    let d2 = rows[&(day(2), "USD".to_owned())];
    assert_eq!(
        (
            d2.orders_placed,
            d2.gross,
            d2.refunded,
            d2.cancelled,
            d2.net()
        ),
        (1, 500, 300, 1, Ok(-300))
    );

    let as_of = finance::report(
        &store,
        day(1),
        day(2),
        Some("USD"),
        t(1, 10) + Duration::minutes(30),
    )
    .unwrap();
    assert_eq!(as_of.len(), 1);
    assert_eq!(as_of[&(day(1), "USD".to_owned())].gross, 1100);
    assert!(finance::report(
        &store,
        day(1),
        day(2),
        Some("EUR"),
        DateTime::<Utc>::MAX_UTC
    )
    .unwrap()
    .is_empty());
}

#[test]
fn applying_the_same_events_twice_equals_applying_them_once() {
    let dir = tempfile::tempdir().unwrap();
    let once = ProjectionStore::open(&dir.path().join("once")).unwrap();
    let twice = ProjectionStore::open(&dir.path().join("twice")).unwrap();
    apply_batch(&Customer, &once, lifecycle()).unwrap();
    apply_batch(&Customer, &twice, lifecycle()).unwrap();
    apply_batch(&Customer, &twice, lifecycle()).unwrap();
    let mut doubled = lifecycle();
    doubled.extend(lifecycle());
    let third = ProjectionStore::open(&dir.path().join("third")).unwrap();
    apply_batch(&Customer, &third, doubled).unwrap();
    let view = |s: &ProjectionStore| customer::view(s, "alice", DateTime::<Utc>::MAX_UTC).unwrap();
    assert_eq!(view(&once), view(&twice));
    assert_eq!(view(&once), view(&third));
}

#[test]
fn poison_events_are_dead_lettered_and_park_their_order_while_others_flow() {
    let mut garbage = stored("o1", 2, t(1, 11), OrderEvent::OrderDelivered, 0, 1);
    garbage.record.value = Some(vec![0xFF, 0xFF, 0xFF]);
    let mut unknown = stored("o9", 1, t(1, 11), OrderEvent::OrderDelivered, 1, 5);
    unknown.record.headers.retain(|h| h.key != "ce_type");
    unknown
        .record
        .headers
        .push(Header::new("ce_type", "com.example.unknown"));
    let records = vec![
        stored("o1", 1, t(1, 10), placed("alice", 1100, 100), 0, 0),
        garbage,
        stored(
            "o1",
            3,
            t(1, 12),
            OrderEvent::InventoryReserved { items: vec![] },
            0,
            2,
        ),
        stored("o2", 1, t(1, 13), placed("alice", 500, 0), 0, 3),
        unknown,
        // Breaks a projection rule: an order that was never placed.
        stored(
            "o7",
            2,
            t(1, 14),
            OrderEvent::OrderShipped {
                carrier: "c".into(),
                tracking_number: "t".into(),
            },
            0,
            4,
        ),
    ];
    let (_dir, store) = apply(&Customer, records);
    let letters = store.dead_letters().unwrap();
    let positions: Vec<(u32, u64)> = letters.iter().map(|l| (l.partition, l.offset)).collect();
    assert_eq!(positions, vec![(0, 1), (0, 2), (0, 4), (1, 5)]);
    assert!(letters[1].error.contains("parked"), "{}", letters[1].error);
    assert_eq!(
        letters[3].event_type.as_deref(),
        Some("com.example.unknown")
    );
    assert_eq!(
        letters[0].payload.as_deref(),
        Some(&[0xFF, 0xFF, 0xFF][..]),
        "original bytes are kept"
    );
    let view = customer::view(&store, "alice", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!(view.orders.len(), 2, "o2 kept flowing");
    assert_eq!(
        view.orders[0].status,
        OrderStatus::Placed,
        "o1 stopped at its last good event"
    );
    assert_eq!(store.checkpoint(0).unwrap(), Some(5));
    assert_eq!(store.checkpoint(1).unwrap(), Some(6));
}

/// The customer projection with a bug that can be "deployed away": while
/// `broken`, it refuses InventoryReserved events.
#[derive(Debug, Default)]
struct Flaky {
    broken: std::sync::atomic::AtomicBool,
}

impl Projection for Flaky {
    fn name(&self) -> &'static str {
        "customer"
    }

    fn apply(
        &self,
        read: &projections::worker::ReadRow<'_>,
        event: &RecordedEvent,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<projections::worker::Change>, projections::worker::ApplyError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst)
            && matches!(event.event, OrderEvent::InventoryReserved { .. })
        {
            return Err(projections::worker::ApplyError::Rule("a bug".into()));
        }
        Customer.apply(read, event, partition, offset)
    }
}

#[test]
fn retrying_dead_letters_after_a_fix_applies_them_in_order_and_unparks_the_order() {
    let flaky = Flaky::default();
    flaky
        .broken
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut garbage = stored("o9", 1, t(1, 9), OrderEvent::OrderDelivered, 1, 0);
    garbage.record.value = Some(vec![1, 2, 3]);
    let records = vec![
        stored("o1", 1, t(1, 10), placed("alice", 1100, 100), 0, 0),
        stored(
            "o1",
            2,
            t(1, 11),
            OrderEvent::InventoryReserved { items: vec![] },
            0,
            1,
        ),
        stored(
            "o1",
            3,
            t(1, 12),
            OrderEvent::PaymentConfirmed {
                payment_id: "p".into(),
                amount: usd(1100),
            },
            0,
            2,
        ),
        stored("o2", 1, t(1, 13), placed("alice", 500, 0), 0, 3),
        garbage,
    ];
    let (_dir, store) = apply(&flaky, records);
    assert_eq!(
        store.dead_letters().unwrap().len(),
        3,
        "o1's reservation, the payment parked behind it, the garbage"
    );
    assert!(store.is_parked("o1").unwrap());

    // Retrying before the fix changes nothing.
    let report = projections::dlq::retry(&flaky, &store, None).unwrap();
    assert_eq!((report.applied, report.still_parked), (0, 3));
    assert!(store.is_parked("o1").unwrap());

    // After the fix, o1's parked events apply in order; the garbage stays.
    flaky
        .broken
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let report = projections::dlq::retry(&flaky, &store, None).unwrap();
    assert_eq!((report.applied, report.still_parked), (2, 1));
    assert!(!store.is_parked("o1").unwrap());
    let view = customer::view(&store, "alice", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!(
        view.orders[0].status,
        OrderStatus::Confirmed,
        "reserved, then paid"
    );
    assert_eq!(view.lifetime_value.get("USD"), Some(&1100));

    // The garbage can only be discarded, on purpose.
    let discarded = projections::dlq::discard(&store, 1, 0).unwrap().unwrap();
    assert_eq!(discarded.order_id.as_deref(), Some("o9"));
    assert!(store.dead_letters().unwrap().is_empty());
    assert!(!store.is_parked("o9").unwrap());
    assert!(projections::dlq::discard(&store, 1, 0).unwrap().is_none());
}
