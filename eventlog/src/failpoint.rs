//! Failpoints for the fault suite: `ORDERSTORE_FAILPOINT=<name>:<n>` makes
//! the process abort (as kill -9 would stop it, with no clean-up) the n-th
//! time it passes the failpoint called `name`. Unset, a failpoint costs one
//! relaxed atomic load. `orderstore chaos` uses them to stop a node at a
//! chosen moment, e.g. `projection-batch:<projection>` between a projection
//! batch's DLQ append and its store commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The failpoint that is armed, and after how many passes it fires.
static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static PASSED: AtomicU64 = AtomicU64::new(0);

fn armed() -> Option<&'static (String, u64)> {
    ARMED
        .get_or_init(|| {
            let value = std::env::var("ORDERSTORE_FAILPOINT").ok()?;
            let (name, count) = value.rsplit_once(':')?;
            Some((name.to_owned(), count.parse().ok()?))
        })
        .as_ref()
}

/// Passes the failpoint `<point>:<detail>` (`projection-batch:history`);
/// aborts the process when it is armed and this is its n-th pass.
pub fn pass(point: &str, detail: &str) {
    let Some((armed, count)) = armed() else {
        return;
    };
    let named = armed
        .strip_prefix(point)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|rest| rest == detail);
    if named && PASSED.fetch_add(1, Ordering::Relaxed) + 1 == *count {
        eprintln!("failpoint {armed} fired at pass {count}: aborting");
        std::process::abort();
    }
}
