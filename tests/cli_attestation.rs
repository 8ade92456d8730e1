//! End-to-end tests of attestation on the command line: `attest verify` on the real
//! vendor vectors, and a SoftHSM ceremony whose member names the real Google Cloud HSM
//! (Marvell) attestation, which cannot attest the key SoftHSM generates.

#![cfg(feature = "ceremony")]

mod common;

use std::path::{Path, PathBuf};

use common::{CeremonyFolder, fleet_ceremony, stderr_text, stdout_text};
use der::Encode;
use fleet_ceremony::attest::marvell;
use fleet_ceremony::bundle::FleetKeyDocument;

const MARVELL_DIR: &str = "tests/data/attestation/gcp-cloudhsm-marvell";
const MARVELL_BLOB: &str = "ec-key-attestation.dat.gz";
const MARVELL_CHAIN: &str = "cert-chain.pem";

/// Inside the validity of every certificate, including the Marvell root that expired on
/// 2025-11-16.
const BEFORE_MARVELL_EXPIRY: &str = "2025-01-01T00:00:00Z";

fn marvell_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(MARVELL_DIR)
        .join(name)
}

/// Writes the key the Marvell vector attests as SPKI PEM into `dir` and returns its path.
fn write_marvell_key(dir: &Path) -> PathBuf {
    let blob = std::fs::read(marvell_path(MARVELL_BLOB)).unwrap();
    let parsed = marvell::parse(&blob).unwrap();
    let spki = marvell::public_key_spki(&parsed.public_key).unwrap();
    let pem = der::pem::encode_string(
        "PUBLIC KEY",
        der::pem::LineEnding::LF,
        &spki.to_der().unwrap(),
    )
    .unwrap();
    let path = dir.join("marvell-key.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

fn attest_verify(extra: &[&str], key: &Path) -> std::process::Output {
    let blob = marvell_path(MARVELL_BLOB);
    let chain = marvell_path(MARVELL_CHAIN);
    fleet_ceremony(Path::new("/nonexistent/softhsm2.conf"))
        .args(["attest", "verify"])
        .arg(&blob)
        .arg(&chain)
        .args(["--vendor", "marvell", "--key"])
        .arg(key)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn attest_verify_accepts_marvell_vector() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_marvell_key(dir.path());

    let output = attest_verify(&["--at", BEFORE_MARVELL_EXPIRY], &key);

    assert_eq!(output.status.code(), Some(0), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    for line in [
        "verified at: 2025-01-01T00:00:00Z\n",
        "\nok chain\n",
        "\nok key matches\n",
        "\nok generated on device\n",
        "\nok not extractable\n",
        "attestation verified: every rule passed\n",
    ] {
        assert!(stdout.contains(line), "{line:?} missing in:\n{stdout}");
    }
}

#[test]
fn attest_verify_now_fails_expired_root() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_marvell_key(dir.path());

    let output = attest_verify(&[], &key);

    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(stdout.starts_with("verification time: now, "), "{stdout}");
    assert!(stdout.contains("\nFAIL chain: "), "{stdout}");
    assert!(
        stdout.contains("valid from 2015-11-19T13:55:25Z to 2025-11-16T13:55:25Z"),
        "{stdout}"
    );
    assert!(stderr_text(&output).contains("error: marvell attestation rejected"));
}

#[test]
fn attest_verify_other_key_fails_key_rule() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("other.pem");
    std::fs::write(&key, common::random_p256_pem()).unwrap();

    let output = attest_verify(&["--at", BEFORE_MARVELL_EXPIRY], &key);

    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(stdout.contains("\nok chain\n"), "{stdout}");
    assert!(
        stdout.contains("\nFAIL key matches: attested public key (SHA-256 "),
        "{stdout}"
    );
}

#[test]
fn attest_verify_input_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_marvell_key(dir.path());

    let output = attest_verify(&["--at", "2025-01-01T00:00:00+01:00"], &key);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_text(&output).contains("is not a UTC time"),
        "{}",
        stderr_text(&output)
    );

    let output = fleet_ceremony(Path::new("/nonexistent/softhsm2.conf"))
        .args(["attest", "verify", "x.bin", "--vendor", "acme", "--key"])
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_text(&output).contains("unknown attestation vendor 'acme'"),
        "{}",
        stderr_text(&output)
    );
}

/// Edits the demo runbook to keep only its first member, signed by a key file, and that member
/// naming the Marvell attestation copied into the folder at `attestation/`.
fn marvell_member(verify_at: &'static str) -> impl FnOnce(String) -> String {
    move |text| {
        let start = text.find("  - name: frankfurt-1").unwrap();
        let end = text.find("custodians:").unwrap();
        let text = format!("{}{}", &text[..start], &text[end..]);
        let attestation = format!(
            "    initialise: true\n    attestation:\n      vendor: marvell\n      files: \
             [attestation/{MARVELL_BLOB}, attestation/{MARVELL_CHAIN}]\n      verify_at: \
             \"{verify_at}\"\n"
        );
        let text = text.replacen("    initialise: true\n", &attestation, 1);
        text.replacen(
            "  signer:\n    pkcs11:\n      token:\n        label: demo-operator\n      key_label: operator-signing-key\n",
            "  signer:\n    key_file: operator-key.pem\n",
            1,
        )
    }
}

