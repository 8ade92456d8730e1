//! `fleet-ceremony transcript sign`: a witness signs the transcript digest of a ceremony.

use std::path::PathBuf;

use anyhow::Context;

use crate::bundle::{self, FleetKeyDocument, signoff::Signoff};
use crate::fsutil::write_new;
use crate::runbook;

use crate::ceremony::SIGNOFF_DIR;

/// Subcommands of `transcript`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Sign, as a witness, the transcript digest recorded in the fleet-key document.
    Sign(SignArgs),
}

/// Arguments of `transcript sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Runbook of the ceremony.
    pub runbook: PathBuf,
    /// The signer's name as it will be published.
    #[arg(long)]
    pub witness: String,
    /// The signer's role in the room.
    #[arg(long, default_value = "witness", value_parser = ["witness", "officer"])]
    pub role: String,
    /// The witness's Ed25519 private key, PKCS#8 PEM.
    #[arg(long)]
    pub key: PathBuf,
}

/// Runs a `transcript` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Sign(args) => sign(&args),
    }
}

fn sign(args: &SignArgs) -> anyhow::Result<u8> {
    let runbook = runbook::load(&args.runbook)?;
    let document_path = runbook.outputs.fleet_key_document();
    let bytes = std::fs::read(&document_path).with_context(|| {
        format!(
            "cannot read {}\nhint: witnesses sign after the run has written the fleet-key document",
            document_path.display()
        )
    })?;
    let document = FleetKeyDocument::from_json_bytes(&bytes)
        .with_context(|| format!("{} is not a fleet-key document", document_path.display()))?;
    let key = bundle::read_ed25519_key_file(&args.key)?;

    eprintln!(
        "fleet {}: transcript SHA-256 {}",
        document.fleet_id, document.transcript_sha256
    );
    let signoff = Signoff::sign(
        &args.witness,
        &args.role,
        &document.fleet_id,
        &document.transcript_sha256,
        &key,
    );
    let out = runbook
        .outputs
        .work_dir
        .join(SIGNOFF_DIR)
        .join(format!("{}.json", &signoff.key_id[..16]));
    write_new(&out, &signoff.to_json_bytes(), false)?;
    eprintln!(
        "sign-off by {} written; key {}",
        signoff.witness, signoff.key_id
    );
    println!("{}", out.display());
    Ok(super::EXIT_OK)
}
