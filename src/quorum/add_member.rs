//! Adding a member to a deployed fleet: a new token is initialised with new PINs, a new
//! share set covering every member's PINs is written, and the fleet key is copied from a
//! source member under transport keys.
//!
//! The copy needs the source's private key to be wrappable (CKA_EXTRACTABLE true). A
//! deployment with `growth: locked` locks every copy, so `check` reports a locked source
//! before anything changes. A deployment with `growth: trusted-wrap` leaves the origin's
//! copy wrappable under CKA_TRUSTED keys only (CKA_WRAP_WITH_TRUSTED true). The copy then
//! logs in as the source's security officer, with the SO PIN that the shares recover, to
//! make a trusted one-time AES key.

use std::path::PathBuf;

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use serde_json::json;

use super::progress::sha256_hex;
use super::rotate::{check_share_files_absent, recipients};
use super::{
    QuorumError, action, check_not_started, check_shares_fit, find_token, pins_of, record,
    split_files,
};
use crate::ceremony::preflight::Problem;
use crate::hsm::keys::Wrapping;
use crate::hsm::replicate::{
    self, OriginKey, REPLICATION_MECHANISMS, Side, TrustedWrappingKeys, WrappingKey,
};
use crate::hsm::{HsmError, KeyAlgorithm, Library, Token, TokenCache, TokenSelector, keys};
use crate::runbook::{AddMember, Growth, QuorumRunbook, TokenRef};
use crate::shares::{self, CredentialSet, MemberCredentials, Recovered, ShareFile};
use crate::transcript::Transcript;

/// What `add_member` did.
#[derive(Debug)]
pub struct AddedMember {
    /// Id of the new share set, which holds the PINs of every member, the new one too.
    pub credential_set: String,
    /// The new share files, in custodian order.
    pub share_files: Vec<PathBuf>,
    /// Label of the new member's token.
    pub token_label: String,
}

/// Checks an add-member runbook against the environment without changing anything.
///
/// Checks that the transcript and new share files do not exist, that every existing
/// member's token is present, that the new member's token label is free and a free slot
/// exists, and that the source token has the replication mechanisms. With `recovered` it
/// logs in as the user on the source and checks that its fleet private key can be
/// wrapped: CKA_EXTRACTABLE true, with CKA_WRAP_WITH_TRUSTED either way. Without it, the
/// private key is not checked, because it is invisible before login. When the key is
/// wrappable under trusted keys only, it also logs in once as the source's security
/// officer, whose PIN the run needs.
pub fn check_add_member(
    runbook: &QuorumRunbook,
    add: &AddMember,
    recovered: Option<&Recovered>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_not_started(runbook, &mut problems);
    check_share_files_absent(&add.custodians, &add.shares_dir, &mut problems);
    let mut problem = |place: String, message: String| problems.push(Problem { place, message });

    for member in &add.members {
        if let Err(error) = find_token(member) {
            problem(format!("member {}", member.name), error.to_string());
        }
    }
    if let Err(message) = check_new_member(add) {
        problem("new_member".into(), message);
    }
    if let Err(message) = check_source_mechanisms(add) {
        problem(format!("source {}", add.source), message);
    }
    if let Some(recovered) = recovered {
        if let Err(error) = check_shares_fit(&runbook.fleet, &add.members, recovered) {
            problem("shares".into(), error.to_string());
        } else if let Err(message) = check_source_key(add, recovered) {
            problem(format!("source {}", add.source), message);
        }
    }
    problems
}

fn check_new_member(add: &AddMember) -> Result<(), String> {
    let member = &add.new_member;
    let TokenRef::Label(label) = &member.token else {
        return Err(
            "the new member's token must be named by label, because initialising \
             sets the label"
                .into(),
        );
    };
    let library = Library::load(&member.module).map_err(|error| error.to_string())?;
    let tokens = TokenCache::read(&library).map_err(|error| error.to_string())?;
    let existing = tokens.find(&TokenSelector::Label(label.clone()));
    if !matches!(existing, Err(HsmError::TokenNotFound { .. })) {
        return Err(format!(
            "a token labelled {label:?} exists; initialising would erase it\nhint: give the new member a new token label"
        ));
    }
    let mechanisms = tokens
        .free_slot_mechanisms()
        .map_err(|error| error.to_string())?
        .ok_or_else(|| format!("no free slot in {}", member.module.display()))?;
    missing_mechanisms(&mechanisms)
}

fn check_source_mechanisms(add: &AddMember) -> Result<(), String> {
    let token = find_token(add.source_member()).map_err(|error| error.to_string())?;
    let mechanisms = token.mechanisms().map_err(|error| error.to_string())?;
    missing_mechanisms(&mechanisms)
}

