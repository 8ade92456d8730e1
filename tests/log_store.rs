//! Tile store tests: appends, reopening after a simulated crash, proofs read from tiles,
//! and the appender lock.

#![cfg(feature = "ceremony")]

use std::path::Path;

use fleet_ceremony::log::note::TYPE_ED25519;
use fleet_ceremony::log::{
    Checkpoint, DirTileReader, Hash, Log, SignerKey, StoreError, leaf_hash, root_from_leaf_hashes,
    verify_consistency, verify_inclusion, verify_tiles,
};

const ORIGIN: &str = "audit.example/fleet-log";

fn signer() -> SignerKey {
    SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[9u8; 32]).unwrap()
}

fn entry(run: &str, i: u64) -> Vec<u8> {
    format!("{run} entry {i}").into_bytes()
}

fn open_checkpoint(dir: &Path) -> Checkpoint {
    let bytes = std::fs::read(dir.join("checkpoint")).unwrap();
    Checkpoint::open(&bytes, ORIGIN, signer().verifier()).unwrap()
}

#[test]
fn init_publishes_empty_tree() {
    let temp = tempfile::tempdir().unwrap();
    let log = Log::init(temp.path(), ORIGIN, signer()).unwrap();
    assert_eq!(log.size(), 0);
    let checkpoint = open_checkpoint(temp.path());
    assert_eq!(checkpoint.size, 0);
    assert_eq!(checkpoint.root, fleet_ceremony::log::empty_root());
}

#[test]
fn init_rejects_existing_log() {
    let temp = tempfile::tempdir().unwrap();
    drop(Log::init(temp.path(), ORIGIN, signer()).unwrap());
    assert!(matches!(
        Log::init(temp.path(), ORIGIN, signer()),
        Err(StoreError::AlreadyInitialized { .. })
    ));
}

#[test]
fn second_appender_is_locked_out() {
    let temp = tempfile::tempdir().unwrap();
    let _first = Log::init(temp.path(), ORIGIN, signer()).unwrap();
    assert!(matches!(
        Log::open(temp.path(), ORIGIN, signer()),
        Err(StoreError::Locked { .. })
    ));
}

#[test]
fn open_rejects_other_origin_and_key() {
    let temp = tempfile::tempdir().unwrap();
    drop(Log::init(temp.path(), ORIGIN, signer()).unwrap());
    assert!(matches!(
        Log::open(temp.path(), "other.example/log", signer()),
        Err(StoreError::Checkpoint { .. })
    ));
    let other = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[8u8; 32]).unwrap();
    assert!(matches!(
        Log::open(temp.path(), ORIGIN, other),
        Err(StoreError::Checkpoint { .. })
    ));
}

#[test]
fn appends_across_tile_boundaries() {
    let temp = tempfile::tempdir().unwrap();
    let mut log = Log::init(temp.path(), ORIGIN, signer()).unwrap();
    let mut leaves = Vec::new();
    for i in 0..600 {
        assert_eq!(log.append(&entry("a", i)).unwrap(), i);
        leaves.push(leaf_hash(&entry("a", i)));
    }
    log.checkpoint().unwrap();
    let checkpoint = open_checkpoint(temp.path());
    assert_eq!(checkpoint.size, 600);
    assert_eq!(checkpoint.root, root_from_leaf_hashes(&leaves));
    verify_tiles(&DirTileReader::new(temp.path()), 600, &checkpoint.root).unwrap();

    for path in [
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/88",
        "tile/1/000.p/2",
    ] {
        assert!(temp.path().join(path).is_file(), "{path} missing");
    }
    assert_eq!(log.entry(257).unwrap(), entry("a", 257));

    for (index, size) in [(0, 1), (255, 256), (256, 257), (599, 600), (3, 600)] {
        let proof = log.prove_inclusion(index, size).unwrap();
        let root = root_from_leaf_hashes(&leaves[..size as usize]);
        verify_inclusion(&leaves[index as usize], index, size, &proof, &root).unwrap();
    }
    for (old, new) in [(1, 600), (256, 257), (255, 600), (512, 600), (600, 600)] {
        let proof = log.prove_consistency(old, new).unwrap();
        let old_root = root_from_leaf_hashes(&leaves[..old as usize]);
        let new_root = root_from_leaf_hashes(&leaves[..new as usize]);
        verify_consistency(old, new, &proof, &old_root, &new_root).unwrap();
    }
}

