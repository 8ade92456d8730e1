//! The entry the auditor's log records for each signed statement, and the rules an
//! append must follow.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::files::AuditorSignature;
use super::statement::DIGEST_LEN;

/// First line of every log entry; it names the layout version.
pub const ENTRY_HEADER: &str = "fleet-ceremony log entry v1";

/// An entry that is not a valid log entry, or that an append must reject.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// A field of the statement cannot be written into an entry.
    #[error("log entry field `{field}` is invalid: {reason}")]
    Field {
        /// The field name.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The bytes are not a canonical log entry.
    #[error("malformed log entry: {0}")]
    Malformed(String),
    /// Epoch 0 is never logged.
    #[error("namespace \"{namespace}\" epoch 0 cannot be logged; epochs start at 1")]
    EpochZero {
        /// The namespace.
        namespace: String,
    },
    /// The epoch is not one more than the last epoch logged for the namespace.
    #[error(
        "namespace \"{namespace}\" epoch {epoch} is not the next epoch; the log holds epoch {last} at index {index}\nhint: the next statement for this namespace must have epoch {next}",
        next = last + 1
    )]
    EpochNotNext {
        /// The namespace.
        namespace: String,
        /// The epoch of the rejected statement.
        epoch: u64,
        /// The last epoch logged for the namespace.
        last: u64,
        /// Index of the entry with the last epoch.
        index: u64,
    },
    /// The digest is already in the log.
    #[error(
        "digest {digest} is already logged at index {index}\nhint: a document is logged once; a new epoch needs a new document"
    )]
    DuplicateDigest {
        /// The digest, hex.
        digest: String,
        /// Index of the entry that holds it.
        index: u64,
    },
    /// The statement timestamp is earlier than that of the namespace's previous epoch.
    #[error(
        "namespace \"{namespace}\" epoch {epoch} has timestamp {timestamp_ms} ms, earlier than {previous_ms} ms of the previous epoch"
    )]
    TimestampBackwards {
        /// The namespace.
        namespace: String,
        /// The epoch of the rejected statement.
        epoch: u64,
        /// Its timestamp in ms.
        timestamp_ms: u64,
        /// The previous epoch's timestamp in ms.
        previous_ms: u64,
    },
}

/// One log entry: the auditor's signed statement and its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The statement namespace.
    pub namespace: String,
    /// The statement epoch.
    pub epoch: u64,
    /// SHA-256 of the fleet-key document.
    pub digest: [u8; DIGEST_LEN],
    /// The statement timestamp, ms since 1970 UTC.
    pub timestamp_ms: u64,
    /// The statement ciphersuite number.
    pub ciphersuite: u16,
    /// Fingerprint of the auditor key, lowercase hex.
    pub auditor_key_id: String,
    /// The auditor's Ed25519 signature over the statement.
    pub auditor_signature: [u8; 64],
}

impl LogEntry {
    /// Builds the entry for an auditor signature. Checks the field syntax only, not the
    /// signature.
    pub fn from_auditor(auditor: &AuditorSignature) -> Result<Self, EntryError> {
        let statement = auditor.statement().map_err(|error| EntryError::Field {
            field: "digest",
            reason: error.to_string(),
        })?;
        let signature = auditor.signature().map_err(|error| EntryError::Field {
            field: "signature",
            reason: error.to_string(),
        })?;
        let entry = LogEntry {
            namespace: statement.namespace,
            epoch: statement.epoch,
            digest: statement.digest,
            timestamp_ms: statement.timestamp_ms,
            ciphersuite: statement.ciphersuite.code(),
            auditor_key_id: auditor.key_id.clone(),
            auditor_signature: signature.to_bytes(),
        };
        entry.check_text_fields()?;
        Ok(entry)
    }

