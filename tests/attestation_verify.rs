//! The `hardware attestation` check of `verify`: unattested members need an explicit
//! allowance, claims need data, and published attestation files are verified again. The
//! attested member uses the real Google Cloud HSM (Marvell) vector.

mod common;

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use common::{Parties, key_entry, sample_document};
use der::Encode;
use fleet_ceremony::attest::{self, Vendor, marvell};
use fleet_ceremony::bundle::attestation::ATTESTATION_DIR;
use fleet_ceremony::bundle::verify::{CHECK_HARDWARE_ATTESTATION, CHECK_OPERATOR_COUNTERSIGNATURE};
use fleet_ceremony::bundle::{
    AttestationFile, Ciphersuite, FleetKeyDocument, MemberAttestation, Report, Trust,
    verify_bundle_bytes, verify_path,
};
use sha2::{Digest, Sha256};

const MARVELL_FILES: [&str; 2] = ["ec-key-attestation.dat.gz", "cert-chain.pem"];

fn marvell_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/attestation/gcp-cloudhsm-marvell")
        .join(name)
}

/// Inside the validity of every certificate, including the Marvell root that expired on
/// 2025-11-16.
fn before_marvell_expiry() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

/// Returns the key the Marvell vector attests, as SPKI PEM.
fn marvell_key_pem() -> String {
    let blob = std::fs::read(marvell_path(MARVELL_FILES[0])).unwrap();
    let parsed = marvell::parse(&blob).unwrap();
    let spki = marvell::public_key_spki(&parsed.public_key).unwrap();
    der::pem::encode_string(
        "PUBLIC KEY",
        der::pem::LineEnding::LF,
        &spki.to_der().unwrap(),
    )
    .unwrap()
}

/// Returns a document whose one member has the Marvell-attested key, with its attestation
/// verified at `at` and recorded as the run records it.
fn attested_document(at: DateTime<Utc>) -> FleetKeyDocument {
    let key_pem = marvell_key_pem();
    let paths: Vec<PathBuf> = MARVELL_FILES
        .iter()
        .map(|name| marvell_path(name))
        .collect();
    let report = attest::verify_files(Vendor::Marvell, &paths, &key_pem, None, at).unwrap();
    let files = paths
        .iter()
        .map(|path| AttestationFile {
            name: path.file_name().unwrap().to_str().unwrap().to_owned(),
            sha256: hex::encode(Sha256::digest(std::fs::read(path).unwrap())),
        })
        .collect();

    let mut document = sample_document();
    document.keys = vec![key_entry("fleet-signing", "ecdsa-p256", key_pem)];
    let member = &mut document.members[0];
    member.model = "Cloud HSM".to_owned();
    member.manufacturer = "Marvell".to_owned();
    member.attestation = Some(MemberAttestation::from_report(&report, files));
    member.attested = true;
    document
}

/// Writes the bundle of `document` into a new evidence folder, with the Marvell files
/// published under `attestation/<member>/` when `publish` is set.
fn evidence_folder(
    parties: &Parties,
    document: &FleetKeyDocument,
    publish: bool,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bytes = parties
        .bundle(&document.to_json_bytes(), Ciphersuite::Protobuf)
        .to_json_bytes();
    std::fs::write(dir.path().join("bundle.json"), bytes).unwrap();
    if publish {
        let folder = dir
            .path()
            .join(ATTESTATION_DIR)
            .join(&document.members[0].name);
        std::fs::create_dir_all(&folder).unwrap();
        for name in MARVELL_FILES {
            std::fs::copy(marvell_path(name), folder.join(name)).unwrap();
        }
    }
    dir
}

fn bundle_bytes(parties: &Parties, document: &FleetKeyDocument) -> Vec<u8> {
    parties
        .bundle(&document.to_json_bytes(), Ciphersuite::Protobuf)
        .to_json_bytes()
}

/// Asserts that every check before the attestation check passed, the counter-signature
/// among them, and the attestation check failed; returns its detail.
fn attestation_failure(report: &Report) -> String {
    assert!(!report.passed(), "{report}");
    let failed = report.failed_check().unwrap();
    assert_eq!(failed.name, CHECK_HARDWARE_ATTESTATION, "{report}");
    let before = &report.checks[..report.checks.len() - 1];
    assert!(before.iter().all(|check| check.passed), "{report}");
    assert!(
        before
            .iter()
            .any(|check| check.name == CHECK_OPERATOR_COUNTERSIGNATURE),
        "{report}"
    );
    failed.detail.clone()
}

fn attestation_detail(report: &Report) -> String {
    assert!(report.passed(), "{report}");
    let last = report.checks.last().unwrap();
    assert_eq!(last.name, CHECK_HARDWARE_ATTESTATION);
    last.detail.clone()
}

#[test]
fn softhsm_member_rejected_without_allowance() {
    let parties = Parties::random();
    let report = verify_bundle_bytes(
        &bundle_bytes(&parties, &sample_document()),
        &parties.trust(),
    );
    let detail = attestation_failure(&report);
    assert!(
        detail.starts_with("members not hardware-attested: hsm-a (SoftHSM has no attestation)"),
        "{detail}"
    );
    assert!(
        detail.contains("\nhint: pass --allow-unattested"),
        "{detail}"
    );
    assert!(
        report
            .to_string()
            .ends_with("bundle rejected: the hardware attestation check failed\n"),
        "{report}"
    );
}

