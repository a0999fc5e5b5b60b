//! The sled page-cache budget of this process: one total (`serve
//! --cache-mb`), shared out to every sled database a node opens, so memory
//! stays bounded however much data the node holds. The log gets the
//! largest share (every write and every projection's read passes through
//! it), the state store a small one (one snapshot per order), and each of
//! the four projections an eighth. A generation being rebuilt, or another
//! one opened for a `generation:` query, takes a projection's share too.

use std::sync::atomic::{AtomicU64, Ordering};

/// The default total: 512 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 512 << 20;
/// The smallest total accepted (sled needs some room to work).
pub const MIN_CACHE_BYTES: u64 = 16 << 20;

static BUDGET: AtomicU64 = AtomicU64::new(DEFAULT_CACHE_BYTES);

/// Who opens a sled database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// The embedded log: 3/8.
    Log,
    /// The command processor's state store: 1/8.
    State,
    /// One projection's store: 1/8.
    Projection,
}

/// Sets the total for databases opened from now on (at least `MIN_CACHE_BYTES`).
pub fn set_budget(bytes: u64) {
    BUDGET.store(bytes.max(MIN_CACHE_BYTES), Ordering::Relaxed);
}

/// The total in force.
pub fn budget() -> u64 {
    BUDGET.load(Ordering::Relaxed)
}

/// The cache capacity for a database of this use.
pub fn bytes_for(usage: CacheUse) -> u64 {
    let total = budget();
    match usage {
        CacheUse::Log => total / 8 * 3,
        CacheUse::State => total / 8,
        CacheUse::Projection => total / 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_the_budget_and_a_tiny_budget_is_raised() {
        let total = DEFAULT_CACHE_BYTES;
        let sum = bytes_for(CacheUse::Log)
            + bytes_for(CacheUse::State)
            + 4 * bytes_for(CacheUse::Projection);
        assert!(sum <= total && sum > total - 16, "{sum} of {total}");
        set_budget(1);
        assert_eq!(budget(), MIN_CACHE_BYTES);
        set_budget(DEFAULT_CACHE_BYTES);
    }
}
