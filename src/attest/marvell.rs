//! Google Cloud HSM (Marvell LiquidSecurity) key attestation blobs and their two chains.
//!
//! Blob layout (all integers big-endian): a response header (response code, request
//! flags, total size, buffer size, each u32); at offset `len - (buffer size + 256)` an info
//! header (object version, request flags, offset of the first and of the second key
//! object, each u16, offsets relative to the info header); each key object is a handle,
//! an attribute count and an object size (u32 each) followed by attribute records (tag
//! u32, length u32, value); the last 256 bytes are an RSA PKCS#1 v1.5 SHA-256 signature
//! by the partition key over every byte before them.

use std::io::Read;

use chrono::{DateTime, Utc};
use der::asn1::BitString;
use der::{Decode, asn1::ObjectIdentifier};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

use super::cert::{self, Cert, SECP256R1, SECP384R1, check_chain};
use super::report::outcome_from;
use super::{AttestError, AttestationReport, Outcome, PinnedRoots, Rule, RuleResult, Vendor};

/// Length of the RSA-2048 signature that ends the blob.
const SIGNATURE_LEN: usize = 256;
/// Upper bound on the decompressed blob; real blobs are a few kilobytes.
const MAX_BLOB_LEN: u64 = 1 << 20;
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");

/// Attribute tags, as in PKCS#11 (`CKA_*`) where the values agree.
mod tag {
    pub const CLASS: u32 = 0x0000;
    pub const KEY_TYPE: u32 = 0x0100;
    pub const SENSITIVE: u32 = 0x0103;
    /// RSA modulus, or the uncompressed EC point for EC keys.
    pub const MODULUS: u32 = 0x0120;
    /// RSA modulus size in bits, or for EC keys the OpenSSL NID of the curve.
    pub const MODULUS_BITS: u32 = 0x0121;
    pub const PUBLIC_EXPONENT: u32 = 0x0122;
    pub const EXTRACTABLE: u32 = 0x0162;
    pub const LOCAL: u32 = 0x0163;
    pub const NEVER_EXTRACTABLE: u32 = 0x0164;
}

const CLASS_PUBLIC_KEY: u32 = 2;
const CLASS_PRIVATE_KEY: u32 = 3;
const KEY_TYPE_RSA: u32 = 0;
const KEY_TYPE_EC: u32 = 3;
/// OpenSSL NIDs of the curves, as the EC key objects store them.
const NID_PRIME256V1: u32 = 415;
const NID_SECP384R1: u32 = 715;

/// One key object of the blob.
#[derive(Clone, Debug)]
pub struct KeyObject {
    /// Object handle on the partition.
    pub handle: u32,
    /// Attribute records in blob order: tag and value.
    pub attributes: Vec<(u32, Vec<u8>)>,
}

impl KeyObject {
    /// Returns the value of attribute `tag`, if present.
    pub fn attribute(&self, tag: u32) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(found, _)| *found == tag)
            .map(|(_, value)| value.as_slice())
    }

    /// Returns attribute `tag` as a number (a big-endian value of 1 to 4 bytes).
    pub fn number(&self, tag: u32) -> Option<u32> {
        let value = self.attribute(tag)?;
        if value.is_empty() || value.len() > 4 {
            return None;
        }
        Some(
            value
                .iter()
                .fold(0, |number, byte| (number << 8) | u32::from(*byte)),
        )
    }

    /// Returns boolean attribute `tag`: `Some` only for a one-byte value of 0 or 1.
    pub fn flag(&self, tag: u32) -> Option<bool> {
        match self.attribute(tag)? {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }
}

/// A parsed attestation blob.
#[derive(Clone, Debug)]
pub struct Attestation {
    /// The public key object.
    pub public_key: KeyObject,
    /// The private key object.
    pub private_key: KeyObject,
    /// The bytes the partition key signed.
    pub signed: Vec<u8>,
    /// The partition key's signature.
    pub signature: Vec<u8>,
}

