//! The auditor's on-disk log: tiles, entry bundles and the checkpoint in the tlog-tiles
//! layout, servable as static files.
//!
//! Every file is written to a temporary file, flushed and renamed into place. A full tile
//! or entry bundle is written when it fills up. The partial ones of the right edge are
//! written by [`Log::checkpoint`], which flushes every directory written to before it
//! replaces the checkpoint. A reader therefore never reads a checkpoint that points at
//! missing tiles. A crash before [`Log::checkpoint`] loses the entries appended since the
//! last checkpoint: on reopening, the log continues from the published size and rewrites
//! those tile paths. [`Log::open`] also removes the temporary files and superseded
//! partial tiles that such a crash leaves behind.

mod leftovers;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::hash::{HASH_LEN, Hash, leaf_hash, root_from_leaf_hashes};
use super::note::SignerKey;
use super::proof::{self, ProofError};
use super::tile::{
    self, DirTileReader, TILE_WIDTH, TileError, TileHashes, TileReader, entries_path, parse_tile,
    tile_path,
};

pub use super::tile::CHECKPOINT_FILE;

/// File name of the lock held by the appender. The leading dot keeps it out of most
/// static file listings.
pub const LOCK_FILE: &str = ".lock";

/// Prefix of temporary files. They are never read, and [`Log::open`] removes those a crash
/// leaves behind.
const TEMP_PREFIX: &str = ".tmp-";

/// A failed log store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Another process holds the appender lock.
    #[error("log {dir} is locked by another appender\nhint: wait for the other process to finish")]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },
    /// `init` found an existing checkpoint.
    #[error("log {dir} already has a checkpoint\nhint: open it instead, or choose a new directory")]
    AlreadyInitialized {
        /// The log directory.
        dir: PathBuf,
    },
    /// `open` found no checkpoint.
    #[error("log {dir} has no checkpoint\nhint: create the log with init first")]
    NotInitialized {
        /// The log directory.
        dir: PathBuf,
    },
    /// The published checkpoint is invalid for this log.
    #[error("checkpoint of log {dir} is invalid: {source}")]
    Checkpoint {
        /// The log directory.
        dir: PathBuf,
        /// Why it was rejected.
        source: CheckpointError,
    },
    /// The tiles do not reproduce the published root hash, or a proof could not be built.
    #[error("log {dir}: {source}")]
    Proof {
        /// The log directory.
        dir: PathBuf,
        /// The underlying error.
        source: ProofError,
    },
    /// A tile or entry bundle is unreadable or malformed.
    #[error(transparent)]
    Tile(#[from] TileError),
    /// The entry does not fit an entry bundle's u16 length prefix.
    #[error("entry of {len} bytes is larger than the maximum of 65535 bytes")]
    EntryTooLarge {
        /// The entry length.
        len: usize,
    },
    /// A requested tree size or index is beyond the current log size.
    #[error("tree size {requested} is beyond the log size {size}")]
    SizeOutOfRange {
        /// The requested size or index.
        requested: u64,
        /// The current log size.
        size: u64,
    },
}

/// An open log that this process may append to, holding the appender lock until dropped.
///
/// The right edge of the tree (the partial tile of each level and the partial entry
/// bundle) is kept in memory and written by [`Log::checkpoint`]; a tile or entry bundle
/// that becomes full is written at once. Partial tiles on disk are therefore those of
/// checkpointed tree sizes, and a checkpoint deletes the ones a full tile replaces.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    origin: String,
    signer: SignerKey,
    size: u64,
    published: u64,
    /// Hash bytes of the right-edge tile of each level, indexed by level. Each has fewer
    /// than [`TILE_WIDTH`] hashes and is empty when the level has no partial tile.
    edges: Vec<Vec<u8>>,
    /// The right-edge entry bundle, encoded, with fewer than [`TILE_WIDTH`] entries.
    edge_bundle: Vec<u8>,
    /// Full tiles and entry bundles written since the last checkpoint.
    completed: Vec<String>,
    /// Directories with files written since the last checkpoint, flushed before it.
    unsynced_dirs: BTreeSet<PathBuf>,
    _lock: File,
}

impl Log {
    /// Creates a new log in `dir` and publishes the checkpoint of the empty tree.
    pub fn init(dir: &Path, origin: &str, signer: SignerKey) -> Result<Self, StoreError> {
        let mut log = Self::create(dir, origin, signer)?;
        log.checkpoint()?;
        Ok(log)
    }

