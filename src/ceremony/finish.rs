//! The second half of a run: once the auditor's signature and the operator's
//! counter-signature are back, assemble and verify the bundle and write the evidence.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::render::{EvidenceInputs, render_evidence, write_evidence};
use super::{
    ACTION_EVIDENCE_WRITTEN, AUDITOR_SIGNATURE_FILE, BUNDLE_FILE, CeremonyError, LOG_PROOF_FILE,
    OPERATOR_SIGNATURE_FILE,
};
use crate::bundle::{
    self, AuditorSignature, Bundle, LogProof, OperatorSignature, SigningRequest, Trust, TrustedKey,
};
use crate::evidence::Templates;
use crate::runbook::Runbook;
use crate::transcript::Transcript;

/// How far the second half got.
#[derive(Debug)]
pub enum Outcome {
    /// Signatures are missing; nothing was written.
    Waiting {
        /// The files still to be delivered.
        missing: Vec<PathBuf>,
    },
    /// The bundle verified and the evidence was written.
    Written {
        /// The evidence folder.
        evidence: PathBuf,
    },
}

/// Assembles the bundle from the work folder, verifies it against the runbook's pinned
/// keys, and writes the evidence folder. Writes nothing when a signature is missing or
/// the bundle fails verification.
pub fn finish(runbook: &Runbook) -> Result<Outcome, CeremonyError> {
    let work = &runbook.outputs.work_dir;
    let auditor_path = work.join(AUDITOR_SIGNATURE_FILE);
    let operator_path = work.join(OPERATOR_SIGNATURE_FILE);
    let missing: Vec<PathBuf> = [&auditor_path, &operator_path]
        .into_iter()
        .filter(|path| !path.exists())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Ok(Outcome::Waiting { missing });
    }

    let document_path = runbook.outputs.fleet_key_document();
    let document_bytes = read(&document_path)?;
    check_against_transcript(runbook, &document_path, &document_bytes)?;
    let request_path = runbook.outputs.signing_request();
    let request = SigningRequest::from_json_bytes(&read(&request_path)?)
        .map_err(|error| invalid(&request_path, error))?;
    let document_sha256 = hex::encode(bundle::document_digest(&document_bytes));
    if request.document_sha256 != document_sha256 {
        return Err(CeremonyError::Invalid {
            path: document_path,
            message: format!(
                "SHA-256 is {document_sha256}, but the signing request names {}; the document changed after the request was written",
                request.document_sha256
            ),
        });
    }
    let auditor = AuditorSignature::from_json_bytes(&read(&auditor_path)?)
        .map_err(|error| invalid(&auditor_path, error))?;
    let operator = OperatorSignature::from_json_bytes(&read(&operator_path)?)
        .map_err(|error| invalid(&operator_path, error))?;

    let bundle = assemble_bundle(work, &document_bytes, &auditor, &operator)?;
    let bundle_bytes = bundle.to_json_bytes();
    let trust = trust_from_runbook(runbook);
    let report = bundle::verify_bundle_bytes(&bundle_bytes, &trust);
    if !passed_except_attestation(&report) {
        return Err(CeremonyError::BundleRejected { report });
    }

    // Checked before the record below, so that a retry after this error adds no record.
    let evidence_dir = runbook.outputs.fleet_evidence_dir(&runbook.fleet.id);
    if evidence_dir.exists() {
        return Err(CeremonyError::Invalid {
            path: evidence_dir,
            message: "the evidence folder exists already, and evidence is never overwritten\nhint: move the folder aside, then run again".to_owned(),
        });
    }

    let mut transcript = Transcript::open(&runbook.outputs.transcript())?;
    let bundle_sha256 = hex::encode(bundle::document_digest(&bundle_bytes));
    // A run interrupted after this record and retried records the same bundle once.
    let recorded = transcript.records().iter().any(|record| {
        record.action == super::progress::action::BUNDLE_VERIFIED
            && record.details["bundle_sha256"] == bundle_sha256.as_str()
    });
    if !recorded {
        transcript.append(
            super::progress::action::BUNDLE_VERIFIED,
            json!({
                "auditor_key_id": auditor.key_id,
                "auditor_timestamp_ms": auditor.timestamp_ms,
                "operator_key_id": operator.key_id,
                "bundle_sha256": bundle_sha256,
            }),
        )?;
    }

    let transcript_bytes = read(&runbook.outputs.transcript())?;
    let inputs = EvidenceInputs {
        document_bytes,
        bundle_bytes,
        auditor,
        operator,
        trust,
        transcript_bytes,
    };
    let document = bundle::FleetKeyDocument::from_json_bytes(&inputs.document_bytes)
        .map_err(|error| invalid(&document_path, error))?;
    let files = render_evidence(&inputs, &Templates::builtin())?;
    write_evidence(&evidence_dir, &files)?;
    super::attestation::publish(runbook, &document, &evidence_dir)?;
    let digest_of = |name: &str| files.get(name).map(sha256_hex).unwrap_or_default();

    transcript.append(
        ACTION_EVIDENCE_WRITTEN,
        json!({
            "folder": evidence_dir.display().to_string(),
            "bundle": BUNDLE_FILE,
            "index_md_sha256": digest_of("index.md"),
            "index_html_sha256": digest_of("index.html"),
            "evidence_json_sha256": digest_of("evidence.json"),
        }),
    )?;
    Ok(Outcome::Written {
        evidence: evidence_dir,
    })
}