fn missing_mechanisms(available: &[cryptoki::mechanism::MechanismType]) -> Result<(), String> {
    let missing: Vec<&str> = REPLICATION_MECHANISMS
        .iter()
        .filter(|(mechanism, _)| !available.contains(mechanism))
        .map(|(_, purpose)| *purpose)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the token lacks mechanisms needed to {}",
        missing.join(", ")
    ))
}

/// Logs in on the source and checks that its fleet private key can be wrapped.
fn check_source_key(add: &AddMember, recovered: &Recovered) -> Result<(), String> {
    let source = add.source_member();
    let token = find_token(source).map_err(|error| error.to_string())?;
    let pins = pins_of(recovered, source).map_err(|error| error.to_string())?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(|error| error.to_string())?;
    keys::find_one(&session, &token, &add.key_label, ObjectClass::PUBLIC_KEY)
        .map_err(|error| error.to_string())?;
    let private = keys::find_one(&session, &token, &add.key_label, ObjectClass::PRIVATE_KEY)
        .map_err(|error| error.to_string())?;
    let wrapping = source_wrapping(&session, &token, private)
        .map_err(|error| error.to_string())?
        .ok_or_else(|| {
            format!(
                "the fleet private key {:?} on token {} has CKA_EXTRACTABLE false, so no \
                 mechanism can wrap it for a new member; PKCS#11 never lets it become \
                 true again\nhint: only the origin of a fleet deployed with `growth: \
                 trusted-wrap` keeps a wrappable copy, so if this fleet was deployed that \
                 way, name the origin as source (the member that generated the key, \
                 `origin: true` in fleet-key.json); otherwise the fleet was deployed with \
                 `growth: locked` (the default), which locks every copy, so it cannot gain \
                 members by replication: deploy a new fleet that includes the new member, \
                 and set `growth: trusted-wrap` under `fleet_key` if it must gain members \
                 later",
                add.key_label, token.label
            )
        })?;
    session
        .logout()
        .map_err(|error| HsmError::from_cryptoki(&token.label, "log out", error).to_string())?;
    drop(session);

    // The run logs in as the security officer to make the trusted wrapping key, so a
    // wrong SO PIN must show now, before the new token is initialised.
    if wrapping == Wrapping::TrustedOnly {
        let so_session = token.login_so(&pins.so_pin).map_err(|error| {
            format!(
                "the run needs the security officer of member {} to make a trusted wrapping \
                 key: {error}",
                source.name
            )
        })?;
        so_session
            .logout()
            .map_err(|error| HsmError::from_cryptoki(&token.label, "log out", error).to_string())?;
    }
    Ok(())
}

/// Reads how the source's private key can be wrapped; `None` when it cannot be at all.
fn source_wrapping(
    session: &cryptoki::session::Session,
    token: &Token,
    private: cryptoki::object::ObjectHandle,
) -> Result<Option<Wrapping>, HsmError> {
    let attributes = session
        .get_attributes(
            private,
            &[AttributeType::Extractable, AttributeType::WrapWithTrusted],
        )
        .map_err(|error| HsmError::from_cryptoki(&token.label, "read key attributes", error))?;
    let mut extractable = false;
    let mut trusted_only = false;
    for attribute in attributes {
        match attribute {
            Attribute::Extractable(value) => extractable = value,
            Attribute::WrapWithTrusted(value) => trusted_only = value,
            _ => {}
        }
    }
    Ok(match (extractable, trusted_only) {
        (false, _) => None,
        (true, false) => Some(Wrapping::Any),
        (true, true) => Some(Wrapping::TrustedOnly),
    })
}

/// Initialises the new member's token with new PINs, writes a new share set covering
/// every member, copies the fleet key from the source, checks the copy, and records each
/// step in the action's transcript.
///
/// Runs [`check_add_member`] first and changes nothing when it finds a problem. The new
/// shares are written before the token is initialised, so its PINs are never only in
/// memory. The old shares stay valid for the old members but lack the new one.
pub fn add_member(
    runbook: &QuorumRunbook,
    add: &AddMember,
    recovered: Recovered,
) -> Result<AddedMember, QuorumError> {
    let problems = check_add_member(runbook, add, Some(&recovered));
    if !problems.is_empty() {
        return Err(QuorumError::Preflight {
            count: problems.len(),
        });
    }
    let previous_set = recovered.credential_set_id.clone();
    let (credentials, files) = new_share_set(add, recovered)?;

    let mut transcript = Transcript::create(&runbook.transcript())?;
    record(
        &mut transcript,
        action::STARTED,
        json!({
            "kind": runbook.kind(),
            "fleet_id": runbook.fleet.id,
            "runbook_sha256": runbook.sha256(),
            "credential_set": previous_set,
            "source": add.source,
            "new_member": add.new_member.name,
        }),
    )?;
    let share_files = write_new_set(add, &mut transcript, &previous_set, &credentials, &files)?;
    let new_token = initialise_new_token(add, &mut transcript, &credentials)?;
    copy_and_record(add, &mut transcript, &credentials, &new_token)?;
    record(
        &mut transcript,
        action::FINISHED,
        json!({"credential_set": credentials.id}),
    )?;
    Ok(AddedMember {
        credential_set: credentials.id.clone(),
        share_files,
        token_label: new_token.label,
    })
}

