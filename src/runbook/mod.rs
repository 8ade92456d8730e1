//! The ceremony runbook: a YAML file parsed strictly and validated into typed settings.
//!
//! The runbook (format version 1, kind `deployment`) names the fleet, the fleet key, the
//! member HSM tokens, the custodians who receive PIN shares, the auditor and operator keys
//! and the output folders. [`load`] reads and validates it before any HSM is touched:
//! duplicate keys, unknown fields, YAML 1.1 booleans and unquoted values that YAML would
//! read as numbers, booleans or null are errors with file, line and column.

mod attestation;
mod error;
mod keys;
mod plan;
mod quorum;
mod raw;
mod validate;

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use error::RunbookError;
pub use plan::Problem;
pub use quorum::{
    AddMember, KIND_ADD_MEMBER, KIND_RETIRE, KIND_ROTATE_CUSTODIANS, QuorumAction, QuorumRunbook,
    Retire, RotateCustodians,
};

/// PKCS#11 module used when neither a member nor `defaults.module` names one: SoftHSM 2 as
/// installed by the Debian and Ubuntu `softhsm2` package.
pub const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Largest runbook file accepted; larger files are rejected before parsing.
pub const MAX_RUNBOOK_BYTES: u64 = 1024 * 1024;

/// The runbook format version this code reads.
pub const RUNBOOK_VERSION: u64 = 1;

/// Runbook kind that deploys a new fleet key; [`load_any`] also reads the quorum kinds.
pub const RUNBOOK_KIND: &str = "deployment";

/// File name of the fleet-key document inside the work folder.
pub const FLEET_KEY_FILE: &str = "fleet-key.json";

/// File name of the auditor's signing request inside the work folder.
pub const SIGNING_REQUEST_FILE: &str = "signing-request.json";

/// File name of the ceremony transcript inside the work folder.
pub const TRANSCRIPT_FILE: &str = "transcript.jsonl";

/// A validated runbook with resolved paths and typed values.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// The runbook file as given to [`load`] or [`parse`].
    pub path: PathBuf,
    /// Folder against which relative paths in the runbook were resolved.
    pub base_dir: PathBuf,
    /// Fleet identity.
    pub fleet: Fleet,
    /// The key to generate on the origin member and copy to the others.
    pub fleet_key: FleetKeySpec,
    /// Member HSMs; the first is the origin. Never empty.
    pub members: Vec<Member>,
    /// Custodians who receive shares of the generated PINs.
    pub custodians: Custodians,
    /// The auditor who signs the fleet-key document.
    pub auditor: Party,
    /// The operator who counter-signs the auditor's signature.
    pub operator: Operator,
    /// Output folders.
    pub outputs: Outputs,
    sha256: String,
}

/// Fleet identity as recorded in the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    /// Fleet id, `[a-z0-9-]`, 1 to 64 characters; also used as a folder name.
    pub id: String,
    /// Auditor namespace under which the fleet key is published.
    pub namespace: String,
    /// Epoch, 1 or more.
    pub epoch: u64,
}

/// Algorithm of the fleet key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// Returns the runbook and document spelling, `ecdsa-p256` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Ed25519 => "ed25519",
        }
    }
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fleet key to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetKeySpec {
    /// Key algorithm.
    pub algorithm: KeyAlgorithm,
    /// CKA_LABEL of the key objects, 1 to 64 bytes.
    pub label: String,
    /// Whether the fleet can gain members after the deployment.
    pub growth: Growth,
}

/// Replication policy of the fleet key: whether the origin's copy stays wrappable after
/// the deployment, so that the fleet can gain members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Growth {
    /// Every copy ends non-extractable (CKA_EXTRACTABLE false), so no copy can ever be
    /// wrapped again and the fleet cannot gain members.
    #[default]
    Locked,
    /// The origin's copy stays extractable with CKA_WRAP_WITH_TRUSTED true, so it can be
    /// wrapped only under a key with CKA_TRUSTED true, which only the security officer
    /// can set. Every other copy is non-extractable.
    TrustedWrap,
}

impl Growth {
    /// Returns the runbook and document spelling, `locked` or `trusted-wrap`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Locked => crate::bundle::GROWTH_LOCKED,
            Self::TrustedWrap => crate::bundle::GROWTH_TRUSTED_WRAP,
        }
    }
}

impl std::fmt::Display for Growth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reference to a PKCS#11 token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// By token label (at most 32 bytes).
    Label(String),
    /// By token serial number (at most 16 characters).
    Serial(String),
}

