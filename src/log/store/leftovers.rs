//! Removal of the files that an appender killed part-way leaves in a log directory.

use std::path::{Component, Path};

use super::TEMP_PREFIX;
use crate::log::tile::{TILE_WIDTH, entries_path, tile_path};

/// Suffix of the folder that contains the partial versions of a tile or entry bundle.
const PARTIAL_SUFFIX: &str = ".p";

/// Files and folders found and removed by one sweep.
#[derive(Debug, Default)]
struct Sweep {
    removed_temp_files: usize,
    removed_partial_folders: usize,
}

/// Removes the `.tmp-*` files under `dir` and the `<N>.p` folders of hash tiles and entry
/// bundles that are full in the published tree of `published` leaves.
///
/// The caller must hold the appender lock, because a running appender's temporary files
/// also start with `.tmp-`. A `<N>.p` folder whose full tile lies beyond the published
/// tree stays, because it contains the partial tile of the published checkpoint, even
/// when a crash left the full tile `<N>` on disk. Failures are logged and skipped, because
/// leftovers cost only disk space.
///
/// Lists every folder of the log once, so the cost grows with the number of full tiles.
/// It opens no tile file.
pub(super) fn remove_leftovers(dir: &Path, published: u64) {
    let mut sweep = Sweep::default();
    sweep_folder(dir, dir, published, &mut sweep);
    if sweep.removed_temp_files > 0 || sweep.removed_partial_folders > 0 {
        tracing::info!(
            dir = %dir.display(),
            temp_files = sweep.removed_temp_files,
            partial_folders = sweep.removed_partial_folders,
            "removed files left by an interrupted append"
        );
    }
}

fn sweep_folder(root: &Path, folder: &Path, published: u64, sweep: &mut Sweep) {
    let items = match std::fs::read_dir(folder) {
        Ok(items) => items,
        Err(error) => {
            tracing::warn!(path = %folder.display(), %error, "cannot list log folder");
            return;
        }
    };
    for item in items {
        let item = match item {
            Ok(item) => item,
            Err(error) => {
                tracing::warn!(path = %folder.display(), %error, "cannot list log folder");
                continue;
            }
        };
        let path = item.path();
        // The file type of the entry itself: symbolic links are neither followed nor removed.
        let Ok(file_type) = item.file_type() else {
            continue;
        };
        let is_temp = item.file_name().to_string_lossy().starts_with(TEMP_PREFIX);

        if file_type.is_file() && is_temp {
            match std::fs::remove_file(&path) {
                Ok(()) => sweep.removed_temp_files += 1,
                Err(error) => warn_not_removed(&path, &error),
            }
        } else if file_type.is_dir() {
            if is_superseded_partial_folder(root, &path, published) {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => sweep.removed_partial_folders += 1,
                    Err(error) => warn_not_removed(&path, &error),
                }
            } else {
                sweep_folder(root, &path, published, sweep);
            }
        }
    }
}

fn warn_not_removed(path: &Path, error: &std::io::Error) {
    tracing::warn!(path = %path.display(), %error, "cannot remove leftover of an interrupted append");
}

/// Returns whether `path` is the `<N>.p` folder of a tile or entry bundle that is full in
/// the tree of `published` leaves and whose full file exists.
fn is_superseded_partial_folder(root: &Path, path: &Path, published: u64) -> bool {
    let Some((level, index, full_path)) = partial_folder_tile(root, path) else {
        return false;
    };
    let hashes_on_level = published.checked_shr(u32::from(level) * 8).unwrap_or(0);
    index < hashes_on_level / TILE_WIDTH && root.join(full_path).is_file()
}

/// Parses a path `<root>/tile/<L>/<N>.p` or `<root>/tile/entries/<N>.p`, with `<N>` in
/// the 3-digit groups of tlog-tiles. Returns the level (0 for entry bundles), the index
/// and the relative path of the full tile, or `None` for any other path.
fn partial_folder_tile(root: &Path, path: &Path) -> Option<(u8, u64, String)> {
    let relative = path.strip_prefix(root).ok()?;
    let mut names = Vec::new();
    for component in relative.components() {
        let Component::Normal(name) = component else {
            return None;
        };
        names.push(name.to_str()?);
    }
    let ["tile", level, groups @ .., last] = names.as_slice() else {
        return None;
    };
    let last = last.strip_suffix(PARTIAL_SUFFIX)?;

    let mut index = 0u64;
    for group in groups {
        let digits = group.strip_prefix('x')?;
        index = index.checked_mul(1000)?.checked_add(parse_group(digits)?)?;
    }
    index = index.checked_mul(1000)?.checked_add(parse_group(last)?)?;

    let (level, full_path) = if *level == "entries" {
        (0, entries_path(index, TILE_WIDTH))
    } else {
        let level: u8 = level.parse().ok()?;
        (level, tile_path(level, index, TILE_WIDTH))
    };
    // Only the canonical spelling counts, so `tile/0/x000/067.p` is not a tile folder.
    (format!("{full_path}{PARTIAL_SUFFIX}") == names.join("/")).then_some((level, index, full_path))
}

fn parse_group(digits: &str) -> Option<u64> {
    if digits.len() != 3 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_folder_tile_parses_canonical_paths() {
        let root = Path::new("/log");
        let cases = [
            ("tile/0/000.p", Some((0, 0, "tile/0/000"))),
            (
                "tile/2/x001/x234/067.p",
                Some((2, 1_234_067, "tile/2/x001/x234/067")),
            ),
            ("tile/entries/005.p", Some((0, 5, "tile/entries/005"))),
            ("tile/0/000", None),
            ("tile/0/0067.p", None),
            ("tile/0/x000/067.p", None),
            ("tile/0/x01/067.p", None),
            ("tile/abc/000.p", None),
            ("tile/0/000.p/12", None),
            ("other/0/000.p", None),
        ];
        for (relative, expected) in cases {
            let parsed = partial_folder_tile(root, &root.join(relative));
            let expected = expected.map(|(level, index, full)| (level, index, full.to_owned()));
            assert_eq!(parsed, expected, "{relative}");
        }
    }
}
