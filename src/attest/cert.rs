//! X.509 certificates as vendors issue them: parsing, link signatures, validity and chains.

use chrono::{DateTime, Utc};
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::AttestError;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// Curve secp256r1 (P-256), as the parameters of an `id-ecPublicKey` key.
pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// Curve secp384r1 (P-384), as the parameters of an `id-ecPublicKey` key.
pub const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// One parsed certificate with the exact bytes its issuer signed.
#[derive(Clone, Debug)]
pub struct Cert {
    /// The whole certificate as it was read.
    pub der: Vec<u8>,
    /// The decoded certificate.
    pub parsed: Certificate,
    /// The `tbsCertificate` bytes as encoded in `der`. Signatures are checked over these
    /// bytes, never over a re-encoding: several vendors encode DER defaults explicitly
    /// (`critical FALSE`), and a re-encoding would drop them and break the signature.
    tbs: Vec<u8>,
}

impl Cert {
    /// Parses one DER certificate; `place` names it in errors.
    pub fn from_der(der: &[u8], place: &str) -> Result<Self, AttestError> {
        let parse_error = |error: der::Error| AttestError::Parse {
            place: place.to_owned(),
            reason: format!("invalid X.509 certificate: {error}"),
        };

        // Accepted on purpose: x509-cert 0.2 decodes an explicitly encoded `critical FALSE`
        // (the Thales Luna ECC chain). It also decodes X.509 v1 certificates without
        // extensions (the Marvell root and card certificates).
        let parsed = Certificate::from_der(der).map_err(parse_error)?;
        let tbs = raw_tbs(der).map_err(parse_error)?.to_vec();
        Ok(Self {
            der: der.to_vec(),
            parsed,
            tbs,
        })
    }

    /// Returns the subject name in RFC 4514 form.
    pub fn subject(&self) -> String {
        self.parsed.tbs_certificate.subject.to_string()
    }

    /// Returns the issuer name in RFC 4514 form.
    pub fn issuer(&self) -> String {
        self.parsed.tbs_certificate.issuer.to_string()
    }

    /// Returns the subject public key.
    pub fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        &self.parsed.tbs_certificate.subject_public_key_info
    }

    /// Returns the DER encoding of the subject public key.
    pub fn spki_der(&self) -> Result<Vec<u8>, AttestError> {
        self.spki().to_der().map_err(|error| AttestError::Parse {
            place: self.subject(),
            reason: format!("cannot encode the subject public key: {error}"),
        })
    }

    /// Returns the validity window (not before, not after).
    pub fn validity(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let validity = &self.parsed.tbs_certificate.validity;
        (
            to_chrono(validity.not_before.to_unix_duration()),
            to_chrono(validity.not_after.to_unix_duration()),
        )
    }

    /// Checks that `at` lies inside the validity window, naming the window if not.
    pub fn check_validity(&self, at: DateTime<Utc>) -> Result<(), String> {
        let (not_before, not_after) = self.validity();
        if at < not_before || at > not_after {
            return Err(format!(
                "certificate '{}' is not valid at {}: valid from {} to {}",
                self.subject(),
                rfc3339(at),
                rfc3339(not_before),
                rfc3339(not_after),
            ));
        }
        Ok(())
    }

    /// Checks that `issuer` issued this certificate: names match and the signature verifies
    /// under the issuer's public key. Returns notes on encodings accepted leniently.
    ///
    /// It does not check basic constraints or key usage of the issuer, because the vendors'
    /// intermediates do not carry them: Marvell card certificates are X.509 v1 and Luna
    /// intermediates are not marked as CAs. Trust comes from pinning the root instead.
    pub fn check_issued_by(&self, issuer: &Cert) -> Result<Vec<String>, String> {
        if self.parsed.tbs_certificate.issuer != issuer.parsed.tbs_certificate.subject {
            return Err(format!(
                "certificate '{}' names issuer '{}', not '{}'",
                self.subject(),
                self.issuer(),
                issuer.subject()
            ));
        }
        let signature = self.parsed.signature.as_bytes().ok_or_else(|| {
            format!(
                "certificate '{}' has a signature that is not whole bytes",
                self.subject()
            )
        })?;
        let algorithm = &self.parsed.signature_algorithm.oid;
        verify_signature(issuer.spki(), algorithm, &self.tbs, signature).map_err(|reason| {
            format!(
                "signature of '{}' by '{}' is invalid: {reason}",
                self.subject(),
                issuer.subject()
            )
        })
    }
}

/// Returns the bytes of the first element of the outer certificate SEQUENCE.
fn raw_tbs(der: &[u8]) -> der::Result<&[u8]> {
    let outer = AnyRef::from_der(der)?;
    outer.tag().assert_eq(Tag::Sequence)?;
    SliceReader::new(outer.value())?.tlv_bytes()
}

