//! Helpers shared by the integration tests: fresh keys, a sample document, bundles, and
//! folders and commands for running the `fleet-ceremony` binary against SoftHSM.

#![allow(dead_code)]

use std::io::Read;

use chrono::{TimeZone, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use fleet_ceremony::bundle::keys::{ed25519_fingerprint, ed25519_spki_pem};
use fleet_ceremony::bundle::{
    AuditorSignature, Bundle, Ciphersuite, CustodianSummary, FleetKeyDocument, KeyEntry,
    MemberEntry, OperatorSignature, SigningRequest, Statement, Trust, document_digest, fingerprint,
    sign_request,
};
use p256::pkcs8::EncodePublicKey;

/// Returns 32 bytes from the operating system's random source.
pub fn random_bytes() -> [u8; 32] {
    let mut bytes = [0; 32];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes
}

/// Returns a fresh Ed25519 signing key.
pub fn random_signing_key() -> SigningKey {
    SigningKey::from_bytes(&random_bytes())
}

/// Returns the SPKI PEM of a fresh P-256 public key.
pub fn random_p256_pem() -> String {
    let secret = p256::SecretKey::from_slice(&random_bytes()).unwrap();
    secret
        .public_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
}

/// Builds the key entry for a fleet key given as SPKI PEM.
pub fn key_entry(label: &str, algorithm: &str, spki_pem: String) -> KeyEntry {
    let (_, der) = spki::der::Document::from_pem(&spki_pem).unwrap();
    KeyEntry {
        role: "fleet".to_string(),
        label: label.to_string(),
        algorithm: algorithm.to_string(),
        fingerprint: fingerprint(der.as_bytes()),
        spki_pem,
        growth: None,
    }
}

/// Returns a complete document with fresh P-256 and Ed25519 fleet keys.
pub fn sample_document() -> FleetKeyDocument {
    let ed25519_pem = ed25519_spki_pem(&random_signing_key().verifying_key());
    let member = MemberEntry {
        name: "hsm-a".to_string(),
        site: "site-1".to_string(),
        token_label: "fleet-a".to_string(),
        token_serial: "0123456789".to_string(),
        model: "SoftHSM v2".to_string(),
        manufacturer: "SoftHSM project".to_string(),
        attested: false,
        key_attributes: [
            ("CKA_EXTRACTABLE".to_string(), serde_json::json!(false)),
            ("CKA_SENSITIVE".to_string(), serde_json::json!(true)),
        ]
        .into_iter()
        .collect(),
        origin: true,
        attestation: None,
    };
    FleetKeyDocument {
        format: "fleet-ceremony-document-v1".to_string(),
        fleet_id: "fleet-eu-1".to_string(),
        namespace: "fleet.example.com".to_string(),
        epoch: 3,
        created_at: Utc.with_ymd_and_hms(2025, 3, 1, 10, 0, 0).unwrap(),
        keys: vec![
            key_entry("fleet-signing", "ecdsa-p256", random_p256_pem()),
            key_entry("fleet-backup", "ed25519", ed25519_pem),
        ],
        members: vec![member],
        custodians: CustodianSummary {
            threshold: 2,
            names: vec!["alice".to_string(), "bob".to_string(), "carol".to_string()],
        },
        transcript_sha256: "11".repeat(32),
        runbook_sha256: "22".repeat(32),
        tool: "fleet-ceremony 0.1.0".to_string(),
    }
}

/// Returns trust file text pinning the two keys.
pub fn trust_yaml(auditor: &VerifyingKey, operator: &VerifyingKey) -> String {
    let indent = |pem: String| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    format!(
        "version: 1\nauditor:\n  name: Example Audit Ltd\n  public_key: |\n{}operator:\n  name: Example Backup Service\n  public_key: |\n{}",
        indent(ed25519_spki_pem(auditor)),
        indent(ed25519_spki_pem(operator)),
    )
}

/// The two signing parties of a bundle.
pub struct Parties {
    /// The auditor's key.
    pub auditor: SigningKey,
    /// The operator's key.
    pub operator: SigningKey,
}

impl Parties {
    /// Returns two fresh keys.
    pub fn random() -> Self {
        Parties {
            auditor: random_signing_key(),
            operator: random_signing_key(),
        }
    }

    /// Returns the trust that pins these keys.
    pub fn trust(&self) -> Trust {
        let text = trust_yaml(
            &self.auditor.verifying_key(),
            &self.operator.verifying_key(),
        );
        Trust::parse(&text, "trust.yaml").unwrap()
    }

    /// Returns the trust that pins these keys and allows members without a hardware
    /// attestation, as `allow_unattested: true` in the trust file does.
    pub fn trust_allowing_unattested(&self) -> Trust {
        let text = trust_yaml(
            &self.auditor.verifying_key(),
            &self.operator.verifying_key(),
        ) + "allow_unattested: true\n";
        let trust = Trust::parse(&text, "trust.yaml").unwrap();
        assert!(trust.allow_unattested);
        trust
    }

    /// Runs the whole signing flow over `document_bytes` and assembles the bundle.
    pub fn bundle(&self, document_bytes: &[u8], ciphersuite: Ciphersuite) -> Bundle {
        let document = FleetKeyDocument::from_json_bytes(document_bytes).unwrap();
        let request = SigningRequest::for_document(&document, document_bytes, Utc::now());
        let auditor: AuditorSignature = sign_request(
            &request,
            document_bytes,
            &self.auditor,
            ciphersuite,
            1_740_823_200_000,
        )
        .unwrap();
        let operator = OperatorSignature::countersign(&auditor, &self.operator).unwrap();
        Bundle::assemble(document_bytes, &auditor, &operator)
    }

    /// Signs `document_bytes` without the auditor's checks of the document, as a careless
    /// or hostile auditor could, and assembles the bundle.
    pub fn bundle_unchecked(&self, document_bytes: &[u8]) -> Bundle {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;

        let document = FleetKeyDocument::from_json_bytes(document_bytes).unwrap();
        let statement = Statement {
            ciphersuite: Ciphersuite::Protobuf,
            namespace: document.namespace,
            timestamp_ms: 1_740_823_200_000,
            epoch: document.epoch,
            digest: document_digest(document_bytes),
        };
        let auditor = AuditorSignature {
            ciphersuite: statement.ciphersuite,
            namespace: statement.namespace.clone(),
            timestamp_ms: statement.timestamp_ms,
            epoch: statement.epoch,
            digest: hex::encode(statement.digest),
            signature: base64.encode(statement.sign(&self.auditor).to_bytes()),
            key_id: ed25519_fingerprint(&self.auditor.verifying_key()),
        };
        let operator = OperatorSignature::countersign(&auditor, &self.operator).unwrap();
        Bundle::assemble(document_bytes, &auditor, &operator)
    }
}

// Helpers for the end-to-end tests of the `fleet-ceremony` binary.

/// The SoftHSM2 PKCS#11 module the tests run against.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Returns a command for the `fleet-ceremony` binary with SoftHSM pointed at `conf`.
pub fn fleet_ceremony(conf: &std::path::Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::cargo_bin("fleet-ceremony").unwrap();
    command.env("SOFTHSM2_CONF", conf);
    command
}

/// Runs an external tool in `dir` and returns its output; panics when it cannot start.
pub fn run_tool(dir: &std::path::Path, program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program}: {error}"))
}

