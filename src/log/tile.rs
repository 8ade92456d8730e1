//! Tile paths, entry bundles and tile-backed subtree hashes (C2SP tlog-tiles).

use std::path::PathBuf;

use super::hash::{HASH_LEN, Hash, leaf_hash, root_from_leaf_hashes};
use super::proof::{ProofError, SubtreeHashes};

/// File name of the checkpoint, in the log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// Hashes in a full tile, and entries in a full entry bundle.
pub const TILE_WIDTH: u64 = 256;

/// Tree levels spanned by one tile level: log2 of [`TILE_WIDTH`].
pub const TILE_HEIGHT: u8 = 8;

/// Largest entry an entry bundle can hold, from its big-endian u16 length prefix.
pub const MAX_ENTRY_LEN: usize = u16::MAX as usize;

/// Encodes a tile index as 3-digit path elements, all but the last prefixed with `x`
/// (1234067 becomes `x001/x234/067`).
pub fn encode_index(index: u64) -> String {
    let mut elements = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        elements.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    elements.reverse();
    elements.join("/")
}

fn width_suffix(width: u64) -> String {
    if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

/// Returns the path of a hash tile, `tile/<level>/<index>[.p/<width>]`.
pub fn tile_path(level: u8, index: u64, width: u64) -> String {
    format!(
        "tile/{level}/{}{}",
        encode_index(index),
        width_suffix(width)
    )
}

/// Returns the path of an entry bundle, `tile/entries/<index>[.p/<width>]`.
pub fn entries_path(index: u64, width: u64) -> String {
    format!(
        "tile/entries/{}{}",
        encode_index(index),
        width_suffix(width)
    )
}

/// Returns the width of the tile number `index` at `level` in a tree of `size` leaves: 256
/// for a full tile, 1 to 255 for the partial tile, 0 if the tile does not exist.
pub fn tile_width(level: u8, index: u64, size: u64) -> u64 {
    let hashes_on_level = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
    hashes_on_level
        .saturating_sub(index.saturating_mul(TILE_WIDTH))
        .min(TILE_WIDTH)
}

/// A failed tile or entry bundle read or decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TileError {
    /// A tile or bundle file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tile has the wrong length for its width.
    #[error("tile {path} is {actual} bytes, expected {expected}")]
    WrongLength {
        /// The tile path.
        path: String,
        /// Bytes read.
        actual: usize,
        /// Bytes a tile of this width has.
        expected: usize,
    },
    /// An entry bundle is truncated or has the wrong number of entries.
    #[error("malformed entry bundle {path}: {reason}")]
    MalformedBundle {
        /// The bundle path.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Encodes entries as an entry bundle: each entry as a big-endian u16 length and its bytes.
///
/// Entries longer than [`MAX_ENTRY_LEN`] are rejected with `None`.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Some(out)
}

/// Decodes an entry bundle into its entries. `path` names the bundle in errors.
pub fn parse_bundle(bytes: &[u8], path: &str) -> Result<Vec<Vec<u8>>, TileError> {
    let mut entries = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let truncated = || TileError::MalformedBundle {
            path: path.to_owned(),
            reason: format!("entry {} is truncated", entries.len()),
        };
        let (len, tail) = rest.split_at_checked(2).ok_or_else(truncated)?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (entry, tail) = tail.split_at_checked(len).ok_or_else(truncated)?;
        entries.push(entry.to_vec());
        rest = tail;
    }
    Ok(entries)
}

/// Splits tile bytes into hashes, checking the length against `width`.
pub fn parse_tile(bytes: &[u8], width: u64, path: &str) -> Result<Vec<Hash>, TileError> {
    let expected = width as usize * HASH_LEN;
    if bytes.len() != expected {
        return Err(TileError::WrongLength {
            path: path.to_owned(),
            actual: bytes.len(),
            expected,
        });
    }
    Ok(bytes
        .chunks_exact(HASH_LEN)
        .filter_map(Hash::from_slice)
        .collect())
}

/// A source of tile and entry bundle bytes by path, such as a directory or a web server.
pub trait TileReader {
    /// Returns the bytes stored at `path` (a path from [`tile_path`] or [`entries_path`]).
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError>;
}

