//! Offline verification of a bundle against the pinned auditor and operator keys.

use std::fmt;
use std::path::Path;

use ed25519_dalek::Signature;
use sha2::{Digest, Sha256};

use super::attestation::check_attestation;
use super::countersign::verify_countersignature;
use super::document::{FleetKeyDocument, document_digest};
use super::files::Bundle;
use super::statement::Statement;
use super::trust::Trust;
pub use super::verify_log::VerifyOptions;
use super::verify_log::run_log_checks;

/// File name of the bundle inside a bundle directory.
pub const BUNDLE_FILE_NAME: &str = "bundle.json";

/// Name of the check that reports the pinned keys.
pub const CHECK_PINNED_KEYS: &str = "pinned keys";
/// Name of the check that reads and parses the bundle.
pub const CHECK_BUNDLE_FORMAT: &str = "bundle format";
/// Name of the check that the document digest equals the statement digest.
pub const CHECK_DOCUMENT_DIGEST: &str = "document digest";
/// Name of the check of the document's fields against the statement and its keys.
pub const CHECK_DOCUMENT_FIELDS: &str = "document fields";
/// Name of the check that the auditor key id is the pinned auditor key.
pub const CHECK_AUDITOR_KEY_ID: &str = "auditor key id";
/// Name of the check of the auditor's signature.
pub const CHECK_AUDITOR_SIGNATURE: &str = "auditor signature";
/// Name of the check that the operator key id is the pinned operator key.
pub const CHECK_OPERATOR_KEY_ID: &str = "operator key id";
/// Name of the check of the operator's counter-signature.
pub const CHECK_OPERATOR_COUNTERSIGNATURE: &str = "operator counter-signature";

/// Name of the check that the files of an evidence folder match its bundle, run when
/// verifying a folder.
pub const CHECK_EVIDENCE_FILES: &str = "evidence files";
/// Name of the check of witness sign-offs, run when the bundle carries any.
pub const CHECK_SIGNOFFS: &str = "witness sign-offs";
/// Name of the check that every member's key is attested by its HSM vendor, or that the
/// verifier allows unattested keys.
pub const CHECK_HARDWARE_ATTESTATION: &str = "hardware attestation";

/// The outcome of one verification check.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Name of the check, one of the `CHECK_*` constants.
    pub name: &'static str,
    /// Whether the check passed.
    pub passed: bool,
    /// The value checked, or the reason the check failed.
    pub detail: String,
}

/// The checks run on a bundle, in order. Checks stop after the first failure.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// The checks that ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// Returns true when at least one check ran and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|check| check.passed)
    }

    /// Returns the first failed check, if any.
    pub fn failed_check(&self) -> Option<&Check> {
        self.checks.iter().find(|check| !check.passed)
    }

    fn pass(&mut self, name: &'static str, detail: String) {
        tracing::debug!(check = name, %detail, "verification check passed");
        self.checks.push(Check {
            name,
            passed: true,
            detail,
        });
    }

    fn fail(&mut self, name: &'static str, detail: String) {
        self.checks.push(Check {
            name,
            passed: false,
            detail,
        });
    }
}

impl fmt::Display for Report {
    /// Writes one line per check (`ok    name: detail` or `FAIL  name: detail`), then a
    /// line naming the failed check when one failed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let status = if check.passed { "ok" } else { "FAIL" };
            // Continuation lines of a detail (such as a hint) are indented under it.
            let detail = check.detail.replace('\n', "\n      ");
            writeln!(f, "{status:<6}{}: {detail}", check.name)?;
        }
        if let Some(check) = self.failed_check() {
            writeln!(f, "bundle rejected: the {} check failed", check.name)?;
        }
        Ok(())
    }
}

/// Verifies the bundle at `path`, a directory holding `bundle.json` or the bundle file
/// itself, against the pinned keys in `trust`.
///
/// A missing or unreadable file fails the bundle format check. See
/// [`verify_bundle_bytes`] for the checks. When `path` is an evidence folder, the
/// attestation files published in its `attestation/<member>/` folders are verified again.
///
/// It runs the audit log checks only when `trust` pins a log (see
/// [`verify_bundle_bytes_with`]).
pub fn verify_path(path: &Path, trust: &Trust) -> Report {
    verify_path_with(path, trust, &VerifyOptions::default())
}

