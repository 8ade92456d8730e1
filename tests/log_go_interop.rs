//! Checks our audit log with the Go reference code, golang.org/x/mod/sumdb/note and
//! golang.org/x/mod/sumdb/tlog, through the program in tests/go/logcheck.
//!
//! Needs `go` and the Go sources of golang.org/x/mod in /usr/share/gocode (Debian packages
//! golang-go and golang-golang-x-mod-dev). The build runs offline, with its cache and
//! binary in a temporary directory.

#![cfg(feature = "ceremony")]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use fleet_ceremony::log::note::{TYPE_COSIGNATURE, TYPE_ED25519};
use fleet_ceremony::log::{Checkpoint, Hash, Log, Note, SignerKey, cosign};

const ORIGIN: &str = "audit.example/fleet-log";
const GOPATH: &str = "/usr/share/gocode";

fn encode(hashes: &[Hash]) -> String {
    hashes
        .iter()
        .map(Hash::to_base64)
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_logcheck(temp: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/logcheck");
    let binary = temp.join("logcheck");
    let note_package = Path::new(GOPATH).join("src/golang.org/x/mod/sumdb/note");
    assert!(
        note_package.is_dir(),
        "{} is missing\nhint: install the Debian packages golang-go and golang-golang-x-mod-dev",
        note_package.display()
    );
    let output = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", temp.join("gocache"))
        .env_remove("GOFLAGS")
        .env("GOPROXY", "off")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run `go`: {error}\nhint: install the Debian packages golang-go and \
                 golang-golang-x-mod-dev"
            )
        });
    assert!(
        output.status.success(),
        "go build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    binary
}

/// Builds a log of `size` entries, with a checkpoint at a smaller size first, and writes a
/// proofs file with inclusion and consistency proofs for Go to check.
fn make_log(dir: &Path, size: u64, signer: &SignerKey) -> PathBuf {
    let mut log = Log::init(dir, ORIGIN, signer.clone()).unwrap();
    let mut roots = vec![log.root().unwrap()];
    for i in 0..size {
        log.append(format!("fleet bundle {i}").as_bytes()).unwrap();
        roots.push(log.root().unwrap());
        if i == size / 2 {
            log.checkpoint().unwrap();
        }
    }
    log.checkpoint().unwrap();

    let mut indexes: Vec<u64> = vec![0, size / 2, size - 1, size.saturating_sub(2)];
    indexes.extend((0..size).step_by(97));
    let mut proofs = String::new();
    for &index in &indexes {
        for tree_size in [index + 1, size, (index + 1).max(size / 2 + 1)] {
            let proof = log.prove_inclusion(index, tree_size).unwrap();
            let root = roots[tree_size as usize];
            writeln!(
                proofs,
                "inclusion {index} {tree_size} {root} {}",
                encode(&proof)
            )
            .unwrap();
        }
    }
    let mut pairs = vec![(1, size), (size, size), (size / 2 + 1, size)];
    pairs.extend((1..=size).step_by(61).map(|old| (old, size)));
    pairs.extend(
        (1..=size)
            .step_by(113)
            .map(|old| (old, (old + 7).min(size))),
    );
    for (old, new) in pairs {
        let proof = log.prove_consistency(old, new).unwrap();
        let (old_root, new_root) = (roots[old as usize], roots[new as usize]);
        writeln!(
            proofs,
            "consistency {old} {new} {old_root} {new_root} {}",
            encode(&proof)
        )
        .unwrap();
    }
    let path = dir.join("proofs.txt");
    std::fs::write(&path, proofs).unwrap();
    path
}

fn run_logcheck(binary: &Path, dir: &Path, vkey: &Path, proofs: &Path) -> (bool, String) {
    let output = Command::new(binary)
        .arg(dir)
        .arg(vkey)
        .arg(proofs)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn go_sumdb_accepts_our_log() {
    let temp = tempfile::tempdir().unwrap();
    let binary = build_logcheck(temp.path());
    let signer = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[5u8; 32]).unwrap();
    let vkey = temp.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier())).unwrap();

    for size in [1u64, 2, 7, 256, 257, 1000] {
        let dir = temp.path().join(format!("log-{size}"));
        let proofs = make_log(&dir, size, &signer);
        let (ok, output) = run_logcheck(&binary, &dir, &vkey, &proofs);
        assert!(ok, "size {size}: {output}");
        assert!(output.starts_with(&format!("ok size={size} ")), "{output}");
    }
}

