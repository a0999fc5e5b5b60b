//! The one way this workspace makes a sled database durable: `flush`, on
//! tokio's blocking pool.
//!
//! Not `sled::Db::flush_async` (sled 0.34.7, spacejam/sled#1308): it runs
//! the flush as a job on sled's own IO threadpool, and that flush waits for
//! the buffers it needs written, whose writes are jobs queued on the same
//! pool, behind it. sled adds a thread only when more than 7 jobs wait, so
//! a few concurrent flushes (a node has six databases, and a test binary
//! several nodes) can take every pool thread and wait for each other's
//! writes for ever. sled's process-wide concurrency lock makes it worse: a
//! flush holds its read side while it waits, so an `apply_batch` queued for
//! the write side blocks every later flush and reader. Seen as a node (or a
//! test) that hung with every sled thread parked; see RELIABILITY.md.
//!
//! A flush on a blocking thread of tokio's waits on sled's pool without
//! holding a thread of it, so the writes it waits for always find one.

/// Flushes every dirty buffer of `db` and fsyncs; returns when what was
/// written before the call is durable.
pub async fn flush(db: &sled::Db) -> sled::Result<()> {
    let db = db.clone();
    match tokio::task::spawn_blocking(move || db.flush()).await {
        Ok(flushed) => flushed.map(|_| ()),
        // The blocking pool is shutting down, or the flush panicked.
        Err(join) => Err(sled::Error::ReportableBug(format!(
            "the flush did not complete: {join}"
        ))),
    }
}
