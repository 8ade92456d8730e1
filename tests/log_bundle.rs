//! Bundles logged in the auditor's log: the log checks of `verify`, witness quorums,
//! forks and rollbacks caught with an earlier checkpoint, and the append rules.

mod common;

use std::path::{Path, PathBuf};

use common::{Parties, sample_document, trust_yaml};
use fleet_ceremony::bundle::log_append::{AppendError, append_statement};
use fleet_ceremony::bundle::verify::CHECK_HARDWARE_ATTESTATION;
use fleet_ceremony::bundle::verify_log::{
    CHECK_CHECKPOINT_SIGNATURE, CHECK_INCLUSION_PROOF, CHECK_LOG_CONSISTENCY,
    CHECK_WITNESS_COSIGNATURES,
};
use fleet_ceremony::bundle::{
    Bundle, Ciphersuite, EntryError, Report, Trust, VerifyOptions, verify_bundle_bytes_with,
};
use fleet_ceremony::log::note::{TYPE_COSIGNATURE, TYPE_ED25519};
use fleet_ceremony::log::{Log, Note, SignerKey, cosign};

const ORIGIN: &str = "audit.example/fleet-log";

fn log_signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[9u8; 32]).unwrap()
}

fn witness(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, TYPE_COSIGNATURE, &[seed; 32]).unwrap()
}

fn document_bytes(epoch: u64) -> Vec<u8> {
    let mut document = sample_document();
    document.epoch = epoch;
    document.to_json_bytes()
}

/// The trust file of `parties` with the log pinned and the given witnesses and quorum.
fn trust(parties: &Parties, witnesses: &[&SignerKey], quorum: usize) -> Trust {
    let mut text = trust_yaml(
        &parties.auditor.verifying_key(),
        &parties.operator.verifying_key(),
    );
    text.push_str(&format!(
        "log:\n  origin: {ORIGIN}\n  verifier_key: {}\n",
        log_signer().verifier()
    ));
    if !witnesses.is_empty() {
        text.push_str(&format!("  witnesses:\n    quorum: {quorum}\n    keys:\n"));
        for witness in witnesses {
            text.push_str(&format!("      - {}\n", witness.verifier()));
        }
    }
    let mut trust = Trust::parse(&text, "trust.yaml").unwrap();
    // The test documents come from no HSM; these tests are about the log checks.
    trust.allow_unattested = true;
    trust
}

/// Signs epochs `1..=count` into a new log in `dir` and returns the logged bundles.
fn logged_bundles(parties: &Parties, dir: &Path, count: u64) -> Vec<Bundle> {
    let mut log = Log::init(dir, ORIGIN, log_signer()).unwrap();
    (1..=count)
        .map(|epoch| {
            let mut bundle = parties.bundle(&document_bytes(epoch), Ciphersuite::Protobuf);
            let proof =
                append_statement(&mut log, &bundle.auditor, &parties.auditor.verifying_key())
                    .unwrap();
            bundle.attach_log_proof(&proof);
            bundle
        })
        .collect()
}

fn verify(bundle: &Bundle, trust: &Trust, options: &VerifyOptions) -> Report {
    verify_bundle_bytes_with(&bundle.to_json_bytes(), trust, options)
}

fn failed(report: &Report) -> &'static str {
    report.failed_check().expect("a check failed").name
}

fn check_names(report: &Report) -> Vec<&'static str> {
    report.checks.iter().map(|check| check.name).collect()
}

#[test]
fn logged_bundle_passes_log_checks() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let bundles = logged_bundles(&parties, &temp.path().join("log"), 3);
    for bundle in &bundles {
        let report = verify(bundle, &trust(&parties, &[], 0), &VerifyOptions::default());
        assert!(report.passed(), "{report}");
        let names = check_names(&report);
        assert_eq!(
            &names[names.len() - 4..],
            [
                CHECK_CHECKPOINT_SIGNATURE,
                CHECK_INCLUSION_PROOF,
                CHECK_WITNESS_COSIGNATURES,
                CHECK_HARDWARE_ATTESTATION
            ]
        );
    }
}

#[test]
fn bundle_without_checkpoint_fails() {
    let parties = Parties::random();
    let bundle = parties.bundle(&document_bytes(1), Ciphersuite::Protobuf);
    let report = verify(&bundle, &trust(&parties, &[], 0), &VerifyOptions::default());
    assert_eq!(failed(&report), CHECK_CHECKPOINT_SIGNATURE);

    // Without a pinned log the same bundle verifies and no log check runs.
    let mut unlogged = parties.trust();
    unlogged.allow_unattested = true;
    let report = verify(&bundle, &unlogged, &VerifyOptions::default());
    assert!(report.passed(), "{report}");
    assert!(!check_names(&report).contains(&CHECK_CHECKPOINT_SIGNATURE));
}