    /// Creates a new log in `dir` and takes its appender lock, but publishes no checkpoint.
    ///
    /// Fails with [`StoreError::AlreadyInitialized`] when `dir` has a checkpoint, checked
    /// before anything is written and again under the lock. Until [`Log::checkpoint`]
    /// publishes the first checkpoint, [`Log::open`] reports the log as not initialized.
    /// [`Log::init`] is this followed by a checkpoint; a caller that must save the signer
    /// key first calls the two steps itself.
    pub fn create(dir: &Path, origin: &str, signer: SignerKey) -> Result<Self, StoreError> {
        let already_initialized = || StoreError::AlreadyInitialized {
            dir: dir.to_path_buf(),
        };
        if dir.join(CHECKPOINT_FILE).exists() {
            return Err(already_initialized());
        }
        std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let lock = lock(dir)?;
        if dir.join(CHECKPOINT_FILE).exists() {
            return Err(already_initialized());
        }
        Ok(Self::new(dir, origin, signer, 0, lock))
    }

    fn new(dir: &Path, origin: &str, signer: SignerKey, size: u64, lock: File) -> Self {
        Self {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            signer,
            size,
            published: size,
            edges: Vec::new(),
            edge_bundle: Vec::new(),
            completed: Vec::new(),
            unsynced_dirs: BTreeSet::new(),
            _lock: lock,
        }
    }

