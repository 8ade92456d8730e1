//! End-to-end tests of `fleet-ceremony demo` and of the tools that check its outputs:
//! the binary itself, SoftHSM2, `age`, `pkcs11-tool` and `openssl`.
//!
//! One demo run is shared by every test in this file; tests that change files work on
//! copies.

#![cfg(feature = "ceremony")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::{
    DEMO_CUSTODIANS, SOFTHSM_MODULE, copy_dir, files_under, fleet_ceremony, run_tool, run_tool_ok,
    snapshot, stderr_text, stdout_text,
};

/// Token labels of the demo members, in runbook order.
const DEMO_TOKENS: [&str; 3] = ["demo-zurich-1", "demo-frankfurt-1", "demo-dublin-1"];

/// CKA_LABEL of the demo fleet key.
const FLEET_KEY_LABEL: &str = "demo-fleet-key";

/// A finished demo in its own temporary folder.
struct Demo {
    temp: tempfile::TempDir,
    output: Output,
}

impl Demo {
    /// Runs `demo --dir` in a new temporary folder. The folder is kept under cargo's
    /// target tmp folder, because a value in a static is never dropped.
    fn run() -> Demo {
        let temp = tempfile::Builder::new()
            .prefix("cli-demo-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        // The SoftHSM configuration is irrelevant here: every demo step sets its own.
        let output = fleet_ceremony(&temp.path().join("unused.conf"))
            .args(["demo", "--dir"])
            .arg(temp.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "demo failed:\n{}",
            stderr_text(&output)
        );
        Demo { temp, output }
    }

    fn root(&self) -> &Path {
        self.temp.path()
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.temp.path().join(relative)
    }

    fn evidence(&self) -> PathBuf {
        self.path("evidence/demo-fleet")
    }

    fn trust(&self) -> PathBuf {
        self.path("keys-public/trust.yaml")
    }

    /// Runs `fleet-ceremony ARGS` in the demo folder with the fleet's SoftHSM config.
    fn fleet_ceremony(&self, args: &[&str]) -> Output {
        fleet_ceremony(&self.path("softhsm2.conf"))
            .current_dir(self.root())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs `shares combine` with the shares of `custodians` and their identities.
    fn combine(&self, shares: &[(&Demo, &str)], reveal: bool) -> Output {
        let mut args: Vec<String> = vec!["shares".into(), "combine".into()];
        for (demo, name) in shares {
            args.push("--share".into());
            args.push(demo.share(name).display().to_string());
            args.push("--identity".into());
            args.push(demo.identity(name).display().to_string());
        }
        if reveal {
            args.push("--reveal".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.fleet_ceremony(&args)
    }

    fn share(&self, custodian: &str) -> PathBuf {
        self.path(&format!("shares/{custodian}.age"))
    }

    fn identity(&self, custodian: &str) -> PathBuf {
        self.path(&format!("custodians/{custodian}/identity.txt"))
    }

    /// Runs `pkcs11-tool` on a member's token, logged in with its user PIN.
    fn pkcs11_tool(&self, token_label: &str, pin: &str, args: &[&str]) -> String {
        let output = std::process::Command::new("pkcs11-tool")
            .args(["--module", SOFTHSM_MODULE, "--token-label", token_label])
            .args(["--login", "--pin", pin])
            .args(args)
            .current_dir(self.root())
            .env("SOFTHSM2_CONF", self.path("softhsm2.conf"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pkcs11-tool {args:?} on {token_label} failed: {}",
            stderr_text(&output)
        );
        stdout_text(&output)
    }

    fn evidence_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.evidence().join("evidence.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// Returns the demo shared by the tests of this file, running it on first use.
fn demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(Demo::run)
}

/// Returns a second, independent demo, for shares that belong to another ceremony.
fn other_demo() -> &'static Demo {
    static DEMO: OnceLock<Demo> = OnceLock::new();
    DEMO.get_or_init(Demo::run)
}

/// PINs of one member, as printed by `shares combine --reveal`.
#[derive(Debug)]
struct MemberPins {
    member: String,
    token_label: String,
    so_pin: String,
    user_pin: String,
}

/// Recovers the PINs of every member from the shares of alice and carol.
fn revealed_pins(demo: &Demo) -> Vec<MemberPins> {
    let output = demo.combine(&[(demo, "alice"), (demo, "carol")], true);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("member\ttoken\tso_pin\tuser_pin"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 4, "unexpected line {line:?}");
            MemberPins {
                member: fields[0].to_owned(),
                token_label: fields[1].to_owned(),
                so_pin: fields[2].to_owned(),
                user_pin: fields[3].to_owned(),
            }
        })
        .collect()
}

/// Object blocks of `pkcs11-tool --list-objects`: each starts with a line that does not
/// begin with a space.
fn object_blocks(listing: &str) -> Vec<Vec<&str>> {
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    for line in listing.lines() {
        if line.starts_with(' ') {
            if let Some(block) = blocks.last_mut() {
                block.push(line);
            }
        } else if !line.trim().is_empty() {
            blocks.push(vec![line]);
        }
    }
    blocks
}

/// Returns the trimmed value of `name:` in an object block.
fn block_field<'a>(block: &[&'a str], name: &str) -> Option<&'a str> {
    block.iter().find_map(|line| {
        line.trim_start()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

fn sha256_of_file(dir: &Path, file: &str) -> String {
    let stdout = run_tool_ok(dir, "sha256sum", &[file]);
    stdout.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn demo_prints_evidence_path() {
    let demo = demo();
    let expected = format!("{}\n", demo.evidence().display());
    assert_eq!(stdout_text(&demo.output), expected);
    assert!(demo.evidence().join("bundle.json").is_file());
}

#[test]
fn demo_rejects_used_folder() {
    let demo = demo();
    let before = snapshot(demo.root());

    let output = fleet_ceremony(&demo.path("softhsm2.conf"))
        .args(["demo", "--dir"])
        .arg(demo.root())
        .output()
        .unwrap();

    assert!(!output.status.success());
    assert!(
        stderr_text(&output).contains("exists and is not empty"),
        "{}",
        stderr_text(&output)
    );
    assert_eq!(stdout_text(&output), "");
    let after = snapshot(demo.root());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before == after, "file contents changed");
}

#[test]
fn verify_accepts_demo_evidence() {
    let demo = demo();
    let evidence = demo.evidence().display().to_string();
    let trust = demo.trust().display().to_string();

    // The demo's tokens are SoftHSM, which has no attestation, so the allowance is needed.
    let output =
        demo.fleet_ceremony(&["verify", &evidence, "--trust", &trust, "--allow-unattested"]);

    assert_eq!(output.status.code(), Some(0), "{}", stderr_text(&output));
    assert!(
        stdout_text(&output).ends_with("bundle verified\n"),
        "{}",
        stdout_text(&output)
    );
    assert!(!stdout_text(&output).contains("FAIL"));
    assert!(
        stdout_text(&output)
            .contains("\nok    hardware attestation: not hardware-attested, allowed"),
        "{}",
        stdout_text(&output)
    );

    let bundle = demo.evidence().join("bundle.json").display().to_string();
    let output = demo.fleet_ceremony(&["verify", &bundle, "--trust", &trust, "--allow-unattested"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_text(&output));
}

#[test]
fn verify_rejects_unattested_demo_evidence() {
    let demo = demo();
    let evidence = demo.evidence().display().to_string();
    let trust = demo.trust().display().to_string();
    let trust_text = std::fs::read_to_string(demo.trust()).unwrap();
    assert!(
        !trust_text.contains("allow_unattested: true"),
        "{trust_text}"
    );

    let output = demo.fleet_ceremony(&["verify", &evidence, "--trust", &trust]);

    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(
        stdout.contains(
            "\nFAIL  hardware attestation: members not hardware-attested: zurich-1 (SoftHSM has \
             no attestation), frankfurt-1 (SoftHSM has no attestation), dublin-1 (SoftHSM has \
             no attestation)\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("\nok    operator counter-signature: "),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("bundle rejected: the hardware attestation check failed\n"),
        "{stdout}"
    );
    assert!(!stdout.contains("bundle verified"), "{stdout}");
}

#[test]
fn evidence_says_not_hardware_attested() {
    let demo = demo();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.evidence().join("evidence.json")).unwrap())
            .unwrap();
    for member in json["members"].as_array().unwrap() {
        assert_eq!(member["attested"], false, "{member}");
        assert_eq!(member["attestation"], "not hardware-attested", "{member}");
        assert!(member["attestation_detail"].is_null(), "{member}");
        assert_eq!(
            member["key_attributes"]["CKA_EXTRACTABLE"], false,
            "{member}"
        );
    }
    let note = json["attestation_note"].as_str().unwrap();
    assert!(
        note.starts_with("The key is not hardware-attested on: zurich-1, frankfurt-1, dublin-1. SoftHSM is a software token and produces no attestation."),
        "{note}"
    );
    let command = json["verify"]["command"].as_str().unwrap();
    assert!(command.ends_with(" --allow-unattested"), "{command}");
    let markdown = std::fs::read_to_string(demo.evidence().join("index.md")).unwrap();
    assert!(markdown.contains(note), "{markdown}");

    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(demo.evidence().join("fleet-key.json")).unwrap())
            .unwrap();
    for member in document["members"].as_array().unwrap() {
        assert_eq!(member["attested"], false, "{member}");
        assert!(member.get("attestation").is_none(), "{member}");
    }
}

#[test]
fn verify_rejects_changed_bundle() {
    let demo = demo();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&demo.evidence(), copy.path());
    let bundle_path = copy.path().join("bundle.json");
    let mut bytes = std::fs::read(&bundle_path).unwrap();
    // Changing one base64 character of the document keeps the JSON well formed.
    let marker = b"\"document\": \"";
    let start = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap()
        + marker.len();
    let offset = start + 40;
    bytes[offset] = if bytes[offset] == b'A' { b'B' } else { b'A' };
    std::fs::write(&bundle_path, &bytes).unwrap();
    let trust = demo.trust().display().to_string();

    let output = demo.fleet_ceremony(&[
        "verify",
        &copy.path().display().to_string(),
        "--trust",
        &trust,
    ]);

    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(!stdout.contains("bundle verified"), "{stdout}");
}

#[test]
fn verify_rejects_other_auditor() {
    let demo = demo();
    let keys = tempfile::tempdir().unwrap();
    common::openssl_ed25519_key(keys.path(), "other-key.pem", "other.pem");
    let other_auditor = std::fs::read_to_string(keys.path().join("other.pem")).unwrap();
    let operator = std::fs::read_to_string(demo.path("keys-public/operator.pem")).unwrap();
    let trust = keys.path().join("trust.yaml");
    std::fs::write(
        &trust,
        common::trust_yaml_from_pem(&other_auditor, &operator),
    )
    .unwrap();

    let output = demo.fleet_ceremony(&[
        "verify",
        &demo.evidence().display().to_string(),
        "--trust",
        &trust.display().to_string(),
    ]);

    assert_eq!(output.status.code(), Some(3), "{}", stderr_text(&output));
    assert!(stdout_text(&output).contains("FAIL"));
}

#[test]
fn combine_reveals_working_pins() {
    let demo = demo();
    let pins = revealed_pins(demo);
    let tokens: Vec<&str> = pins.iter().map(|p| p.token_label.as_str()).collect();
    assert_eq!(tokens, DEMO_TOKENS);
    let members: Vec<&str> = pins.iter().map(|p| p.member.as_str()).collect();
    assert_eq!(members, ["zurich-1", "frankfurt-1", "dublin-1"]);

    let mut ec_points = Vec::new();
    for member in &pins {
        assert!(!member.so_pin.is_empty());
        assert_ne!(member.so_pin, member.user_pin);
        let listing = demo.pkcs11_tool(&member.token_label, &member.user_pin, &["--list-objects"]);
        let blocks = object_blocks(&listing);
        let labelled = |kind: &str| {
            blocks
                .iter()
                .find(|b| {
                    b[0].starts_with(kind) && block_field(b, "label") == Some(FLEET_KEY_LABEL)
                })
                .unwrap_or_else(|| {
                    panic!(
                        "no {kind} {FLEET_KEY_LABEL} on {}:\n{listing}",
                        member.token_label
                    )
                })
        };
        let private = labelled("Private Key Object");
        let public = labelled("Public Key Object");

        let access = block_field(private, "Access").unwrap();
        assert!(
            !access
                .replace("never extractable", "")
                .contains("extractable"),
            "{}: private key access is {access:?}",
            member.token_label
        );
        assert!(access.contains("sensitive"), "{access:?}");
        ec_points.push(block_field(public, "EC_POINT").unwrap().to_owned());
    }
    assert!(
        ec_points.iter().all(|point| point == &ec_points[0]),
        "{ec_points:?}"
    );
}

#[test]
fn token_public_keys_match_evidence() {
    let demo = demo();
    let fingerprint = demo.evidence_json()["key"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = tempfile::tempdir().unwrap();

    for member in revealed_pins(demo) {
        let der = out.path().join(format!("{}.der", member.token_label));
        let der_arg = der.display().to_string();
        demo.pkcs11_tool(
            &member.token_label,
            &member.user_pin,
            &[
                "--read-object",
                "--type",
                "pubkey",
                "--label",
                FLEET_KEY_LABEL,
                "--output-file",
                &der_arg,
            ],
        );
        let stdout = run_tool_ok(
            out.path(),
            "sh",
            &[
                "-c",
                &format!("openssl pkey -pubin -inform DER -in {der_arg} -outform DER | sha256sum"),
            ],
        );
        let digest = stdout.split_whitespace().next().unwrap();
        assert_eq!(digest, fingerprint, "{}", member.token_label);
    }
}

#[test]
fn combine_rejects_one_share() {
    let demo = demo();
    let output = demo.combine(&[(demo, "bob")], true);
    assert!(!output.status.success());
    assert_eq!(stdout_text(&output), "");
    assert!(
        stderr_text(&output).contains("threshold is 2"),
        "{}",
        stderr_text(&output)
    );
}

#[test]
fn combine_rejects_same_share_twice() {
    let demo = demo();
    let output = demo.combine(&[(demo, "alice"), (demo, "alice")], true);
    assert!(!output.status.success());
    assert_eq!(stdout_text(&output), "");
    assert!(
        stderr_text(&output).contains("same file"),
        "{}",
        stderr_text(&output)
    );
}

#[test]
fn combine_rejects_share_of_other_ceremony() {
    let demo = demo();
    let other = other_demo();
    let output = demo.combine(&[(demo, "alice"), (other, "bob")], true);
    assert!(!output.status.success());
    assert_eq!(stdout_text(&output), "");
    let stderr = stderr_text(&output);
    let other_share = other.share("bob").display().to_string();
    assert!(stderr.contains(&other_share), "{stderr}");
}

#[test]
fn age_decrypts_share() {
    let demo = demo();
    let identity = demo.identity("alice").display().to_string();
    let share = demo.share("alice").display().to_string();

    let plaintext = run_tool_ok(demo.root(), "age", &["-d", "-i", &identity, &share]);
    let record: serde_json::Value = serde_json::from_str(&plaintext).unwrap();
    assert_eq!(record["format"], "fleet-ceremony-share-v1");
    assert_eq!(record["custodian"], "alice");
    assert_eq!(record["fleet"], "demo-fleet");
    assert_eq!(record["threshold"], 2);
    assert_eq!(record["count"], 3);

    let output = demo.fleet_ceremony(&["shares", "verify", &share, "--identity", &identity]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(stdout.contains("custodian:      alice\n"), "{stdout}");
    let index = record["index"].as_u64().unwrap();
    assert!(index > 0);
    assert!(
        stdout.contains(&format!("share:          {index} of 3")),
        "{stdout}"
    );
}

#[test]
fn evidence_files_exist() {
    let evidence = demo().evidence();
    for name in [
        "index.md",
        "index.html",
        "evidence.json",
        "bundle.json",
        "fleet-key.pem",
    ] {
        assert!(evidence.join(name).is_file(), "{name} is missing");
    }
    let json = demo().evidence_json();
    assert_eq!(json["format"], "fleet-ceremony-evidence-v1");
    assert_eq!(json["fleet"]["id"], "demo-fleet");
}

#[test]
fn evidence_fingerprint_matches_openssl() {
    let demo = demo();
    let evidence = demo.evidence();
    let fingerprint = demo.evidence_json()["key"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(fingerprint.len(), 64);

    let stdout = run_tool_ok(
        &evidence,
        "sh",
        &[
            "-c",
            "openssl pkey -pubin -in fleet-key.pem -outform DER | sha256sum",
        ],
    );
    assert_eq!(stdout, format!("{fingerprint}  -\n"));
}

#[test]
fn evidence_commands_print_expected() {
    let demo = demo();
    let json = demo.evidence_json();
    let commands = json["verify"]["independent"].as_array().unwrap();
    assert!(commands.len() >= 5, "{commands:?}");

    for entry in commands {
        let command = entry["command"].as_str().unwrap();
        let expected = entry["expected"].as_str().unwrap();
        let output = run_tool(&demo.evidence(), "sh", &["-c", command]);
        assert!(
            output.status.success(),
            "`{command}` failed: {}",
            stderr_text(&output)
        );
        assert_eq!(stdout_text(&output).trim(), expected.trim(), "`{command}`");
    }
}

/// Values of every `src=` and `href=` attribute in `html`, quoted or not.
fn link_targets(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut targets = Vec::new();
    for attribute in ["src=", "href="] {
        for (at, _) in lower.match_indices(attribute) {
            let rest = lower[at + attribute.len()..].trim_start();
            let value = match rest.chars().next() {
                Some(quote @ ('"' | '\'')) => rest[1..].split(quote).next().unwrap_or(""),
                _ => rest
                    .split(|c: char| c.is_whitespace() || c == '>')
                    .next()
                    .unwrap_or(""),
            };
            targets.push(value.trim().to_owned());
        }
    }
    targets
}

#[test]
fn evidence_html_is_self_contained() {
    let html = std::fs::read_to_string(demo().evidence().join("index.html")).unwrap();
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"));
    assert!(!lower.contains("url(http"), "remote CSS resource");
    assert!(!lower.contains("@import"), "imported CSS");
    for target in link_targets(&html) {
        assert!(
            !target.starts_with("http://")
                && !target.starts_with("https://")
                && !target.starts_with("//"),
            "remote reference {target:?}"
        );
    }
}

#[test]
fn link_targets_finds_remote_urls() {
    let html = r#"<a href="https://example.com/x">x</a><img SRC='//cdn.example/y.png'><link href=http://z>"#;
    assert_eq!(
        link_targets(html),
        ["//cdn.example/y.png", "https://example.com/x", "http://z"]
    );
}

#[test]
fn transcript_records_every_step() {
    let text =
        std::fs::read_to_string(demo().path("ceremony/demo-fleet/transcript.jsonl")).unwrap();
    let mut actions = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let time = record["time"].as_str().unwrap();
        assert!(time.ends_with('Z'), "{time}");
        chrono::DateTime::parse_from_rfc3339(time).unwrap();
        actions.push(record["action"].as_str().unwrap().to_owned());
    }
    let count = |action: &str| actions.iter().filter(|a| *a == action).count();

    assert_eq!(count("token initialised"), 3, "{actions:?}");
    assert_eq!(count("fleet key generated"), 1, "{actions:?}");
    assert_eq!(count("fleet key replicated"), 2, "{actions:?}");
    assert_eq!(count("fleet key locked"), 1, "{actions:?}");
    assert_eq!(count("share written"), 3, "{actions:?}");
    assert_eq!(count("signing request written"), 1, "{actions:?}");
    assert_eq!(count("bundle verified"), 1, "{actions:?}");
    assert_eq!(count("evidence written"), 1, "{actions:?}");
    assert_eq!(actions.last().map(String::as_str), Some("evidence written"));
}

#[test]
fn pins_only_in_token_folders() {
    let demo = demo();
    let pins = revealed_pins(demo);
    let secrets: Vec<&str> = pins
        .iter()
        .flat_map(|p| [p.so_pin.as_str(), p.user_pin.as_str()])
        .collect();
    assert_eq!(secrets.len(), 6);
    for secret in &secrets {
        assert!(secret.len() >= 8, "PIN too short to search for");
    }

    let token_folders = [demo.path("tokens"), demo.path("operator/tokens")];
    let files: Vec<PathBuf> = files_under(demo.root())
        .into_iter()
        .filter(|path| !token_folders.iter().any(|folder| path.starts_with(folder)))
        .collect();
    assert!(files.len() > 20, "{files:?}");
    let mut searched = vec![
        ("demo stdout".to_owned(), demo.output.stdout.clone()),
        ("demo stderr".to_owned(), demo.output.stderr.clone()),
    ];
    for file in files {
        searched.push((file.display().to_string(), std::fs::read(&file).unwrap()));
    }

    for (name, bytes) in &searched {
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a PIN appears in {name}"
            );
        }
    }
}

#[test]
fn share_files_hash_as_recorded() {
    let demo = demo();
    let text = std::fs::read_to_string(demo.path("ceremony/demo-fleet/transcript.jsonl")).unwrap();
    let shares_dir = demo.path("shares");
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        if record["action"] != "share written" {
            continue;
        }
        let custodian = record["details"]["custodian"].as_str().unwrap();
        assert!(DEMO_CUSTODIANS.contains(&custodian));
        let recorded = record["details"]["sha256"].as_str().unwrap();
        assert_eq!(
            sha256_of_file(&shares_dir, &format!("{custodian}.age")),
            recorded
        );
    }
}

