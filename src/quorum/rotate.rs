//! Rotating custodians: a quorum of the current shares is recombined in memory and split
//! again for new custodians or a new threshold. The HSMs and their PINs are not touched.

use std::path::PathBuf;

use serde_json::json;

use super::progress::{
    ShareSetState, expect_credential_set, last_action, open_unfinished, partial_set,
    recorded_files, recorded_share_missing, sha256_hex, share_set_state,
};
use super::{QuorumError, action, check_not_started, ensure_not_started, record, split_files};
use crate::ceremony::preflight::Problem;
use crate::runbook::{Custodians, QuorumRunbook, RotateCustodians};
use crate::shares::{self, CustodianRecipient, Reshared, ShareInput};
use crate::transcript::Transcript;

/// What `rotate` did.
#[derive(Debug)]
pub struct Rotated {
    /// Id of the share set the given shares belonged to.
    pub previous_credential_set: String,
    /// Id of the new share set.
    pub credential_set: String,
    /// The share files written, in custodian order.
    pub files: Vec<PathBuf>,
    /// The members whose PINs the new set holds, as (member, token label): exactly those
    /// of the given shares' set.
    pub members: Vec<(String, String)>,
}

/// Checks a rotate-custodians runbook without changing anything: the transcript and the
/// new share files must not exist. The recipients were checked when the runbook loaded.
pub fn check_rotate(runbook: &QuorumRunbook, rotate: &RotateCustodians) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_not_started(runbook, &mut problems);
    check_share_files_absent(&rotate.custodians, &rotate.shares_dir, &mut problems);
    problems
}

/// Adds a problem for each share file of `custodians` that exists in `dir`.
pub(super) fn check_share_files_absent(
    custodians: &Custodians,
    dir: &std::path::Path,
    problems: &mut Vec<Problem>,
) {
    for person in &custodians.people {
        let path = dir.join(format!("{}.age", person.name));
        if path.symlink_metadata().is_ok() {
            problems.push(Problem {
                place: "outputs.shares_dir".into(),
                message: format!("{} exists; shares are never overwritten", path.display()),
            });
        }
    }
}

/// Returns the custodians as the share splitter takes them.
pub(super) fn recipients(custodians: &Custodians) -> Vec<CustodianRecipient> {
    custodians
        .people
        .iter()
        .map(|person| CustodianRecipient {
            name: person.name.clone(),
            recipient: person.recipient.text.clone(),
        })
        .collect()
}

/// Recombines `inputs` in memory, splits the same PINs under a new credential set id for
/// the runbook's custodians and threshold, writes the new share files and records it.
///
/// The old shares stay valid until they are destroyed, because the PINs in the HSMs do
/// not change. The new set holds the PINs of exactly the members of the given shares'
/// set. This function cannot tell whether a newer set exists, such as one that an
/// add-member action wrote with a new member's PINs, so [`Rotated::members`] lists the
/// members covered.
pub fn rotate(
    runbook: &QuorumRunbook,
    rotate: &RotateCustodians,
    inputs: &[ShareInput],
) -> Result<Rotated, QuorumError> {
    ensure_not_started(runbook)?;
    let problems = check_rotate(runbook, rotate);
    if !problems.is_empty() {
        return Err(QuorumError::Preflight {
            count: problems.len(),
        });
    }
    let reshared = reshare_for(runbook, rotate, inputs)?;

    let mut transcript = Transcript::create(&runbook.transcript())?;
    record(
        &mut transcript,
        action::STARTED,
        json!({
            "kind": runbook.kind(),
            "fleet_id": runbook.fleet.id,
            "runbook_sha256": runbook.sha256(),
            "credential_set": reshared.previous_credential_set,
            "shares_given": inputs.len(),
        }),
    )?;
    write_new_set(rotate, &mut transcript, reshared)
}

/// Recombines `inputs` and splits the PINs again for the runbook's custodians, in memory.
fn reshare_for(
    runbook: &QuorumRunbook,
    rotate: &RotateCustodians,
    inputs: &[ShareInput],
) -> Result<Reshared, QuorumError> {
    let custodians = recipients(&rotate.custodians);
    let reshared = shares::reshare(inputs, &custodians, rotate.custodians.threshold)?;
    if reshared.context.fleet != runbook.fleet.id {
        return Err(QuorumError::WrongShares {
            reason: format!(
                "they are of fleet {:?}, but the runbook names fleet {:?}",
                reshared.context.fleet, runbook.fleet.id
            ),
        });
    }
    Ok(reshared)
}