/// Parses a blob, gzip-compressed or not.
pub fn parse(blob: &[u8]) -> Result<Attestation, AttestError> {
    let data = decompress(blob)?;
    let mut reader = ByteReader::new(&data, 0);
    let response_code = reader.u32()?;
    let _request_flags = reader.u32()?;
    let total_size = reader.u32()?;
    let buffer_size = reader.u32()?;
    if response_code != 0 {
        return Err(parse_error(format!(
            "response code is {response_code:#x}, not 0"
        )));
    }
    if usize::try_from(total_size).ok() != Some(data.len()) {
        return Err(parse_error(format!(
            "response header gives total size {total_size}, blob has {} bytes",
            data.len()
        )));
    }

    let signed_len = data.len() - SIGNATURE_LEN.min(data.len());
    let info_offset = usize::try_from(buffer_size)
        .ok()
        .and_then(|size| signed_len.checked_sub(size))
        .filter(|offset| *offset >= 16)
        .ok_or_else(|| parse_error(format!("buffer size {buffer_size} does not fit the blob")))?;
    let signed = &data[..signed_len];

    let mut info = ByteReader::new(signed, info_offset);
    let _object_version = info.u16()?;
    let _info_flags = info.u16()?;
    let first = usize::from(info.u16()?);
    let second = usize::from(info.u16()?);
    if second == 0 {
        return Err(parse_error(
            "the blob contains one key object, expected two".into(),
        ));
    }
    let first = read_object(signed, info_offset + first)?;
    let second = read_object(signed, info_offset + second)?;

    let (public_key, private_key) = match (first.number(tag::CLASS), second.number(tag::CLASS)) {
        (Some(CLASS_PUBLIC_KEY), Some(CLASS_PRIVATE_KEY)) => (first, second),
        (Some(CLASS_PRIVATE_KEY), Some(CLASS_PUBLIC_KEY)) => (second, first),
        (a, b) => {
            return Err(parse_error(format!(
                "key object classes are {a:?} and {b:?}, expected a public and a private key"
            )));
        }
    };
    Ok(Attestation {
        public_key,
        private_key,
        signed: signed.to_vec(),
        signature: data[signed_len..].to_vec(),
    })
}

fn decompress(blob: &[u8]) -> Result<Vec<u8>, AttestError> {
    if !blob.starts_with(&[0x1f, 0x8b]) {
        return Ok(blob.to_vec());
    }
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .take(MAX_BLOB_LEN)
        .read_to_end(&mut data)
        .map_err(|error| parse_error(format!("gzip decompression failed: {error}")))?;
    Ok(data)
}

fn read_object(signed: &[u8], offset: usize) -> Result<KeyObject, AttestError> {
    let mut reader = ByteReader::new(signed, offset);
    let handle = reader.u32()?;
    let count = reader.u32()?;
    let _object_size = reader.u32()?;
    let mut attributes = Vec::new();
    for _ in 0..count {
        let tag = reader.u32()?;
        let len = reader.u32()?;
        let value = reader.bytes(usize::try_from(len).unwrap_or(usize::MAX))?;
        attributes.push((tag, value.to_vec()));
    }
    Ok(KeyObject { handle, attributes })
}

fn parse_error(reason: String) -> AttestError {
    AttestError::Parse {
        place: "Marvell attestation blob".to_owned(),
        reason,
    }
}

/// Big-endian reader over the signed part of a blob that reports truncation as an error.
struct ByteReader<'a> {
    data: &'a [u8],
    position: usize,
}

impl<'a> ByteReader<'a> {
    fn new(data: &'a [u8], position: usize) -> Self {
        Self { data, position }
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], AttestError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| {
                parse_error(format!(
                    "truncated: {len} bytes at offset {} run past the signed data",
                    self.position
                ))
            })?;
        let bytes = &self.data[self.position..end];
        self.position = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, AttestError> {
        let bytes = self.bytes(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, AttestError> {
        let bytes = self.bytes(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }
}

/// Builds the SubjectPublicKeyInfo of the attested public key object.
pub fn public_key_spki(object: &KeyObject) -> Result<SubjectPublicKeyInfoOwned, String> {
    let modulus = object
        .attribute(tag::MODULUS)
        .ok_or("the public key object has no key value attribute")?;
    match object.number(tag::KEY_TYPE) {
        Some(KEY_TYPE_EC) => {
            let curve = match object.number(tag::MODULUS_BITS) {
                Some(NID_PRIME256V1) => SECP256R1,
                Some(NID_SECP384R1) => SECP384R1,
                other => return Err(format!("unsupported EC curve id {other:?}")),
            };
            let parameters = der::Any::encode_from(&curve).map_err(|error| error.to_string())?;
            Ok(SubjectPublicKeyInfoOwned {
                algorithm: AlgorithmIdentifierOwned {
                    oid: ObjectIdentifier::new_unwrap("1.2.840.10045.2.1"),
                    parameters: Some(parameters),
                },
                subject_public_key: BitString::from_bytes(modulus)
                    .map_err(|error| error.to_string())?,
            })
        }
        Some(KEY_TYPE_RSA) => {
            let exponent = object
                .attribute(tag::PUBLIC_EXPONENT)
                .ok_or("the RSA public key object has no public exponent")?;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(modulus),
                rsa::BigUint::from_bytes_be(exponent),
            )
            .map_err(|error| format!("invalid attested RSA key: {error}"))?;
            use rsa::pkcs8::EncodePublicKey;
            let der = key
                .to_public_key_der()
                .map_err(|error| format!("cannot encode the attested RSA key: {error}"))?;
            SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).map_err(|error| error.to_string())
        }
        other => Err(format!("unsupported key type {other:?}")),
    }
}