/// Returns the label of the new member's token, which the runbook gives by label.
pub(super) fn new_token_label(add: &AddMember) -> String {
    match &add.new_member.token {
        TokenRef::Label(label) | TokenRef::Serial(label) => label.clone(),
    }
}

/// Makes the new credential set, every old member's PINs plus fresh PINs for the new
/// member under a new id, and splits it for the runbook's custodians, in memory.
pub(super) fn new_share_set(
    add: &AddMember,
    recovered: Recovered,
) -> Result<(CredentialSet, Vec<ShareFile>), QuorumError> {
    let new = &add.new_member;
    let fresh = CredentialSet::generate(&[(new.name.clone(), new_token_label(add))]);
    let mut members = recovered.credentials.members;
    members.extend(fresh.members);
    let credentials = CredentialSet {
        id: recovered.credential_set_id,
        members,
    }
    .with_new_id();
    let files = shares::split(
        &credentials,
        &recovered.context,
        &recipients(&add.custodians),
        add.custodians.threshold,
    )?;
    Ok((credentials, files))
}

/// Records the split with the digest of every share file, writes the files and records
/// each one. The split record comes first, so that a resumed run can tell whether a file
/// on disk is a share of this split.
pub(super) fn write_new_set(
    add: &AddMember,
    transcript: &mut Transcript,
    previous_set: &str,
    credentials: &CredentialSet,
    files: &[ShareFile],
) -> Result<Vec<PathBuf>, QuorumError> {
    record(
        transcript,
        action::SPLIT,
        json!({
            "previous_credential_set": previous_set,
            "credential_set": credentials.id,
            "threshold": add.custodians.threshold,
            "custodians": files.iter().map(|file| file.custodian.as_str()).collect::<Vec<_>>(),
            "members": credentials.members.iter().map(|m| m.member.as_str()).collect::<Vec<_>>(),
            "files": split_files(&add.shares_dir, files),
        }),
    )?;
    let share_files = shares::write_share_files(&add.shares_dir, files)?;
    for (file, path) in files.iter().zip(&share_files) {
        record(
            transcript,
            action::SHARE_WRITTEN,
            json!({
                "custodian": file.custodian,
                "index": file.index,
                "file": path.display().to_string(),
                "sha256": sha256_hex(&file.armored),
            }),
        )?;
    }
    Ok(share_files)
}

/// Returns the new member's PINs from the new credential set.
pub(super) fn new_member_pins<'a>(
    add: &AddMember,
    credentials: &'a CredentialSet,
) -> Result<&'a MemberCredentials, QuorumError> {
    credentials
        .members
        .iter()
        .find(|entry| entry.member == add.new_member.name)
        .ok_or_else(|| QuorumError::WrongShares {
            reason: format!("they hold no PINs for member {}", add.new_member.name),
        })
}

/// Initialises the new member's token with its PINs from `credentials` and records it.
pub(super) fn initialise_new_token(
    add: &AddMember,
    transcript: &mut Transcript,
    credentials: &CredentialSet,
) -> Result<Token, QuorumError> {
    let new = &add.new_member;
    let pins = new_member_pins(add, credentials)?;
    let library =
        Library::load(&new.module).map_err(QuorumError::hsm("initialise token", &new.name))?;
    let token = Token::initialise(
        &library,
        &new_token_label(add),
        &pins.so_pin,
        &pins.user_pin,
    )
    .map_err(QuorumError::hsm("initialise token", &new.name))?;
    record(
        transcript,
        action::TOKEN_INITIALISED,
        json!({"member": new.name, "token_label": token.label, "token_serial": token.serial}),
    )?;
    Ok(token)
}

/// Copies the fleet key from the source to `new_token`, checks the copy and records it.
pub(super) fn copy_and_record(
    add: &AddMember,
    transcript: &mut Transcript,
    credentials: &CredentialSet,
    new_token: &Token,
) -> Result<(), QuorumError> {
    let new_pins = new_member_pins(add, credentials)?;
    let copied = copy_key(
        add,
        recovered_source_pins(add, credentials)?,
        new_token.clone(),
        &new_pins.user_pin,
    )?;
    let growth = match copied.source_wrapping {
        Wrapping::TrustedOnly => Some(Growth::TrustedWrap.as_str()),
        Wrapping::Any | Wrapping::Never => None,
    };
    record(
        transcript,
        action::KEY_REPLICATED,
        json!({
            "from": add.source,
            "to": add.new_member.name,
            "token_label": new_token.label,
            "label": add.key_label,
            "growth": growth,
            "trusted_wrapping_key": copied.source_wrapping == Wrapping::TrustedOnly,
            "key_attributes": copied.attributes,
        }),
    )?;
    Ok(())
}

