//! Rotating custodians: a quorum of the current shares is recombined in memory and split
//! again for new custodians or a new threshold. The HSMs and their PINs are not touched.

use std::path::PathBuf;

use serde_json::json;

use super::{QuorumError, action, check_not_started, ensure_not_started};
use crate::ceremony::preflight::Problem;
use crate::runbook::{Custodians, QuorumRunbook, RotateCustodians};
use crate::shares::{self, CustodianRecipient, ShareInput};
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
/// not change.
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

    let mut transcript = Transcript::create(&runbook.transcript())?;
    transcript.append(
        action::STARTED,
        json!({
            "kind": runbook.kind(),
            "fleet_id": runbook.fleet.id,
            "runbook_sha256": runbook.sha256(),
            "credential_set": reshared.previous_credential_set,
            "shares_given": inputs.len(),
        }),
    )?;
    transcript.append(
        action::SPLIT,
        json!({
            "previous_credential_set": reshared.previous_credential_set,
            "credential_set": reshared.credential_set,
            "threshold": reshared.threshold,
            "custodians": custodians.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        }),
    )?;
    let files = shares::write_share_files(&rotate.shares_dir, &reshared.files)?;
    for (file, path) in reshared.files.iter().zip(&files) {
        transcript.append(
            action::SHARE_WRITTEN,
            json!({"custodian": file.custodian, "index": file.index, "file": path.display().to_string()}),
        )?;
    }
    transcript.append(
        action::FINISHED,
        json!({"credential_set": reshared.credential_set}),
    )?;
    Ok(Rotated {
        previous_credential_set: reshared.previous_credential_set,
        credential_set: reshared.credential_set,
        files,
    })
}
