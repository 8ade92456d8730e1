//! Verifies a bundle against a trust file with the library API and prints each check.
//!
//! Usage: `cargo run --example verify_bundle -- PATH TRUST [--allow-unattested]`, where
//! PATH is a bundle.json or an evidence folder holding one, and `--allow-unattested`
//! accepts fleet keys without hardware attestation (SoftHSM, as in the demo). Exits 0 when
//! the bundle verified, 3 when a check failed, 1 on a bad trust file and 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use fleet_ceremony::bundle::{Trust, VerifyOptions, verify_path_with};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, trust, allow_unattested) = match args.as_slice() {
        [path, trust] => (path, trust, false),
        [path, trust, flag] if flag == "--allow-unattested" => (path, trust, true),
        _ => {
            eprintln!("usage: verify_bundle PATH TRUST [--allow-unattested]");
            return ExitCode::from(2);
        }
    };
    let mut trust = match Trust::load(&PathBuf::from(trust)) {
        Ok(trust) => trust,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    // The same allowance as `allow_unattested: true` in the trust file.
    trust.allow_unattested |= allow_unattested;
    let report = verify_path_with(&PathBuf::from(path), &trust, &VerifyOptions::default());
    print!("{report}");
    if report.passed() {
        println!("bundle verified");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
