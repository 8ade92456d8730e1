//! `fleet-ceremony verify`: check a bundle against pinned keys.

use std::path::PathBuf;

use anyhow::Context;

use crate::bundle::{self, Trust, VerifyOptions};

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 the bundle verified, 1 error (unreadable trust file or checkpoint), 2 usage error, 3 verification failed (the report names the failed check)."
)]
pub struct Args {
    /// Evidence folder holding bundle.json, or a bundle file.
    pub path: PathBuf,
    /// Trust file with the pinned auditor and operator keys, and optionally the log.
    #[arg(long)]
    pub trust: PathBuf,
    /// Accept fleet keys on members without a hardware attestation (SoftHSM, or an HSM
    /// whose attestation proves less than every rule), as `allow_unattested: true` in the
    /// trust file does.
    #[arg(long)]
    pub allow_unattested: bool,
    /// A checkpoint of the auditor's log seen before; the bundle's checkpoint must extend
    /// it, so a rolled-back or forked log fails the log consistency check.
    #[arg(long)]
    pub since: Option<PathBuf>,
    /// A copy of the auditor's log directory, to prove consistency with --since when the
    /// bundle's tree is larger.
    #[arg(long, requires = "since")]
    pub log: Option<PathBuf>,
    /// Print the report as JSON on standard output instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints each check; exits 3 when one fails.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let mut trust = Trust::load(&args.trust)?;
    trust.allow_unattested |= args.allow_unattested;
    let since = match &args.since {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
        }
        None => None,
    };
    let options = VerifyOptions {
        since,
        log_dir: args.log.clone(),
    };
    let report = bundle::verify_path_with(&args.path, &trust, &options);
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
