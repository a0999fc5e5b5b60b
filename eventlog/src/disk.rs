//! The data directory's disk reserve (`serve --disk-reserve-mb`): a node
//! refuses new commands, unsent, while less than the reserve is free on the
//! file system of its data directory, and takes them again by itself once
//! there is room. Reads keep working. The reserve is the room left for what
//! is already accepted: the projections of events already in the log, the
//! state store's snapshots and sled's own segment rewrites. Like
//! Elasticsearch's flood-stage watermark, it turns a full disk from a crash
//! into a refusal a client can retry.
//!
//! It is sampled (one `statvfs`) by a task every `SAMPLE_EVERY`, and again
//! by a check that finds the last sample older than `FRESH_FOR`, so a disk
//! filling fast (or a watcher starved on a loaded machine) is seen within
//! that much writing. If the reserve is used up all the same (a reserve of 0, or
//! a disk filled by something else), sled's writes fail and the node stops
//! with the words `serve` gives a full disk; every acknowledged command is
//! kept, and a restart with room serves again.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The default reserve: 128 MiB.
pub const DEFAULT_RESERVE_BYTES: u64 = 128 << 20;
/// How often the free space is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// How old a sample a check accepts before it asks the file system itself.
pub const FRESH_FOR: Duration = Duration::from_millis(20);

/// The free space of a data directory's file system against its reserve.
#[derive(Debug)]
pub struct DiskReserve {
    dir: PathBuf,
    reserve: u64,
    /// Bytes available to this process at the last sample (`u64::MAX`
    /// until a sample succeeds: a file system that cannot be asked is not
    /// taken for a full one).
    free: AtomicU64,
    /// When the last sample was taken, in ms since `born`.
    sampled_at: AtomicU64,
    born: std::time::Instant,
}

/// A refusal: the disk has less than the reserve free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLow {
    pub dir: PathBuf,
    pub free: u64,
    pub reserve: u64,
}

impl std::fmt::Display for DiskLow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the disk of the data directory {} has {} free, under its reserve of {} (--disk-reserve-mb): \
             commands are refused until there is room, and reads still work",
            self.dir.display(),
            mib(self.free),
            mib(self.reserve)
        )
    }
}

impl std::error::Error for DiskLow {}

fn mib(bytes: u64) -> String {
    if bytes < 1 << 20 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

impl DiskReserve {
    /// A reserve of `reserve` bytes for `dir`, sampled once now. A reserve
    /// of 0 never refuses.
    pub fn new(dir: &Path, reserve: u64) -> Arc<Self> {
        let disk = Arc::new(Self {
            dir: dir.to_path_buf(),
            reserve,
            free: AtomicU64::new(u64::MAX),
            sampled_at: AtomicU64::new(0),
            born: std::time::Instant::now(),
        });
        disk.sample();
        disk
    }

    /// Asks the file system again; returns the bytes free.
    pub fn sample(&self) -> u64 {
        self.sampled_at.store(self.age_ms(), Ordering::Relaxed);
        match fs2::available_space(&self.dir) {
            Ok(free) => {
                self.free.store(free, Ordering::Relaxed);
                free
            }
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "cannot read the free space of the data directory");
                self.free.load(Ordering::Relaxed)
            }
        }
    }

    /// Bytes free at the last sample (`None` before any sample succeeded).
    pub fn free(&self) -> Option<u64> {
        Some(self.free.load(Ordering::Relaxed)).filter(|&free| free != u64::MAX)
    }

    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    fn age_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `Err` while less than the reserve is free (asking the file system
    /// when the last sample is older than `FRESH_FOR`).
    pub fn check(&self) -> Result<(), DiskLow> {
        if self.reserve == 0 {
            return Ok(());
        }
        let last = self.sampled_at.load(Ordering::Relaxed);
        let free = if self.age_ms().saturating_sub(last) > FRESH_FOR.as_millis() as u64 {
            self.sample()
        } else {
            self.free.load(Ordering::Relaxed)
        };
        if free < self.reserve {
            Err(DiskLow {
                dir: self.dir.clone(),
                free,
                reserve: self.reserve,
            })
        } else {
            Ok(())
        }
    }

    /// Samples every `SAMPLE_EVERY` until `shutdown`, and logs each change
    /// between refusing and taking commands.
    pub async fn watch(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut low = self.check().is_err();
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
            }
            let disk = self.clone();
            // statvfs can block on a sick file system: off the runtime.
            let _ = tokio::task::spawn_blocking(move || disk.sample()).await;
            match (low, self.check()) {
                (false, Err(refusal)) => {
                    tracing::warn!("{refusal}");
                    low = true;
                }
                (true, Ok(())) => {
                    tracing::info!(dir = %self.dir.display(), free = self.free.load(Ordering::Relaxed),
                        "the data directory's disk has room again: commands are taken");
                    low = false;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_under_the_reserve() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = fs2::available_space(dir.path()).expect("free space");
        assert!(free > 0);
        let none = DiskReserve::new(dir.path(), 0);
        assert_eq!(none.check(), Ok(()));
        assert!(none.free().is_some());
        let all = DiskReserve::new(dir.path(), u64::MAX - 1);
        let refusal = all.check().expect_err("no disk has that much room");
        assert_eq!(refusal.reserve, u64::MAX - 1);
        let words = refusal.to_string();
        assert!(words.contains("--disk-reserve-mb"), "{words}");
        assert!(words.contains(&dir.path().display().to_string()), "{words}");
    }

    #[test]
    fn a_directory_that_cannot_be_asked_is_not_taken_for_a_full_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("not-there");
        let disk = DiskReserve::new(&gone, 1 << 20);
        assert_eq!(disk.free(), None);
        assert_eq!(disk.check(), Ok(()));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(mib(512 << 10), "512 KiB");
        assert_eq!(mib(128 << 20), "128 MiB");
    }
}
