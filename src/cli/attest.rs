//! `fleet-ceremony attest`: verify an HSM vendor's key attestation on its own.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::attest::{self, AttestError, Vendor};

/// Subcommands of `attest`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Verify attestation files against a fleet public key, one line per rule.
    Verify(VerifyArgs),
}

/// Arguments of `attest verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Attestation files in the vendor's order: marvell: blob, chain PEM; yubihsm2: key
    /// certificate, device certificate, intermediates; luna: PKCS#7 bundle.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Vendor format: marvell, yubihsm2 or luna.
    #[arg(long)]
    pub vendor: String,
    /// Fleet public key as SubjectPublicKeyInfo PEM (fleet-key.pem of the evidence).
    #[arg(long)]
    pub key: PathBuf,
    /// Verification time (RFC 3339 in UTC, such as 2025-01-01T00:00:00Z); the current
    /// time when absent. Use the time the attestation was collected when a vendor root
    /// has expired since.
    #[arg(long)]
    pub at: Option<String>,
}

/// Runs an `attest` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Verify(args) => verify(&args),
    }
}

/// Prints the report; exits 0 when no rule failed, 3 when one did.
fn verify(args: &VerifyArgs) -> anyhow::Result<u8> {
    let vendor: Vendor = args.vendor.parse()?;
    let key = std::fs::read_to_string(&args.key)
        .with_context(|| format!("cannot read fleet key {}", args.key.display()))?;
    let at = match &args.at {
        Some(text) => parse_time(text)?,
        None => {
            let now = Utc::now();
            println!(
                "verification time: now, {}",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            now
        }
    };

    match attest::verify_files(vendor, &args.files, &key, None, at) {
        Ok(report) => {
            print!("{report}");
            if report.fully_attested() {
                println!("attestation verified: every rule passed");
            } else {
                println!("attestation verified: no rule failed, but not every rule is attested");
            }
            Ok(super::EXIT_OK)
        }
        Err(AttestError::Rejected(report)) => {
            print!("{report}");
            eprintln!("error: {vendor} attestation rejected");
            Ok(super::EXIT_VERIFY_FAILED)
        }
        Err(error) => Err(error.into()),
    }
}

fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if !text.ends_with('Z') {
        anyhow::bail!(
            "--at {text:?} is not a UTC time\nhint: write RFC 3339 ending in Z, such as \
             2025-01-01T00:00:00Z"
        );
    }
    let time = DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--at {text:?} is not an RFC 3339 time"))?;
    Ok(time.with_timezone(&Utc))
}
