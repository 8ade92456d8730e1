//! Interoperability with the `openssl` command-line tool: signatures and key files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ed25519_dalek::SigningKey;
use fleet_ceremony::bundle::keys::{
    ed25519_key_file_pem, ed25519_spki_pem, fleet_key_from_spki_pem, read_ed25519_key_file,
};
use fleet_ceremony::bundle::{
    Ciphersuite, FleetKeyAlgorithm, Statement, countersign_with_key, countersigned_message,
    fingerprint,
};
use sha2::{Digest, Sha256};

/// Runs `openssl` with `args` in `dir`; returns whether it succeeded and its stdout.
fn openssl(dir: &Path, args: &[&str]) -> (bool, Vec<u8>) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    (output.status.success(), output.stdout)
}

/// Generates an Ed25519 key file with openssl and returns its path.
fn openssl_key_file(dir: &Path) -> PathBuf {
    let (ok, _) = openssl(
        dir,
        &["genpkey", "-algorithm", "ed25519", "-out", "key.pem"],
    );
    assert!(ok, "openssl genpkey failed");
    dir.join("key.pem")
}

/// Writes the public key, message and signature, then runs `openssl pkeyutl -verify`.
fn openssl_verifies(key: &SigningKey, message: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pub.pem"),
        ed25519_spki_pem(&key.verifying_key()),
    )
    .unwrap();
    std::fs::write(dir.path().join("msg.bin"), message).unwrap();
    std::fs::write(dir.path().join("sig.bin"), signature).unwrap();
    let args = [
        "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg.bin",
        "-sigfile", "sig.bin",
    ];
    openssl(dir.path(), &args).0
}

fn sample_statement(ciphersuite: Ciphersuite) -> Statement {
    Statement {
        ciphersuite,
        namespace: "fleet.example.com".to_string(),
        timestamp_ms: 1_740_823_200_000,
        epoch: 3,
        digest: Sha256::digest(b"fleet-key.json").into(),
    }
}

#[test]
fn openssl_verifies_statements() {
    let key = common::random_signing_key();
    for suite in [Ciphersuite::Protobuf, Ciphersuite::Bincode] {
        let statement = sample_statement(suite);
        let signature = statement.sign(&key).to_bytes();
        assert!(
            openssl_verifies(&key, &statement.signed_bytes(), &signature),
            "{suite}"
        );

        let mut forged = signature;
        forged[10] ^= 0x01;
        assert!(
            !openssl_verifies(&key, &statement.signed_bytes(), &forged),
            "{suite}"
        );
    }
}

#[test]
fn openssl_verifies_countersignature() {
    let auditor = sample_statement(Ciphersuite::Protobuf).sign(&common::random_signing_key());
    let operator = common::random_signing_key();
    let signature = countersign_with_key(&operator, &auditor).to_bytes();
    let message = countersigned_message(&auditor);
    assert!(openssl_verifies(&operator, &message, &signature));
    assert!(!openssl_verifies(
        &operator,
        &auditor.to_bytes(),
        &signature
    ));
}

#[test]
fn we_read_openssl_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = openssl_key_file(dir.path());
    let key = read_ed25519_key_file(&path).unwrap();

    let (ok, public_pem) = openssl(dir.path(), &["pkey", "-in", "key.pem", "-pubout"]);
    assert!(ok);
    assert_eq!(
        String::from_utf8(public_pem).unwrap(),
        ed25519_spki_pem(&key.verifying_key())
    );
}

#[test]
fn openssl_signs_with_our_key_file() {
    let key = common::random_signing_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        ed25519_key_file_pem(&key).as_bytes(),
    )
    .unwrap();
    let message = sample_statement(Ciphersuite::Bincode).signed_bytes();
    std::fs::write(dir.path().join("msg.bin"), &message).unwrap();

    let args = [
        "pkeyutl", "-sign", "-inkey", "key.pem", "-rawin", "-in", "msg.bin", "-out", "sig.bin",
    ];
    assert!(
        openssl(dir.path(), &args).0,
        "openssl cannot use our key file"
    );
    let signature = std::fs::read(dir.path().join("sig.bin")).unwrap();
    assert_eq!(
        signature,
        ed25519_dalek::Signer::sign(&key, &message).to_bytes()
    );
}

#[test]
fn our_key_file_matches_openssl_public_key() {
    let key = common::random_signing_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        ed25519_key_file_pem(&key).as_bytes(),
    )
    .unwrap();

    let (ok, public_pem) = openssl(dir.path(), &["pkey", "-in", "key.pem", "-pubout"]);
    assert!(ok, "openssl cannot read our key file");
    assert_eq!(
        String::from_utf8(public_pem).unwrap(),
        ed25519_spki_pem(&key.verifying_key())
    );
}

#[test]
fn openssl_p256_key_accepted_as_fleet_key() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "ec.pem",
    ];
    assert!(openssl(dir.path(), &args).0);
    let (ok, public_pem) = openssl(dir.path(), &["pkey", "-in", "ec.pem", "-pubout"]);
    assert!(ok);
    let (ok, public_der) = openssl(
        dir.path(),
        &["pkey", "-in", "ec.pem", "-pubout", "-outform", "DER"],
    );
    assert!(ok);

    let key = fleet_key_from_spki_pem(&String::from_utf8(public_pem).unwrap()).unwrap();
    assert_eq!(key.algorithm, FleetKeyAlgorithm::EcdsaP256);
    assert_eq!(key.spki_der, public_der);
    assert_eq!(key.fingerprint(), fingerprint(&public_der));
}

#[test]
fn openssl_p384_key_rejected_naming_curve() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "ec.pem",
    ];
    assert!(openssl(dir.path(), &args).0);
    let (ok, public_pem) = openssl(dir.path(), &["pkey", "-in", "ec.pem", "-pubout"]);
    assert!(ok);

    let error = fleet_key_from_spki_pem(&String::from_utf8(public_pem).unwrap()).unwrap_err();
    assert!(error.to_string().contains("1.3.132.0.34"), "{error}");
}
