//! The `log init`, `log cosign` and `bundle diff` commands, run as the binary.

#![cfg(feature = "ceremony")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::cargo::cargo_bin_cmd;
use common::{Parties, key_entry, random_p256_pem, sample_document, stderr_text, stdout_text};
use fleet_ceremony::bundle::{Ciphersuite, FleetKeyDocument};
use fleet_ceremony::log::note::TYPE_ED25519;
use fleet_ceremony::log::{Checkpoint, Log, Note, SignerKey, VerifierKey, verify_cosignature};

const ORIGIN: &str = "audit.example/fleet-log";
const WITNESS: &str = "witness.example/w1";

fn run(args: &[&std::ffi::OsStr]) -> Output {
    cargo_bin_cmd!("fleet-ceremony")
        .args(args)
        .output()
        .unwrap()
}

/// A log created with `log init`, a witness key from `log witness-key` and paths for
/// the witness state.
struct Setup {
    _temp: tempfile::TempDir,
    root: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().to_path_buf();
        let setup = Setup { _temp: temp, root };
        let output = run(&[
            "log".as_ref(),
            "init".as_ref(),
            setup.log_dir().as_os_str(),
            "--origin".as_ref(),
            ORIGIN.as_ref(),
            "--key-out".as_ref(),
            setup.path("log.key").as_os_str(),
        ]);
        assert!(output.status.success(), "{}", stderr_text(&output));
        let output = run(&[
            "log".as_ref(),
            "witness-key".as_ref(),
            WITNESS.as_ref(),
            "--key-out".as_ref(),
            setup.path("witness.key").as_os_str(),
        ]);
        assert!(output.status.success(), "{}", stderr_text(&output));
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn log_dir(&self) -> PathBuf {
        self.path("log")
    }

    fn signer(&self) -> SignerKey {
        let text = std::fs::read_to_string(self.path("log.key")).unwrap();
        SignerKey::parse(text.trim_end()).unwrap()
    }

    fn witness(&self) -> VerifierKey {
        let text = std::fs::read_to_string(self.path("witness.key.pub")).unwrap();
        VerifierKey::parse(&text).unwrap()
    }

    /// Appends `count` entries named with `tag` to the log in `dir` and signs a checkpoint.
    fn grow(&self, dir: &Path, tag: &str, count: u64) {
        let mut log = Log::open(dir, ORIGIN, self.signer()).unwrap();
        let start = log.size();
        for i in start..start + count {
            log.append(format!("{tag} entry {i}").as_bytes()).unwrap();
        }
        log.checkpoint().unwrap();
    }

    fn cosign(&self, dir: &Path) -> Output {
        run(&[
            "log".as_ref(),
            "cosign".as_ref(),
            dir.as_os_str(),
            "--key".as_ref(),
            self.path("witness.key").as_os_str(),
            "--log-key".as_ref(),
            self.path("log.key.pub").as_os_str(),
            "--state".as_ref(),
            self.path("witness-state").as_os_str(),
        ])
    }

    /// The checkpoint of `dir`, opened with the log key.
    fn checkpoint(&self, dir: &Path) -> (Note, Checkpoint) {
        let bytes = std::fs::read(dir.join("checkpoint")).unwrap();
        let checkpoint = Checkpoint::open(&bytes, ORIGIN, self.signer().verifier()).unwrap();
        (Note::parse(&bytes).unwrap(), checkpoint)
    }

    fn witness_lines(&self, note: &Note) -> usize {
        note.signatures()
            .iter()
            .filter(|line| line.name == WITNESS)
            .count()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    common::copy_dir(from, to);
}

/// Runs `log init DIR --origin ORIGIN --key-out KEY`, with `--verifier-out` when given.
fn init(dir: &Path, key: &Path, verifier: Option<&Path>) -> Output {
    let mut args = vec![
        "log".as_ref(),
        "init".as_ref(),
        dir.as_os_str(),
        "--origin".as_ref(),
        ORIGIN.as_ref(),
        "--key-out".as_ref(),
        key.as_os_str(),
    ];
    if let Some(verifier) = verifier {
        args.extend(["--verifier-out".as_ref(), verifier.as_os_str()]);
    }
    run(&args)
}

#[test]
fn init_on_existing_log_writes_no_key() {
    let setup = Setup::new();
    let checkpoint = std::fs::read(setup.log_dir().join("checkpoint")).unwrap();

    let output = init(&setup.log_dir(), &setup.path("second.key"), None);

    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("already has a checkpoint"),
        "{}",
        stderr_text(&output)
    );
    assert!(!setup.path("second.key").exists(), "signer key written");
    assert!(
        !setup.path("second.key.pub").exists(),
        "verifier key written"
    );
    let after = std::fs::read(setup.log_dir().join("checkpoint")).unwrap();
    assert_eq!(after, checkpoint);
}

