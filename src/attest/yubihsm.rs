//! YubiHSM 2 key attestation certificates and Yubico's extensions in them.

use chrono::{DateTime, Utc};
use der::Decode;
use der::asn1::{BitString, ObjectIdentifier, OctetString, UintRef, Utf8StringRef};
use spki::SubjectPublicKeyInfoOwned;

use super::cert::{Cert, check_chain};
use super::report::outcome_from;
use super::{AttestError, AttestationReport, Outcome, PinnedRoots, Rule, RuleResult, Vendor};

/// Yubico's arc for attestation extensions, 1.3.6.1.4.1.41482.4.
const FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.1");
const SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.2");
const ORIGIN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.3");
const DOMAINS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.4");
const CAPABILITIES: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.5");
const OBJECT_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.6");
const LABEL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.4.9");

/// Origin value of a key generated on this device. 0x02 is imported, 0x10 is set when
/// the key was imported under wrap (0x11: generated on some YubiHSM, then wrapped in).
pub const ORIGIN_GENERATED: u8 = 0x01;
/// Capability bit `exportable-under-wrap`: the key may leave the device wrapped.
pub const CAPABILITY_EXPORTABLE_UNDER_WRAP: u64 = 0x0001_0000;

/// Yubico attestation extensions of one certificate; missing ones are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YubicoExtensions {
    /// Firmware version, major.minor.patch.
    pub firmware: Option<String>,
    /// Device serial number.
    pub serial: Option<u64>,
    /// Key origin bits.
    pub origin: Option<u8>,
    /// Domains the key belongs to, 1 to 16.
    pub domains: Option<Vec<u8>>,
    /// Capability bit mask.
    pub capabilities: Option<u64>,
    /// Object id of the key on the device.
    pub object_id: Option<u64>,
    /// Key label.
    pub label: Option<String>,
}

impl YubicoExtensions {
    /// Reads the Yubico extensions of `cert`.
    pub fn read(cert: &Cert) -> Result<Self, AttestError> {
        let mut found = Self::default();
        let extensions = cert
            .parsed
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or(&[]);
        for extension in extensions {
            let value = extension.extn_value.as_bytes();
            let error = |name: &str, error: der::Error| AttestError::Parse {
                place: format!("YubiHSM {name} extension of '{}'", cert.subject()),
                reason: error.to_string(),
            };
            let oid = extension.extn_id;
            if oid == FIRMWARE {
                let bytes = OctetString::from_der(value).map_err(|e| error("firmware", e))?;
                let parts: Vec<String> = bytes.as_bytes().iter().map(u8::to_string).collect();
                found.firmware = Some(parts.join("."));
            } else if oid == SERIAL {
                found.serial = Some(read_uint(value).map_err(|e| error("serial", e))?);
            } else if oid == ORIGIN {
                let bits = read_bits(value).map_err(|e| error("origin", e))?;
                found.origin = bits.last().copied();
            } else if oid == DOMAINS {
                let bits = read_bits(value).map_err(|e| error("domains", e))?;
                let mask = bits
                    .iter()
                    .fold(0u64, |mask, byte| (mask << 8) | u64::from(*byte));
                found.domains = Some(
                    (0..16)
                        .filter(|bit| mask & (1 << bit) != 0)
                        .map(|bit| bit + 1)
                        .collect(),
                );
            } else if oid == CAPABILITIES {
                let bits = read_bits(value).map_err(|e| error("capabilities", e))?;
                found.capabilities = Some(
                    bits.iter()
                        .fold(0u64, |mask, byte| (mask << 8) | u64::from(*byte)),
                );
            } else if oid == OBJECT_ID {
                found.object_id = Some(read_uint(value).map_err(|e| error("object id", e))?);
            } else if oid == LABEL {
                let label = Utf8StringRef::from_der(value).map_err(|e| error("label", e))?;
                found.label = Some(label.as_str().to_owned());
            }
        }
        Ok(found)
    }
}

fn read_uint(value: &[u8]) -> der::Result<u64> {
    let uint = UintRef::from_der(value)?;
    let bytes = uint.as_bytes();
    if bytes.len() > 8 {
        return Err(der::ErrorKind::Overflow.into());
    }
    Ok(bytes
        .iter()
        .fold(0, |number, byte| (number << 8) | u64::from(*byte)))
}

fn read_bits(value: &[u8]) -> der::Result<Vec<u8>> {
    let bits = BitString::from_der(value)?;
    Ok(bits.raw_bytes().to_vec())
}

/// Verifies a YubiHSM 2 attestation: `chain` is the key attestation certificate, the
/// device attestation certificate, then the intermediates (the sub CA), optionally the
/// root. Each is checked against the next and the last against a pinned root.
///
/// Checks: every link signature and validity at `at`; the serial in the key certificate
/// equals the device certificate's; the attested key against the fleet key; origin
/// generated (0x01); the `exportable-under-wrap` capability absent. It does not check the
/// key's domains or its other capabilities, which the report notes.
pub fn verify(
    chain: &[Cert],
    fleet_key: &SubjectPublicKeyInfoOwned,
    roots: &PinnedRoots,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    let [key_cert, device_cert, ..] = chain else {
        return Err(AttestError::FileCount {
            vendor: Vendor::YubiHsm2,
            expected: "at least 2 certificates (key, device, ...)",
            count: chain.len(),
        });
    };
    let key_extensions = YubicoExtensions::read(key_cert)?;
    let device_extensions = YubicoExtensions::read(device_cert)?;

    let check = check_chain(chain, &roots.manufacturer, at);
    let mut failures = check.failures;
    if key_extensions.serial != device_extensions.serial {
        failures.push(format!(
            "key attestation serial {:?} differs from device certificate serial {:?}",
            key_extensions.serial, device_extensions.serial
        ));
    }

    let key_matches = match super::compare_keys(key_cert.spki(), fleet_key) {
        Ok(()) => Outcome::Pass,
        Err(reason) => Outcome::Fail(reason),
    };
    let generated = match key_extensions.origin {
        Some(ORIGIN_GENERATED) => Outcome::Pass,
        Some(origin) => Outcome::Fail(format!(
            "origin is {origin:#04x}, not generated on this device (0x01)"
        )),
        None => Outcome::Fail("the key attestation has no origin extension".to_owned()),
    };
    let not_extractable = match key_extensions.capabilities {
        Some(capabilities) if capabilities & CAPABILITY_EXPORTABLE_UNDER_WRAP != 0 => {
            Outcome::Fail("the key has the exportable-under-wrap capability".to_owned())
        }
        Some(_) => Outcome::Pass,
        None => Outcome::Fail("the key attestation has no capabilities extension".to_owned()),
    };

    let mut notes = check.notes;
    notes.push(format!(
        "firmware {}, object id {}, label '{}', domains {:?}, capabilities {:#018x}",
        key_extensions.firmware.as_deref().unwrap_or("unknown"),
        key_extensions
            .object_id
            .map_or("unknown".to_owned(), |id| format!("{id:#06x}")),
        key_extensions.label.as_deref().unwrap_or(""),
        key_extensions.domains.clone().unwrap_or_default(),
        key_extensions.capabilities.unwrap_or(0),
    ));

    Ok(AttestationReport {
        vendor: Vendor::YubiHsm2,
        device_serial: key_extensions
            .serial
            .map_or_else(|| "unknown".to_owned(), |serial| serial.to_string()),
        chain: check.names,
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
