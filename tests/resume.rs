//! Ceremonies stopped with SIGKILL at every action boundary, then resumed or abandoned.
//!
//! Each case runs the demo with a kill point, so its `run` step dies there, and then
//! resumes (or abandons) the ceremony with two custodians' shares. The result must equal
//! an uninterrupted run's: one fleet key pair per member, the same public key everywhere,
//! no other objects, and a transcript that records every step.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use fleet_ceremony::fault::KILL_POINT_VAR;
use fleet_ceremony::transcript::Transcript;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKENS: [&str; 3] = ["demo-zurich-1", "demo-frankfurt-1", "demo-dublin-1"];
const KEY_LABEL: &str = "demo-fleet-key";

/// Records written by an uninterrupted run up to the signing request.
const RECORDS: u32 = 15;

fn binary() -> Command {
    Command::cargo_bin("fleet-ceremony").expect("binary builds")
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    binary()
        .current_dir(dir)
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .env_remove(KILL_POINT_VAR)
        .args(args)
        .output()
        .expect("fleet-ceremony runs")
}

fn quorum() -> Vec<&'static str> {
    vec![
        "--share",
        "shares/alice.age",
        "--identity",
        "custodians/alice/identity.txt",
        "--share",
        "shares/carol.age",
        "--identity",
        "custodians/carol/identity.txt",
    ]
}

/// Runs the demo in a new folder with the process killed at `point`.
fn interrupted_demo(point: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("temporary folder");
    let dir = temp.path().join("demo");
    let output = binary()
        .args(["demo", "--dir"])
        .arg(&dir)
        .env(KILL_POINT_VAR, point)
        .output()
        .expect("demo runs");
    assert!(
        !output.status.success(),
        "{point}: the demo was expected to stop at the kill point"
    );
    (temp, dir)
}

/// Recovers the user PIN of each demo token with `shares combine --reveal`.
fn user_pins(dir: &Path) -> Vec<(String, String)> {
    let mut args = vec!["shares", "combine", "--reveal"];
    args.extend(quorum());
    let output = run_in(dir, &args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[1].to_owned(), fields[3].to_owned())
        })
        .collect()
}

/// Lists a token's objects with OpenSC's pkcs11-tool.
fn list_objects(dir: &Path, token: &str, pin: &str) -> String {
    try_list_objects(dir, token, pin).unwrap_or_else(|| panic!("token {token} not found"))
}

