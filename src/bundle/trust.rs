//! The trust file (`trust.yaml`) that pins the auditor's and the operator's public keys.

use std::fmt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_saphyr::{DuplicateKeyPolicy, MessageFormatter as _, UserMessageFormatter};

use super::keys::{KeyError, ed25519_fingerprint, ed25519_from_spki_pem};

/// The only trust file version this tool reads.
pub const TRUST_FILE_VERSION: u32 = 1;

/// A trust file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read trust file {source_name}: {source}")]
    Read {
        /// The file.
        source_name: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The YAML is invalid, has a duplicate key, or has a missing or unknown field.
    #[error("trust file {source_name}{position}: {message}")]
    Yaml {
        /// The file.
        source_name: String,
        /// `:line:column` where the parser reports one, else empty.
        position: String,
        /// The YAML parser's message.
        message: String,
    },
    /// The `version` field is not [`TRUST_FILE_VERSION`].
    #[error(
        "trust file {source_name} has version {found}; this tool reads version {TRUST_FILE_VERSION}"
    )]
    Version {
        /// The file.
        source_name: String,
        /// The version that was found.
        found: u32,
    },
    /// A name is empty.
    #[error("trust file {source_name}: {role}.name is empty")]
    EmptyName {
        /// The file.
        source_name: String,
        /// `auditor` or `operator`.
        role: &'static str,
    },
    /// A public key is not a valid Ed25519 SPKI PEM.
    #[error("trust file {source_name}: {role}.public_key: {source}")]
    Key {
        /// The file.
        source_name: String,
        /// `auditor` or `operator`.
        role: &'static str,
        /// The reason the key was rejected.
        source: KeyError,
    },
    /// Auditor and operator have the same key, so one party could make both signatures.
    #[error(
        "trust file {source_name} pins the same key for auditor and operator ({fingerprint})\nhint: the two signatures must come from different parties"
    )]
    SameKey {
        /// The file.
        source_name: String,
        /// Fingerprint of the shared key.
        fingerprint: String,
    },
    /// The `log` section is invalid.
    #[error("trust file {source_name}: log.{field}: {reason}")]
    Log {
        /// The file.
        source_name: String,
        /// The field inside `log`.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

/// The pinned keys of the two parties who sign a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The auditor, who signs the statement over the document digest.
    pub auditor: TrustedKey,
    /// The operator, who counter-signs the auditor's signature.
    pub operator: TrustedKey,
    /// Whether a fleet key held by members without a hardware attestation (SoftHSM, or
    /// an HSM whose attestation proves less than every rule) is accepted. False unless the
    /// trust file sets `allow_unattested: true`.
    pub allow_unattested: bool,
    /// The auditor's log and its witnesses; when present, bundles must carry a checkpoint
    /// and an inclusion proof.
    pub log: Option<super::log_trust::LogTrust>,
}

/// One party's name and pinned Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKey {
    /// The party's name, for messages.
    pub name: String,
    /// The public key.
    pub key: VerifyingKey,
    /// Hex SHA-256 of the key's SPKI DER, which is also its key id.
    pub fingerprint: String,
}

impl TrustedKey {
    /// Pins `key` under `name`, computing its fingerprint.
    pub fn new(name: String, key: VerifyingKey) -> TrustedKey {
        let fingerprint = ed25519_fingerprint(&key);
        TrustedKey {
            name,
            key,
            fingerprint,
        }
    }
}

impl fmt::Display for TrustedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (sha256 {})", self.name, self.fingerprint)
    }
}

/// The trust file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFile {
    version: u32,
    auditor: PartyFile,
    operator: PartyFile,
    #[serde(default)]
    allow_unattested: bool,
    log: Option<super::log_trust::LogFile>,
}

/// One party in the trust file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyFile {
    name: String,
    public_key: String,
}

impl Trust {
    /// Reads and parses a trust file.
    pub fn load(path: &Path) -> Result<Trust, TrustError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TrustError::Read {
            source_name: source_name.clone(),
            source,
        })?;
        Trust::parse(&text, &source_name)
    }

    /// Parses trust file text. `source_name` names the text in error messages.
    ///
    /// Rejects duplicate keys, unknown fields, a version other than 1, empty names,
    /// keys that are not Ed25519 SPKI PEM, and the same key for both parties.
    pub fn parse(text: &str, source_name: &str) -> Result<Trust, TrustError> {
        let file = parse_yaml(text, source_name)?;
        if file.version != TRUST_FILE_VERSION {
            return Err(TrustError::Version {
                source_name: source_name.to_string(),
                found: file.version,
            });
        }

        let auditor = trusted_key(file.auditor, "auditor", source_name)?;
        let operator = trusted_key(file.operator, "operator", source_name)?;
        if auditor.key == operator.key {
            return Err(TrustError::SameKey {
                source_name: source_name.to_string(),
                fingerprint: auditor.fingerprint,
            });
        }
        let log = file
            .log
            .map(|log| super::log_trust::LogTrust::from_file(log, source_name))
            .transpose()?;
        Ok(Trust {
            auditor,
            operator,
            log,
            allow_unattested: file.allow_unattested,
        })
    }
}

fn parse_yaml(text: &str, source_name: &str) -> Result<TrustFile, TrustError> {
    // Strict booleans: `allow_unattested` decides what a verifier accepts, so only the
    // words true and false count, never yes, on or 1.
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let position = match error.location() {
            Some(location) => format!(":{}:{}", location.line(), location.column()),
            None => String::new(),
        };
        TrustError::Yaml {
            source_name: source_name.to_string(),
            position,
            message: yaml_message(&error),
        }
    })
}

/// Returns the parser's message for end users, without its location suffix (the error
/// carries the position separately) and with control characters replaced.
fn yaml_message(error: &serde_saphyr::Error) -> String {
    let message = UserMessageFormatter.format_message(error.without_snippet());
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn trusted_key(
    party: PartyFile,
    role: &'static str,
    source_name: &str,
) -> Result<TrustedKey, TrustError> {
    if party.name.trim().is_empty() {
        return Err(TrustError::EmptyName {
            source_name: source_name.to_string(),
            role,
        });
    }

    let key = ed25519_from_spki_pem(&party.public_key).map_err(|source| TrustError::Key {
        source_name: source_name.to_string(),
        role,
        source,
    })?;
    Ok(TrustedKey {
        name: party.name,
        fingerprint: ed25519_fingerprint(&key),
        key,
    })
}
