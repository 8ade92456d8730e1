//! The `log` section of the trust file: the auditor log's origin and note verifier key,
//! and the witnesses whose cosignatures a checkpoint needs.

use serde::Deserialize;

use super::trust::TrustError;
use crate::log::VerifierKey;
use crate::log::note::{TYPE_COSIGNATURE, TYPE_ED25519};

/// The pinned auditor log and witness policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTrust {
    /// The log origin, the first line of its checkpoints.
    pub origin: String,
    /// The log's note verifier key (signature type 0x01).
    pub verifier: VerifierKey,
    /// Witness cosigner keys (signature type 0x04); empty when no witness is required.
    pub witnesses: Vec<VerifierKey>,
    /// How many distinct witnesses must cosign a checkpoint; 0 when `witnesses` is empty.
    pub quorum: usize,
}

/// The `log` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogFile {
    origin: String,
    verifier_key: String,
    #[serde(default)]
    witnesses: Option<WitnessesFile>,
}

/// The `log.witnesses` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessesFile {
    quorum: usize,
    keys: Vec<String>,
}

impl LogTrust {
    /// Validates the section: the verifier key is an Ed25519 note key for the origin,
    /// witness keys are distinct cosigner keys, and the quorum is between 1 and their
    /// number.
    pub(super) fn from_file(file: LogFile, source_name: &str) -> Result<Self, TrustError> {
        let error = |field: &'static str, reason: String| TrustError::Log {
            source_name: source_name.to_owned(),
            field,
            reason,
        };

        let verifier = VerifierKey::parse(file.verifier_key.trim())
            .map_err(|e| error("verifier_key", e.to_string()))?;
        if verifier.signature_type() != TYPE_ED25519 {
            return Err(error(
                "verifier_key",
                format!(
                    "has signature type 0x{:02x}; a log key has type 0x01",
                    verifier.signature_type()
                ),
            ));
        }
        if verifier.name() != file.origin {
            return Err(error(
                "verifier_key",
                format!(
                    "is named {} but the origin is {}; the log key name is the origin",
                    verifier.name(),
                    file.origin
                ),
            ));
        }

        let Some(witnesses) = file.witnesses else {
            return Ok(LogTrust {
                origin: file.origin,
                verifier,
                witnesses: Vec::new(),
                quorum: 0,
            });
        };
        let mut keys: Vec<VerifierKey> = Vec::new();
        for text in &witnesses.keys {
            let key = VerifierKey::parse(text.trim())
                .map_err(|e| error("witnesses.keys", e.to_string()))?;
            if key.signature_type() != TYPE_COSIGNATURE {
                return Err(error(
                    "witnesses.keys",
                    format!("{} is not a cosigner key (type 0x04)", key.name()),
                ));
            }
            if keys.iter().any(|known| known.name() == key.name()) {
                return Err(error(
                    "witnesses.keys",
                    format!("witness {} is listed twice", key.name()),
                ));
            }
            keys.push(key);
        }
        if witnesses.quorum == 0 || witnesses.quorum > keys.len() {
            return Err(error(
                "witnesses.quorum",
                format!(
                    "is {} but must be between 1 and the {} witness keys",
                    witnesses.quorum,
                    keys.len()
                ),
            ));
        }
        Ok(LogTrust {
            origin: file.origin,
            verifier,
            witnesses: keys,
            quorum: witnesses.quorum,
        })
    }
}