fn copy_marvell_files(folder: &CeremonyFolder) {
    std::fs::create_dir_all(folder.path("attestation")).unwrap();
    for name in [MARVELL_BLOB, MARVELL_CHAIN] {
        std::fs::copy(
            marvell_path(name),
            folder.path(&format!("attestation/{name}")),
        )
        .unwrap();
    }
}

#[test]
fn check_verifies_chain_and_defers_key_rule() {
    let folder = CeremonyFolder::new(marvell_member(BEFORE_MARVELL_EXPIRY));
    copy_marvell_files(&folder);

    let output = folder.run(&["check", "runbook.yaml"]);

    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(
        stdout.contains(
            "attestation: marvell, 2 file(s), certificates checked at 2025-01-01T00:00:00Z"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("attestation of zurich-1: marvell device "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "chain valid at 2025-01-01T00:00:00.000Z; generated on device: ok, not extractable: \
             ok; the key matches rule is checked when the ceremony generates the fleet key"
        ),
        "{stdout}"
    );
    assert!(folder.token_files().is_empty());
}

#[test]
fn check_rejects_expired_chain() {
    let folder = CeremonyFolder::new(marvell_member("2026-01-01T00:00:00Z"));
    copy_marvell_files(&folder);

    let output = folder.run(&["check", "runbook.yaml"]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(
            "problem: members[0].attestation (zurich-1): marvell attestation rejected:\n  chain: "
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("is not valid at 2026-01-01T00:00:00Z"),
        "{stderr}"
    );
    assert!(folder.token_files().is_empty());
}

#[test]
fn ceremony_records_attestation_that_does_not_match() {
    let folder = CeremonyFolder::new(marvell_member(BEFORE_MARVELL_EXPIRY));
    copy_marvell_files(&folder);
    let work = "ceremony/demo-fleet";

    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    let document_bytes = std::fs::read(folder.path(&format!("{work}/fleet-key.json"))).unwrap();
    let document = FleetKeyDocument::from_json_bytes(&document_bytes).unwrap();
    let member = &document.members[0];
    assert!(!member.attested);
    let attestation = member.attestation.as_ref().unwrap();
    assert_eq!(attestation.vendor, "marvell");
    let names: Vec<&str> = attestation
        .files
        .iter()
        .map(|file| file.name.as_str())
        .collect();
    assert_eq!(names, [MARVELL_BLOB, MARVELL_CHAIN]);
    let blob_digest = common::run_tool_ok(&marvell_path(""), "sha256sum", &[MARVELL_BLOB]);
    assert!(
        blob_digest.starts_with(&attestation.files[0].sha256),
        "{blob_digest}"
    );
    let results: Vec<(&str, &str)> = attestation
        .rules
        .iter()
        .map(|rule| (rule.rule.as_str(), rule.result.as_str()))
        .collect();
    assert_eq!(
        results,
        [
            ("chain", "pass"),
            ("key matches", "fail"),
            ("generated on device", "pass"),
            ("not extractable", "pass"),
        ]
    );

    let sign = folder.run(&[
        "bundle",
        "sign",
        "--request",
        &format!("{work}/signing-request.json"),
        "--document",
        &format!("{work}/fleet-key.json"),
        "--key",
        "auditor-key.pem",
        "--out",
        &format!("{work}/auditor-signature.json"),
    ]);
    assert!(sign.status.success(), "{}", stderr_text(&sign));
    let countersign = folder.run(&["bundle", "countersign", "runbook.yaml"]);
    assert!(
        countersign.status.success(),
        "{}",
        stderr_text(&countersign)
    );
    let finish = folder.run(&["run", "runbook.yaml"]);
    assert!(finish.status.success(), "{}", stderr_text(&finish));
    for name in [MARVELL_BLOB, MARVELL_CHAIN] {
        let published = folder.path(&format!("evidence/demo-fleet/attestation/zurich-1/{name}"));
        assert_eq!(
            std::fs::read(published).unwrap(),
            std::fs::read(marvell_path(name)).unwrap()
        );
    }

    // A failed rule is never covered by the allowance for unattested keys.
    let trust = folder.write_trust();
    let verify = folder.run(&[
        "verify",
        "evidence/demo-fleet",
        "--trust",
        &trust.display().to_string(),
        "--allow-unattested",
    ]);
    assert_eq!(verify.status.code(), Some(3), "{}", stdout_text(&verify));
    let stdout = stdout_text(&verify);
    assert!(
        stdout.contains("FAIL  hardware attestation: member zurich-1: the marvell attestation failed rule \"key matches\": "),
        "{stdout}"
    );
    assert!(
        stderr_text(&verify)
            .contains("signed by the pinned keys, but the hardware attestation check failed"),
        "{}",
        stderr_text(&verify)
    );
}
