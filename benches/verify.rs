//! `verify` benchmark: one bundle verified in process, against the floor, which is the
//! cost of the Ed25519 strict verifications the bundle needs plus SHA-256 over the
//! document and the inclusion proof's node hashes.
//!
//! Run: `cargo bench --bench verify -- BUNDLE TRUST`, for example with the bundle and
//! trust file of `fleet-ceremony demo`. Prints a Markdown table on stdout.

use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use fleet_ceremony::bundle::{Trust, VerifyOptions, verify_bundle_bytes_with};
use sha2::{Digest, Sha256};

/// Rounds of each measurement. The rounds of the three measurements alternate, and each
/// reports its fastest round, so that load from other processes affects all three alike.
const ROUNDS: u32 = 40;

/// Operations timed in one round.
const PER_ROUND: u32 = 50;

/// Node hashes of an inclusion proof in a tree of a million leaves (ceil(log2(10^6))).
const PROOF_HASHES: u32 = 20;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let [bundle_path, trust_path] = args.as_slice() else {
        eprintln!("usage: cargo bench --bench verify -- BUNDLE TRUST");
        std::process::exit(2);
    };
    let bundle = std::fs::read(bundle_path).expect("read the bundle");
    let trust_text = std::fs::read_to_string(trust_path).expect("read the trust file");
    let trust = Trust::parse(&trust_text, trust_path).expect("parse the trust file");
    let options = VerifyOptions::default();

    let report = verify_bundle_bytes_with(&bundle, &trust, &options);
    assert!(report.passed(), "the bundle does not verify:\n{report}");
    let signatures = ed25519_verifications(&bundle, &trust);
    let document_len = document_len(&bundle);

    // The floor's parts: one strict Ed25519 verification, and the hashing.
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [0x42u8; 128];
    let signature = key.sign(&message);
    let public = key.verifying_key();
    let document = vec![0x20u8; document_len];

    let mut verify_us = f64::INFINITY;
    let mut ed25519_us = f64::INFINITY;
    let mut hashing_us = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..PER_ROUND {
            std::hint::black_box(verify_bundle_bytes_with(&bundle, &trust, &options));
        }
        verify_us = verify_us.min(micros(start));

        let start = Instant::now();
        for _ in 0..PER_ROUND {
            public
                .verify_strict(std::hint::black_box(&message), &signature)
                .expect("valid signature");
        }
        ed25519_us = ed25519_us.min(micros(start));

        let start = Instant::now();
        for _ in 0..PER_ROUND {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&document)));
            for _ in 0..PROOF_HASHES {
                std::hint::black_box(Sha256::digest(std::hint::black_box([1u8; 65])));
            }
        }
        hashing_us = hashing_us.min(micros(start));
    }

    let floor_us = f64::from(signatures) * ed25519_us + hashing_us;
    println!("| measurement | µs per bundle |");
    println!("| --- | --- |");
    println!("| `verify_bundle_bytes_with`, whole bundle | {verify_us:.1} |");
    println!("| one Ed25519 `verify_strict` | {ed25519_us:.1} |");
    println!(
        "| SHA-256 of the document ({document_len} bytes) and {PROOF_HASHES} proof node hashes | {hashing_us:.1} |"
    );
    println!("| floor: {signatures} Ed25519 verifications + hashing | {floor_us:.1} |");
    println!("| ratio verify / floor | {:.2} |", verify_us / floor_us);
}

/// Returns the microseconds per operation of a round that began at `start`.
fn micros(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / f64::from(PER_ROUND)
}

fn bundle_json(bundle: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bundle).expect("the bundle is JSON")
}

fn document_len(bundle: &[u8]) -> usize {
    let text = bundle_json(bundle)["document"]
        .as_str()
        .map(str::len)
        .unwrap_or_default();
    text / 4 * 3
}

/// Counts the Ed25519 verifications a bundle needs: auditor and operator signatures, the
/// checkpoint's log signature when the trust file pins a log, one per cosignature line of
/// a pinned witness (an upper bound: verification may stop at the quorum), and one per
/// sign-off.
fn ed25519_verifications(bundle: &[u8], trust: &Trust) -> u32 {
    let json = bundle_json(bundle);
    let mut count = 2;
    if trust.log.is_some() {
        count += 1;
        let checkpoint = json["checkpoint"].as_str().unwrap_or_default();
        let signature_lines = checkpoint
            .lines()
            .filter(|line| line.starts_with('\u{2014}'))
            .count() as u32;
        // The first signature line is the log's own.
        count += signature_lines.saturating_sub(1);
    }
    count += json["signoffs"]
        .as_array()
        .map_or(0, |list| list.len() as u32);
    count
}
