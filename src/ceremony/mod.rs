//! The deployment ceremony: checks before anything changes, the HSM steps, the hand-over
//! to the auditor, and the bundle and evidence once the signatures are back.

mod abandon;
pub mod attestation;
mod deploy;
mod error;
mod evidence_data;
mod finish;
mod meter;
pub mod preflight;
pub mod progress;
mod render;

pub use abandon::{Abandoned, abandon};
pub use deploy::{Deployed, check_resumable, deploy, resume};
pub use error::CeremonyError;
pub use finish::{Outcome, SIGNOFF_DIR, finish};
pub use render::{
    EvidenceFiles, EvidenceInputs, Rerendered, render_evidence, rerender, write_evidence,
};

use crate::runbook::Runbook;
use crate::transcript::Transcript;

/// File name of the auditor's signature in the work folder.
pub const AUDITOR_SIGNATURE_FILE: &str = "auditor-signature.json";

/// File name of the operator's counter-signature in the work folder.
pub const OPERATOR_SIGNATURE_FILE: &str = "operator-signature.json";

/// File name of the bundle in the evidence folder.
pub const BUNDLE_FILE: &str = "bundle.json";

/// File name of the auditor log's checkpoint and inclusion proof, returned by
/// `bundle sign --log` beside the auditor signature.
pub const LOG_PROOF_FILE: &str = "log-proof.json";

/// Transcript action that ends a ceremony.
pub const ACTION_EVIDENCE_WRITTEN: &str = progress::action::EVIDENCE_WRITTEN;

/// Where a ceremony stands, read from its transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// No transcript: nothing has happened yet.
    NotStarted,
    /// The HSM part stopped before the signing request was written.
    Interrupted {
        /// The last action recorded.
        last_action: String,
    },
    /// The signing request is out; the auditor's and operator's signatures are awaited.
    AwaitingSignatures,
    /// Evidence has been written.
    Finished,
    /// The ceremony was abandoned.
    Abandoned,
}

/// Reads the ceremony's stage from its transcript, checking the transcript's hash chain.
pub fn stage(runbook: &Runbook) -> Result<Stage, CeremonyError> {
    let path = runbook.outputs.transcript();
    if !path.exists() {
        return Ok(Stage::NotStarted);
    }
    let transcript = Transcript::open(&path)?;
    let progress = progress::Progress::from_records(transcript.records());
    if progress.abandoned {
        return Ok(Stage::Abandoned);
    }
    if progress.finished {
        return Ok(Stage::Finished);
    }
    if progress.request_written {
        return Ok(Stage::AwaitingSignatures);
    }
    Ok(Stage::Interrupted {
        last_action: progress::Progress::last_action(transcript.records()),
    })
}