/// Returns the named curve of an `id-ecPublicKey` key, if its parameters are an OID.
pub fn curve_oid(spki: &SubjectPublicKeyInfoOwned) -> Option<ObjectIdentifier> {
    spki.algorithm.parameters.as_ref()?.decode_as().ok()
}

fn to_chrono(since_epoch: std::time::Duration) -> DateTime<Utc> {
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX);
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Formats a time as RFC 3339 with a `Z` offset.
pub fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Verifies `signature` over `message` with the key in `spki`, for the RSA PKCS#1 v1.5,
/// ECDSA (P-256, P-384) and Ed25519 algorithms the three vendors use. Returns notes on
/// encodings accepted leniently.
pub fn verify_signature(
    spki: &SubjectPublicKeyInfoOwned,
    algorithm: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<Vec<String>, String> {
    let key_der = spki
        .to_der()
        .map_err(|error| format!("cannot encode the issuer key: {error}"))?;
    let key_algorithm = spki.algorithm.oid;

    if key_algorithm == RSA_ENCRYPTION {
        verify_rsa(&key_der, algorithm, message, signature)?;
        Ok(Vec::new())
    } else if key_algorithm == EC_PUBLIC_KEY {
        let curve = curve_oid(spki).ok_or("the issuer EC key names no curve")?;
        verify_ecdsa(&key_der, curve, algorithm, message, signature)
    } else if key_algorithm == ED25519 {
        verify_ed25519(&key_der, algorithm, message, signature)?;
        Ok(Vec::new())
    } else {
        Err(format!("unsupported issuer key algorithm {key_algorithm}"))
    }
}

fn verify_rsa(
    key_der: &[u8],
    algorithm: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;

    let key = rsa::RsaPublicKey::from_public_key_der(key_der)
        .map_err(|error| format!("invalid RSA issuer key: {error}"))?;
    let signature = Signature::try_from(signature)
        .map_err(|error| format!("invalid RSA signature: {error}"))?;
    let result = if *algorithm == SHA256_WITH_RSA {
        VerifyingKey::<Sha256>::new(key).verify(message, &signature)
    } else if *algorithm == SHA384_WITH_RSA {
        VerifyingKey::<Sha384>::new(key).verify(message, &signature)
    } else if *algorithm == SHA512_WITH_RSA {
        VerifyingKey::<Sha512>::new(key).verify(message, &signature)
    } else {
        return Err(format!(
            "unsupported signature algorithm {algorithm} for an RSA key"
        ));
    };
    result.map_err(|_| "RSA PKCS#1 v1.5 verification failed".to_owned())
}

fn verify_ecdsa(
    key_der: &[u8],
    curve: ObjectIdentifier,
    algorithm: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<Vec<String>, String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use spki::DecodePublicKey;

    let prehash = if *algorithm == ECDSA_WITH_SHA256 {
        Sha256::digest(message).to_vec()
    } else if *algorithm == ECDSA_WITH_SHA384 {
        Sha384::digest(message).to_vec()
    } else {
        return Err(format!(
            "unsupported signature algorithm {algorithm} for an EC key"
        ));
    };
    let failed = |_| "ECDSA verification failed".to_owned();

    if curve == SECP256R1 {
        let EcdsaScalars { r, s, notes } = decode_ecdsa_signature(signature, 32)?;
        let key = p256::ecdsa::VerifyingKey::from_public_key_der(key_der)
            .map_err(|error| format!("invalid P-256 issuer key: {error}"))?;
        let signature = p256::ecdsa::Signature::from_scalars(
            p256::FieldBytes::clone_from_slice(&r),
            p256::FieldBytes::clone_from_slice(&s),
        )
        .map_err(|error| format!("invalid ECDSA signature: {error}"))?;
        key.verify_prehash(&prehash, &signature).map_err(failed)?;
        Ok(notes)
    } else if curve == SECP384R1 {
        let EcdsaScalars { r, s, notes } = decode_ecdsa_signature(signature, 48)?;
        let key = p384::ecdsa::VerifyingKey::from_public_key_der(key_der)
            .map_err(|error| format!("invalid P-384 issuer key: {error}"))?;
        let signature = p384::ecdsa::Signature::from_scalars(
            p384::FieldBytes::clone_from_slice(&r),
            p384::FieldBytes::clone_from_slice(&s),
        )
        .map_err(|error| format!("invalid ECDSA signature: {error}"))?;
        key.verify_prehash(&prehash, &signature).map_err(failed)?;
        Ok(notes)
    } else {
        Err(format!("unsupported issuer curve {curve}"))
    }
}

fn verify_ed25519(
    key_der: &[u8],
    algorithm: &ObjectIdentifier,
    message: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    use ed25519_dalek::pkcs8::DecodePublicKey;

    if *algorithm != ED25519 {
        return Err(format!(
            "unsupported signature algorithm {algorithm} for an Ed25519 key"
        ));
    }
    let key = ed25519_dalek::VerifyingKey::from_public_key_der(key_der)
        .map_err(|error| format!("invalid Ed25519 issuer key: {error}"))?;
    let signature = ed25519_dalek::Signature::from_slice(signature)
        .map_err(|error| format!("invalid Ed25519 signature: {error}"))?;
    key.verify_strict(message, &signature)
        .map_err(|_| "Ed25519 verification failed".to_owned())
}

/// Decodes an ECDSA-Sig-Value (SEQUENCE of INTEGER r, INTEGER s) into two big-endian
/// scalars of `size` bytes, with a note for each INTEGER that is not canonical DER.
///
/// Lenient on purpose: the leaf of the real Thales Luna ECC chain encodes `s` as 48 bytes
/// whose top bit is set, without the leading zero byte DER requires, so a strict decoder
/// reads a negative number. The magnitude is read as unsigned here, which is the value
/// the signer computed; it is still checked against the curve order and verified, and
/// the report carries a note saying which INTEGER was malformed.
pub fn decode_ecdsa_signature(signature: &[u8], size: usize) -> Result<EcdsaScalars, String> {
    let malformed = |error: der::Error| format!("malformed ECDSA signature: {error}");
    let outer = AnyRef::from_der(signature).map_err(malformed)?;
    outer.tag().assert_eq(Tag::Sequence).map_err(malformed)?;
    let mut reader = SliceReader::new(outer.value()).map_err(malformed)?;
    let r = AnyRef::decode(&mut reader).map_err(malformed)?;
    let s = AnyRef::decode(&mut reader).map_err(malformed)?;
    if !reader.is_finished() {
        return Err("malformed ECDSA signature: trailing bytes".to_owned());
    }
    let integers = (r, s);

    let mut notes = Vec::new();
    let mut scalars = Vec::new();
    for (name, any) in [("r", integers.0), ("s", integers.1)] {
        if any.tag() != Tag::Integer {
            return Err(format!(
                "malformed ECDSA signature: {name} is not an INTEGER"
            ));
        }
        let (scalar, note) = unsigned_scalar(name, any.value(), size)?;
        notes.extend(note);
        scalars.push(scalar);
    }
    let s = scalars.pop().unwrap_or_default();
    let r = scalars.pop().unwrap_or_default();
    Ok(EcdsaScalars { r, s, notes })
}

/// The two scalars of an ECDSA signature, big-endian, with notes on lax encodings.
#[derive(Debug)]
pub struct EcdsaScalars {
    /// The `r` scalar.
    pub r: Vec<u8>,
    /// The `s` scalar.
    pub s: Vec<u8>,
    /// One note per INTEGER that is not canonical DER.
    pub notes: Vec<String>,
}

fn unsigned_scalar(
    name: &str,
    bytes: &[u8],
    size: usize,
) -> Result<(Vec<u8>, Option<String>), String> {
    let canonical = match bytes {
        [] => false,
        [0, next, ..] => *next >= 0x80,
        [first, ..] => *first < 0x80,
    };
    let magnitude: Vec<u8> = bytes
        .iter()
        .copied()
        .skip_while(|byte| *byte == 0)
        .collect();
    if magnitude.len() > size {
        return Err(format!("ECDSA {name} is longer than {size} bytes"));
    }
    let mut scalar = vec![0; size - magnitude.len()];
    scalar.extend_from_slice(&magnitude);

    let note = (!canonical).then(|| {
        format!("ECDSA signature INTEGER {name} is not canonical DER (sign byte missing or extra); read as unsigned")
    });
    Ok((scalar, note))
}

/// Result of checking one chain from its first certificate to a pinned root.
#[derive(Debug, Default)]
pub struct ChainCheck {
    /// Subject names, first certificate first, ending with the pinned root.
    pub names: Vec<String>,
    /// One reason per failed link or validity check.
    pub failures: Vec<String>,
    /// Encodings accepted leniently.
    pub notes: Vec<String>,
}

/// Checks `chain` (first certificate first, each issued by the next) up to one of
/// `roots`, link by link, with every certificate valid at `at`.
///
/// The last certificate of `chain` may be a pinned root itself (byte for byte) or be
/// issued by one. A root is trusted because it is pinned, so its self-signature is not
/// checked (the Luna RSA root signs itself with SHA-1). Its validity window is checked.
pub fn check_chain(chain: &[Cert], roots: &[Cert], at: DateTime<Utc>) -> ChainCheck {
    let mut check = ChainCheck::default();
    let Some(last) = chain.last() else {
        check
            .failures
            .push("the chain contains no certificate".to_owned());
        return check;
    };

    for (index, cert) in chain.iter().enumerate() {
        check.names.push(cert.subject());
        if let Err(reason) = cert.check_validity(at) {
            check.failures.push(reason);
        }
        if let Some(issuer) = chain.get(index + 1) {
            match cert.check_issued_by(issuer) {
                Ok(notes) => check.notes.extend(notes),
                Err(reason) => check.failures.push(reason),
            }
        }
    }

    if roots.iter().any(|root| root.der == last.der) {
        return check;
    }
    let candidates: Vec<&Cert> = roots
        .iter()
        .filter(|root| root.parsed.tbs_certificate.subject == last.parsed.tbs_certificate.issuer)
        .collect();
    if candidates.is_empty() {
        check.failures.push(format!(
            "certificate '{}' is issued by '{}', which is not a pinned root",
            last.subject(),
            last.issuer()
        ));
        return check;
    }

    let mut reasons = Vec::new();
    for root in candidates {
        match last.check_issued_by(root) {
            Ok(notes) => {
                check.names.push(root.subject());
                check.notes.extend(notes);
                if let Err(reason) = root.check_validity(at) {
                    check.failures.push(reason);
                }
                return check;
            }
            Err(reason) => reasons.push(reason),
        }
    }
    check.failures.extend(reasons);
    check
}

/// Reads every certificate in `bytes`: PEM (any number of `CERTIFICATE` blocks) or one
/// DER certificate.
pub fn read_certs(bytes: &[u8], place: &str) -> Result<Vec<Cert>, AttestError> {
    if !bytes.starts_with(b"-----") && !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Ok(vec![Cert::from_der(bytes, place)?]);
    }
    let blocks = decode_pem_blocks(bytes, "CERTIFICATE").map_err(|reason| AttestError::Parse {
        place: place.to_owned(),
        reason,
    })?;
    blocks
        .iter()
        .enumerate()
        .map(|(index, der)| Cert::from_der(der, &format!("{place}, certificate {}", index + 1)))
        .collect()
}

