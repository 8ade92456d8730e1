//! Tampering with a logged bundle, one byte at a time: every change to bundle.json, to the
//! checkpoint text inside it and to each inclusion proof hash must fail, at the check that
//! covers the changed field.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{Parties, sample_document, trust_yaml};
use fleet_ceremony::bundle::log_append::append_statement;
use fleet_ceremony::bundle::verify::{
    CHECK_AUDITOR_KEY_ID, CHECK_AUDITOR_SIGNATURE, CHECK_BUNDLE_FORMAT, CHECK_DOCUMENT_DIGEST,
    CHECK_DOCUMENT_FIELDS, CHECK_OPERATOR_COUNTERSIGNATURE, CHECK_OPERATOR_KEY_ID,
};
use fleet_ceremony::bundle::verify_log::{
    CHECK_CHECKPOINT_SIGNATURE, CHECK_INCLUSION_PROOF, CHECK_WITNESS_COSIGNATURES,
};
use fleet_ceremony::bundle::{
    Bundle, Ciphersuite, Report, Trust, VerifyOptions, verify_bundle_bytes_with,
};
use fleet_ceremony::log::note::{TYPE_COSIGNATURE, TYPE_ED25519};
use fleet_ceremony::log::{Checkpoint, Log, Note, SignerKey, cosign};

const ORIGIN: &str = "audit.example/fleet-log";

fn log_signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[9u8; 32]).unwrap()
}

fn witness() -> SignerKey {
    SignerKey::from_seed("witness.example/w1", TYPE_COSIGNATURE, &[4u8; 32]).unwrap()
}

/// The trust file of `parties`, pinning the log and requiring the one witness.
fn trust(parties: &Parties) -> Trust {
    let mut text = trust_yaml(
        &parties.auditor.verifying_key(),
        &parties.operator.verifying_key(),
    );
    text.push_str(&format!(
        "log:\n  origin: {ORIGIN}\n  verifier_key: {}\n  witnesses:\n    quorum: 1\n    keys:\n      - {}\n",
        log_signer().verifier(),
        witness().verifier()
    ));
    let mut trust = Trust::parse(&text, "trust.yaml").unwrap();
    trust.allow_unattested = true;
    trust
}

/// Logs five epochs and returns the bundle of the second, whose proof has three hashes,
/// with a witness cosignature on its checkpoint.
fn logged_bundle(parties: &Parties, dir: &Path) -> Bundle {
    let mut log = Log::init(dir, ORIGIN, log_signer()).unwrap();
    let mut bundles: Vec<Bundle> = (1..=5)
        .map(|epoch| {
            let mut document = sample_document();
            document.epoch = epoch;
            let mut bundle = parties.bundle(&document.to_json_bytes(), Ciphersuite::Protobuf);
            let proof =
                append_statement(&mut log, &bundle.auditor, &parties.auditor.verifying_key())
                    .unwrap();
            bundle.attach_log_proof(&proof);
            bundle
        })
        .collect();
    let mut bundle = bundles.remove(1);
    let checkpoint = log.checkpoint().unwrap();
    let proof = log.prove_inclusion(1, 5).unwrap();
    bundle.checkpoint = Some(String::from_utf8(checkpoint).unwrap());
    bundle.inclusion_proof = Some(fleet_ceremony::bundle::InclusionProof::new(1, 5, &proof));

    let mut note = Note::parse(bundle.checkpoint.as_ref().unwrap().as_bytes()).unwrap();
    note.add_signature(cosign(&witness(), note.text(), 1_750_000_000).unwrap());
    bundle.checkpoint = Some(String::from_utf8(note.to_bytes()).unwrap());
    bundle
}

fn verify(bytes: &[u8], trust: &Trust) -> Report {
    verify_bundle_bytes_with(bytes, trust, &VerifyOptions::default())
}

/// The two changes made to each byte: a flipped low bit, and a different printable
/// character (the other letter case, or the next character for anything else).
fn mutations(byte: u8) -> [u8; 2] {
    let printable = if byte.is_ascii_alphabetic() {
        byte ^ 0x20
    } else if byte.is_ascii_graphic() && byte != b'~' {
        byte + 1
    } else {
        b'x'
    };
    [byte ^ 0x01, printable]
}

