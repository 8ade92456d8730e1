//! Resuming an interrupted add-member action from its transcript, after checking the new
//! share files and the new member's token against it.

use std::path::{Path, PathBuf};

use cryptoki::object::ObjectClass;
use serde_json::json;

use super::add_member::{
    copy_and_record, initialise_new_token, new_member_pins, new_share_set, new_token_label,
    recovered_source_pins, write_new_set,
};
use super::progress::{
    QuorumProgress, RecordedShare, RecordedSplit, ShareSetState, expect_credential_set,
    last_action, open_unfinished, partial_set, recorded_files, recorded_share_missing,
    share_set_state,
};
use super::rotate::check_share_files_absent;
use super::{AddedMember, QuorumError, action, check_shares_fit, find_token, record};
use crate::hsm::replicate::{self, Side};
use crate::hsm::{HsmError, KeyAlgorithm, Library, Token, TokenSelector, keys};
use crate::runbook::{AddMember, QuorumRunbook};
use crate::shares::{CredentialSet, Recovered};
use crate::transcript::Transcript;

/// Step name of the state checks, in error messages.
const CHECK_STEP: &str = "check the new member's token";

/// Continues an interrupted add-member action.
///
/// Which shares it needs depends on how far the run got. Before the new share set is
/// complete on disk, no token uses the new member's PINs. With no file of the recorded
/// split on disk, it takes a quorum of the shares the action started with and splits
/// again. Once every new share file exists, the new member's PINs are only in the new
/// set, so it takes a quorum of the new shares. A partial set stops it: another split
/// cannot complete it, and the action must be abandoned.
///
/// With the new shares it checks, before changing anything, that each share file has the
/// recorded digest. It also checks that a recorded token has the recorded serial and
/// accepts the new user PIN, and that a recorded copy of the fleet key signs a challenge
/// that the source's public key verifies. Then it records the share files that lack a
/// record. It initialises the token, or sets the user PIN of a token the interrupted run
/// initialised without recording, and destroys fleet key objects on the new token that no
/// record covers. Last, it copies the key again, checks the copy and records the end.
pub fn resume_add_member(
    runbook: &QuorumRunbook,
    add: &AddMember,
    recovered: Recovered,
) -> Result<AddedMember, QuorumError> {
    let (mut transcript, progress) = open_unfinished(runbook)?;
    let path = runbook.transcript();
    if progress.finished {
        return Err(QuorumError::Finished { path });
    }
    let found = find_new_token(add)?;
    let state = match &progress.split {
        Some(split) => Some((
            split,
            share_set_state(&path, recorded_files(&path, split)?)?,
        )),
        None => None,
    };

    match state {
        None | Some((_, ShareSetState::Absent)) => {
            split_again(runbook, add, recovered, &mut transcript, &progress, found)
        }
        Some((_, ShareSetState::Partial { present, missing })) => {
            Err(partial_set(&path, &present, &missing))
        }
        Some((split, ShareSetState::Complete)) => {
            continue_with_new_set(add, recovered, &mut transcript, &progress, split, found)
        }
    }
}

/// Runs the whole action again from the split, with the shares it started with, when no
/// file of the recorded split reached the disk.
fn split_again(
    runbook: &QuorumRunbook,
    add: &AddMember,
    recovered: Recovered,
    transcript: &mut Transcript,
    progress: &QuorumProgress,
    found: Option<Token>,
) -> Result<AddedMember, QuorumError> {
    let path = transcript.path().to_owned();
    if !progress.shares_written.is_empty() {
        return Err(recorded_share_missing(&path, &progress.shares_written));
    }
    if let Some(token) = found {
        return Err(QuorumError::Mismatch {
            transcript: path,
            step: action::SPLIT,
            detail: format!(
                "token {:?} (serial {}) exists, but no file of the new share set, which would hold its PINs, was written",
                token.label, token.serial
            ),
            hint: "this action did not initialise that token; give the new member another token label in a new runbook and outputs.work_dir".into(),
        });
    }
    expect_credential_set(
        &path,
        action::STARTED,
        &recovered.credential_set_id,
        progress.credential_set.as_deref(),
        "no new share was written yet, so give a quorum of the shares this action started with",
    )?;
    check_shares_fit(&runbook.fleet, &add.members, &recovered)?;
    let mut problems = Vec::new();
    check_share_files_absent(&add.custodians, &add.shares_dir, &mut problems);
    if let Some(problem) = problems.into_iter().next() {
        return Err(QuorumError::Mismatch {
            transcript: path,
            step: action::SPLIT,
            detail: problem.message,
            hint: "that file is not a share of the recorded split; move it away and resume again"
                .into(),
        });
    }

    let after = last_action(transcript);
    record(
        transcript,
        action::RESUMED,
        json!({"after": after, "share_set": "no file of the recorded split was written; splitting again"}),
    )?;
    let previous_set = recovered.credential_set_id.clone();
    let (credentials, files) = new_share_set(add, recovered)?;
    let share_files = write_new_set(add, transcript, &previous_set, &credentials, &files)?;
    let token = initialise_new_token(add, transcript, &credentials)?;
    copy_and_record(add, transcript, &credentials, &token)?;
    finish(add, transcript, &credentials, share_files, token)
}