#[test]
fn secret_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let demo = demo();
    let mode = |relative: &str| {
        let metadata = std::fs::metadata(demo.path(relative)).unwrap();
        metadata.permissions().mode() & 0o777
    };
    for name in DEMO_CUSTODIANS {
        assert_eq!(mode(&format!("shares/{name}.age")), 0o600, "{name}");
        assert_eq!(mode(&format!("custodians/{name}/identity.txt")), 0o600);
    }
    assert_eq!(mode("auditor/auditor-key.pem"), 0o600);
}

#[test]
fn run_rejects_finished_ceremony() {
    let demo = demo();
    let transcript = demo.path("ceremony/demo-fleet/transcript.jsonl");
    let before = std::fs::read(&transcript).unwrap();

    let output = demo.fleet_ceremony(&["run", "runbook.yaml", "--yes"]);

    assert!(!output.status.success());
    assert_eq!(stdout_text(&output), "");
    assert!(
        stderr_text(&output).contains("evidence/demo-fleet"),
        "{}",
        stderr_text(&output)
    );
    assert_eq!(std::fs::read(&transcript).unwrap(), before);
}

/// Builds the Go program in `tests/go/<name>` offline against the Debian Go packages.
fn build_go(name: &str, temp: &Path) -> PathBuf {
    const GOPATH: &str = "/usr/share/gocode";
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/go")
        .join(name);
    let binary = temp.join(name);
    let output = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&source)
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", temp.join("gocache"))
        .env_remove("GOFLAGS")
        .env("GOPROXY", "off")
        .output()
        .expect("go runs; install the Debian packages golang-go and golang-golang-x-mod-dev");
    assert!(
        output.status.success(),
        "go build failed:\n{}",
        stderr_text(&output)
    );
    binary
}

