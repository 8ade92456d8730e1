//! Public and private key encodings: SPKI PEM, PKCS#8 key files and key fingerprints.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use sha2::{Digest, Sha256};
use spki::der::Document;
use spki::der::pem::LineEnding;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use zeroize::Zeroizing;

/// Algorithm OID of Ed25519 public keys (RFC 8410).
pub const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Algorithm OID of elliptic-curve public keys (RFC 5480); the curve is in the parameters.
pub const EC_PUBLIC_KEY_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Curve OID of NIST P-256, also called prime256v1 or secp256r1 (RFC 5480).
pub const P256_CURVE_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// PEM label of a SubjectPublicKeyInfo.
const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";

/// An invalid public key, or a private key file that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a PEM document with valid DER inside.
    #[error(
        "public key is not valid PEM: {reason}\nhint: expected a \"-----BEGIN PUBLIC KEY-----\" block"
    )]
    Pem {
        /// The PEM or DER decoder's message.
        reason: String,
    },
    /// The PEM label is not `PUBLIC KEY`.
    #[error(
        "public key PEM has label \"{label}\"; expected \"PUBLIC KEY\" (a SubjectPublicKeyInfo)"
    )]
    PemLabel {
        /// The label that was found.
        label: String,
    },
    /// The DER is not a SubjectPublicKeyInfo.
    #[error("public key is not a valid SubjectPublicKeyInfo: {reason}")]
    Spki {
        /// The DER decoder's message.
        reason: String,
    },
    /// The key algorithm is not the one expected here.
    #[error("public key algorithm {found} is not supported here; expected {expected}")]
    Algorithm {
        /// The algorithm OID (and curve OID, for EC keys) found in the key.
        found: String,
        /// The algorithms accepted here.
        expected: &'static str,
    },
    /// The key has the right algorithm but its value is not a valid key.
    #[error("{algorithm} public key is invalid: {reason}")]
    InvalidKey {
        /// The algorithm of the key.
        algorithm: &'static str,
        /// The reason the key value was rejected.
        reason: String,
    },
    /// The private key file could not be read.
    #[error("cannot read private key file {path}: {source}")]
    KeyFileRead {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The private key file is not a PKCS#8 PEM Ed25519 private key.
    #[error(
        "private key file {path} is not an Ed25519 PKCS#8 PEM key: {reason}\nhint: create one with `openssl genpkey -algorithm ed25519 -out FILE`"
    )]
    KeyFileInvalid {
        /// The key file.
        path: PathBuf,
        /// The PKCS#8 decoder's message, which contains no key material.
        reason: String,
    },
}

/// Algorithm of a fleet key, named as in the fleet-key document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FleetKeyAlgorithm {
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl FleetKeyAlgorithm {
    /// Returns the name used in the fleet-key document (`ecdsa-p256` or `ed25519`).
    pub const fn name(self) -> &'static str {
        match self {
            FleetKeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            FleetKeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for FleetKeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A validated fleet public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPublicKey {
    /// The key algorithm.
    pub algorithm: FleetKeyAlgorithm,
    /// The SubjectPublicKeyInfo DER, exactly as read.
    pub spki_der: Vec<u8>,
}

impl FleetPublicKey {
    /// Returns the key fingerprint (hex SHA-256 of the SPKI DER).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.spki_der)
    }
}

/// Returns the key fingerprint: lowercase hex of SHA-256 over the SubjectPublicKeyInfo DER.
pub fn fingerprint(spki_der: &[u8]) -> String {
    hex::encode(Sha256::digest(spki_der))
}

/// Returns the fingerprint of an Ed25519 key, which is also its key id in signature files.
pub fn ed25519_fingerprint(key: &VerifyingKey) -> String {
    fingerprint(&ed25519_spki_der(key))
}

/// Parses an Ed25519 public key from SPKI PEM, rejecting other algorithms and small-order
/// keys.
pub fn ed25519_from_spki_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    let der = spki_der_from_pem(pem)?;
    let algorithm = spki_algorithm(&der)?;
    if algorithm.oid != ED25519_OID {
        return Err(KeyError::Algorithm {
            found: algorithm.describe(),
            expected: "Ed25519 (1.3.101.112)",
        });
    }
    ed25519_from_spki_der(&der)
}

