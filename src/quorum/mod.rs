//! Quorum actions on a deployed fleet: retiring it, adding a member, rotating custodians.
//!
//! Each action runs from its own runbook, needs a quorum of custodian shares, rebuilds the
//! PINs in memory only, and records its steps in its own transcript in a new work folder.

mod add_member;
mod retire;
mod rotate;

use std::path::PathBuf;

pub use add_member::{AddedMember, add_member, check_add_member};
pub use retire::{RETIREMENT_JSON, RETIREMENT_MD, Retired, check_retire, retire};
pub use rotate::{Rotated, check_rotate, rotate};

use crate::ceremony::preflight::Problem;
use crate::fsutil::WriteError;
use crate::hsm::{HsmError, Library, Token};
use crate::runbook::{Fleet, Member, QuorumRunbook, TokenRef};
use crate::shares::{MemberCredentials, Recovered, ShareError};
use crate::transcript::TranscriptError;

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
    /// Last line: the action finished.
    pub const FINISHED: &str = "quorum action finished";
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
        "{path} exists: this action ran or started before\nhint: read its transcript; a new action needs a new outputs.work_dir"
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
