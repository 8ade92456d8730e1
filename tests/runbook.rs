//! Runbook parsing against the data files in tests/data/runbooks and the demo runbook.
//!
//! `pass_*.yaml` must load; `fail_*.yaml` must fail with exactly the message in the
//! `.err` file of the same name.

#![cfg(feature = "ceremony")]

use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use fleet_ceremony::runbook::{
    self, Growth, KeyAlgorithm, MAX_RUNBOOK_BYTES, Problem, PublicKeySource, RecipientKind,
    RecipientSource, RunbookError, Signer, TokenRef,
};

const DATA_DIR: &str = "tests/data/runbooks";

fn data_files(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DATA_DIR)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn pass_files_load() {
    let files = data_files("pass_");
    assert!(files.len() >= 2);
    for path in files {
        if let Err(error) = runbook::load(&path) {
            panic!("{} should load, got:\n{error}", path.display());
        }
    }
}

#[test]
fn fail_files_report_expected_errors() {
    let files = data_files("fail_");
    assert!(files.len() >= 30);
    let mut mismatches = Vec::new();
    for path in files {
        let expected_path = path.with_extension("err");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        match runbook::load(&path) {
            Ok(_) => mismatches.push(format!("{} loaded but should fail", path.display())),
            Err(error) => {
                let actual = error.to_string();
                if actual != expected.trim_end_matches('\n') {
                    mismatches.push(format!(
                        "{}:\n  expected: {expected:?}\n  actual:   {actual:?}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn full_runbook_values() {
    let book = runbook::load(Path::new("tests/data/runbooks/pass_full.yaml")).unwrap();
    assert_eq!(book.fleet.id, "test-fleet");
    assert_eq!(book.fleet.epoch, 1);
    assert_eq!(book.fleet_key.algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(book.members.len(), 3);
    assert!(book.members[0].origin);
    assert!(!book.members[1].origin);
    assert_eq!(book.origin().name, "zurich-1");
    assert!(book.members[1].erase_existing);
    assert_eq!(
        book.members[2].token,
        TokenRef::Serial("5a3f09c1d2e4b7a8".to_string())
    );
    assert_eq!(book.custodians.threshold, 2);
    assert_eq!(book.custodians.people.len(), 3);

    let alice = &book.custodians.people[0].recipient;
    assert_eq!(alice.kind, RecipientKind::X25519);
    // The file has a comment and a blank line before the recipient, with CRLF endings.
    let expected_source = RecipientSource::File {
        path: Path::new(DATA_DIR).join("custodians/alice.txt"),
        line: 3,
    };
    assert_eq!(alice.source, expected_source);
    let carol = &book.custodians.people[2].recipient;
    assert!(matches!(
        carol.source,
        RecipientSource::Runbook { line: 39 }
    ));

    assert!(matches!(book.operator.signer, Signer::Pkcs11 { .. }));
    assert_eq!(
        book.outputs.transcript(),
        Path::new(DATA_DIR).join("ceremony/test-fleet/transcript.jsonl")
    );
    let bytes = std::fs::read(&book.path).unwrap();
    assert_eq!(
        book.sha256(),
        fleet_ceremony::transcript::sha256_hex(&bytes)
    );
}

#[test]
fn growth_defaults_to_locked() {
    let book = runbook::load(Path::new("tests/data/runbooks/pass_full.yaml")).unwrap();
    assert_eq!(book.fleet_key.growth, Growth::Locked);
}

#[test]
fn growth_trusted_wrap_parses() {
    let path = Path::new("tests/data/runbooks/pass_growth_trusted_wrap.yaml");
    let book = runbook::load(path).unwrap();
    assert_eq!(book.fleet_key.growth, Growth::TrustedWrap);
    assert_eq!(book.fleet_key.growth.as_str(), "trusted-wrap");
}

#[test]
fn plan_lists_members_custodians_and_outputs() {
    let book = runbook::load(Path::new("tests/data/runbooks/pass_full.yaml")).unwrap();
    let plan = book.plan();
    assert!(plan.contains("Fleet test-fleet, epoch 1"), "{plan}");
    assert!(
        plan.contains("1. zurich-1 at Zurich, CH (origin, generates the key)"),
        "{plan}"
    );
    assert!(plan.contains("any 2 of 3 recover the PINs"), "{plan}");
    assert!(plan.contains("ERASING"), "{plan}");
    assert!(plan.contains("shares/carol.age"), "{plan}");
    assert!(plan.contains("evidence/test-fleet/"), "{plan}");
    assert!(!plan.contains('\u{1b}'), "plan has no colour codes");
}

#[test]
fn plan_shows_growth_policy() {
    let locked = runbook::load(Path::new("tests/data/runbooks/pass_full.yaml"))
        .unwrap()
        .plan();
    assert!(
        locked.contains("  growth: locked, every copy ends non-extractable"),
        "{locked}"
    );
    assert!(!locked.contains("trusted-wrap"), "{locked}");

    let trusted = runbook::load(Path::new(
        "tests/data/runbooks/pass_growth_trusted_wrap.yaml",
    ))
    .unwrap()
    .plan();
    assert!(
        trusted.contains("  growth: trusted-wrap, the origin's copy stays extractable"),
        "{trusted}"
    );
    assert!(trusted.contains("CKA_TRUSTED"), "{trusted}");
}

#[test]
fn inline_key_and_key_file_signer() {
    let path = Path::new("tests/data/runbooks/pass_inline_key_and_key_file.yaml");
    let book = runbook::load(path).unwrap();
    assert!(matches!(
        book.auditor.public_key_source,
        PublicKeySource::Runbook { .. }
    ));
    let expected = Path::new(DATA_DIR).join("operator/operator-key.pem");
    assert_eq!(book.operator.signer, Signer::KeyFile(expected));
}

#[test]
fn check_files_reports_missing_module_and_existing_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string("tests/data/runbooks/pass_full.yaml")
        .unwrap()
        .replace(
            "module: /usr/lib/softhsm/libsofthsm2.so\nfleet_key",
            "module: lib/missing-pkcs11.so\nfleet_key",
        );
    copy_dir(Path::new(DATA_DIR), dir.path());
    let path = dir.path().join("runbook.yaml");
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir_all(dir.path().join("shares")).unwrap();
    std::fs::write(dir.path().join("shares/bob.age"), b"x").unwrap();
    std::fs::create_dir_all(dir.path().join("evidence/test-fleet")).unwrap();

    let book = runbook::load(&path).unwrap();
    let problems = book.check_files();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    // Members 0 and 1 and the operator use the missing default module. Member 2 names
    // SoftHSM itself, which may or may not be installed here, so it is not checked.
    assert!(fields.contains(&"members[0].module"), "{fields:?}");
    assert!(fields.contains(&"members[1].module"), "{fields:?}");
    assert!(
        fields.contains(&"operator.signer.pkcs11.module"),
        "{fields:?}"
    );
    let outputs: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.field.starts_with("outputs."))
        .collect();
    assert_eq!(outputs.len(), 2, "{problems:?}");
    assert_eq!(outputs[0].path, dir.path().join("shares/bob.age"));
    assert_eq!(outputs[1].path, dir.path().join("evidence/test-fleet"));
}

#[test]
fn check_files_is_empty_when_ready() {
    let softhsm = Path::new(runbook::DEFAULT_MODULE);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(Path::new(DATA_DIR), dir.path());
    let path = dir.path().join("pass_full.yaml");
    let book = runbook::load(&path).unwrap();
    let problems = book.check_files();
    if softhsm.is_file() {
        assert!(problems.is_empty(), "{problems:?}");
    } else {
        assert!(problems.iter().all(|p| p.field.ends_with(".module")));
    }
}

#[test]
fn file_over_limit_is_rejected_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    // Invalid YAML throughout: a parse would report a syntax error, not the size.
    let size = usize::try_from(MAX_RUNBOOK_BYTES).unwrap() + 1;
    std::fs::write(&path, vec![b'['; size]).unwrap();
    let error = runbook::load(&path).unwrap_err();
    assert!(matches!(error, RunbookError::TooLarge { .. }), "{error}");

    let text = "#".repeat(size);
    let error = runbook::parse(&text, &path).unwrap_err();
    assert!(matches!(error, RunbookError::TooLarge { .. }), "{error}");
}

#[test]
fn alias_bomb_is_rejected() {
    // Nine levels of ten aliases each would expand to 10^10 scalars. No runbook field accepts
    // nested sequences, so parsing stops before any alias expands. The alias limits
    // themselves are tested on an untyped target in the runbook module's unit tests.
    let mut text = String::from(
        "version: 1\nkind: deployment\nx:\n  l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n",
    );
    for level in 1..10 {
        let previous = format!("*l{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("  l{level}: &l{level} [{items}]\n"));
    }
    text.push_str("fleet: *l9\n");

    let error = runbook::parse(&text, Path::new("bomb.yaml")).unwrap_err();
    assert!(matches!(error, RunbookError::Yaml { .. }), "{error}");
}

#[test]
fn demo_runbook_parses_with_generated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo-fleet.yaml");
    std::fs::copy("ceremonies/demo-fleet.yaml", &path).unwrap();

    for name in ["alice", "bob", "carol"] {
        let folder = dir.path().join("custodians").join(name);
        std::fs::create_dir_all(&folder).unwrap();
        let identity = folder.join("identity.txt");
        let status = std::process::Command::new("age-keygen")
            .arg("-o")
            .arg(&identity)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("age-keygen is installed");
        assert!(status.success());
        let output = std::process::Command::new("age-keygen")
            .arg("-y")
            .arg(&identity)
            .output()
            .unwrap();
        assert!(output.status.success());
        std::fs::write(folder.join("recipient.txt"), &output.stdout).unwrap();
    }
    let keys = dir.path().join("keys-public");
    std::fs::create_dir_all(&keys).unwrap();
    for (name, seed) in [("auditor", 1u8), ("operator", 2u8)] {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        std::fs::write(keys.join(format!("{name}.pem")), pem).unwrap();
    }

    let book = runbook::load(&path).unwrap();
    assert_eq!(book.fleet.id, "demo-fleet");
    assert_eq!(book.fleet_key.algorithm, KeyAlgorithm::EcdsaP256);
    assert_eq!(book.members.len(), 3);
    let sites: std::collections::HashSet<&str> =
        book.members.iter().map(|m| m.site.as_str()).collect();
    assert_eq!(sites.len(), 3);
    assert_eq!(book.custodians.threshold, 2);
    assert_eq!(book.custodians.people.len(), 3);
    assert!(matches!(book.operator.signer, Signer::Pkcs11 { .. }));
    let expected_auditor = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
    assert_eq!(book.auditor.public_key, expected_auditor);
}

#[test]
fn demo_runbook_without_files_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo-fleet.yaml");
    std::fs::copy("ceremonies/demo-fleet.yaml", &path).unwrap();
    let error = runbook::load(&path).unwrap_err();
    assert_eq!(error.field(), Some("custodians.people[0].recipient_file"));
    assert!(
        error.to_string().contains("custodians/alice/recipient.txt"),
        "{error}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
