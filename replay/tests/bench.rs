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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_benchmark_measures_each_round_after_a_warm_up() {
    let dir = tempfile::tempdir().unwrap();
    let log: std::sync::Arc<dyn eventlog::EventLog> = std::sync::Arc::new(
        eventlog::embedded::EmbeddedLog::open(&dir.path().join("log")).unwrap(),
    );
    let topics = commands::Topics::new("bench-restore-test");
    for spec in topics.write_side(6) {
        log.create_topic(&spec).await.unwrap();
    }
    let report = replay::bench::restore_benchmark(log, &topics, dir.path(), 300, 3)
        .await
        .unwrap();
    assert_eq!((report.orders, report.partitions), (300, 6));
    assert_eq!(report.rounds.len(), 3, "the warm-up is not reported");
    for round in &report.rounds {
        assert!(
            round.restore_orders_per_second > 0.0 && round.raw_consumer_orders_per_second > 0.0
        );
    }
    let mut adoption: Vec<f64> = report
        .rounds
        .iter()
        .map(|r| r.restore_orders_per_second)
        .collect();
    adoption.sort_by(f64::total_cmp);
    assert_eq!(report.restore_orders_per_second, adoption[1], "the median");
    // Each round restored into its own store, and left nothing behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("restore-state"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
