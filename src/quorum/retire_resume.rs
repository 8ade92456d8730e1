//! Resuming an interrupted retirement: members whose destruction the transcript records
//! are checked to hold no fleet key object, the others lose theirs, and the retirement
//! evidence is written if it is missing.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::progress::{QuorumProgress, expect_credential_set, last_action, open_unfinished};
use super::retire::{OBJECTS_PER_MEMBER, destroy_on, write_evidence};
use super::{QuorumError, Retired, action, check_shares_fit, find_token, pins_of, record};
use crate::hsm::keys;
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
/// Objects destroyed by the interrupted run but not recorded are not counted in the
/// evidence, because the transcript is the only record of them.
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
    check_state(&path, retire, recovered, &progress)?;

    let after = last_action(&transcript);
    record(&mut transcript, action::RESUMED, json!({"after": after}))?;
    for member in &retire.members {
        if !progress.destroyed.contains_key(&member.name) {
            destroy_on(retire, member, recovered, &mut transcript)?;
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
            json!({"objects_destroyed": destroyed.iter().map(|(_, n)| n).sum::<usize>()}),
        )?;
    }
    for name in evidence_files() {
        move_aside(&mut transcript, &retire.evidence_dir.join(name))?;
    }

    let transcript_sha256 = transcript.digest();
    write_evidence(runbook, retire, recovered, &destroyed, &transcript_sha256)?;
    Ok(Retired {
        destroyed,
        evidence_dir: retire.evidence_dir.clone(),
        transcript_sha256,
    })
}

/// Checks each member's fleet key objects and the evidence folder against the transcript.
fn check_state(
    transcript: &Path,
    retire: &Retire,
    recovered: &Recovered,
    progress: &QuorumProgress,
) -> Result<(), QuorumError> {
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
    for member in &retire.members {
        let objects = count_objects(retire, member, recovered)?;
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
    }
    Ok(())
}

/// Logs in as the user on `member` and counts the objects with the fleet key label.
fn count_objects(
    retire: &Retire,
    member: &Member,
    recovered: &Recovered,
) -> Result<usize, QuorumError> {
    let token = find_token(member).map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let pins = pins_of(recovered, member)?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    let found = keys::find_labelled(&session, &retire.key_label)
        .map_err(QuorumError::hsm(CHECK_STEP, &member.name))?;
    Ok(found.len())
}

/// Returns the objects destroyed per runbook member, as the transcript records them.
fn destroyed_per_member(retire: &Retire, transcript: &Transcript) -> Vec<(String, usize)> {
    let progress = QuorumProgress::from_records(transcript.records());
    retire
        .members
        .iter()
        .map(|member| {
            let count = progress.destroyed.get(&member.name).copied().unwrap_or(0);
            (member.name.clone(), count)
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