/// Verifies a blob and its certificate chain PEM against the fleet key.
///
/// Checks: the blob signature under the partition key; the manufacturer chain (partition
/// certificate, card certificate, a manufacturer root); the owner chain (the same two
/// public keys, each certified directly by an owner root); that both chains certify the
/// same partition and card keys; every certificate valid at `at`; the attested public key
/// against the fleet key; the private key's local, extractable, never-extractable and
/// sensitive attributes. It does not check the blob's request flags or the key's usage
/// attributes (sign, decrypt, wrap).
pub fn verify(
    blob: &[u8],
    chain_pem: &[u8],
    fleet_key: &SubjectPublicKeyInfoOwned,
    roots: &PinnedRoots,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    let attestation = parse(blob)?;
    let certs = cert::read_certs(chain_pem, "Marvell certificate chain")?;
    let [partition, card, owner_partition, owner_card] = certs.as_slice() else {
        return Err(AttestError::Parse {
            place: "Marvell certificate chain".to_owned(),
            reason: format!(
                "expected 4 certificates (partition, card, owner partition, owner card), got {}",
                certs.len()
            ),
        });
    };

    let mut failures = Vec::new();
    let mut notes = Vec::new();
    let mut names = Vec::new();

    // The blob is the first link: signed by the partition key.
    if let Err(reason) = cert::verify_signature(
        partition.spki(),
        &SHA256_WITH_RSA,
        &attestation.signed,
        &attestation.signature,
    ) {
        failures.push(format!(
            "attestation blob signature by partition key '{}' is invalid: {reason}",
            partition.subject()
        ));
    }

    let manufacturer_chain = [partition.clone(), card.clone()];
    for (chain, anchors) in [
        (&manufacturer_chain[..], &roots.manufacturer),
        (std::slice::from_ref(owner_partition), &roots.owner),
        (std::slice::from_ref(owner_card), &roots.owner),
    ] {
        let check = check_chain(chain, anchors, at);
        names.extend(check.names);
        failures.extend(check.failures);
        notes.extend(check.notes);
    }
    for (label, manufacturer, owner) in [
        ("partition", partition, owner_partition),
        ("card", card, owner_card),
    ] {
        if manufacturer.spki() != owner.spki() {
            failures.push(format!(
                "the manufacturer and owner chains certify different {label} keys"
            ));
        }
    }

    let key_matches = match public_key_spki(&attestation.public_key) {
        Ok(attested) => match super::compare_keys(&attested, fleet_key) {
            Ok(()) => Outcome::Pass,
            Err(reason) => Outcome::Fail(reason),
        },
        Err(reason) => Outcome::Fail(reason),
    };

    let private = &attestation.private_key;
    let generated = match private.flag(tag::LOCAL) {
        Some(true) => Outcome::Pass,
        Some(false) => Outcome::Fail("the private key's local attribute is false: imported".into()),
        None => {
            Outcome::Fail("the private key's local attribute is missing or not a boolean".into())
        }
    };
    let not_extractable = extractability(private);

    Ok(AttestationReport {
        vendor: Vendor::Marvell,
        device_serial: card_serial(card),
        chain: names,
        verified_at: at,
        rules: vec![
            RuleResult {
                rule: Rule::Chain,
                outcome: outcome_from(failures),
            },
            RuleResult {
                rule: Rule::KeyMatches,
                outcome: key_matches,
            },
            RuleResult {
                rule: Rule::GeneratedOnDevice,
                outcome: generated,
            },
            RuleResult {
                rule: Rule::NotExtractable,
                outcome: not_extractable,
            },
        ],
        notes,
    })
}

fn extractability(private: &KeyObject) -> Outcome {
    let mut failures = Vec::new();
    for (name, tag, expected) in [
        ("extractable", tag::EXTRACTABLE, false),
        ("never-extractable", tag::NEVER_EXTRACTABLE, true),
        ("sensitive", tag::SENSITIVE, true),
    ] {
        match private.flag(tag) {
            Some(value) if value == expected => {}
            Some(value) => failures.push(format!("the private key's {name} attribute is {value}")),
            None => failures.push(format!("the private key's {name} attribute is missing")),
        }
    }
    outcome_from(failures)
}

/// Returns the card serial from the card certificate's common name, which reads
/// `HSM:<serial>, for FIPS mode` (the comma escaped in RFC 4514 form); the whole subject
/// when it does not.
fn card_serial(card: &Cert) -> String {
    let subject = card.subject();
    subject
        .split("HSM:")
        .nth(1)
        .and_then(|rest| rest.split([',', ':', '\\']).next())
        .map(str::to_owned)
        .unwrap_or(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_blob_is_parse_error() {
        let error = parse(&[0; 40]).unwrap_err();
        assert!(
            error.to_string().contains("Marvell attestation blob"),
            "{error}"
        );
    }

    #[test]
    fn flag_requires_one_byte() {
        let object = KeyObject {
            handle: 1,
            attributes: vec![(tag::LOCAL, vec![0, 1]), (tag::EXTRACTABLE, vec![0])],
        };
        assert_eq!(object.flag(tag::LOCAL), None);
        assert_eq!(object.flag(tag::EXTRACTABLE), Some(false));
        assert_eq!(object.flag(tag::SENSITIVE), None);
    }
}