/// Checks that the runbook and the fleet-key document are the ones the run recorded in
/// the transcript. The work folder passes through other hands between the two halves of
/// a run, and the signing request beside the document could have been changed with it.
fn check_against_transcript(
    runbook: &Runbook,
    document_path: &Path,
    document_bytes: &[u8],
) -> Result<(), CeremonyError> {
    let transcript_path = runbook.outputs.transcript();
    let transcript = Transcript::open(&transcript_path)?;
    let recorded = |action: &str, field: &str| {
        transcript
            .records()
            .iter()
            .rev()
            .find(|record| record.action == action)
            .map(|record| {
                (
                    record.seq,
                    record.details[field].as_str().map(str::to_owned),
                )
            })
    };
    let changed = |path: &Path, message: String| CeremonyError::Invalid {
        path: path.to_path_buf(),
        message,
    };

    let runbook_sha256 = runbook.sha256();
    match recorded(super::progress::action::STARTED, "runbook_sha256") {
        Some((_, Some(sha256))) if sha256 == runbook_sha256 => {}
        Some((seq, found)) => {
            return Err(changed(
                &runbook.path,
                format!(
                    "the runbook has SHA-256 {runbook_sha256}, but transcript record {seq} started the ceremony with {}; the runbook changed since\nhint: restore the runbook the ceremony started with",
                    found.unwrap_or_else(|| "no digest".to_owned())
                ),
            ));
        }
        None => {
            return Err(changed(
                &transcript_path,
                "the transcript has no start record".to_owned(),
            ));
        }
    }

    let document_sha256 = sha256_hex(document_bytes);
    match recorded(super::progress::action::DOCUMENT_WRITTEN, "sha256") {
        Some((_, Some(sha256))) if sha256 == document_sha256 => Ok(()),
        Some((seq, found)) => Err(changed(
            document_path,
            format!(
                "SHA-256 is {document_sha256}, but transcript record {seq} wrote the document with {}; the document changed after the run wrote it\nhint: restore the fleet-key document the run wrote, and have the auditor sign that one",
                found.unwrap_or_else(|| "no digest".to_owned())
            ),
        )),
        None => Err(changed(
            &transcript_path,
            "the transcript records no fleet-key document\nhint: run the ceremony with --resume to finish its HSM part".to_owned(),
        )),
    }
}

/// Assembles the bundle from the work folder: the document and both signatures, the log's
/// checkpoint and inclusion proof when the auditor returned them, and the witnesses'
/// sign-offs.
pub(super) fn assemble_bundle(
    work: &Path,
    document_bytes: &[u8],
    auditor: &AuditorSignature,
    operator: &OperatorSignature,
) -> Result<Bundle, CeremonyError> {
    let mut bundle = Bundle::assemble(document_bytes, auditor, operator);
    let log_proof_path = work.join(LOG_PROOF_FILE);
    if log_proof_path.exists() {
        let proof = LogProof::from_json_bytes(&read(&log_proof_path)?)
            .map_err(|error| invalid(&log_proof_path, error))?;
        bundle.attach_log_proof(&proof);
        bundle::verify_log::check_own_inclusion(&bundle).map_err(|reason| {
            CeremonyError::Invalid {
                path: log_proof_path.clone(),
                message: format!(
                    "it does not prove this bundle's auditor statement: {reason}\nhint: a proof left from an earlier signature is stale; move it aside, or log this statement with `log append` and use its proof"
                ),
            }
        })?;
    }
    bundle.signoffs = read_signoffs(&work.join(SIGNOFF_DIR))?;
    Ok(bundle)
}

/// Returns whether every check passed, or only the hardware attestation check failed.
/// Attestation is published as recorded, unattested or not. The evidence states which
/// members are attested, and each verifier applies its own policy to that.
pub(super) fn passed_except_attestation(report: &bundle::Report) -> bool {
    report.passed()
        || report
            .failed_check()
            .is_some_and(|check| check.name == bundle::verify::CHECK_HARDWARE_ATTESTATION)
}

/// Folder of witness sign-off files inside the work folder.
pub const SIGNOFF_DIR: &str = "signoffs";

/// Reads the witness sign-off files of the work folder, in file-name order. The bundle
/// check verifies each against the document.
fn read_signoffs(dir: &Path) -> Result<Vec<bundle::signoff::Signoff>, CeremonyError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CeremonyError::Read {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            bundle::signoff::Signoff::from_json_bytes(&read(path)?)
                .map_err(|error| invalid(path, error))
        })
        .collect()
}

/// Builds a trust anchor from the runbook's pinned keys, for verifying the assembled
/// bundle.
pub(super) fn trust_from_runbook(runbook: &Runbook) -> Trust {
    Trust {
        auditor: TrustedKey::new(runbook.auditor.name.clone(), runbook.auditor.public_key),
        operator: TrustedKey::new(runbook.operator.name.clone(), runbook.operator.public_key),
        allow_unattested: false,
        log: None,
    }
}

pub(super) fn create_new_dir(path: &Path) -> Result<(), CeremonyError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| CeremonyError::Read {
            path: parent.to_owned(),
            source,
        })?;
    }
    // create_dir fails when the folder exists, so evidence is never overwritten.
    std::fs::create_dir(path).map_err(|source| CeremonyError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, CeremonyError> {
    std::fs::read(path).map_err(|source| CeremonyError::Read {
        path: path.to_owned(),
        source,
    })
}

pub(super) fn invalid(path: &Path, error: impl std::fmt::Display) -> CeremonyError {
    CeremonyError::Invalid {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(bundle::document_digest(bytes))
}
