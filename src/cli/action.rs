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
            match quorum_args.recover_with_context()? {
                Some(recovered) => print!("{}", covered_members(&members_of(&recovered))),
                None => println!(
                    "members covered: not known without shares; give --share and --identity to list the members whose PINs the new set will hold"
                ),
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
            report_retired(&retired);
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
            let recovered = crate::shares::combine(&inputs)?;
            eprint!("{}", covered_members(&members_of(&recovered)));
            confirm(
                runbook,
                "writes a new share set for the custodians above",
                yes,
            )?;
            let rotated = quorum::rotate(runbook, rotate, &inputs)?;
            report_rotated(&rotated);
            for path in &rotated.files {
                println!("{}", path.display());
            }
        }
    }
    Ok(super::EXIT_OK)
}

/// Prints what a retirement destroyed, the fleet key it covered and its scope, then the
/// evidence folder on stdout.
pub(super) fn report_retired(retired: &quorum::Retired) {
    for destroyed in &retired.destroyed {
        let note = if destroyed.count_not_recorded {
            " by the resumed run (the interrupted run destroyed objects here without recording how many)"
        } else {
            ""
        };
        eprintln!(
            "member {}: {} fleet key object(s) destroyed{note}, none left",
            destroyed.member, destroyed.objects
        );
    }
    match &retired.key_fingerprint {
        Some(fingerprint) => eprintln!("fleet key fingerprint: {fingerprint}"),
        None => eprintln!("fleet key fingerprint: not recorded"),
    }
    if !retired.unlisted_members.is_empty() {
        eprintln!(
            "warning: the shares also hold PINs of {}, which this retirement does not list; as far as the shares record, they still hold the fleet key",
            retired.unlisted_members.join(", ")
        );
    }
    eprintln!(
        "the retirement covers the listed members only; a member added later with a newer share set (add-member) still holds the fleet key unless listed"
    );
    eprintln!("transcript SHA-256: {}", retired.transcript_sha256);
    println!("{}", retired.evidence_dir.display());
}

/// Returns (member, token label) of each member whose PINs `recovered` holds.
fn members_of(recovered: &crate::shares::Recovered) -> Vec<(String, String)> {
    recovered
        .credentials
        .members
        .iter()
        .map(|entry| (entry.member.clone(), entry.token_label.clone()))
        .collect()
}

/// Returns the lines that list the members whose PINs a new share set will hold.
fn covered_members(members: &[(String, String)]) -> String {
    let mut text =
        String::from("the new set will hold the PINs of these members, and of no others:\n");
    for (member, token) in members {
        text.push_str(&format!("  {member} (token {token})\n"));
    }
    text
}

/// Prints what a rotation wrote and which members the new set covers.
pub(super) fn report_rotated(rotated: &quorum::Rotated) {
    eprintln!(
        "credential set {} reshared as {}; the old shares still recover the same PINs until destroyed",
        rotated.previous_credential_set, rotated.credential_set
    );
    let names: Vec<&str> = rotated
        .members
        .iter()
        .map(|(member, _)| member.as_str())
        .collect();
    eprintln!(
        "the new set holds the PINs of {} member(s): {}",
        names.len(),
        names.join(", ")
    );
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
            text.push_str(
                "only these members lose the key; list every member, those added by add-member too\n",
            );
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
            text.push_str(
                "the new set holds the PINs of exactly the members in the shares given; give the newest set, because a set older than an add-member action lacks the member it added\n",
            );
        }
    }
    text.push_str(&format!("transcript: {}\n", runbook.transcript().display()));
    text
}
