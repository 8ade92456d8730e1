//! Thales Luna public key confirmation (PKC): a PKCS#7 bundle of certificates from the
//! key's own certificate up to the Luna manufacturer root.

use chrono::{DateTime, Utc};
use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Reader, SliceReader, Tagged};
use spki::SubjectPublicKeyInfoOwned;

use super::cert::{Cert, check_chain};
use super::report::outcome_from;
use super::{AttestError, AttestationReport, Outcome, PinnedRoots, Rule, RuleResult, Vendor};

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Reads the certificates of a PKCS#7 bundle (DER or PEM), keeping each certificate's
/// bytes exactly as stored.
///
/// The `cms` crate decodes and checks the structure. The certificates are then taken
/// from the original bytes, not from the decoded values, because the Luna ECC chain
/// encodes DER defaults explicitly and a re-encoding would no longer match its
/// signature.
pub fn read_bundle(bytes: &[u8]) -> Result<Vec<Cert>, AttestError> {
    let der = if bytes.starts_with(b"-----BEGIN") {
        super::cert::decode_pem_blocks(bytes, "PKCS7")
            .map_err(parse_error)?
            .remove(0)
    } else {
        bytes.to_vec()
    };

    let content = ContentInfo::from_der(&der).map_err(|error| parse_error(error.to_string()))?;
    if content.content_type != SIGNED_DATA {
        return Err(parse_error(format!(
            "content type is {}, not signedData",
            content.content_type
        )));
    }
    let signed: SignedData = content
        .content
        .decode_as()
        .map_err(|error| parse_error(error.to_string()))?;
    let count = signed.certificates.as_ref().map_or(0, |set| set.0.len());

    let raw = raw_certificates(&der).map_err(|error| parse_error(error.to_string()))?;
    if raw.len() != count {
        return Err(parse_error(format!(
            "found {} raw certificates but the decoder found {count}",
            raw.len()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(index, cert)| Cert::from_der(cert, &format!("PKCS#7 certificate {}", index + 1)))
        .collect()
}

/// Walks ContentInfo, SignedData and the `[0] IMPLICIT` certificate set, returning each
/// certificate's TLV bytes.
fn raw_certificates(der: &[u8]) -> der::Result<Vec<&[u8]>> {
    let content_info = AnyRef::from_der(der)?;
    let mut reader = SliceReader::new(content_info.value())?;
    let _content_type = ObjectIdentifier::decode(&mut reader)?;
    let explicit = AnyRef::decode(&mut reader)?;
    let signed_data = AnyRef::from_der(explicit.value())?;

    let mut reader = SliceReader::new(signed_data.value())?;
    let _version = AnyRef::decode(&mut reader)?;
    let _digest_algorithms = AnyRef::decode(&mut reader)?;
    let _encapsulated = AnyRef::decode(&mut reader)?;
    let mut certs = Vec::new();
    if reader.is_finished() {
        return Ok(certs);
    }
    let set = AnyRef::decode(&mut reader)?;
    let certificates_tag = der::Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N0,
    };
    if set.tag() != certificates_tag {
        return Ok(certs);
    }
    let mut reader = SliceReader::new(set.value())?;
    while !reader.is_finished() {
        certs.push(reader.tlv_bytes()?);
    }
    Ok(certs)
}

fn parse_error(reason: String) -> AttestError {
    AttestError::Parse {
        place: "Luna PKCS#7 bundle".to_owned(),
        reason,
    }
}

/// Orders bundle certificates from the key's certificate upward by following issuer
/// names. A PKCS#7 certificate set is a SET OF, so its stored order carries no meaning.
fn order_chain(certs: &[Cert]) -> Result<Vec<Cert>, AttestError> {
    let issues_another = |candidate: &Cert| {
        certs.iter().any(|other| {
            other.der != candidate.der
                && other.parsed.tbs_certificate.issuer == candidate.parsed.tbs_certificate.subject
        })
    };
    let leaves: Vec<&Cert> = certs.iter().filter(|cert| !issues_another(cert)).collect();
    let [leaf] = leaves.as_slice() else {
        return Err(parse_error(format!(
            "expected one key certificate that issues no other, found {}",
            leaves.len()
        )));
    };

    let mut chain = vec![(*leaf).clone()];
    while chain.len() < certs.len() {
        let current = &chain[chain.len() - 1];
        if current.parsed.tbs_certificate.issuer == current.parsed.tbs_certificate.subject {
            break;
        }
        let Some(issuer) = certs.iter().find(|cert| {
            cert.parsed.tbs_certificate.subject == current.parsed.tbs_certificate.issuer
        }) else {
            break;
        };
        chain.push(issuer.clone());
    }
    Ok(chain)
}

/// Verifies a Luna public key confirmation bundle against the fleet key.
///
/// Checks: every link signature from the key's certificate to a pinned Luna root (RSA or
/// ECC), every certificate valid at `at`, and the key's certificate key against the fleet
/// key. Certificates of the bundle outside the chain (the RSA bundle also carries the ECC
/// root) are ignored. A PKC states that the key pair is on a Luna HSM; it carries no
/// origin or extractable attribute, so those two rules are reported as not attested.
pub fn verify(
    bundle: &[u8],
    fleet_key: &SubjectPublicKeyInfoOwned,
    roots: &PinnedRoots,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    let certs = read_bundle(bundle)?;
    let chain = order_chain(&certs)?;
    let check = check_chain(&chain, &roots.manufacturer, at);

    let key_matches = match super::compare_keys(chain[0].spki(), fleet_key) {
        Ok(()) => Outcome::Pass,
        Err(reason) => Outcome::Fail(reason),
    };
    let device_serial = chain
        .get(1)
        .map(|issuer| device_serial(&issuer.subject()))
        .unwrap_or_else(|| "unknown".to_owned());

    Ok(AttestationReport {
        vendor: Vendor::Luna,
        device_serial,
        chain: check.names,
        verified_at: at,
        rules: vec![
            RuleResult { rule: Rule::Chain, outcome: outcome_from(check.failures) },
            RuleResult { rule: Rule::KeyMatches, outcome: key_matches },
            RuleResult {
                rule: Rule::GeneratedOnDevice,
                outcome: Outcome::NotAttested(
                    "a Luna public key confirmation states the key pair is on a Luna HSM, not how it got there".to_owned(),
                ),
            },
            RuleResult {
                rule: Rule::NotExtractable,
                outcome: Outcome::NotAttested(
                    "a Luna public key confirmation carries no extractable attribute".to_owned(),
                ),
            },
        ],
        notes: check.notes,
    })
}

/// Returns the HSM serial: the trailing digits of the common name of the certificate
/// that issued the key's certificate (`CN=521174`, `CN=Luna K7-521174`).
fn device_serial(subject: &str) -> String {
    let common_name = subject
        .split(',')
        .find_map(|part| part.trim().strip_prefix("CN="))
        .unwrap_or(subject);
    let digits: String = common_name
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if digits.is_empty() {
        common_name.to_owned()
    } else {
        digits
    }
}
