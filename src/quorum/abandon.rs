//! Abandoning an interrupted quorum action: what it left half made is removed or moved
//! aside, each step is recorded, and the transcript is closed.
//!
//! - `retire` cannot be abandoned, because a destroyed fleet key cannot come back; an
//!   interrupted retirement is finished with `run --resume`.
//! - `add-member` destroys any fleet key copy on the new token. The token stays
//!   initialised, because PKCS#11 cannot delete a token. When that token exists, only the
//!   new share files hold its PINs, so they are renamed to `<custodian>.age.abandoned-<n>`
//!   rather than deleted: the SO PIN in them is needed to initialise the token again.
//!   When no token exists, the new share files hold no PIN that any token uses beyond the
//!   old ones, so they are removed.
//! - `rotate-custodians` removes the new share files, which hold the same PINs as the
//!   shares the rotation started with.
//!
//! Only files whose bytes match the digests of the split record are renamed or removed.
//! The old shares stay valid in every case.

use std::path::PathBuf;

use serde_json::json;

use super::add_member::new_token_label;
use super::add_member_resume::find_new_token;
use super::progress::{
    QuorumProgress, RecordedShare, ShareSetState, expect_credential_set, open_unfinished,
    recorded_files, share_set_state,
};
use super::retire_resume::free_name;
use super::{QuorumError, action, record};
use crate::hsm::{HsmError, Token, keys};
use crate::runbook::{AddMember, QuorumAction, QuorumRunbook};
use crate::shares::Recovered;
use crate::transcript::Transcript;

/// Report of an `abandon` of a quorum action.
#[derive(Debug, Default)]
pub struct QuorumAbandoned {
    /// Members whose fleet key objects were destroyed, with the number of objects.
    pub destroyed: Vec<(String, usize)>,
    /// Token left initialised, by label.
    pub token_left: Option<String>,
    /// Share files removed.
    pub removed: Vec<PathBuf>,
    /// Share files renamed, as (old path, new path).
    pub moved: Vec<(PathBuf, PathBuf)>,
}

/// Checks, before anything is confirmed or decrypted, that the action of `runbook` can be
/// abandoned, and returns what abandoning it does, for the confirmation prompt.
pub fn check_abandon(runbook: &QuorumRunbook) -> Result<&'static str, QuorumError> {
    let (_, progress) = open_unfinished(runbook)?;
    check_abandonable(runbook, &progress)?;
    Ok(match runbook.action {
        QuorumAction::Retire(_) => "ends the retirement",
        QuorumAction::AddMember(_) => {
            "destroys the fleet key copy on the new member's token and ends the action"
        }
        QuorumAction::RotateCustodians(_) => {
            "removes the new share files of this rotation and ends it"
        }
    })
}

fn check_abandonable(
    runbook: &QuorumRunbook,
    progress: &QuorumProgress,
) -> Result<(), QuorumError> {
    if let QuorumAction::Retire(_) = runbook.action {
        let destroyed: Vec<&str> = progress.destroyed.keys().map(String::as_str).collect();
        let done = if destroyed.is_empty() {
            "the run may have destroyed the key on the first member before it could record it"
                .to_owned()
        } else {
            format!(
                "the transcript records the key destroyed on {}",
                destroyed.join(", ")
            )
        };
        return Err(QuorumError::CannotAbandon {
            kind: runbook.kind(),
            reason: format!("a destroyed fleet key cannot come back, and {done}"),
            hint: "finish the retirement with `fleet-ceremony run RUNBOOK --resume` and a quorum of the shares".into(),
        });
    }
    if progress.finished {
        return Err(QuorumError::CannotAbandon {
            kind: runbook.kind(),
            reason: format!(
                "{} records that it finished",
                runbook.transcript().display()
            ),
            hint: "a finished action is undone by a new action, such as retiring a member or rotating the custodians again".into(),
        });
    }
    Ok(())
}