    /// Opens the log in `dir` at the size of its published checkpoint.
    ///
    /// Checks that the checkpoint is signed by `signer` for `origin` and that the tiles
    /// reproduce its root hash. Does not re-read every entry bundle (see
    /// [`tile::verify_tiles`] for that).
    ///
    /// Then removes what an appender killed part-way may have left: `.tmp-*` files, and
    /// the `<N>.p` folders of tiles and entry bundles that are full in the published tree.
    /// A failed removal is logged as a warning and does not fail the open.
    pub fn open(dir: &Path, origin: &str, signer: SignerKey) -> Result<Self, StoreError> {
        let lock = lock(dir)?;
        let path = dir.join(CHECKPOINT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotInitialized {
                    dir: dir.to_path_buf(),
                });
            }
            Err(source) => return Err(io_error(&path, source)),
        };
        let checkpoint = Checkpoint::open(&bytes, origin, signer.verifier()).map_err(|source| {
            StoreError::Checkpoint {
                dir: dir.to_path_buf(),
                source,
            }
        })?;

        let mut log = Self::new(dir, origin, signer, checkpoint.size, lock);
        log.load_edges()?;
        let root = log.root()?;
        if root != checkpoint.root {
            return Err(log.proof_error(ProofError::RootMismatch {
                root: checkpoint.root,
            }));
        }
        leftovers::remove_leftovers(&log.dir, log.published);
        Ok(log)
    }

    /// Reads the partial tiles and entry bundle of the published tree into memory.
    fn load_edges(&mut self) -> Result<(), StoreError> {
        let size = self.size;
        let mut level = 0u8;
        while size.checked_shr(u32::from(level) * 8).unwrap_or(0) > 0 {
            let (index, width) = edge_of(level, size);
            let bytes = if width > 0 {
                let path = tile_path(level, index, width);
                let bytes = self.read(&path)?;
                parse_tile(&bytes, width, &path)?;
                bytes
            } else {
                Vec::new()
            };
            self.edges.push(bytes);
            level += 1;
        }
        let (index, width) = edge_of(0, size);
        if width > 0 {
            let path = entries_path(index, width);
            let bytes = self.read(&path)?;
            let entries = tile::parse_bundle(&bytes, &path)?;
            if entries.len() as u64 != width {
                return Err(StoreError::Tile(TileError::MalformedBundle {
                    path,
                    reason: format!("it holds {} entries, expected {width}", entries.len()),
                }));
            }
            self.edge_bundle = bytes;
        }
        Ok(())
    }

    /// Returns the number of entries appended, published or not.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Returns the tree size of the published checkpoint.
    pub fn published_size(&self) -> u64 {
        self.published
    }

    /// Returns the log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the log origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Appends `entry` and returns its index. The entry is published by the next
    /// [`Log::checkpoint`]; until then it is in memory, or in a full tile written without
    /// flushing its directory.
    ///
    /// On an error the log is unchanged in memory; files written for the entry lie beyond
    /// the published size and are rewritten by later appends.
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, StoreError> {
        let len = u16::try_from(entry.len())
            .map_err(|_| StoreError::EntryTooLarge { len: entry.len() })?;
        let index = self.size;
        let mut writes: Vec<(String, Vec<u8>)> = Vec::new();

        // The entry bundle is written when it becomes full.
        let bundle_full = (index + 1).is_multiple_of(TILE_WIDTH);
        if bundle_full {
            let mut bundle = self.edge_bundle.clone();
            bundle.extend_from_slice(&len.to_be_bytes());
            bundle.extend_from_slice(entry);
            writes.push((entries_path(index / TILE_WIDTH, TILE_WIDTH), bundle));
        }

        // A hash tile that becomes full is written and adds its subtree hash one level up.
        let mut level = 0usize;
        let mut position = index;
        let mut hash = leaf_hash(entry);
        while self.edges.get(level).map_or(0, Vec::len) + HASH_LEN == TILE_BYTES {
            let mut bytes = self.edges[level].clone();
            bytes.extend_from_slice(hash.as_bytes());
            let tile_index = position / TILE_WIDTH;
            let path = tile_path(level as u8, tile_index, TILE_WIDTH);
            hash = root_from_leaf_hashes(&parse_tile(&bytes, TILE_WIDTH, &path)?);
            writes.push((path, bytes));
            level += 1;
            position = tile_index;
        }

        for (path, bytes) in &writes {
            let parent = self.write_file(path, bytes, false)?;
            self.unsynced_dirs.insert(parent);
        }

        if bundle_full {
            self.edge_bundle.clear();
        } else {
            self.edge_bundle.extend_from_slice(&len.to_be_bytes());
            self.edge_bundle.extend_from_slice(entry);
        }
        for edge in &mut self.edges[..level] {
            edge.clear();
        }
        if self.edges.len() == level {
            self.edges.push(Vec::new());
        }
        self.edges[level].extend_from_slice(hash.as_bytes());
        self.completed
            .extend(writes.into_iter().map(|(path, _)| path));
        self.size += 1;
        Ok(index)
    }

    /// Signs a checkpoint for the current size, writes it to `<dir>/checkpoint` and returns
    /// the signed note bytes.
    ///
    /// Writes the partial tiles and entry bundle of the current size and flushes every
    /// directory written since the last checkpoint first. After the checkpoint, deletes
    /// the partial tiles and bundles that full ones written since then replace, as
    /// tlog-tiles allows.
    pub fn checkpoint(&mut self) -> Result<Vec<u8>, StoreError> {
        for (level, edge) in self.edges.iter().enumerate() {
            if !edge.is_empty() {
                let (index, width) = edge_of(level as u8, self.size);
                self.write_file(&tile_path(level as u8, index, width), edge, true)?;
            }
        }
        if !self.edge_bundle.is_empty() {
            let (index, width) = edge_of(0, self.size);
            self.write_file(&entries_path(index, width), &self.edge_bundle, true)?;
        }
        while let Some(dir) = self.unsynced_dirs.pop_first() {
            if let Err(source) = File::open(&dir).and_then(|file| file.sync_all()) {
                self.unsynced_dirs.insert(dir.clone());
                return Err(io_error(&dir, source));
            }
        }

        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: self.size,
            root: self.root()?,
            extensions: Vec::new(),
        };
        let bytes = checkpoint
            .sign(&self.signer)
            .map_err(|source| StoreError::Checkpoint {
                dir: self.dir.clone(),
                source,
            })?;
        self.write_file(CHECKPOINT_FILE, &bytes, true)?;
        self.published = self.size;

        for full in std::mem::take(&mut self.completed) {
            let partials = self.dir.join(format!("{full}.p"));
            match std::fs::remove_dir_all(&partials) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                // Superseded partial tiles cost disk space only; readers fall back to the
                // full tile either way.
                Err(error) => tracing::warn!(
                    path = %partials.display(),
                    %error,
                    "cannot delete superseded partial tiles"
                ),
            }
        }
        Ok(bytes)
    }

    /// Returns the root hash of the current tree, read from the tiles.
    pub fn root(&self) -> Result<Hash, StoreError> {
        self.root_at(self.size)
    }

    /// Returns the root hash of the tree of `size` leaves, read from the tiles.
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size)?;
        let reader = self.tiles();
        proof::tree_root(&self.hashes(&reader, size), size).map_err(|e| self.proof_error(e))
    }

    /// Builds the inclusion proof of entry `index` in the tree of `size` leaves.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        let reader = self.tiles();
        proof::prove_inclusion(&self.hashes(&reader, size), index, size)
            .map_err(|e| self.proof_error(e))
    }

    /// Builds the consistency proof from the tree of `old_size` to that of `new_size`.
    pub fn prove_consistency(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new_size)?;
        let reader = self.tiles();
        proof::prove_consistency(&self.hashes(&reader, new_size), old_size, new_size)
            .map_err(|e| self.proof_error(e))
    }

    /// Reads entry `index` from its entry bundle.
    pub fn entry(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        if index >= self.size {
            return Err(StoreError::SizeOutOfRange {
                requested: index,
                size: self.size,
            });
        }
        let mut entries = self.entries(index, index + 1)?;
        entries.pop().ok_or(StoreError::SizeOutOfRange {
            requested: index,
            size: self.size,
        })
    }

    /// Reads the entries `start..end` (cut to the log size) from their entry bundles.
    pub fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(tile::read_entries(&self.tiles(), self.size, start, end)?)
    }

    /// Returns a reader of the current tree's tiles: the right edge from memory, the rest
    /// from disk.
    fn tiles(&self) -> LogTiles<'_> {
        let mut edges: Vec<(String, &[u8])> = self
            .edges
            .iter()
            .enumerate()
            .filter(|(_, edge)| !edge.is_empty())
            .map(|(level, edge)| {
                let (index, width) = edge_of(level as u8, self.size);
                (tile_path(level as u8, index, width), edge.as_slice())
            })
            .collect();
        if !self.edge_bundle.is_empty() {
            let (index, width) = edge_of(0, self.size);
            edges.push((entries_path(index, width), self.edge_bundle.as_slice()));
        }
        LogTiles {
            dir: DirTileReader::new(&self.dir),
            edges,
        }
    }

    fn hashes<'a>(&self, reader: &'a LogTiles<'_>, size: u64) -> TileHashes<'a, LogTiles<'a>> {
        TileHashes::with_stored_size(reader, size, self.size)
    }

    fn check_size(&self, size: u64) -> Result<(), StoreError> {
        if size > self.size {
            return Err(StoreError::SizeOutOfRange {
                requested: size,
                size: self.size,
            });
        }
        Ok(())
    }

    fn proof_error(&self, source: ProofError) -> StoreError {
        StoreError::Proof {
            dir: self.dir.clone(),
            source,
        }
    }

    fn read(&self, relative: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.dir.join(relative);
        std::fs::read(&path).map_err(|source| io_error(&path, source))
    }

    /// Replaces `relative` atomically: temporary file, flush, rename, and with `sync_dir`
    /// flush the directory. Returns the directory.
    fn write_file(
        &self,
        relative: &str,
        bytes: &[u8],
        sync_dir: bool,
    ) -> Result<PathBuf, StoreError> {
        let path = self.dir.join(relative);
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|source| io_error(&parent, source))?;

        let mut file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&parent)
            .map_err(|source| io_error(&parent, source))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Tiles and the checkpoint are public and served as static files.
            file.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|source| io_error(file.path(), source))?;
        }
        file.write_all(bytes)
            .map_err(|source| io_error(file.path(), source))?;
        file.as_file()
            .sync_all()
            .map_err(|source| io_error(file.path(), source))?;
        file.persist(&path)
            .map_err(|error| io_error(&path, error.error))?;
        if sync_dir {
            File::open(&parent)
                .and_then(|dir| dir.sync_all())
                .map_err(|source| io_error(&parent, source))?;
        }
        Ok(parent)
    }
}

