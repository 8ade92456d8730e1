//! Quorum-action runbooks (`retire`, `add-member`, `rotate-custodians`) through the binary,
//! on the demo's SoftHSM tokens, with pkcs11-tool (OpenSC) as the independent reader of
//! the tokens.
//!
//! Each test runs its own demo in a new folder. SoftHSM reads `SOFTHSM2_CONF` once per
//! process, so every child process gets it in its own environment.

mod common;

use std::path::PathBuf;
use std::process::Command as StdCommand;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;
use sha2::{Digest, Sha256};

const PKCS11_TOOL: &str = "pkcs11-tool";
const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const FLEET_KEY: &str = "demo-fleet-key";

/// Members of the demo fleet and their token labels, in runbook order.
const DEMO_MEMBERS: [(&str, &str); 3] = [
    ("zurich-1", "demo-zurich-1"),
    ("frankfurt-1", "demo-frankfurt-1"),
    ("dublin-1", "demo-dublin-1"),
];

/// A finished demo in a temporary folder.
struct Demo {
    _temp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn run() -> Demo {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo");
        cargo_bin_cmd!("fleet-ceremony")
            .arg("demo")
            .arg("--dir")
            .arg(&root)
            .assert()
            .success();
        Demo { _temp: temp, root }
    }

    fn conf(&self) -> PathBuf {
        self.root.join("softhsm2.conf")
    }

    /// `fleet-ceremony ARGS` with SoftHSM configured for the demo tokens.
    fn cli(&self) -> Command {
        let mut command = cargo_bin_cmd!("fleet-ceremony");
        command.env("SOFTHSM2_CONF", self.conf());
        command.current_dir(&self.root);
        command
    }