/// The span of the JSON string or number value after the first `"key": ` at or after
/// `from`, without quotes.
fn value_span(json: &str, key: &str, from: usize) -> std::ops::Range<usize> {
    let marker = format!("\"{key}\": ");
    let start = from + json[from..].find(&marker).unwrap() + marker.len();
    if json.as_bytes()[start] == b'"' {
        let end = start + 1 + json[start + 1..].find('"').unwrap();
        start + 1..end
    } else {
        let end = start + json[start..].find([',', '\n']).unwrap();
        start..end
    }
}

/// Maps each byte of `json` to the checks allowed to fail when that byte changes.
fn expected_checks(json: &str) -> Vec<&'static [&'static str]> {
    const FORMAT: &[&str] = &[CHECK_BUNDLE_FORMAT];
    let mut expected: Vec<&'static [&'static str]> = vec![FORMAT; json.len()];
    let auditor = json.find("\"auditor\": {").unwrap();
    let operator = json.find("\"operator\": {").unwrap();
    let proof = json.find("\"inclusion_proof\": {").unwrap();
    let fields: [(&str, usize, &'static [&'static str]); 13] = [
        ("format", 0, FORMAT),
        ("document", 0, &[CHECK_BUNDLE_FORMAT, CHECK_DOCUMENT_DIGEST]),
        (
            "ciphersuite",
            auditor,
            &[CHECK_BUNDLE_FORMAT, CHECK_AUDITOR_SIGNATURE],
        ),
        ("namespace", auditor, &[CHECK_DOCUMENT_FIELDS]),
        (
            "timestamp_ms",
            auditor,
            &[CHECK_BUNDLE_FORMAT, CHECK_AUDITOR_SIGNATURE],
        ),
        (
            "epoch",
            auditor,
            &[CHECK_BUNDLE_FORMAT, CHECK_DOCUMENT_FIELDS],
        ),
        (
            "digest",
            auditor,
            &[CHECK_BUNDLE_FORMAT, CHECK_DOCUMENT_DIGEST],
        ),
        (
            "signature",
            auditor,
            &[CHECK_BUNDLE_FORMAT, CHECK_AUDITOR_SIGNATURE],
        ),
        ("key_id", auditor, &[CHECK_AUDITOR_KEY_ID]),
        (
            "signature",
            operator,
            &[CHECK_BUNDLE_FORMAT, CHECK_OPERATOR_COUNTERSIGNATURE],
        ),
        ("key_id", operator, &[CHECK_OPERATOR_KEY_ID]),
        (
            "index",
            proof,
            &[CHECK_BUNDLE_FORMAT, CHECK_INCLUSION_PROOF],
        ),
        (
            "tree_size",
            proof,
            &[CHECK_BUNDLE_FORMAT, CHECK_INCLUSION_PROOF],
        ),
    ];
    for (key, from, checks) in fields {
        for slot in &mut expected[value_span(json, key, from)] {
            *slot = checks;
        }
    }

    // The checkpoint string: the log's signature line and the body are covered by the
    // checkpoint signature; the cosignature line by the witness check, unless the change
    // breaks the note format. JSON escapes (`\n`) may also break the bundle format.
    let checkpoint = value_span(json, "checkpoint", 0);
    // serde_json writes the em dash as UTF-8, not as an escape.
    let cosignature = checkpoint.start + json[checkpoint.clone()].rfind("\u{2014} ").unwrap();
    for slot in &mut expected[checkpoint.start..cosignature] {
        *slot = &[CHECK_BUNDLE_FORMAT, CHECK_CHECKPOINT_SIGNATURE];
    }
    for slot in &mut expected[cosignature..checkpoint.end] {
        *slot = &[
            CHECK_BUNDLE_FORMAT,
            CHECK_CHECKPOINT_SIGNATURE,
            CHECK_WITNESS_COSIGNATURES,
        ];
    }

    // Each audit path hash.
    let hashes_start = proof + json[proof..].find("\"hashes\": [").unwrap();
    let hashes_end = hashes_start + json[hashes_start..].find(']').unwrap();
    let mut at = hashes_start + "\"hashes\": [".len();
    while let Some(open) = json[at..hashes_end].find('"') {
        let start = at + open + 1;
        let end = start + json[start..].find('"').unwrap();
        for slot in &mut expected[start..end] {
            *slot = &[CHECK_INCLUSION_PROOF];
        }
        at = end + 1;
    }
    expected
}