/// Bytes of a full hash tile.
const TILE_BYTES: usize = TILE_WIDTH as usize * HASH_LEN;

/// Returns the index and width of the right-edge tile of `level` in a tree of `size`
/// leaves. The width is 0 when the level has no partial tile.
fn edge_of(level: u8, size: u64) -> (u64, u64) {
    let hashes = size.checked_shr(u32::from(level) * 8).unwrap_or(0);
    (hashes / TILE_WIDTH, hashes % TILE_WIDTH)
}

/// A log's tiles as a [`TileReader`]: the right edge of the current tree from memory,
/// everything else from the log directory.
struct LogTiles<'a> {
    dir: DirTileReader,
    edges: Vec<(String, &'a [u8])>,
}

impl TileReader for LogTiles<'_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, TileError> {
        match self.edges.iter().find(|(edge, _)| edge == path) {
            Some((_, bytes)) => Ok(bytes.to_vec()),
            None => self.dir.read(path),
        }
    }
}

/// How long [`lock`] retries a lock held elsewhere before it reports [`StoreError::Locked`].
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Takes the appender lock of `dir`, retrying for up to [`LOCK_WAIT`].
///
/// The retry covers a lock that is still held for a moment after its `Log` is dropped:
/// a child process forked by another thread keeps the locked file open until it runs
/// its program.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| io_error(&path, source))?;
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error(&path, source)),
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