/// Verifies the bundle at `path` like [`verify_path`], with an earlier checkpoint or a
/// log directory from `options`.
pub fn verify_path_with(path: &Path, trust: &Trust, options: &VerifyOptions) -> Report {
    let file = if path.is_dir() {
        path.join(BUNDLE_FILE_NAME)
    } else {
        path.to_path_buf()
    };

    // Attestation files are published only inside an evidence folder.
    let evidence_dir = path.is_dir().then_some(path);
    match std::fs::read(&file) {
        Ok(bytes) => verify_bytes(&bytes, trust, options, evidence_dir),
        Err(error) => {
            let mut report = pinned_keys_report(trust);
            report.fail(
                CHECK_BUNDLE_FORMAT,
                format!("cannot read {}: {error}", file.display()),
            );
            report
        }
    }
}

/// Verifies bundle bytes against the pinned keys in `trust`.
///
/// Checks, in order:
/// 1. pinned keys: reports both fingerprints from `trust`;
/// 2. bundle format: the bundle parses, with valid base64, hex and ciphersuite fields;
/// 3. document digest: SHA-256 of the document bytes equals the statement digest;
/// 4. document fields: format, namespace and epoch equal the statement's, and every
///    fleet key's SPKI parses and matches its listed algorithm and fingerprint;
/// 5. auditor key id: equals the pinned auditor fingerprint;
/// 6. auditor signature: verifies over the statement (strict Ed25519);
/// 7. operator key id: equals the pinned operator fingerprint;
/// 8. operator counter-signature: verifies over the auditor signature (strict Ed25519);
/// 9. hardware attestation: every member's recorded attestation passed, or the trust
///    allows unattested members (see [`check_attestation`]). From bytes alone the
///    attestation files are not re-verified; [`verify_path`] on an evidence folder does.
///
/// The report stops at the first failed check.
///
/// It runs the audit log checks only when `trust` pins a log (see
/// [`verify_bundle_bytes_with`]). It does not compare the statement timestamp with any
/// clock, nor the document's transcript and runbook digests with those files.
pub fn verify_bundle_bytes(bytes: &[u8], trust: &Trust) -> Report {
    verify_bytes(bytes, trust, &VerifyOptions::default(), None)
}

/// Verifies bundle bytes like [`verify_bundle_bytes`], then runs the audit log checks
/// when the trust file pins a log:
/// 9. checkpoint signature: the bundle has a checkpoint signed by the pinned log key,
///    with the pinned origin;
/// 10. inclusion proof: the bundle's log entry is in the checkpoint's tree;
/// 11. witness cosignatures: at least the quorum of pinned witnesses cosigned it;
/// 12. log consistency, with `options.since` only: the checkpoint extends the earlier one.
///
/// The hardware attestation check comes last, so a verifier that accepts unattested keys
/// by policy still sees every other check.
pub fn verify_bundle_bytes_with(bytes: &[u8], trust: &Trust, options: &VerifyOptions) -> Report {
    verify_bytes(bytes, trust, options, None)
}

fn verify_bytes(
    bytes: &[u8],
    trust: &Trust,
    options: &VerifyOptions,
    evidence_dir: Option<&Path>,
) -> Report {
    let mut report = pinned_keys_report(trust);
    // The checks stop at the first failure, so the last check in the report is the failed one.
    let Some((bundle, document)) = run_checks(bytes, trust, &mut report) else {
        return report;
    };
    if run_log_checks(&bundle, trust, options, &mut report).is_none() {
        return report;
    }
    if let Some(dir) = evidence_dir
        && record(
            &mut report,
            CHECK_EVIDENCE_FILES,
            check_evidence_files(dir, &bundle, &document),
        )
        .is_none()
    {
        return report;
    }
    let _ = record(
        &mut report,
        CHECK_HARDWARE_ATTESTATION,
        check_hardware_attestation(&document, trust, evidence_dir),
    );
    report
}

fn pinned_keys_report(trust: &Trust) -> Report {
    let mut report = Report::default();
    report.pass(
        CHECK_PINNED_KEYS,
        format!("auditor {}, operator {}", trust.auditor, trust.operator),
    );
    report
}

