//! Quorum actions stopped with SIGKILL at every transcript boundary, then resumed or
//! abandoned through the binary, on SoftHSM tokens read back with pkcs11-tool (OpenSC).
//!
//! Each kind prepares one folder (the demo, plus a trusted-wrap fleet for add-member) and
//! copies it for every case, so that each case starts from the same tokens and files
//! without running the demo again. SoftHSM reads `SOFTHSM2_CONF` once per process, so
//! every child process gets the copy's configuration in its environment.

mod common;

use std::path::PathBuf;
use std::process::{Command as StdCommand, Output};

use assert_cmd::cargo::cargo_bin_cmd;
use fleet_ceremony::fault::KILL_POINT_VAR;
use fleet_ceremony::transcript::Transcript;
use sha2::{Digest, Sha256};

const PKCS11_TOOL: &str = "pkcs11-tool";
const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const DEMO_KEY: &str = "demo-fleet-key";
const GROW_KEY: &str = "grow-fleet-key";
const NEW_TOKEN: &str = "grow-oslo-1";
const CUSTODIANS: [&str; 3] = ["alice", "bob", "carol"];

/// Members of the demo fleet and their token labels, in runbook order.
const DEMO_MEMBERS: [(&str, &str); 3] = [
    ("zurich-1", "demo-zurich-1"),
    ("frankfurt-1", "demo-frankfurt-1"),
    ("dublin-1", "demo-dublin-1"),
];

const HEADER: &str = "version: 1\nfleet:\n  namespace: backup.example.com/fleets\n  epoch: 1\n";

/// A folder with SoftHSM tokens and the demo's files.
struct Folder {
    _temp: tempfile::TempDir,
    root: PathBuf,
}

impl Folder {
    /// Runs the demo in a new folder.
    fn demo() -> Folder {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo");
        cargo_bin_cmd!("fleet-ceremony")
            .arg("demo")
            .arg("--dir")
            .arg(&root)
            .assert()
            .success();
        Folder { _temp: temp, root }
    }

    /// Copies the folder, tokens included, and points the copy's SoftHSM at its tokens.
    fn copy(&self) -> Folder {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo");
        let status = StdCommand::new("cp")
            .arg("-a")
            .arg(&self.root)
            .arg(&root)
            .status()
            .unwrap();
        assert!(status.success());
        let conf = std::fs::read_to_string(root.join("softhsm2.conf")).unwrap();
        let old = format!(
            "directories.tokendir = {}",
            self.root.join("tokens").display()
        );
        let new = format!("directories.tokendir = {}", root.join("tokens").display());
        assert!(conf.contains(&old), "{conf}");
        std::fs::write(root.join("softhsm2.conf"), conf.replace(&old, &new)).unwrap();
        Folder { _temp: temp, root }
    }