#[test]
fn entry_too_large_rejected() {
    let temp = tempfile::tempdir().unwrap();
    let mut log = Log::init(temp.path(), ORIGIN, signer()).unwrap();
    assert!(matches!(
        log.append(&vec![0u8; 65536]),
        Err(StoreError::EntryTooLarge { len: 65536 })
    ));
    assert_eq!(log.append(&vec![0u8; 65535]).unwrap(), 0);
}

/// Appends in rounds; after each checkpoint it appends more entries and "crashes" (drops
/// the log without publishing, leaving tiles and a stray temporary file behind), then
/// reopens and appends different entries. The tree must stay consistent throughout.
#[test]
fn crash_before_checkpoint_keeps_tree_consistent() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    drop(Log::init(dir, ORIGIN, signer()).unwrap());

    let mut published: Vec<Vec<u8>> = Vec::new();
    let mut previous = open_checkpoint(dir);
    let rounds: [(u64, u64); 5] = [(3, 5), (250, 20), (1, 300), (300, 2), (7, 256)];
    for (round, (kept, lost)) in rounds.into_iter().enumerate() {
        // Entries written to tiles, never published: the process dies before checkpoint().
        let mut log = Log::open(dir, ORIGIN, signer()).unwrap();
        for i in 0..lost {
            log.append(&entry(&format!("lost{round}"), i)).unwrap();
        }
        drop(log);
        std::fs::create_dir_all(dir.join("tile/0")).unwrap();
        std::fs::write(dir.join("tile/0/.tmp-crashed"), b"torn").unwrap();

        // The reopened log continues from the published checkpoint.
        let mut log = Log::open(dir, ORIGIN, signer()).unwrap();
        assert_eq!(log.size(), published.len() as u64);
        for i in 0..kept {
            let data = entry(&format!("kept{round}"), i);
            assert_eq!(log.append(&data).unwrap(), published.len() as u64);
            published.push(data);
        }
        log.checkpoint().unwrap();

        let current = open_checkpoint(dir);
        let leaves: Vec<_> = published.iter().map(|data| leaf_hash(data)).collect();
        assert_eq!(current.size, published.len() as u64);
        assert_eq!(current.root, root_from_leaf_hashes(&leaves));
        verify_tiles(&DirTileReader::new(dir), current.size, &current.root).unwrap();

        let proof = log.prove_consistency(previous.size, current.size).unwrap();
        verify_consistency(
            previous.size,
            current.size,
            &proof,
            &previous.root,
            &current.root,
        )
        .unwrap();
        for (index, data) in published.iter().enumerate() {
            assert_eq!(log.entry(index as u64).unwrap(), *data, "entry {index}");
        }
        previous = current;
    }
}

/// Partial tiles exist only for checkpointed sizes, and a checkpoint deletes those a full
/// tile replaces; proofs for earlier sizes then read the full tiles.
#[test]
fn checkpoint_keeps_only_needed_partial_tiles() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut log = Log::init(dir, ORIGIN, signer()).unwrap();
    let mut leaves = Vec::new();
    fn append(log: &mut Log, leaves: &mut Vec<Hash>, count: u64) {
        for _ in 0..count {
            let data = entry("p", leaves.len() as u64);
            leaves.push(leaf_hash(&data));
            log.append(&data).unwrap();
        }
    }

    append(&mut log, &mut leaves, 100);
    assert!(
        !dir.join("tile/0/000.p/100").exists(),
        "written before the checkpoint"
    );
    log.checkpoint().unwrap();
    assert!(dir.join("tile/0/000.p/100").is_file());
    assert!(dir.join("tile/entries/000.p/100").is_file());

    append(&mut log, &mut leaves, 60);
    log.checkpoint().unwrap();
    assert!(dir.join("tile/0/000.p/160").is_file());
    // Kept: a client may still hold the checkpoint of size 100.
    assert!(dir.join("tile/0/000.p/100").is_file());
    let partials = |path: &str| {
        std::fs::read_dir(dir.join(path))
            .map(|items| items.count())
            .unwrap_or(0)
    };
    assert_eq!(partials("tile/0/000.p"), 2, "one partial per checkpoint");

    append(&mut log, &mut leaves, 300);
    // Tile 000 is full now, but its partials stay until a checkpoint covers it.
    assert!(dir.join("tile/0/000").is_file());
    assert!(dir.join("tile/0/000.p/160").is_file());
    log.checkpoint().unwrap();
    for gone in ["tile/0/000.p", "tile/entries/000.p"] {
        assert!(!dir.join(gone).exists(), "{gone} was not deleted");
    }
    assert!(dir.join("tile/0/001.p/204").is_file());
    assert!(dir.join("tile/1/000.p/1").is_file());

    // Earlier sizes still prove, from the full tiles, through the log and a plain reader.
    let size = leaves.len() as u64;
    for (index, old) in [(0, 100), (99, 100), (150, 160), (459, size)] {
        let root = root_from_leaf_hashes(&leaves[..old as usize]);
        assert_eq!(log.root_at(old).unwrap(), root);
        let proof = log.prove_inclusion(index, old).unwrap();
        verify_inclusion(&leaves[index as usize], index, old, &proof, &root).unwrap();
        verify_tiles(&DirTileReader::new(dir), old, &root).unwrap();
    }
    assert_eq!(log.entry(120).unwrap(), entry("p", 120));
    drop(log);

    // Reopening reads the right edge back from the partial tiles of the checkpoint.
    let mut log = Log::open(dir, ORIGIN, signer()).unwrap();
    assert_eq!(log.size(), size);
    append(&mut log, &mut leaves, 52);
    log.checkpoint().unwrap();
    let checkpoint = open_checkpoint(dir);
    assert_eq!(checkpoint.root, root_from_leaf_hashes(&leaves));
    verify_tiles(&DirTileReader::new(dir), checkpoint.size, &checkpoint.root).unwrap();
    assert!(!dir.join("tile/0/001.p").exists());
    assert!(dir.join("tile/1/000.p/2").is_file());
}

