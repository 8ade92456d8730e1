//! Auditor statements in the Plexi layout: the signed bytes, signing and strict verification.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;

/// Length in bytes of the SHA-256 digest that a statement signs.
pub const DIGEST_LEN: usize = 32;

/// An error in building or verifying an auditor statement.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The ciphersuite number is not 0x0001 or 0x0002.
    #[error(
        "unknown ciphersuite {value:#06x}; known ciphersuites are 0x0001 (protobuf) and 0x0002 (bincode)"
    )]
    UnknownCiphersuite {
        /// The number that was read.
        value: u32,
    },
    /// The Ed25519 signature does not verify under the given key.
    #[error("statement signature is invalid for the given Ed25519 key ({source})")]
    InvalidSignature {
        /// The error from strict Ed25519 verification.
        source: ed25519_dalek::SignatureError,
    },
}

/// The encoding of a statement's signed bytes, as numbered by Plexi.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u16", into = "u16")]
pub enum Ciphersuite {
    /// 0x0001: a proto2 message encoded with protobuf.
    #[default]
    Protobuf,
    /// 0x0002: the legacy bincode layout (little-endian integers, u64 length prefixes).
    Bincode,
}

impl Ciphersuite {
    /// Returns the ciphersuite number that appears in files and in the signed bytes.
    pub const fn code(self) -> u16 {
        match self {
            Ciphersuite::Protobuf => 0x0001,
            Ciphersuite::Bincode => 0x0002,
        }
    }
}

impl From<Ciphersuite> for u16 {
    fn from(suite: Ciphersuite) -> u16 {
        suite.code()
    }
}

impl TryFrom<u32> for Ciphersuite {
    type Error = StatementError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match value {
            0x0001 => Ok(Ciphersuite::Protobuf),
            0x0002 => Ok(Ciphersuite::Bincode),
            _ => Err(StatementError::UnknownCiphersuite { value }),
        }
    }
}

impl TryFrom<u16> for Ciphersuite {
    type Error = StatementError;

    fn try_from(value: u16) -> Result<Self, Self::Error> {
        Ciphersuite::try_from(u32::from(value))
    }
}

impl fmt::Display for Ciphersuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Ciphersuite::Protobuf => "protobuf",
            Ciphersuite::Bincode => "bincode",
        };
        write!(f, "{:#06x} ({name})", self.code())
    }
}

/// An auditor statement: a document digest bound to a namespace, an epoch and a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// Encoding of the signed bytes.
    pub ciphersuite: Ciphersuite,
    /// Namespace of the fleet, as in the fleet-key document.
    pub namespace: String,
    /// Signing time in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
    /// Key epoch of the fleet, as in the fleet-key document.
    pub epoch: u64,
    /// SHA-256 digest of the fleet-key document bytes.
    pub digest: [u8; DIGEST_LEN],
}

/// The Plexi `Epoch` message (proto2): field 1 is the epoch number.
#[derive(Clone, PartialEq, Message)]
struct ProtoEpoch {
    #[prost(uint64, optional, tag = "1")]
    inner: Option<u64>,
}

/// The Plexi `SignatureMessage` (proto2). Required fields are always encoded, even when zero.
#[derive(Clone, PartialEq, Message)]
struct ProtoStatement {
    #[prost(uint32, required, tag = "1")]
    version: u32,
    #[prost(string, required, tag = "2")]
    namespace: String,
    #[prost(uint64, required, tag = "3")]
    timestamp: u64,
    #[prost(message, required, tag = "4")]
    epoch: ProtoEpoch,
    #[prost(bytes = "vec", required, tag = "5")]
    digest: Vec<u8>,
}

impl Statement {
    /// Encodes the bytes that the auditor's Ed25519 signature covers, per the ciphersuite.
    pub fn signed_bytes(&self) -> Vec<u8> {
        match self.ciphersuite {
            Ciphersuite::Protobuf => self.protobuf_bytes(),
            Ciphersuite::Bincode => self.bincode_bytes(),
        }
    }

    /// Signs the statement's signed bytes with `key`.
    pub fn sign(&self, key: &SigningKey) -> Signature {
        key.sign(&self.signed_bytes())
    }

    /// Verifies `signature` over the statement with Ed25519 strict verification, which
    /// rejects small-order keys and non-canonical signatures.
    pub fn verify(&self, key: &VerifyingKey, signature: &Signature) -> Result<(), StatementError> {
        key.verify_strict(&self.signed_bytes(), signature)
            .map_err(|source| StatementError::InvalidSignature { source })
    }