/// Tiles served from a local directory, the log's root.
#[derive(Debug, Clone)]
pub struct DirTileReader {
    root: PathBuf,
}

impl DirTileReader {
    /// Reads tiles below `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

impl TileReader for DirTileReader {
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError> {
        let full = self.root.join(path);
        std::fs::read(&full).map_err(|source| TileError::Io { path: full, source })
    }
}

/// Subtree hashes of a tree of a given size, computed from its tiles.
///
/// The hashes are as stored: a caller that does not trust the tiles must compare the
/// resulting root with a verified checkpoint (as [`verify_tiles`] does).
pub struct TileHashes<'a, R: TileReader + ?Sized> {
    reader: &'a R,
    size: u64,
    stored: u64,
}

impl<'a, R: TileReader + ?Sized> TileHashes<'a, R> {
    /// Reads subtree hashes of the tree of `size` leaves through `reader`.
    pub fn new(reader: &'a R, size: u64) -> Self {
        Self {
            reader,
            size,
            stored: size,
        }
    }

    /// Reads subtree hashes of the tree of `size` leaves from the tiles of the larger tree
    /// of `stored` leaves that `reader` contains. Each tile is read at its width in the
    /// stored tree and cut to its width in this one. A smaller `stored` counts as `size`.
    pub fn with_stored_size(reader: &'a R, size: u64, stored: u64) -> Self {
        Self {
            reader,
            size,
            stored: stored.max(size),
        }
    }

    /// Reads the hashes of tile `index` at `level`, at the width it has in this tree.
    ///
    /// A log may delete a partial tile once the full tile exists, so a missing partial
    /// tile is read from the full tile instead.
    pub fn read_tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, ProofError> {
        let width = tile_width(level, index, self.size);
        let span_shift = (u32::from(level) + 1) * 8;
        let missing = |reason: String| ProofError::MissingHash {
            start: index.checked_shl(span_shift).unwrap_or(u64::MAX),
            end: (index + 1).checked_shl(span_shift).unwrap_or(u64::MAX),
            reason,
        };
        if width == 0 {
            let path = tile_path(level, index, width);
            return Err(missing(format!("{path} is beyond tree size {}", self.size)));
        }
        let stored_width = tile_width(level, index, self.stored);
        let read = |width: u64| {
            let path = tile_path(level, index, width);
            self.reader
                .read(&path)
                .and_then(|bytes| parse_tile(&bytes, width, &path))
        };
        let mut hashes = match read(stored_width) {
            Ok(hashes) => hashes,
            Err(error) if stored_width < TILE_WIDTH => {
                read(TILE_WIDTH).map_err(|_| missing(error.to_string()))?
            }
            Err(error) => return Err(missing(error.to_string())),
        };
        hashes.truncate(width as usize);
        Ok(hashes)
    }
}

impl<R: TileReader + ?Sized> SubtreeHashes for TileHashes<'_, R> {
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        // A node at tree level 8 * L + r is the root of 2^r consecutive hashes of tile
        // level L, and those lie in one tile because r < 8.
        let tile_level = level / TILE_HEIGHT;
        let inner = u32::from(level % TILE_HEIGHT);
        let first = index << inner;
        let count = 1u64 << inner;
        let tile_index = first / TILE_WIDTH;
        let hashes = self.read_tile(tile_level, tile_index)?;
        let offset = (first % TILE_WIDTH) as usize;
        let end = offset + count as usize;
        let span = hashes
            .get(offset..end)
            .ok_or_else(|| ProofError::MissingHash {
                start: index << level,
                end: (index + 1) << level,
                reason: format!("the tree of size {} does not contain it", self.size),
            })?;
        Ok(root_from_leaf_hashes(span))
    }
}