#[test]
fn init_never_overwrites_key_files() {
    let temp = tempfile::tempdir().unwrap();
    let log = temp.path().join("log");
    let key = temp.path().join("log.key");
    let verifier = temp.path().join("log.key.pub");

    // An existing verifier key: nothing is written, not even the signer key.
    std::fs::write(&verifier, "old verifier\n").unwrap();
    let output = init(&log, &key, None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("log.key.pub already exists"),
        "{}",
        stderr_text(&output)
    );
    assert!(!key.exists(), "signer key written");
    assert_eq!(
        std::fs::read_to_string(&verifier).unwrap(),
        "old verifier\n"
    );
    assert!(!log.exists(), "log folder created");

    // An existing signer key.
    std::fs::remove_file(&verifier).unwrap();
    std::fs::write(&key, "old signer\n").unwrap();
    let output = init(&log, &key, None);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "old signer\n");
    assert!(!verifier.exists(), "verifier key written");
    assert!(!log.exists(), "log folder created");

    // Both keys to one path: the second write fails and the first file is removed again.
    let same = temp.path().join("same.key");
    let output = init(&log, &same, Some(&same));
    assert_eq!(output.status.code(), Some(1), "{}", stderr_text(&output));
    assert!(!same.exists(), "signer key left behind");
    assert!(!log.join("checkpoint").exists(), "log published");
}

#[test]
fn cosign_first_and_larger_checkpoint() {
    let setup = Setup::new();
    let log = setup.log_dir();
    setup.grow(&log, "a", 3);

    let output = setup.cosign(&log);
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("at tree size 3 as witness.example/w1"),
        "{}",
        stderr_text(&output)
    );
    let (note, checkpoint) = setup.checkpoint(&log);
    assert_eq!(checkpoint.size, 3);
    assert_eq!(setup.witness_lines(&note), 1);
    verify_cosignature(&note, &setup.witness()).unwrap();
    let state = std::fs::read(setup.path("witness-state")).unwrap();
    assert_eq!(state, std::fs::read(log.join("checkpoint")).unwrap());

    // A larger tree that extends the one cosigned before.
    setup.grow(&log, "a", 4);
    let output = setup.cosign(&log);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let (note, checkpoint) = setup.checkpoint(&log);
    assert_eq!(checkpoint.size, 7);
    assert_eq!(setup.witness_lines(&note), 1);
    verify_cosignature(&note, &setup.witness()).unwrap();
    let state = std::fs::read(setup.path("witness-state")).unwrap();
    let state = Checkpoint::open(&state, ORIGIN, setup.signer().verifier()).unwrap();
    assert_eq!(state.size, 7);
}

#[test]
fn cosign_twice_keeps_one_line() {
    let setup = Setup::new();
    let log = setup.log_dir();
    setup.grow(&log, "a", 2);
    for _ in 0..2 {
        let output = setup.cosign(&log);
        assert!(output.status.success(), "{}", stderr_text(&output));
    }
    let (note, _) = setup.checkpoint(&log);
    assert_eq!(setup.witness_lines(&note), 1, "{note:?}");
    assert_eq!(note.signatures().len(), 2);
    verify_cosignature(&note, &setup.witness()).unwrap();
}

#[test]
fn cosign_rejects_rollback_and_fork() {
    let setup = Setup::new();
    let log = setup.log_dir();
    setup.grow(&log, "a", 3);
    let smaller = setup.path("smaller");
    copy_dir(&log, &smaller);

    // A fork: the same log key signs a different tree of a larger size.
    let fork = setup.path("fork");
    Log::init(&fork, ORIGIN, setup.signer()).unwrap();
    setup.grow(&fork, "b", 6);

    setup.grow(&log, "a", 2);
    let output = setup.cosign(&log);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let state_before = std::fs::read(setup.path("witness-state")).unwrap();

    for (dir, reason) in [(&smaller, "rollback"), (&fork, "fork")] {
        let checkpoint_before = std::fs::read(dir.join("checkpoint")).unwrap();
        let output = setup.cosign(dir);
        assert_eq!(output.status.code(), Some(1), "{reason}");
        let stderr = stderr_text(&output);
        assert!(stderr.contains(&format!("{reason}: ")), "{stderr}");
        assert_eq!(
            std::fs::read(dir.join("checkpoint")).unwrap(),
            checkpoint_before,
            "{reason}: checkpoint changed"
        );
        assert_eq!(
            std::fs::read(setup.path("witness-state")).unwrap(),
            state_before,
            "{reason}: witness state changed"
        );
    }
}