    fn protobuf_bytes(&self) -> Vec<u8> {
        let message = ProtoStatement {
            version: u32::from(self.ciphersuite.code()),
            namespace: self.namespace.clone(),
            timestamp: self.timestamp_ms,
            epoch: ProtoEpoch {
                inner: Some(self.epoch),
            },
            digest: self.digest.to_vec(),
        };
        message.encode_to_vec()
    }

    /// Writes the layout of bincode 1 with its legacy configuration (fixed-width
    /// little-endian integers, u64 length prefixes), which Plexi signs for 0x0002.
    fn bincode_bytes(&self) -> Vec<u8> {
        let namespace = self.namespace.as_bytes();
        let mut out = Vec::with_capacity(4 + 8 + namespace.len() + 8 + 8 + 8 + DIGEST_LEN);

        out.extend_from_slice(&u32::from(self.ciphersuite.code()).to_le_bytes());
        out.extend_from_slice(&(namespace.len() as u64).to_le_bytes());
        out.extend_from_slice(namespace);
        out.extend_from_slice(&self.timestamp_ms.to_le_bytes());
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out.extend_from_slice(&(DIGEST_LEN as u64).to_le_bytes());
        out.extend_from_slice(&self.digest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ciphersuite: Ciphersuite) -> Statement {
        Statement {
            ciphersuite,
            namespace: "ns".to_string(),
            timestamp_ms: 0x0102,
            epoch: 3,
            digest: [0xab; DIGEST_LEN],
        }
    }

    #[test]
    fn ciphersuite_numbers_round_trip() {
        for suite in [Ciphersuite::Protobuf, Ciphersuite::Bincode] {
            assert_eq!(Ciphersuite::try_from(suite.code()).unwrap(), suite);
            assert_eq!(
                Ciphersuite::try_from(u32::from(suite.code())).unwrap(),
                suite
            );
        }
        assert_eq!(Ciphersuite::default(), Ciphersuite::Protobuf);
    }

    #[test]
    fn ciphersuite_unknown_rejected() {
        for value in [0u32, 3, 0x0100, 0x1_0001] {
            let error = Ciphersuite::try_from(value).unwrap_err();
            assert!(error.to_string().contains("unknown ciphersuite"), "{error}");
        }
        let error = Ciphersuite::try_from(7u16).unwrap_err().to_string();
        assert!(error.starts_with("unknown ciphersuite 0x0007"), "{error}");
    }

    #[test]
    fn ciphersuite_serde_rejects_unknown() {
        let error = serde_json::from_str::<Ciphersuite>("9").unwrap_err();
        assert!(error.to_string().contains("unknown ciphersuite"), "{error}");
        assert_eq!(serde_json::to_string(&Ciphersuite::Bincode).unwrap(), "2");
    }

    #[test]
    fn bincode_layout_is_exact() {
        let mut expected = vec![2, 0, 0, 0];
        expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"ns");
        expected.extend_from_slice(&[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[32, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(sample(Ciphersuite::Bincode).signed_bytes(), expected);
    }

    #[test]
    fn protobuf_layout_is_exact() {
        let mut expected = vec![0x08, 0x01, 0x12, 0x02, b'n', b's', 0x18, 0x82, 0x02];
        expected.extend_from_slice(&[0x22, 0x02, 0x08, 0x03, 0x2a, 0x20]);
        expected.extend_from_slice(&[0xab; 32]);
        assert_eq!(sample(Ciphersuite::Protobuf).signed_bytes(), expected);
    }

    #[test]
    fn protobuf_encodes_zero_fields() {
        let mut statement = sample(Ciphersuite::Protobuf);
        statement.namespace.clear();
        statement.timestamp_ms = 0;
        statement.epoch = 0;
        let bytes = statement.signed_bytes();
        assert_eq!(
            &bytes[..10],
            &[0x08, 0x01, 0x12, 0x00, 0x18, 0x00, 0x22, 0x02, 0x08, 0x00]
        );
    }

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::from_bytes(&[7; 32]);
        for suite in [Ciphersuite::Protobuf, Ciphersuite::Bincode] {
            let statement = sample(suite);
            let signature = statement.sign(&key);
            statement.verify(&key.verifying_key(), &signature).unwrap();
        }
    }

    #[test]
    fn verify_rejects_other_key() {
        let statement = sample(Ciphersuite::Protobuf);
        let signature = statement.sign(&SigningKey::from_bytes(&[7; 32]));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(statement.verify(&other, &signature).is_err());
    }
}
