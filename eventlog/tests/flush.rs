//! `eventlog::flush::flush` under the load that hung sled 0.34's own
//! `flush_async` (spacejam/sled#1308): many databases in one process, each
//! with batches and flushes from many tasks at once. Every task must finish.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::time::{Duration, Instant};

#[test]
fn concurrent_batches_and_flushes_over_many_databases_all_finish() {
    // On its own thread: a hang in sled can wedge the runtime, timers and
    // all, so the wait is a plain channel with a timeout.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(load()));
    });
    let rounds = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("batches and flushes hung for 60 s");
    assert!(rounds.iter().all(|&r| r > 0), "{rounds:?}");
}

async fn load() -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let dbs: Vec<sled::Db> = (0..6)
        .map(|i| {
            sled::Config::new()
                .path(dir.path().join(format!("db{i}")))
                .cache_capacity(8 << 20)
                .open()
                .unwrap()
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for task in 0..24 {
        let db = dbs[task % dbs.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut rounds = 0u64;
            while Instant::now() < until {
                let mut batch = sled::Batch::default();
                for key in 0..16u64 {
                    batch.insert(&(rounds * 16 + key).to_be_bytes(), vec![task as u8; 300]);
                }
                db.apply_batch(batch).unwrap();
                eventlog::flush::flush(&db).await.unwrap();
                rounds += 1;
            }
            rounds
        }));
    }
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}