    /// Writes a runbook into the demo folder and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Returns (member, token label, user PIN) per member, from `shares combine --reveal`.
    fn user_pins(&self, shares: &[(PathBuf, PathBuf)]) -> Vec<(String, String, String)> {
        let mut command = self.cli();
        command.args(["shares", "combine", "--reveal"]);
        with_shares(&mut command, shares);
        let output = command.assert().success().get_output().stdout.clone();
        String::from_utf8(output)
            .unwrap()
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (
                    fields[0].to_string(),
                    fields[1].to_string(),
                    fields[3].to_string(),
                )
            })
            .collect()
    }

    /// Object listing of a token after a user login, by pkcs11-tool.
    fn list_objects(&self, token_label: &str, user_pin: &str) -> String {
        let output = StdCommand::new(PKCS11_TOOL)
            .env("SOFTHSM2_CONF", self.conf())
            .args(["--module", SOFTHSM_MODULE, "--token-label", token_label])
            .args(["--list-objects", "--login", "--pin", user_pin])
            .output()
            .unwrap();
        assert!(output.status.success(), "pkcs11-tool failed: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    fn token_labels(&self) -> String {
        let output = StdCommand::new(PKCS11_TOOL)
            .env("SOFTHSM2_CONF", self.conf())
            .args(["--module", SOFTHSM_MODULE, "--list-token-slots"])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Returns a custodian's share file in `dir` and their identity, relative to the demo folder.
fn share(dir: &str, custodian: &str) -> (PathBuf, PathBuf) {
    (
        PathBuf::from(format!("{dir}/{custodian}.age")),
        PathBuf::from(format!("custodians/{custodian}/identity.txt")),
    )
}

/// Adds one `--share` and `--identity` pair per share.
fn with_shares(command: &mut Command, shares: &[(PathBuf, PathBuf)]) {
    for (share, identity) in shares {
        command
            .arg("--share")
            .arg(share)
            .arg("--identity")
            .arg(identity);
    }
}

fn members_yaml() -> String {
    let mut text = String::from("members:\n");
    for ((name, label), site) in
        DEMO_MEMBERS
            .iter()
            .zip(["Zurich, CH", "Frankfurt, DE", "Dublin, IE"])
    {
        text.push_str(&format!(
            "  - name: {name}\n    site: {site}\n    token:\n      label: {label}\n    initialise: false\n"
        ));
    }
    text
}

const HEADER: &str =
    "version: 1\nfleet:\n  id: demo-fleet\n  namespace: backup.example.com/fleets\n  epoch: 1\n";

fn retire_runbook() -> String {
    format!(
        "{HEADER}kind: retire\nfleet_key:\n  label: {FLEET_KEY}\n{}custodians:\n  threshold: 2\noutputs:\n  work_dir: ceremony/retire\n  evidence_dir: evidence/demo-fleet-retirement\n",
        members_yaml()
    )
}

fn custodians_yaml(threshold: u8) -> String {
    let mut text = format!("custodians:\n  threshold: {threshold}\n  people:\n");
    for name in ["alice", "bob", "carol"] {
        text.push_str(&format!(
            "    - name: {name}\n      recipient_file: custodians/{name}/recipient.txt\n"
        ));
    }
    text
}

fn add_member_runbook(key_label: &str) -> String {
    format!(
        "{HEADER}kind: add-member\nfleet_key:\n  algorithm: ecdsa-p256\n  label: {key_label}\n{}source: zurich-1\nnew_member:\n  name: oslo-1\n  site: Oslo, NO\n  token:\n    label: demo-oslo-1\n  initialise: true\n{}outputs:\n  work_dir: ceremony/add-oslo-1\n  shares_dir: shares-oslo\n",
        members_yaml(),
        custodians_yaml(2)
    )
}

fn two_shares() -> Vec<(PathBuf, PathBuf)> {
    vec![share("shares", "alice"), share("shares", "carol")]
}

#[test]
fn retire_leaves_no_fleet_key() {
    let demo = Demo::run();
    let pins = demo.user_pins(&two_shares());
    assert_eq!(pins.len(), 3);
    for (_, token, pin) in &pins {
        assert!(
            demo.list_objects(token, pin).contains(FLEET_KEY),
            "{token} lacks the key before retiring"
        );
    }
    let runbook = demo.write("retire.yaml", &retire_runbook());

    let mut check = demo.cli();
    check.arg("check").arg(&runbook);
    with_shares(&mut check, &two_shares());
    check.assert().success();

    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &two_shares());
    run.assert().success();

    for (member, token, pin) in &pins {
        let listing = demo.list_objects(token, pin);
        assert!(
            !listing.contains(FLEET_KEY),
            "{member} still lists the fleet key:\n{listing}"
        );
    }

    let evidence = demo.root.join("evidence/demo-fleet-retirement");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("retirement.json")).unwrap()).unwrap();
    assert_eq!(record["fleet_id"], "demo-fleet");
    assert_eq!(record["objects_destroyed"], 6);
    assert_eq!(record["members"].as_array().unwrap().len(), 3);
    assert!(record["retired_at"].as_str().unwrap().ends_with('Z'));
    let transcript = std::fs::read(demo.root.join("ceremony/retire/transcript.jsonl")).unwrap();
    assert_eq!(
        std::fs::read(evidence.join("transcript.jsonl")).unwrap(),
        transcript
    );
    assert_eq!(
        record["transcript_sha256"],
        hex::encode(Sha256::digest(&transcript))
    );
    let text = String::from_utf8(transcript).unwrap();
    assert_eq!(text.matches("\"fleet key destroyed\"").count(), 3);
    assert_eq!(text.matches("\"fleet key absence checked\"").count(), 3);
    assert!(
        std::fs::read_to_string(evidence.join("retirement.md"))
            .unwrap()
            .contains("| dublin-1 |")
    );

    // A second run is rejected, because the transcript exists.
    let mut again = demo.cli();
    again.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut again, &two_shares());
    let output = again.assert().failure().get_output().stderr.clone();
    assert!(String::from_utf8_lossy(&output).contains("ran or started before"));
}

#[test]
fn retire_with_one_share_changes_nothing() {
    let demo = Demo::run();
    let pins = demo.user_pins(&two_shares());
    let runbook = demo.write("retire.yaml", &retire_runbook());

    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &[share("shares", "alice")]);
    let output = run.assert().failure().get_output().stderr.clone();
    let stderr = String::from_utf8_lossy(&output);
    assert!(stderr.contains("threshold is 2"), "{stderr}");

    assert!(!demo.root.join("ceremony/retire").exists());
    assert!(!demo.root.join("evidence/demo-fleet-retirement").exists());
    for (member, token, pin) in &pins {
        assert!(
            demo.list_objects(token, pin).contains(FLEET_KEY),
            "{member} lost its key"
        );
    }
}

