//! Audit log benchmark: `Log::append` throughput on disk, inclusion proofs read from the
//! tiles of trees up to a million leaves, and checkpoint plus proof verification. Writes
//! the checkpoint, verifier key and proof of the largest tree for the Go comparison
//! program in `benches/go/proofbench`.
//!
//! Run: `cargo bench --bench log -- [OUT_DIR]`. Prints Markdown tables on stdout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleet_ceremony::log::note::TYPE_ED25519;
use fleet_ceremony::log::tile::{TILE_WIDTH, tile_path};
use fleet_ceremony::log::{
    Checkpoint, DirTileReader, Hash, Log, SignerKey, TileHashes, leaf_hash, prove_inclusion,
    root_from_leaf_hashes, tree_root, verify_inclusion,
};

/// Origin line of the benchmark logs.
const ORIGIN: &str = "bench.example.com/log";

/// Bytes per appended entry: about the size of an encoded auditor statement entry.
const ENTRY_LEN: usize = 160;

/// Tree sizes for `Log::append`, which writes and syncs files for every entry.
const APPEND_SIZES: [u64; 2] = [1_000, 10_000];

/// Tree sizes for proofs read from tiles.
const PROOF_SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];

/// Repetitions of each timed proof or verification, to average out timer resolution.
const REPEAT: u32 = 1_000;

fn main() {
    let out = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .map_or_else(
            || std::env::temp_dir().join("fleet-ceremony-log-bench"),
            PathBuf::from,
        );
    std::fs::create_dir_all(&out).expect("create the output folder");
    let signer = SignerKey::generate(ORIGIN, TYPE_ED25519).expect("valid key name");

    bench_append(&out, &signer);
    let largest = bench_proofs(&out);
    bench_verification(&out, &signer, &largest);
}

fn entry(index: u64) -> Vec<u8> {
    let mut bytes = vec![0x5a; ENTRY_LEN];
    bytes[..8].copy_from_slice(&index.to_be_bytes());
    bytes
}

fn per_op(total: Duration, count: u64) -> f64 {
    total.as_secs_f64() * 1e6 / count as f64
}