/// An appender killed part-way leaves temporary files and `<N>.p` folders of tiles that
/// became full. Reopening removes those inside the published tree and keeps the partial
/// tiles the published checkpoint and older ones need.
#[test]
fn open_removes_crash_leftovers() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let mut log = Log::init(dir, ORIGIN, signer()).unwrap();
    let mut published = Vec::new();
    for i in 0..600 {
        let data = entry("c", i);
        log.append(&data).unwrap();
        published.push(data);
    }
    log.checkpoint().unwrap();
    drop(log);

    // Leftovers: partial tiles whose full tile is published (one deletion cut off
    // half-way), temporary files, and the full tile 002 of entries never published.
    let removed = [
        "tile/0/000.p",
        "tile/0/001.p",
        "tile/entries/001.p",
        ".tmp-checkpoint",
        "tile/0/.tmp-full",
        "tile/entries/002.p/.tmp-partial",
    ];
    for (path, bytes) in [
        ("tile/0/000.p/100", vec![1u8; 100 * 32]),
        ("tile/0/001.p/5", vec![2u8; 5 * 32]),
        ("tile/0/001.p/.tmp-partial", b"torn".to_vec()),
        ("tile/entries/001.p/7", b"stale".to_vec()),
        (".tmp-checkpoint", b"torn".to_vec()),
        ("tile/0/.tmp-full", b"torn".to_vec()),
        ("tile/entries/002.p/.tmp-partial", b"torn".to_vec()),
        ("tile/0/002", vec![3u8; 256 * 32]),
        ("tile/1/000.p/1", vec![4u8; 32]),
    ] {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // Partial tiles of the published size, one of an earlier size, and full tiles.
    let kept = [
        "checkpoint",
        ".lock",
        "tile/0/000",
        "tile/0/001",
        "tile/0/002",
        "tile/0/002.p/88",
        "tile/1/000.p/1",
        "tile/1/000.p/2",
        "tile/entries/001",
        "tile/entries/002.p/88",
    ];

    let mut log = Log::open(dir, ORIGIN, signer()).unwrap();
    for path in removed {
        assert!(!dir.join(path).exists(), "{path} was not removed");
    }
    for path in kept {
        assert!(dir.join(path).exists(), "{path} was removed");
    }

    let leaves: Vec<_> = published.iter().map(|data| leaf_hash(data)).collect();
    for size in [100, 600] {
        let root = root_from_leaf_hashes(&leaves[..size]);
        verify_tiles(&DirTileReader::new(dir), size as u64, &root).unwrap();
    }

    // Appends fill tile 002 again, replacing the stale full tile.
    for i in 600..800 {
        let data = entry("c", i);
        log.append(&data).unwrap();
        published.push(data);
    }
    log.checkpoint().unwrap();
    let checkpoint = open_checkpoint(dir);
    let leaves: Vec<_> = published.iter().map(|data| leaf_hash(data)).collect();
    assert_eq!(checkpoint.root, root_from_leaf_hashes(&leaves));
    verify_tiles(&DirTileReader::new(dir), checkpoint.size, &checkpoint.root).unwrap();
    assert!(!dir.join("tile/0/002.p").exists());
}