#[test]
fn rotate_then_new_shares_log_in() {
    let demo = Demo::run();
    let runbook = demo.write(
        "rotate.yaml",
        &format!(
            "{HEADER}kind: rotate-custodians\n{}outputs:\n  work_dir: ceremony/rotate\n  shares_dir: shares-rotated\n",
            custodians_yaml(3)
        ),
    );
    demo.cli().arg("check").arg(&runbook).assert().success();

    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &two_shares());
    run.assert().success();

    let new_shares: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|name| share("shares-rotated", name))
        .collect();
    let mut combine = demo.cli();
    combine.args(["shares", "combine", "--check-login"]);
    with_shares(&mut combine, &new_shares);
    combine.assert().success();

    // The new threshold is 3, so two new shares do not recover the PINs.
    let mut too_few = demo.cli();
    too_few.args(["shares", "combine"]);
    with_shares(&mut too_few, &new_shares[..2]);
    too_few.assert().failure();

    let transcript =
        std::fs::read_to_string(demo.root.join("ceremony/rotate/transcript.jsonl")).unwrap();
    assert_eq!(transcript.matches("\"share written\"").count(), 3);
}

#[test]
fn add_member_check_names_locked_key() {
    let demo = Demo::run();
    let runbook = demo.write("add.yaml", &add_member_runbook(FLEET_KEY));

    for command in ["check", "run"] {
        let mut cli = demo.cli();
        cli.arg(command).arg(&runbook);
        if command == "run" {
            cli.arg("--yes");
        }
        with_shares(&mut cli, &two_shares());
        let output = cli.assert().failure().get_output().stderr.clone();
        let stderr = String::from_utf8_lossy(&output);
        assert!(
            stderr.contains("CKA_EXTRACTABLE false"),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains("nothing was changed"),
            "{command}: {stderr}"
        );
    }
    assert!(!demo.token_labels().contains("demo-oslo-1"));
    assert!(!demo.root.join("shares-oslo").exists());
    assert!(!demo.root.join("ceremony/add-oslo-1").exists());
}

#[test]
fn add_member_copies_wrappable_key() {
    let demo = Demo::run();
    let pins = demo.user_pins(&two_shares());
    let (_, token, pin) = &pins[0];
    // An extractable key that a deployment would have locked, made by an independent tool.
    let status = StdCommand::new(PKCS11_TOOL)
        .env("SOFTHSM2_CONF", demo.conf())
        .args([
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            token,
            "--login",
            "--pin",
            pin,
        ])
        .args([
            "--keypairgen",
            "--key-type",
            "EC:prime256v1",
            "--label",
            "wrappable-key",
        ])
        .args([
            "--id",
            "0102",
            "--usage-sign",
            "--sensitive",
            "--extractable",
            "--private",
        ])
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");

    let runbook = demo.write("add.yaml", &add_member_runbook("wrappable-key"));
    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &two_shares());
    run.assert().success();

    let new_shares = vec![share("shares-oslo", "bob"), share("shares-oslo", "carol")];
    let mut combine = demo.cli();
    combine.args(["shares", "combine", "--check-login"]);
    with_shares(&mut combine, &new_shares);
    combine.assert().success();

    let new_pins = demo.user_pins(&new_shares);
    assert_eq!(new_pins.len(), 4);
    let (member, new_token, new_pin) = &new_pins[3];
    assert_eq!(member, "oslo-1");
    let listing = demo.list_objects(new_token, new_pin);
    assert_eq!(listing.matches("wrappable-key").count(), 2, "{listing}");
    let transcript =
        std::fs::read_to_string(demo.root.join("ceremony/add-oslo-1/transcript.jsonl")).unwrap();
    assert!(transcript.contains("\"fleet key replicated\""));
}

