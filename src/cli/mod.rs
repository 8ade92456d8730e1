//! Command-line interface: argument definitions and the dispatcher. Each subcommand lives
//! in its own file.

mod abandon;
mod action;
mod action_resume;
mod attest;
mod bundle;
mod bundle_diff;
mod check;
mod confirm;
mod demo;
mod evidence;
mod log;
mod operator;
mod pin;
mod quorum;
mod run;
mod shares;
mod transcript;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for an error: bad input, a failed step, an unreadable file.
pub const EXIT_ERROR: u8 = 1;
/// Exit code for invalid command-line usage (clap's own).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when verification ran and a check failed.
pub const EXIT_VERIFY_FAILED: u8 = 3;
/// Exit code when a run stopped to wait for the auditor's and operator's signatures.
pub const EXIT_WAITING: u8 = 4;

/// Runs the key ceremony for a new HSM fleet and verifies its published evidence.
#[derive(Debug, Parser)]
#[command(name = "fleet-ceremony", version, about)]
#[command(
    after_help = "Exit codes: 0 success, 1 error, 2 usage error, 3 verification failed, 4 waiting for signatures."
)]
struct Cli {
    /// Log more: -v for each decision, -vv for everything.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a runbook and the environment, print the plan, change nothing.
    Check(check::Args),
    /// Run a ceremony, or continue it once the signatures are back.
    Run(run::Args),
    /// Remove what an unfinished ceremony created, and record it.
    Abandon(abandon::Args),
    /// Verify HSM vendor attestations of a key.
    #[command(subcommand)]
    Attest(attest::Command),
    /// Auditor's and operator's steps on a signing request.
    #[command(subcommand)]
    Bundle(bundle::Command),
    /// Verify a bundle or an evidence folder against pinned keys.
    Verify(verify::Args),
    /// The auditor's transparency log and witness cosigning.
    #[command(subcommand)]
    Log(log::Command),
    /// Check and combine custodian shares.
    #[command(subcommand)]
    Shares(shares::Command),
    /// Operator key management.
    #[command(subcommand)]
    Operator(operator::Command),
    /// Witness sign-offs of a ceremony's transcript.
    #[command(subcommand)]
    Transcript(transcript::Command),
    /// Render the evidence of a finished ceremony again.
    #[command(subcommand)]
    Evidence(evidence::Command),
    /// Play every role of a ceremony on this machine, on SoftHSM tokens in a new folder.
    Demo(demo::Args),
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Abandon(args) => abandon::run(&args),
        Command::Attest(command) => attest::run(command),
        Command::Bundle(command) => bundle::run(command),
        Command::Verify(args) => verify::run(&args),
        Command::Log(command) => log::run(command),
        Command::Shares(command) => shares::run(command),
        Command::Operator(command) => operator::run(command),
        Command::Transcript(command) => transcript::run(command),
        Command::Demo(args) => demo::run(&args),
        Command::Evidence(command) => evidence::run(command),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Formats an error and its causes like anyhow's `{:#}`, but skips a cause whose text is
/// already in the message, because most error types here print their cause themselves.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLEET_CEREMONY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("fleet_ceremony={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read key.pem: {source}")]
    struct ReadError {
        source: std::io::Error,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn error_text_skips_repeated_cause() {
        let error = anyhow::Error::new(ReadError {
            source: not_found(),
        });
        assert_eq!(error_text(&error), "cannot read key.pem: no such file");
    }

    #[test]
    fn error_text_keeps_new_causes() {
        let error = anyhow::Error::new(not_found()).context("cannot load the runbook");
        assert_eq!(error_text(&error), "cannot load the runbook: no such file");

        let error = anyhow::Error::new(ReadError {
            source: not_found(),
        })
        .context("signing failed");
        assert_eq!(
            error_text(&error),
            "signing failed: cannot read key.pem: no such file"
        );
    }
}
