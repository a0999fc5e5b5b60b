//! Generations of a projection's store: `<data>/projections/<name>/v<N>/`,
//! and the file `<data>/projections/<name>/CURRENT` naming the served one.
//! The pointer is replaced atomically (write a temporary file, then rename),
//! so a reader sees the old generation or the new one, never neither.

use std::path::{Path, PathBuf};

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
