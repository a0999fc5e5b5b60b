//! Generations of a projection's store: `<data>/projections/<name>/v<N>/`,
//! and the file `<data>/projections/<name>/CURRENT` naming the served one.
//! The pointer is replaced atomically (write a temporary file, then rename),
//! so a reader sees the old generation or the new one, never neither.
//!
//! The protocol, for the runner in a serving node and for offline tools
//! alike: `reserve` a new generation (marked `BUILDING`), fill it,
//! `complete` it, `switch_generation`, then remove or keep the previous one.
//! `switch_to_existing` is the offline rollback.

use std::path::{Path, PathBuf};

use crate::serving::ServingError;
use crate::ProjectionStore;

/// The served generation of a projection (1 when none was ever switched).
pub fn current_generation(data_dir: &Path, projection: &str) -> u32 {
    std::fs::read_to_string(
        data_dir
            .join("projections")
            .join(projection)
            .join("CURRENT"),
    )
    .ok()
    .and_then(|text| text.trim().parse().ok())
    .unwrap_or(1)
}

pub fn generation_dir(data_dir: &Path, projection: &str, generation: u32) -> PathBuf {
    data_dir
        .join("projections")
        .join(projection)
        .join(format!("v{generation}"))
}

/// Makes `generation` the served one: write a temporary file, then rename.
pub fn switch_generation(
    data_dir: &Path,
    projection: &str,
    generation: u32,
) -> std::io::Result<()> {
    let dir = data_dir.join("projections").join(projection);
    let temporary = dir.join("CURRENT.next");
    std::fs::write(&temporary, generation.to_string())?;
    std::fs::rename(&temporary, dir.join("CURRENT"))?;
    Ok(())
}

/// The first generation number not used yet (frozen generations built with
/// `--until` keep their numbers).
pub fn next_generation(data_dir: &Path, projection: &str) -> u32 {
    let highest = std::fs::read_dir(data_dir.join("projections").join(projection))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix('v')?
                        .parse::<u32>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    highest.max(current_generation(data_dir, projection)) + 1
}

/// A generation being built; a crash leaves the marker, and the next start
/// removes the half-built directory.
pub const BUILDING: &str = "BUILDING";
/// A generation replaced by a newer one, to be removed once nothing reads it.
pub const RETIRED: &str = "RETIRED";

/// Scratch stores of `replay verify` start so; any left behind is removed.
pub const SCRATCH_PREFIX: &str = "verify-";

/// A fresh scratch directory beside the generations of a projection.
pub fn scratch_dir(data_dir: &Path, projection: &str) -> PathBuf {
    data_dir.join("projections").join(projection).join(format!(
        "{SCRATCH_PREFIX}{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ))
}

/// Marks a generation directory (see `BUILDING` and `RETIRED`).
pub fn mark(dir: &Path, marker: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(marker), b"")
}

/// Removes a marker: the generation is complete (or kept after all).
pub fn unmark(dir: &Path, marker: &str) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(marker)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the generations a crash or a stop left behind: half-built ones
/// and retired ones. The served generation is never touched. Returns the
/// generations removed.
pub fn clean_up(data_dir: &Path, projection: &str) -> std::io::Result<Vec<u32>> {
    let served = current_generation(data_dir, projection);
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(data_dir.join("projections").join(projection)) else {
        return Ok(removed);
    };
    for entry in entries.filter_map(Result::ok) {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            std::fs::remove_dir_all(entry.path())?;
            continue;
        }
        let Some(generation) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix('v'))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        if generation != served && (dir.join(BUILDING).exists() || dir.join(RETIRED).exists()) {
            std::fs::remove_dir_all(&dir)?;
            removed.push(generation);
        }
    }
    removed.sort_unstable();
    Ok(removed)
}

/// The generations on disk that can be read or switched to (complete: not
/// being built, not retired), in order.
pub fn complete_generations(data_dir: &Path, projection: &str) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(data_dir.join("projections").join(projection))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| !e.path().join(BUILDING).exists() && !e.path().join(RETIRED).exists())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Removes a generation's directory (logged, not returned: a directory left
/// behind is marked and goes at the next start).
pub fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a generation directory");
        }
        _ => {}
    }
}

/// A generation reserved for building: its number, directory and store.
#[derive(Debug)]
pub struct Reserved {
    pub version: u32,
    pub dir: PathBuf,
    pub store: ProjectionStore,
}

/// Reserves the next generation of `projection`: creates its directory,
/// marks it `BUILDING` and opens its store.
pub fn reserve(data_dir: &Path, projection: &str) -> Result<Reserved, ServingError> {
    let version = next_generation(data_dir, projection);
    let dir = generation_dir(data_dir, projection, version);
    let io = |source| ServingError::Io {
        what: "cannot create",
        dir: dir.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    mark(&dir, BUILDING).map_err(io)?;
    let store = ProjectionStore::open(&dir)?;
    Ok(Reserved {
        version,
        dir,
        store,
    })
}

/// A built generation is complete: it may be switched to and read.
pub fn complete(dir: &Path) -> Result<(), ServingError> {
    unmark(dir, BUILDING).map_err(|source| ServingError::Io {
        what: "cannot complete",
        dir: dir.to_path_buf(),
        source,
    })
}

/// Whether `generation` of `projection` is on disk, complete, and not the
/// served one: what a switch needs. Answers the served generation.
pub fn check_switch(
    data_dir: &Path,
    projection: &str,
    generation: u32,
) -> Result<u32, ServingError> {
    let served = current_generation(data_dir, projection);
    if generation == served {
        return Err(ServingError::Conflict(format!(
            "{projection} v{generation} is already served"
        )));
    }
    let dir = generation_dir(data_dir, projection, generation);
    if !dir.exists() || dir.join(RETIRED).exists() {
        return Err(ServingError::NotFound(format!(
            "there is no generation v{generation} of {projection} in {}",
            data_dir.display()
        )));
    }
    if dir.join(BUILDING).exists() {
        return Err(ServingError::Unavailable(format!(
            "{projection} v{generation} was never finished (a rebuild stopped half-way)"
        )));
    }
    Ok(served)
}

/// Points `CURRENT` at an existing, complete generation (no server runs:
/// the next start serves it and catches it up). Answers the generation
/// served before, which is kept.
pub fn switch_to_existing(
    data_dir: &Path,
    projection: &str,
    generation: u32,
) -> Result<u32, ServingError> {
    let served = check_switch(data_dir, projection, generation)?;
    switch_generation(data_dir, projection, generation).map_err(|source| ServingError::Io {
        what: "cannot switch",
        dir: data_dir.join("projections").join(projection),
        source,
    })?;
    Ok(served)
}

/// The served generation's store of `projection`, for offline tools.
pub fn open_served(
    data_dir: &Path,
    projection: &str,
) -> Result<(u32, ProjectionStore), ServingError> {
    let version = current_generation(data_dir, projection);
    let dir = generation_dir(data_dir, projection, version);
    if !dir.exists() {
        return Err(ServingError::NotFound(format!(
            "no {projection} read model in {}",
            data_dir.display()
        )));
    }
    let store = ProjectionStore::open(&dir).map_err(|e| {
        ServingError::Unavailable(format!(
            "cannot open {}: is `orderstore serve` running on it? Stop it first ({e})",
            dir.display()
        ))
    })?;
    Ok((version, store))
}
