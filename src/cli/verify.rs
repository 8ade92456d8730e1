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
    /// Accept fleet keys on members without a hardware attestation (SoftHSM, or an HSM
    /// whose attestation proves less than every rule), as `allow_unattested: true` in the
    /// trust file does.
    #[arg(long)]
    pub allow_unattested: bool,
    /// Print the report as JSON on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints each check; exits 3 when one fails.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let mut trust = Trust::load(&args.trust)?;
    trust.allow_unattested |= args.allow_unattested;
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
    } else if report
        .failed_check()
        .is_some_and(|check| check.name == bundle::verify::CHECK_HARDWARE_ATTESTATION)
    {
        eprintln!(
            "error: verification failed: {} is signed by the pinned keys, but the hardware \
             attestation check failed",
            args.path.display()
        );
        Ok(super::EXIT_VERIFY_FAILED)
    } else {
        eprintln!(
            "error: verification failed: {} is not a valid bundle for the pinned keys",
            args.path.display()
        );
        Ok(super::EXIT_VERIFY_FAILED)
    }
}
