//! The steps a quorum action's transcript records as done, for resuming and abandoning.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{QuorumError, action};
use crate::runbook::QuorumRunbook;
pub(super) use crate::transcript::sha256_hex;
use crate::transcript::{Record, Transcript};

/// One share file of a split, as the split record lists it before the file is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RecordedShare {
    /// Custodian the share is for.
    pub custodian: String,
    /// x-coordinate of the share.
    pub index: u64,
    /// Path of the share file.
    pub file: PathBuf,
    /// Hex SHA-256 of the armored file bytes.
    pub sha256: String,
}

/// The last split a transcript records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct RecordedSplit {
    /// Id of the new credential set.
    pub credential_set: String,
    /// The split's share files; `None` for a transcript written before the split record
    /// listed them.
    pub files: Option<Vec<RecordedShare>>,
}

/// The facts a quorum action's transcript records, gathered from its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct QuorumProgress {
    /// Runbook kind of the start record.
    pub kind: Option<String>,
    /// Runbook digest of the start record.
    pub runbook_sha256: Option<String>,
    /// Credential set of the shares the action started with.
    pub credential_set: Option<String>,
    /// The last split, if any.
    pub split: Option<RecordedSplit>,
    /// Custodians whose share file of the last split is recorded as written.
    pub shares_written: BTreeSet<String>,
    /// Members whose fleet key objects are recorded as destroyed, with the objects counted.
    pub destroyed: BTreeMap<String, usize>,
    /// Members on which an interrupted run destroyed objects it did not record.
    pub count_not_recorded: BTreeSet<String>,
    /// Fingerprint of the fleet key a retirement read before destroying it.
    pub key_fingerprint: Option<String>,
    /// Members recorded to hold no fleet key object after the destruction.
    pub absent: BTreeSet<String>,
    /// The new member's token, as (member, serial), once recorded as initialised.
    pub token: Option<(String, String)>,
    /// Whether the fleet key copy to the new member is recorded.
    pub replicated: bool,
    /// Whether the action is recorded as finished.
    pub finished: bool,
    /// Whether the action is recorded as abandoned.
    pub abandoned: bool,
}

impl QuorumProgress {
    /// Gathers the progress recorded in `records`.
    pub fn from_records(records: &[Record]) -> QuorumProgress {
        let mut progress = QuorumProgress::default();
        for record in records {
            progress.apply(record);
        }
        progress
    }

    fn apply(&mut self, record: &Record) {
        let details = &record.details;
        let text = |field: &str| details[field].as_str().map(str::to_owned);
        match record.action.as_str() {
            action::STARTED => {
                self.kind = text("kind");
                self.runbook_sha256 = text("runbook_sha256");
                self.credential_set = text("credential_set");
                self.key_fingerprint = text("key_fingerprint");
            }
            // A resumed retirement whose start record lacks the fingerprint records it here.
            action::RESUMED if self.key_fingerprint.is_none() => {
                self.key_fingerprint = text("key_fingerprint");
            }
            action::SPLIT => {
                // A resumed run splits again only when no file of the earlier split
                // exists, so the last split replaces the earlier one.
                self.split = text("credential_set").map(|credential_set| RecordedSplit {
                    credential_set,
                    files: recorded_shares(&details["files"]),
                });
                self.shares_written.clear();
            }
            action::SHARE_WRITTEN => {
                if let Some(custodian) = text("custodian") {
                    self.shares_written.insert(custodian);
                }
            }
            action::KEY_DESTROYED => {
                if let Some(member) = text("member") {
                    let objects = details["objects"].as_u64().unwrap_or(0);
                    let objects = usize::try_from(objects).unwrap_or(usize::MAX);
                    if details["count_not_recorded"] == true {
                        self.count_not_recorded.insert(member.clone());
                    }
                    *self.destroyed.entry(member).or_default() += objects;
                }
            }
            action::KEY_ABSENT => {
                if let Some(member) = text("member") {
                    self.absent.insert(member);
                }
            }
            action::TOKEN_INITIALISED => {
                if let (Some(member), Some(serial)) = (text("member"), text("token_serial")) {
                    self.token = Some((member, serial));
                }
            }
            action::KEY_REPLICATED => self.replicated = true,
            action::FINISHED => self.finished = true,
            action::ABANDONED => self.abandoned = true,
            _ => {}
        }
    }
}

