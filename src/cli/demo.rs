//! `fleet-ceremony demo`: play every role of a ceremony on this machine.

use std::path::PathBuf;

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// New or empty folder for the demo's tokens, keys, shares and evidence.
    #[arg(long, default_value = "demo")]
    pub dir: PathBuf,
}

/// Runs the demo and prints the evidence folder.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let evidence = crate::demo::run(&args.dir)?;
    eprintln!("demo finished; evidence verified");
    println!("{}", evidence.display());
    Ok(super::EXIT_OK)
}
