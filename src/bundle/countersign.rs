//! The operator's counter-signature over the auditor's signature.

use ed25519_dalek::{SIGNATURE_LENGTH, Signature, Signer, SigningKey, VerifyingKey};

/// Context prefix of the counter-signed message, so an operator signature over these
/// bytes cannot be replayed as a signature in any other protocol.
pub const COUNTERSIGNATURE_CONTEXT: &[u8] = b"fleet-ceremony operator countersignature v1\n";

/// A counter-signature that fails strict Ed25519 verification.
#[derive(Debug, thiserror::Error)]
#[error("operator counter-signature is invalid for the given Ed25519 key ({source})")]
pub struct CountersignError {
    /// The error from strict Ed25519 verification.
    pub source: ed25519_dalek::SignatureError,
}

/// Builds the bytes the operator signs: the context prefix, then the 64 auditor signature
/// bytes.
pub fn countersigned_message(auditor_signature: &Signature) -> Vec<u8> {
    let mut message = Vec::with_capacity(COUNTERSIGNATURE_CONTEXT.len() + SIGNATURE_LENGTH);
    message.extend_from_slice(COUNTERSIGNATURE_CONTEXT);
    message.extend_from_slice(&auditor_signature.to_bytes());
    message
}

/// Counter-signs `auditor_signature` with the operator's key.
///
/// This only signs. The caller checks the auditor's signature first.
pub fn countersign_with_key(key: &SigningKey, auditor_signature: &Signature) -> Signature {
    key.sign(&countersigned_message(auditor_signature))
}

/// Verifies the operator's counter-signature over `auditor` with Ed25519 strict
/// verification.
pub fn verify_countersignature(
    key: &VerifyingKey,
    auditor: &Signature,
    operator: &Signature,
) -> Result<(), CountersignError> {
    key.verify_strict(&countersigned_message(auditor), operator)
        .map_err(|source| CountersignError { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_prefix_then_signature() {
        let auditor = Signature::from_bytes(&[9; SIGNATURE_LENGTH]);
        let message = countersigned_message(&auditor);
        assert_eq!(message.len(), 44 + 64);
        assert!(message.starts_with(b"fleet-ceremony operator countersignature v1\n"));
        assert_eq!(&message[44..], &[9; 64]);
    }

    #[test]
    fn countersign_then_verify() {
        let operator = SigningKey::from_bytes(&[1; 32]);
        let auditor = SigningKey::from_bytes(&[2; 32]).sign(b"statement");
        let signature = countersign_with_key(&operator, &auditor);
        verify_countersignature(&operator.verifying_key(), &auditor, &signature).unwrap();
    }

    #[test]
    fn verify_rejects_other_auditor_signature() {
        let operator = SigningKey::from_bytes(&[1; 32]);
        let auditor_key = SigningKey::from_bytes(&[2; 32]);
        let signature = countersign_with_key(&operator, &auditor_key.sign(b"one"));
        let other = auditor_key.sign(b"two");
        assert!(verify_countersignature(&operator.verifying_key(), &other, &signature).is_err());
    }

    #[test]
    fn verify_rejects_plain_signature() {
        let operator = SigningKey::from_bytes(&[1; 32]);
        let auditor = SigningKey::from_bytes(&[2; 32]).sign(b"statement");
        let plain = operator.sign(&auditor.to_bytes());
        assert!(verify_countersignature(&operator.verifying_key(), &auditor, &plain).is_err());
    }
}