    /// Encodes the entry: eight lines, each ending in a newline (see docs/bundle-format.md).
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{ENTRY_HEADER}\nnamespace {}\nepoch {}\ndigest {}\ntimestamp_ms {}\nciphersuite {}\nauditor_key_id {}\nauditor_signature {}\n",
            self.namespace,
            self.epoch,
            hex::encode(self.digest),
            self.timestamp_ms,
            self.ciphersuite,
            self.auditor_key_id,
            BASE64.encode(self.auditor_signature),
        )
        .into_bytes()
    }

    /// Parses an entry, accepting only the canonical encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, EntryError> {
        let malformed = |reason: &str| EntryError::Malformed(reason.to_owned());
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("no final newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [
            header,
            namespace,
            epoch,
            digest,
            timestamp,
            suite,
            key_id,
            signature,
        ] = lines.as_slice()
        else {
            return Err(malformed("an entry has exactly eight lines"));
        };
        if *header != ENTRY_HEADER {
            return Err(malformed("unknown header line"));
        }

        let number = |text: &str, field: &'static str| {
            text.parse::<u64>()
                .map_err(|_| EntryError::Malformed(format!("{field} is not a number")))
        };
        let field = |line: &str, name: &'static str| -> Result<String, EntryError> {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_owned)
                .ok_or_else(|| EntryError::Malformed(format!("missing field {name}")))
        };

        let digest_hex = field(digest, "digest")?;
        let mut digest = [0u8; DIGEST_LEN];
        hex::decode_to_slice(&digest_hex, &mut digest)
            .map_err(|_| malformed("digest is not 64 hex digits"))?;
        let signature_bytes = BASE64
            .decode(field(signature, "auditor_signature")?)
            .map_err(|_| malformed("auditor_signature is not base64"))?;
        let auditor_signature: [u8; 64] = signature_bytes
            .try_into()
            .map_err(|_| malformed("auditor_signature is not 64 bytes"))?;
        let ciphersuite = u16::try_from(number(&field(suite, "ciphersuite")?, "ciphersuite")?)
            .map_err(|_| malformed("ciphersuite is above 65535"))?;

        let entry = LogEntry {
            namespace: field(namespace, "namespace")?,
            epoch: number(&field(epoch, "epoch")?, "epoch")?,
            digest,
            timestamp_ms: number(&field(timestamp, "timestamp_ms")?, "timestamp_ms")?,
            ciphersuite,
            auditor_key_id: field(key_id, "auditor_key_id")?,
            auditor_signature,
        };
        // Leading zeros, upper-case hex and other spellings would give a second encoding.
        if entry.encode() != bytes {
            return Err(malformed("not in canonical form"));
        }
        entry
            .check_text_fields()
            .map_err(|error| EntryError::Malformed(error.to_string()))?;
        Ok(entry)
    }

    fn check_text_fields(&self) -> Result<(), EntryError> {
        if self.namespace.is_empty() || self.namespace.chars().any(char::is_control) {
            return Err(EntryError::Field {
                field: "namespace",
                reason: "is empty or has a control character".to_owned(),
            });
        }
        let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if self.auditor_key_id.len() != 64 || !self.auditor_key_id.chars().all(lower_hex) {
            return Err(EntryError::Field {
                field: "key_id",
                reason: "is not 64 lowercase hex digits".to_owned(),
            });
        }
        Ok(())
    }
}

