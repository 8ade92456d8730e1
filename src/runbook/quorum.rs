//! Runbooks of quorum actions on a deployed fleet: `retire`, `add-member` and
//! `rotate-custodians`. Each needs a quorum of custodian shares at run time.
//!
//! They are parsed with the same strict YAML settings as a deployment runbook, and share
//! its `fleet`, `defaults`, `members` and `custodians` schemas.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::raw::{RawCustodians, RawDefaults, RawFleet, RawMember};
use super::validate::{self, Checker};
use super::{
    Custodians, DEFAULT_MODULE, Fleet, KeyAlgorithm, Member, RUNBOOK_VERSION, RunbookError,
    TRANSCRIPT_FILE,
};

/// Runbook kind that destroys the fleet key on every member.
pub const KIND_RETIRE: &str = "retire";

/// Runbook kind that copies the fleet key to a new member HSM.
pub const KIND_ADD_MEMBER: &str = "add-member";

/// Runbook kind that gives the custodians' shares to new custodians or a new threshold.
pub const KIND_ROTATE_CUSTODIANS: &str = "rotate-custodians";

/// A validated quorum-action runbook.
#[derive(Debug, Clone)]
pub struct QuorumRunbook {
    /// The runbook file.
    pub path: PathBuf,
    /// Fleet identity; must match the fleet named in the custodians' shares.
    pub fleet: Fleet,
    /// Folder of this action's transcript; a new one per action.
    pub work_dir: PathBuf,
    /// What the action does.
    pub action: QuorumAction,
    sha256: String,
}

impl QuorumRunbook {
    /// Lowercase hex SHA-256 of the runbook file's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Path of this action's transcript.
    pub fn transcript(&self) -> PathBuf {
        self.work_dir.join(TRANSCRIPT_FILE)
    }

    /// Returns the runbook kind as written in the file.
    pub fn kind(&self) -> &'static str {
        match self.action {
            QuorumAction::Retire(_) => KIND_RETIRE,
            QuorumAction::AddMember(_) => KIND_ADD_MEMBER,
            QuorumAction::RotateCustodians(_) => KIND_ROTATE_CUSTODIANS,
        }
    }
}

/// The action of a quorum runbook.
#[derive(Debug, Clone)]
pub enum QuorumAction {
    /// Destroy the fleet key on every member.
    Retire(Retire),
    /// Copy the fleet key to a new member.
    AddMember(Box<AddMember>),
    /// Reshare the credentials to new custodians.
    RotateCustodians(RotateCustodians),
}

/// Settings of a `retire` runbook.
#[derive(Debug, Clone)]
pub struct Retire {
    /// CKA_LABEL of the fleet key objects to destroy.
    pub key_label: String,
    /// Every member of the fleet; none is initialised.
    pub members: Vec<Member>,
    /// Number of custodians whose shares must be given.
    pub threshold: u8,
    /// Folder that receives the retirement evidence.
    pub evidence_dir: PathBuf,
}

/// Settings of an `add-member` runbook.
#[derive(Debug, Clone)]
pub struct AddMember {
    /// Algorithm of the fleet key; replication supports ECDSA P-256 only.
    pub algorithm: KeyAlgorithm,
    /// CKA_LABEL of the fleet key objects.
    pub key_label: String,
    /// The existing members; none is initialised.
    pub members: Vec<Member>,
    /// Name of the existing member whose copy is wrapped for the new member.
    pub source: String,
    /// The member to initialise and give a copy of the fleet key.
    pub new_member: Member,
    /// Custodians of the new share set, which covers every member's PINs.
    pub custodians: Custodians,
    /// Folder for the new share set; must not hold share files of these custodians.
    pub shares_dir: PathBuf,
}

impl AddMember {
    /// Returns the source member.
    pub fn source_member(&self) -> &Member {
        self.members
            .iter()
            .find(|member| member.name == self.source)
            .expect("validation checks that the source is one of the members")
    }
}

