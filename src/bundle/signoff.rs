//! Witness sign-offs: a person in the ceremony room signs the transcript digest that the
//! fleet-key document records, with their own Ed25519 key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::keys::{ed25519_fingerprint, ed25519_from_spki_pem, ed25519_spki_pem};

/// Format name of a sign-off file.
pub const SIGNOFF_FORMAT: &str = "fleet-ceremony-signoff-v1";

/// Context that starts every signed sign-off message.
pub const SIGNOFF_CONTEXT: &str = "fleet-ceremony witness signoff v1\n";

/// A sign-off that is malformed or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SignoffError {
    /// The file is not a sign-off.
    #[error("invalid sign-off: {0}")]
    Invalid(String),
    /// The signature does not verify with the included key.
    #[error("the sign-off by {witness} does not verify: {source}")]
    Signature {
        /// The witness named in the file.
        witness: String,
        /// The Ed25519 error.
        source: ed25519_dalek::SignatureError,
    },
}

/// Role of a ceremony officer who signs the transcript.
pub const ROLE_OFFICER: &str = "officer";

/// Role of a witness who signs the transcript.
pub const ROLE_WITNESS: &str = "witness";

fn default_role() -> String {
    ROLE_WITNESS.to_owned()
}

/// An officer's or witness's signature over a fleet's transcript digest. The signed bytes
/// are [`signoff_message`]; the name and role are labels that the signature does not
/// cover, so readers identify signers by `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signoff {
    /// Always [`SIGNOFF_FORMAT`].
    pub format: String,
    /// The signer's name as they want it published.
    pub witness: String,
    /// The signer's role in the room: [`ROLE_OFFICER`] or [`ROLE_WITNESS`].
    #[serde(default = "default_role")]
    pub role: String,
    /// The fleet id.
    pub fleet_id: String,
    /// The transcript digest from the fleet-key document, hex.
    pub transcript_sha256: String,
    /// The witness's Ed25519 public key, PEM SubjectPublicKeyInfo.
    pub public_key: String,
    /// Fingerprint of that key.
    pub key_id: String,
    /// Ed25519 signature over [`signoff_message`], base64.
    pub signature: String,
}

/// Builds the signed bytes: [`SIGNOFF_CONTEXT`], then the fleet id, a line feed, the hex
/// transcript digest and a line feed.
pub fn signoff_message(fleet_id: &str, transcript_sha256: &str) -> Vec<u8> {
    format!("{SIGNOFF_CONTEXT}{fleet_id}\n{transcript_sha256}\n").into_bytes()
}

impl Signoff {
    /// Signs the transcript digest of `fleet_id` as `witness` in `role`.
    pub fn sign(
        witness: &str,
        role: &str,
        fleet_id: &str,
        transcript_sha256: &str,
        key: &SigningKey,
    ) -> Signoff {
        let signature = key.sign(&signoff_message(fleet_id, transcript_sha256));
        let public = key.verifying_key();
        Signoff {
            format: SIGNOFF_FORMAT.to_owned(),
            witness: witness.to_owned(),
            role: role.to_owned(),
            fleet_id: fleet_id.to_owned(),
            transcript_sha256: transcript_sha256.to_owned(),
            public_key: ed25519_spki_pem(&public),
            key_id: ed25519_fingerprint(&public),
            signature: BASE64.encode(signature.to_bytes()),
        }
    }

    /// Parses a sign-off file.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Signoff, SignoffError> {
        serde_json::from_slice(bytes).map_err(|error| SignoffError::Invalid(error.to_string()))
    }

    /// Serialises the sign-off, pretty-printed with a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a sign-off always serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Checks the format, that the key id matches the key, and the signature (strict) over
    /// the given fleet and transcript digest. It does not check who the witness is: a
    /// reader compares `key_id` with keys the witnesses published themselves.
    pub fn verify(
        &self,
        fleet_id: &str,
        transcript_sha256: &str,
    ) -> Result<VerifyingKey, SignoffError> {
        if self.role != ROLE_OFFICER && self.role != ROLE_WITNESS {
            return Err(SignoffError::Invalid(format!(
                "role {:?} of {} is neither {ROLE_OFFICER} nor {ROLE_WITNESS}",
                self.role, self.witness
            )));
        }
        if self.format != SIGNOFF_FORMAT {
            return Err(SignoffError::Invalid(format!(
                "unknown format {:?}",
                self.format
            )));
        }
        if self.fleet_id != fleet_id || self.transcript_sha256 != transcript_sha256 {
            return Err(SignoffError::Invalid(format!(
                "{} signed fleet {} with transcript {}, not fleet {fleet_id} with transcript {transcript_sha256}",
                self.witness, self.fleet_id, self.transcript_sha256
            )));
        }
        let key = ed25519_from_spki_pem(&self.public_key)
            .map_err(|error| SignoffError::Invalid(error.to_string()))?;
        if ed25519_fingerprint(&key) != self.key_id {
            return Err(SignoffError::Invalid(format!(
                "key_id of {} does not match its public key",
                self.witness
            )));
        }
        let bytes = BASE64
            .decode(&self.signature)
            .map_err(|error| SignoffError::Invalid(format!("signature: {error}")))?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|error| SignoffError::Invalid(format!("signature: {error}")))?;
        key.verify_strict(&signoff_message(fleet_id, transcript_sha256), &signature)
            .map_err(|source| SignoffError::Signature {
                witness: self.witness.clone(),
                source,
            })?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signoff_round_trip_verifies() {
        let signoff = Signoff::sign("Ada", ROLE_WITNESS, "fleet-1", &"ab".repeat(32), &key(1));
        let parsed = Signoff::from_json_bytes(&signoff.to_json_bytes()).expect("parses");
        parsed
            .verify("fleet-1", &"ab".repeat(32))
            .expect("verifies");
    }

    #[test]
    fn signoff_rejects_unknown_role() {
        let mut signoff = Signoff::sign("Ada", ROLE_WITNESS, "fleet-1", &"ab".repeat(32), &key(1));
        signoff.role = "auditor".into();
        assert!(signoff.verify("fleet-1", &"ab".repeat(32)).is_err());
    }

    #[test]
    fn signoff_rejects_other_transcript() {
        let signoff = Signoff::sign("Ada", ROLE_WITNESS, "fleet-1", &"ab".repeat(32), &key(1));
        assert!(signoff.verify("fleet-1", &"cd".repeat(32)).is_err());
        assert!(signoff.verify("fleet-2", &"ab".repeat(32)).is_err());
    }

    #[test]
    fn signoff_rejects_swapped_key() {
        let mut signoff = Signoff::sign("Ada", ROLE_WITNESS, "fleet-1", &"ab".repeat(32), &key(1));
        let other = Signoff::sign("Bob", ROLE_OFFICER, "fleet-1", &"ab".repeat(32), &key(2));
        signoff.public_key = other.public_key;
        signoff.key_id = other.key_id;
        let error = signoff
            .verify("fleet-1", &"ab".repeat(32))
            .expect_err("wrong key");
        assert!(matches!(error, SignoffError::Signature { .. }), "{error}");
    }
}
