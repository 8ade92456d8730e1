//! Bundle verification: a valid bundle passes, and every tampering fails at a named check.

mod common;

use common::{Parties, random_signing_key, sample_document, trust_yaml};
use fleet_ceremony::bundle::verify::{
    CHECK_AUDITOR_KEY_ID, CHECK_AUDITOR_SIGNATURE, CHECK_BUNDLE_FORMAT, CHECK_DOCUMENT_DIGEST,
    CHECK_DOCUMENT_FIELDS, CHECK_HARDWARE_ATTESTATION, CHECK_OPERATOR_COUNTERSIGNATURE,
    CHECK_OPERATOR_KEY_ID, CHECK_PINNED_KEYS,
};
use fleet_ceremony::bundle::{
    Bundle, Ciphersuite, OperatorSignature, Report, Trust, verify_bundle_bytes, verify_path,
};

fn valid_bundle(parties: &Parties) -> Vec<u8> {
    let document_bytes = sample_document().to_json_bytes();
    parties
        .bundle(&document_bytes, Ciphersuite::Protobuf)
        .to_json_bytes()
}

fn failed_check(report: &Report) -> &'static str {
    assert!(!report.passed(), "{report}");
    let failed = report.failed_check().unwrap();
    assert_eq!(
        report.checks.last().unwrap(),
        failed,
        "checks continued after failure"
    );
    failed.name
}

#[test]
fn valid_bundle_verifies() {
    let parties = Parties::random();
    for suite in [Ciphersuite::Protobuf, Ciphersuite::Bincode] {
        let bytes = parties
            .bundle(&sample_document().to_json_bytes(), suite)
            .to_json_bytes();
        // The sample document's member is SoftHSM, so the trust must allow it.
        let report = verify_bundle_bytes(&bytes, &parties.trust_allowing_unattested());
        assert!(report.passed(), "{report}");
        let names: Vec<&str> = report.checks.iter().map(|check| check.name).collect();
        assert_eq!(
            names,
            [
                CHECK_PINNED_KEYS,
                CHECK_BUNDLE_FORMAT,
                CHECK_DOCUMENT_DIGEST,
                CHECK_DOCUMENT_FIELDS,
                CHECK_AUDITOR_KEY_ID,
                CHECK_AUDITOR_SIGNATURE,
                CHECK_OPERATOR_KEY_ID,
                CHECK_OPERATOR_COUNTERSIGNATURE,
                CHECK_HARDWARE_ATTESTATION,
            ]
        );
    }
}

#[test]
fn report_display_lists_checks() {
    let parties = Parties::random();
    let trust = parties.trust_allowing_unattested();
    let report = verify_bundle_bytes(&valid_bundle(&parties), &trust);
    let text = report.to_string();
    assert!(
        text.starts_with("ok    pinned keys: auditor Example Audit Ltd (sha256 "),
        "{text}"
    );
    assert!(text.contains(&trust.auditor.fingerprint), "{text}");
    assert!(text.contains(&trust.operator.fingerprint), "{text}");
    assert!(text.contains("\nok    document digest: sha256 "), "{text}");
    assert_eq!(text.lines().count(), 9, "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn verify_path_accepts_directory_and_file() {
    let parties = Parties::random();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, valid_bundle(&parties)).unwrap();

    let trust = parties.trust_allowing_unattested();
    assert!(verify_path(dir.path(), &trust).passed());
    assert!(verify_path(&file, &trust).passed());
}

#[test]
fn verify_path_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let report = verify_path(dir.path(), &Parties::random().trust());
    assert_eq!(failed_check(&report), CHECK_BUNDLE_FORMAT);
    assert!(
        report
            .to_string()
            .contains("FAIL  bundle format: cannot read "),
        "{report}"
    );
}

#[test]
fn any_flipped_byte_fails() {
    let parties = Parties::random();
    let trust = parties.trust();
    let bytes = valid_bundle(&parties);

    let mut positions: Vec<usize> = (0..bytes.len()).step_by(7).collect();
    positions.push(bytes.len() - 1);
    for position in positions {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x01;
        let report = verify_bundle_bytes(&tampered, &trust);
        assert!(!report.passed(), "flip at {position} passed:\n{report}");
        let failed = report.failed_check().unwrap();
        assert!(!failed.detail.is_empty(), "flip at {position}:\n{report}");
    }
}

#[test]
fn changed_document_fails_digest() {
    let parties = Parties::random();
    let mut bundle = parties.bundle(&sample_document().to_json_bytes(), Ciphersuite::Protobuf);
    let mut document = sample_document();
    document.epoch = 4;
    bundle.document =
        Bundle::assemble(&document.to_json_bytes(), &bundle.auditor, &bundle.operator).document;

    let report = verify_bundle_bytes(&bundle.to_json_bytes(), &parties.trust());
    assert_eq!(failed_check(&report), CHECK_DOCUMENT_DIGEST);
}

#[test]
fn document_with_wrong_fingerprint_fails_fields() {
    let parties = Parties::random();
    let mut document = sample_document();
    document.keys[0].fingerprint = "ab".repeat(32);
    let bundle = parties.bundle_unchecked(&document.to_json_bytes());

    let report = verify_bundle_bytes(&bundle.to_json_bytes(), &parties.trust());
    assert_eq!(failed_check(&report), CHECK_DOCUMENT_FIELDS);
    assert!(report.to_string().contains("fingerprint"), "{report}");
}

