//! Audit log benchmark: `Log::append` of one million auditor entries on disk, with how
//! throughput, proof time and the auditor's history check grow with the tree, and
//! checkpoint plus proof verification. Writes the checkpoint, verifier key and proof of
//! the full tree for the Go comparison program in `benches/go/proofbench`.
//!
//! Run: `cargo bench --bench log -- [OUT_DIR] [ENTRIES]`. Prints Markdown tables on
//! stdout. ENTRIES defaults to one million; the log takes about 0.5 KB of disk per entry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fleet_ceremony::bundle::{LogEntry, check_append, log_append::read_history};
use fleet_ceremony::log::note::TYPE_ED25519;
use fleet_ceremony::log::{Checkpoint, Hash, Log, SignerKey, leaf_hash, verify_inclusion};
use sha2::{Digest, Sha256};

/// Origin line of the benchmark log.
const ORIGIN: &str = "bench.example.com/log";

/// Entries appended by default.
const DEFAULT_ENTRIES: u64 = 1_000_000;

/// Entries between checkpoints in the large run: an auditor publishing a batch.
const BATCH: u64 = 1_000;

/// Entries in the run that publishes a checkpoint after every entry, as `log append` does.
const SINGLE_RUN: u64 = 1_000;

/// Namespaces the entries are spread over, each with its own epoch sequence.
const NAMESPACES: u64 = 1_000;

/// Repetitions of each timed proof or verification, to average out timer resolution.
const REPEAT: u32 = 1_000;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let out = args.first().map_or_else(
        || std::env::temp_dir().join("fleet-ceremony-log-bench"),
        PathBuf::from,
    );
    let total = args
        .get(1)
        .map(|count| count.parse().expect("ENTRIES is a number"))
        .unwrap_or(DEFAULT_ENTRIES);
    std::fs::create_dir_all(&out).expect("create the output folder");
    let signer = SignerKey::generate(ORIGIN, TYPE_ED25519).expect("valid key name");

    bench_single(&out, &signer);
    let log = bench_batches(&out, &signer, total);
    bench_proofs(&log);
    bench_history(&log);
    bench_verification(&out, &signer, &log);
}

/// The auditor entry number `index`: namespace `index % NAMESPACES`, whose epochs count
/// up from 1, and a digest no other entry has.
fn entry(index: u64) -> Vec<u8> {
    LogEntry {
        namespace: format!("bench.example.com/fleet-{:04}", index % NAMESPACES),
        epoch: index / NAMESPACES + 1,
        digest: Sha256::digest(index.to_be_bytes()).into(),
        timestamp_ms: 1_780_000_000_000 + index,
        ciphersuite: 0x0003,
        auditor_key_id: "5a".repeat(32),
        auditor_signature: [0x42; 64],
    }
    .encode()
}

fn per_op(total: Duration, count: u64) -> f64 {
    total.as_secs_f64() * 1e6 / count as f64
}