/// Runs an external tool in `dir`, asserts that it succeeds and returns its stdout.
pub fn run_tool_ok(dir: &std::path::Path, program: &str, args: &[&str]) -> String {
    let output = run_tool(dir, program, args);
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Returns the stdout of a finished command as text.
pub fn stdout_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the stderr of a finished command as text.
pub fn stderr_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Reads every file under `dir`, keyed by its path relative to `dir`.
pub fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path.strip_prefix(dir).unwrap().to_owned(), bytes)
        })
        .collect()
}

/// Lists every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Copies the folder `from` into the new folder `to`, recursively.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

/// Writes a SoftHSM2 configuration at `conf` that keeps tokens in `tokens` (created
/// empty), followed by `extra` lines.
pub fn write_softhsm_conf(conf: &std::path::Path, tokens: &std::path::Path, extra: &str) {
    std::fs::create_dir_all(tokens).unwrap();
    let text = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n{extra}",
        tokens.display()
    );
    std::fs::write(conf, text).unwrap();
}

/// Returns trust file text pinning two Ed25519 public keys given as SPKI PEM.
pub fn trust_yaml_from_pem(auditor_pem: &str, operator_pem: &str) -> String {
    let indent = |pem: &str| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    format!(
        "version: 1\nauditor:\n  name: Example Audit Ltd\n  public_key: |\n{}operator:\n  name: Example Backup Service\n  public_key: |\n{}",
        indent(auditor_pem),
        indent(operator_pem),
    )
}

/// Writes a fresh Ed25519 key pair made by openssl: the PKCS#8 private key at `private`
/// and the SPKI public key at `public`.
pub fn openssl_ed25519_key(dir: &std::path::Path, private: &str, public: &str) {
    run_tool_ok(
        dir,
        "openssl",
        &["genpkey", "-algorithm", "ed25519", "-out", private],
    );
    run_tool_ok(
        dir,
        "openssl",
        &["pkey", "-in", private, "-pubout", "-out", public],
    );
}

/// Custodians of the demo runbook.
pub const DEMO_CUSTODIANS: [&str; 3] = ["alice", "bob", "carol"];

/// A temporary folder holding a runbook and every file it names, with its own SoftHSM
/// configuration and an empty token folder.
pub struct CeremonyFolder {
    temp: tempfile::TempDir,
}

