//! The audit log checks of bundle verification: checkpoint signature, inclusion proof,
//! witness cosignatures and consistency with a checkpoint seen before.

use std::path::PathBuf;

use super::files::Bundle;
use super::log_entry::LogEntry;
use super::log_trust::LogTrust;
use super::trust::Trust;
use super::verify::{Outcome, Report, record};
use crate::log::tile::{CHECKPOINT_FILE, DirTileReader, TileHashes};
use crate::log::{
    Checkpoint, Note, leaf_hash, prove_consistency, verify_consistency, verify_cosignature,
    verify_inclusion,
};

/// Name of the check of the log's signature on the bundle's checkpoint.
pub const CHECK_CHECKPOINT_SIGNATURE: &str = "checkpoint signature";
/// Name of the check of the inclusion proof of the bundle's log entry.
pub const CHECK_INCLUSION_PROOF: &str = "inclusion proof";
/// Name of the check of witness cosignatures against the trust file's quorum.
pub const CHECK_WITNESS_COSIGNATURES: &str = "witness cosignatures";
/// Name of the check that the bundle's checkpoint is consistent with one seen before.
pub const CHECK_LOG_CONSISTENCY: &str = "log consistency";

/// Inputs of verification beyond the bundle and the trust file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// A checkpoint seen before (signed note bytes). When set, the bundle's checkpoint
    /// must be consistent with it: same root at the same size, or a larger tree that
    /// contains it.
    pub since: Option<Vec<u8>>,
    /// A copy of the log directory (tlog-tiles layout) from which to build the
    /// consistency proof from `since` to the bundle's checkpoint.
    pub log_dir: Option<PathBuf>,
}

/// Runs the log checks on a bundle whose signatures already passed. Reports nothing when
/// the trust file pins no log and no earlier checkpoint was given.
pub(super) fn run_log_checks(
    bundle: &Bundle,
    trust: &Trust,
    options: &VerifyOptions,
    report: &mut Report,
) -> Option<()> {
    let Some(log) = &trust.log else {
        if options.since.is_some() {
            let reason = "an earlier checkpoint was given, but the trust file pins no log\nhint: add a log section with the origin and verifier key to the trust file";
            return record::<()>(report, CHECK_LOG_CONSISTENCY, Err(reason.to_owned()));
        }
        return Some(());
    };

    let checkpoint = record(
        report,
        CHECK_CHECKPOINT_SIGNATURE,
        check_checkpoint(bundle, log),
    )?;
    record(
        report,
        CHECK_INCLUSION_PROOF,
        check_inclusion(bundle, &checkpoint),
    )?;
    record(
        report,
        CHECK_WITNESS_COSIGNATURES,
        check_witnesses(bundle, log),
    )?;
    if let Some(since) = &options.since {
        record(
            report,
            CHECK_LOG_CONSISTENCY,
            check_consistency(since, &checkpoint, log, options),
        )?;
    }
    Some(())
}

fn check_checkpoint(bundle: &Bundle, log: &LogTrust) -> Outcome<Checkpoint> {
    let Some(text) = &bundle.checkpoint else {
        return Err(format!(
            "the bundle carries no checkpoint, but the trust file pins log {}\nhint: the auditor's `bundle sign --log` returns the checkpoint and proof",
            log.origin
        ));
    };
    let checkpoint = Checkpoint::open(text.as_bytes(), &log.origin, &log.verifier)
        .map_err(|error| error.to_string())?;
    let detail = format!(
        "signed by {}, tree size {}, root {}",
        log.verifier, checkpoint.size, checkpoint.root
    );
    Ok((checkpoint, detail))
}

/// Checks that the bundle's inclusion proof leads from the bundle's own log entry to the
/// root of its checkpoint, without checking the checkpoint's signature. The ceremony runs
/// this on the proof the auditor returned, whose log key the runbook does not pin.
/// Returns `Ok` for a bundle without a checkpoint.
pub fn check_own_inclusion(bundle: &Bundle) -> Result<(), String> {
    let Some(text) = &bundle.checkpoint else {
        return Ok(());
    };
    let note = Note::parse(text.as_bytes()).map_err(|error| error.to_string())?;
    let checkpoint = Checkpoint::parse_text(note.text()).map_err(|error| error.to_string())?;
    check_inclusion(bundle, &checkpoint).map(|_| ())
}

fn check_inclusion(bundle: &Bundle, checkpoint: &Checkpoint) -> Outcome<()> {
    let Some(proof) = &bundle.inclusion_proof else {
        return Err("the bundle carries a checkpoint but no inclusion proof".to_owned());
    };
    if proof.tree_size != checkpoint.size {
        return Err(format!(
            "the proof is for tree size {} but the checkpoint has tree size {}",
            proof.tree_size, checkpoint.size
        ));
    }
    let hashes = proof.decode_hashes().map_err(|error| error.to_string())?;
    let entry = LogEntry::from_auditor(&bundle.auditor).map_err(|error| error.to_string())?;
    let leaf = leaf_hash(&entry.encode());
    verify_inclusion(
        &leaf,
        proof.index,
        checkpoint.size,
        &hashes,
        &checkpoint.root,
    )
    .map_err(|error| format!("entry {} is not proven in the log: {error}", proof.index))?;
    let detail = format!(
        "entry {} of {}, leaf hash {leaf}",
        proof.index, checkpoint.size
    );
    Ok(((), detail))
}

