//! The ceremony transcript: an append-only JSON Lines file whose records are hash-chained.
//!
//! Each line is one JSON object: `seq` (from 1), `time` (RFC 3339 UTC with `Z`), `action`,
//! `details` (an object) and `prev_sha256`, the hex SHA-256 of the previous line's bytes
//! including its newline (64 zeros for the first line). The transcript digest is the
//! SHA-256 of the whole file; the fleet-key document records it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_sha256` of the first record.
pub const FIRST_PREV_SHA256: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Position in the transcript, from 1.
    pub seq: u64,
    /// When the record was written, RFC 3339 in UTC with a `Z` offset.
    pub time: String,
    /// Action name, such as `token-initialised`.
    pub action: String,
    /// Facts about the action; never secrets.
    pub details: serde_json::Value,
    /// Hex SHA-256 of the previous line including its newline.
    pub prev_sha256: String,
}

/// A transcript that cannot be created, read, verified or appended to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// The transcript exists already, so a new one is not created.
    #[error(
        "{path} already exists\nhint: to continue an interrupted ceremony, open the transcript instead of creating it"
    )]
    Exists {
        /// The transcript file.
        path: PathBuf,
    },
    /// The operating system reported an error.
    #[error("cannot access the transcript {path}: {source}")]
    Io {
        /// The transcript file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A verification error in a transcript file.
    #[error("{path}: {source}")]
    File {
        /// The transcript file.
        path: PathBuf,
        /// The error, with its line.
        source: Box<TranscriptError>,
    },
    /// The last line has no newline: the write of that line did not finish.
    #[error(
        "line {line}: truncated record (no final newline)\nhint: the ceremony stopped while writing this line; the transcript cannot be continued"
    )]
    Truncated {
        /// The incomplete line.
        line: usize,
    },
    /// A line is not a transcript record.
    #[error("line {line}: invalid record: {message}")]
    Invalid {
        /// The line.
        line: usize,
        /// Description of the problem.
        message: String,
    },
    /// A record's `seq` is not its line number.
    #[error(
        "line {line}: seq is {found}, expected {line}\nhint: lines were removed, inserted or reordered"
    )]
    Seq {
        /// The line.
        line: usize,
        /// The `seq` found.
        found: u64,
    },
    /// A record's `prev_sha256` does not match the line before it.
    #[error(
        "line {line}: prev_sha256 does not match line {changed_line}\nhint: line {changed_line} was changed after line {line} was written"
    )]
    BrokenChain {
        /// The line whose `prev_sha256` does not match.
        line: usize,
        /// The line whose bytes no longer match.
        changed_line: usize,
    },
    /// A record's time is not RFC 3339 in UTC with a `Z` offset.
    #[error("line {line}: time {time:?} is not RFC 3339 UTC with a Z offset")]
    Time {
        /// The line.
        line: usize,
        /// The time found.
        time: String,
    },
    /// `append` was given an empty action or details that are not a JSON object.
    #[error("invalid transcript entry: {0}")]
    Entry(String),
}

/// An open transcript, positioned for appending.
#[derive(Debug)]
pub struct Transcript {
    path: PathBuf,
    file: File,
    records: Vec<Record>,
    last_line_sha256: String,
    file_hasher: Sha256,
}

