//! Quorum actions on a deployed fleet: retiring it, adding a member, rotating custodians.
//!
//! Each action runs from its own runbook, needs a quorum of custodian shares, rebuilds the
//! PINs in memory only, and records its steps in its own transcript in a new work folder.

mod abandon;
mod add_member;
mod add_member_resume;
mod progress;
mod retire;
mod retire_evidence;
mod retire_resume;
mod rotate;

use std::path::PathBuf;

use serde_json::Value;

pub use abandon::{QuorumAbandoned, abandon, check_abandon};
pub use add_member::{AddedMember, add_member, check_add_member};
pub use add_member_resume::resume_add_member;
pub use retire::{DestroyedOn, RETIREMENT_JSON, RETIREMENT_MD, Retired, check_retire, retire};
pub use retire_resume::resume_retire;
pub use rotate::{Rotated, check_rotate, resume_rotate, rotate};

use crate::ceremony::preflight::Problem;
use crate::fsutil::WriteError;
use crate::hsm::{HsmError, Library, Token};
use crate::runbook::{Fleet, Member, QuorumRunbook, TokenRef};
use crate::shares::{MemberCredentials, Recovered, ShareError};
use crate::transcript::{Record, Transcript, TranscriptError};

/// Transcript actions of the quorum runbooks.
pub mod action {
    /// First line: the action, its runbook and the credential set used.
    pub const STARTED: &str = "quorum action started";
    /// The fleet key objects on one member were destroyed.
    pub const KEY_DESTROYED: &str = "fleet key destroyed";
    /// A member was checked to hold no object with the fleet key label.
    pub const KEY_ABSENT: &str = "fleet key absence checked";
    /// A new share set was made.
    pub const SPLIT: &str = "credentials split";
    /// One share file was written.
    pub const SHARE_WRITTEN: &str = "share written";
    /// The new member's token was initialised.
    pub const TOKEN_INITIALISED: &str = "token initialised";
    /// The fleet key was copied to the new member.
    pub const KEY_REPLICATED: &str = "fleet key replicated";
    /// Last line of a finished action.
    pub const FINISHED: &str = "quorum action finished";
    /// A later `run --resume` picked up the interrupted action.
    pub const RESUMED: &str = "quorum action resumed";
    /// Fleet key objects that an interrupted copy left without a record were destroyed.
    pub const LEFTOVERS_REMOVED: &str = "unrecorded objects removed";
    /// An output that an interrupted step left unrecorded was moved aside.
    pub const OUTPUT_MOVED: &str = "unrecorded output moved aside";
    /// A share file of the new set was removed by `abandon`.
    pub const SHARE_REMOVED: &str = "share removed";
    /// A share file of the new set was renamed by `abandon`, because it contains PINs of a
    /// token left initialised.
    pub const SHARE_MOVED: &str = "share moved aside";
    /// Last line of an abandoned action.
    pub const ABANDONED: &str = "quorum action abandoned";
}