fn recorded_shares(files: &Value) -> Option<Vec<RecordedShare>> {
    files
        .as_array()?
        .iter()
        .map(|entry| {
            Some(RecordedShare {
                custodian: entry["custodian"].as_str()?.to_owned(),
                index: entry["index"].as_u64()?,
                file: PathBuf::from(entry["file"].as_str()?),
                sha256: entry["sha256"].as_str()?.to_owned(),
            })
        })
        .collect()
}

/// State on disk of a recorded split's share files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ShareSetState {
    /// No file of the split exists.
    Absent,
    /// Some files exist with the recorded bytes; the others are missing.
    Partial {
        /// The files present.
        present: Vec<RecordedShare>,
        /// The files missing.
        missing: Vec<RecordedShare>,
    },
    /// Every file exists with the recorded bytes.
    Complete,
}

/// Reads each share file of `split` and compares it with the recorded digest.
///
/// Fails when a file at a recorded path contains other bytes, because it is not a share of
/// this split and must not be removed or counted.
pub(super) fn share_set_state(
    transcript: &Path,
    files: &[RecordedShare],
) -> Result<ShareSetState, QuorumError> {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for share in files {
        let bytes = match std::fs::read(&share.file) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                missing.push(share.clone());
                continue;
            }
            Err(source) => {
                return Err(QuorumError::Read {
                    path: share.file.clone(),
                    source,
                });
            }
        };
        if sha256_hex(&bytes) != share.sha256 {
            return Err(QuorumError::Mismatch {
                transcript: transcript.to_owned(),
                step: action::SPLIT,
                detail: format!(
                    "{} is not the share of custodian {} that this split wrote (its SHA-256 differs from the recorded one)",
                    share.file.display(),
                    share.custodian
                ),
                hint:
                    "find out where that file came from; this tool never overwrites or removes it"
                        .into(),
            });
        }
        present.push(share.clone());
    }
    Ok(match (present.is_empty(), missing.is_empty()) {
        (true, _) => ShareSetState::Absent,
        (false, true) => ShareSetState::Complete,
        (false, false) => ShareSetState::Partial { present, missing },
    })
}

/// Opens the transcript of an action that a `run --resume` or `abandon` continues, and
/// checks that it is this runbook's, unfinished and not abandoned.
pub(super) fn open_unfinished(
    runbook: &QuorumRunbook,
) -> Result<(Transcript, QuorumProgress), QuorumError> {
    let path = runbook.transcript();
    if path.symlink_metadata().is_err() {
        return Err(QuorumError::NotStarted { path });
    }
    let transcript = Transcript::open(&path)?;
    let progress = QuorumProgress::from_records(transcript.records());
    if progress.abandoned {
        return Err(QuorumError::Abandoned { path });
    }
    if progress.kind.as_deref() != Some(runbook.kind()) {
        return Err(QuorumError::Mismatch {
            transcript: path,
            step: action::STARTED,
            detail: format!(
                "the transcript records a {} action, but the runbook is of kind {}",
                progress.kind.as_deref().unwrap_or("unknown"),
                runbook.kind()
            ),
            hint: "give the runbook this transcript was written for".into(),
        });
    }
    if progress.runbook_sha256.as_deref() != Some(runbook.sha256()) {
        return Err(QuorumError::Mismatch {
            transcript: path,
            step: action::STARTED,
            detail: format!(
                "the runbook {} changed since the action started (its SHA-256 differs from the recorded one)",
                runbook.path.display()
            ),
            hint: "restore the runbook as it was when the action started".into(),
        });
    }
    Ok((transcript, progress))
}

/// Fails unless the shares given are of `expected`, the credential set named by `step`.
pub(super) fn expect_credential_set(
    transcript: &Path,
    step: &'static str,
    given: &str,
    expected: Option<&str>,
    hint: &str,
) -> Result<(), QuorumError> {
    if expected == Some(given) {
        return Ok(());
    }
    Err(QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step,
        detail: format!(
            "the shares given are of credential set {given}, but the transcript expects {}",
            expected.unwrap_or("none")
        ),
        hint: hint.to_owned(),
    })
}

/// Returns the action of the last record, for the resume record and messages.
pub(super) fn last_action(transcript: &Transcript) -> String {
    transcript
        .records()
        .last()
        .map_or_else(|| "none".to_owned(), |record| record.action.clone())
}

