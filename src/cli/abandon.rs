//! `fleet-ceremony abandon`: remove what an unfinished ceremony or quorum action created,
//! and record it.

use std::path::PathBuf;

use crate::ceremony;
use crate::runbook;

/// Arguments of `abandon`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook of the ceremony.
    pub runbook: PathBuf,
    /// Skip the typed confirmation before the fleet key is destroyed (for scripted runs).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub quorum: super::quorum::QuorumArgs,
}

/// Destroys the fleet key on every member and moves the documents aside, or for a
/// quorum-action runbook removes what the interrupted action left half made.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let runbook = match runbook::load_any(&args.runbook)? {
        runbook::AnyRunbook::Deployment(runbook) => *runbook,
        runbook::AnyRunbook::Quorum(runbook) => {
            return super::action_resume::abandon(&runbook, &args.quorum, args.yes);
        }
    };
    let credentials = args.quorum.recover()?;
    if !args.yes {
        super::confirm::confirm(
            &runbook.fleet.id,
            "destroys the fleet key on every member and ends the ceremony",
        )?;
    }
    let report = ceremony::abandon(&runbook, credentials.as_ref())?;
    for (member, objects) in &report.destroyed {
        eprintln!("member {member}: {objects} fleet key object(s) destroyed");
    }
    for token in &report.tokens_left {
        eprintln!("token {token} stays initialised; its PINs are in the custodians' shares");
    }
    for path in &report.moved {
        eprintln!("moved aside: {}", path.display());
    }
    eprintln!("ceremony abandoned; the transcript records what was removed");
    Ok(super::EXIT_OK)
}
