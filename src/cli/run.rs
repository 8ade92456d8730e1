//! `fleet-ceremony run`: run a ceremony, or continue it once the signatures are back.

use std::path::PathBuf;

use anyhow::bail;

use crate::ceremony::{self, CeremonyError, Outcome, Stage, preflight};
use crate::runbook::{self, Runbook};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook file (YAML).
    pub runbook: PathBuf,
    /// Skip the typed confirmation before the HSMs are changed (for scripted rehearsals).
    #[arg(long)]
    pub yes: bool,
    /// Continue a ceremony or quorum action that an earlier run left unfinished; needs a
    /// quorum of shares.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub quorum: super::quorum::QuorumArgs,
}

/// Starts the ceremony, or assembles the bundle and evidence when the signatures are back.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let runbook = match runbook::load_any(&args.runbook)? {
        runbook::AnyRunbook::Deployment(runbook) => runbook,
        runbook::AnyRunbook::Quorum(runbook) => {
            return super::action::run(&runbook, &args.quorum, args.yes, args.resume);
        }
    };
    let runbook = *runbook;
    match ceremony::stage(&runbook)? {
        Stage::NotStarted if args.resume => bail!(
            "nothing to resume: {} does not exist\nhint: run without --resume to start the ceremony",
            runbook.outputs.transcript().display()
        ),
        Stage::NotStarted => start(&runbook, args.yes),
        Stage::AwaitingSignatures => finish(&runbook),
        Stage::Interrupted { last_action } if !args.resume => Err(CeremonyError::Interrupted {
            last_action,
            transcript: runbook.outputs.transcript(),
        }
        .into()),
        Stage::Interrupted { .. } => resume(&runbook, args),
        Stage::Abandoned => Err(CeremonyError::Abandoned {
            transcript: runbook.outputs.transcript(),
        }
        .into()),
        Stage::Finished => Err(CeremonyError::Finished {
            evidence: runbook.outputs.fleet_evidence_dir(&runbook.fleet.id),
        }
        .into()),
    }
}

fn start(runbook: &Runbook, yes: bool) -> anyhow::Result<u8> {
    eprint!("{}", runbook.plan());
    let problems = preflight::check(runbook);
    if !problems.is_empty() {
        for problem in &problems {
            eprintln!("problem: {problem}");
        }
        return Err(CeremonyError::Preflight {
            count: problems.len(),
        }
        .into());
    }
    if !yes {
        super::confirm::confirm(
            &runbook.fleet.id,
            "initialises the tokens above and generates the fleet key",
        )?;
    }

    let deployed = ceremony::deploy(runbook)?;
    eprintln!(
        "fleet key fingerprint (SHA-256 of the SPKI): {}",
        deployed.fingerprint
    );
    if let Some(words) = crate::words::fingerprint_words(&deployed.fingerprint) {
        eprintln!("  read aloud: {words}");
    }
    eprintln!(
        "next: the auditor signs {} with `fleet-ceremony bundle sign`, the operator counter-signs with `fleet-ceremony bundle countersign`; then run this command again",
        deployed.signing_request.display()
    );
    finish(runbook)
}

fn resume(runbook: &Runbook, args: &Args) -> anyhow::Result<u8> {
    ceremony::check_resumable(runbook)?;
    let Some(credentials) = args.quorum.recover()? else {
        return Err(CeremonyError::SharesNeeded {
            threshold: runbook.custodians.threshold,
        }
        .into());
    };
    let deployed = ceremony::resume(runbook, credentials)?;
    eprintln!(
        "fleet key fingerprint (SHA-256 of the SPKI): {}",
        deployed.fingerprint
    );
    if let Some(words) = crate::words::fingerprint_words(&deployed.fingerprint) {
        eprintln!("  read aloud: {words}");
    }
    finish(runbook)
}

fn finish(runbook: &Runbook) -> anyhow::Result<u8> {
    match ceremony::finish(runbook)? {
        Outcome::Waiting { missing } => {
            for path in missing {
                eprintln!("waiting for {}", path.display());
            }
            Ok(super::EXIT_WAITING)
        }
        Outcome::Written { evidence } => {
            eprintln!("bundle verified and evidence written");
            println!("{}", evidence.display());
            Ok(super::EXIT_OK)
        }
    }
}