#[test]
fn go_sumdb_accepts_demo_bundle_proof() {
    let demo = demo();
    let temp = tempfile::tempdir().unwrap();
    let binary = build_go("bundlecheck", temp.path());
    let bundle = demo.evidence().join("bundle.json");
    let key = demo.path("keys-public/log-key.pub");

    let output = std::process::Command::new(&binary)
        .arg(&bundle)
        .arg(&key)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert!(stdout_text(&output).starts_with("ok: entry 0 of 1"));

    // The same program rejects a bundle whose auditor fields changed after logging.
    let text = std::fs::read_to_string(&bundle).unwrap();
    let changed = text.replacen("\"epoch\": 1", "\"epoch\": 2", 1);
    assert_ne!(changed, text);
    let changed_path = temp.path().join("changed.json");
    std::fs::write(&changed_path, changed).unwrap();
    let output = std::process::Command::new(&binary)
        .arg(&changed_path)
        .arg(&key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr_text(&output).contains("tlog.CheckRecord"));
}

/// Runs `verify --json` on a copy of the demo bundle changed by `edit` and returns the
/// exit code and the name of the failed check.
fn verify_changed_bundle(demo: &Demo, edit: impl Fn(String) -> String) -> (Option<i32>, String) {
    let copy = tempfile::tempdir().unwrap();
    let path = copy.path().join("bundle.json");
    let text = std::fs::read_to_string(demo.evidence().join("bundle.json")).unwrap();
    let changed = edit(text.clone());
    assert_ne!(changed, text, "the edit changed nothing");
    std::fs::write(&path, changed).unwrap();
    let trust = demo.trust().display().to_string();
    let output = demo.fleet_ceremony(&[
        "verify",
        &path.display().to_string(),
        "--trust",
        &trust,
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let failed = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["passed"] == false)
        .map(|check| check["name"].as_str().unwrap().to_owned())
        .unwrap_or_default();
    (output.status.code(), failed)
}

#[test]
fn verify_names_failed_log_check() {
    let demo = demo();
    let (code, failed) = verify_changed_bundle(demo, |text| {
        text.replacen("auditor-log\\n1\\n", "auditor-log\\n2\\n", 1)
    });
    assert_eq!((code, failed.as_str()), (Some(3), "checkpoint signature"));

    let (code, failed) = verify_changed_bundle(demo, |text| {
        text.replacen("\"tree_size\": 1", "\"tree_size\": 2", 1)
    });
    assert_eq!((code, failed.as_str()), (Some(3), "inclusion proof"));

    // Without its checkpoint and proof the bundle fails, because the trust file pins a log.
    let (code, failed) = verify_changed_bundle(demo, |text| {
        let mut bundle: serde_json::Value = serde_json::from_str(&text).unwrap();
        let object = bundle.as_object_mut().unwrap();
        object.remove("checkpoint");
        object.remove("inclusion_proof");
        serde_json::to_string_pretty(&bundle).unwrap()
    });
    assert_eq!((code, failed.as_str()), (Some(3), "checkpoint signature"));
}

#[test]
fn log_append_rejects_logged_statement() {
    let demo = demo();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&demo.path("auditor/log"), copy.path());
    let dir = copy.path().display().to_string();
    let key = demo.path("auditor/log-key").display().to_string();
    let auditor_key = demo.path("keys-public/auditor.pem").display().to_string();
    let signature = demo
        .path("ceremony/demo-fleet/auditor-signature.json")
        .display()
        .to_string();

    let output = demo.fleet_ceremony(&[
        "log",
        "append",
        &dir,
        &signature,
        "--key",
        &key,
        "--auditor-key",
        &auditor_key,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_text(&output).contains("is already logged at index 0"),
        "{}",
        stderr_text(&output)
    );

    let output = demo.fleet_ceremony(&["log", "prove", &dir, "--index", "0"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let proof: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(proof["inclusion_proof"]["tree_size"], 1);
}

/// Returns the commands of the README's code block that follows `marker`, with lines
/// joined at a trailing backslash.
fn readme_commands(marker: &str) -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = &readme[readme.find(marker).expect("marker in README.md")..];
    let block = after
        .split("```")
        .nth(1)
        .expect("code block after the marker");
    block
        .trim()
        .replace("\\\n", " ")
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// The README's `cp` and `fleet-ceremony verify` commands that check the demo's log with
/// `--since` must pass on a demo as written. The `cargo run` and `bundle diff` lines of
/// that block are not run: one needs cargo, the other two epochs.
#[test]
fn readme_since_commands_pass_on_demo() {
    let demo = demo();
    let work = tempfile::tempdir().unwrap();
    let commands = readme_commands("with `--since` to catch a log");
    let runnable: Vec<&String> = commands
        .iter()
        .filter(|line| line.starts_with("cp ") || line.starts_with("fleet-ceremony verify "))
        .collect();
    assert_eq!(runnable.len(), 2, "{commands:?}");

    let binary = Path::new(env!("CARGO_BIN_EXE_fleet-ceremony"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for command in runnable {
        let command = command.replace("DIR", &demo.root().display().to_string());
        let output = std::process::Command::new("sh")
            .args(["-c", &command])
            .current_dir(work.path())
            .env("PATH", &path)
            .env("SOFTHSM2_CONF", demo.path("softhsm2.conf"))
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "`{command}`:\n{}{}",
            stdout_text(&output),
            stderr_text(&output)
        );
    }
}