/// Times a checkpoint after every append, the store's part of one `log append`.
fn bench_single(out: &Path, signer: &SignerKey) {
    let dir = out.join("single");
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = Log::init(&dir, ORIGIN, signer.clone()).expect("init the log");
    let start = Instant::now();
    for index in 0..SINGLE_RUN {
        log.append(&entry(index)).expect("append");
        log.checkpoint().expect("sign a checkpoint");
    }
    let elapsed = start.elapsed();
    let (files, bytes) = disk_usage(&dir);
    println!("| run | entries | total (s) | per entry (µs) | files | bytes on disk |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| append + checkpoint each | {SINGLE_RUN} | {:.2} | {:.0} | {files} | {bytes} |",
        elapsed.as_secs_f64(),
        per_op(elapsed, SINGLE_RUN),
    );
    println!();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Appends `total` entries with a checkpoint every [`BATCH`], timing each tenth.
fn bench_batches(out: &Path, signer: &SignerKey, total: u64) -> Log {
    let dir = out.join("large");
    let _ = std::fs::remove_dir_all(&dir);
    let mut log = Log::init(&dir, ORIGIN, signer.clone()).expect("init the log");
    let step = (total / 10).max(BATCH);
    println!(
        "| tree size after | appends in step | step time (s) | per append (µs) | appends per second | files | bytes on disk |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let run_start = Instant::now();
    let mut appended = 0;
    while appended < total {
        let end = (appended + step).min(total);
        let start = Instant::now();
        for index in appended..end {
            log.append(&entry(index)).expect("append");
            if (index + 1).is_multiple_of(BATCH) {
                log.checkpoint().expect("sign a checkpoint");
            }
        }
        log.checkpoint().expect("sign a checkpoint");
        let elapsed = start.elapsed();
        let (files, bytes) = disk_usage(&dir);
        println!(
            "| {end} | {} | {:.2} | {:.1} | {:.0} | {files} | {bytes} |",
            end - appended,
            elapsed.as_secs_f64(),
            per_op(elapsed, end - appended),
            (end - appended) as f64 / elapsed.as_secs_f64(),
        );
        appended = end;
    }
    let elapsed = run_start.elapsed();
    println!();
    println!(
        "{total} appends with a checkpoint every {BATCH}: {:.1} s, {:.0} appends per second \
         (the step times exclude counting files).",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
    );
    println!();
    log
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

/// Tree sizes at which proofs are timed: powers of ten up to the log size, and the size.
fn proof_sizes(size: u64) -> Vec<u64> {
    let mut sizes: Vec<u64> = std::iter::successors(Some(1_000u64), |size| size.checked_mul(10))
        .take_while(|candidate| *candidate < size)
        .collect();
    sizes.push(size);
    sizes
}

/// Times roots and inclusion and consistency proofs read from the log's tiles.
fn bench_proofs(log: &Log) {
    println!(
        "| tree size | root from tiles (µs) | inclusion proof, first leaf (µs) | last leaf (µs) | middle leaf (µs) | proof hashes | consistency proof from half (µs) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for size in proof_sizes(log.size()) {
        let root = log.root_at(size).expect("root from tiles");
        let start = Instant::now();
        for _ in 0..REPEAT {
            std::hint::black_box(log.root_at(size).expect("root from tiles"));
        }
        let root_time = per_op(start.elapsed(), REPEAT.into());

        let mut proof_times = Vec::new();
        let mut proof_len = 0;
        for index in [0, size - 1, size / 2] {
            let start = Instant::now();
            for _ in 0..REPEAT {
                std::hint::black_box(log.prove_inclusion(index, size).expect("inclusion proof"));
            }
            proof_times.push(per_op(start.elapsed(), REPEAT.into()));
            let proof = log.prove_inclusion(index, size).expect("inclusion proof");
            proof_len = proof.len();
            verify_inclusion(&leaf_hash(&entry(index)), index, size, &proof, &root)
                .expect("the proof verifies");
        }
        let start = Instant::now();
        for _ in 0..REPEAT {
            std::hint::black_box(
                log.prove_consistency(size / 2, size)
                    .expect("consistency proof"),
            );
        }
        let consistency = per_op(start.elapsed(), REPEAT.into());
        println!(
            "| {size} | {root_time:.0} | {:.0} | {:.0} | {:.0} | {proof_len} | {consistency:.0} |",
            proof_times[0], proof_times[1], proof_times[2],
        );
    }
    println!();
}

/// Times what `log append` does besides appending: read every entry of the log and check
/// the auditor rules for one new entry.
fn bench_history(log: &Log) {
    println!("| tree size | read and parse the history (s) | check one new entry (ms) |");
    println!("| --- | --- | --- |");
    let next = LogEntry::parse(&entry(log.size())).expect("a valid entry");
    for size in proof_sizes(log.size()) {
        let start = Instant::now();
        let entries = log.entries(0, size).expect("read the entries");
        let history: Vec<LogEntry> = entries
            .iter()
            .map(|bytes| LogEntry::parse(bytes).expect("a valid entry"))
            .collect();
        let read = start.elapsed();
        let start = Instant::now();
        if size == log.size() {
            check_append(&history, &next).expect("the next entry follows the rules");
        } else {
            std::hint::black_box(check_append(&history, &next).is_ok());
        }
        let check = start.elapsed();
        println!(
            "| {size} | {:.2} | {:.1} |",
            read.as_secs_f64(),
            check.as_secs_f64() * 1e3
        );
    }
    // The library's own reader agrees with the one timed above.
    assert_eq!(
        read_history(log).expect("read the history").len() as u64,
        log.size()
    );
    println!();
}

/// Times checkpoint opening plus inclusion proof verification, and writes the inputs of
/// the same check for the Go program: `checkpoint`, `verifier.key` and `proof.txt`.
fn bench_verification(out: &Path, signer: &SignerKey, log: &Log) {
    let size = log.size();
    let index = size / 2;
    let checkpoint = Checkpoint {
        origin: ORIGIN.to_owned(),
        size,
        root: log.root().expect("root"),
        extensions: Vec::new(),
    };
    let note = checkpoint.sign(signer).expect("sign the checkpoint");
    let proof = log.prove_inclusion(index, size).expect("proof");
    let leaf = leaf_hash(&entry(index));

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
        verify_inclusion(&leaf, index, size, &proof, &checkpoint.root).expect("proof");
    }
    let proof_only = per_op(start.elapsed(), iterations.into());
    println!("| check (tree of {size}, leaf {index}) | µs per check |");
    println!("| --- | --- |");
    println!("| open checkpoint + verify inclusion proof (Rust) | {both:.1} |");
    println!("| verify inclusion proof only (Rust) | {proof_only:.2} |");
    println!();
    println!("Go inputs written to {}", out.display());
}