impl TokenRef {
    /// Returns the HSM layer's selector for this token.
    pub fn selector(&self) -> crate::hsm::TokenSelector {
        match self {
            Self::Label(label) => crate::hsm::TokenSelector::Label(label.clone()),
            Self::Serial(serial) => crate::hsm::TokenSelector::Serial(serial.clone()),
        }
    }
}

impl std::fmt::Display for TokenRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Label(label) => write!(f, "token label \"{label}\""),
            Self::Serial(serial) => write!(f, "token serial \"{serial}\""),
        }
    }
}

/// One member HSM of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Member name, unique, `[a-z0-9-]`.
    pub name: String,
    /// Location of the HSM, free text.
    pub site: String,
    /// PKCS#11 module, resolved against the runbook's folder.
    pub module: PathBuf,
    /// The token in that module.
    pub token: TokenRef,
    /// Whether the tool initialises the token with generated PINs.
    pub initialise: bool,
    /// Whether initialising may erase a token that already exists.
    pub erase_existing: bool,
    /// Whether this member generates the fleet key (the first member).
    pub origin: bool,
    /// The vendor attestation of this member's key, when the runbook names its files.
    pub attestation: Option<AttestationSpec>,
}

/// Attestation files of a member's HSM, as exported by the vendor's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationSpec {
    /// Vendor format.
    pub vendor: crate::attest::Vendor,
    /// The files in the order the vendor's verifier reads them, resolved against the
    /// runbook's folder.
    pub files: Vec<PathBuf>,
    /// Time at which certificate validity is checked; the current time when absent. Set
    /// it to the time the attestation was collected when a vendor root has since expired.
    pub verify_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The custodians and the number of them needed to recover the PINs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodians {
    /// Shares needed to recover, 2 or more and at most the number of custodians.
    pub threshold: u8,
    /// The custodians, at most 255, in runbook order.
    pub people: Vec<Custodian>,
}

/// One custodian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Custodian {
    /// Name, unique, `[a-z0-9-]`; used for the share file name.
    pub name: String,
    /// The age recipient that the custodian's share is encrypted to.
    pub recipient: Recipient,
}

/// An age recipient, checked to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The recipient as written (`age1...`, `ssh-ed25519 ...` or `ssh-rsa ...`).
    pub text: String,
    /// Recipient type.
    pub kind: RecipientKind,
    /// Origin of the recipient text.
    pub source: RecipientSource,
}

/// Kinds of age recipient accepted for custodians.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientKind {
    /// Native age X25519 recipient (`age1...`).
    X25519,
    /// SSH Ed25519 public key.
    SshEd25519,
    /// SSH RSA public key (2048 bits or more).
    SshRsa,
}

impl RecipientKind {
    /// Returns a short human-readable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X25519 => "age X25519",
            Self::SshEd25519 => "SSH Ed25519",
            Self::SshRsa => "SSH RSA",
        }
    }
}

/// Origin of a custodian recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientSource {
    /// Inline in the runbook, at this line.
    Runbook {
        /// 1-based line in the runbook.
        line: u32,
    },
    /// From a recipients file, at this line.
    File {
        /// The file, resolved against the runbook's folder.
        path: PathBuf,
        /// 1-based line in that file.
        line: u32,
    },
}

impl std::fmt::Display for RecipientSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Runbook { line } => write!(f, "runbook line {line}"),
            Self::File { path, line } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// Origin of an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeySource {
    /// Inline PEM in the runbook, at this line.
    Runbook {
        /// 1-based line of the `public_key` value.
        line: u32,
    },
    /// A PEM file, resolved against the runbook's folder.
    File(PathBuf),
}

/// The auditor: a name and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// Display name.
    pub name: String,
    /// Ed25519 public key.
    pub public_key: ed25519_dalek::VerifyingKey,
    /// Origin of the key.
    pub public_key_source: PublicKeySource,
}

/// The operator: a name, an Ed25519 public key and how to reach the private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Display name.
    pub name: String,
    /// Ed25519 public key.
    pub public_key: ed25519_dalek::VerifyingKey,
    /// Origin of the key.
    pub public_key_source: PublicKeySource,
    /// Location of the matching private key.
    pub signer: Signer,
}

/// Location of the operator's private signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// An Ed25519 key in a PKCS#11 token.
    Pkcs11 {
        /// PKCS#11 module.
        module: PathBuf,
        /// The token holding the key.
        token: TokenRef,
        /// CKA_LABEL of the private key.
        key_label: String,
    },
    /// A PKCS#8 PEM key file, resolved against the runbook's folder.
    KeyFile(PathBuf),
}