/// Encodes an Ed25519 public key as SPKI PEM with LF line endings.
pub fn ed25519_spki_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 SubjectPublicKeyInfo always encodes")
}

/// Parses a fleet public key from SPKI PEM: ECDSA P-256 (point checked to lie on the
/// curve) or Ed25519.
pub fn fleet_key_from_spki_pem(pem: &str) -> Result<FleetPublicKey, KeyError> {
    let spki_der = spki_der_from_pem(pem)?;
    let algorithm = spki_algorithm(&spki_der)?;

    let algorithm = match (algorithm.oid, algorithm.curve) {
        (ED25519_OID, None) => {
            ed25519_from_spki_der(&spki_der)?;
            FleetKeyAlgorithm::Ed25519
        }
        (EC_PUBLIC_KEY_OID, Some(P256_CURVE_OID)) => {
            p256_from_spki_der(&spki_der)?;
            FleetKeyAlgorithm::EcdsaP256
        }
        _ => {
            return Err(KeyError::Algorithm {
                found: algorithm.describe(),
                expected: "ECDSA P-256 (1.2.840.10045.2.1 with curve 1.2.840.10045.3.1.7) or Ed25519 (1.3.101.112)",
            });
        }
    };
    Ok(FleetPublicKey {
        algorithm,
        spki_der,
    })
}

/// Reads an Ed25519 private key from a PKCS#8 PEM file, as `openssl genpkey -algorithm
/// ed25519` writes it.
pub fn read_ed25519_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::KeyFileRead {
        path: path.to_path_buf(),
        source,
    })?;
    let text = Zeroizing::new(text);

    SigningKey::from_pkcs8_pem(&text).map_err(|error| KeyError::KeyFileInvalid {
        path: path.to_path_buf(),
        reason: error.to_string(),
    })
}

/// Encodes an Ed25519 private key as a PKCS#8 v1 PEM file (the form OpenSSL writes).
pub fn ed25519_key_file_pem(key: &SigningKey) -> Zeroizing<String> {
    let keypair = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    keypair
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 PKCS#8 structure always encodes")
}

fn ed25519_spki_der(key: &VerifyingKey) -> Vec<u8> {
    key.to_public_key_der()
        .expect("an Ed25519 SubjectPublicKeyInfo always encodes")
        .into_vec()
}

fn spki_der_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let (label, document) = Document::from_pem(pem.trim()).map_err(|error| KeyError::Pem {
        reason: error.to_string(),
    })?;
    if label != PUBLIC_KEY_LABEL {
        return Err(KeyError::PemLabel {
            label: label.to_string(),
        });
    }
    Ok(document.into_vec())
}

/// The algorithm OID of a SubjectPublicKeyInfo and, for EC keys, the curve OID.
struct SpkiAlgorithm {
    oid: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
}

impl SpkiAlgorithm {
    fn describe(&self) -> String {
        match self.curve {
            Some(curve) => format!("{} with curve {curve}", self.oid),
            None => self.oid.to_string(),
        }
    }
}

fn spki_algorithm(der: &[u8]) -> Result<SpkiAlgorithm, KeyError> {
    let spki = SubjectPublicKeyInfoRef::try_from(der).map_err(|error| KeyError::Spki {
        reason: error.to_string(),
    })?;
    let curve = spki.algorithm.parameters_oid().ok();
    Ok(SpkiAlgorithm {
        oid: spki.algorithm.oid,
        curve,
    })
}

fn ed25519_from_spki_der(der: &[u8]) -> Result<VerifyingKey, KeyError> {
    use ed25519_dalek::pkcs8::DecodePublicKey;

    let invalid = |reason: String| KeyError::InvalidKey {
        algorithm: "Ed25519",
        reason,
    };
    let key = VerifyingKey::from_public_key_der(der).map_err(|error| invalid(error.to_string()))?;
    if key.is_weak() {
        return Err(invalid("the point has small order".to_string()));
    }
    Ok(key)
}