impl Transcript {
    /// Creates a new, empty transcript; fails if the file exists. Missing parent folders
    /// are created.
    pub fn create(path: &Path) -> Result<Self, TranscriptError> {
        let io_error = |source| TranscriptError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => TranscriptError::Exists {
                    path: path.to_path_buf(),
                },
                _ => io_error(source),
            })?;
        file.sync_all().map_err(io_error)?;

        Ok(Self {
            path: path.to_path_buf(),
            file,
            records: Vec::new(),
            last_line_sha256: FIRST_PREV_SHA256.to_string(),
            file_hasher: Sha256::new(),
        })
    }

    /// Opens an existing transcript to continue it, after verifying its whole chain
    /// (see [`verify_chain`]). The verified records are available from [`Self::records`].
    pub fn open(path: &Path) -> Result<Self, TranscriptError> {
        let io_error = |source| TranscriptError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io_error)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_error)?;

        let records = verify_chain(&bytes).map_err(|source| TranscriptError::File {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let last_line_sha256 = match last_line(&bytes) {
            Some(line) => hex::encode(Sha256::digest(line)),
            None => FIRST_PREV_SHA256.to_string(),
        };
        let mut file_hasher = Sha256::new();
        file_hasher.update(&bytes);

        Ok(Self {
            path: path.to_path_buf(),
            file,
            records,
            last_line_sha256,
            file_hasher,
        })
    }

    /// Appends one record and flushes it to disk (`sync_data`) before returning it.
    ///
    /// `details` must be a JSON object of facts: labels, fingerprints, file digests, token
    /// serials. It must never hold a secret (PIN, share, key material, identity file),
    /// because the transcript is published as evidence.
    ///
    /// A failed write can leave a partial last line, which [`Self::open`] then reports as
    /// truncated.
    pub fn append(
        &mut self,
        action: &str,
        details: serde_json::Value,
    ) -> Result<Record, TranscriptError> {
        if action.is_empty() || action.chars().any(char::is_control) {
            let message = format!("action {action:?} is empty or has control characters");
            return Err(TranscriptError::Entry(message));
        }
        if !details.is_object() {
            return Err(TranscriptError::Entry(
                "details must be a JSON object".to_string(),
            ));
        }

        let record = Record {
            seq: self.records.len() as u64 + 1,
            time: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            action: action.to_string(),
            details,
            prev_sha256: self.last_line_sha256.clone(),
        };
        let mut line = serde_json::to_vec(&record)
            .map_err(|error| TranscriptError::Entry(error.to_string()))?;
        line.push(b'\n');

        let io_error = |source| TranscriptError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).map_err(io_error)?;
        self.file.sync_data().map_err(io_error)?;

        self.last_line_sha256 = hex::encode(Sha256::digest(&line));
        self.file_hasher.update(&line);
        self.records.push(record.clone());
        Ok(record)
    }

    /// Returns the records written so far, including those read by [`Self::open`].
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Lowercase hex SHA-256 of the whole file as written so far.
    pub fn digest(&self) -> String {
        hex::encode(self.file_hasher.clone().finalize())
    }

    /// Returns the transcript file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Verifies a transcript's bytes and returns its records.
///
/// It checks that the file ends with a newline and that each line is a JSON record with
/// exactly the five fields. In each record, `seq` must equal the line number, `time` must
/// be RFC 3339 with a `Z` offset, `details` must be an object and `prev_sha256` must be the
/// SHA-256 of the previous line.
///
/// It does not check the last line's content, which no later line covers: compare
/// [`sha256_hex`] of the file with the digest that the fleet-key document records.
pub fn verify_chain(bytes: &[u8]) -> Result<Vec<Record>, TranscriptError> {
    let mut records = Vec::new();
    if bytes.is_empty() {
        return Ok(records);
    }
    let lines: Vec<&[u8]> = bytes.split_inclusive(|byte| *byte == b'\n').collect();
    let mut expected_prev = FIRST_PREV_SHA256.to_string();

    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        if !line.ends_with(b"\n") {
            return Err(TranscriptError::Truncated { line: number });
        }
        let record: Record = serde_json::from_slice(&line[..line.len() - 1]).map_err(|error| {
            TranscriptError::Invalid {
                line: number,
                message: error.to_string(),
            }
        })?;
        check_record(&record, number, &expected_prev)?;
        expected_prev = hex::encode(Sha256::digest(line));
        records.push(record);
    }
    Ok(records)
}

fn check_record(record: &Record, line: usize, expected_prev: &str) -> Result<(), TranscriptError> {
    if record.seq != line as u64 {
        return Err(TranscriptError::Seq {
            line,
            found: record.seq,
        });
    }
    if record.prev_sha256 != expected_prev {
        return Err(TranscriptError::BrokenChain {
            line,
            changed_line: line - 1,
        });
    }
    let utc = record.time.ends_with('Z') && DateTime::parse_from_rfc3339(&record.time).is_ok();
    if !utc {
        return Err(TranscriptError::Time {
            line,
            time: record.time.clone(),
        });
    }
    if record.action.is_empty() {
        let message = "empty action".to_string();
        return Err(TranscriptError::Invalid { line, message });
    }
    if !record.details.is_object() {
        let message = "details is not a JSON object".to_string();
        return Err(TranscriptError::Invalid { line, message });
    }
    Ok(())
}

/// Returns the last line of `bytes`, with its newline.
fn last_line(bytes: &[u8]) -> Option<&[u8]> {
    bytes.split_inclusive(|byte| *byte == b'\n').next_back()
}

