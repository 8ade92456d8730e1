//! The steps a ceremony's transcript records as done, for resuming and abandoning.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::transcript::Record;

/// Transcript action names of the deployment steps, in the order they run.
pub mod action {
    /// The first record: ceremony id and runbook digest.
    pub const STARTED: &str = "ceremony started";
    /// A later run picked up an interrupted ceremony.
    pub const RESUMED: &str = "ceremony resumed";
    /// PINs generated and split; the shares recombine.
    pub const SPLIT: &str = "credentials split";
    /// One custodian's share file written.
    pub const SHARE_WRITTEN: &str = "share written";
    /// One member's token initialised with its PINs.
    pub const TOKEN_INITIALISED: &str = "token initialised";
    /// Objects left by an interrupted step removed before the step runs again.
    pub const LEFTOVERS_REMOVED: &str = "unrecorded objects removed";
    /// An output left by an interrupted step moved aside.
    pub const OUTPUT_MOVED: &str = "unrecorded output moved aside";
    /// The fleet key generated on the origin.
    pub const KEY_GENERATED: &str = "fleet key generated";
    /// The fleet key copied to one member.
    pub const KEY_REPLICATED: &str = "fleet key replicated";
    /// The origin's key made non-extractable.
    pub const KEY_LOCKED: &str = "fleet key locked";
    /// Every member's key attributes read back and checked.
    pub const KEY_CHECKED: &str = "fleet key checked on every member";
    /// The fleet-key document written.
    pub const DOCUMENT_WRITTEN: &str = "fleet-key document written";
    /// The signing request written; the HSM part is over.
    pub const REQUEST_WRITTEN: &str = "signing request written";
    /// The fleet key destroyed on one member by `abandon`.
    pub const KEY_DESTROYED: &str = "fleet key destroyed";
    /// The ceremony abandoned.
    pub const ABANDONED: &str = "ceremony abandoned";
    /// The assembled bundle verified.
    pub const BUNDLE_VERIFIED: &str = "bundle verified";
    /// The evidence written; the ceremony is finished.
    pub const EVIDENCE_WRITTEN: &str = "evidence written";
}

/// The fleet key as the transcript records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKey {
    /// Fingerprint of the public key.
    pub fingerprint: String,
    /// CKA_ID, hex.
    pub id: String,
}

/// The facts a transcript records, gathered from its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Ceremony id.
    pub ceremony: Option<String>,
    /// Time of the first record.
    pub started_at: Option<DateTime<Utc>>,
    /// Credential set id of the shares.
    pub credential_set: Option<String>,
    /// Custodians whose share file is written.
    pub shares_written: BTreeSet<String>,
    /// Members whose token is initialised, with the token serial.
    pub tokens: BTreeMap<String, String>,
    /// The fleet key, once generated.
    pub key: Option<RecordedKey>,
    /// Members the key was copied to.
    pub replicated: BTreeSet<String>,
    /// Whether the origin's key is locked.
    pub locked: bool,
    /// Whether every member's key was checked.
    pub checked: bool,
    /// Whether the document was written.
    pub document_written: bool,
    /// Whether the signing request was written.
    pub request_written: bool,
    /// Whether the ceremony was abandoned.
    pub abandoned: bool,
    /// Whether the evidence was written.
    pub finished: bool,
}

impl Progress {
    /// Gathers the progress recorded in `records`.
    pub fn from_records(records: &[Record]) -> Progress {
        let mut progress = Progress::default();
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
                self.ceremony = text("ceremony");
                self.started_at = DateTime::parse_from_rfc3339(&record.time)
                    .ok()
                    .map(|time| time.with_timezone(&Utc));
            }
            action::SPLIT => self.credential_set = text("credential_set"),
            action::SHARE_WRITTEN => {
                if let Some(custodian) = text("custodian") {
                    self.shares_written.insert(custodian);
                }
            }
            action::TOKEN_INITIALISED => {
                if let (Some(member), Some(serial)) = (text("member"), text("token_serial")) {
                    self.tokens.insert(member, serial);
                }
            }
            action::KEY_GENERATED => {
                if let (Some(fingerprint), Some(id)) = (text("fingerprint"), text("id")) {
                    self.key = Some(RecordedKey { fingerprint, id });
                }
            }
            action::KEY_REPLICATED => {
                if let Some(member) = text("to") {
                    self.replicated.insert(member);
                }
            }
            action::KEY_LOCKED => self.locked = true,
            action::KEY_CHECKED => self.checked = true,
            action::DOCUMENT_WRITTEN => self.document_written = true,
            action::REQUEST_WRITTEN => self.request_written = true,
            action::ABANDONED => self.abandoned = true,
            action::EVIDENCE_WRITTEN => self.finished = true,
            _ => {}
        }
    }

    /// Returns the last action of `records`, for messages.
    pub fn last_action(records: &[Record]) -> String {
        records
            .last()
            .map_or_else(|| "none".to_owned(), |record| record.action.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(seq: u64, action: &str, details: serde_json::Value) -> Record {
        Record {
            seq,
            time: "2026-12-04T10:00:00.000Z".into(),
            action: action.into(),
            details,
            prev_sha256: String::new(),
        }
    }

    #[test]
    fn progress_collects_each_step() {
        let records = [
            record(1, action::STARTED, json!({"ceremony": "c-1"})),
            record(2, action::SPLIT, json!({"credential_set": "set-1"})),
            record(3, action::SHARE_WRITTEN, json!({"custodian": "alice"})),
            record(
                4,
                action::TOKEN_INITIALISED,
                json!({"member": "m-1", "token_serial": "s1"}),
            ),
            record(
                5,
                action::KEY_GENERATED,
                json!({"fingerprint": "ff", "id": "01"}),
            ),
            record(6, action::KEY_REPLICATED, json!({"to": "m-2"})),
        ];
        let progress = Progress::from_records(&records);
        assert_eq!(progress.ceremony.as_deref(), Some("c-1"));
        assert!(progress.started_at.is_some());
        assert_eq!(progress.credential_set.as_deref(), Some("set-1"));
        assert!(progress.shares_written.contains("alice"));
        assert_eq!(progress.tokens.get("m-1").map(String::as_str), Some("s1"));
        assert_eq!(progress.key.as_ref().map(|k| k.id.as_str()), Some("01"));
        assert!(progress.replicated.contains("m-2"));
        assert!(!progress.locked);
        assert!(!progress.request_written);
    }
}