/// Writes the demo runbook turned into a two-member fleet whose fleet key has `growth`, on new
/// tokens and in new output folders of the demo folder.
fn growing_deployment(demo: &Demo, growth: &str) -> PathBuf {
    let text = std::fs::read_to_string(demo.root.join("runbook.yaml")).unwrap();
    demo.write(
        &format!("grow-{growth}.yaml"),
        &common::growing_runbook(&text, growth),
    )
}

/// Returns an add-member runbook that copies the two-member fleet's key from bern-1 to oslo-1.
fn growing_add_member_runbook() -> String {
    let mut members = String::from("members:\n");
    for (name, label) in common::GROWING_MEMBERS {
        members.push_str(&format!(
            "  - name: {name}\n    site: Bern, CH\n    token:\n      label: {label}\n    initialise: false\n"
        ));
    }
    format!(
        "version: 1\nfleet:\n  id: grow-fleet\n  namespace: backup.example.com/fleets\n  epoch: 1\nkind: add-member\nfleet_key:\n  algorithm: ecdsa-p256\n  label: grow-fleet-key\n{members}source: bern-1\nnew_member:\n  name: oslo-1\n  site: Oslo, NO\n  token:\n    label: grow-oslo-1\n  initialise: true\n{}outputs:\n  work_dir: ceremony/grow-oslo-1\n  shares_dir: shares-grow-oslo\n",
        custodians_yaml(2)
    )
}