#[test]
fn cosign_rejects_checkpoint_of_other_key() {
    let setup = Setup::new();
    let log = setup.log_dir();
    setup.grow(&log, "a", 2);
    let other = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[1u8; 32]).unwrap();
    std::fs::write(setup.path("log.key.pub"), format!("{}\n", other.verifier())).unwrap();
    let output = setup.cosign(&log);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_text(&output).contains("is not valid"),
        "{}",
        stderr_text(&output)
    );
    assert!(!setup.path("witness-state").exists());
}

/// Returns the sample document with `namespace`, `epoch` and `keys` replaced.
fn document(
    namespace: &str,
    epoch: u64,
    keys: Vec<fleet_ceremony::bundle::KeyEntry>,
) -> FleetKeyDocument {
    let mut document = sample_document();
    document.namespace = namespace.to_owned();
    document.epoch = epoch;
    document.keys = keys;
    document
}

fn diff(old: &Path, new: &Path) -> Output {
    run(&[
        "bundle".as_ref(),
        "diff".as_ref(),
        old.as_os_str(),
        new.as_os_str(),
    ])
}

#[test]
fn bundle_diff_lists_key_changes() {
    let temp = tempfile::tempdir().unwrap();
    let kept = key_entry("fleet-signing", "ecdsa-p256", random_p256_pem());
    let rotated_old = key_entry("fleet-backup", "ecdsa-p256", random_p256_pem());
    let rotated_new = key_entry("fleet-backup", "ecdsa-p256", random_p256_pem());
    let retired = key_entry("fleet-legacy", "ecdsa-p256", random_p256_pem());
    let added = key_entry("fleet-new", "ecdsa-p256", random_p256_pem());

    let old = document(
        "fleet.example.com",
        3,
        vec![kept.clone(), rotated_old.clone(), retired.clone()],
    );
    let new = document(
        "fleet.example.com",
        4,
        vec![kept.clone(), rotated_new.clone(), added.clone()],
    );
    // The old epoch as a bundle, the new one as a plain document.
    let parties = Parties::random();
    let old_path = temp.path().join("old-bundle.json");
    let bundle = parties.bundle(&old.to_json_bytes(), Ciphersuite::Protobuf);
    std::fs::write(&old_path, bundle.to_json_bytes()).unwrap();
    let new_path = temp.path().join("fleet-key.json");
    std::fs::write(&new_path, new.to_json_bytes()).unwrap();

    let output = diff(&old_path, &new_path);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let expected = format!(
        "namespace fleet.example.com: epoch 3 -> 4\n\
         + fleet-new ecdsa-p256 sha256 {}\n\
         - fleet-legacy ecdsa-p256 sha256 {}\n\
         ~ fleet-backup ecdsa-p256 sha256 {} -> ecdsa-p256 sha256 {}\n\
         = fleet-signing\n",
        added.fingerprint, retired.fingerprint, rotated_old.fingerprint, rotated_new.fingerprint
    );
    assert_eq!(stdout_text(&output), expected);
}

#[test]
fn bundle_diff_rejects_unrelated_epochs() {
    let temp = tempfile::tempdir().unwrap();
    let keys = vec![key_entry("fleet-signing", "ecdsa-p256", random_p256_pem())];
    let write = |name: &str, document: FleetKeyDocument| {
        let path = temp.path().join(name);
        std::fs::write(&path, document.to_json_bytes()).unwrap();
        path
    };
    let base = write("base.json", document("fleet.example.com", 3, keys.clone()));
    let cases = [
        (
            document("other.example.com", 4, keys.clone()),
            "namespaces differ: old is \"fleet.example.com\", new is \"other.example.com\"",
        ),
        (
            document("fleet.example.com", 5, keys.clone()),
            "new epoch 5 does not follow old epoch 3; expected epoch 4",
        ),
        (
            document("fleet.example.com", 3, keys.clone()),
            "new epoch 3 does not follow old epoch 3; expected epoch 4",
        ),
        (
            document("fleet.example.com", 2, keys.clone()),
            "new epoch 2 does not follow old epoch 3; expected epoch 4",
        ),
    ];
    for (number, (new, reason)) in cases.into_iter().enumerate() {
        let new_path = write(&format!("new-{number}.json"), new);
        let output = diff(&base, &new_path);
        assert_eq!(output.status.code(), Some(1), "case {number}");
        let stderr = stderr_text(&output);
        assert!(
            stderr.contains("are not consecutive epochs of one namespace"),
            "{stderr}"
        );
        assert!(stderr.contains(reason), "case {number}: {stderr}");
        assert!(stdout_text(&output).is_empty(), "case {number}");
    }
}
