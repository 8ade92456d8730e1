//! Inclusion and consistency proofs (RFC 6962, 2.1.1 and 2.1.2; verified per RFC 9162,
//! 2.1.3.2 and 2.1.4.2).

use super::hash::{Hash, empty_root, node_hash, root_from_leaf_hashes, split_point};

/// A failed proof generation or verification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The old tree size is larger than the new tree size.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizesOutOfOrder {
        /// The old tree size.
        old_size: u64,
        /// The new tree size.
        new_size: u64,
    },
    /// The proof has the wrong number of hashes for the sizes and index given.
    #[error("proof has {actual} hashes, but these sizes need {expected}")]
    WrongLength {
        /// Hashes in the proof.
        actual: usize,
        /// Hashes the proof must have.
        expected: usize,
    },
    /// The proof does not lead to the expected root hash.
    #[error("proof does not match the root hash {root}")]
    RootMismatch {
        /// The expected root hash, base64.
        root: Hash,
    },
    /// A hash needed for the proof could not be read.
    #[error("cannot read the hash of leaves {start}..{end}: {reason}")]
    MissingHash {
        /// First leaf of the subtree.
        start: u64,
        /// One past the last leaf of the subtree.
        end: u64,
        /// Why the hash is not available.
        reason: String,
    },
}

/// A source of the hashes of complete subtrees, such as an in-memory tree or a tile store.
pub trait SubtreeHashes {
    /// Returns the hash of the complete subtree of `2^level` leaves that starts at leaf
    /// `index << level`.
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, ProofError>;
}

/// Leaf hashes held in memory, for small trees and tests.
#[derive(Debug, Clone, Copy)]
pub struct LeafHashes<'a>(pub &'a [Hash]);

impl SubtreeHashes for LeafHashes<'_> {
    fn subtree_hash(&self, level: u8, index: u64) -> Result<Hash, ProofError> {
        let width = 1u64 << level;
        let start = index << level;
        let end = start + width;
        let leaves = usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(start, end)| self.0.get(start..end))
            .ok_or_else(|| ProofError::MissingHash {
                start,
                end,
                reason: format!("only {} leaves are in memory", self.0.len()),
            })?;
        Ok(root_from_leaf_hashes(leaves))
    }
}

/// Returns the Merkle tree hash of leaves `start..end`, where `start` is a multiple of the
/// largest power of two not above `end - start` (true of every range RFC 6962 proofs use).
pub fn range_hash<S: SubtreeHashes + ?Sized>(
    source: &S,
    start: u64,
    end: u64,
) -> Result<Hash, ProofError> {
    let width = end - start;
    if width == 0 {
        return Ok(empty_root());
    }
    if width.is_power_of_two() && start.is_multiple_of(width) {
        let level = width.trailing_zeros() as u8;
        return source.subtree_hash(level, start >> level);
    }
    let k = split_point(width);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// Returns the root hash of the tree of `size` leaves.
pub fn tree_root<S: SubtreeHashes + ?Sized>(source: &S, size: u64) -> Result<Hash, ProofError> {
    range_hash(source, 0, size)
}

/// Builds the inclusion proof of leaf `index` in the tree of `size` leaves: the audit path
/// of RFC 6962, 2.1.1, from the leaf's sibling up to a child of the root.
pub fn prove_inclusion<S: SubtreeHashes + ?Sized>(
    source: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::new();
    inclusion_path(source, index, 0, size, &mut proof)?;
    Ok(proof)
}

/// Appends PATH(index, D[start:end]) bottom-up; `index` is absolute.
fn inclusion_path<S: SubtreeHashes + ?Sized>(
    source: &S,
    index: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if end - start <= 1 {
        return Ok(());
    }
    let middle = start + split_point(end - start);
    if index < middle {
        inclusion_path(source, index, start, middle, proof)?;
        proof.push(range_hash(source, middle, end)?);
    } else {
        inclusion_path(source, index, middle, end, proof)?;
        proof.push(range_hash(source, start, middle)?);
    }
    Ok(())
}

/// Builds the consistency proof between the trees of `old_size` and `new_size` leaves
/// (RFC 6962, 2.1.2). The proof is empty when the sizes are equal or `old_size` is 0.
pub fn prove_consistency<S: SubtreeHashes + ?Sized>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let mut proof = Vec::new();
    if old_size > 0 {
        consistency_path(source, old_size, 0, new_size, true, &mut proof)?;
    }
    Ok(proof)
}