/// Records the split with the digest of every share file, writes the files, and records
/// each file and the end of the action.
///
/// The split record comes first, so that a resumed run can tell whether a file on disk is
/// a share of this split. The files are written one after another. A process stopped
/// between two of them leaves a partial set that no later split can complete, because
/// shares of different splits do not combine.
fn write_new_set(
    rotate: &RotateCustodians,
    transcript: &mut Transcript,
    reshared: Reshared,
) -> Result<Rotated, QuorumError> {
    let custodians: Vec<&str> = reshared
        .files
        .iter()
        .map(|file| file.custodian.as_str())
        .collect();
    record(
        transcript,
        action::SPLIT,
        json!({
            "previous_credential_set": reshared.previous_credential_set,
            "credential_set": reshared.credential_set,
            "threshold": reshared.threshold,
            "custodians": custodians,
            "members": reshared.members.iter().map(|(member, _)| member).collect::<Vec<_>>(),
            "files": split_files(&rotate.shares_dir, &reshared.files),
        }),
    )?;
    let files = shares::write_share_files(&rotate.shares_dir, &reshared.files)?;
    for (file, path) in reshared.files.iter().zip(&files) {
        record(
            transcript,
            action::SHARE_WRITTEN,
            json!({
                "custodian": file.custodian,
                "index": file.index,
                "file": path.display().to_string(),
                "sha256": sha256_hex(&file.armored),
            }),
        )?;
    }
    record(
        transcript,
        action::FINISHED,
        json!({"credential_set": reshared.credential_set}),
    )?;
    Ok(Rotated {
        previous_credential_set: reshared.previous_credential_set,
        credential_set: reshared.credential_set,
        files,
        members: reshared.members,
    })
}

/// Continues an interrupted rotation with a quorum of the shares it started with.
///
/// What it does depends on the recorded split's files on disk, each compared with the
/// digest the split record holds:
/// - none exists: the split never reached the disk, so the PINs are split again under a
///   new credential set id, and the new split is recorded and written;
/// - all exist: the files that lack a record are recorded, then the end of the action;
/// - some exist: nothing is changed. A new split cannot complete the set, so the action
///   must be abandoned, which removes the partial set, and run again.
///
/// A file at a recorded path with other bytes, or a recorded file that is missing while
/// none of the set exists, also stops it before anything changes.
pub fn resume_rotate(
    runbook: &QuorumRunbook,
    rotate: &RotateCustodians,
    inputs: &[ShareInput],
) -> Result<Rotated, QuorumError> {
    let (mut transcript, progress) = open_unfinished(runbook)?;
    let path = runbook.transcript();
    if progress.finished {
        return Err(QuorumError::Finished { path });
    }
    let reshared = reshare_for(runbook, rotate, inputs)?;
    expect_credential_set(
        &path,
        action::STARTED,
        &reshared.previous_credential_set,
        progress.credential_set.as_deref(),
        "give a quorum of the shares this rotation started with",
    )?;
    let last_action = last_action(&transcript);

    let Some(split) = &progress.split else {
        ensure_targets_free(&path, rotate)?;
        record(
            &mut transcript,
            action::RESUMED,
            json!({"after": last_action, "share_set": "not split yet; splitting now"}),
        )?;
        return write_new_set(rotate, &mut transcript, reshared);
    };
    let files = recorded_files(&path, split)?;
    match share_set_state(&path, files)? {
        ShareSetState::Absent => {
            if !progress.shares_written.is_empty() {
                return Err(recorded_share_missing(&path, &progress.shares_written));
            }
            ensure_targets_free(&path, rotate)?;
            record(
                &mut transcript,
                action::RESUMED,
                json!({"after": last_action, "share_set": "no file of the recorded split was written; splitting again"}),
            )?;
            write_new_set(rotate, &mut transcript, reshared)
        }
        ShareSetState::Partial { present, missing } => Err(partial_set(&path, &present, &missing)),
        ShareSetState::Complete => {
            record(
                &mut transcript,
                action::RESUMED,
                json!({"after": last_action, "share_set": "every file of the recorded split is present"}),
            )?;
            for share in files {
                if progress.shares_written.contains(&share.custodian) {
                    continue;
                }
                record(
                    &mut transcript,
                    action::SHARE_WRITTEN,
                    json!({
                        "custodian": share.custodian,
                        "index": share.index,
                        "file": share.file.display().to_string(),
                        "sha256": share.sha256,
                        "found_after_interruption": true,
                    }),
                )?;
            }
            record(
                &mut transcript,
                action::FINISHED,
                json!({"credential_set": split.credential_set}),
            )?;
            Ok(Rotated {
                previous_credential_set: reshared.previous_credential_set,
                credential_set: split.credential_set.clone(),
                files: files.iter().map(|share| share.file.clone()).collect(),
                members: reshared.members,
            })
        }
    }
}

/// Fails when a share file the runbook names exists, before a new split is written.
fn ensure_targets_free(
    transcript: &std::path::Path,
    rotate: &RotateCustodians,
) -> Result<(), QuorumError> {
    let mut problems = Vec::new();
    check_share_files_absent(&rotate.custodians, &rotate.shares_dir, &mut problems);
    match problems.into_iter().next() {
        None => Ok(()),
        Some(problem) => Err(QuorumError::Mismatch {
            transcript: transcript.to_owned(),
            step: action::SPLIT,
            detail: problem.message,
            hint: "that file is not a share of the recorded split; move it away and resume again"
                .into(),
        }),
    }
}