/// Checks that `entry` may follow `history`, the entries already in the log in index
/// order:
/// - its epoch is at least 1; the first entry of a namespace may have any such epoch,
///   because a fleet may have had epochs before the log existed;
/// - later entries of a namespace have exactly the previous epoch plus one, and a
///   timestamp no earlier than the previous one;
/// - its digest is in no earlier entry, of any namespace.
///
/// Does not check the auditor signature.
pub fn check_append(history: &[LogEntry], entry: &LogEntry) -> Result<(), EntryError> {
    if entry.epoch == 0 {
        return Err(EntryError::EpochZero {
            namespace: entry.namespace.clone(),
        });
    }

    let mut last: Option<(u64, &LogEntry)> = None;
    for (index, old) in (0u64..).zip(history) {
        if old.digest == entry.digest {
            return Err(EntryError::DuplicateDigest {
                digest: hex::encode(entry.digest),
                index,
            });
        }
        if old.namespace == entry.namespace {
            last = Some((index, old));
        }
    }

    let Some((index, previous)) = last else {
        return Ok(());
    };
    if previous.epoch.checked_add(1) != Some(entry.epoch) {
        return Err(EntryError::EpochNotNext {
            namespace: entry.namespace.clone(),
            epoch: entry.epoch,
            last: previous.epoch,
            index,
        });
    }
    if entry.timestamp_ms < previous.timestamp_ms {
        return Err(EntryError::TimestampBackwards {
            namespace: entry.namespace.clone(),
            epoch: entry.epoch,
            timestamp_ms: entry.timestamp_ms,
            previous_ms: previous.timestamp_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(namespace: &str, epoch: u64, digest_byte: u8) -> LogEntry {
        LogEntry {
            namespace: namespace.to_owned(),
            epoch,
            digest: [digest_byte; DIGEST_LEN],
            timestamp_ms: 1_700_000_000_000 + epoch,
            ciphersuite: 1,
            auditor_key_id: "ab".repeat(32),
            auditor_signature: [7u8; 64],
        }
    }

    #[test]
    fn encoding_is_byte_exact() {
        let bytes = entry("fleet/a", 3, 1).encode();
        let expected = format!(
            "fleet-ceremony log entry v1\nnamespace fleet/a\nepoch 3\ndigest {}\ntimestamp_ms 1700000000003\nciphersuite 1\nauditor_key_id {}\nauditor_signature {}\n",
            "01".repeat(32),
            "ab".repeat(32),
            BASE64.encode([7u8; 64])
        );
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(LogEntry::parse(&bytes).unwrap(), entry("fleet/a", 3, 1));
    }

    #[test]
    fn non_canonical_entries_rejected() {
        let good = String::from_utf8(entry("fleet/a", 3, 1).encode()).unwrap();
        let cases = [
            good.replace("epoch 3", "epoch 03"),
            good.replace(&"01".repeat(32), &"01".repeat(31)),
            good.trim_end().to_owned(),
            format!("{good}\n"),
            good.replace("ciphersuite 1", "ciphersuite 70000"),
            good.replace(&"ab".repeat(32), &"AB".repeat(32)),
            good.replace("fleet-ceremony log entry v1", "fleet-ceremony log entry v2"),
        ];
        for case in cases {
            assert!(
                matches!(
                    LogEntry::parse(case.as_bytes()),
                    Err(EntryError::Malformed(_))
                ),
                "{case:?}"
            );
        }
    }

    #[test]
    fn first_epoch_any_above_zero() {
        assert_eq!(check_append(&[], &entry("a", 5, 1)), Ok(()));
        assert!(matches!(
            check_append(&[], &entry("a", 0, 1)),
            Err(EntryError::EpochZero { .. })
        ));
    }

    #[test]
    fn epochs_go_up_by_one() {
        let history = [entry("a", 1, 1), entry("b", 7, 2)];
        assert_eq!(check_append(&history, &entry("a", 2, 3)), Ok(()));
        assert_eq!(check_append(&history, &entry("b", 8, 3)), Ok(()));
        for epoch in [1, 3, 7] {
            assert!(
                matches!(
                    check_append(&history, &entry("a", epoch, 3)),
                    Err(EntryError::EpochNotNext {
                        last: 1,
                        index: 0,
                        ..
                    })
                ),
                "epoch {epoch}"
            );
        }
    }

    #[test]
    fn duplicate_digest_rejected() {
        let history = [entry("a", 1, 1), entry("b", 1, 2)];
        assert_eq!(
            check_append(&history, &entry("a", 2, 2)),
            Err(EntryError::DuplicateDigest {
                digest: "02".repeat(32),
                index: 1
            })
        );
    }

    #[test]
    fn timestamp_backwards_rejected() {
        let history = [entry("a", 1, 1)];
        let mut next = entry("a", 2, 2);
        next.timestamp_ms = 1;
        assert!(matches!(
            check_append(&history, &next),
            Err(EntryError::TimestampBackwards { .. })
        ));
    }
}