/// Abandons the interrupted action of `runbook` and records it. `recovered` is needed
/// only for an add-member action whose new token exists: a quorum of the new shares,
/// which alone hold that token's PINs.
///
/// Checks everything it can before the first change: that the action can be abandoned,
/// that each share file on disk matches the split record, and that the new token accepts
/// the new user PIN.
pub fn abandon(
    runbook: &QuorumRunbook,
    recovered: Option<&Recovered>,
) -> Result<QuorumAbandoned, QuorumError> {
    let (mut transcript, progress) = open_unfinished(runbook)?;
    check_abandonable(runbook, &progress)?;
    let present = present_shares(&transcript, &progress)?;
    let mut report = QuorumAbandoned::default();

    match &runbook.action {
        QuorumAction::AddMember(add) => {
            let token = find_new_token(add)?;
            match token {
                Some(token) => {
                    destroy_copy(
                        add,
                        &mut transcript,
                        &progress,
                        recovered,
                        &token,
                        &mut report,
                    )?;
                    for share in &present {
                        let aside = free_name(&share.file, "abandoned");
                        rename(&share.file, &aside)?;
                        record(
                            &mut transcript,
                            action::SHARE_MOVED,
                            json!({
                                "custodian": share.custodian,
                                "file": share.file.display().to_string(),
                                "moved_to": aside.display().to_string(),
                                "reason": "the share holds the PINs of the new token, which stays initialised",
                            }),
                        )?;
                        report.moved.push((share.file.clone(), aside));
                    }
                    report.token_left = Some(token.label.clone());
                }
                None => remove_shares(&mut transcript, &present, &mut report)?,
            }
        }
        // A retirement never gets here, and records no split, so it has no share files.
        QuorumAction::RotateCustodians(_) | QuorumAction::Retire(_) => {
            remove_shares(&mut transcript, &present, &mut report)?;
        }
    }

    record(
        &mut transcript,
        action::ABANDONED,
        json!({
            "token_left_initialised": report.token_left,
            "shares_removed": report.removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "shares_moved_aside": report.moved.iter().map(|(_, to)| to.display().to_string()).collect::<Vec<_>>(),
            "old_shares": "still valid: the PINs of the old members did not change",
        }),
    )?;
    Ok(report)
}

/// Returns the share files of the recorded split that are on disk, after checking that
/// each has the recorded bytes.
fn present_shares(
    transcript: &Transcript,
    progress: &QuorumProgress,
) -> Result<Vec<RecordedShare>, QuorumError> {
    let Some(split) = &progress.split else {
        return Ok(Vec::new());
    };
    let files = recorded_files(transcript.path(), split)?;
    Ok(match share_set_state(transcript.path(), files)? {
        ShareSetState::Absent => Vec::new(),
        ShareSetState::Partial { present, .. } => present,
        ShareSetState::Complete => files.to_vec(),
    })
}

fn remove_shares(
    transcript: &mut Transcript,
    present: &[RecordedShare],
    report: &mut QuorumAbandoned,
) -> Result<(), QuorumError> {
    for share in present {
        std::fs::remove_file(&share.file).map_err(|source| QuorumError::Read {
            path: share.file.clone(),
            source,
        })?;
        tracing::info!(file = %share.file.display(), "removed a share file of the abandoned split");
        record(
            transcript,
            action::SHARE_REMOVED,
            json!({
                "custodian": share.custodian,
                "file": share.file.display().to_string(),
                "sha256": share.sha256,
            }),
        )?;
        report.removed.push(share.file.clone());
    }
    Ok(())
}

fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<(), QuorumError> {
    std::fs::rename(from, to).map_err(|source| QuorumError::Read {
        path: from.to_owned(),
        source,
    })
}

/// Destroys every object with the fleet key label on the new token and records it.
fn destroy_copy(
    add: &AddMember,
    transcript: &mut Transcript,
    progress: &QuorumProgress,
    recovered: Option<&Recovered>,
    token: &Token,
    report: &mut QuorumAbandoned,
) -> Result<(), QuorumError> {
    let path = transcript.path().to_owned();
    let new = &add.new_member.name;

    let Some(split) = &progress.split else {
        return Err(QuorumError::Mismatch {
            transcript: path,
            step: action::SPLIT,
            detail: format!(
                "token {:?} exists, but the transcript records no new share set that would hold its PINs",
                new_token_label(add)
            ),
            hint: "this action did not initialise that token; leave it alone".into(),
        });
    };

    let Some(recovered) = recovered else {
        return Err(QuorumError::CannotAbandon {
            kind: crate::runbook::KIND_ADD_MEMBER,
            reason: format!(
                "token {:?} exists, and only the new share set holds its PINs",
                token.label
            ),
            hint: format!(
                "give a quorum of the new shares in {} with --share FILE --identity FILE",
                add.shares_dir.display()
            ),
        });
    };
    expect_credential_set(
        &path,
        action::SPLIT,
        &recovered.credential_set_id,
        Some(&split.credential_set),
        &format!(
            "give a quorum of the new shares in {}, which hold the new token's PINs",
            add.shares_dir.display()
        ),
    )?;

    if !token.user_pin_initialised {
        // A token without a user PIN has no user objects, so it contains no key copy.
        return Ok(());
    }

    let pins = super::add_member::new_member_pins(add, &recovered.credentials)?;
    let step = "destroy the fleet key copy";
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(step, new))?;
    let found =
        keys::find_labelled(&session, &add.key_label).map_err(QuorumError::hsm(step, new))?;
    for handle in &found {
        session
            .destroy_object(*handle)
            .map_err(|error| HsmError::from_cryptoki(&token.label, step, error))
            .map_err(QuorumError::hsm(step, new))?;
    }
    record(
        transcript,
        action::KEY_DESTROYED,
        json!({"member": new, "token_label": token.label, "label": add.key_label, "objects": found.len()}),
    )?;
    report.destroyed.push((new.clone(), found.len()));
    Ok(())
}