/// The new member's token as the state check found it.
enum TokenState {
    /// Recorded, with the recorded serial.
    Recorded(Token),
    /// Initialised by the interrupted run without a record.
    Unrecorded(Token),
    /// Not initialised yet.
    Missing,
}

/// Continues with a quorum of the new shares once every new share file is on disk.
fn continue_with_new_set(
    add: &AddMember,
    recovered: Recovered,
    transcript: &mut Transcript,
    progress: &QuorumProgress,
    split: &RecordedSplit,
    found: Option<Token>,
) -> Result<AddedMember, QuorumError> {
    let path = transcript.path().to_owned();
    let hint = format!(
        "the new share set in {} is complete and only it holds the new member's PINs; give a quorum of those shares",
        add.shares_dir.display()
    );
    expect_credential_set(
        &path,
        action::SPLIT,
        &recovered.credential_set_id,
        Some(&split.credential_set),
        &hint,
    )?;
    let credentials = recovered.credentials;
    for member in add.members.iter().chain([&add.new_member]) {
        if !credentials.members.iter().any(|m| m.member == member.name) {
            return Err(QuorumError::WrongShares {
                reason: format!("they hold no PINs for member {}", member.name),
            });
        }
    }
    let token = check_token(add, &path, progress, &credentials, found)?;

    // Every check passed; from here on the run changes things.
    let after = last_action(transcript);
    record(
        transcript,
        action::RESUMED,
        json!({"after": after, "share_set": "every file of the recorded split is present"}),
    )?;
    let files = recorded_files(&path, split)?;
    record_missing_shares(transcript, progress, files)?;
    let token = match token {
        TokenState::Recorded(token) => token,
        TokenState::Unrecorded(token) => adopt_token(add, transcript, &credentials, token)?,
        TokenState::Missing => initialise_new_token(add, transcript, &credentials)?,
    };
    if !progress.replicated {
        remove_leftovers(add, transcript, &credentials, &token)?;
        copy_and_record(add, transcript, &credentials, &token)?;
    }
    let share_files = files.iter().map(|share| share.file.clone()).collect();
    finish(add, transcript, &credentials, share_files, token)
}

fn finish(
    add: &AddMember,
    transcript: &mut Transcript,
    credentials: &CredentialSet,
    share_files: Vec<PathBuf>,
    token: Token,
) -> Result<AddedMember, QuorumError> {
    record(
        transcript,
        action::FINISHED,
        json!({"credential_set": credentials.id, "new_member": add.new_member.name}),
    )?;
    Ok(AddedMember {
        credential_set: credentials.id.clone(),
        share_files,
        token_label: token.label,
    })
}

/// Finds the new member's token by its label, or returns `None` when no token has it.
pub(super) fn find_new_token(add: &AddMember) -> Result<Option<Token>, QuorumError> {
    let new = &add.new_member;
    let library = Library::load(&new.module).map_err(QuorumError::hsm(CHECK_STEP, &new.name))?;
    match Token::find(&library, &TokenSelector::Label(new_token_label(add))) {
        Ok(token) => Ok(Some(token)),
        Err(HsmError::TokenNotFound { .. }) => Ok(None),
        Err(error) => Err(QuorumError::hsm(CHECK_STEP, &new.name)(error)),
    }
}

/// Checks the new member's token and any recorded key copy against the transcript,
/// without changing anything.
fn check_token(
    add: &AddMember,
    transcript: &Path,
    progress: &QuorumProgress,
    credentials: &CredentialSet,
    found: Option<Token>,
) -> Result<TokenState, QuorumError> {
    let new = &add.new_member;
    let pins = new_member_pins(add, credentials)?;
    let mismatch = |step, detail: String, hint: &str| QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step,
        detail,
        hint: hint.to_owned(),
    };
    let (token, serial) = match (&progress.token, found) {
        (None, None) => return Ok(TokenState::Missing),
        (None, Some(token)) => {
            // The label was free when the action started, so this token is the one the
            // interrupted run initialised. Its SO PIN from the new shares proves it.
            let so = token
                .login_so(&pins.so_pin)
                .map_err(QuorumError::hsm(CHECK_STEP, &new.name))?;
            so.logout()
                .map_err(|error| HsmError::from_cryptoki(&token.label, "log out", error))
                .map_err(QuorumError::hsm(CHECK_STEP, &new.name))?;
            return Ok(TokenState::Unrecorded(token));
        }
        (Some((_, serial)), None) => {
            return Err(mismatch(
                action::TOKEN_INITIALISED,
                format!(
                    "the transcript records token {:?} (serial {serial}) as initialised, but no token has that label",
                    new_token_label(add)
                ),
                "reconnect the new member's token, then resume again",
            ));
        }
        (Some((_, serial)), Some(token)) => (token, serial.clone()),
    };
    if token.serial != serial {
        return Err(mismatch(
            action::TOKEN_INITIALISED,
            format!(
                "token {:?} has serial {}, but the transcript records serial {serial}",
                token.label, token.serial
            ),
            "connect the token this action initialised, then resume again",
        ));
    }
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(CHECK_STEP, &new.name))?;
    if progress.replicated {
        check_recorded_copy(add, transcript, credentials, &token, &session)?;
    }
    Ok(TokenState::Recorded(token))
}

