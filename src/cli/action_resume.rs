//! `run --resume` and `abandon` for quorum-action runbooks.

use anyhow::bail;

use super::quorum::QuorumArgs;
use crate::quorum;
use crate::runbook::{QuorumAction, QuorumRunbook};

/// Continues the interrupted action of `runbook` after a quorum of shares is recovered
/// and the officer confirms.
pub fn resume(runbook: &QuorumRunbook, quorum_args: &QuorumArgs, yes: bool) -> anyhow::Result<u8> {
    quorum::check_resumable(runbook)?;
    let Some(inputs) = quorum_args.inputs()? else {
        bail!(
            "resuming a {} action needs a quorum of custodian shares; nothing was changed\nhint: give one --share and one --identity per custodian",
            runbook.kind()
        );
    };
    let confirm = |what: &str| super::action::confirm(runbook, what, yes);

    match &runbook.action {
        QuorumAction::Retire(retire) => {
            let recovered = crate::shares::combine(&inputs)?;
            confirm("finishes destroying the fleet key on the members above")?;
            let retired = quorum::resume_retire(runbook, retire, &recovered)?;
            super::action::report_retired(&retired);
        }
        QuorumAction::AddMember(add) => {
            let recovered = crate::shares::combine(&inputs)?;
            confirm(
                "finishes initialising the new member's token and copying the fleet key to it",
            )?;
            let added = quorum::resume_add_member(runbook, add, recovered)?;
            eprintln!(
                "token {} initialised and holds the fleet key; new credential set {}",
                added.token_label, added.credential_set
            );
            for path in &added.share_files {
                println!("{}", path.display());
            }
        }
        QuorumAction::RotateCustodians(rotate) => {
            confirm("finishes writing the new share set for the custodians above")?;
            let rotated = quorum::resume_rotate(runbook, rotate, &inputs)?;
            super::action::report_rotated(&rotated);
            for path in &rotated.files {
                println!("{}", path.display());
            }
        }
    }
    Ok(super::EXIT_OK)
}

/// Abandons the interrupted action of `runbook` after the officer confirms.
pub fn abandon(runbook: &QuorumRunbook, quorum_args: &QuorumArgs, yes: bool) -> anyhow::Result<u8> {
    let what = quorum::check_abandon(runbook)?;
    let recovered = quorum_args.recover_with_context()?;
    super::action::confirm(runbook, what, yes)?;
    let report = quorum::abandon(runbook, recovered.as_ref())?;

    for (member, objects) in &report.destroyed {
        eprintln!("member {member}: {objects} fleet key object(s) destroyed");
    }
    if let Some(token) = &report.token_left {
        eprintln!(
            "token {token} stays initialised; only the new share set holds its PINs, so its files were moved aside, not deleted"
        );
    }
    for (from, to) in &report.moved {
        eprintln!("moved aside: {} -> {}", from.display(), to.display());
    }
    for path in &report.removed {
        eprintln!("removed: {}", path.display());
    }
    if !report.moved.is_empty() {
        eprintln!(
            "the moved share files must not be used as the fleet's shares; destroy them once the token is initialised again or wiped"
        );
    }
    eprintln!(
        "action abandoned; the shares it started with stay valid, and the transcript records what was removed"
    );
    Ok(super::EXIT_OK)
}