#[test]
fn tampered_checkpoint_fails_signature_check() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let bundle = logged_bundles(&parties, &temp.path().join("log"), 2).remove(1);
    let text = bundle.checkpoint.clone().unwrap();
    assert!(text.contains("\n2\n"));
    let cases = [
        text.replacen("\n2\n", "\n3\n", 1),
        text.replacen(ORIGIN, "audit.example/other-log", 1),
        text.replacen("\n\n", "\n", 1),
        text.trim_end().to_owned(),
    ];
    for case in cases {
        let mut tampered = bundle.clone();
        tampered.checkpoint = Some(case.clone());
        let report = verify(
            &tampered,
            &trust(&parties, &[], 0),
            &VerifyOptions::default(),
        );
        assert!(!report.passed(), "{case:?}");
        assert_eq!(failed(&report), CHECK_CHECKPOINT_SIGNATURE, "{case:?}");
    }
}

/// A change made to a copy of a bundle.
type BundleEdit = dyn Fn(&mut Bundle);

#[test]
fn tampered_proof_fails_inclusion_check() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let bundle = logged_bundles(&parties, &temp.path().join("log"), 5).remove(1);
    let proof = bundle.inclusion_proof.clone().unwrap();
    assert!(!proof.hashes.is_empty());

    let mut edits: Vec<Box<BundleEdit>> = Vec::new();
    edits.push(Box::new(|b| {
        let hash = &mut b.inclusion_proof.as_mut().unwrap().hashes[0];
        let replacement = if hash.starts_with('A') { "B" } else { "A" };
        hash.replace_range(0..1, replacement);
    }));
    edits.push(Box::new(|b| b.inclusion_proof.as_mut().unwrap().index = 2));
    edits.push(Box::new(|b| {
        b.inclusion_proof.as_mut().unwrap().tree_size = 4;
    }));
    edits.push(Box::new(|b| {
        b.inclusion_proof.as_mut().unwrap().hashes.pop();
    }));
    edits.push(Box::new(|b| b.inclusion_proof = None));
    for (number, edit) in edits.iter().enumerate() {
        let mut tampered = bundle.clone();
        edit(&mut tampered);
        let report = verify(
            &tampered,
            &trust(&parties, &[], 0),
            &VerifyOptions::default(),
        );
        assert_eq!(failed(&report), CHECK_INCLUSION_PROOF, "edit {number}");
    }
}

#[test]
fn witness_quorum_and_tampered_cosignature() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let mut bundle = logged_bundles(&parties, &temp.path().join("log"), 1).remove(0);
    let (one, two) = (witness("w1.example", 1), witness("w2.example", 2));

    let mut note = Note::parse(bundle.checkpoint.as_ref().unwrap().as_bytes()).unwrap();
    note.add_signature(cosign(&one, note.text(), 1_750_000_000).unwrap());
    bundle.checkpoint = Some(String::from_utf8(note.to_bytes()).unwrap());

    let quorum_one = trust(&parties, &[&one, &two], 1);
    let report = verify(&bundle, &quorum_one, &VerifyOptions::default());
    assert!(report.passed(), "{report}");

    let quorum_two = trust(&parties, &[&one, &two], 2);
    let report = verify(&bundle, &quorum_two, &VerifyOptions::default());
    assert_eq!(failed(&report), CHECK_WITNESS_COSIGNATURES);

    // Flip one character of the base64 cosignature on the last line.
    let text = bundle.checkpoint.clone().unwrap();
    let position = text.trim_end().len() - 5;
    let mut tampered = bundle.clone();
    let flipped = if &text[position..=position] == "A" {
        "B"
    } else {
        "A"
    };
    let mut changed = text.clone();
    changed.replace_range(position..=position, flipped);
    tampered.checkpoint = Some(changed);
    let report = verify(&tampered, &quorum_one, &VerifyOptions::default());
    assert_eq!(failed(&report), CHECK_WITNESS_COSIGNATURES, "{report}");
}

/// Builds a second log under the same key whose entry 1 differs from the first log's.
fn forked_log(parties: &Parties, dir: &Path, size: u64) -> Vec<Bundle> {
    let mut log = Log::init(dir, ORIGIN, log_signer()).unwrap();
    (1..=size)
        .map(|epoch| {
            let mut document = sample_document();
            document.epoch = epoch;
            if epoch == 2 {
                document.fleet_id = "forked-fleet".to_owned();
            }
            let mut bundle = parties.bundle(&document.to_json_bytes(), Ciphersuite::Protobuf);
            let proof =
                append_statement(&mut log, &bundle.auditor, &parties.auditor.verifying_key())
                    .unwrap();
            bundle.attach_log_proof(&proof);
            bundle
        })
        .collect()
}

fn since(bundle: &Bundle, log_dir: Option<PathBuf>) -> VerifyOptions {
    VerifyOptions {
        since: Some(bundle.checkpoint.clone().unwrap().into_bytes()),
        log_dir,
    }
}

