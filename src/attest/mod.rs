//! HSM key attestation: checks that the fleet key was generated inside genuine HSMs.
//!
//! Three vendor formats are verified, each signature by signature up to roots pinned in
//! [`PinnedRoots`], at an explicit verification time (never the current time implicitly):
//!
//! - [`marvell`]: Google Cloud HSM (Marvell LiquidSecurity) attestation blobs with their
//!   manufacturer and owner certificate chains.
//! - [`yubihsm`]: YubiHSM 2 key attestation certificates.
//! - [`luna`]: Thales Luna public key confirmation (PKCS#7) chains.
//!
//! Each returns an [`AttestationReport`] with the outcome of every [`Rule`]. What each
//! format proves, and what it does not, is written in `docs/attestation.md`.

pub mod cert;
pub mod luna;
pub mod marvell;
mod report;
mod roots;
pub mod yubihsm;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use spki::SubjectPublicKeyInfoOwned;

pub use report::{AttestationReport, Outcome, Rule, RuleResult};
pub use roots::PinnedRoots;

/// HSM vendor format of an attestation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    /// Google Cloud HSM on Marvell LiquidSecurity cards.
    Marvell,
    /// Yubico YubiHSM 2.
    YubiHsm2,
    /// Thales Luna.
    Luna,
}

impl Vendor {
    /// Returns the vendor name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Marvell => "marvell",
            Vendor::YubiHsm2 => "yubihsm2",
            Vendor::Luna => "luna",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Vendor {
    type Err = AttestError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "marvell" => Ok(Vendor::Marvell),
            "yubihsm2" => Ok(Vendor::YubiHsm2),
            "luna" => Ok(Vendor::Luna),
            other => Err(AttestError::UnknownVendor(other.to_owned())),
        }
    }
}

/// Errors of attestation verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// The vendor name is not one of the supported formats.
    #[error("unknown attestation vendor '{0}'\nhint: use marvell, yubihsm2 or luna")]
    UnknownVendor(String),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The number of input files does not fit the vendor format.
    #[error("{vendor} attestation expects {expected}, got {count} file(s)")]
    FileCount {
        /// The vendor format.
        vendor: Vendor,
        /// What the format expects, in words.
        expected: &'static str,
        /// How many files were given.
        count: usize,
    },
    /// An input could not be parsed.
    #[error("invalid attestation input in {place}: {reason}")]
    Parse {
        /// The file, certificate or record.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// The fleet public key could not be read.
    #[error(
        "invalid fleet public key: {0}\nhint: pass the SubjectPublicKeyInfo PEM from fleet-key.json"
    )]
    FleetKey(String),
    /// At least one rule failed.
    #[error("{} attestation rejected:{}", .0.vendor, failed_rules(.0))]
    Rejected(Box<AttestationReport>),
}

fn failed_rules(report: &AttestationReport) -> String {
    report
        .rules
        .iter()
        .filter_map(|result| match &result.outcome {
            Outcome::Fail(reason) => Some(format!("\n  {}: {reason}", result.rule)),
            _ => None,
        })
        .collect()
}

/// Parses the fleet key from its SubjectPublicKeyInfo PEM.
pub fn parse_fleet_key(spki_pem: &str) -> Result<SubjectPublicKeyInfoOwned, AttestError> {
    use der::Decode;

    let (label, der) = der::pem::decode_vec(spki_pem.trim().as_bytes())
        .map_err(|error| AttestError::FleetKey(format!("invalid PEM: {error}")))?;
    if label != "PUBLIC KEY" {
        return Err(AttestError::FleetKey(format!(
            "PEM label is {label}, expected PUBLIC KEY"
        )));
    }
    SubjectPublicKeyInfoOwned::from_der(&der)
        .map_err(|error| AttestError::FleetKey(error.to_string()))
}

/// Verifies the attestation in `files` for the fleet key, with `roots` (the embedded
/// default roots of the vendor when `None`) at time `at`.
///
/// Files per vendor, in this order:
/// - marvell: the attestation blob (gzip or not), then the certificate chain PEM
///   (partition, card, owner-certified partition, owner-certified card);
/// - yubihsm2: the key attestation certificate, the device attestation certificate,
///   then any intermediates up to the root (the sub CA), each PEM or DER;
/// - luna: the PKCS#7 public key confirmation bundle (DER or PEM).
///
/// Returns the report when no rule failed, and [`AttestError::Rejected`] with the whole
/// report when one did. A rule the format does not attest is reported as
/// [`Outcome::NotAttested`] and does not reject; check
/// [`AttestationReport::fully_attested`] to require every rule.
pub fn verify_files(
    vendor: Vendor,
    files: &[PathBuf],
    fleet_key_spki_pem: &str,
    roots: Option<&PinnedRoots>,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    let fleet_key = parse_fleet_key(fleet_key_spki_pem)?;
    let report = verify_against(vendor, files, &fleet_key, roots, at)?;
    accept(report)
}