/// Decodes every PEM block labelled `label` in `bytes`.
///
/// Lenient on purpose, unlike the strict RFC 7468 decoder of the `der` crate: vendors'
/// files have 80-column Base64 lines (the YubiHSM key attestation) and trailing spaces
/// after the boundary lines (the Luna RSA root). Text outside the blocks is ignored.
pub fn decode_pem_blocks(bytes: &[u8], label: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;

    let text = std::str::from_utf8(bytes).map_err(|_| "PEM file is not UTF-8".to_owned())?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match body.as_mut() {
            None if line == begin => body = Some(String::new()),
            None => {}
            Some(_) if line == end => {
                let base64 = body.take().unwrap_or_default();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(base64)
                    .map_err(|error| {
                        format!("invalid Base64 in PEM block {}: {error}", blocks.len() + 1)
                    })?;
                blocks.push(der);
            }
            Some(collected) => collected.push_str(line),
        }
    }
    if body.is_some() {
        return Err(format!("PEM block without an '{end}' line"));
    }
    if blocks.is_empty() {
        return Err(format!("no PEM block labelled {label} found"));
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_unpadded_integer_noted() {
        // SEQUENCE { INTEGER 0x01, INTEGER 0x80 (negative in DER: no leading zero) }
        let scalars =
            decode_ecdsa_signature(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x80], 32).unwrap();
        assert_eq!(scalars.r[31], 0x01);
        assert_eq!(scalars.s[31], 0x80);
        assert_eq!(scalars.notes.len(), 1);
        assert!(scalars.notes[0].contains("INTEGER s"));
    }

    #[test]
    fn ecdsa_canonical_integers_no_note() {
        let scalars =
            decode_ecdsa_signature(&[0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80], 32)
                .unwrap();
        assert!(scalars.notes.is_empty());
    }

    #[test]
    fn ecdsa_oversized_integer_rejected() {
        let mut signature = vec![0x30, 0x26, 0x02, 0x21];
        signature.extend([0x7f; 33]);
        signature.extend([0x02, 0x01, 0x01]);
        let reason = decode_ecdsa_signature(&signature, 32).unwrap_err();
        assert!(reason.contains("longer than 32 bytes"), "{reason}");
    }

    #[test]
    fn pem_reader_accepts_long_lines_and_trailing_spaces() {
        let pem = b"-----BEGIN CERTIFICATE----- \nAAEC\n-----END CERTIFICATE-----  \n";
        assert_eq!(
            decode_pem_blocks(pem, "CERTIFICATE").unwrap(),
            vec![vec![0, 1, 2]]
        );
        assert!(decode_pem_blocks(b"-----BEGIN CERTIFICATE-----\nAAEC\n", "CERTIFICATE").is_err());
    }
}
