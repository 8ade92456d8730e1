//! `fleet-ceremony check`: validate a runbook and the environment, change nothing.

use std::path::PathBuf;

use anyhow::bail;

use crate::ceremony::{attestation, preflight};
use crate::runbook;

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook file (YAML).
    pub runbook: PathBuf,
    /// For retire and add-member runbooks: shares that let the check log in and inspect
    /// the private keys. For a rotate-custodians runbook: shares whose members the check
    /// lists, as the new set will hold their PINs. A deployment check takes none.
    #[command(flatten)]
    pub quorum: super::quorum::QuorumArgs,
}

/// Prints the plan and every problem found; fails when there is any problem.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let runbook = match runbook::load_any(&args.runbook)? {
        runbook::AnyRunbook::Deployment(runbook) => runbook,
        runbook::AnyRunbook::Quorum(runbook) => {
            return super::action::check(&runbook, &args.quorum);
        }
    };
    if args.quorum.inputs()?.is_some() {
        bail!("a deployment check takes no shares; remove --share and --identity");
    }
    print!("{}", runbook.plan());
    // Only the chains can be checked now: the fleet key they must attest does not exist yet.
    for line in attestation::check_chains(&runbook).0 {
        println!("{line}");
    }

    let problems = preflight::check(&runbook);
    if problems.is_empty() {
        println!("check passed: nothing was changed");
        return Ok(super::EXIT_OK);
    }
    for problem in &problems {
        eprintln!("problem: {problem}");
    }
    bail!(
        "{} has {} problem(s); nothing was changed",
        args.runbook.display(),
        problems.len()
    )
}