/// A failed quorum action; each variant says what state the HSMs and outputs are in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// The runbook or environment has problems; nothing was changed.
    #[error("the runbook or the environment has {count} problem(s); nothing was changed")]
    Preflight {
        /// Number of problems.
        count: usize,
    },
    /// The transcript exists, so the action ran or started before.
    #[error(
        "{path} exists: this action ran or started before\nhint: read its transcript; continue an interrupted action with `run --resume`, end it with `abandon`, or start a new action in a new outputs.work_dir"
    )]
    AlreadyStarted {
        /// The transcript.
        path: PathBuf,
    },
    /// The shares do not belong to this fleet or lack a member.
    #[error("the shares given do not fit this runbook: {reason}; nothing was changed")]
    WrongShares {
        /// What does not fit.
        reason: String,
    },
    /// The shares hold PINs of members the runbook does not list, so those members may
    /// hold the fleet key too.
    #[error(
        "the shares given hold PINs of member(s) {} that the runbook does not list; as far as the shares record, they hold the fleet key too; nothing was changed\nhint: list every member whose PINs the shares hold, so that the retirement destroys the fleet key on each",
        members.join(", ")
    )]
    UnlistedMembers {
        /// The members in the shares but not in the runbook.
        members: Vec<String>,
    },
    /// The members hold different public keys under the fleet key label.
    #[error(
        "the members hold different public keys labelled {label:?}: {}; nothing was changed\nhint: every member of a fleet holds the same fleet key; find out which token holds another key before retiring",
        fingerprints.iter().map(|(member, fingerprint)| format!("{member} {fingerprint}")).collect::<Vec<_>>().join(", ")
    )]
    DifferentKeys {
        /// The key label.
        label: String,
        /// Each member with the SHA-256 fingerprint of its public key.
        fingerprints: Vec<(String, String)>,
    },
    /// An HSM operation failed.
    #[error("step \"{step}\" failed for member {member}: {source}")]
    Hsm {
        /// The step.
        step: &'static str,
        /// The member concerned.
        member: String,
        /// The HSM error.
        source: Box<HsmError>,
    },
    /// Objects with the fleet key label are still on a member after destroying them.
    #[error(
        "member {member} still holds {count} object(s) labelled {label:?} after they were destroyed"
    )]
    KeyLeft {
        /// The member.
        member: String,
        /// The key label.
        label: String,
        /// Objects left.
        count: usize,
    },
    /// `run --resume` or `abandon` found no transcript.
    #[error(
        "nothing to resume or abandon: {path} does not exist\nhint: run without --resume to start the action"
    )]
    NotStarted {
        /// The transcript.
        path: PathBuf,
    },
    /// The transcript records the action as abandoned.
    #[error(
        "this action was abandoned, as {path} records; it cannot be resumed or abandoned again\nhint: a new action needs a new outputs.work_dir"
    )]
    Abandoned {
        /// The transcript.
        path: PathBuf,
    },
    /// The transcript records the action as finished.
    #[error("this action is finished, as {path} records; nothing was changed")]
    Finished {
        /// The transcript.
        path: PathBuf,
    },
    /// The transcript and the HSMs or files disagree, so nothing was changed.
    #[error("{transcript}, step \"{step}\": {detail}; nothing was changed\nhint: {hint}")]
    Mismatch {
        /// The transcript.
        transcript: PathBuf,
        /// The transcript action whose state disagrees.
        step: &'static str,
        /// What disagrees.
        detail: String,
        /// The next step for the officer.
        hint: String,
    },
    /// The action cannot be abandoned at this point.
    #[error("cannot abandon this {kind} action: {reason}; nothing was changed\nhint: {hint}")]
    CannotAbandon {
        /// Runbook kind.
        kind: &'static str,
        /// Why not.
        reason: String,
        /// The step to take instead.
        hint: String,
    },
    /// A file could not be read, renamed or removed.
    #[error("cannot access {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Shares could not be combined, split or written.
    #[error(transparent)]
    Shares(#[from] ShareError),
    /// The transcript could not be written.
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// An output could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl QuorumError {
    /// Returns a mapper from an HSM error to a step failure of `member`.
    pub fn hsm(step: &'static str, member: &str) -> impl FnOnce(HsmError) -> QuorumError {
        let member = member.to_owned();
        move |error| QuorumError::Hsm {
            step,
            member,
            source: Box::new(error),
        }
    }
}

/// Appends a record to an action's transcript, then gives tests the chance to stop the
/// process there (see [`crate::fault`]).
fn record(transcript: &mut Transcript, name: &str, details: Value) -> Result<Record, QuorumError> {
    let record = transcript.append(name, details)?;
    crate::fault::kill_point(&format!("record-{}", record.seq));
    Ok(record)
}

/// Returns the `files` list of a split record: custodian, index, path and SHA-256 of each
/// share file, recorded before any is written so that a resumed run can tell a share of
/// this split from any other file.
fn split_files(dir: &std::path::Path, files: &[crate::shares::ShareFile]) -> Value {
    files
        .iter()
        .map(|file| {
            serde_json::json!({
                "custodian": file.custodian,
                "index": file.index,
                "file": dir.join(format!("{}.age", file.custodian)).display().to_string(),
                "sha256": progress::sha256_hex(&file.armored),
            })
        })
        .collect()
}

