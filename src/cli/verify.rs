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
}

/// Prints each check; exits 3 when one fails.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let trust = Trust::load(&args.trust)?;
    let report = bundle::verify_path(&args.path, &trust);
    print!("{report}");
    if report.passed() {
        println!("bundle verified");
        Ok(super::EXIT_OK)
    } else {
        eprintln!(
            "error: verification failed: {} is not a valid bundle for the pinned keys",
            args.path.display()
        );
        Ok(super::EXIT_VERIFY_FAILED)
    }
}
