//! Errors of a ceremony run, saying which step failed.

use std::path::PathBuf;

use crate::bundle;
use crate::fsutil::WriteError;
use crate::hsm::HsmError;
use crate::shares::ShareError;
use crate::transcript::TranscriptError;

/// A failed ceremony step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CeremonyError {
    /// The checks before the ceremony found problems; nothing was changed.
    #[error("the runbook or the environment has {count} problem(s); nothing was changed")]
    Preflight {
        /// Number of problems found.
        count: usize,
    },
    /// An HSM operation failed during a step.
    #[error("step \"{step}\" failed for member {member}: {source}")]
    Hsm {
        /// The ceremony step.
        step: &'static str,
        /// The member concerned.
        member: String,
        /// The HSM error, boxed because it is much larger than the other variants.
        source: Box<HsmError>,
    },
    /// Shares could not be made or checked.
    #[error("step \"split credentials\" failed: {0}")]
    Shares(#[from] ShareError),
    /// The transcript could not be written or read.
    #[error(transparent)]
    Transcript(#[from] TranscriptError),
    /// An output could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A bundle file is invalid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The assembled bundle failed verification; nothing was published.
    #[error("the assembled bundle failed verification, so no evidence was written:\n{report}")]
    BundleRejected {
        /// The verification report.
        report: bundle::Report,
    },
    /// The ceremony stopped earlier in a state this version cannot resume.
    #[error(
        "an earlier run of this ceremony stopped after \"{last_action}\" (transcript {transcript})\nhint: continue it with `fleet-ceremony run --resume` or remove what it created with `fleet-ceremony abandon`, giving a quorum of custodians' shares to either"
    )]
    Interrupted {
        /// The last action in the transcript.
        last_action: String,
        /// The transcript.
        transcript: PathBuf,
    },
    /// An interrupted ceremony cannot be resumed as asked.
    #[error("cannot resume the ceremony: {reason}")]
    CannotResume {
        /// Why, with a hint where there is a next step.
        reason: String,
    },
    /// An HSM's state differs from what the transcript records.
    #[error(
        "member {member}: {detail}; the transcript and the HSM disagree, so nothing more was changed\nhint: inspect the token with pkcs11-tool before you resume or abandon"
    )]
    StateMismatch {
        /// The member concerned.
        member: String,
        /// What differs.
        detail: String,
    },
    /// The ceremony was abandoned.
    #[error(
        "this ceremony was abandoned (transcript {transcript})\nhint: start a new ceremony in a new work folder, with new token labels"
    )]
    Abandoned {
        /// The transcript.
        transcript: PathBuf,
    },
    /// Resuming or abandoning needs the PINs, which only the custodians' shares hold.
    #[error(
        "this step needs the HSM PINs of the ceremony\nhint: give {threshold} custodians' shares with --share FILE --identity FILE, once per custodian"
    )]
    SharesNeeded {
        /// Shares needed.
        threshold: u8,
    },
    /// The ceremony is already finished.
    #[error("this ceremony is finished; its evidence is in {evidence}")]
    Finished {
        /// The evidence folder.
        evidence: PathBuf,
    },
    /// The officer did not confirm.
    #[error("not confirmed; nothing was changed")]
    NotConfirmed,
}

impl CeremonyError {
    /// Wraps an HSM error with the step and member.
    pub(crate) fn hsm<'a>(
        step: &'static str,
        member: &'a str,
    ) -> impl FnOnce(HsmError) -> Self + 'a {
        move |source| CeremonyError::Hsm {
            step,
            member: member.to_owned(),
            source: Box::new(source),
        }
    }
}
