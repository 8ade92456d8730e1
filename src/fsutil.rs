//! File writes that never overwrite an output and never leave a half-written file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A failed output write, with the path it concerned.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The output exists already; outputs are never overwritten.
    #[error(
        "{path} already exists; outputs are never overwritten\nhint: move it away, or choose another output path"
    )]
    Exists {
        /// The output that exists.
        path: PathBuf,
    },
    /// The operating system reported an error.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The output being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Fails with [`WriteError::Exists`] if `path` exists, so that a command can check all its
/// outputs before it writes the first one. [`write_new`] checks again when it writes.
pub fn check_absent(path: &Path) -> Result<(), WriteError> {
    if path.exists() {
        return Err(WriteError::Exists {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically, failing if `path` exists.
///
/// The bytes go to a temporary file in the same directory, are flushed to disk, and the
/// file is then hard-linked into place, which fails rather than replaces an existing file.
/// Missing parent directories are created. File mode is 0600 on Unix when `private`.
pub fn write_new(path: &Path, bytes: &[u8], private: bool) -> Result<(), WriteError> {
    let io_error = |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    check_absent(path)?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(io_error)?;

    let mut file = tempfile::Builder::new()
        .prefix(".fleet-ceremony-")
        .tempfile_in(parent)
        .map_err(io_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if private { 0o600 } else { 0o644 };
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io_error)?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(bytes).map_err(io_error)?;
    file.as_file().sync_all().map_err(io_error)?;

    file.persist_noclobber(path).map_err(|error| {
        if error.error.kind() == std::io::ErrorKind::AlreadyExists {
            WriteError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io_error(error.error)
        }
    })?;
    if let Ok(dir) = std::fs::File::open(parent) {
        // Persist the directory entry as well; a failure here leaves a complete file.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_rejects_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_new(&path, b"first", false).unwrap();
        let error = write_new(&path, b"second", false).unwrap_err();
        assert!(matches!(error, WriteError::Exists { .. }));
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }

    #[test]
    fn write_new_creates_parent_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/out.txt");
        write_new(&path, b"x", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