/// Runs the checks up to the sign-offs and returns the bundle and its parsed document.
fn run_checks(
    bytes: &[u8],
    trust: &Trust,
    report: &mut Report,
) -> Option<(Bundle, FleetKeyDocument)> {
    let (bundle, document_bytes, statement) =
        record(report, CHECK_BUNDLE_FORMAT, parse_bundle(bytes))?;
    record(
        report,
        CHECK_DOCUMENT_DIGEST,
        check_digest(&document_bytes, &statement),
    )?;
    let document = record(
        report,
        CHECK_DOCUMENT_FIELDS,
        check_document(&document_bytes, &statement),
    )?;

    let auditor_key_id = check_key_id(
        &bundle.auditor.key_id,
        &trust.auditor.fingerprint,
        "auditor",
    );
    record(report, CHECK_AUDITOR_KEY_ID, auditor_key_id)?;
    let auditor_signature = record(
        report,
        CHECK_AUDITOR_SIGNATURE,
        check_auditor_signature(&bundle, &statement, trust),
    )?;

    let operator_key_id = check_key_id(
        &bundle.operator.key_id,
        &trust.operator.fingerprint,
        "operator",
    );
    record(report, CHECK_OPERATOR_KEY_ID, operator_key_id)?;
    record(
        report,
        CHECK_OPERATOR_COUNTERSIGNATURE,
        check_countersignature(&bundle, &auditor_signature, trust),
    )?;
    if !bundle.signoffs.is_empty() {
        record(report, CHECK_SIGNOFFS, check_signoffs(&bundle, &document))?;
    }
    Some((bundle, document))
}

/// Checks every witness sign-off against the document's fleet id and transcript digest.
/// It does not check who the witnesses are: readers compare the key ids with keys the
/// witnesses published themselves.
fn check_signoffs(bundle: &Bundle, document: &FleetKeyDocument) -> Outcome<()> {
    let mut names = Vec::new();
    for signoff in &bundle.signoffs {
        signoff
            .verify(&document.fleet_id, &document.transcript_sha256)
            .map_err(|error| error.to_string())?;
        names.push(format!("{} (key {})", signoff.witness, signoff.key_id));
    }
    Ok(((), format!("{} valid: {}", names.len(), names.join(", "))))
}

/// The outcome of one check: a value for later checks and a detail line, or the reason
/// it failed.
pub(super) type Outcome<T> = Result<(T, String), String>;

/// Records `outcome` as check `name`; returns the value when it passed.
pub(super) fn record<T>(report: &mut Report, name: &'static str, outcome: Outcome<T>) -> Option<T> {
    match outcome {
        Ok((value, detail)) => {
            report.pass(name, detail);
            Some(value)
        }
        Err(detail) => {
            report.fail(name, detail);
            None
        }
    }
}

fn parse_bundle(bytes: &[u8]) -> Outcome<(Bundle, Vec<u8>, Statement)> {
    let bundle = Bundle::from_json_bytes(bytes).map_err(|error| error.to_string())?;
    let document_bytes = bundle.document_bytes().map_err(|error| error.to_string())?;
    let statement = bundle
        .auditor
        .statement()
        .map_err(|error| error.to_string())?;

    let detail = format!(
        "{} document bytes, statement ciphersuite {}",
        document_bytes.len(),
        statement.ciphersuite
    );
    Ok(((bundle, document_bytes, statement), detail))
}

fn check_digest(document_bytes: &[u8], statement: &Statement) -> Outcome<()> {
    let digest = document_digest(document_bytes);
    if digest != statement.digest {
        return Err(format!(
            "document has sha256 {} but the statement signs {}",
            hex::encode(digest),
            hex::encode(statement.digest)
        ));
    }
    Ok(((), format!("sha256 {}", hex::encode(digest))))
}

fn check_document(document_bytes: &[u8], statement: &Statement) -> Outcome<FleetKeyDocument> {
    let document =
        FleetKeyDocument::from_json_bytes(document_bytes).map_err(|error| error.to_string())?;
    document.check_fields().map_err(|error| error.to_string())?;
    if document.namespace != statement.namespace {
        return Err(format!(
            "document namespace \"{}\" differs from statement namespace \"{}\"",
            document.namespace, statement.namespace
        ));
    }
    if document.epoch != statement.epoch {
        return Err(format!(
            "document epoch {} differs from statement epoch {}",
            document.epoch, statement.epoch
        ));
    }

    let keys = document.check_keys().map_err(|error| error.to_string())?;
    let listed: Vec<String> = keys
        .iter()
        .map(|key| format!("{} sha256 {}", key.algorithm, key.fingerprint()))
        .collect();
    let detail = format!(
        "fleet {}, namespace {}, epoch {}, keys: {}",
        document.fleet_id,
        document.namespace,
        document.epoch,
        listed.join(", ")
    );
    Ok((document, detail))
}