    /// Runs `fleet-ceremony ARGS`, killed at `kill` when given.
    fn run(&self, args: &[&str], kill: Option<&str>) -> Output {
        let mut command = cargo_bin_cmd!("fleet-ceremony");
        command
            .current_dir(&self.root)
            .env("SOFTHSM2_CONF", self.root.join("softhsm2.conf"))
            .env_remove(KILL_POINT_VAR)
            .args(args);
        if let Some(point) = kill {
            command.env(KILL_POINT_VAR, point);
        }
        command.output().unwrap()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root.join(name), text).unwrap();
    }

    /// Returns (token label, user PIN) per member, from `shares combine --reveal`.
    fn user_pins(&self, shares: &[String]) -> Vec<(String, String)> {
        let mut args = vec!["shares", "combine", "--reveal"];
        args.extend(shares.iter().map(String::as_str));
        let output = self.run(&args, None);
        assert!(output.status.success(), "{}", stderr(&output));
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (fields[1].to_owned(), fields[3].to_owned())
            })
            .collect()
    }

    /// Object listing of a token after a user login, or `None` when no token has the label.
    fn list_objects(&self, token: &str, pin: &str) -> Option<String> {
        let output = StdCommand::new(PKCS11_TOOL)
            .env("SOFTHSM2_CONF", self.root.join("softhsm2.conf"))
            .args(["--module", SOFTHSM_MODULE, "--token-label", token])
            .args(["--list-objects", "--login", "--pin", pin])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if !output.status.success() && text.contains("No slot with token") {
            return None;
        }
        assert!(output.status.success(), "pkcs11-tool failed: {text}");
        Some(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Reads the public key labelled `label` on a token as DER, by pkcs11-tool.
    fn public_key_der(&self, token: &str, label: &str) -> Vec<u8> {
        let out = self.root.join(format!("{token}-{label}.der"));
        let output = StdCommand::new(PKCS11_TOOL)
            .env("SOFTHSM2_CONF", self.root.join("softhsm2.conf"))
            .args(["--module", SOFTHSM_MODULE, "--token-label", token])
            .args(["--read-object", "--type", "pubkey", "--label", label])
            .arg("--output-file")
            .arg(&out)
            .output()
            .unwrap();
        assert!(output.status.success(), "pkcs11-tool failed: {output:?}");
        std::fs::read(out).unwrap()
    }

    fn transcript(&self, work_dir: &str) -> Transcript {
        Transcript::open(&self.root.join(work_dir).join("transcript.jsonl")).unwrap()
    }

    fn token_labels(&self) -> String {
        let output = StdCommand::new(PKCS11_TOOL)
            .env("SOFTHSM2_CONF", self.root.join("softhsm2.conf"))
            .args(["--module", SOFTHSM_MODULE, "--list-token-slots"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `--share` and `--identity` arguments for `custodians` of the share set in `dir`.
fn shares(dir: &str, custodians: &[&str]) -> Vec<String> {
    custodians
        .iter()
        .flat_map(|name| {
            [
                "--share".to_owned(),
                format!("{dir}/{name}.age"),
                "--identity".to_owned(),
                format!("custodians/{name}/identity.txt"),
            ]
        })
        .collect()
}

fn args<'a>(head: &[&'a str], tail: &'a [String]) -> Vec<&'a str> {
    let mut all = head.to_vec();
    all.extend(tail.iter().map(String::as_str));
    all
}

fn count(transcript: &Transcript, action: &str) -> usize {
    transcript
        .records()
        .iter()
        .filter(|record| record.action == action)
        .count()
}

fn last_action(transcript: &Transcript) -> String {
    transcript.records().last().unwrap().action.clone()
}

fn members_yaml(members: &[(&str, &str)]) -> String {
    let mut text = String::from("members:\n");
    for (name, label) in members {
        text.push_str(&format!(
            "  - name: {name}\n    site: Zurich, CH\n    token:\n      label: {label}\n    initialise: false\n"
        ));
    }
    text
}

fn custodians_yaml(threshold: u8) -> String {
    let mut text = format!("custodians:\n  threshold: {threshold}\n  people:\n");
    for name in CUSTODIANS {
        text.push_str(&format!(
            "    - name: {name}\n      recipient_file: custodians/{name}/recipient.txt\n"
        ));
    }
    text
}

fn retire_runbook() -> String {
    format!(
        "{HEADER}  id: demo-fleet\nkind: retire\nfleet_key:\n  label: {DEMO_KEY}\n{}custodians:\n  threshold: 2\noutputs:\n  work_dir: ceremony/retire\n  evidence_dir: evidence/retirement\n",
        members_yaml(&DEMO_MEMBERS)
    )
}

fn rotate_runbook() -> String {
    format!(
        "{HEADER}  id: demo-fleet\nkind: rotate-custodians\n{}outputs:\n  work_dir: ceremony/rotate\n  shares_dir: shares-rotated\n",
        custodians_yaml(3)
    )
}

fn add_member_runbook() -> String {
    format!(
        "{HEADER}  id: grow-fleet\nkind: add-member\nfleet_key:\n  algorithm: ecdsa-p256\n  label: {GROW_KEY}\n{}source: bern-1\nnew_member:\n  name: oslo-1\n  site: Oslo, NO\n  token:\n    label: {NEW_TOKEN}\n  initialise: true\n{}outputs:\n  work_dir: ceremony/add\n  shares_dir: shares-new\n",
        members_yaml(&common::GROWING_MEMBERS),
        custodians_yaml(2)
    )
}

/// Returns the demo runbook turned into a two-member fleet with `growth: trusted-wrap`,
/// on new tokens and in new output folders.
fn trusted_wrap_deployment(demo: &Folder) -> String {
    let text = std::fs::read_to_string(demo.root.join("runbook.yaml")).unwrap();
    common::growing_runbook(&text, "trusted-wrap")
}

/// Kills `run` at `point` and checks that the process did stop there.
fn run_killed(folder: &Folder, run: &[&str], point: &str) {
    let output = folder.run(run, Some(point));
    assert!(
        !output.status.success(),
        "{point}: the run was expected to stop at the kill point: {}",
        stderr(&output)
    );
    assert_eq!(output.status.code(), None, "{point}: {}", stderr(&output));
}

// --- retire ---------------------------------------------------------------------------

/// Checks that no member contains the fleet key and the evidence matches the transcript.
fn check_retired(folder: &Folder, pins: &[(String, String)], point: &str) {
    for (token, pin) in pins {
        let listing = folder.list_objects(token, pin).unwrap();
        assert!(
            !listing.contains(DEMO_KEY),
            "{point}: {token} still lists the fleet key:\n{listing}"
        );
    }
    let transcript = folder.transcript("ceremony/retire");
    assert_eq!(count(&transcript, "fleet key destroyed"), 3, "{point}");
    assert_eq!(
        count(&transcript, "fleet key absence checked"),
        3,
        "{point}"
    );
    assert_eq!(count(&transcript, "quorum action finished"), 1, "{point}");

    let evidence = folder.root.join("evidence/retirement");
    let bytes = std::fs::read(folder.root.join("ceremony/retire/transcript.jsonl")).unwrap();
    assert_eq!(
        std::fs::read(evidence.join("transcript.jsonl")).unwrap(),
        bytes,
        "{point}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("retirement.json")).unwrap()).unwrap();
    assert_eq!(
        record["transcript_sha256"],
        hex::encode(Sha256::digest(&bytes)),
        "{point}"
    );
    assert_eq!(record["members"].as_array().unwrap().len(), 3, "{point}");
    assert!(evidence.join("retirement.md").exists(), "{point}");
}

/// Checks the evidence of a resumed retirement: the fleet key fingerprint, and the count
/// of destroyed objects marked as not recorded exactly on the member whose destruction
/// the kill at `point` left unrecorded.
fn check_retirement_counts(folder: &Folder, point: &str, fingerprint: &str) {
    let evidence = folder.root.join("evidence/retirement");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("retirement.json")).unwrap()).unwrap();
    assert_eq!(record["key_fingerprint"], fingerprint, "{point}");
    assert_eq!(record["scope"], "listed-members-only", "{point}");
    let markdown = std::fs::read_to_string(evidence.join("retirement.md")).unwrap();
    assert!(markdown.contains(fingerprint), "{point}: {markdown}");

    let interrupted = DEMO_MEMBERS
        .iter()
        .position(|(_, token)| point == format!("after-destroy-{token}"));
    for (index, member) in record["members"].as_array().unwrap().iter().enumerate() {
        if Some(index) == interrupted {
            assert_eq!(member["count_not_recorded"], true, "{point}: {member}");
            assert_eq!(member["objects_destroyed"], 0, "{point}: {member}");
            assert!(
                member["count_note"]
                    .as_str()
                    .unwrap()
                    .contains("interrupted after destroying"),
                "{point}: {member}"
            );
        } else {
            assert_eq!(member["count_not_recorded"], false, "{point}: {member}");
            assert_eq!(member["objects_destroyed"], 2, "{point}: {member}");
            assert!(member.get("count_note").is_none(), "{point}: {member}");
        }
    }
    if interrupted.is_some() {
        assert!(
            markdown.contains("the count before the interruption was not recorded"),
            "{point}: {markdown}"
        );
    }
}

#[test]
fn retire_resumes_after_kill_at_every_boundary() {
    let base = Folder::demo();
    base.write("retire.yaml", &retire_runbook());
    let quorum = shares("shares", &["alice", "carol"]);
    let pins = base.user_pins(&quorum);
    let run = args(&["run", "retire.yaml", "--yes"], &quorum);
    let resume = args(&["run", "retire.yaml", "--resume", "--yes"], &quorum);

    let document: serde_json::Value = serde_json::from_slice(
        &std::fs::read(base.root.join("ceremony/demo-fleet/fleet-key.json")).unwrap(),
    )
    .unwrap();
    let fingerprint = document["keys"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fingerprint.len(), 64);

    let mut points: Vec<String> = (1..=8).map(|seq| format!("record-{seq}")).collect();
    for (_, token) in DEMO_MEMBERS {
        points.push(format!("after-destroy-{token}"));
    }
    for point in &points {
        let folder = base.copy();
        run_killed(&folder, &run, point);
        let before = folder.transcript("ceremony/retire").records().to_vec();

        // Abandoning is rejected at every point, and changes nothing.
        let abandon = folder.run(&["abandon", "retire.yaml", "--yes"], None);
        assert_eq!(abandon.status.code(), Some(1), "{point}");
        assert!(
            stderr(&abandon).contains("cannot come back"),
            "{point}: {}",
            stderr(&abandon)
        );
        assert!(stderr(&abandon).contains("--resume"), "{point}");
        assert_eq!(
            folder.transcript("ceremony/retire").records(),
            &before[..],
            "{point}"
        );

        let output = folder.run(&resume, None);
        assert!(output.status.success(), "{point}: {}", stderr(&output));
        check_retired(&folder, &pins, point);
        let transcript = folder.transcript("ceremony/retire");
        assert_eq!(count(&transcript, "quorum action resumed"), 1, "{point}");
        check_retirement_counts(&folder, point, &fingerprint);

        let again = folder.run(&resume, None);
        assert!(stderr(&again).contains("is finished"), "{point}");
    }
}

#[test]
fn retire_resume_rejects_key_on_destroyed_member() {
    let folder = Folder::demo();
    folder.write("retire.yaml", &retire_runbook());
    let quorum = shares("shares", &["alice", "carol"]);
    let pins = folder.user_pins(&quorum);
    run_killed(
        &folder,
        &args(&["run", "retire.yaml", "--yes"], &quorum),
        "record-3",
    );

    // An object with the fleet key label reappears on the member recorded as cleared.
    let (token, pin) = &pins[0];
    let output = StdCommand::new(PKCS11_TOOL)
        .env("SOFTHSM2_CONF", folder.root.join("softhsm2.conf"))
        .args(["--module", SOFTHSM_MODULE, "--token-label", token])
        .args(["--login", "--pin", pin, "--keypairgen"])
        .args(["--key-type", "EC:prime256v1", "--label", DEMO_KEY])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let before = folder.transcript("ceremony/retire").records().to_vec();

    let resume = folder.run(
        &args(&["run", "retire.yaml", "--resume", "--yes"], &quorum),
        None,
    );
    assert_eq!(resume.status.code(), Some(1));
    let message = stderr(&resume);
    assert!(message.contains("transcript.jsonl"), "{message}");
    assert!(
        message.contains("step \"fleet key destroyed\""),
        "{message}"
    );
    assert!(message.contains("nothing was changed"), "{message}");
    assert!(message.contains("hint:"), "{message}");
    assert_eq!(folder.transcript("ceremony/retire").records(), &before[..]);
    // The members after the first still hold their key.
    let (later, later_pin) = &pins[2];
    let listing = folder.list_objects(later, later_pin).unwrap();
    assert_eq!(listing.matches(DEMO_KEY).count(), 2, "{listing}");
}

// --- rotate-custodians ----------------------------------------------------------------

/// The outcome expected of `run --resume` after a kill at a rotation's point.
#[derive(Debug, PartialEq)]
enum RotateResume {
    Completes,
    NeedsAbandon,
    AlreadyFinished,
}

fn rotate_points() -> Vec<(String, RotateResume)> {
    use RotateResume::*;
    let mut points = vec![
        ("record-1".to_owned(), Completes),
        ("record-2".to_owned(), Completes),
        ("after-share-file-alice".to_owned(), NeedsAbandon),
        ("after-share-file-bob".to_owned(), NeedsAbandon),
        ("after-share-file-carol".to_owned(), Completes),
    ];
    for seq in 3..=5 {
        points.push((format!("record-{seq}"), Completes));
    }
    points.push(("record-6".to_owned(), AlreadyFinished));
    points
}

fn rotated_files(folder: &Folder) -> Vec<String> {
    let dir = folder.root.join("shares-rotated");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Checks that the three new shares recover PINs that log in on every token.
fn check_rotated(folder: &Folder, point: &str) {
    assert_eq!(
        rotated_files(folder),
        ["alice.age", "bob.age", "carol.age"],
        "{point}"
    );
    let new_shares = shares("shares-rotated", &CUSTODIANS);
    let combine = folder.run(
        &args(&["shares", "combine", "--check-login"], &new_shares),
        None,
    );
    assert!(combine.status.success(), "{point}: {}", stderr(&combine));
    let transcript = folder.transcript("ceremony/rotate");
    let records = transcript.records();
    let last_split = records
        .iter()
        .rposition(|record| record.action == "credentials split")
        .unwrap();
    let written = records[last_split..]
        .iter()
        .filter(|record| record.action == "share written")
        .count();
    assert_eq!(written, 3, "{point}");
    assert_eq!(count(&transcript, "quorum action finished"), 1, "{point}");
}

#[test]
fn rotate_resumes_or_abandons_after_kill() {
    let base = Folder::demo();
    base.write("rotate.yaml", &rotate_runbook());
    let quorum = shares("shares", &["alice", "carol"]);
    let run = args(&["run", "rotate.yaml", "--yes"], &quorum);
    let resume = args(&["run", "rotate.yaml", "--resume", "--yes"], &quorum);

    for (point, expected) in rotate_points() {
        let folder = base.copy();
        run_killed(&folder, &run, &point);
        let files_before = rotated_files(&folder);
        let records_before = folder.transcript("ceremony/rotate").records().to_vec();

        let output = folder.run(&resume, None);
        match expected {
            RotateResume::Completes => {
                assert!(output.status.success(), "{point}: {}", stderr(&output));
                check_rotated(&folder, &point);
            }
            RotateResume::AlreadyFinished => {
                assert!(stderr(&output).contains("is finished"), "{point}");
                check_rotated(&folder, &point);
            }
            RotateResume::NeedsAbandon => {
                assert_eq!(output.status.code(), Some(1), "{point}");
                let message = stderr(&output);
                assert!(message.contains("step \"share written\""), "{message}");
                assert!(message.contains("fleet-ceremony abandon"), "{message}");
                assert_eq!(rotated_files(&folder), files_before, "{point}");
                assert_eq!(
                    folder.transcript("ceremony/rotate").records(),
                    &records_before[..],
                    "{point}"
                );
            }
        }

        // Abandoning at the same point, on a new copy, leaves no new share file.
        if expected == RotateResume::AlreadyFinished {
            continue;
        }
        let folder = base.copy();
        run_killed(&folder, &run, &point);
        let abandon = folder.run(&["abandon", "rotate.yaml", "--yes"], None);
        assert!(abandon.status.success(), "{point}: {}", stderr(&abandon));
        assert!(rotated_files(&folder).is_empty(), "{point}");
        let transcript = folder.transcript("ceremony/rotate");
        assert_eq!(
            last_action(&transcript),
            "quorum action abandoned",
            "{point}"
        );
        let again = folder.run(&resume, None);
        assert!(stderr(&again).contains("was abandoned"), "{point}");
        // The shares the rotation started with still recover the PINs.
        let combine = folder.run(
            &args(&["shares", "combine", "--check-login"], &quorum),
            None,
        );
        assert!(combine.status.success(), "{point}: {}", stderr(&combine));
    }
}

// --- add-member -----------------------------------------------------------------------

/// Which shares `run --resume` needs after a kill at an add-member point.
#[derive(Debug, Clone, Copy, PartialEq)]
enum AddResume {
    /// No new share was written: the shares the action started with.
    OldShares,
    /// The new set is partly written: resuming is rejected.
    NeedsAbandon,
    /// The new set is complete: a quorum of the new shares.
    NewShares,
    /// The action finished before the kill.
    AlreadyFinished,
}

fn add_member_points() -> Vec<(String, AddResume)> {
    use AddResume::*;
    let mut points = vec![
        ("record-1".to_owned(), OldShares),
        ("record-2".to_owned(), OldShares),
        ("after-share-file-alice".to_owned(), NeedsAbandon),
        ("after-share-file-bob".to_owned(), NeedsAbandon),
        ("after-share-file-carol".to_owned(), NewShares),
    ];
    for seq in 3..=5 {
        points.push((format!("record-{seq}"), NewShares));
    }
    points.push((format!("after-init-token-{NEW_TOKEN}"), NewShares));
    points.push(("record-6".to_owned(), NewShares));
    points.push((format!("mid-replication-{NEW_TOKEN}"), NewShares));
    points.push(("record-7".to_owned(), NewShares));
    points.push(("record-8".to_owned(), AlreadyFinished));
    points
}

/// Deploys a two-member trusted-wrap fleet in a new demo folder and writes the
/// add-member runbook.
fn growing_fleet() -> Folder {
    let base = Folder::demo();
    base.write("grow.yaml", &trusted_wrap_deployment(&base));
    let deploy = base.run(&["run", "grow.yaml", "--yes"], None);
    // Exit code 4: the HSM part is done and the run waits for the auditor's signature.
    assert_eq!(deploy.status.code(), Some(4), "{}", stderr(&deploy));
    base.write("add.yaml", &add_member_runbook());
    base
}

/// Checks that the new token contains exactly one non-extractable fleet private key whose
/// public key is the source's.
fn check_added(folder: &Folder, new_shares: &[String], point: &str) {
    let pins = folder.user_pins(new_shares);
    let (token, pin) = pins
        .iter()
        .find(|(token, _)| token == NEW_TOKEN)
        .unwrap_or_else(|| panic!("{point}: no PINs for {NEW_TOKEN}"));
    let listing = folder.list_objects(token, pin).unwrap();
    assert_eq!(
        common::private_keys(&listing, GROW_KEY),
        (1, 0),
        "{point}: {listing}"
    );
    assert_eq!(
        folder.public_key_der(NEW_TOKEN, GROW_KEY),
        folder.public_key_der("grow-bern-1", GROW_KEY),
        "{point}"
    );
    let transcript = folder.transcript("ceremony/add");
    assert_eq!(count(&transcript, "quorum action finished"), 1, "{point}");
    assert_eq!(count(&transcript, "token initialised"), 1, "{point}");
    let combine = folder.run(
        &args(&["shares", "combine", "--check-login"], new_shares),
        None,
    );
    assert!(combine.status.success(), "{point}: {}", stderr(&combine));
}

#[test]
fn add_member_resumes_after_kill_at_every_boundary() {
    let base = growing_fleet();
    let old = shares("shares-grow", &["alice", "bob"]);
    let new = shares("shares-new", &["alice", "carol"]);
    let run = args(&["run", "add.yaml", "--yes"], &old);

    for (point, expected) in add_member_points() {
        let folder = base.copy();
        run_killed(&folder, &run, &point);
        let records_before = folder.transcript("ceremony/add").records().to_vec();

        // Once the new set is complete, the old shares are rejected before anything changes.
        if expected == AddResume::NewShares {
            let output = folder.run(&args(&["run", "add.yaml", "--resume", "--yes"], &old), None);
            assert_eq!(output.status.code(), Some(1), "{point}");
            let message = stderr(&output);
            assert!(
                message.contains("nothing was changed"),
                "{point}: {message}"
            );
            assert!(message.contains("shares-new"), "{point}: {message}");
            assert_eq!(
                folder.transcript("ceremony/add").records(),
                &records_before[..],
                "{point}"
            );
        }

        let quorum = match expected {
            AddResume::OldShares | AddResume::NeedsAbandon => &old,
            AddResume::NewShares | AddResume::AlreadyFinished => &new,
        };
        let output = folder.run(
            &args(&["run", "add.yaml", "--resume", "--yes"], quorum),
            None,
        );
        match expected {
            AddResume::OldShares | AddResume::NewShares => {
                assert!(output.status.success(), "{point}: {}", stderr(&output));
                check_added(&folder, &new, &point);
                // The copy the stopped run made without a record was destroyed first.
                let leftovers = count(
                    &folder.transcript("ceremony/add"),
                    "unrecorded objects removed",
                );
                assert_eq!(leftovers, usize::from(point.starts_with("mid-")), "{point}");
            }
            AddResume::AlreadyFinished => {
                assert!(stderr(&output).contains("is finished"), "{point}");
                check_added(&folder, &new, &point);
            }
            AddResume::NeedsAbandon => {
                assert_eq!(output.status.code(), Some(1), "{point}");
                assert!(
                    stderr(&output).contains("fleet-ceremony abandon"),
                    "{point}: {}",
                    stderr(&output)
                );
                assert!(!folder.token_labels().contains(NEW_TOKEN), "{point}");
                assert_eq!(
                    folder.transcript("ceremony/add").records(),
                    &records_before[..],
                    "{point}"
                );
            }
        }
    }
}

fn new_share_names(folder: &Folder) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder.root.join("shares-new")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn add_member_abandons_after_kill_at_every_boundary() {
    let base = growing_fleet();
    let old = shares("shares-grow", &["alice", "bob"]);
    let new = shares("shares-new", &["alice", "carol"]);
    let moved: Vec<String> = shares("shares-new", &["alice", "carol"])
        .into_iter()
        .map(|arg| {
            if arg.ends_with(".age") {
                format!("{arg}.abandoned-1")
            } else {
                arg
            }
        })
        .collect();
    let run = args(&["run", "add.yaml", "--yes"], &old);

    for (point, expected) in add_member_points() {
        let folder = base.copy();
        run_killed(&folder, &run, &point);
        let token_exists = folder.token_labels().contains(NEW_TOKEN);
        let abandon = args(&["abandon", "add.yaml", "--yes"], &new);

        if expected == AddResume::AlreadyFinished {
            let output = folder.run(&abandon, None);
            assert_eq!(output.status.code(), Some(1), "{point}");
            assert!(stderr(&output).contains("finished"), "{point}");
            continue;
        }
        if token_exists {
            // Only the new shares hold the new token's PINs.
            let output = folder.run(&["abandon", "add.yaml", "--yes"], None);
            assert_eq!(output.status.code(), Some(1), "{point}");
            assert!(
                stderr(&output).contains("new shares"),
                "{point}: {}",
                stderr(&output)
            );
            let output = folder.run(&abandon, None);
            assert!(output.status.success(), "{point}: {}", stderr(&output));
            assert_eq!(
                new_share_names(&folder),
                [
                    "alice.age.abandoned-1",
                    "bob.age.abandoned-1",
                    "carol.age.abandoned-1"
                ],
                "{point}"
            );
            // The moved shares still recover the token's PINs, and the token contains no key.
            let pins = folder.user_pins(&moved);
            let (_, pin) = pins.iter().find(|(token, _)| token == NEW_TOKEN).unwrap();
            // A run stopped right after initialising the token set no user PIN, so the
            // token can hold no user object.
            if !point.starts_with("after-init-token") {
                let listing = folder.list_objects(NEW_TOKEN, pin).unwrap();
                assert!(!listing.contains(GROW_KEY), "{point}: {listing}");
            }
        } else {
            let output = folder.run(&["abandon", "add.yaml", "--yes"], None);
            assert!(output.status.success(), "{point}: {}", stderr(&output));
            assert!(new_share_names(&folder).is_empty(), "{point}");
        }

        let transcript = folder.transcript("ceremony/add");
        assert_eq!(
            last_action(&transcript),
            "quorum action abandoned",
            "{point}"
        );
        // The source keeps its key, and the old shares stay valid.
        let combine = folder.run(&args(&["shares", "combine", "--check-login"], &old), None);
        assert!(combine.status.success(), "{point}: {}", stderr(&combine));
        let pins = folder.user_pins(&old);
        let (_, source_pin) = pins
            .iter()
            .find(|(token, _)| token == "grow-bern-1")
            .unwrap();
        let listing = folder.list_objects("grow-bern-1", source_pin).unwrap();
        assert_eq!(common::private_keys(&listing, GROW_KEY), (1, 1), "{point}");
    }
}
