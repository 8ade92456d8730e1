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
}

/// Prints the plan and every problem found; fails when there is any problem.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let runbook = runbook::load(&args.runbook)?;
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