fn check_hardware_attestation(
    document: &FleetKeyDocument,
    trust: &Trust,
    evidence_dir: Option<&Path>,
) -> Outcome<()> {
    let detail = check_attestation(document, evidence_dir, trust.allow_unattested)?;
    Ok(((), detail))
}

/// Checks the files of an evidence folder that carry what the bundle signs: the document,
/// the fleet key PEM, both raw signatures, and the transcript, whose first lines must
/// hash to the document's `transcript_sha256`. A file the folder leaves out is not
/// checked; readers use only the files that this check covered.
fn check_evidence_files(dir: &Path, bundle: &Bundle, document: &FleetKeyDocument) -> Outcome<()> {
    let document_bytes = bundle.document_bytes().map_err(|error| error.to_string())?;
    let auditor = bundle
        .auditor
        .signature()
        .map_err(|error| error.to_string())?;
    let operator = bundle
        .operator
        .signature()
        .map_err(|error| error.to_string())?;
    let key_pem = document
        .keys
        .first()
        .map(|key| key.spki_pem.as_bytes().to_vec())
        .unwrap_or_default();
    let expected: [(&str, Vec<u8>); 4] = [
        ("fleet-key.json", document_bytes),
        ("fleet-key.pem", key_pem),
        ("auditor-signature.bin", auditor.to_bytes().to_vec()),
        ("operator-signature.bin", operator.to_bytes().to_vec()),
    ];
    let mut checked = Vec::new();
    for (name, bytes) in expected {
        let Some(found) = read_optional(&dir.join(name))? else {
            continue;
        };
        if found != bytes {
            return Err(format!(
                "{name} in {} differs from what the bundle signs",
                dir.display()
            ));
        }
        checked.push(name);
    }
    if let Some(transcript) = read_optional(&dir.join("transcript.jsonl"))? {
        let mut hasher = Sha256::new();
        let prefix_matches = transcript
            .split_inclusive(|byte| *byte == b'\n')
            .any(|line| {
                hasher.update(line);
                hex::encode(hasher.clone().finalize()) == document.transcript_sha256
            });
        if !prefix_matches {
            return Err(format!(
                "no first lines of transcript.jsonl in {} hash to the document's transcript SHA-256 {}",
                dir.display(),
                document.transcript_sha256
            ));
        }
        checked.push("transcript.jsonl");
    }
    if checked.is_empty() {
        return Ok((
            (),
            "the folder holds no published copies of the signed files to compare".to_owned(),
        ));
    }
    Ok(((), format!("{} match the bundle", checked.join(", "))))
}

/// Reads `path`, or returns `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

fn check_key_id(found: &str, pinned: &str, role: &str) -> Outcome<()> {
    if found != pinned {
        return Err(format!(
            "bundle names {role} key {found} but the pinned {role} key is {pinned}"
        ));
    }
    Ok(((), format!("sha256 {found}")))
}

fn check_auditor_signature(
    bundle: &Bundle,
    statement: &Statement,
    trust: &Trust,
) -> Outcome<Signature> {
    let signature = bundle
        .auditor
        .signature()
        .map_err(|error| error.to_string())?;
    statement
        .verify(&trust.auditor.key, &signature)
        .map_err(|error| error.to_string())?;
    let detail = format!("valid Ed25519 signature by {}", trust.auditor.name);
    Ok((signature, detail))
}

fn check_countersignature(
    bundle: &Bundle,
    auditor_signature: &Signature,
    trust: &Trust,
) -> Outcome<()> {
    let signature = bundle
        .operator
        .signature()
        .map_err(|error| error.to_string())?;
    verify_countersignature(&trust.operator.key, auditor_signature, &signature)
        .map_err(|error| error.to_string())?;
    let detail = format!("valid Ed25519 counter-signature by {}", trust.operator.name);
    Ok(((), detail))
}