/// Returns the share files a split record lists, or fails for a record that lists none.
pub(super) fn recorded_files<'a>(
    transcript: &Path,
    split: &'a RecordedSplit,
) -> Result<&'a [RecordedShare], QuorumError> {
    split.files.as_deref().ok_or_else(|| QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step: action::SPLIT,
        detail: "the split record lists no share files, so the files on disk cannot be checked against it".into(),
        hint: "this transcript was written by an older version; finish or abandon it with that version".into(),
    })
}

/// Builds the error for share files recorded as written that are all gone.
pub(super) fn recorded_share_missing(transcript: &Path, written: &BTreeSet<String>) -> QuorumError {
    let names: Vec<&str> = written.iter().map(String::as_str).collect();
    QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step: action::SHARE_WRITTEN,
        detail: format!(
            "the transcript records the share files of {} as written, but none of the new set exists",
            names.join(", ")
        ),
        hint: "put the share files back in place, then resume again".into(),
    }
}

/// Builds the error for a share set that an interrupted run left partly written.
pub(super) fn partial_set(
    transcript: &Path,
    present: &[RecordedShare],
    missing: &[RecordedShare],
) -> QuorumError {
    let list = |shares: &[RecordedShare]| {
        shares
            .iter()
            .map(|share| share.file.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step: action::SHARE_WRITTEN,
        detail: format!(
            "the run stopped while writing the new share set, so only some of its files exist (present: {}; missing: {}), and shares of another split cannot complete it",
            list(present),
            list(missing)
        ),
        hint: "run `fleet-ceremony abandon` with this runbook, which removes the partial set and records it; then run the action again with a new outputs.work_dir".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: u64, action: &str, details: Value) -> Record {
        Record {
            seq,
            time: "2026-12-04T10:00:00Z".into(),
            action: action.into(),
            details,
            prev_sha256: String::new(),
        }
    }

    #[test]
    fn later_split_replaces_earlier() {
        let share =
            json!({"custodian": "alice", "index": 1, "file": "s/alice.age", "sha256": "aa"});
        let records = [
            record(1, action::STARTED, json!({"kind": "rotate-custodians"})),
            record(2, action::SPLIT, json!({"credential_set": "one"})),
            record(3, action::SHARE_WRITTEN, json!({"custodian": "alice"})),
            record(
                4,
                action::SPLIT,
                json!({"credential_set": "two", "files": [share]}),
            ),
        ];
        let progress = QuorumProgress::from_records(&records);
        let split = progress.split.unwrap();
        assert_eq!(split.credential_set, "two");
        assert_eq!(split.files.unwrap()[0].custodian, "alice");
        assert!(progress.shares_written.is_empty());
    }

    #[test]
    fn destroyed_objects_add_up() {
        let records = [
            record(
                1,
                action::KEY_DESTROYED,
                json!({"member": "m", "objects": 1}),
            ),
            record(
                2,
                action::KEY_DESTROYED,
                json!({"member": "m", "objects": 1}),
            ),
            record(3, action::KEY_ABSENT, json!({"member": "m"})),
        ];
        let progress = QuorumProgress::from_records(&records);
        assert_eq!(progress.destroyed.get("m"), Some(&2));
        assert!(progress.absent.contains("m"));
    }

    #[test]
    fn share_set_state_detects_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alice.age");
        std::fs::write(&file, b"other bytes").unwrap();
        let shares = [RecordedShare {
            custodian: "alice".into(),
            index: 1,
            file,
            sha256: sha256_hex(b"share bytes"),
        }];
        let error = share_set_state(Path::new("t.jsonl"), &shares).unwrap_err();
        assert!(error.to_string().contains("alice.age"), "{error}");
    }

    #[test]
    fn share_set_state_partial() {
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("alice.age");
        std::fs::write(&written, b"a").unwrap();
        let shares = [
            RecordedShare {
                custodian: "alice".into(),
                index: 1,
                file: written,
                sha256: sha256_hex(b"a"),
            },
            RecordedShare {
                custodian: "bob".into(),
                index: 2,
                file: dir.path().join("bob.age"),
                sha256: sha256_hex(b"b"),
            },
        ];
        let state = share_set_state(Path::new("t.jsonl"), &shares).unwrap();
        assert!(matches!(state, ShareSetState::Partial { .. }), "{state:?}");
        assert_eq!(
            share_set_state(Path::new("t.jsonl"), &shares[..1]).unwrap(),
            ShareSetState::Complete
        );
        assert_eq!(
            share_set_state(Path::new("t.jsonl"), &shares[1..]).unwrap(),
            ShareSetState::Absent
        );
    }
}
