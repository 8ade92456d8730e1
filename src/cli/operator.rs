//! `fleet-ceremony operator init`: create the operator's Ed25519 signing key in a token.

use std::path::PathBuf;

use crate::bundle;
use crate::fsutil::write_new;
use crate::hsm::{self, KeyAlgorithm, Library, Token, keys};

/// Subcommands of `operator`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Initialise a token and generate a non-extractable Ed25519 signing key in it.
    Init(InitArgs),
}

/// Arguments of `operator init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// PKCS#11 module.
    #[arg(long, default_value = hsm::SOFTHSM_MODULE)]
    pub module: PathBuf,
    /// Label of the new token.
    #[arg(long)]
    pub token_label: String,
    /// CKA_LABEL of the signing key.
    #[arg(long)]
    pub key_label: String,
    /// Where to write the public key (PEM SPKI); must not exist.
    #[arg(long)]
    pub public_key_out: PathBuf,
    /// Read the SO PIN and then the user PIN from the first two lines of standard input.
    #[arg(long)]
    pub pin_stdin: bool,
}

/// Runs an `operator` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Init(args) => init(&args),
    }
}

fn init(args: &InitArgs) -> anyhow::Result<u8> {
    if args.public_key_out.exists() {
        anyhow::bail!(
            "{} already exists; outputs are never overwritten",
            args.public_key_out.display()
        );
    }
    let so_pin = super::pin::read_pin("SO PIN for the new token: ", args.pin_stdin)?;
    let user_pin = super::pin::read_pin("user PIN for the new token: ", args.pin_stdin)?;

    let library = Library::load(&args.module)?;
    let token = Token::initialise(&library, &args.token_label, &so_pin, &user_pin)?;
    let session = token.login_user(&user_pin)?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&bundle::document_digest(args.key_label.as_bytes())[..8]);
    let pair = keys::generate(
        &session,
        &token,
        KeyAlgorithm::Ed25519,
        &args.key_label,
        &id,
        keys::Wrapping::Never,
    )?;
    let pem = keys::public_key_pem(
        &session,
        &token,
        &args.key_label,
        pair.public,
        KeyAlgorithm::Ed25519,
    )?;

    write_new(&args.public_key_out, pem.as_bytes(), false)?;
    let key = bundle::ed25519_from_spki_pem(&pem)?;
    eprintln!(
        "operator key {} generated in token {} (serial {}); fingerprint {}",
        args.key_label,
        token.label,
        token.serial,
        bundle::ed25519_fingerprint(&key)
    );
    println!("{}", args.public_key_out.display());
    Ok(super::EXIT_OK)
}
