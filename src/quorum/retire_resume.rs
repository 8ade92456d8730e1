//! Resuming an interrupted retirement: members whose destruction the transcript records
//! are checked to hold no fleet key object, the others lose theirs, and the retirement
//! evidence is written if it is missing.

use std::path::{Path, PathBuf};

use cryptoki::object::{Attribute, ObjectClass};
use serde_json::json;

use super::progress::{QuorumProgress, expect_credential_set, last_action, open_unfinished};
use super::retire::{OBJECTS_PER_MEMBER, destroy_on, fingerprint_on, same_key};
use super::retire_evidence::write_evidence;
use super::{
    DestroyedOn, QuorumError, Retired, action, check_shares_fit, find_token, pins_of, record,
    unlisted_members,
};
use crate::hsm::{HsmError, keys};
use crate::runbook::{Member, QuorumRunbook, Retire, TRANSCRIPT_FILE};
use crate::shares::Recovered;
use crate::transcript::Transcript;

/// Step name of the state check, in error messages.
const CHECK_STEP: &str = "check the fleet key state";

/// Continues an interrupted retirement with a quorum of the shares it started with.
///
/// First it checks every member against the transcript, changing nothing. A member whose
/// destruction is recorded must hold no object with the fleet key label. The first member
/// without a record may hold any number up to a deployed member's two, because the run
/// may have stopped between destroying and recording. Every later member must still hold
/// both objects. Evidence files must not exist before the transcript records the end of
/// the action. Then it destroys the fleet key on the members without a record, records
/// the end, and writes the evidence. Evidence files left by a run stopped while writing
/// them are moved aside first.
///
/// The public keys still on the members must all be the fleet key whose fingerprint the
/// transcript records. A transcript started by a version that did not record it gets the
/// fingerprint read now, when a member still has the public key.
///
/// Objects destroyed by the interrupted run but not recorded are not counted, because
/// the transcript is the only record of them. The member they were on is marked in its
/// destruction record and in the evidence as having a count that was not recorded.
///
/// Shares that hold PINs of a member the runbook does not list are not rejected here,
/// unlike in [`retire`](super::retire), because a retirement cannot be abandoned and a
/// new one only starts after this one ends. A retirement started by this version has
/// passed that check already; for an older one, the evidence names those members.
pub fn resume_retire(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: &Recovered,
) -> Result<Retired, QuorumError> {
    let (mut transcript, progress) = open_unfinished(runbook)?;
    let path = runbook.transcript();
    if progress.finished && evidence_complete(retire) {
        return Err(QuorumError::Finished { path });
    }
    expect_credential_set(
        &path,
        action::STARTED,
        &recovered.credential_set_id,
        progress.credential_set.as_deref(),
        "give a quorum of the shares this retirement started with",
    )?;
    check_shares_fit(&runbook.fleet, &retire.members, recovered)?;
    let unlisted = unlisted_members(&retire.members, recovered);
    let found = check_state(&path, retire, recovered, &progress)?;
    let key_fingerprint = fleet_key_fingerprint(&path, retire, &progress, &found)?;
    // The first member without a record and with fewer than a deployed member's objects
    // lost them to the interrupted run, which did not record how many.
    let interrupted = retire
        .members
        .iter()
        .zip(&found)
        .find(|(member, _)| !progress.destroyed.contains_key(&member.name))
        .filter(|(_, state)| state.objects < OBJECTS_PER_MEMBER)
        .map(|(member, _)| member.name.clone());

    let after = last_action(&transcript);
    record(
        &mut transcript,
        action::RESUMED,
        json!({
            "after": after,
            "key_fingerprint": key_fingerprint,
            "members_in_shares_not_listed": unlisted,
        }),
    )?;
    for member in &retire.members {
        if !progress.destroyed.contains_key(&member.name) {
            let count_not_recorded = interrupted.as_deref() == Some(member.name.as_str());
            destroy_on(
                retire,
                member,
                recovered,
                &mut transcript,
                count_not_recorded,
            )?;
        } else if !progress.absent.contains(&member.name) {
            // The state check found no object left on this member.
            record(
                &mut transcript,
                action::KEY_ABSENT,
                json!({"member": member.name, "token": member.token.to_string(), "label": retire.key_label, "objects_left": 0}),
            )?;
        }
    }

    let destroyed = destroyed_per_member(retire, &transcript);
    if !progress.finished {
        record(
            &mut transcript,
            action::FINISHED,
            json!({"objects_destroyed": destroyed.iter().map(|d| d.objects).sum::<usize>()}),
        )?;
    }
    for name in evidence_files() {
        move_aside(&mut transcript, &retire.evidence_dir.join(name))?;
    }

    let retired = Retired {
        destroyed,
        key_fingerprint,
        unlisted_members: unlisted,
        evidence_dir: retire.evidence_dir.clone(),
        transcript_sha256: transcript.digest(),
    };
    write_evidence(runbook, retire, recovered, &retired)?;
    Ok(retired)
}

/// The fleet key objects found on one member when the retirement resumed.
struct MemberState {
    /// Objects labelled with the fleet key label.
    objects: usize,
    /// Fingerprint of the member's public key, when the member still has one.
    fingerprint: Option<String>,
}