impl CeremonyFolder {
    /// Lays out ceremonies/demo-fleet.yaml after `edit`, with age recipients made by
    /// `age-keygen` and auditor and operator Ed25519 keys made by openssl.
    pub fn new(edit: impl FnOnce(String) -> String) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path();
        let demo = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ceremonies/demo-fleet.yaml"),
        )
        .unwrap();
        std::fs::write(root.join("runbook.yaml"), edit(demo)).unwrap();

        for name in DEMO_CUSTODIANS {
            let folder = root.join("custodians").join(name);
            std::fs::create_dir_all(&folder).unwrap();
            run_tool_ok(&folder, "age-keygen", &["-o", "identity.txt"]);
            let recipient = run_tool_ok(&folder, "age-keygen", &["-y", "identity.txt"]);
            std::fs::write(folder.join("recipient.txt"), recipient).unwrap();
        }
        std::fs::create_dir_all(root.join("keys-public")).unwrap();
        openssl_ed25519_key(root, "auditor-key.pem", "keys-public/auditor.pem");
        openssl_ed25519_key(root, "operator-key.pem", "keys-public/operator.pem");
        write_softhsm_conf(&root.join("softhsm2.conf"), &root.join("tokens"), "");
        CeremonyFolder { temp }
    }

    /// Returns the folder.
    pub fn root(&self) -> &std::path::Path {
        self.temp.path()
    }

    /// Returns a path inside the folder.
    pub fn path(&self, relative: &str) -> std::path::PathBuf {
        self.temp.path().join(relative)
    }

    /// Returns the path of the SoftHSM configuration of the fleet's tokens.
    pub fn conf(&self) -> std::path::PathBuf {
        self.path("softhsm2.conf")
    }

    /// Lists the files in the fleet's token folder.
    pub fn token_files(&self) -> Vec<std::path::PathBuf> {
        files_under(&self.path("tokens"))
    }

    /// Returns `fleet-ceremony ARGS` run inside the folder with its SoftHSM configuration.
    pub fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut command = fleet_ceremony(&self.conf());
        command.current_dir(self.root()).args(args).write_stdin("");
        command
    }

    /// Runs `fleet-ceremony ARGS` inside the folder and returns its output.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    /// Writes a trust file pinning the folder's auditor and operator public keys.
    pub fn write_trust(&self) -> std::path::PathBuf {
        let auditor = std::fs::read_to_string(self.path("keys-public/auditor.pem")).unwrap();
        let operator = std::fs::read_to_string(self.path("keys-public/operator.pem")).unwrap();
        let path = self.path("keys-public/trust.yaml");
        std::fs::write(&path, trust_yaml_from_pem(&auditor, &operator)).unwrap();
        path
    }
}

/// Counts the private keys labelled `label` in a pkcs11-tool listing, and how many of
/// them are marked extractable.
pub fn private_keys(listing: &str, label: &str) -> (usize, usize) {
    // Each object starts with an unindented header line; its fields are indented.
    let mut objects: Vec<Vec<&str>> = Vec::new();
    for line in listing.lines() {
        if !line.starts_with(' ') {
            objects.push(Vec::new());
        }
        if let Some(object) = objects.last_mut() {
            object.push(line);
        }
    }
    let field = |object: &[&str], name: &str| {
        object
            .iter()
            .find_map(|line| line.trim_start().strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let keys: Vec<&Vec<&str>> = objects
        .iter()
        .filter(|object| object[0].starts_with("Private Key Object"))
        .filter(|object| field(object, "label:") == label)
        .collect();
    let extractable = keys
        .iter()
        .filter(|object| {
            field(object, "Access:")
                .split(", ")
                .any(|flag| flag == "extractable")
        })
        .count();
    (keys.len(), extractable)
}

/// Members of the two-member trusted-wrap fleet of the quorum tests, and their token
/// labels.
pub const GROWING_MEMBERS: [(&str, &str); 2] =
    [("bern-1", "grow-bern-1"), ("basel-1", "grow-basel-1")];

/// Returns the demo runbook `demo_runbook` turned into the two-member fleet
/// [`GROWING_MEMBERS`] with key label `grow-fleet-key` and `growth`, on new tokens and in
/// new output folders.
pub fn growing_runbook(demo_runbook: &str, growth: &str) -> String {
    let start = demo_runbook.find("members:\n").unwrap();
    let end = demo_runbook.find("custodians:\n").unwrap();
    let mut members = String::from("members:\n");
    for (name, label) in GROWING_MEMBERS {
        members.push_str(&format!(
            "  - name: {name}\n    site: Bern, CH\n    token:\n      label: {label}\n    initialise: true\n"
        ));
    }
    let text = format!(
        "{}{members}{}",
        &demo_runbook[..start],
        &demo_runbook[end..]
    )
    .replacen(
        "  label: demo-fleet-key\n",
        &format!("  label: grow-fleet-key\n  growth: {growth}\n"),
        1,
    )
    .replacen("id: demo-fleet\n", "id: grow-fleet\n", 1)
    .replacen(
        "work_dir: ceremony/demo-fleet",
        "work_dir: ceremony/grow-fleet",
        1,
    )
    .replacen("shares_dir: shares", "shares_dir: shares-grow", 1)
    .replacen("evidence_dir: evidence", "evidence_dir: evidence-grow", 1);
    assert!(text.contains(&format!("growth: {growth}")), "{text}");
    assert!(text.contains("shares_dir: shares-grow"), "{text}");
    text
}