/// Settings of a `rotate-custodians` runbook.
#[derive(Debug, Clone)]
pub struct RotateCustodians {
    /// The new custodians and threshold.
    pub custodians: Custodians,
    /// Folder for the new share set.
    pub shares_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetire {
    version: Spanned<u64>,
    kind: Spanned<String>,
    fleet: RawFleet,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    fleet_key: RawKeyLabel,
    members: Spanned<Vec<RawMember>>,
    custodians: RawThreshold,
    outputs: RawRetireOutputs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyLabel {
    label: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeySpec {
    algorithm: Spanned<String>,
    label: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    threshold: Spanned<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetireOutputs {
    work_dir: Spanned<String>,
    evidence_dir: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAddMember {
    version: Spanned<u64>,
    kind: Spanned<String>,
    fleet: RawFleet,
    #[serde(default)]
    defaults: Option<RawDefaults>,
    fleet_key: RawKeySpec,
    members: Spanned<Vec<RawMember>>,
    source: Spanned<String>,
    new_member: RawMember,
    custodians: RawCustodians,
    outputs: RawSharesOutputs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotate {
    version: Spanned<u64>,
    kind: Spanned<String>,
    fleet: RawFleet,
    custodians: RawCustodians,
    outputs: RawSharesOutputs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharesOutputs {
    work_dir: Spanned<String>,
    shares_dir: Spanned<String>,
}

/// Only the `kind` field, read first to choose the schema; other fields are left to it.
#[derive(Debug, Deserialize)]
pub(super) struct RawKind {
    pub kind: Spanned<String>,
}

/// Common parts of every quorum runbook, checked once.
struct Header {
    fleet: Fleet,
    default_module: PathBuf,
}

fn header(
    checker: &Checker<'_>,
    version: &Spanned<u64>,
    fleet: &RawFleet,
    defaults: Option<&RawDefaults>,
) -> Result<Header, RunbookError> {
    if version.value != RUNBOOK_VERSION {
        let message = format!("unsupported runbook version {}", version.value);
        let hint = format!("this tool reads runbook version {RUNBOOK_VERSION}");
        return Err(checker.invalid("version", version, message, Some(&hint)));
    }
    let fleet = Fleet {
        id: checker.name("fleet.id", &fleet.id)?,
        namespace: checker.text("fleet.namespace", &fleet.namespace)?,
        epoch: validate::epoch(checker, &fleet.epoch)?,
    };
    let default_module = match defaults.and_then(|d| d.module.as_ref()) {
        Some(module) => checker.resolve("defaults.module", module)?,
        None => PathBuf::from(DEFAULT_MODULE),
    };
    Ok(Header {
        fleet,
        default_module,
    })
}

/// Checks that no existing member is marked for initialising, because initialising erases
/// a token and every key on it.
fn existing_members(
    checker: &Checker<'_>,
    raw: &Spanned<Vec<RawMember>>,
    default_module: &Path,
) -> Result<Vec<Member>, RunbookError> {
    let members = validate::members(checker, raw, default_module)?;
    for (index, (member, raw_member)) in members.iter().zip(&raw.value).enumerate() {
        if member.initialise {
            let field = format!("members[{index}].initialise");
            let message = format!(
                "member {} of a deployed fleet is marked initialise: true",
                member.name
            );
            let hint = "initialising erases the token and its fleet key; set initialise: false";
            return Err(checker.invalid(&field, &raw_member.initialise, message, Some(hint)));
        }
    }
    Ok(members)
}

fn threshold(checker: &Checker<'_>, value: &Spanned<u64>) -> Result<u8, RunbookError> {
    // 255 is the largest share count, so it bounds the threshold too.
    validate::threshold(checker, value, 255)?;
    Ok(u8::try_from(value.value).expect("threshold() bounds it by 255"))
}

pub(super) fn retire(
    raw: RawRetire,
    checker: &Checker<'_>,
    sha256: String,
) -> Result<QuorumRunbook, RunbookError> {
    check_kind(checker, &raw.kind, KIND_RETIRE)?;
    let header = header(checker, &raw.version, &raw.fleet, raw.defaults.as_ref())?;
    let retire = Retire {
        key_label: checker.key_label("fleet_key.label", &raw.fleet_key.label)?,
        members: existing_members(checker, &raw.members, &header.default_module)?,
        threshold: threshold(checker, &raw.custodians.threshold)?,
        evidence_dir: checker.resolve("outputs.evidence_dir", &raw.outputs.evidence_dir)?,
    };
    Ok(QuorumRunbook {
        path: checker.path.to_path_buf(),
        fleet: header.fleet,
        work_dir: checker.resolve("outputs.work_dir", &raw.outputs.work_dir)?,
        action: QuorumAction::Retire(retire),
        sha256,
    })
}

pub(super) fn add_member(
    raw: RawAddMember,
    checker: &Checker<'_>,
    sha256: String,
) -> Result<QuorumRunbook, RunbookError> {
    check_kind(checker, &raw.kind, KIND_ADD_MEMBER)?;
    let header = header(checker, &raw.version, &raw.fleet, raw.defaults.as_ref())?;
    let algorithm = validate::algorithm(checker, &raw.fleet_key.algorithm)?;
    if algorithm != KeyAlgorithm::EcdsaP256 {
        let message = format!("cannot add a member to a fleet with an {algorithm} key");
        let hint = "replication between HSMs supports ecdsa-p256 fleet keys only";
        return Err(checker.invalid(
            "fleet_key.algorithm",
            &raw.fleet_key.algorithm,
            message,
            Some(hint),
        ));
    }
    let members = existing_members(checker, &raw.members, &header.default_module)?;

    let source = checker.name("source", &raw.source)?;
    if !members.iter().any(|member| member.name == source) {
        let message = format!("source {source:?} is not one of the members");
        let hint = "name the existing member whose fleet key copy is wrapped for the new member";
        return Err(checker.invalid("source", &raw.source, message, Some(hint)));
    }

    let new_member = validate::member(
        checker,
        "new_member",
        &raw.new_member,
        &header.default_module,
        false,
    )?;
    if !new_member.initialise {
        let message = "the new member is not marked initialise: true".to_string();
        let hint = "the tool initialises the new member's token with new PINs";
        return Err(checker.invalid(
            "new_member.initialise",
            &raw.new_member.initialise,
            message,
            Some(hint),
        ));
    }
    if let Some(clash) = members
        .iter()
        .find(|member| member.name == new_member.name || member.token == new_member.token)
    {
        let message = format!(
            "the new member clashes with existing member {}: same name or token",
            clash.name
        );
        return Err(checker.invalid("new_member.name", &raw.new_member.name, message, None));
    }

    let add = AddMember {
        algorithm,
        key_label: checker.key_label("fleet_key.label", &raw.fleet_key.label)?,
        members,
        source,
        new_member,
        custodians: validate::custodians(checker, &raw.custodians)?,
        shares_dir: checker.resolve("outputs.shares_dir", &raw.outputs.shares_dir)?,
    };
    Ok(QuorumRunbook {
        path: checker.path.to_path_buf(),
        fleet: header.fleet,
        work_dir: checker.resolve("outputs.work_dir", &raw.outputs.work_dir)?,
        action: QuorumAction::AddMember(Box::new(add)),
        sha256,
    })
}

pub(super) fn rotate(
    raw: RawRotate,
    checker: &Checker<'_>,
    sha256: String,
) -> Result<QuorumRunbook, RunbookError> {
    check_kind(checker, &raw.kind, KIND_ROTATE_CUSTODIANS)?;
    let header = header(checker, &raw.version, &raw.fleet, None)?;
    let rotate = RotateCustodians {
        custodians: validate::custodians(checker, &raw.custodians)?,
        shares_dir: checker.resolve("outputs.shares_dir", &raw.outputs.shares_dir)?,
    };
    Ok(QuorumRunbook {
        path: checker.path.to_path_buf(),
        fleet: header.fleet,
        work_dir: checker.resolve("outputs.work_dir", &raw.outputs.work_dir)?,
        action: QuorumAction::RotateCustodians(rotate),
        sha256,
    })
}

fn check_kind(
    checker: &Checker<'_>,
    kind: &Spanned<String>,
    expected: &str,
) -> Result<(), RunbookError> {
    if kind.value != expected {
        let message = format!(
            "runbook kind {:?} read with the {expected:?} schema",
            kind.value
        );
        return Err(checker.invalid("kind", kind, message, None));
    }
    Ok(())
}