/// Returns the fingerprint of the fleet key: the recorded one, which every public key
/// still on a member must match, or else the one those public keys share.
fn fleet_key_fingerprint(
    transcript: &Path,
    retire: &Retire,
    progress: &QuorumProgress,
    found: &[MemberState],
) -> Result<Option<String>, QuorumError> {
    let read: Vec<(String, String)> = retire
        .members
        .iter()
        .zip(found)
        .filter_map(|(member, state)| Some((member.name.clone(), state.fingerprint.clone()?)))
        .collect();
    let Some(recorded) = &progress.key_fingerprint else {
        return same_key(&retire.key_label, read);
    };
    if let Some((member, fingerprint)) = read.iter().find(|(_, fp)| fp != recorded) {
        return Err(QuorumError::Mismatch {
            transcript: transcript.to_owned(),
            step: action::STARTED,
            detail: format!(
                "member {member} holds a public key labelled {:?} with fingerprint {fingerprint}, but the transcript records the fleet key as {recorded}",
                retire.key_label
            ),
            hint: "find out what changed the token since the retirement stopped; list its objects with pkcs11-tool".into(),
        });
    }
    Ok(Some(recorded.clone()))
}

/// Checks each member's fleet key objects and the evidence folder against the transcript.
fn check_state(
    transcript: &Path,
    retire: &Retire,
    recovered: &Recovered,
    progress: &QuorumProgress,
) -> Result<Vec<MemberState>, QuorumError> {
    if !progress.finished
        && let Some(file) = evidence_files()
            .map(|name| retire.evidence_dir.join(name))
            .find(|file| file.symlink_metadata().is_ok())
    {
        return Err(QuorumError::Mismatch {
            transcript: transcript.to_owned(),
            step: action::FINISHED,
            detail: format!(
                "{} exists, but the transcript does not record the end of the retirement, which comes before the evidence",
                file.display()
            ),
            hint: "move that file away, then resume again".into(),
        });
    }

    let mut pending_seen = false;
    let mut states = Vec::new();
    for member in &retire.members {
        let state = read_member(retire, member, recovered)?;
        let objects = state.objects;
        let recorded = progress.destroyed.contains_key(&member.name);
        let (fits, expected) = if recorded {
            (
                objects == 0,
                "none, because the transcript records their destruction",
            )
        } else if !pending_seen {
            pending_seen = true;
            (
                objects <= OBJECTS_PER_MEMBER,
                "at most one private and one public key",
            )
        } else {
            (
                objects == OBJECTS_PER_MEMBER,
                "one private and one public key, because members lose their key in runbook order and an earlier member has no record yet",
            )
        };
        if !fits {
            return Err(QuorumError::Mismatch {
                transcript: transcript.to_owned(),
                step: action::KEY_DESTROYED,
                detail: format!(
                    "member {} (token {}) holds {objects} object(s) labelled {:?}; expected {expected}",
                    member.name, member.token, retire.key_label
                ),
                hint: "find out what changed the token since the retirement stopped; list its objects with pkcs11-tool".into(),
            });
        }
        states.push(state);
    }
    Ok(states)
}

/// Logs in as the user on `member`, counts the objects with the fleet key label, and
/// reads the fingerprint of the public key among them, if there is one.
fn read_member(
    retire: &Retire,
    member: &Member,
    recovered: &Recovered,
) -> Result<MemberState, QuorumError> {
    let token = find_token(member).map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let pins = pins_of(recovered, member)?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let found = keys::find_labelled(&session, &retire.key_label)
        .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let publics = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::Label(retire.key_label.as_bytes().to_vec()),
        ])
        .map_err(|error| HsmError::from_cryptoki(&token.label, CHECK_STEP, error))
        .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let fingerprint = match publics.len() {
        0 => None,
        _ => Some(
            fingerprint_on(&session, &token, &retire.key_label)
                .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?,
        ),
    };
    Ok(MemberState {
        objects: found.len(),
        fingerprint,
    })
}

/// Returns the objects destroyed per runbook member, as the transcript records them.
fn destroyed_per_member(retire: &Retire, transcript: &Transcript) -> Vec<DestroyedOn> {
    let progress = QuorumProgress::from_records(transcript.records());
    retire
        .members
        .iter()
        .map(|member| DestroyedOn {
            member: member.name.clone(),
            objects: progress.destroyed.get(&member.name).copied().unwrap_or(0),
            count_not_recorded: progress.count_not_recorded.contains(&member.name),
        })
        .collect()
}

fn evidence_files() -> impl Iterator<Item = &'static str> {
    [
        TRANSCRIPT_FILE,
        super::RETIREMENT_JSON,
        super::RETIREMENT_MD,
    ]
    .into_iter()
}

pub(super) fn evidence_complete(retire: &Retire) -> bool {
    evidence_files().all(|name| retire.evidence_dir.join(name).exists())
}

/// Renames an evidence file that a run stopped while writing the evidence left behind,
/// and records the rename.
fn move_aside(transcript: &mut Transcript, path: &Path) -> Result<(), QuorumError> {
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    let aside = free_name(path, "interrupted");
    std::fs::rename(path, &aside).map_err(|source| QuorumError::Read {
        path: path.to_owned(),
        source,
    })?;
    record(
        transcript,
        action::OUTPUT_MOVED,
        json!({"file": path.display().to_string(), "moved_to": aside.display().to_string()}),
    )?;
    Ok(())
}

/// Returns a free name `<file>.<suffix>-<n>` next to `path`.
pub(super) fn free_name(path: &Path, suffix: &str) -> PathBuf {
    let mut n = 1;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{suffix}-{n}"));
        let candidate = PathBuf::from(name);
        if candidate.symlink_metadata().is_err() {
            return candidate;
        }
        n += 1;
    }
}