/// Output folders, resolved against the runbook's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outputs {
    /// Folder for the fleet-key document, signing request and transcript.
    pub work_dir: PathBuf,
    /// Folder for the custodians' share files.
    pub shares_dir: PathBuf,
    /// Parent folder of the evidence folder.
    pub evidence_dir: PathBuf,
}

impl Outputs {
    /// Path of the fleet-key document.
    pub fn fleet_key_document(&self) -> PathBuf {
        self.work_dir.join(FLEET_KEY_FILE)
    }

    /// Path of the auditor's signing request.
    pub fn signing_request(&self) -> PathBuf {
        self.work_dir.join(SIGNING_REQUEST_FILE)
    }

    /// Path of the transcript.
    pub fn transcript(&self) -> PathBuf {
        self.work_dir.join(TRANSCRIPT_FILE)
    }

    /// Path of one custodian's share file, `<shares_dir>/<custodian>.age`.
    pub fn share_file(&self, custodian: &str) -> PathBuf {
        self.shares_dir.join(format!("{custodian}.age"))
    }

    /// Returns the evidence folder of a fleet, `<evidence_dir>/<fleet id>`.
    pub fn fleet_evidence_dir(&self, fleet_id: &str) -> PathBuf {
        self.evidence_dir.join(fleet_id)
    }
}

impl Runbook {
    /// Lowercase hex SHA-256 of the runbook file's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Returns the origin member, which generates the fleet key.
    pub fn origin(&self) -> &Member {
        self.members
            .first()
            .expect("validation rejects a runbook without members")
    }
}

/// Reads and validates a runbook file.
///
/// Files larger than [`MAX_RUNBOOK_BYTES`] are rejected before they are read in full.
/// Recipient and public-key files that the runbook names are read too; PKCS#11 modules
/// and outputs are not checked here (see [`Runbook::check_files`]).
pub fn load(path: &Path) -> Result<Runbook, RunbookError> {
    let bytes = read_limited(path)?;
    parse_bytes(&bytes, path)
}

/// Validates runbook text; `path` names it in messages and its folder is the base for
/// relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Runbook, RunbookError> {
    parse_bytes(text.as_bytes(), path)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, RunbookError> {
    let read_error = |source| RunbookError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(read_error(source));
    }
    if metadata.len() > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: path.to_path_buf(),
            size: metadata.len(),
        });
    }

    // The file may grow between the size check and the read, so the read is bounded too.
    let mut bytes = Vec::new();
    file.take(MAX_RUNBOOK_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// A runbook of any kind.
#[derive(Debug, Clone)]
pub enum AnyRunbook {
    /// `kind: deployment`.
    Deployment(Box<Runbook>),
    /// `kind: retire`, `add-member` or `rotate-custodians`.
    Quorum(Box<QuorumRunbook>),
}

/// Reads and validates a runbook of any kind, chosen by its `kind` field.
pub fn load_any(path: &Path) -> Result<AnyRunbook, RunbookError> {
    let bytes = read_limited(path)?;
    let text = checked_text(&bytes, path)?;
    let kind: quorum::RawKind = serde_saphyr::from_str_with_options(text, validate::yaml_options())
        .map_err(|error| error::from_yaml(path, text, &error))?;
    let checker = validate::Checker {
        path,
        base_dir: &base_dir_of(path),
    };
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let quorum = match kind.kind.value.as_str() {
        KIND_RETIRE => quorum::retire(parse_raw(text, path)?, &checker, sha256)?,
        KIND_ADD_MEMBER => quorum::add_member(parse_raw(text, path)?, &checker, sha256)?,
        KIND_ROTATE_CUSTODIANS => quorum::rotate(parse_raw(text, path)?, &checker, sha256)?,
        _ => {
            return parse_bytes(&bytes, path)
                .map(|runbook| AnyRunbook::Deployment(Box::new(runbook)));
        }
    };
    Ok(AnyRunbook::Quorum(Box::new(quorum)))
}

fn parse_raw<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, RunbookError> {
    serde_saphyr::from_str_with_options(text, validate::yaml_options())
        .map_err(|error| error::from_yaml(path, text, &error))
}

fn checked_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, RunbookError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = validate::utf8_text(bytes, path)?;
    validate::reject_tabs(text, path)?;
    Ok(text)
}

