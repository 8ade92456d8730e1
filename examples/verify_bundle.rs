//! Verifies a bundle against a trust file with the library API and prints each check.
//!
//! Usage: `cargo run --example verify_bundle -- PATH TRUST`, where PATH is a bundle.json
//! or an evidence folder holding one. Exits 0 when the bundle verified, 3 when a check
//! failed, 1 on a bad trust file and 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use fleet_ceremony::bundle::{Trust, VerifyOptions, verify_path_with};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, trust] = args.as_slice() else {
        eprintln!("usage: verify_bundle PATH TRUST");
        return ExitCode::from(2);
    };
    let trust = match Trust::load(&PathBuf::from(trust)) {
        Ok(trust) => trust,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    let report = verify_path_with(&PathBuf::from(path), &trust, &VerifyOptions::default());
    print!("{report}");
    if report.passed() {
        println!("bundle verified");
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}
