//! The auditor's append to its log: check the signed statement and the log rules, append
//! the entry, publish a checkpoint and prove the entry's inclusion.

use ed25519_dalek::VerifyingKey;

use super::files::AuditorSignature;
use super::log_entry::{EntryError, LogEntry, check_append};
use super::log_proof::{InclusionProof, LogProof};
use crate::log::{Log, StoreError, TileError};

/// A failed append of a statement to the auditor's log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The auditor signature does not verify with the given auditor key.
    #[error(
        "the auditor signature over namespace \"{namespace}\" epoch {epoch} does not verify: {reason}\nhint: check that the auditor key is the one that signed the statement"
    )]
    BadSignature {
        /// The statement namespace.
        namespace: String,
        /// The statement epoch.
        epoch: u64,
        /// Why verification failed.
        reason: String,
    },
    /// The statement breaks a log rule or cannot be encoded as an entry.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// An entry already in the log is not a valid entry.
    #[error("log entry {index} is not a fleet-ceremony entry: {source}")]
    BadHistory {
        /// The entry index.
        index: u64,
        /// Why it was rejected.
        source: EntryError,
    },
    /// The log store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry bundle could not be read.
    #[error(transparent)]
    Tile(#[from] TileError),
}

/// Reads and parses every entry of the log, in index order.
///
/// NOTE: entries are read from the entry bundles without comparing them with the hash
/// tiles; `log::tile::verify_tiles` does that for a whole log.
pub fn read_history(log: &Log) -> Result<Vec<LogEntry>, AppendError> {
    let entries = log.entries(0, log.size())?;
    (0u64..)
        .zip(entries)
        .map(|(index, bytes)| {
            LogEntry::parse(&bytes).map_err(|source| AppendError::BadHistory { index, source })
        })
        .collect()
}

/// Appends the statement signed in `auditor`, publishes a new checkpoint and returns it
/// with the inclusion proof of the new entry.
///
/// Checks first that the signature verifies with `auditor_key` (strict Ed25519) and that
/// the entry follows the log rules of [`check_append`]. Writes nothing when a check fails.
pub fn append_statement(
    log: &mut Log,
    auditor: &AuditorSignature,
    auditor_key: &VerifyingKey,
) -> Result<LogProof, AppendError> {
    let statement = auditor.statement().map_err(|error| EntryError::Field {
        field: "digest",
        reason: error.to_string(),
    })?;
    let bad_signature = |reason: String| AppendError::BadSignature {
        namespace: statement.namespace.clone(),
        epoch: statement.epoch,
        reason,
    };
    let signature = auditor
        .signature()
        .map_err(|error| bad_signature(error.to_string()))?;
    statement
        .verify(auditor_key, &signature)
        .map_err(|error| bad_signature(error.to_string()))?;

    let entry = LogEntry::from_auditor(auditor)?;
    let history = read_history(log)?;
    check_append(&history, &entry)?;

    let index = log.append(&entry.encode())?;
    let checkpoint = log.checkpoint()?;
    let size = log.size();
    let hashes = log.prove_inclusion(index, size)?;
    tracing::info!(index, size, namespace = %entry.namespace, epoch = entry.epoch, "logged the statement");

    let checkpoint = String::from_utf8(checkpoint).expect("checkpoint notes are UTF-8");
    Ok(LogProof::new(
        checkpoint,
        InclusionProof::new(index, size, &hashes),
    ))
}
