//! Witness cosignatures on checkpoints: the timestamped Ed25519 form of C2SP
//! tlog-cosignature (signature type 0x04, header line `cosignature/v1`).

use super::note::{Note, NoteError, NoteSignature, SignerKey, TYPE_COSIGNATURE, VerifierKey};

/// Header line of the signed message, for domain separation.
const HEADER: &str = "cosignature/v1";

/// Returns the message a cosigner signs: the header line, `time <timestamp>`, then the
/// checkpoint note text.
pub fn signed_message(checkpoint_text: &str, timestamp: u64) -> Vec<u8> {
    format!("{HEADER}\ntime {timestamp}\n{checkpoint_text}").into_bytes()
}

/// A failed cosignature operation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CosignatureError {
    /// The key is not a cosigner key (signature type 0x04).
    #[error(
        "key {name} has signature type 0x{signature_type:02x}, but cosignatures need type 0x04"
    )]
    NotCosignerKey {
        /// The key name.
        name: String,
        /// The key's signature type.
        signature_type: u8,
    },
    /// The timestamp is above 2^63 - 1.
    #[error("cosignature timestamp {0} is above 2^63 - 1")]
    TimestampOutOfRange(u64),
    /// The note or its cosignature is invalid.
    #[error("cosignature rejected: {0}")]
    Note(#[from] NoteError),
}

/// Signs the checkpoint text as of `timestamp` (POSIX seconds) and returns the signature
/// line to append to the checkpoint note.
pub fn cosign(
    cosigner: &SignerKey,
    checkpoint_text: &str,
    timestamp: u64,
) -> Result<NoteSignature, CosignatureError> {
    check_cosigner_key(cosigner.verifier())?;
    if timestamp > i64::MAX as u64 {
        return Err(CosignatureError::TimestampOutOfRange(timestamp));
    }
    let signature = cosigner.sign_raw(&signed_message(checkpoint_text, timestamp));
    let mut bytes = timestamp.to_be_bytes().to_vec();
    bytes.extend_from_slice(&signature);
    Ok(NoteSignature {
        name: cosigner.name().to_owned(),
        key_id: cosigner.key_id(),
        signature: bytes,
    })
}

/// Checks the cosignature of `witness` on `note` and returns its timestamp.
///
/// Checks the signature only: it does not check the log's own signature, that the
/// timestamp is in the past, or that the checkpoint is consistent with earlier ones.
pub fn verify_cosignature(note: &Note, witness: &VerifierKey) -> Result<u64, CosignatureError> {
    check_cosigner_key(witness)?;
    let verified = note.verify(&[witness])?;
    let timestamp = verified
        .timestamps
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| NoteError::Malformed("cosignature has no timestamp".to_owned()))?;
    if timestamp > i64::MAX as u64 {
        return Err(CosignatureError::TimestampOutOfRange(timestamp));
    }
    Ok(timestamp)
}

fn check_cosigner_key(key: &VerifierKey) -> Result<(), CosignatureError> {
    if key.signature_type() != TYPE_COSIGNATURE {
        return Err(CosignatureError::NotCosignerKey {
            name: key.name().to_owned(),
            signature_type: key.signature_type(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::checkpoint::Checkpoint;
    use crate::log::hash::leaf_hash;
    use crate::log::note::TYPE_ED25519;

    const ORIGIN: &str = "audit.example/fleet-log";

    fn signed_checkpoint() -> (Note, SignerKey) {
        let log = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[1u8; 32]).unwrap();
        let checkpoint = Checkpoint {
            origin: ORIGIN.to_owned(),
            size: 7,
            root: leaf_hash(b"root"),
            extensions: vec![],
        };
        let note = Note::parse(&checkpoint.sign(&log).unwrap()).unwrap();
        (note, log)
    }

    fn witness() -> SignerKey {
        SignerKey::from_seed("witness.example/w1", TYPE_COSIGNATURE, &[2u8; 32]).unwrap()
    }

    #[test]
    fn message_layout() {
        let message = signed_message("o\n1\nAAAA\n", 1679315147);
        assert_eq!(message, b"cosignature/v1\ntime 1679315147\no\n1\nAAAA\n");
    }

    #[test]
    fn cosign_and_verify() {
        let (mut note, log) = signed_checkpoint();
        let line = cosign(&witness(), note.text(), 1_700_000_000).unwrap();
        assert_eq!(line.signature.len(), 8 + 64);
        note.add_signature(line);

        let reparsed = Note::parse(&note.to_bytes()).unwrap();
        assert_eq!(
            verify_cosignature(&reparsed, witness().verifier()),
            Ok(1_700_000_000)
        );
        // The log signature still verifies and ignores the cosignature line.
        assert!(Checkpoint::open(&note.to_bytes(), ORIGIN, log.verifier()).is_ok());
    }

    #[test]
    fn cosignature_with_changed_time_rejected() {
        let (mut note, _) = signed_checkpoint();
        let mut line = cosign(&witness(), note.text(), 1_700_000_000).unwrap();
        line.signature[7] ^= 1;
        note.add_signature(line);
        assert!(matches!(
            verify_cosignature(&note, witness().verifier()),
            Err(CosignatureError::Note(NoteError::BadSignature { .. }))
        ));
    }

    #[test]
    fn log_key_is_not_a_cosigner() {
        let (note, log) = signed_checkpoint();
        assert!(matches!(
            cosign(&log, note.text(), 1),
            Err(CosignatureError::NotCosignerKey { .. })
        ));
        assert!(matches!(
            verify_cosignature(&note, log.verifier()),
            Err(CosignatureError::NotCosignerKey { .. })
        ));
    }

    #[test]
    fn cosigner_key_id_uses_type_4() {
        let key = witness();
        let id = crate::log::note::key_id(
            "witness.example/w1",
            TYPE_COSIGNATURE,
            key.verifier().public_key().as_bytes(),
        );
        assert_eq!(key.key_id(), id);
        assert!(
            key.verifier()
                .to_string()
                .starts_with("witness.example/w1+")
        );
    }

    #[test]
    fn missing_cosignature_rejected() {
        let (note, _) = signed_checkpoint();
        assert!(matches!(
            verify_cosignature(&note, witness().verifier()),
            Err(CosignatureError::Note(NoteError::NoKnownSignature { .. }))
        ));
    }

    #[test]
    fn timestamp_above_range_rejected() {
        let (note, _) = signed_checkpoint();
        assert_eq!(
            cosign(&witness(), note.text(), 1 << 63),
            Err(CosignatureError::TimestampOutOfRange(1 << 63))
        );
    }
}