/// Verifies everything in the attestation in `files` except the key rule, for a time when
/// the fleet key does not exist yet (before the ceremony generates it).
///
/// Takes the same files, roots and time as [`verify_files`]. The `key matches` rule is
/// reported as [`Outcome::NotAttested`], saying that it is checked once the key exists,
/// so [`AttestationReport::fully_attested`] is never true on this report.
///
/// NOTE: a fleet key that the attested key cannot be compared with (an unreadable key
/// attribute in a Marvell blob) is found only by [`verify_files`], not here.
pub fn verify_files_without_key(
    vendor: Vendor,
    files: &[PathBuf],
    roots: Option<&PinnedRoots>,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    // The verifiers compare the attested key with some fleet key. Before the ceremony
    // there is none, so an empty key stands in and its comparison is replaced below.
    let no_key = SubjectPublicKeyInfoOwned {
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: cert::EC_PUBLIC_KEY,
            parameters: None,
        },
        subject_public_key: der::asn1::BitString::from_bytes(&[])
            .map_err(|error| AttestError::FleetKey(error.to_string()))?,
    };
    let mut report = verify_against(vendor, files, &no_key, roots, at)?;
    for result in &mut report.rules {
        if result.rule == Rule::KeyMatches {
            result.outcome = Outcome::NotAttested(
                "the fleet key does not exist yet; this rule is checked once the ceremony \
                 generates it"
                    .to_owned(),
            );
        }
    }
    accept(report)
}

fn accept(report: AttestationReport) -> Result<AttestationReport, AttestError> {
    if report.passed() {
        Ok(report)
    } else {
        Err(AttestError::Rejected(Box::new(report)))
    }
}

fn verify_against(
    vendor: Vendor,
    files: &[PathBuf],
    fleet_key: &SubjectPublicKeyInfoOwned,
    roots: Option<&PinnedRoots>,
    at: DateTime<Utc>,
) -> Result<AttestationReport, AttestError> {
    let default_roots;
    let roots = match roots {
        Some(roots) => roots,
        None => {
            default_roots = PinnedRoots::embedded(vendor)?;
            &default_roots
        }
    };
    let inputs: Vec<Vec<u8>> = files
        .iter()
        .map(|path| read(path))
        .collect::<Result<_, _>>()?;
    let names: Vec<String> = files
        .iter()
        .map(|path| path.display().to_string())
        .collect();

    let report = match vendor {
        Vendor::Marvell => {
            let [blob, chain] = inputs.as_slice() else {
                return Err(file_count(vendor, "2 (blob, chain PEM)", files));
            };
            marvell::verify(blob, chain, fleet_key, roots, at)?
        }
        Vendor::YubiHsm2 => {
            if inputs.len() < 2 {
                return Err(file_count(
                    vendor,
                    "at least 2 (key cert, device cert, ...)",
                    files,
                ));
            }
            let mut chain = Vec::new();
            for (bytes, name) in inputs.iter().zip(&names) {
                chain.extend(cert::read_certs(bytes, name)?);
            }
            yubihsm::verify(&chain, fleet_key, roots, at)?
        }
        Vendor::Luna => {
            let [bundle] = inputs.as_slice() else {
                return Err(file_count(vendor, "1 (PKCS#7 bundle)", files));
            };
            luna::verify(bundle, fleet_key, roots, at)?
        }
    };
    Ok(report)
}

fn read(path: &Path) -> Result<Vec<u8>, AttestError> {
    std::fs::read(path).map_err(|source| AttestError::Read {
        path: path.to_owned(),
        source,
    })
}

fn file_count(vendor: Vendor, expected: &'static str, files: &[PathBuf]) -> AttestError {
    AttestError::FileCount {
        vendor,
        expected,
        count: files.len(),
    }
}

/// Compares an attested public key with the fleet key: algorithm, curve and key bits.
pub(crate) fn compare_keys(
    attested: &SubjectPublicKeyInfoOwned,
    fleet: &SubjectPublicKeyInfoOwned,
) -> Result<(), String> {
    if attested.algorithm.oid != fleet.algorithm.oid {
        return Err(format!(
            "attested key algorithm {} differs from fleet key algorithm {}",
            attested.algorithm.oid, fleet.algorithm.oid
        ));
    }
    if cert::curve_oid(attested) != cert::curve_oid(fleet) {
        return Err("attested key curve differs from the fleet key curve".to_owned());
    }
    if attested.subject_public_key != fleet.subject_public_key {
        return Err(format!(
            "attested public key (SHA-256 {}) differs from the fleet key (SHA-256 {})",
            key_fingerprint(attested),
            key_fingerprint(fleet)
        ));
    }
    Ok(())
}

/// Returns the key fingerprint: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER.
pub fn key_fingerprint(spki: &SubjectPublicKeyInfoOwned) -> String {
    use der::Encode;
    use sha2::{Digest, Sha256};

    match spki.to_der() {
        Ok(der) => hex::encode(Sha256::digest(der)),
        Err(_) => "(unencodable)".to_owned(),
    }
}
