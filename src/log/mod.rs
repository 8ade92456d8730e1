//! An append-only transparency log in the C2SP formats: signed notes, checkpoints, tiles,
//! RFC 6962 proofs and witness cosignatures.
//!
//! Everything a verifier needs builds without the `ceremony` feature. The on-disk tile
//! store that the auditor appends to ([`store`]) needs it.

pub mod hash;
pub mod proof;

pub use hash::{HASH_LEN, Hash, empty_root, leaf_hash, node_hash, root_from_leaf_hashes};
pub use proof::{
    LeafHashes, ProofError, SubtreeHashes, prove_consistency, prove_inclusion, range_hash,
    tree_root, verify_consistency, verify_inclusion,
};
pub mod checkpoint;
pub mod cosignature;
pub mod note;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use cosignature::{CosignatureError, cosign, verify_cosignature};
pub use note::{Note, NoteError, NoteSignature, SignerKey, VerifierKey};
pub mod tile;

pub use tile::{DirTileReader, TileError, TileHashes, TileReader, verify_tiles};

#[cfg(feature = "ceremony")]
pub mod store;
#[cfg(feature = "ceremony")]
pub use store::{Log, StoreError};