#[test]
fn wrong_auditor_key_fails_auditor_key_id() {
    let parties = Parties::random();
    let other = random_signing_key();
    let text = trust_yaml(&other.verifying_key(), &parties.operator.verifying_key());
    let trust = Trust::parse(&text, "trust.yaml").unwrap();

    let report = verify_bundle_bytes(&valid_bundle(&parties), &trust);
    assert_eq!(failed_check(&report), CHECK_AUDITOR_KEY_ID);
}

#[test]
fn wrong_operator_key_fails_operator_key_id() {
    let parties = Parties::random();
    let other = random_signing_key();
    let text = trust_yaml(&parties.auditor.verifying_key(), &other.verifying_key());
    let trust = Trust::parse(&text, "trust.yaml").unwrap();

    let report = verify_bundle_bytes(&valid_bundle(&parties), &trust);
    assert_eq!(failed_check(&report), CHECK_OPERATOR_KEY_ID);
}

#[test]
fn swapped_trust_keys_fail() {
    let parties = Parties::random();
    let text = trust_yaml(
        &parties.operator.verifying_key(),
        &parties.auditor.verifying_key(),
    );
    let trust = Trust::parse(&text, "trust.yaml").unwrap();

    let report = verify_bundle_bytes(&valid_bundle(&parties), &trust);
    assert_eq!(failed_check(&report), CHECK_AUDITOR_KEY_ID);
}

#[test]
fn swapped_signers_fail() {
    let parties = Parties::random();
    let swapped = Parties {
        auditor: parties.operator.clone(),
        operator: parties.auditor.clone(),
    };
    let bytes = valid_bundle(&swapped);

    let report = verify_bundle_bytes(&bytes, &parties.trust());
    assert_eq!(failed_check(&report), CHECK_AUDITOR_KEY_ID);
}

#[test]
fn forged_key_id_fails_signature() {
    let parties = Parties::random();
    let trust = parties.trust();
    let forger = Parties {
        auditor: random_signing_key(),
        operator: parties.operator.clone(),
    };
    let mut bundle = forger.bundle(&sample_document().to_json_bytes(), Ciphersuite::Protobuf);
    bundle.auditor.key_id = trust.auditor.fingerprint.clone();
    bundle.operator = OperatorSignature::countersign(&bundle.auditor, &parties.operator).unwrap();

    let report = verify_bundle_bytes(&bundle.to_json_bytes(), &trust);
    assert_eq!(failed_check(&report), CHECK_AUDITOR_SIGNATURE);
}

#[test]
fn forged_countersignature_fails() {
    let parties = Parties::random();
    let trust = parties.trust();
    let mut bundle = parties.bundle(&sample_document().to_json_bytes(), Ciphersuite::Bincode);
    let forged = OperatorSignature::countersign(&bundle.auditor, &random_signing_key()).unwrap();
    bundle.operator.signature = forged.signature;

    let report = verify_bundle_bytes(&bundle.to_json_bytes(), &trust);
    assert_eq!(failed_check(&report), CHECK_OPERATOR_COUNTERSIGNATURE);
    assert!(
        report
            .to_string()
            .contains("FAIL  operator counter-signature: "),
        "{report}"
    );
}

#[test]
fn document_breaking_format_rules_fails_fields() {
    type Edit = fn(&mut fleet_ceremony::bundle::FleetKeyDocument);
    let cases: [(&str, Edit); 12] = [
        ("fleet_id", |d| d.fleet_id = "Fleet-EU".into()),
        ("fleet_id", |d| d.fleet_id = "a".repeat(65)),
        ("namespace", |d| {
            d.namespace = "fleet\u{1b}[2K.example".into()
        }),
        ("keys[0].label", |d| {
            d.keys[0].label = "key\nread aloud: x".into()
        }),
        ("keys[0].role", |d| d.keys[0].role = "backup".into()),
        ("members[0].site", |d| {
            d.members[0].site = "Zurich \u{202e}HC".into()
        }),
        ("members", |d| d.members.clear()),
        ("members", |d| d.members[0].origin = false),
        ("members[0].key_attributes", |d| {
            d.members[0]
                .key_attributes
                .insert("CKA_EXTRACTABLE".into(), serde_json::json!(true));
        }),
        ("custodians.threshold", |d| d.custodians.threshold = 4),
        ("custodians.names", |d| {
            d.custodians.names[1] = "alice".into()
        }),
        ("runbook_sha256", |d| d.runbook_sha256 = "AB".repeat(32)),
    ];
    let parties = Parties::random();
    for (field, edit) in cases {
        let mut document = sample_document();
        edit(&mut document);
        let error = document.check_fields().unwrap_err();
        assert!(error.to_string().contains(field), "{field}: {error}");

        let bundle = parties.bundle_unchecked(&document.to_json_bytes());
        let report = verify_bundle_bytes(&bundle.to_json_bytes(), &parties.trust());
        assert_eq!(failed_check(&report), CHECK_DOCUMENT_FIELDS, "{field}");
    }
    sample_document().check_fields().unwrap();
}
