//! The deployment ceremony: checks before anything changes, the HSM steps, the hand-over
//! to the auditor, and the bundle and evidence once the signatures are back.

mod deploy;
mod error;
mod evidence_data;
mod finish;
pub mod preflight;

pub use deploy::deploy;
pub use error::CeremonyError;
pub use finish::{Outcome, finish};

use crate::runbook::Runbook;
use crate::transcript::Transcript;

/// File name of the auditor's signature in the work folder.
pub const AUDITOR_SIGNATURE_FILE: &str = "auditor-signature.json";

/// File name of the operator's counter-signature in the work folder.
pub const OPERATOR_SIGNATURE_FILE: &str = "operator-signature.json";

/// File name of the bundle in the evidence folder.
pub const BUNDLE_FILE: &str = "bundle.json";

/// Transcript action that ends the HSM part of a ceremony.
pub const ACTION_REQUEST_WRITTEN: &str = "signing request written";

/// Transcript action that ends a ceremony.
pub const ACTION_EVIDENCE_WRITTEN: &str = "evidence written";

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
}

/// Reads the ceremony's stage from its transcript, checking the transcript's hash chain.
pub fn stage(runbook: &Runbook) -> Result<Stage, CeremonyError> {
    let path = runbook.outputs.transcript();
    if !path.exists() {
        return Ok(Stage::NotStarted);
    }
    let transcript = Transcript::open(&path)?;
    let actions: Vec<&str> = transcript
        .records()
        .iter()
        .map(|record| record.action.as_str())
        .collect();
    if actions.contains(&ACTION_EVIDENCE_WRITTEN) {
        return Ok(Stage::Finished);
    }
    if actions.contains(&ACTION_REQUEST_WRITTEN) {
        return Ok(Stage::AwaitingSignatures);
    }
    Ok(Stage::Interrupted {
        last_action: actions.last().map_or("none", |a| a).to_owned(),
    })
}
