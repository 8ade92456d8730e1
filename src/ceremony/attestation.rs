//! Vendor attestations of the members' keys: the chain check before the ceremony, the
//! full check once the fleet key exists, and publication beside the evidence.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::CeremonyError;
use super::finish::read;
use super::preflight::Problem;
use crate::attest::{self, AttestError, AttestationReport, Outcome, Rule};
use crate::bundle::attestation::ATTESTATION_DIR;
use crate::bundle::{AttestationFile, FleetKeyDocument, MemberAttestation};
use crate::fsutil::write_new;
use crate::runbook::{AttestationSpec, Member, Runbook};

/// Verifies the chain of every attestation the runbook names, before the fleet key exists.
///
/// Returns one line per member for the plan and a problem for each attestation whose
/// chain, origin or extractability rule fails or whose files cannot be read. The `key
/// matches` rule cannot be checked yet, and each line says so.
pub fn check_chains(runbook: &Runbook) -> (Vec<String>, Vec<Problem>) {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (index, member) in runbook.members.iter().enumerate() {
        let Some(spec) = &member.attestation else {
            lines.push(format!(
                "attestation of {}: none; the key will not be hardware-attested",
                member.name
            ));
            continue;
        };
        let at = verification_time(spec);
        let place = format!("members[{index}].attestation ({})", member.name);
        match attest::verify_files_without_key(spec.vendor, &spec.files, None, at) {
            Ok(report) => lines.push(format!(
                "attestation of {}: {} device {}, chain valid at {}; {}; the key matches rule \
                 is checked when the ceremony generates the fleet key",
                member.name,
                spec.vendor,
                report.device_serial,
                utc_text(at),
                other_rules(&report)
            )),
            Err(error) => problems.push(Problem {
                place,
                message: format!(
                    "{error}\nhint: check the files and the vendor, and set verify_at to the \
                     time the attestation was collected if a vendor root has expired since"
                ),
            }),
        }
    }
    (lines, problems)
}

/// Verifies every member's attestation against the generated fleet key and returns what
/// the document records, in member order (`None` for a member without attestation).
///
/// A rejected attestation is recorded with its failed rules, not raised, so the document
/// shows it and `verify` fails on it. Unreadable or unparsable files are errors.
pub fn attest_members(
    runbook: &Runbook,
    fleet_key_spki_pem: &str,
) -> Result<Vec<Option<MemberAttestation>>, CeremonyError> {
    runbook
        .members
        .iter()
        .map(|member| match &member.attestation {
            Some(spec) => attest_member(runbook, member, spec, fleet_key_spki_pem).map(Some),
            None => Ok(None),
        })
        .collect()
}

fn attest_member(
    runbook: &Runbook,
    member: &Member,
    spec: &AttestationSpec,
    fleet_key_spki_pem: &str,
) -> Result<MemberAttestation, CeremonyError> {
    let mut files = Vec::with_capacity(spec.files.len());
    for path in &spec.files {
        let bytes = read(path)?;
        files.push(AttestationFile {
            name: file_name(path),
            sha256: super::finish::sha256_hex(&bytes),
        });
    }

    let at = verification_time(spec);
    let report = match attest::verify_files(spec.vendor, &spec.files, fleet_key_spki_pem, None, at)
    {
        Ok(report) => report,
        Err(AttestError::Rejected(report)) => {
            tracing::warn!(member = %member.name, "attestation rejected:\n{report}");
            *report
        }
        Err(error) => {
            return Err(CeremonyError::Invalid {
                path: runbook.path.clone(),
                message: format!("attestation of member {}: {error}", member.name),
            });
        }
    };
    tracing::info!(
        member = %member.name,
        vendor = %spec.vendor,
        fully_attested = report.fully_attested(),
        "attestation verified against the fleet key"
    );
    Ok(MemberAttestation::from_report(&report, files))
}

/// Copies each member's attestation files into `evidence_dir/attestation/<member>/`,
/// after checking each against the digest the document records.
pub fn publish(
    runbook: &Runbook,
    document: &FleetKeyDocument,
    evidence_dir: &Path,
) -> Result<(), CeremonyError> {
    for (member, entry) in runbook.members.iter().zip(&document.members) {
        let (Some(spec), Some(recorded)) = (&member.attestation, &entry.attestation) else {
            continue;
        };
        let folder = evidence_dir.join(ATTESTATION_DIR).join(&member.name);
        for (path, file) in spec.files.iter().zip(&recorded.files) {
            let bytes = read(path)?;
            let digest = super::finish::sha256_hex(&bytes);
            if digest != file.sha256 {
                return Err(CeremonyError::Invalid {
                    path: path.clone(),
                    message: format!(
                        "SHA-256 is {digest}, but the fleet-key document records {}; the \
                         attestation file changed after the document was written",
                        file.sha256
                    ),
                });
            }
            write_new(&folder.join(&file.name), &bytes, false)?;
        }
    }
    Ok(())
}

/// The runbook's `verify_at`, or the current time.
fn verification_time(spec: &AttestationSpec) -> DateTime<Utc> {
    spec.verify_at.unwrap_or_else(Utc::now)
}

/// Describes the rules other than chain and key matches, for the plan.
fn other_rules(report: &AttestationReport) -> String {
    [Rule::GeneratedOnDevice, Rule::NotExtractable]
        .iter()
        .map(|rule| match report.outcome(*rule) {
            Some(Outcome::Pass) => format!("{rule}: ok"),
            Some(Outcome::Fail(_)) => format!("{rule}: FAIL"),
            Some(Outcome::NotAttested(_)) | None => format!("{rule}: not attested"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn file_name(path: &Path) -> String {
    // The runbook rejects attestation paths without a file name.
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn utc_text(time: DateTime<Utc>) -> String {
    super::deploy::utc_text(time)
}