/// Appends SUBPROOF(old_size - start, D[start:end], whole) bottom-up.
fn consistency_path<S: SubtreeHashes + ?Sized>(
    source: &S,
    old_size: u64,
    start: u64,
    end: u64,
    whole: bool,
    proof: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    if old_size == end {
        // The old tree is this whole subtree: the verifier knows its hash only when it is
        // the complete old tree.
        if !whole {
            proof.push(range_hash(source, start, end)?);
        }
        return Ok(());
    }
    let middle = start + split_point(end - start);
    if old_size <= middle {
        consistency_path(source, old_size, start, middle, whole, proof)?;
        proof.push(range_hash(source, middle, end)?);
    } else {
        consistency_path(source, old_size, middle, end, false, proof)?;
        proof.push(range_hash(source, start, middle)?);
    }
    Ok(())
}

/// Checks that `proof` proves the leaf with hash `leaf` at `index` in the tree of `size`
/// leaves with root hash `root`.
///
/// Checks only the hashes: it does not check that `root` comes from a signed checkpoint.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            actual: proof.len(),
            expected,
        });
    }

    // RFC 9162, 2.1.3.2: walk up from the leaf, with `node` the index of the current node
    // on its level and `last` the index of the last node on that level.
    let mut node = index;
    let mut last = size - 1;
    let mut hash = *leaf;
    for sibling in proof {
        if node & 1 == 1 || node == last {
            hash = node_hash(sibling, &hash);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }

    if last != 0 || hash != *root {
        return Err(ProofError::RootMismatch { root: *root });
    }
    Ok(())
}

