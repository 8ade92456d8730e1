//! The auditor's on-disk log: tiles, entry bundles and the checkpoint in the tlog-tiles
//! layout, servable as static files.
//!
//! Every tile and bundle is written to a temporary file, flushed, renamed into place and
//! its directory flushed; the checkpoint is replaced the same way, after the tiles it
//! needs. A reader therefore never sees a checkpoint that points at missing tiles. A crash
//! before [`Log::checkpoint`] loses the entries appended since the last checkpoint: on
//! reopening, the log continues from the published size and rewrites those tile paths.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpoint, CheckpointError};
use super::hash::{Hash, leaf_hash, root_from_leaf_hashes};
use super::note::SignerKey;
use super::proof::{self, ProofError};
use super::tile::{
    self, DirTileReader, MAX_ENTRY_LEN, TILE_WIDTH, TileError, TileHashes, entries_path,
    parse_tile, tile_path,
};

/// File name of the checkpoint, in the log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";

/// File name of the lock held by the appender. The leading dot keeps it out of most
/// static file listings.
pub const LOCK_FILE: &str = ".lock";

/// Prefix of temporary files; a crash may leave some behind, and they are never read.
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
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    origin: String,
    signer: SignerKey,
    size: u64,
    published: u64,
    _lock: File,
}

impl Log {
    /// Creates a new log in `dir` and publishes the checkpoint of the empty tree.
    pub fn init(dir: &Path, origin: &str, signer: SignerKey) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| io_error(dir, source))?;
        let lock = lock(dir)?;
        if dir.join(CHECKPOINT_FILE).exists() {
            return Err(StoreError::AlreadyInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let mut log = Self {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            signer,
            size: 0,
            published: 0,
            _lock: lock,
        };
        log.checkpoint()?;
        Ok(log)
    }

    /// Opens the log in `dir` at the size of its published checkpoint.
    ///
    /// Checks that the checkpoint is signed by `signer` for `origin` and that the tiles
    /// reproduce its root hash. Does not re-read every entry bundle (see
    /// [`tile::verify_tiles`] for that).
    pub fn open(dir: &Path, origin: &str, signer: SignerKey) -> Result<Self, StoreError> {
        // NOTE: temporary files left by a crash (`.tmp-*`) are not removed; they are never
        // read and a static file server should not list dot files.
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

        let log = Self {
            dir: dir.to_path_buf(),
            origin: origin.to_owned(),
            signer,
            size: checkpoint.size,
            published: checkpoint.size,
            _lock: lock,
        };
        let root = log.root()?;
        if root != checkpoint.root {
            return Err(log.proof_error(ProofError::RootMismatch {
                root: checkpoint.root,
            }));
        }
        Ok(log)
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

    /// Appends `entry` and returns its index. The entry is written to its entry bundle and
    /// tiles at once, but is published only by the next [`Log::checkpoint`].
    pub fn append(&mut self, entry: &[u8]) -> Result<u64, StoreError> {
        if entry.len() > MAX_ENTRY_LEN {
            return Err(StoreError::EntryTooLarge { len: entry.len() });
        }
        let index = self.size;

        // The entry bundle: the partial bundle for the current size, plus this entry.
        let bundle_index = index / TILE_WIDTH;
        let width = index % TILE_WIDTH;
        let mut bundle = if width > 0 {
            self.read(&entries_path(bundle_index, width))?
        } else {
            Vec::new()
        };
        bundle.extend_from_slice(&(entry.len() as u16).to_be_bytes());
        bundle.extend_from_slice(entry);
        self.write_file(&entries_path(bundle_index, width + 1), &bundle)?;

        // The hash tiles: a tile that becomes full adds its subtree hash one level up.
        let mut level = 0u8;
        let mut position = index;
        let mut hash = leaf_hash(entry);
        loop {
            let tile_index = position / TILE_WIDTH;
            let width = position % TILE_WIDTH;
            let mut bytes = if width > 0 {
                let path = tile_path(level, tile_index, width);
                let bytes = self.read(&path)?;
                parse_tile(&bytes, width, &path)?;
                bytes
            } else {
                Vec::new()
            };
            bytes.extend_from_slice(hash.as_bytes());
            self.write_file(&tile_path(level, tile_index, width + 1), &bytes)?;
            if width + 1 < TILE_WIDTH {
                break;
            }
            let hashes = parse_tile(
                &bytes,
                TILE_WIDTH,
                &tile_path(level, tile_index, TILE_WIDTH),
            )?;
            hash = root_from_leaf_hashes(&hashes);
            level += 1;
            position = tile_index;
        }

        self.size += 1;
        Ok(index)
    }

    /// Signs a checkpoint for the current size, writes it to `<dir>/checkpoint` and returns
    /// the signed note bytes.
    pub fn checkpoint(&mut self) -> Result<Vec<u8>, StoreError> {
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
        self.write_file(CHECKPOINT_FILE, &bytes)?;
        self.published = self.size;
        Ok(bytes)
    }

    /// Returns the root hash of the current tree, read from the tiles.
    pub fn root(&self) -> Result<Hash, StoreError> {
        self.root_at(self.size)
    }

    /// Returns the root hash of the tree of `size` leaves, read from the tiles.
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        self.check_size(size)?;
        let reader = DirTileReader::new(&self.dir);
        proof::tree_root(&TileHashes::new(&reader, size), size).map_err(|e| self.proof_error(e))
    }

    /// Builds the inclusion proof of entry `index` in the tree of `size` leaves.
    pub fn prove_inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(size)?;
        let reader = DirTileReader::new(&self.dir);
        proof::prove_inclusion(&TileHashes::new(&reader, size), index, size)
            .map_err(|e| self.proof_error(e))
    }

    /// Builds the consistency proof from the tree of `old_size` to that of `new_size`.
    pub fn prove_consistency(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, StoreError> {
        self.check_size(new_size)?;
        let reader = DirTileReader::new(&self.dir);
        proof::prove_consistency(&TileHashes::new(&reader, new_size), old_size, new_size)
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
        let reader = DirTileReader::new(&self.dir);
        let mut entries = tile::read_entries(&reader, self.size, index, index + 1)?;
        entries.pop().ok_or(StoreError::SizeOutOfRange {
            requested: index,
            size: self.size,
        })
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

    /// Replaces `relative` atomically: temporary file, flush, rename, flush the directory.
    fn write_file(&self, relative: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.dir.join(relative);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|source| io_error(parent, source))?;

        let mut file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(parent)
            .map_err(|source| io_error(parent, source))?;
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
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| io_error(parent, source))
    }
}

/// Takes the appender lock of `dir`, without waiting.
fn lock(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| io_error(&path, source))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_error(&path, source)),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