/// Counts the pinned witnesses with a valid cosignature. Checks signatures only, not how
/// old the cosignature timestamps are.
fn check_witnesses(bundle: &Bundle, log: &LogTrust) -> Outcome<()> {
    if log.quorum == 0 {
        return Ok(((), "the trust file requires no witness".to_owned()));
    }
    let text = bundle.checkpoint.as_deref().unwrap_or_default();
    let note = Note::parse(text.as_bytes()).map_err(|error| error.to_string())?;

    let mut cosigned = Vec::new();
    let mut failed = Vec::new();
    for witness in &log.witnesses {
        match verify_cosignature(&note, witness) {
            Ok(timestamp) => cosigned.push(format!("{} at {timestamp}", witness.name())),
            Err(error) => failed.push(format!("{}: {error}", witness.name())),
        }
    }
    if cosigned.len() < log.quorum {
        return Err(format!(
            "{} of the required {} witnesses cosigned; {}",
            cosigned.len(),
            log.quorum,
            failed.join("; ")
        ));
    }
    let detail = format!(
        "{} of {} pinned witnesses cosigned, quorum {}: {}",
        cosigned.len(),
        log.witnesses.len(),
        log.quorum,
        cosigned.join(", ")
    );
    Ok(((), detail))
}

/// Checks that the bundle's checkpoint and `since` are views of one append-only log.
///
/// At the same tree size the roots must be equal, else the log forked. Otherwise the
/// check needs `options.log_dir`, a copy of the log. The copy's signed checkpoint must be
/// at least as large as both trees, else the copy shows a rolled-back log. Both trees
/// must be prefixes of the copy's tree, else the log forked. So a bundle older than
/// `since` passes when the copy proves that its tree is a prefix of the one seen before.
fn check_consistency(
    since: &[u8],
    checkpoint: &Checkpoint,
    log: &LogTrust,
    options: &VerifyOptions,
) -> Outcome<()> {
    let old = Checkpoint::open(since, &log.origin, &log.verifier)
        .map_err(|error| format!("the earlier checkpoint is not valid for this log: {error}"))?;
    if old.size == checkpoint.size {
        if old.root != checkpoint.root {
            return Err(format!(
                "fork: two checkpoints of tree size {} have different roots, {} seen before and {} in the bundle",
                old.size, old.root, checkpoint.root
            ));
        }
        return Ok(((), format!("same tree as seen before, size {}", old.size)));
    }

    let Some(dir) = &options.log_dir else {
        if old.size > checkpoint.size {
            return Err(format!(
                "rollback or an older bundle: the bundle's checkpoint has tree size {}, smaller than the {} seen before, and without a copy of the log the two cannot be told apart\nhint: pass --log with a copy of the auditor's log",
                checkpoint.size, old.size
            ));
        }
        return Err(format!(
            "the bundle's tree size {} is larger than the {} seen before, and no log directory was given to prove consistency\nhint: pass --log with a copy of the auditor's log",
            checkpoint.size, old.size
        ));
    };

    let path = dir.join(CHECKPOINT_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|error| format!("cannot read the log copy's {}: {error}", path.display()))?;
    let current = Checkpoint::open(&bytes, &log.origin, &log.verifier).map_err(|error| {
        format!(
            "the log copy's checkpoint {} is not valid for this log: {error}",
            path.display()
        )
    })?;
    if current.size < old.size {
        return Err(format!(
            "rollback: the log copy in {} has tree size {}, smaller than the {} seen before",
            dir.display(),
            current.size,
            old.size
        ));
    }
    if current.size < checkpoint.size {
        return Err(format!(
            "the log copy in {} has tree size {}, smaller than the bundle's {}\nhint: pass a newer copy of the auditor's log",
            dir.display(),
            current.size,
            checkpoint.size
        ));
    }

    let reader = DirTileReader::new(dir);
    let tiles = TileHashes::new(&reader, current.size);
    for (tree, name) in [(&old, "seen before"), (checkpoint, "in the bundle")] {
        let fork = |reason: String| {
            format!(
                "fork: the tree of size {} {name} is not a prefix of the log copy's tree of size {}: {reason}",
                tree.size, current.size
            )
        };
        if tree.size == current.size {
            if tree.root != current.root {
                return Err(fork("the roots differ".to_owned()));
            }
            continue;
        }
        let proof = prove_consistency(&tiles, tree.size, current.size).map_err(|error| {
            format!(
                "cannot build a consistency proof from {}: {error}",
                dir.display()
            )
        })?;
        verify_consistency(tree.size, current.size, &proof, &tree.root, &current.root)
            .map_err(|error| fork(error.to_string()))?;
    }

    let detail = if old.size < checkpoint.size {
        format!(
            "tree size {} seen before is a prefix of the bundle's size {} (proved from {}, size {})",
            old.size,
            checkpoint.size,
            dir.display(),
            current.size
        )
    } else {
        format!(
            "an older bundle: its tree size {} is a prefix of the size {} seen before (proved from {}, size {})",
            checkpoint.size,
            old.size,
            dir.display(),
            current.size
        )
    };
    Ok(((), detail))
}
