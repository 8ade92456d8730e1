//! The `hardware attestation` check of a bundle: which members' keys an HSM vendor vouches
//! for, re-checked from the document and from attestation files published beside it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::document::{FleetKeyDocument, MemberAttestation, MemberEntry, RULE_FAIL};
use crate::attest::{self, AttestError, Vendor};

/// Folder of an evidence folder that holds each member's attestation files, as
/// `attestation/<member>/<file>`.
pub const ATTESTATION_DIR: &str = "attestation";

/// What the check found about the members.
#[derive(Debug, Default)]
struct Findings {
    /// Members that fail whatever the policy: a failed rule, a changed file, a claim
    /// without data.
    problems: Vec<String>,
    /// Members whose key no vendor fully vouches for, with the reason.
    unattested: Vec<String>,
    /// Members whose key is fully attested, with what was re-checked.
    attested: Vec<String>,
}

/// Checks the attestation of every member of `document`.
///
/// Fails when a member is marked attested without attestation data, when a recorded rule
/// failed, when a published attestation file differs from its recorded digest or no
/// longer verifies, and, unless `allow_unattested`, when a member is not fully attested.
/// Files published under `evidence_dir/attestation/<member>/` are verified again with
/// [`attest::verify_files`] against the document's first fleet key at the recorded
/// verification time. Without published files only the recorded results and digests are
/// read, so nothing outside the document vouches for them beyond the auditor's signature.
pub fn check_attestation(
    document: &FleetKeyDocument,
    evidence_dir: Option<&Path>,
    allow_unattested: bool,
) -> Result<String, String> {
    let fleet_key_pem = document.keys.first().map(|key| key.spki_pem.as_str());
    let mut findings = Findings::default();
    for member in &document.members {
        check_member(member, fleet_key_pem, evidence_dir, &mut findings);
    }

    if !findings.problems.is_empty() {
        return Err(findings.problems.join("\n"));
    }
    let unattested = findings.unattested.join(", ");
    if !findings.unattested.is_empty() && !allow_unattested {
        return Err(format!(
            "members not hardware-attested: {unattested}\nhint: pass --allow-unattested, or \
             set allow_unattested: true in the trust file, only if you accept fleet keys \
             that no HSM vendor vouches for"
        ));
    }

    let mut parts = findings.attested;
    if !findings.unattested.is_empty() {
        parts.push(format!(
            "not hardware-attested, allowed by the trust file or --allow-unattested: \
             {unattested}"
        ));
    }
    Ok(parts.join("; "))
}

fn check_member(
    member: &MemberEntry,
    fleet_key_pem: Option<&str>,
    evidence_dir: Option<&Path>,
    findings: &mut Findings,
) {
    let name = &member.name;
    let Some(attestation) = &member.attestation else {
        if member.attested {
            findings.problems.push(format!(
                "member {name} is marked attested but the document carries no attestation data"
            ));
        } else {
            findings
                .unattested
                .push(format!("{name} ({})", no_attestation_reason(member)));
        }
        return;
    };

    let vendor = &attestation.vendor;
    for rule in &attestation.rules {
        if rule.result == RULE_FAIL {
            findings.problems.push(format!(
                "member {name}: the {vendor} attestation failed rule \"{}\": {}",
                rule.rule,
                rule.detail.as_deref().unwrap_or("no reason recorded")
            ));
        }
    }
    if member.attested != attestation.fully_attested() {
        findings.problems.push(format!(
            "member {name} is marked attested: {} but its recorded {vendor} attestation \
             rules say {}",
            member.attested,
            if attestation.fully_attested() {
                "fully attested"
            } else {
                "not fully attested"
            }
        ));
    }

    let published = match evidence_dir {
        Some(dir) => recheck_files(member, attestation, fleet_key_pem, dir, findings),
        None => false,
    };
    let source = if published {
        "re-verified from the published files"
    } else {
        "recorded result, files not published"
    };
    if attestation.fully_attested() {
        findings.attested.push(format!(
            "{name}: {vendor} device {}, every rule passed ({source})",
            attestation.device_serial
        ));
    } else {
        let open: Vec<&str> = attestation
            .rules
            .iter()
            .filter(|rule| rule.result != super::document::RULE_PASS)
            .map(|rule| rule.rule.as_str())
            .collect();
        findings.unattested.push(format!(
            "{name} ({vendor} attestation does not attest: {}; {source})",
            open.join(", ")
        ));
    }
}

/// Says why a member without attestation data has none.
fn no_attestation_reason(member: &MemberEntry) -> &'static str {
    let softhsm = |text: &str| text.to_ascii_lowercase().contains("softhsm");
    if softhsm(&member.model) || softhsm(&member.manufacturer) {
        "SoftHSM has no attestation"
    } else {
        "the runbook named no attestation files"
    }
}

/// Compares and re-verifies the files published for `member`. Returns whether every
/// recorded file was published; records a problem for each file that differs or fails.
fn recheck_files(
    member: &MemberEntry,
    attestation: &MemberAttestation,
    fleet_key_pem: Option<&str>,
    evidence_dir: &Path,
    findings: &mut Findings,
) -> bool {
    let name = &member.name;
    let folder = evidence_dir.join(ATTESTATION_DIR).join(name);
    let mut paths: Vec<PathBuf> = Vec::new();
    for file in &attestation.files {
        if !is_plain_file_name(&file.name) {
            findings.problems.push(format!(
                "member {name}: attestation file name {:?} is not a plain file name",
                file.name
            ));
            return false;
        }
        let path = folder.join(&file.name);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            // A folder without the files publishes none; only the recorded digests remain.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return false,
            Err(error) => {
                findings
                    .problems
                    .push(format!("cannot read {}: {error}", path.display()));
                return false;
            }
        };
        let digest = hex::encode(Sha256::digest(&bytes));
        if digest != file.sha256 {
            findings.problems.push(format!(
                "member {name}: {} has sha256 {digest} but the document records {}",
                path.display(),
                file.sha256
            ));
            return false;
        }
        paths.push(path);
    }

    let Some(fleet_key_pem) = fleet_key_pem else {
        findings
            .problems
            .push("the document lists no fleet key to compare attestations with".to_owned());
        return false;
    };
    let vendor: Vendor = match attestation.vendor.parse() {
        Ok(vendor) => vendor,
        Err(error) => {
            findings.problems.push(format!("member {name}: {error}"));
            return false;
        }
    };
    match attest::verify_files(vendor, &paths, fleet_key_pem, None, attestation.verified_at) {
        Ok(report) if report.fully_attested() == attestation.fully_attested() => {}
        Ok(_) => findings.problems.push(format!(
            "member {name}: re-verifying the published {vendor} attestation gives other \
             rule results than the document records"
        )),
        Err(AttestError::Rejected(report)) => findings.problems.push(format!(
            "member {name}: the published {vendor} attestation no longer verifies:\n{report}"
        )),
        Err(error) => findings.problems.push(format!("member {name}: {error}")),
    }
    true
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}