/// Reads the entries `start..end` from their entry bundles in a tree of `size` leaves.
pub fn read_entries<R: TileReader + ?Sized>(
    reader: &R,
    size: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Vec<u8>>, TileError> {
    let mut entries = Vec::new();
    let mut bundle_index = start / TILE_WIDTH;
    while bundle_index * TILE_WIDTH < end.min(size) {
        let width = tile_width(0, bundle_index, size);
        let bundle = match read_bundle(reader, bundle_index, width) {
            Err(error) if width < TILE_WIDTH => {
                // A log may delete a partial bundle once the full bundle exists.
                let mut full = read_bundle(reader, bundle_index, TILE_WIDTH).map_err(|_| error)?;
                full.truncate(width as usize);
                full
            }
            result => result?,
        };
        let first = bundle_index * TILE_WIDTH;
        for (offset, entry) in bundle.into_iter().enumerate() {
            let position = first + offset as u64;
            if position >= start && position < end {
                entries.push(entry);
            }
        }
        bundle_index += 1;
    }
    Ok(entries)
}

/// Reads entry bundle `index` at `width` and checks that it contains `width` entries.
fn read_bundle<R: TileReader + ?Sized>(
    reader: &R,
    index: u64,
    width: u64,
) -> Result<Vec<Vec<u8>>, TileError> {
    let path = entries_path(index, width);
    let bundle = parse_bundle(&reader.read(&path)?, &path)?;
    if bundle.len() as u64 != width {
        return Err(TileError::MalformedBundle {
            path,
            reason: format!("it holds {} entries, expected {width}", bundle.len()),
        });
    }
    Ok(bundle)
}

/// Checks that the tiles and entry bundles of a tree of `size` leaves reproduce `root`:
/// every entry hashes to its level-0 tile hash and every tile level hashes to the root.
pub fn verify_tiles<R: TileReader + ?Sized>(
    reader: &R,
    size: u64,
    root: &Hash,
) -> Result<(), ProofError> {
    let hashes = TileHashes::new(reader, size);
    for bundle_index in 0..size.div_ceil(TILE_WIDTH) {
        let tile = hashes.read_tile(0, bundle_index)?;
        let start = bundle_index * TILE_WIDTH;
        let end = start + tile.len() as u64;
        let entries =
            read_entries(reader, size, start, end).map_err(|error| ProofError::MissingHash {
                start,
                end,
                reason: error.to_string(),
            })?;
        let entry_hashes: Vec<Hash> = entries.iter().map(|entry| leaf_hash(entry)).collect();
        if entry_hashes != tile {
            return Err(ProofError::RootMismatch { root: *root });
        }
    }
    let computed = super::proof::tree_root(&hashes, size)?;
    if computed != *root {
        return Err(ProofError::RootMismatch { root: *root });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(7), "007");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
    }

    #[test]
    fn paths() {
        assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 3, 17), "tile/1/003.p/17");
        assert_eq!(entries_path(5, 256), "tile/entries/005");
        assert_eq!(entries_path(5, 112), "tile/entries/005.p/112");
    }

    #[test]
    fn widths_for_size_70000() {
        // The tlog-tiles example: 273 full level-0 tiles, a level-0 partial of width 112,
        // a full level-1 tile, a level-1 partial of width 17, a level-2 partial of width 1.
        assert_eq!(tile_width(0, 272, 70_000), 256);
        assert_eq!(tile_width(0, 273, 70_000), 112);
        assert_eq!(tile_width(0, 274, 70_000), 0);
        assert_eq!(tile_width(1, 0, 70_000), 256);
        assert_eq!(tile_width(1, 1, 70_000), 17);
        assert_eq!(tile_width(2, 0, 70_000), 1);
        assert_eq!(tile_width(3, 0, 70_000), 0);
        assert_eq!(tile_width(1, 0, 256), 1);
    }

    #[test]
    fn bundle_round_trip() {
        let entries: [&[u8]; 3] = [b"", b"one", &[7u8; 300]];
        let bytes = encode_bundle(entries).unwrap();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..7], &[0, 3, b'o', b'n', b'e']);
        let parsed = parse_bundle(&bytes, "b").unwrap();
        assert_eq!(parsed, entries.map(<[u8]>::to_vec));
        assert!(parse_bundle(&bytes[..bytes.len() - 1], "b").is_err());
        assert!(encode_bundle([vec![0u8; 65536].as_slice()]).is_none());
    }
}