#[test]
fn since_accepts_consistent_log() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let dir = temp.path().join("log");
    let bundles = logged_bundles(&parties, &dir, 5);
    let trust = trust(&parties, &[], 0);

    let report = verify(&bundles[4], &trust, &since(&bundles[1], Some(dir.clone())));
    assert!(report.passed(), "{report}");
    let names = check_names(&report);
    assert_eq!(
        &names[names.len() - 2..],
        [CHECK_LOG_CONSISTENCY, CHECK_HARDWARE_ATTESTATION]
    );

    let report = verify(&bundles[2], &trust, &since(&bundles[2], None));
    assert!(report.passed(), "{report}");

    // A larger tree needs the log to prove consistency.
    let report = verify(&bundles[4], &trust, &since(&bundles[1], None));
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
}

#[test]
fn since_catches_fork_and_rollback() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let honest_dir = temp.path().join("honest");
    let forked_dir = temp.path().join("forked");
    let honest = logged_bundles(&parties, &honest_dir, 3);
    let forked = forked_log(&parties, &forked_dir, 4);
    let trust = trust(&parties, &[], 0);

    // Both logs verify on their own: the fork is only visible against history.
    assert!(verify(&forked[2], &trust, &VerifyOptions::default()).passed());

    // Same size, different root.
    let report = verify(&forked[2], &trust, &since(&honest[2], None));
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
    assert!(report.checks.last().unwrap().detail.starts_with("fork"));

    // A larger forked tree, proved from either log directory.
    for dir in [&forked_dir, &honest_dir] {
        let report = verify(&forked[3], &trust, &since(&honest[2], Some(dir.clone())));
        assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY, "{}", dir.display());
    }

    // A log copy that shows a smaller tree after a larger one: the honest log with its
    // checkpoint put back to size 1.
    let rolled_dir = temp.path().join("rolled");
    common::copy_dir(&honest_dir, &rolled_dir);
    std::fs::write(
        rolled_dir.join("checkpoint"),
        honest[0].checkpoint.clone().unwrap(),
    )
    .unwrap();
    let report = verify(&honest[0], &trust, &since(&honest[2], Some(rolled_dir)));
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
    let detail = &report.checks.last().unwrap().detail;
    assert!(detail.starts_with("rollback: the log copy"), "{detail}");

    // Without a copy of the log an older checkpoint cannot be distinguished from a rollback.
    let report = verify(&honest[0], &trust, &since(&honest[2], None));
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
    let detail = &report.checks.last().unwrap().detail;
    assert!(
        detail.starts_with("rollback or an older bundle"),
        "{detail}"
    );

    // A copy older than the bundle cannot prove anything about it.
    let report = verify(
        &forked[3],
        &trust,
        &since(&forked[1], Some(honest_dir.clone())),
    );
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
}

#[test]
fn since_accepts_older_bundle_with_log_copy() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let dir = temp.path().join("log");
    let bundles = logged_bundles(&parties, &dir, 5);
    let trust = trust(&parties, &[], 0);

    // A reader who saw the log at size 5 checks the bundle logged first.
    let report = verify(&bundles[0], &trust, &since(&bundles[4], Some(dir.clone())));
    assert!(report.passed(), "{report}");
    let detail = &report.checks[report.checks.len() - 2].detail;
    assert!(detail.starts_with("an older bundle"), "{detail}");

    // An older bundle from a forked log is not a prefix of the tree seen before.
    let forked_dir = temp.path().join("forked");
    let forked = forked_log(&parties, &forked_dir, 4);
    let report = verify(&forked[2], &trust, &since(&bundles[4], Some(dir)));
    assert_eq!(failed(&report), CHECK_LOG_CONSISTENCY);
    let detail = &report.checks.last().unwrap().detail;
    assert!(detail.starts_with("fork"), "{detail}");
}

#[test]
fn append_enforces_epoch_and_digest_rules() {
    let temp = tempfile::tempdir().unwrap();
    let parties = Parties::random();
    let dir = temp.path().join("log");
    let mut log = Log::init(&dir, ORIGIN, log_signer()).unwrap();
    let key = parties.auditor.verifying_key();
    let auditor = |epoch| {
        parties
            .bundle(&document_bytes(epoch), Ciphersuite::Protobuf)
            .auditor
    };

    let first = auditor(4);
    append_statement(&mut log, &first, &key).unwrap();
    let error = append_statement(&mut log, &auditor(6), &key).unwrap_err();
    assert!(
        matches!(
            error,
            AppendError::Entry(EntryError::EpochNotNext {
                epoch: 6,
                last: 4,
                ..
            })
        ),
        "{error}"
    );
    let error = append_statement(&mut log, &first, &key).unwrap_err();
    assert!(
        matches!(
            error,
            AppendError::Entry(EntryError::DuplicateDigest { index: 0, .. })
        ),
        "{error}"
    );
    let error = append_statement(&mut log, &auditor(3), &key).unwrap_err();
    assert!(
        matches!(error, AppendError::Entry(EntryError::EpochNotNext { .. })),
        "{error}"
    );
    assert_eq!(log.size(), 1);
    append_statement(&mut log, &auditor(5), &key).unwrap();
    assert_eq!(log.size(), 2);

    let other = Parties::random();
    let error =
        append_statement(&mut log, &auditor(6), &other.auditor.verifying_key()).unwrap_err();
    assert!(matches!(error, AppendError::BadSignature { .. }), "{error}");
}