/// Reads the public key of `label` on a token as DER, by pkcs11-tool.
fn public_key_der(demo: &Demo, token_label: &str, label: &str) -> Vec<u8> {
    let out = demo.root.join(format!("{token_label}-{label}.der"));
    let output = StdCommand::new(PKCS11_TOOL)
        .env("SOFTHSM2_CONF", demo.conf())
        .args(["--module", SOFTHSM_MODULE, "--token-label", token_label])
        .args([
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            label,
            "--output-file",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "pkcs11-tool failed: {output:?}");
    std::fs::read(out).unwrap()
}

#[test]
fn trusted_wrap_fleet_gains_a_member() {
    let demo = Demo::run();
    let deployment = growing_deployment(&demo, "trusted-wrap");
    let mut run = demo.cli();
    run.arg("run").arg(&deployment).arg("--yes");
    // Exit code 4: the HSM part is done and the run waits for the auditor's signature.
    run.assert().code(4);

    let document: serde_json::Value = serde_json::from_slice(
        &std::fs::read(demo.root.join("ceremony/grow-fleet/fleet-key.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(document["keys"][0]["growth"], "trusted-wrap");
    let origin = &document["members"][0]["key_attributes"];
    assert_eq!(origin["CKA_EXTRACTABLE"], true);
    assert_eq!(origin["CKA_WRAP_WITH_TRUSTED"], true);
    let copy = &document["members"][1]["key_attributes"];
    assert_eq!(copy["CKA_EXTRACTABLE"], false);
    assert!(copy.get("CKA_WRAP_WITH_TRUSTED").is_none(), "{copy}");

    let deployed_shares = vec![share("shares-grow", "alice"), share("shares-grow", "bob")];
    let runbook = demo.write("grow-add.yaml", &growing_add_member_runbook());
    let mut check = demo.cli();
    check.arg("check").arg(&runbook);
    with_shares(&mut check, &deployed_shares);
    check.assert().success();

    let mut add = demo.cli();
    add.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut add, &deployed_shares);
    add.assert().success();

    let new_shares = vec![
        share("shares-grow-oslo", "alice"),
        share("shares-grow-oslo", "carol"),
    ];
    let pins = demo.user_pins(&new_shares);
    assert_eq!(pins.len(), 3);
    let (member, new_token, new_pin) = &pins[2];
    assert_eq!(member, "oslo-1");
    let listing = demo.list_objects(new_token, new_pin);
    assert_eq!(
        common::private_keys(&listing, "grow-fleet-key"),
        (1, 0),
        "{listing}"
    );
    assert_eq!(
        public_key_der(&demo, new_token, "grow-fleet-key"),
        public_key_der(&demo, "grow-bern-1", "grow-fleet-key")
    );

    // The origin still has its key, extractable only under trusted keys.
    let (_, origin_token, origin_pin) = &pins[0];
    let origin_listing = demo.list_objects(origin_token, origin_pin);
    assert_eq!(
        common::private_keys(&origin_listing, "grow-fleet-key"),
        (1, 1),
        "{origin_listing}"
    );

    let transcript =
        std::fs::read_to_string(demo.root.join("ceremony/grow-oslo-1/transcript.jsonl")).unwrap();
    let replicated: serde_json::Value = transcript
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| record["action"] == "fleet key replicated")
        .unwrap();
    assert_eq!(replicated["details"]["growth"], "trusted-wrap");
    assert_eq!(replicated["details"]["trusted_wrapping_key"], true);
    assert_eq!(
        replicated["details"]["key_attributes"]["CKA_EXTRACTABLE"],
        false
    );
}

#[test]
fn locked_fleet_add_member_hints_at_growth() {
    let demo = Demo::run();
    let runbook = demo.write("add.yaml", &add_member_runbook(FLEET_KEY));
    let mut check = demo.cli();
    check.arg("check").arg(&runbook);
    with_shares(&mut check, &two_shares());
    let output = check.assert().failure().get_output().stderr.clone();
    let stderr = String::from_utf8_lossy(&output);
    assert!(stderr.contains("growth: trusted-wrap"), "{stderr}");
}

#[test]
fn trusted_wrap_check_catches_wrong_so_pin() {
    let demo = Demo::run();
    let deployment = growing_deployment(&demo, "trusted-wrap");
    let mut run = demo.cli();
    run.arg("run").arg(&deployment).arg("--yes");
    run.assert().code(4);

    // The source's SO PIN changes behind the shares' back.
    let deployed_shares = vec![share("shares-grow", "alice"), share("shares-grow", "bob")];
    let mut reveal = demo.cli();
    reveal.args(["shares", "combine", "--reveal"]);
    with_shares(&mut reveal, &deployed_shares);
    let revealed =
        String::from_utf8(reveal.assert().success().get_output().stdout.clone()).unwrap();
    let source = revealed
        .lines()
        .find(|line| line.starts_with("bern-1\t"))
        .unwrap();
    let fields: Vec<&str> = source.split('\t').collect();
    let output = StdCommand::new(PKCS11_TOOL)
        .env("SOFTHSM2_CONF", demo.conf())
        .args(["--module", SOFTHSM_MODULE, "--token-label", fields[1]])
        .args(["--login", "--login-type", "so", "--so-pin", fields[2]])
        .args(["--change-pin", "--new-pin", "changed-so-pin-0"])
        .output()
        .unwrap();
    assert!(output.status.success(), "pkcs11-tool failed: {output:?}");

    let runbook = demo.write("grow-add.yaml", &growing_add_member_runbook());
    for command in ["check", "run"] {
        let mut attempt = demo.cli();
        attempt.arg(command).arg(&runbook);
        if command == "run" {
            attempt.arg("--yes");
        }
        with_shares(&mut attempt, &deployed_shares);
        let output = attempt.assert().failure().get_output().stderr.clone();
        let stderr = String::from_utf8_lossy(&output);
        assert!(stderr.contains("security officer"), "{command}: {stderr}");
    }
    assert!(!demo.token_labels().contains("grow-oslo-1"));
    assert!(!demo.root.join("shares-grow-oslo").exists());
}

/// Returns a retire runbook for the two original members of the trusted-wrap fleet.
fn growing_retire_runbook() -> String {
    let mut members = String::from("members:\n");
    for (name, label) in common::GROWING_MEMBERS {
        members.push_str(&format!(
            "  - name: {name}\n    site: Bern, CH\n    token:\n      label: {label}\n    initialise: false\n"
        ));
    }
    format!(
        "version: 1\nfleet:\n  id: grow-fleet\n  namespace: backup.example.com/fleets\n  epoch: 1\nkind: retire\nfleet_key:\n  label: grow-fleet-key\n{members}custodians:\n  threshold: 2\noutputs:\n  work_dir: ceremony/grow-retire\n  evidence_dir: evidence-grow-retirement\n"
    )
}

/// Deploys the trusted-wrap fleet and adds oslo-1 to it; returns the fleet key document.
fn grown_fleet(demo: &Demo) -> serde_json::Value {
    let deployment = growing_deployment(demo, "trusted-wrap");
    let mut run = demo.cli();
    run.arg("run").arg(&deployment).arg("--yes");
    run.assert().code(4);
    let runbook = demo.write("grow-add.yaml", &growing_add_member_runbook());
    let mut add = demo.cli();
    add.arg("run").arg(&runbook).arg("--yes");
    with_shares(
        &mut add,
        &[share("shares-grow", "alice"), share("shares-grow", "bob")],
    );
    add.assert().success();
    serde_json::from_slice(
        &std::fs::read(demo.root.join("ceremony/grow-fleet/fleet-key.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn retire_rejects_shares_of_unlisted_member() {
    let demo = Demo::run();
    let document = grown_fleet(&demo);
    let runbook = demo.write("grow-retire.yaml", &growing_retire_runbook());
    let new_shares = vec![
        share("shares-grow-oslo", "alice"),
        share("shares-grow-oslo", "carol"),
    ];

    // The newest share set contains oslo-1's PINs, so a runbook without oslo-1 is rejected.
    for command in ["check", "run"] {
        let mut attempt = demo.cli();
        attempt.arg(command).arg(&runbook);
        if command == "run" {
            attempt.arg("--yes");
        }
        with_shares(&mut attempt, &new_shares);
        let output = attempt.assert().failure().get_output().stderr.clone();
        let stderr = String::from_utf8_lossy(&output);
        assert!(stderr.contains("member(s) oslo-1"), "{command}: {stderr}");
        assert!(stderr.contains("does not list"), "{command}: {stderr}");
        assert!(
            stderr.contains("nothing was changed"),
            "{command}: {stderr}"
        );
    }
    assert!(!demo.root.join("ceremony/grow-retire").exists());
    assert!(!demo.root.join("evidence-grow-retirement").exists());
    let pins = demo.user_pins(&new_shares);
    assert_eq!(pins.len(), 3);
    for (member, token, pin) in &pins {
        let listing = demo.list_objects(token, pin);
        assert_eq!(
            listing.matches("grow-fleet-key").count(),
            2,
            "{member} lost its key:\n{listing}"
        );
    }

    // The deployment's shares lack oslo-1's PINs, so the retirement runs, and its evidence
    // states that it covers the listed members only.
    let deployed_shares = vec![share("shares-grow", "alice"), share("shares-grow", "bob")];
    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &deployed_shares);
    let output = run.assert().success().get_output().stderr.clone();
    let stderr = String::from_utf8_lossy(&output);
    assert!(stderr.contains("listed members only"), "{stderr}");

    let evidence = demo.root.join("evidence-grow-retirement");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(evidence.join("retirement.json")).unwrap()).unwrap();
    let fingerprint = document["keys"][0]["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 64);
    assert_eq!(record["key_fingerprint"], fingerprint);
    assert_eq!(
        hex::encode(Sha256::digest(public_key_der(
            &demo,
            "grow-oslo-1",
            "grow-fleet-key"
        ))),
        fingerprint
    );
    assert_eq!(record["scope"], "listed-members-only");
    assert!(
        record["scope_note"]
            .as_str()
            .unwrap()
            .contains("add-member"),
        "{record}"
    );
    assert_eq!(record["members"].as_array().unwrap().len(), 2);
    assert_eq!(record["members"][0]["count_not_recorded"], false);
    let markdown = std::fs::read_to_string(evidence.join("retirement.md")).unwrap();
    assert!(markdown.contains(fingerprint), "{markdown}");
    assert!(
        markdown.contains("covers exactly the members listed"),
        "{markdown}"
    );
    assert!(markdown.contains("add-member"), "{markdown}");

    let transcript =
        std::fs::read_to_string(demo.root.join("ceremony/grow-retire/transcript.jsonl")).unwrap();
    let started: serde_json::Value =
        serde_json::from_str(transcript.lines().next().unwrap()).unwrap();
    assert_eq!(started["details"]["key_fingerprint"], fingerprint);

    // oslo-1 still has the fleet key, which is what the scope note warns about.
    let (_, oslo_token, oslo_pin) = &pins[2];
    let listing = demo.list_objects(oslo_token, oslo_pin);
    assert_eq!(listing.matches("grow-fleet-key").count(), 2, "{listing}");
}

#[test]
fn trusted_wrap_copy_source_hint_names_origin() {
    let demo = Demo::run();
    let deployment = growing_deployment(&demo, "trusted-wrap");
    let mut run = demo.cli();
    run.arg("run").arg(&deployment).arg("--yes");
    run.assert().code(4);

    // basel-1 received a non-extractable copy; only the origin bern-1 can be wrapped.
    let runbook = demo.write(
        "grow-add.yaml",
        &growing_add_member_runbook().replace("source: bern-1\n", "source: basel-1\n"),
    );
    let mut check = demo.cli();
    check.arg("check").arg(&runbook);
    with_shares(
        &mut check,
        &[share("shares-grow", "alice"), share("shares-grow", "bob")],
    );
    let output = check.assert().failure().get_output().stderr.clone();
    let stderr = String::from_utf8_lossy(&output);
    assert!(stderr.contains("CKA_EXTRACTABLE false"), "{stderr}");
    assert!(
        stderr.contains("only the origin of a fleet deployed with `growth: trusted-wrap`"),
        "{stderr}"
    );
    assert!(stderr.contains("name the origin as source"), "{stderr}");
    assert!(!demo.token_labels().contains("grow-oslo-1"));
}

#[test]
fn rotate_lists_members_of_new_set() {
    let demo = Demo::run();
    grown_fleet(&demo);
    let runbook = demo.write(
        "grow-rotate.yaml",
        &format!(
            "version: 1\nfleet:\n  id: grow-fleet\n  namespace: backup.example.com/fleets\n  epoch: 1\nkind: rotate-custodians\n{}outputs:\n  work_dir: ceremony/grow-rotate\n  shares_dir: shares-grow-rotated\n",
            custodians_yaml(2)
        ),
    );

    let output = demo.cli().arg("check").arg(&runbook).assert().success();
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).into_owned();
    assert!(stdout.contains("give the newest set"), "{stdout}");
    assert!(stdout.contains("members covered: not known"), "{stdout}");

    // The deployment's shares are older than the add-member action: the check and the
    // run show that the new set would lack oslo-1.
    let deployed_shares = vec![share("shares-grow", "alice"), share("shares-grow", "bob")];
    let mut check = demo.cli();
    check.arg("check").arg(&runbook);
    with_shares(&mut check, &deployed_shares);
    let output = check.assert().success();
    let stdout = String::from_utf8_lossy(&output.get_output().stdout).into_owned();
    assert!(
        stdout.contains("  bern-1 (token grow-bern-1)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  basel-1 (token grow-basel-1)\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("oslo-1"), "{stdout}");

    // The newest set covers oslo-1, and the run's summary lists it.
    let new_shares = vec![
        share("shares-grow-oslo", "alice"),
        share("shares-grow-oslo", "carol"),
    ];
    let mut run = demo.cli();
    run.arg("run").arg(&runbook).arg("--yes");
    with_shares(&mut run, &new_shares);
    let output = run.assert().success();
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(
        stderr.contains("  oslo-1 (token grow-oslo-1)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the new set holds the PINs of 3 member(s): bern-1, basel-1, oslo-1"),
        "{stderr}"
    );

    let rotated_shares = vec![
        share("shares-grow-rotated", "bob"),
        share("shares-grow-rotated", "carol"),
    ];
    let pins = demo.user_pins(&rotated_shares);
    let members: Vec<&str> = pins.iter().map(|(member, _, _)| member.as_str()).collect();
    assert_eq!(members, ["bern-1", "basel-1", "oslo-1"]);
    let transcript =
        std::fs::read_to_string(demo.root.join("ceremony/grow-rotate/transcript.jsonl")).unwrap();
    let split: serde_json::Value = transcript
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| record["action"] == "credentials split")
        .unwrap();
    assert_eq!(
        split["details"]["members"],
        serde_json::json!(["bern-1", "basel-1", "oslo-1"])
    );
}