/// Checks that `proof` proves the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`.
///
/// An old size of 0 needs an empty proof and the empty-tree root. Checks only the
/// hashes: it does not check that the roots come from signed checkpoints.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength {
            actual: proof.len(),
            expected,
        });
    }
    if old_size == 0 {
        if *old_root != empty_root() {
            return Err(ProofError::RootMismatch { root: *old_root });
        }
        return Ok(());
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(ProofError::RootMismatch { root: *new_root });
        }
        return Ok(());
    }

    // RFC 9162, 2.1.4.2. When the old tree is a complete subtree, its root is the first
    // hash of the path and the proof leaves it out.
    let mut path = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let mut node = old_size - 1;
    let mut last = new_size - 1;
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let mut old_hash = path[0];
    let mut new_hash = path[0];
    for sibling in &path[1..] {
        if last == 0 {
            return Err(ProofError::RootMismatch { root: *new_root });
        }
        if node & 1 == 1 || node == last {
            old_hash = node_hash(sibling, &old_hash);
            new_hash = node_hash(sibling, &new_hash);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_hash = node_hash(&new_hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }

    if old_hash != *old_root {
        return Err(ProofError::RootMismatch { root: *old_root });
    }
    if last != 0 || new_hash != *new_root {
        return Err(ProofError::RootMismatch { root: *new_root });
    }
    Ok(())
}

/// Returns the number of hashes in the inclusion proof of `index` in a tree of `size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // Levels below the point where the paths to `index` and to the last leaf split are
    // full (one sibling each); above it, each set bit of the remaining size adds one.
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Returns the number of hashes in the consistency proof from `old_size` to `new_size`.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size == new_size {
        return 0;
    }
    let inner = u64::BITS - ((old_size - 1) ^ (new_size - 1)).leading_zeros();
    let border = (old_size - 1).checked_shr(inner).unwrap_or(0).count_ones();
    let shift = (old_size.trailing_zeros()).min(inner);
    (inner + border - shift + 1 - u32::from(old_size.is_power_of_two())) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::hash::leaf_hash;
    use proptest::prelude::*;

    // The reference tree, inclusion proofs and consistency proofs below are from
    // transparency-dev/merkle, testonly/constants.go and proof/verify_test.go (Apache-2.0).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    fn h(hex_hash: &str) -> Hash {
        Hash::from_slice(&hex::decode(hex_hash).unwrap()).unwrap()
    }

    fn reference_leaves() -> Vec<Hash> {
        LEAVES
            .iter()
            .map(|leaf| leaf_hash(&hex::decode(leaf).unwrap()))
            .collect()
    }

    fn tree(size: u64) -> Vec<Hash> {
        (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn reference_inclusion_proofs() {
        let leaves = reference_leaves();
        let source = LeafHashes(&leaves);
        // (zero-based index, tree size, audit path)
        let cases: [(u64, u64, Vec<&str>); 5] = [
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                vec![
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                vec!["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                vec![
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, path) in cases {
            let expected: Vec<Hash> = path.iter().map(|hash| h(hash)).collect();
            let proof = prove_inclusion(&source, index, size).unwrap();
            assert_eq!(proof, expected, "index {index} size {size}");
            let root = tree_root(&source, size).unwrap();
            verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
        }
    }

    #[test]
    fn reference_consistency_proofs() {
        let leaves = reference_leaves();
        let source = LeafHashes(&leaves);
        let cases: [(u64, u64, Vec<&str>); 5] = [
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                vec![
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                6,
                7,
                vec![
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (old_size, new_size, path) in cases {
            let expected: Vec<Hash> = path.iter().map(|hash| h(hash)).collect();
            let proof = prove_consistency(&source, old_size, new_size).unwrap();
            assert_eq!(proof, expected, "sizes {old_size} -> {new_size}");
            let old_root = tree_root(&source, old_size).unwrap();
            let new_root = tree_root(&source, new_size).unwrap();
            verify_consistency(old_size, new_size, &proof, &old_root, &new_root).unwrap();
        }
    }

    #[test]
    fn consistency_from_empty_tree() {
        let leaves = tree(3);
        let root = tree_root(&LeafHashes(&leaves), 3).unwrap();
        verify_consistency(0, 3, &[], &empty_root(), &root).unwrap();
        assert!(verify_consistency(0, 3, &[], &root, &root).is_err());
        assert!(verify_consistency(0, 3, &[root], &empty_root(), &root).is_err());
    }

    #[test]
    fn inclusion_rejects_bad_arguments() {
        let leaves = tree(5);
        let source = LeafHashes(&leaves);
        let root = tree_root(&source, 5).unwrap();
        let proof = prove_inclusion(&source, 2, 5).unwrap();
        assert_eq!(
            prove_inclusion(&source, 5, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert!(verify_inclusion(&leaves[2], 3, 5, &proof, &root).is_err());
        assert!(verify_inclusion(&leaves[2], 2, 10, &proof, &root).is_err());
        assert!(verify_inclusion(&leaves[2], 2, 3, &proof, &root).is_err());
        assert!(verify_inclusion(&leaves[3], 2, 5, &proof, &root).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(matches!(
            verify_inclusion(&leaves[2], 2, 5, &longer, &root),
            Err(ProofError::WrongLength { .. })
        ));
    }

    #[test]
    fn consistency_rejects_sizes_out_of_order() {
        let leaves = tree(4);
        let source = LeafHashes(&leaves);
        assert_eq!(
            prove_consistency(&source, 4, 3),
            Err(ProofError::SizesOutOfOrder {
                old_size: 4,
                new_size: 3
            })
        );
    }

    fn flip(proof: &[Hash], position: usize, bit: u8) -> Vec<Hash> {
        let mut changed = proof.to_vec();
        let hash_index = position / 32 % changed.len();
        changed[hash_index].0[position % 32] ^= 1 << bit;
        changed
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_proofs_verify(size in 1u64..700, index_seed: u64, position: usize, bit in 0u8..8) {
            let index = index_seed % size;
            let leaves = tree(size);
            let source = LeafHashes(&leaves);
            let root = tree_root(&source, size).unwrap();
            let proof = prove_inclusion(&source, index, size).unwrap();
            prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root).is_ok());

            if !proof.is_empty() {
                let broken = flip(&proof, position, bit);
                prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &broken, &root).is_err());
            }
            let mut broken_root = root;
            broken_root.0[position % 32] ^= 1 << bit;
            prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &broken_root).is_err());
            let mut broken_leaf = leaves[index as usize];
            broken_leaf.0[position % 32] ^= 1 << bit;
            prop_assert!(verify_inclusion(&broken_leaf, index, size, &proof, &root).is_err());
        }

        #[test]
        fn consistency_proofs_verify(new_size in 1u64..700, old_seed: u64, position: usize, bit in 0u8..8) {
            let old_size = 1 + old_seed % new_size;
            let leaves = tree(new_size);
            let source = LeafHashes(&leaves);
            let old_root = tree_root(&source, old_size).unwrap();
            let new_root = tree_root(&source, new_size).unwrap();
            let proof = prove_consistency(&source, old_size, new_size).unwrap();
            prop_assert!(verify_consistency(old_size, new_size, &proof, &old_root, &new_root).is_ok());

            if !proof.is_empty() {
                let broken = flip(&proof, position, bit);
                prop_assert!(verify_consistency(old_size, new_size, &broken, &old_root, &new_root).is_err());
            }
            let mut broken_old = old_root;
            broken_old.0[position % 32] ^= 1 << bit;
            prop_assert!(verify_consistency(old_size, new_size, &proof, &broken_old, &new_root).is_err());
            let mut broken_new = new_root;
            broken_new.0[position % 32] ^= 1 << bit;
            prop_assert!(verify_consistency(old_size, new_size, &proof, &old_root, &broken_new).is_err());
        }
    }
}