#[test]
fn every_bundle_byte_change_fails_right_check() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let trust = trust(&parties);
    let bundle = logged_bundle(&parties, &temp.path().join("log"));
    let bytes = bundle.to_json_bytes();
    assert!(
        verify(&bytes, &trust).passed(),
        "{}",
        verify(&bytes, &trust)
    );
    let json = std::str::from_utf8(&bytes).unwrap();
    let expected = expected_checks(json);

    let started = Instant::now();
    let mut cases = 0;
    for (position, &byte) in bytes.iter().enumerate() {
        for replacement in mutations(byte) {
            let mut tampered = bytes.clone();
            tampered[position] = replacement;
            let report = verify(&tampered, &trust);
            let context = || {
                let from = position.saturating_sub(20);
                let to = (position + 20).min(json.len());
                format!(
                    "byte {position} {:?} -> {:?} near {:?}:\n{report}",
                    byte as char,
                    replacement as char,
                    String::from_utf8_lossy(&bytes[from..to])
                )
            };
            assert!(!report.passed(), "{}", context());
            let failed = report.failed_check().unwrap().name;
            assert!(
                expected[position].contains(&failed),
                "expected one of {:?}, got {failed}; {}",
                expected[position],
                context()
            );
            cases += 1;
        }
    }
    eprintln!(
        "{cases} bundle byte changes rejected in {:?}",
        started.elapsed()
    );
}

#[test]
fn every_checkpoint_byte_change_fails() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let trust = trust(&parties);
    let bundle = logged_bundle(&parties, &temp.path().join("log"));
    let text = bundle.checkpoint.clone().unwrap();
    let cosignature = text.rfind('\u{2014}').unwrap();

    for (position, &byte) in text.as_bytes().iter().enumerate() {
        for replacement in mutations(byte) {
            let mut changed = text.clone().into_bytes();
            changed[position] = replacement;
            let Ok(changed_text) = String::from_utf8(changed.clone()) else {
                // A bundle cannot carry invalid UTF-8; the note parser must reject it.
                let log_key = log_signer();
                assert!(
                    Checkpoint::open(&changed, ORIGIN, log_key.verifier()).is_err(),
                    "byte {position}"
                );
                continue;
            };
            let mut tampered = bundle.clone();
            tampered.checkpoint = Some(changed_text.clone());
            let report = verify(&tampered.to_json_bytes(), &trust);
            assert!(!report.passed(), "byte {position}: {changed_text:?}");
            let failed = report.failed_check().unwrap().name;
            let allowed: &[&str] = if position < cosignature {
                &[CHECK_CHECKPOINT_SIGNATURE]
            } else {
                &[CHECK_CHECKPOINT_SIGNATURE, CHECK_WITNESS_COSIGNATURES]
            };
            assert!(
                allowed.contains(&failed),
                "byte {position}: got {failed} for {changed_text:?}\n{report}"
            );
        }
    }
}

#[test]
fn every_proof_hash_byte_change_fails() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let trust = trust(&parties);
    let bundle = logged_bundle(&parties, &temp.path().join("log"));
    let hashes = bundle.inclusion_proof.as_ref().unwrap().hashes.clone();
    assert_eq!(hashes.len(), 3);

    for (number, hash) in hashes.iter().enumerate() {
        for (position, &byte) in hash.as_bytes().iter().enumerate() {
            for replacement in mutations(byte) {
                let mut changed = hash.clone().into_bytes();
                changed[position] = replacement;
                let mut tampered = bundle.clone();
                tampered.inclusion_proof.as_mut().unwrap().hashes[number] =
                    String::from_utf8(changed).unwrap();
                let report = verify(&tampered.to_json_bytes(), &trust);
                assert!(!report.passed(), "hash {number} byte {position}");
                assert_eq!(
                    report.failed_check().unwrap().name,
                    CHECK_INCLUSION_PROOF,
                    "hash {number} byte {position}\n{report}"
                );
            }
        }
    }
}