#[test]
fn softhsm_member_allowed_by_trust_file() {
    let parties = Parties::random();
    let trust = parties.trust_allowing_unattested();
    let report = verify_bundle_bytes(&bundle_bytes(&parties, &sample_document()), &trust);
    let detail = attestation_detail(&report);
    assert!(
        detail.contains("allowed by the trust file or --allow-unattested"),
        "{detail}"
    );
    assert!(
        detail.contains("hsm-a (SoftHSM has no attestation)"),
        "{detail}"
    );
}

#[test]
fn trust_file_allowance_must_be_boolean() {
    let parties = Parties::random();
    let text = common::trust_yaml(
        &parties.auditor.verifying_key(),
        &parties.operator.verifying_key(),
    );
    let trust = Trust::parse(&text, "trust.yaml").unwrap();
    assert!(!trust.allow_unattested, "absent means not allowed");
    let error =
        Trust::parse(&format!("{text}allow_unattested: maybe\n"), "trust.yaml").unwrap_err();
    assert!(error.to_string().contains("trust.yaml:"), "{error}");
}

#[test]
fn attested_claim_without_data_rejected() {
    let parties = Parties::random();
    let mut document = sample_document();
    document.members[0].attested = true;
    // The allowance covers unattested members, never a claim without evidence.
    let trust = parties.trust_allowing_unattested();
    let report = verify_bundle_bytes(&bundle_bytes(&parties, &document), &trust);
    let detail = attestation_failure(&report);
    assert_eq!(
        detail,
        "member hsm-a is marked attested but the document carries no attestation data"
    );
}

#[test]
fn marvell_member_reverified_from_published_files() {
    let parties = Parties::random();
    let document = attested_document(before_marvell_expiry());
    let dir = evidence_folder(&parties, &document, true);
    let report = verify_path(dir.path(), &parties.trust());
    let detail = attestation_detail(&report);
    assert!(detail.starts_with("hsm-a: marvell device "), "{detail}");
    assert!(
        detail.ends_with("every rule passed (re-verified from the published files)"),
        "{detail}"
    );
}

#[test]
fn marvell_member_without_files_uses_record() {
    let parties = Parties::random();
    let document = attested_document(before_marvell_expiry());
    let report = verify_bundle_bytes(&bundle_bytes(&parties, &document), &parties.trust());
    let detail = attestation_detail(&report);
    assert!(
        detail.ends_with("(recorded result, files not published)"),
        "{detail}"
    );
}

#[test]
fn changed_published_file_rejected() {
    let parties = Parties::random();
    let document = attested_document(before_marvell_expiry());
    let dir = evidence_folder(&parties, &document, true);
    let chain = dir
        .path()
        .join(ATTESTATION_DIR)
        .join("hsm-a")
        .join(MARVELL_FILES[1]);
    let mut text = std::fs::read(&chain).unwrap();
    text.extend_from_slice(b"\n");
    std::fs::write(&chain, text).unwrap();

    let report = verify_path(dir.path(), &parties.trust_allowing_unattested());
    let detail = attestation_failure(&report);
    assert!(detail.starts_with("member hsm-a: "), "{detail}");
    assert!(detail.contains("cert-chain.pem has sha256 "), "{detail}");
    assert!(detail.contains(" but the document records "), "{detail}");
}

#[test]
fn recorded_time_after_root_expiry_fails_reverification() {
    // The document claims the attestation verified on 2026-01-01, after the Marvell root
    // expired; verifying the published files at that time must fail the chain.
    let parties = Parties::random();
    let mut document = attested_document(before_marvell_expiry());
    let attestation = document.members[0].attestation.as_mut().unwrap();
    attestation.verified_at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let dir = evidence_folder(&parties, &document, true);

    let report = verify_path(dir.path(), &parties.trust_allowing_unattested());
    let detail = attestation_failure(&report);
    assert!(
        detail.starts_with("member hsm-a: the published marvell attestation no longer verifies:"),
        "{detail}"
    );
    assert!(detail.contains("\nFAIL chain: "), "{detail}");
    assert!(
        detail.contains("is not valid at 2026-01-01T00:00:00Z"),
        "{detail}"
    );
}

#[test]
fn recorded_failed_rule_rejected_even_when_allowed() {
    let parties = Parties::random();
    // The attestation is of the Marvell key, but the document's fleet key is another one:
    // the run records the failed key rule and marks the member not attested.
    let key_pem = common::random_p256_pem();
    let paths: Vec<PathBuf> = MARVELL_FILES
        .iter()
        .map(|name| marvell_path(name))
        .collect();
    let error = attest::verify_files(
        Vendor::Marvell,
        &paths,
        &key_pem,
        None,
        before_marvell_expiry(),
    )
    .unwrap_err();
    let attest::AttestError::Rejected(report) = error else {
        panic!("expected a rejection, got {error}");
    };
    let mut document = sample_document();
    document.keys = vec![key_entry("fleet-signing", "ecdsa-p256", key_pem)];
    document.members[0].attestation = Some(MemberAttestation::from_report(&report, Vec::new()));

    let report = verify_bundle_bytes(
        &bundle_bytes(&parties, &document),
        &parties.trust_allowing_unattested(),
    );
    let detail = attestation_failure(&report);
    assert!(
        detail.starts_with("member hsm-a: the marvell attestation failed rule \"key matches\": "),
        "{detail}"
    );
}

#[test]
fn attested_flag_must_match_rules() {
    let parties = Parties::random();
    let mut document = attested_document(before_marvell_expiry());
    document.members[0].attested = false;
    let report = verify_bundle_bytes(
        &bundle_bytes(&parties, &document),
        &parties.trust_allowing_unattested(),
    );
    let detail = attestation_failure(&report);
    assert!(
        detail.starts_with("member hsm-a is marked attested: false but its recorded marvell"),
        "{detail}"
    );
}