/// Checks, before any share is decrypted, that `runbook` has a transcript of its own that
/// records neither the end nor the abandonment of the action. A retirement whose end is
/// recorded but whose evidence is missing can still be resumed.
pub fn check_resumable(runbook: &QuorumRunbook) -> Result<(), QuorumError> {
    let (_, progress) = progress::open_unfinished(runbook)?;
    let finished = match &runbook.action {
        crate::runbook::QuorumAction::Retire(retire) => {
            progress.finished && retire_resume::evidence_complete(retire)
        }
        _ => progress.finished,
    };
    if finished {
        return Err(QuorumError::Finished {
            path: runbook.transcript(),
        });
    }
    Ok(())
}

/// Rejects an action whose transcript exists.
fn ensure_not_started(runbook: &QuorumRunbook) -> Result<(), QuorumError> {
    let path = runbook.transcript();
    if path.symlink_metadata().is_ok() {
        return Err(QuorumError::AlreadyStarted { path });
    }
    Ok(())
}

/// Adds a problem when the action's transcript exists.
fn check_not_started(runbook: &QuorumRunbook, problems: &mut Vec<Problem>) {
    if let Err(error) = ensure_not_started(runbook) {
        problems.push(Problem {
            place: "outputs.work_dir".into(),
            message: error.to_string(),
        });
    }
}

/// Checks that the recovered shares are of this fleet and hold PINs for every member.
fn check_shares_fit(
    fleet: &Fleet,
    members: &[Member],
    recovered: &Recovered,
) -> Result<(), QuorumError> {
    if recovered.context.fleet != fleet.id {
        return Err(QuorumError::WrongShares {
            reason: format!(
                "they are of fleet {:?}, but the runbook names fleet {:?}",
                recovered.context.fleet, fleet.id
            ),
        });
    }
    for member in members {
        pins_of(recovered, member)?;
    }
    Ok(())
}

/// Returns the members whose PINs the recovered credentials hold but `members` does not
/// list, in the order the credentials list them.
fn unlisted_members(members: &[Member], recovered: &Recovered) -> Vec<String> {
    recovered
        .credentials
        .members
        .iter()
        .filter(|entry| !members.iter().any(|member| member.name == entry.member))
        .map(|entry| entry.member.clone())
        .collect()
}

/// Fails when the recovered credentials hold PINs of a member that `members` does not list.
fn check_all_listed(members: &[Member], recovered: &Recovered) -> Result<(), QuorumError> {
    let unlisted = unlisted_members(members, recovered);
    if unlisted.is_empty() {
        return Ok(());
    }
    Err(QuorumError::UnlistedMembers { members: unlisted })
}

/// Returns the recovered PINs of `member`, checking the token label recorded with them.
fn pins_of<'a>(
    recovered: &'a Recovered,
    member: &Member,
) -> Result<&'a MemberCredentials, QuorumError> {
    let pins = recovered
        .credentials
        .members
        .iter()
        .find(|entry| entry.member == member.name)
        .ok_or_else(|| QuorumError::WrongShares {
            reason: format!("they hold no PINs for member {}", member.name),
        })?;
    if let TokenRef::Label(label) = &member.token
        && label != &pins.token_label
    {
        return Err(QuorumError::WrongShares {
            reason: format!(
                "they hold PINs of member {} for token {:?}, but the runbook names token {label:?}",
                member.name, pins.token_label
            ),
        });
    }
    Ok(pins)
}

/// Finds a member's token by the runbook's label or serial.
fn find_token(member: &Member) -> Result<Token, HsmError> {
    let library = Library::load(&member.module)?;
    Token::find(&library, &member.token.selector())
}

/// Returns the current time as RFC 3339 UTC text with a `Z`.
fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
