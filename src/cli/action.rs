//! `check` and `run` for quorum-action runbooks: `retire`, `add-member` and
//! `rotate-custodians`.

use anyhow::bail;

use super::quorum::QuorumArgs;
use crate::ceremony::preflight::Problem;
use crate::quorum::{self, QuorumError};
use crate::runbook::{QuorumAction, QuorumRunbook};

/// Prints what the action would do and every problem found; changes nothing.
pub fn check(runbook: &QuorumRunbook, quorum_args: &QuorumArgs) -> anyhow::Result<u8> {
    print!("{}", plan(runbook));
    let problems = match &runbook.action {
        QuorumAction::Retire(retire) => {
            let recovered = quorum_args.recover_with_context()?;
            note_private_keys(recovered.is_some());
            quorum::check_retire(runbook, retire, recovered.as_ref())
        }
        QuorumAction::AddMember(add) => {
            let recovered = quorum_args.recover_with_context()?;
            note_private_keys(recovered.is_some());
            quorum::check_add_member(runbook, add, recovered.as_ref())
        }
        QuorumAction::RotateCustodians(rotate) => {
            if quorum_args.inputs()?.is_some() {
                bail!("the rotate-custodians check takes no shares; they are combined by `run`");
            }
            quorum::check_rotate(runbook, rotate)
        }
    };
    report(runbook, &problems)?;
    println!("check passed: nothing was changed");
    Ok(super::EXIT_OK)
}

/// Asks the officer to type the fleet id before `what` happens, unless `yes`.
pub(super) fn confirm(runbook: &QuorumRunbook, what: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    super::confirm::confirm(&runbook.fleet.id, what)
}

/// Runs the action, or with `resume` continues an interrupted one, after a quorum of
/// shares is recovered and the officer confirms.
pub fn run(
    runbook: &QuorumRunbook,
    quorum_args: &QuorumArgs,
    yes: bool,
    resume: bool,
) -> anyhow::Result<u8> {
    eprint!("{}", plan(runbook));
    if resume {
        return super::action_resume::resume(runbook, quorum_args, yes);
    }
    let Some(inputs) = quorum_args.inputs()? else {
        bail!(
            "a {} runbook needs a quorum of custodian shares; nothing was changed\nhint: give one --share and one --identity per custodian",
            runbook.kind()
        );
    };

    match &runbook.action {
        QuorumAction::Retire(retire) => {
            let recovered = crate::shares::combine(&inputs)?;
            report(
                runbook,
                &quorum::check_retire(runbook, retire, Some(&recovered)),
            )?;
            confirm(runbook, "destroys the fleet key on every member above", yes)?;
            let retired = quorum::retire(runbook, retire, &recovered)?;
            for (member, objects) in &retired.destroyed {
                eprintln!("member {member}: {objects} fleet key object(s) destroyed, none left");
            }
            eprintln!("transcript SHA-256: {}", retired.transcript_sha256);
            println!("{}", retired.evidence_dir.display());
        }
        QuorumAction::AddMember(add) => {
            let recovered = crate::shares::combine(&inputs)?;
            report(
                runbook,
                &quorum::check_add_member(runbook, add, Some(&recovered)),
            )?;
            confirm(
                runbook,
                "initialises the new member's token and copies the fleet key to it",
                yes,
            )?;
            let added = quorum::add_member(runbook, add, recovered)?;
            eprintln!(
                "token {} initialised and holds the fleet key; new credential set {}",
                added.token_label, added.credential_set
            );
            for path in &added.share_files {
                println!("{}", path.display());
            }
        }
        QuorumAction::RotateCustodians(rotate) => {
            report(runbook, &quorum::check_rotate(runbook, rotate))?;
            confirm(
                runbook,
                "writes a new share set for the custodians above",
                yes,
            )?;
            let rotated = quorum::rotate(runbook, rotate, &inputs)?;
            eprintln!(
                "credential set {} reshared as {}; the old shares still recover the same PINs until destroyed",
                rotated.previous_credential_set, rotated.credential_set
            );
            for path in &rotated.files {
                println!("{}", path.display());
            }
        }
    }
    Ok(super::EXIT_OK)
}

fn note_private_keys(with_shares: bool) {
    if !with_shares {
        eprintln!(
            "note: private keys were not checked, because they are visible only after login; give --share and --identity to check them"
        );
    }
}

fn report(runbook: &QuorumRunbook, problems: &[Problem]) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    for problem in problems {
        eprintln!("problem: {problem}");
    }
    bail!(
        "{}: {}",
        runbook.path.display(),
        QuorumError::Preflight {
            count: problems.len()
        }
    )
}

fn plan(runbook: &QuorumRunbook) -> String {
    let fleet = &runbook.fleet;
    let mut text = format!(
        "{} runbook for fleet {} (namespace {}, epoch {})\n",
        runbook.kind(),
        fleet.id,
        fleet.namespace,
        fleet.epoch
    );
    match &runbook.action {
        QuorumAction::Retire(retire) => {
            text.push_str(&format!("destroy fleet key {:?} on:\n", retire.key_label));
            for member in &retire.members {
                text.push_str(&format!(
                    "  {} ({}, {})\n",
                    member.name, member.site, member.token
                ));
            }
            text.push_str(&format!(
                "shares needed: {}\nevidence: {}\n",
                retire.threshold,
                retire.evidence_dir.display()
            ));
        }
        QuorumAction::AddMember(add) => {
            text.push_str(&format!(
                "copy fleet key {:?} from {} to new member {} ({}, {})\n",
                add.key_label,
                add.source,
                add.new_member.name,
                add.new_member.site,
                add.new_member.token
            ));
            text.push_str(&format!(
                "new share set: {} of {} custodians, in {}\n",
                add.custodians.threshold,
                add.custodians.people.len(),
                add.shares_dir.display()
            ));
        }
        QuorumAction::RotateCustodians(rotate) => {
            let names: Vec<&str> = rotate
                .custodians
                .people
                .iter()
                .map(|p| p.name.as_str())
                .collect();
            text.push_str(&format!(
                "new share set: {} of {} ({}), in {}\n",
                rotate.custodians.threshold,
                names.len(),
                names.join(", "),
                rotate.shares_dir.display()
            ));
        }
    }
    text.push_str(&format!("transcript: {}\n", runbook.transcript().display()));
    text
}