/// Checks that the recorded copy on the new token is the source's fleet key, by a
/// challenge signed with the copy and verified with the source's public key.
fn check_recorded_copy(
    add: &AddMember,
    transcript: &Path,
    credentials: &CredentialSet,
    token: &Token,
    session: &cryptoki::session::Session,
) -> Result<(), QuorumError> {
    let new = &add.new_member.name;
    let copy = keys::find_one(session, token, &add.key_label, ObjectClass::PRIVATE_KEY).map_err(
        |error| QuorumError::Mismatch {
            transcript: transcript.to_owned(),
            step: action::KEY_REPLICATED,
            detail: format!(
                "the transcript records the fleet key copied to member {new}, but: {error}"
            ),
            hint: "find out what changed the new token; abandon the action if its copy is gone"
                .into(),
        },
    )?;
    let source = add.source_member();
    let source_token = find_token(source).map_err(QuorumError::hsm(CHECK_STEP, &source.name))?;
    let source_session = source_token
        .login_user(&recovered_source_pins(add, credentials)?.user_pin)
        .map_err(QuorumError::hsm(CHECK_STEP, &source.name))?;
    let public_key = keys::find_public_key(
        &source_session,
        &source_token,
        &add.key_label,
        KeyAlgorithm::EcdsaP256,
    )
    .map_err(QuorumError::hsm(CHECK_STEP, &source.name))?;
    let member = Side { token, session };
    replicate::check_copy(&member, &public_key, copy).map_err(|error| QuorumError::Mismatch {
        transcript: transcript.to_owned(),
        step: action::KEY_REPLICATED,
        detail: format!("the copy on member {new} is not the source's fleet key: {error}"),
        hint: "abandon the action, which destroys the copy".into(),
    })
}

fn record_missing_shares(
    transcript: &mut Transcript,
    progress: &QuorumProgress,
    files: &[RecordedShare],
) -> Result<(), QuorumError> {
    for share in files {
        if progress.shares_written.contains(&share.custodian) {
            continue;
        }
        record(
            transcript,
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
    Ok(())
}

/// Sets the user PIN of a token the interrupted run initialised, if it stopped before
/// that, and records the token.
fn adopt_token(
    add: &AddMember,
    transcript: &mut Transcript,
    credentials: &CredentialSet,
    token: Token,
) -> Result<Token, QuorumError> {
    let new = &add.new_member;
    let pins = new_member_pins(add, credentials)?;
    if !token.user_pin_initialised {
        token
            .set_first_user_pin(&pins.so_pin, &pins.user_pin)
            .map_err(QuorumError::hsm("initialise token", &new.name))?;
    }
    record(
        transcript,
        action::TOKEN_INITIALISED,
        json!({
            "member": new.name,
            "token_label": token.label,
            "token_serial": token.serial,
            "found_after_interruption": true,
        }),
    )?;
    Ok(token)
}

/// Destroys objects with the fleet key label on the new token that no record covers,
/// such as a copy made by a run stopped before recording it, and records them.
fn remove_leftovers(
    add: &AddMember,
    transcript: &mut Transcript,
    credentials: &CredentialSet,
    token: &Token,
) -> Result<(), QuorumError> {
    let step = "remove unrecorded objects";
    let new = &add.new_member.name;
    let pins = new_member_pins(add, credentials)?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(step, new))?;
    let found =
        keys::find_labelled(&session, &add.key_label).map_err(QuorumError::hsm(step, new))?;
    if found.is_empty() {
        return Ok(());
    }
    for handle in &found {
        session
            .destroy_object(*handle)
            .map_err(|error| HsmError::from_cryptoki(&token.label, step, error))
            .map_err(QuorumError::hsm(step, new))?;
    }
    session
        .logout()
        .map_err(|error| HsmError::from_cryptoki(&token.label, "log out", error))
        .map_err(QuorumError::hsm(step, new))?;
    record(
        transcript,
        action::LEFTOVERS_REMOVED,
        json!({"member": new, "token_label": token.label, "label": add.key_label, "objects": found.len()}),
    )?;
    Ok(())
}