/// Lists a token's objects, or returns `None` when no token has that label.
fn try_list_objects(dir: &Path, token: &str, pin: &str) -> Option<String> {
    let output = std::process::Command::new("pkcs11-tool")
        .args([
            "--module",
            MODULE,
            "--token-label",
            token,
            "--login",
            "--pin",
            pin,
        ])
        .arg("--list-objects")
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .output()
        .expect("pkcs11-tool runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let missing = "No slot with token";
    if !output.status.success() && (stderr.contains(missing) || stdout.contains(missing)) {
        return None;
    }
    assert!(output.status.success(), "{token}: {stderr}");
    Some(stdout.into_owned())
}

fn ec_point(listing: &str) -> Option<String> {
    listing
        .lines()
        .find_map(|line| line.trim().strip_prefix("EC_POINT:"))
        .map(|point| point.trim().to_owned())
}

/// Checks the tokens and transcript of a ceremony that reached the signing request.
fn check_complete(dir: &Path, point: &str) {
    let pins = user_pins(dir);
    let mut points = Vec::new();
    for token in TOKENS {
        let pin = &pins
            .iter()
            .find(|(label, _)| label == token)
            .expect("PIN")
            .1;
        let listing = list_objects(dir, token, pin);
        assert_eq!(
            listing.matches("Private Key Object").count(),
            1,
            "{point}: {token}\n{listing}"
        );
        assert_eq!(
            listing.matches("Public Key Object").count(),
            1,
            "{point}: {token}\n{listing}"
        );
        assert_eq!(
            listing.matches(KEY_LABEL).count(),
            2,
            "{point}: {token}\n{listing}"
        );
        points.push(ec_point(&listing).expect("EC point listed"));
    }
    assert!(
        points.iter().all(|p| p == &points[0]),
        "{point}: public keys differ: {points:?}"
    );

    let transcript = Transcript::open(&dir.join("ceremony/demo-fleet/transcript.jsonl"))
        .unwrap_or_else(|error| panic!("{point}: transcript: {error}"));
    let count = |action: &str| {
        transcript
            .records()
            .iter()
            .filter(|record| record.action == action)
            .count()
    };
    assert_eq!(count("token initialised"), 3, "{point}");
    assert_eq!(count("share written"), 3, "{point}");
    assert_eq!(count("fleet key generated"), 1, "{point}");
    assert_eq!(count("fleet key replicated"), 2, "{point}");
    assert_eq!(count("fleet key locked"), 1, "{point}");
    assert_eq!(count("fleet key checked on every member"), 1, "{point}");
    assert_eq!(count("fleet-key document written"), 1, "{point}");
    assert_eq!(count("signing request written"), 1, "{point}");
}

fn kill_points() -> Vec<String> {
    let mut points: Vec<String> = (1..=RECORDS).map(|seq| format!("record-{seq}")).collect();
    for token in TOKENS {
        points.push(format!("after-init-token-{token}"));
    }
    for token in &TOKENS[1..] {
        points.push(format!("mid-replication-{token}"));
    }
    points
}

#[test]
fn resume_after_kill_at_every_boundary() {
    for point in kill_points() {
        let (_temp, dir) = interrupted_demo(&point);
        let mut args = vec!["run", "runbook.yaml", "--resume"];
        args.extend(quorum());
        let output = run_in(&dir, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);

        // Before every share is on disk no token has been touched, and the PINs are gone:
        // such a ceremony can only be abandoned.
        if stderr.contains("stopped while the shares were being written") {
            assert_eq!(output.status.code(), Some(1), "{point}: {stderr}");
            let abandon = run_in(&dir, &["abandon", "runbook.yaml", "--yes"]);
            assert!(
                abandon.status.success(),
                "{point}: {}",
                String::from_utf8_lossy(&abandon.stderr)
            );
            continue;
        }
        assert_eq!(
            output.status.code(),
            Some(4),
            "{point}: resume did not reach the signing request: {stderr}"
        );
        check_complete(&dir, &point);
    }
}

#[test]
fn abandon_after_kill_leaves_no_fleet_key() {
    for point in [
        "record-7",
        "record-9",
        "mid-replication-demo-dublin-1",
        "record-15",
    ] {
        let (_temp, dir) = interrupted_demo(point);
        let pins = user_pins(&dir);

        let without_shares = run_in(&dir, &["abandon", "runbook.yaml", "--yes"]);
        assert_eq!(without_shares.status.code(), Some(1), "{point}");
        assert!(
            String::from_utf8_lossy(&without_shares.stderr)
                .contains("--share FILE --identity FILE")
        );

        let mut args = vec!["abandon", "runbook.yaml", "--yes"];
        args.extend(quorum());
        let output = run_in(&dir, &args);
        assert!(
            output.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&output.stderr)
        );

        for (token, pin) in &pins {
            // A token that the run never reached does not exist.
            let Some(listing) = try_list_objects(&dir, token, pin) else {
                continue;
            };
            assert!(
                !listing.contains(KEY_LABEL),
                "{point}: {token} still holds\n{listing}"
            );
        }
        let again = run_in(&dir, &["run", "runbook.yaml", "--resume"]);
        assert!(
            String::from_utf8_lossy(&again.stderr).contains("was abandoned"),
            "{point}"
        );
        assert!(
            !dir.join("ceremony/demo-fleet/signing-request.json")
                .exists(),
            "{point}"
        );
    }
}