fn p256_from_spki_der(der: &[u8]) -> Result<p256::PublicKey, KeyError> {
    p256::PublicKey::from_public_key_der(der).map_err(|error| KeyError::InvalidKey {
        algorithm: "ECDSA P-256",
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 public key written by `openssl pkey -pubout` (OpenSSL 3.0).
    const P256_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMx+gfk9pfd8uESfyqUr+REpTHm3S
yqnfD9U1Uw0sSF33YeLpEggnUE6A2rveVenf4BwQQgbHD75gR5G7j+3tmw==
-----END PUBLIC KEY-----
";

    #[test]
    fn fingerprint_is_lowercase_sha256_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ed25519_pem_round_trip() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let pem = ed25519_spki_pem(&key);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(ed25519_from_spki_pem(&pem).unwrap(), key);
    }

    #[test]
    fn ed25519_rejects_p256_naming_oid() {
        let error = ed25519_from_spki_pem(P256_PEM).unwrap_err().to_string();
        assert!(error.contains("1.2.840.10045.2.1"), "{error}");
        assert!(error.contains("1.2.840.10045.3.1.7"), "{error}");
    }

    #[test]
    fn ed25519_rejects_small_order_point() {
        // The identity point encodes as 1 followed by zeros; it has order 1.
        let mut der = ed25519_spki_der(&SigningKey::from_bytes(&[3; 32]).verifying_key());
        let start = der.len() - 32;
        der[start..].copy_from_slice(&[0; 32]);
        der[start] = 1;
        let pem = Document::try_from(der)
            .unwrap()
            .to_pem("PUBLIC KEY", LineEnding::LF);
        let error = ed25519_from_spki_pem(&pem.unwrap())
            .unwrap_err()
            .to_string();
        assert!(error.contains("small order"), "{error}");
    }

    #[test]
    fn rejects_wrong_pem_label() {
        let pem = P256_PEM.replace("PUBLIC KEY", "CERTIFICATE");
        let error = fleet_key_from_spki_pem(&pem).unwrap_err();
        assert!(matches!(error, KeyError::PemLabel { .. }), "{error}");
    }

    #[test]
    fn rejects_garbage() {
        let error = fleet_key_from_spki_pem("not a key").unwrap_err();
        assert!(matches!(error, KeyError::Pem { .. }), "{error}");
    }

    #[test]
    fn fleet_key_accepts_p256() {
        let key = fleet_key_from_spki_pem(P256_PEM).unwrap();
        assert_eq!(key.algorithm, FleetKeyAlgorithm::EcdsaP256);
        assert_eq!(key.algorithm.name(), "ecdsa-p256");
        assert_eq!(key.fingerprint(), fingerprint(&key.spki_der));
    }

    #[test]
    fn fleet_key_accepts_ed25519() {
        let verifying = SigningKey::from_bytes(&[4; 32]).verifying_key();
        let key = fleet_key_from_spki_pem(&ed25519_spki_pem(&verifying)).unwrap();
        assert_eq!(key.algorithm, FleetKeyAlgorithm::Ed25519);
        assert_eq!(key.fingerprint(), ed25519_fingerprint(&verifying));
    }

    #[test]
    fn fleet_key_rejects_point_off_curve() {
        let (_, document) = Document::from_pem(P256_PEM).unwrap();
        let mut der = document.into_vec();
        let last = der.len() - 1;
        der[last] ^= 1;
        let pem = Document::try_from(der)
            .unwrap()
            .to_pem("PUBLIC KEY", LineEnding::LF);
        let error = fleet_key_from_spki_pem(&pem.unwrap()).unwrap_err();
        assert!(matches!(error, KeyError::InvalidKey { .. }), "{error}");
    }

    #[test]
    fn key_file_round_trip() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let pem = ed25519_key_file_pem(&key);
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, pem.as_bytes()).unwrap();
        assert_eq!(
            read_ed25519_key_file(&path).unwrap().to_bytes(),
            key.to_bytes()
        );
    }

    #[test]
    fn key_file_errors_name_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        std::fs::write(&path, P256_PEM).unwrap();
        let error = read_ed25519_key_file(&path).unwrap_err().to_string();
        assert!(error.contains("key.pem"), "{error}");
        let missing = read_ed25519_key_file(&dir.path().join("absent.pem")).unwrap_err();
        assert!(matches!(missing, KeyError::KeyFileRead { .. }), "{missing}");
    }
}
