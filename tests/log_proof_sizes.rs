//! Inclusion and consistency proofs at the tree sizes where the RFC 6962 tree changes
//! shape: 1, 2, 3, each power of two up to 1024 and the size one past it, for the first,
//! a middle and the last leaf. Roots are checked against a recursive reference.

#![cfg(feature = "ceremony")]

use fleet_ceremony::log::note::TYPE_ED25519;
use fleet_ceremony::log::{
    Hash, Log, SignerKey, leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion,
};

const ORIGIN: &str = "audit.example/fleet-log";

/// 1, 2, 3, then 4, 5, 8, 9, ... 1024, 1025.
fn sizes() -> Vec<u64> {
    let mut sizes = vec![1, 2, 3];
    for exponent in 2..=10 {
        sizes.push(1 << exponent);
        sizes.push((1 << exponent) + 1);
    }
    sizes
}

fn entry(index: u64) -> Vec<u8> {
    format!("fleet bundle {index}").into_bytes()
}

/// A log of `size` entries and the leaf hashes of its entries.
fn log_of(dir: &std::path::Path, size: u64) -> (Log, Vec<Hash>) {
    let signer = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[5u8; 32]).unwrap();
    let mut log = Log::init(dir, ORIGIN, signer).unwrap();
    let mut leaves = Vec::new();
    for index in 0..size {
        log.append(&entry(index)).unwrap();
        leaves.push(leaf_hash(&entry(index)));
    }
    log.checkpoint().unwrap();
    (log, leaves)
}

/// Number of hashes in the audit path of leaf `index` in a tree of `size` leaves.
fn audit_path_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = (index >> inner).count_ones();
    (inner + border) as usize
}

#[test]
fn inclusion_at_shape_changing_sizes() {
    let temp = tempfile::tempdir().unwrap();
    let (log, leaves) = log_of(temp.path(), 1025);
    for size in sizes() {
        let root = root_from_leaf_hashes(&leaves[..size as usize]);
        assert_eq!(log.root_at(size).unwrap(), root, "root of size {size}");
        let mut indexes = vec![0, size / 2, size - 1];
        indexes.dedup();
        for index in indexes {
            let proof = log.prove_inclusion(index, size).unwrap();
            assert_eq!(
                proof.len(),
                audit_path_len(index, size),
                "proof length of {index} in {size}"
            );
            let leaf = &leaves[index as usize];
            verify_inclusion(leaf, index, size, &proof, &root)
                .unwrap_or_else(|error| panic!("leaf {index} of {size}: {error}"));

            // The same proof must fail for another leaf, index, size or root.
            let other_leaf = leaf_hash(b"not in the log");
            assert!(verify_inclusion(&other_leaf, index, size, &proof, &root).is_err());
            if size > 1 {
                let other_index = (index + 1) % size;
                assert!(
                    verify_inclusion(leaf, other_index, size, &proof, &root).is_err(),
                    "index {other_index} accepted for leaf {index} of {size}"
                );
            }
            // In a larger tree whose audit path has another length, the proof fails. (For
            // leaf 0 of 3 and 4 leaves the paths have the same shape, so it would pass.)
            if audit_path_len(index, size + 1) != proof.len() {
                assert!(verify_inclusion(leaf, index, size + 1, &proof, &root).is_err());
            }
            assert!(verify_inclusion(leaf, index, size, &proof, &leaves[0]).is_err() || size == 1);
            assert!(verify_inclusion(leaf, size, size, &proof, &root).is_err());
            if !proof.is_empty() {
                let mut flipped = proof.clone();
                let last = flipped.len() - 1;
                flipped[last].0[31] ^= 1;
                assert!(verify_inclusion(leaf, index, size, &flipped, &root).is_err());
                assert!(verify_inclusion(leaf, index, size, &proof[..last], &root).is_err());
            }
        }
    }
}

#[test]
fn consistency_between_shape_changing_sizes() {
    let temp = tempfile::tempdir().unwrap();
    let (log, leaves) = log_of(temp.path(), 1025);
    let roots: Vec<Hash> = sizes()
        .iter()
        .map(|&size| root_from_leaf_hashes(&leaves[..size as usize]))
        .collect();
    for (old_position, &old) in sizes().iter().enumerate() {
        for (new_position, &new) in sizes().iter().enumerate().skip(old_position) {
            let (old_root, new_root) = (&roots[old_position], &roots[new_position]);
            let proof = log.prove_consistency(old, new).unwrap();
            verify_consistency(old, new, &proof, old_root, new_root)
                .unwrap_or_else(|error| panic!("{old} -> {new}: {error}"));
            if old == new {
                assert!(proof.is_empty(), "{old} -> {new}");
                continue;
            }

            // A changed root or a changed proof hash must fail.
            let mut forked = *old_root;
            forked.0[0] ^= 1;
            assert!(
                verify_consistency(old, new, &proof, &forked, new_root).is_err(),
                "forked old root accepted for {old} -> {new}"
            );
            assert!(verify_consistency(old, new, &proof, old_root, &forked).is_err());
            for position in 0..proof.len() {
                let mut flipped = proof.clone();
                flipped[position].0[5] ^= 0x80;
                assert!(
                    verify_consistency(old, new, &flipped, old_root, new_root).is_err(),
                    "flipped hash {position} accepted for {old} -> {new}"
                );
            }
            // Swapped sizes are rejected.
            assert!(verify_consistency(new, old, &proof, new_root, old_root).is_err());
        }
    }
}
