//! `fleet-ceremony verify`: check a bundle against pinned keys.

use std::path::PathBuf;

use crate::bundle::{self, Trust};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Evidence folder holding bundle.json, or a bundle file.
    pub path: PathBuf,
    /// Trust file with the pinned auditor and operator keys.
    #[arg(long)]
    pub trust: PathBuf,
    /// Print the report as JSON on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints each check; exits 3 when one fails.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let trust = Trust::load(&args.trust)?;
    let report = bundle::verify_path(&args.path, &trust);
    if args.json {
        let json = serde_json::json!({
            "path": args.path.display().to_string(),
            "verified": report.passed(),
            "checks": report.checks,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{report}");
    }
    if report.passed() {
        if !args.json {
            println!("bundle verified");
        }
        Ok(super::EXIT_OK)
    } else {
        eprintln!(
            "error: verification failed: {} is not a valid bundle for the pinned keys",
            args.path.display()
        );
        Ok(super::EXIT_VERIFY_FAILED)
    }
}