fn base_dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn parse_bytes(bytes: &[u8], path: &Path) -> Result<Runbook, RunbookError> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if size > MAX_RUNBOOK_BYTES {
        return Err(RunbookError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let text = validate::utf8_text(bytes, path)?;
    validate::reject_tabs(text, path)?;

    let raw: raw::RawRunbook = serde_saphyr::from_str_with_options(text, validate::yaml_options())
        .map_err(|error| error::from_yaml(path, text, &error))?;
    let base_dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let sha256 = hex::encode(Sha256::digest(bytes));
    validate::runbook(raw, path, &base_dir, sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    /// Builds a valid runbook with inline keys and recipients, so that it needs no other files.
    fn inline_runbook() -> String {
        let pem = |seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            let pem = key.to_public_key_pem(Default::default()).unwrap();
            pem.lines()
                .map(|line| format!("    {line}\n"))
                .collect::<String>()
        };
        let recipient = || age::x25519::Identity::generate().to_public().to_string();
        format!(
            "version: 1
kind: deployment
fleet:
  id: unit-fleet
  namespace: example.com/fleets
  epoch: 3
fleet_key:
  algorithm: ed25519
  label: unit-key
members:
  - name: one
    site: Site One
    token:
      label: unit-one
    initialise: true
  - name: two
    site: Site Two
    token:
      label: unit-two
    initialise: true
custodians:
  threshold: 2
  people:
    - name: alice
      recipient: {}
    - name: bob
      recipient: {}
auditor:
  name: Auditor
  public_key: |
{}operator:
  name: Operator
  public_key: |
{}  signer:
    key_file: operator.pem
outputs:
  work_dir: work
  shares_dir: shares
  evidence_dir: evidence
",
            recipient(),
            recipient(),
            pem(1),
            pem(2)
        )
    }

    fn parse_with(old: &str, new: &str) -> Result<Runbook, RunbookError> {
        let text = inline_runbook();
        assert!(text.contains(old), "{old:?} not in the runbook");
        parse(&text.replacen(old, new, 1), Path::new("unit/runbook.yaml"))
    }

    #[test]
    fn inline_runbook_parses() {
        let book = parse(&inline_runbook(), Path::new("unit/runbook.yaml")).unwrap();
        assert_eq!(book.fleet.epoch, 3);
        assert_eq!(book.fleet_key.algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(book.members[0].module, PathBuf::from(DEFAULT_MODULE));
        assert_eq!(book.outputs.work_dir, PathBuf::from("unit/work"));
        assert_eq!(
            book.operator.signer,
            Signer::KeyFile("unit/operator.pem".into())
        );
        assert_eq!(
            book.custodians.people[1].recipient.kind,
            RecipientKind::X25519
        );
        assert_eq!(book.sha256().len(), 64);
    }

    #[test]
    fn traps_report_line_and_column() {
        // (replaced text, replacement, expected line, expected column, text in the message)
        let cases: &[(&str, &str, u32, u32, &str)] = &[
            (
                "      label: unit-two\n",
                "      label: unit-two\n      label: x\n",
                20,
                7,
                "duplicate key \"label\"",
            ),
            (
                "initialise: true\n  - name: two",
                "initialize: true\n  - name: two",
                15,
                5,
                "did you mean \"initialise\"",
            ),
            (
                "initialise: true\n  - name: two",
                "initialise: yes\n  - name: two",
                15,
                17,
                "invalid boolean",
            ),
            (
                "initialise: true\n  - name: two",
                "initialise: on\n  - name: two",
                15,
                17,
                "invalid boolean",
            ),
            (
                "label: unit-one",
                "label: 0012",
                14,
                14,
                "unquoted value \"0012\"",
            ),
            (
                "label: unit-one",
                "label: 1e3",
                14,
                14,
                "unquoted value \"1e3\"",
            ),
            (
                "label: unit-one",
                "label: 0x1F",
                14,
                14,
                "unquoted value \"0x1F\"",
            ),
            (
                "label: unit-one",
                "label: true",
                14,
                14,
                "unquoted value \"true\"",
            ),
            ("label: unit-one", "label: ~", 14, 14, "null"),
            (
                "site: Site One",
                "site: 12",
                12,
                11,
                "unquoted value \"12\"",
            ),
            ("name: alice", "name: null", 24, 13, "null"),
            (
                "version: 1",
                "version: 2",
                1,
                10,
                "unsupported runbook version 2",
            ),
            (
                "kind: deployment",
                "kind: rotation",
                2,
                7,
                "unsupported runbook kind",
            ),
        ];
        for (old, new, line, column, message) in cases {
            let error = parse_with(old, new).unwrap_err();
            let text = error.to_string();
            assert_eq!(
                error.position(),
                Some((*line, Some(*column))),
                "{new:?}: {text}"
            );
            assert!(text.contains(message), "{new:?}: {text}");
            assert!(text.starts_with("unit/runbook.yaml:"), "{text}");
        }
    }

    #[test]
    fn quoting_hint_for_ambiguous_scalars() {
        let error = parse_with("label: unit-one", "label: 0012").unwrap_err();
        assert!(
            error.to_string().contains("hint: quote the value"),
            "{error}"
        );
        let book = parse_with("label: unit-one", "label: \"0012\"").unwrap();
        assert_eq!(book.members[0].token, TokenRef::Label("0012".to_string()));
    }

    #[test]
    fn validation_errors_name_field_and_line() {
        let long_label = format!("label: {}", "x".repeat(33));
        let cases: Vec<(&str, String, &str, u32)> = vec![
            (
                "threshold: 2",
                "threshold: 0".into(),
                "custodians.threshold",
                22,
            ),
            (
                "threshold: 2",
                "threshold: 1".into(),
                "custodians.threshold",
                22,
            ),
            (
                "threshold: 2",
                "threshold: 3".into(),
                "custodians.threshold",
                22,
            ),
            ("name: two", "name: one".into(), "members[1].name", 16),
            (
                "label: unit-two",
                "label: unit-one".into(),
                "members[1].token",
                19,
            ),
            (
                "name: bob",
                "name: alice".into(),
                "custodians.people[1].name",
                26,
            ),
            ("label: unit-two", long_label, "members[1].token.label", 19),
            (
                "      label: unit-two\n",
                "      label: unit-two\n      serial: \"1\"\n".into(),
                "members[1].token",
                19,
            ),
            ("site: Site Two", "site: \"\"".into(), "members[1].site", 17),
            (
                "site: Site Two",
                "site: \"a\\tb\"".into(),
                "members[1].site",
                17,
            ),
            ("id: unit-fleet", "id: Unit".into(), "fleet.id", 4),
            ("epoch: 3", "epoch: 0".into(), "fleet.epoch", 6),
        ];
        for (old, new, field, line) in cases {
            let error = parse_with(old, &new).unwrap_err();
            assert_eq!(error.field(), Some(field), "{new:?}: {error}");
            assert_eq!(
                error.position().map(|p| p.0),
                Some(line),
                "{new:?}: {error}"
            );
        }
    }

    #[test]
    fn duplicate_recipient_is_rejected() {
        let text = inline_runbook();
        let first = text
            .split("recipient: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        let second = text
            .split("recipient: ")
            .nth(2)
            .unwrap()
            .lines()
            .next()
            .unwrap();
        let text = text.replace(second, first);
        let error = parse(&text, Path::new("r.yaml")).unwrap_err();
        assert_eq!(error.field(), Some("custodians.people[1]"), "{error}");
    }

    #[test]
    fn too_many_custodians_is_rejected() {
        let people: String = (0..256)
            .map(|i| format!("    - name: c{i}\n      recipient: age1x\n"))
            .collect();
        let text = inline_runbook();
        let start = text.find("  people:\n").unwrap() + "  people:\n".len();
        let end = text.find("auditor:").unwrap();
        let text = format!("{}{people}{}", &text[..start], &text[end..]);
        let error = parse(&text, Path::new("r.yaml")).unwrap_err();
        assert_eq!(error.field(), Some("custodians.people"), "{error}");
        assert!(error.to_string().contains("256 custodians"), "{error}");
    }

    #[test]
    fn auditor_key_must_be_ed25519() {
        let secret = p256::SecretKey::from_slice(&[3; 32]).unwrap();
        let pem = secret
            .public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let text = inline_runbook();
        let start = text.find("auditor:").unwrap();
        let end = text.find("operator:").unwrap();
        let indented: String = pem.lines().map(|line| format!("    {line}\n")).collect();
        let auditor = format!("auditor:\n  name: Auditor\n  public_key: |\n{indented}");
        let text = format!("{}{auditor}{}", &text[..start], &text[end..]);
        let error = parse(&text, Path::new("r.yaml")).unwrap_err();
        assert_eq!(error.field(), Some("auditor.public_key"), "{error}");
        assert!(error.to_string().contains("not an Ed25519 key"), "{error}");
    }

    #[test]
    fn oversized_text_is_rejected_before_parsing() {
        let text = format!("{}\n{}", inline_runbook(), "#".repeat(1024 * 1024));
        let error = parse(&text, Path::new("r.yaml")).unwrap_err();
        assert!(matches!(error, RunbookError::TooLarge { .. }));
    }

    #[test]
    fn tab_is_rejected() {
        let error = parse_with("    site: Site One", "\tsite: Site One").unwrap_err();
        assert!(
            matches!(
                error,
                RunbookError::Tab {
                    line: 12,
                    column: 1,
                    ..
                }
            ),
            "{error}"
        );
    }
}
