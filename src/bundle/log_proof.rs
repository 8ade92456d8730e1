//! The auditor log's checkpoint and inclusion proof as they travel in a bundle and in
//! the log proof file the auditor returns with the signature.

use serde::{Deserialize, Serialize};

use super::files::{Bundle, FilesError};
use crate::log::Hash;

/// Format name of the log proof file (`log-proof.json`).
pub const LOG_PROOF_FORMAT: &str = "fleet-ceremony-log-proof-v1";

/// An inclusion proof: the entry's index, the tree size and the audit path, each hash in
/// standard padded base64, from the leaf's sibling upwards (RFC 6962, 2.1.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// Index of the entry in the log, from 0.
    pub index: u64,
    /// Size of the tree the proof is for; equals the checkpoint's tree size.
    pub tree_size: u64,
    /// The audit path.
    pub hashes: Vec<String>,
}

impl InclusionProof {
    /// Builds the proof from decoded hashes.
    pub fn new(index: u64, tree_size: u64, hashes: &[Hash]) -> Self {
        InclusionProof {
            index,
            tree_size,
            hashes: hashes.iter().map(Hash::to_base64).collect(),
        }
    }

    /// Decodes the audit path.
    pub fn decode_hashes(&self) -> Result<Vec<Hash>, FilesError> {
        self.hashes
            .iter()
            .enumerate()
            .map(|(position, text)| {
                Hash::from_base64(text).ok_or_else(|| FilesError::Field {
                    field: "inclusion_proof.hashes",
                    reason: format!("hash {position} is not 32 bytes of padded base64"),
                })
            })
            .collect()
    }
}

/// The auditor's log proof file: the checkpoint after appending the statement and the
/// inclusion proof of its entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogProof {
    /// Always [`LOG_PROOF_FORMAT`].
    pub format: String,
    /// The checkpoint, signed note text.
    pub checkpoint: String,
    /// The inclusion proof of the statement's entry.
    pub inclusion_proof: InclusionProof,
}

impl LogProof {
    /// Builds the file contents.
    pub fn new(checkpoint: String, inclusion_proof: InclusionProof) -> Self {
        LogProof {
            format: LOG_PROOF_FORMAT.to_owned(),
            checkpoint,
            inclusion_proof,
        }
    }

    /// Parses the file, checking its format field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, FilesError> {
        let proof: LogProof = serde_json::from_slice(bytes).map_err(|source| FilesError::Json {
            file: "log proof file",
            source,
        })?;
        if proof.format != LOG_PROOF_FORMAT {
            return Err(FilesError::Format {
                file: "log proof file",
                found: proof.format,
                expected: LOG_PROOF_FORMAT,
            });
        }
        Ok(proof)
    }

    /// Serialises the file: pretty JSON with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("log proof has no map keys");
        bytes.push(b'\n');
        bytes
    }
}

impl Bundle {
    /// Adds the checkpoint and inclusion proof of `proof` to the bundle.
    pub fn attach_log_proof(&mut self, proof: &LogProof) {
        self.checkpoint = Some(proof.checkpoint.clone());
        self.inclusion_proof = Some(proof.inclusion_proof.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::leaf_hash;

    #[test]
    fn log_proof_round_trip() {
        let proof = LogProof::new(
            "o\n1\nAAAA\n\n— o AAAA\n".to_owned(),
            InclusionProof::new(0, 2, &[leaf_hash(b"x")]),
        );
        let parsed = LogProof::from_json_bytes(&proof.to_json_bytes()).unwrap();
        assert_eq!(parsed, proof);
        assert_eq!(
            parsed.inclusion_proof.decode_hashes().unwrap(),
            vec![leaf_hash(b"x")]
        );
    }

    #[test]
    fn short_hash_rejected() {
        let proof = InclusionProof {
            index: 0,
            tree_size: 2,
            hashes: vec!["AAAA".to_owned()],
        };
        assert!(proof.decode_hashes().is_err());
    }

    #[test]
    fn wrong_format_rejected() {
        let mut proof = LogProof::new(String::new(), InclusionProof::new(0, 1, &[]));
        proof.format = "other".to_owned();
        assert!(matches!(
            LogProof::from_json_bytes(&proof.to_json_bytes()),
            Err(FilesError::Format { .. })
        ));
    }
}
