//! `fleet-ceremony evidence`: render the evidence of a finished ceremony again.

use std::path::PathBuf;

use crate::ceremony;
use crate::evidence::Templates;

/// Subcommands of `evidence`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Render the evidence folder of a finished ceremony again, into a new folder.
    Render(RenderArgs),
}

/// Arguments of `evidence render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The ceremony's runbook, or its work folder (with fleet-key.json, both signature
    /// files and transcript.jsonl).
    pub source: PathBuf,
    /// New folder to write the evidence into; it must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
    /// Folder with the publisher's own index.md.hbs and index.html.hbs; the built-in
    /// templates when absent.
    #[arg(long)]
    pub templates: Option<PathBuf>,
    /// Trust file with the pinned auditor and operator keys; required with a work
    /// folder, and replaces the runbook's keys with a runbook.
    #[arg(long)]
    pub trust: Option<PathBuf>,
}

/// Dispatches an `evidence` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Render(args) => render(&args),
    }
}

/// Renders, writes the folder and prints whether each page matches the digest that the
/// transcript recorded for the run's own rendering.
fn render(args: &RenderArgs) -> anyhow::Result<u8> {
    let templates = match &args.templates {
        Some(dir) => Templates::load(dir)?,
        None => Templates::builtin(),
    };
    let rerendered =
        ceremony::rerender(&args.source, args.trust.as_deref(), &args.out, &templates)?;
    for (name, same) in &rerendered.matches {
        let verdict = if *same {
            "same as the run's own rendering"
        } else {
            "differs from the run's own rendering"
        };
        println!("{name}: {verdict}");
    }
    println!("evidence written to {}", rerendered.out.display());
    Ok(super::EXIT_OK)
}
