//! `fleet-ceremony shares`: custodians check their own share, a quorum recovers the
//! credentials or reshares them to new custodians.

use std::path::{Path, PathBuf};

use anyhow::bail;
use secrecy::ExposeSecret;

use crate::hsm::SOFTHSM_MODULE;
use crate::shares::{self, ShareInput};

/// Subcommands of `shares`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Decrypt one share with its custodian's identity and check it, without combining.
    Verify(VerifyArgs),
    /// Recover the credentials from a quorum of shares, in memory.
    Combine(CombineArgs),
    /// Recover the credentials from a quorum and split the same PINs again, under a new
    /// credential set id, for new custodians or a new threshold.
    Reshare(ReshareArgs),
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
    /// Log in as user on each member's token with the recovered user PIN, then log out.
    /// Stops at the first failure without retrying.
    #[arg(long)]
    pub check_login: bool,
    /// PKCS#11 module for --check-login [default: /usr/lib/softhsm/libsofthsm2.so].
    #[arg(long, value_name = "PATH", requires = "check_login")]
    pub module: Option<PathBuf>,
}

/// Arguments of `shares reshare`.
#[derive(Debug, clap::Args)]
pub struct ReshareArgs {
    /// An old share file; give one --share and one --identity per custodian, in the same
    /// order.
    #[arg(long = "share", required = true)]
    pub shares: Vec<PathBuf>,
    /// The age identity file of the custodian of the share at the same position.
    #[arg(long = "identity", required = true)]
    pub identities: Vec<PathBuf>,
    /// Number of new shares needed to recover the credentials (at least 2).
    #[arg(long)]
    pub threshold: u8,
    /// A new custodian, as NAME=RECIPIENT or NAME=@FILE (a recipients file with one
    /// recipient); repeat for each custodian.
    #[arg(long = "custodian", value_name = "NAME=RECIPIENT", required = true)]
    pub custodians: Vec<String>,
    /// Folder for the new share files, `<custodian>.age`; created if missing. Existing
    /// files are never overwritten.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Runs a `shares` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Verify(args) => verify(&args),
        Command::Combine(args) => combine(&args),
        Command::Reshare(args) => reshare(&args),
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
    let inputs = share_inputs(&args.shares, &args.identities)?;
    let recovered = shares::combine(&inputs)?;
    eprintln!(
        "recovered credential set {} of fleet {} from {} of {} shares (threshold {}); commitment matches",
        recovered.credential_set_id,
        recovered.context.fleet,
        inputs.len(),
        recovered.count,
        recovered.threshold
    );

    if args.check_login {
        let module = args.module.as_deref().unwrap_or(Path::new(SOFTHSM_MODULE));
        shares::check_logins(module, &recovered.credentials, |member| {
            println!("login ok: {} token {}", member.member, member.token_label);
        })?;
    }

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

fn reshare(args: &ReshareArgs) -> anyhow::Result<u8> {
    let inputs = share_inputs(&args.shares, &args.identities)?;
    let custodians = args
        .custodians
        .iter()
        .map(|argument| shares::parse_custodian_argument(argument))
        .collect::<Result<Vec<_>, _>>()?;

    let reshared = shares::reshare(&inputs, &custodians, args.threshold)?;
    let paths = shares::write_share_files(&args.out_dir, &reshared.files)?;
    eprintln!(
        "reshared credential set {} of fleet {} as credential set {}: {} shares, any {} recover",
        reshared.previous_credential_set,
        reshared.context.fleet,
        reshared.credential_set,
        paths.len(),
        reshared.threshold
    );
    eprintln!(
        "note: the old shares still recover the same PINs; destroy them, or change the PINs in the HSMs"
    );
    for path in paths {
        println!("{}", path.display());
    }
    Ok(super::EXIT_OK)
}

/// Pairs each share file with the identity at the same position.
fn share_inputs(shares: &[PathBuf], identities: &[PathBuf]) -> anyhow::Result<Vec<ShareInput>> {
    if shares.len() != identities.len() {
        bail!(
            "{} --share and {} --identity options given; give one identity per share, in the same order",
            shares.len(),
            identities.len()
        );
    }
    Ok(shares
        .iter()
        .zip(identities)
        .map(|(path, identity)| ShareInput {
            path: path.clone(),
            identity: identity.clone(),
        })
        .collect())
}