/// Lowercase hex SHA-256 of a transcript's bytes: the transcript digest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn three_records(path: &Path) -> Transcript {
        let mut transcript = Transcript::create(path).unwrap();
        transcript
            .append("ceremony-started", json!({"fleet": "demo"}))
            .unwrap();
        transcript
            .append("token-initialised", json!({"label": "a"}))
            .unwrap();
        transcript
            .append("key-generated", json!({"fingerprint": "ab"}))
            .unwrap();
        transcript
    }

    #[test]
    fn chain_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        let written = three_records(&path);

        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(written.digest(), sha256_hex(&bytes));
        let records = verify_chain(&bytes).unwrap();
        assert_eq!(records, written.records());
        assert_eq!(records[0].prev_sha256, FIRST_PREV_SHA256);
        assert_eq!(records[2].seq, 3);
        assert!(records[1].time.ends_with('Z'));
    }

    #[test]
    fn open_continues_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        drop(three_records(&path));

        let mut reopened = Transcript::open(&path).unwrap();
        assert_eq!(reopened.records().len(), 3);
        let record = reopened.append("resumed", json!({})).unwrap();
        assert_eq!(record.seq, 4);

        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(verify_chain(&bytes).unwrap().len(), 4);
        assert_eq!(reopened.digest(), sha256_hex(&bytes));
    }

    #[test]
    fn create_rejects_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        std::fs::write(&path, b"").unwrap();
        let error = Transcript::create(&path).unwrap_err();
        assert!(matches!(error, TranscriptError::Exists { .. }));
    }

    #[test]
    fn tampering_is_detected_at_the_changed_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        drop(three_records(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        // The last line is covered only by the file digest, so lines 1 and 2 are changed.
        for changed in 0..lines.len() - 1 {
            let mut tampered: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            tampered[changed] = tampered[changed].replace("\"details\":{", "\"details\":{\"x\":1,");
            let bytes = format!("{}\n", tampered.join("\n"));
            match verify_chain(bytes.as_bytes()).unwrap_err() {
                TranscriptError::BrokenChain { changed_line, .. } => {
                    assert_eq!(changed_line, changed + 1);
                }
                other => panic!("line {}: unexpected error {other}", changed + 1),
            }
        }
    }

    #[test]
    fn tampered_last_line_changes_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        let written = three_records(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let tampered = text.replace("\"fingerprint\":\"ab\"", "\"fingerprint\":\"cd\"");
        assert_ne!(tampered, text);
        assert_ne!(sha256_hex(tampered.as_bytes()), written.digest());
    }

    #[test]
    fn truncated_last_line_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        drop(three_records(&path));
        let bytes = std::fs::read(&path).unwrap();
        let cut = &bytes[..bytes.len() - 10];
        let error = verify_chain(cut).unwrap_err();
        assert!(matches!(error, TranscriptError::Truncated { line: 3 }));

        std::fs::write(&path, cut).unwrap();
        let error = Transcript::open(&path).unwrap_err();
        assert!(
            error.to_string().contains("line 3: truncated record"),
            "{error}"
        );
    }

    #[test]
    fn removed_line_breaks_seq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transcript.jsonl");
        drop(three_records(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let bytes = format!("{}\n{}\n", lines[0], lines[2]);
        let error = verify_chain(bytes.as_bytes()).unwrap_err();
        assert!(matches!(error, TranscriptError::Seq { line: 2, found: 3 }));
    }

    #[test]
    fn non_utc_time_is_rejected() {
        let line = format!(
            "{{\"seq\":1,\"time\":\"2026-01-01T10:00:00+01:00\",\"action\":\"a\",\"details\":{{}},\"prev_sha256\":\"{FIRST_PREV_SHA256}\"}}\n"
        );
        let error = verify_chain(line.as_bytes()).unwrap_err();
        assert!(matches!(error, TranscriptError::Time { line: 1, .. }));
    }

    #[test]
    fn append_rejects_non_object_details() {
        let dir = tempfile::tempdir().unwrap();
        let mut transcript = Transcript::create(&dir.path().join("t.jsonl")).unwrap();
        let error = transcript.append("a", json!([1, 2])).unwrap_err();
        assert!(matches!(error, TranscriptError::Entry(_)));
        assert!(transcript.records().is_empty());
    }
}
