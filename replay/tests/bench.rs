//! The rebuild benchmark runs end to end on a small input and rebuilds real
//! read models (no timing is asserted: numbers are for `orderstore bench`).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use chrono::{DateTime, Utc};
use projections::{customer, ProjectionStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_benchmark_rebuilds_real_read_models() {
    let dir = tempfile::tempdir().unwrap();
    let report = replay::bench::rebuild_benchmark(dir.path(), 1000)
        .await
        .unwrap();
    assert_eq!(report.events, 1000);
    assert!(report.raw_consumer_events_per_second > 0.0 && report.raw_sled_events_per_second > 0.0);
    assert!(report.rebuild_events_per_second > 0.0);
    // 200 delivered orders over 5000 customer ids: customer-7 has order bench-7.
    let store = ProjectionStore::open(&dir.path().join("projections/customer")).unwrap();
    let view = customer::view(&store, "customer-7", DateTime::<Utc>::MAX_UTC)
        .unwrap()
        .unwrap();
    assert_eq!(view.orders.len(), 1);
    assert_eq!(view.orders[0].status, domain::OrderStatus::Delivered);
    assert_eq!(view.open_orders, 0);
}