fn bench_append(out: &Path, signer: &SignerKey) {
    println!(
        "| entries appended | total (s) | per append (µs) | appends per second | files | bytes on disk |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for size in APPEND_SIZES {
        let dir = out.join(format!("append-{size}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut log = Log::init(&dir, ORIGIN, signer.clone()).expect("init the log");
        let start = Instant::now();
        for index in 0..size {
            log.append(&entry(index)).expect("append");
        }
        log.checkpoint().expect("sign a checkpoint");
        let elapsed = start.elapsed();
        let (files, bytes) = disk_usage(&dir);
        println!(
            "| {size} | {:.2} | {:.0} | {:.0} | {files} | {bytes} |",
            elapsed.as_secs_f64(),
            per_op(elapsed, size),
            size as f64 / elapsed.as_secs_f64(),
        );
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!();
}

fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for item in std::fs::read_dir(&folder).expect("read a log folder") {
            let item = item.expect("read a folder entry");
            let meta = item.metadata().expect("read file metadata");
            if meta.is_dir() {
                pending.push(item.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

/// A tree written as hash tiles only, in the tlog-tiles layout that `Log` writes.
struct TileTree {
    dir: PathBuf,
    size: u64,
    root: Hash,
    leaves: Vec<Hash>,
}

/// Writes the hash tiles of a tree of `size` leaves: every full tile, and the partial
/// tile at the right edge of each level. Entry bundles are not written.
fn write_tile_tree(dir: &Path, size: u64) -> TileTree {
    let _ = std::fs::remove_dir_all(dir);
    let leaves: Vec<Hash> = (0..size).map(|index| leaf_hash(&entry(index))).collect();
    let mut level_hashes = leaves.clone();
    let mut level = 0u8;
    while !level_hashes.is_empty() {
        let mut next = Vec::new();
        for (index, chunk) in level_hashes.chunks(TILE_WIDTH as usize).enumerate() {
            let path = dir.join(tile_path(level, index as u64, chunk.len() as u64));
            std::fs::create_dir_all(path.parent().expect("tile paths have a folder"))
                .expect("create a tile folder");
            let bytes: Vec<u8> = chunk.iter().flat_map(|hash| hash.0).collect();
            std::fs::write(&path, bytes).expect("write a tile");
            if chunk.len() as u64 == TILE_WIDTH {
                next.push(root_from_leaf_hashes(chunk));
            }
        }
        level_hashes = next;
        level += 1;
    }
    let root = root_from_leaf_hashes(&leaves);
    TileTree {
        dir: dir.to_owned(),
        size,
        root,
        leaves,
    }
}

/// Times tree roots and inclusion proofs read from tiles; returns the largest tree.
fn bench_proofs(out: &Path) -> TileTree {
    println!(
        "| tree size | write tiles (s) | root from tiles (µs) | inclusion proof, first leaf (µs) | last leaf (µs) | middle leaf (µs) | proof hashes |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut largest = None;
    for size in PROOF_SIZES {
        let start = Instant::now();
        let tree = write_tile_tree(&out.join(format!("tiles-{size}")), size);
        let written = start.elapsed();
        let reader = DirTileReader::new(&tree.dir);
        let hashes = TileHashes::new(&reader, size);

        let start = Instant::now();
        for _ in 0..REPEAT {
            let root = tree_root(&hashes, size).expect("root from tiles");
            assert_eq!(root, tree.root, "tiles and leaves give different roots");
        }
        let root_time = per_op(start.elapsed(), REPEAT.into());

        let mut proof_times = Vec::new();
        let mut proof_len = 0;
        for index in [0, size - 1, size / 2] {
            let start = Instant::now();
            for _ in 0..REPEAT {
                let proof = prove_inclusion(&hashes, index, size).expect("inclusion proof");
                proof_len = proof.len();
                std::hint::black_box(proof);
            }
            proof_times.push(per_op(start.elapsed(), REPEAT.into()));
            let proof = prove_inclusion(&hashes, index, size).expect("inclusion proof");
            verify_inclusion(
                &tree.leaves[index as usize],
                index,
                size,
                &proof,
                &tree.root,
            )
            .expect("the proof verifies");
        }
        println!(
            "| {size} | {:.2} | {root_time:.0} | {:.0} | {:.0} | {:.0} | {proof_len} |",
            written.as_secs_f64(),
            proof_times[0],
            proof_times[1],
            proof_times[2],
        );
        largest = Some(tree);
    }
    println!();
    largest.expect("at least one proof size")
}

/// Times checkpoint opening plus inclusion proof verification, and writes the inputs of
/// the same check for the Go program: `checkpoint`, `verifier.key` and `proof.txt`.
fn bench_verification(out: &Path, signer: &SignerKey, tree: &TileTree) {
    let size = tree.size;
    let index = size / 2;
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        size,
        root: tree.root,
        extensions: Vec::new(),
    };
    let note = checkpoint.sign(signer).expect("sign the checkpoint");
    let reader = DirTileReader::new(&tree.dir);
    let proof = prove_inclusion(&TileHashes::new(&reader, size), index, size).expect("proof");
    let leaf = tree.leaves[index as usize];

    std::fs::write(out.join("checkpoint"), &note).expect("write the checkpoint");
    std::fs::write(out.join("verifier.key"), signer.verifier().to_string())
        .expect("write the verifier key");
    let hashes: Vec<String> = proof.iter().map(Hash::to_base64).collect();
    let line = format!("{index} {size} {} {}\n", leaf.to_base64(), hashes.join(" "));
    std::fs::write(out.join("proof.txt"), line).expect("write the proof");

    let iterations = 10 * REPEAT;
    let start = Instant::now();
    for _ in 0..iterations {
        let opened = Checkpoint::open(&note, ORIGIN, signer.verifier()).expect("checkpoint");
        verify_inclusion(&leaf, index, opened.size, &proof, &opened.root).expect("proof");
    }
    let both = per_op(start.elapsed(), iterations.into());
    let start = Instant::now();
    for _ in 0..iterations {
        verify_inclusion(&leaf, index, size, &proof, &tree.root).expect("proof");
    }
    let proof_only = per_op(start.elapsed(), iterations.into());
    println!("| check (tree of {size}, leaf {index}) | µs per check |");
    println!("| --- | --- |");
    println!("| open checkpoint + verify inclusion proof (Rust) | {both:.1} |");
    println!("| verify inclusion proof only (Rust) | {proof_only:.2} |");
    println!();
    println!("Go inputs written to {}", out.display());
}
