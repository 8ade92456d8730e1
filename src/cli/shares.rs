//! `fleet-ceremony shares`: custodians check their own share, and a quorum recovers the
//! credentials.

use std::path::PathBuf;

use anyhow::bail;
use secrecy::ExposeSecret;

use crate::shares::{self, ShareInput};

/// Subcommands of `shares`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decrypt one share with its custodian's identity and check it, without combining.
    Verify(VerifyArgs),
    /// Recover the credentials from a quorum of shares, in memory.
    Combine(CombineArgs),
}

/// Arguments of `shares verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The share file.
    pub share: PathBuf,
    /// The custodian's age identity file.
    #[arg(long)]
    pub identity: PathBuf,
}

/// Arguments of `shares combine`.
#[derive(Debug, clap::Args)]
pub struct CombineArgs {
    /// A share file; give one --share and one --identity per custodian, in the same order.
    #[arg(long = "share", required = true)]
    pub shares: Vec<PathBuf>,
    /// The age identity file of the custodian of the share at the same position.
    #[arg(long = "identity", required = true)]
    pub identities: Vec<PathBuf>,
    /// Print the recovered PINs on standard output, for use with a vendor's own tools.
    #[arg(long)]
    pub reveal: bool,
}

/// Runs a `shares` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Verify(args) => verify(&args),
        Command::Combine(args) => combine(&args),
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<u8> {
    let summary = shares::verify_share(&ShareInput {
        path: args.share.clone(),
        identity: args.identity.clone(),
    })?;
    println!("share {} is valid", args.share.display());
    println!("ceremony:       {}", summary.ceremony);
    println!("fleet:          {}", summary.fleet);
    println!("credential set: {}", summary.credential_set);
    println!("custodian:      {}", summary.custodian);
    println!(
        "share:          {} of {}, any {} recover",
        summary.index, summary.count, summary.threshold
    );
    Ok(super::EXIT_OK)
}

fn combine(args: &CombineArgs) -> anyhow::Result<u8> {
    if args.shares.len() != args.identities.len() {
        bail!(
            "{} --share and {} --identity options given; give one identity per share, in the same order",
            args.shares.len(),
            args.identities.len()
        );
    }
    let inputs: Vec<ShareInput> = args
        .shares
        .iter()
        .zip(&args.identities)
        .map(|(path, identity)| ShareInput {
            path: path.clone(),
            identity: identity.clone(),
        })
        .collect();
    let recovered = shares::combine(&inputs)?;
    eprintln!(
        "recovered credential set {} of fleet {} from {} of {} shares (threshold {}); commitment matches",
        recovered.credential_set_id,
        recovered.context.fleet,
        inputs.len(),
        recovered.count,
        recovered.threshold
    );

    if !args.reveal {
        for member in &recovered.credentials.members {
            println!(
                "{}\t{}\tPINs recovered (not shown; use --reveal)",
                member.member, member.token_label
            );
        }
        return Ok(super::EXIT_OK);
    }
    eprintln!(
        "warning: printing HSM administration PINs; clear the terminal and its scrollback afterwards"
    );
    println!("member\ttoken\tso_pin\tuser_pin");
    for member in &recovered.credentials.members {
        println!(
            "{}\t{}\t{}\t{}",
            member.member,
            member.token_label,
            member.so_pin.expose_secret(),
            member.user_pin.expose_secret()
        );
    }
    Ok(super::EXIT_OK)
}
