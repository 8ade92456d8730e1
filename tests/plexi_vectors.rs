//! Reproduces the Plexi test vectors byte for byte.

use ed25519_dalek::{Signature, SigningKey};
use fleet_ceremony::bundle::{Ciphersuite, Statement};
use serde::Deserialize;

/// One entry of `tests/data/plexi/test-vectors.json`.
#[derive(Deserialize)]
struct Vector {
    signing_key: String,
    verifying_key: String,
    namespace: String,
    timestamp: u64,
    epoch: u64,
    digest: String,
    signature: String,
    ciphersuite: u16,
}

fn load_vectors() -> Vec<Vector> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/plexi/test-vectors.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn decode<const N: usize>(text: &str) -> [u8; N] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn statement(vector: &Vector) -> Statement {
    Statement {
        ciphersuite: Ciphersuite::try_from(vector.ciphersuite).unwrap(),
        namespace: vector.namespace.clone(),
        timestamp_ms: vector.timestamp,
        epoch: vector.epoch,
        digest: decode(&vector.digest),
    }
}

#[test]
fn vectors_cover_both_ciphersuites() {
    let suites: Vec<u16> = load_vectors()
        .iter()
        .map(|vector| vector.ciphersuite)
        .collect();
    assert!(suites.contains(&1), "{suites:?}");
    assert!(suites.contains(&2), "{suites:?}");
}

#[test]
fn signatures_match_byte_for_byte() {
    for vector in load_vectors() {
        let key = SigningKey::from_bytes(&decode(&vector.signing_key));
        assert_eq!(
            hex::encode(key.verifying_key().as_bytes()),
            vector.verifying_key
        );

        let signature = statement(&vector).sign(&key);
        assert_eq!(
            hex::encode(signature.to_bytes()),
            vector.signature,
            "namespace {} ciphersuite {}",
            vector.namespace,
            vector.ciphersuite
        );
    }
}

#[test]
fn vector_signatures_verify() {
    for vector in load_vectors() {
        let key = SigningKey::from_bytes(&decode(&vector.signing_key)).verifying_key();
        let signature = Signature::from_bytes(&decode(&vector.signature));
        statement(&vector).verify(&key, &signature).unwrap();
    }
}

#[test]
fn any_changed_field_breaks_verification() {
    for vector in load_vectors() {
        let key = SigningKey::from_bytes(&decode(&vector.signing_key)).verifying_key();
        let signature = Signature::from_bytes(&decode(&vector.signature));
        let original = statement(&vector);

        let mut changed = Vec::new();
        let mut other = original.clone();
        other.ciphersuite = match original.ciphersuite {
            Ciphersuite::Protobuf => Ciphersuite::Bincode,
            Ciphersuite::Bincode => Ciphersuite::Protobuf,
        };
        changed.push(("ciphersuite", other));
        let mut other = original.clone();
        other.namespace.push('x');
        changed.push(("namespace", other));
        let mut other = original.clone();
        other.timestamp_ms += 1;
        changed.push(("timestamp", other));
        let mut other = original.clone();
        other.epoch += 1;
        changed.push(("epoch", other));
        for index in [0, 15, 31] {
            let mut other = original.clone();
            other.digest[index] ^= 0x01;
            changed.push(("digest", other));
        }

        for (field, statement) in changed {
            assert!(
                statement.verify(&key, &signature).is_err(),
                "changed {field} still verifies for {}",
                vector.namespace
            );
        }
    }
}