#[test]
fn go_note_ignores_cosignature_and_rejects_tampering() {
    let temp = tempfile::tempdir().unwrap();
    let binary = build_logcheck(temp.path());
    let signer = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[5u8; 32]).unwrap();
    let vkey = temp.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier())).unwrap();
    let dir = temp.path().join("log");
    let proofs = make_log(&dir, 7, &signer);

    // A witness cosignature line is an unknown key to Go's note.Open, which ignores it.
    let witness = SignerKey::from_seed("witness.example/w1", TYPE_COSIGNATURE, &[6u8; 32]).unwrap();
    let checkpoint_path = dir.join("checkpoint");
    let mut note = Note::parse(&std::fs::read(&checkpoint_path).unwrap()).unwrap();
    note.add_signature(cosign(&witness, note.text(), 1_700_000_000).unwrap());
    std::fs::write(&checkpoint_path, note.to_bytes()).unwrap();
    let (ok, output) = run_logcheck(&binary, &dir, &vkey, &proofs);
    assert!(ok, "{output}");

    // A checkpoint with a changed root must fail note.Open.
    let checkpoint = Checkpoint::parse_text(note.text()).unwrap();
    let text = String::from_utf8(note.to_bytes()).unwrap();
    let tampered = text.replace(&checkpoint.root.to_base64(), &Hash([1; 32]).to_base64());
    std::fs::write(&checkpoint_path, tampered).unwrap();
    let (ok, output) = run_logcheck(&binary, &dir, &vkey, &proofs);
    assert!(!ok);
    assert!(output.contains("note.Open"), "{output}");
}

#[test]
fn go_tlog_rejects_flipped_proof() {
    let temp = tempfile::tempdir().unwrap();
    let binary = build_logcheck(temp.path());
    let signer = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[5u8; 32]).unwrap();
    let vkey = temp.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier())).unwrap();
    let dir = temp.path().join("log");
    let log_proofs = make_log(&dir, 257, &signer);

    let text = std::fs::read_to_string(&log_proofs).unwrap();
    for kind in ["inclusion", "consistency"] {
        let line = text
            .lines()
            .find(|line| line.starts_with(kind) && line.split(' ').count() > 5)
            .unwrap();
        let mut fields: Vec<String> = line.split(' ').map(str::to_owned).collect();
        let last = fields.len() - 1;
        let mut hash = Hash::from_base64(&fields[last]).unwrap();
        hash.0[0] ^= 1;
        fields[last] = hash.to_base64();
        let broken = dir.join(format!("broken-{kind}.txt"));
        std::fs::write(&broken, fields.join(" ") + "\n").unwrap();
        let (ok, output) = run_logcheck(&binary, &dir, &vkey, &broken);
        assert!(!ok, "{kind}: {output}");
    }
}

#[test]
fn go_tlog_accepts_shape_changing_sizes() {
    let temp = tempfile::tempdir().unwrap();
    let binary = build_logcheck(temp.path());
    let signer = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[5u8; 32]).unwrap();
    let vkey = temp.path().join("log.vkey");
    std::fs::write(&vkey, format!("{}\n", signer.verifier())).unwrap();
    let dir = temp.path().join("log");
    let mut log = Log::init(&dir, ORIGIN, signer).unwrap();
    for i in 0..1025u64 {
        log.append(format!("fleet bundle {i}").as_bytes()).unwrap();
    }
    log.checkpoint().unwrap();

    // A sample of the sizes where the tree changes shape: first, middle and last leaf,
    // and consistency from each size to every larger one in the sample.
    let sizes = [1u64, 2, 3, 4, 5, 8, 9, 255, 256, 257, 512, 513, 1024, 1025];
    let mut proofs = String::new();
    for &size in &sizes {
        let root = log.root_at(size).unwrap();
        for index in [0, size / 2, size - 1] {
            let proof = log.prove_inclusion(index, size).unwrap();
            writeln!(proofs, "inclusion {index} {size} {root} {}", encode(&proof)).unwrap();
        }
        for &new in sizes.iter().filter(|&&new| new >= size) {
            let proof = log.prove_consistency(size, new).unwrap();
            let new_root = log.root_at(new).unwrap();
            writeln!(
                proofs,
                "consistency {size} {new} {root} {new_root} {}",
                encode(&proof)
            )
            .unwrap();
        }
    }
    let path = temp.path().join("proofs.txt");
    std::fs::write(&path, &proofs).unwrap();
    let (ok, output) = run_logcheck(&binary, &dir, &vkey, &path);
    assert!(ok, "{output}");
    let count = proofs.lines().count();
    assert_eq!(output.trim(), format!("ok size=1025 proofs={count}"));
}