pub(super) fn recovered_source_pins<'a>(
    add: &AddMember,
    credentials: &'a CredentialSet,
) -> Result<&'a MemberCredentials, QuorumError> {
    credentials
        .members
        .iter()
        .find(|entry| entry.member == add.source)
        .ok_or_else(|| QuorumError::WrongShares {
            reason: format!("they hold no PINs for member {}", add.source),
        })
}

/// The result of [`copy_key`].
struct Copied {
    /// Wrapping that the source's key allows.
    source_wrapping: Wrapping,
    /// The copy's attributes, checked to be sensitive, non-extractable and not generated
    /// locally.
    attributes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Copies the fleet key from the source to the new token and returns the copy's
/// attributes. A source key with CKA_WRAP_WITH_TRUSTED true is wrapped under a trusted
/// AES key that the source's security officer makes.
fn copy_key(
    add: &AddMember,
    source_pins: &MemberCredentials,
    new_token: Token,
    new_pin: &secrecy::SecretString,
) -> Result<Copied, QuorumError> {
    let step = "replicate the fleet key";
    let source = add.source_member();
    let source_token = find_token(source).map_err(QuorumError::hsm(step, &source.name))?;
    let source_session = source_token
        .login_user(&source_pins.user_pin)
        .map_err(QuorumError::hsm(step, &source.name))?;
    let new_name = &add.new_member.name;
    let new_session = new_token
        .login_user(new_pin)
        .map_err(QuorumError::hsm(step, new_name))?;

    let private = keys::find_one(
        &source_session,
        &source_token,
        &add.key_label,
        ObjectClass::PRIVATE_KEY,
    )
    .map_err(QuorumError::hsm(step, &source.name))?;
    let source_wrapping = source_wrapping(&source_session, &source_token, private)
        .map_err(QuorumError::hsm(step, &source.name))?
        .unwrap_or(Wrapping::Never);
    let trusted = match source_wrapping {
        Wrapping::TrustedOnly => Some(
            TrustedWrappingKeys::generate(
                &source_token,
                &source_pins.so_pin,
                &source_pins.user_pin,
                1,
            )
            .map_err(QuorumError::hsm(
                "make a trusted wrapping key",
                &source.name,
            ))?,
        ),
        Wrapping::Any | Wrapping::Never => None,
    };
    let wrapping = match trusted.as_ref().and_then(|keys| keys.handles().first()) {
        Some(handle) => WrappingKey::Trusted(*handle),
        None => WrappingKey::OneTime,
    };

    // Found again, because the security officer login invalidates private key handles.
    let private = keys::find_one(
        &source_session,
        &source_token,
        &add.key_label,
        ObjectClass::PRIVATE_KEY,
    )
    .map_err(QuorumError::hsm(step, &source.name))?;
    let public_key = keys::find_public_key(
        &source_session,
        &source_token,
        &add.key_label,
        KeyAlgorithm::EcdsaP256,
    )
    .map_err(QuorumError::hsm(step, &source.name))?;
    let id = source_session
        .get_attributes(private, &[AttributeType::Id])
        .map_err(|error| HsmError::from_cryptoki(&source_token.label, "read the key id", error))
        .map_err(QuorumError::hsm(step, &source.name))?
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::Id(id) => Some(id),
            _ => None,
        })
        .unwrap_or_default();

    let origin = Side {
        token: &source_token,
        session: &source_session,
    };
    let member = Side {
        token: &new_token,
        session: &new_session,
    };
    let key = OriginKey {
        label: &add.key_label,
        id: &id,
        private,
        public_key: &public_key,
    };
    let pair = replicate::replicate(&origin, &member, &key, wrapping)
        .map_err(QuorumError::hsm(step, new_name))?;
    drop(trusted);
    let attributes = keys::read_attributes(&new_session, &new_token, pair.private)
        .map_err(QuorumError::hsm(step, new_name))?;
    keys::check_attributes(
        &attributes,
        &new_token,
        &add.key_label,
        false,
        Wrapping::Never,
    )
    .map_err(QuorumError::hsm(step, new_name))?;
    tracing::info!(member = %new_name, "copied the fleet key to the new member");
    Ok(Copied {
        source_wrapping,
        attributes,
    })
}
