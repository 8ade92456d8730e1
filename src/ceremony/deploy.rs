//! The HSM part of a deployment: tokens, fleet key, replication, shares, and the
//! documents handed to the auditor.

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use cryptoki::session::Session;
use rand::RngCore;
use serde_json::{Value, json};

use super::{ACTION_REQUEST_WRITTEN, CeremonyError};
use crate::bundle::{
    self, CustodianSummary, FleetKeyDocument, KeyEntry, MemberEntry, SigningRequest,
};
use crate::fsutil::write_new;
use crate::hsm::replicate::{self, OriginKey, Side};
use crate::hsm::{self, Library, Token, keys};
use crate::runbook::{self, Runbook, TokenRef};
use crate::shares::{self, CredentialSet, CustodianRecipient, ShareContext};
use crate::transcript::Transcript;

/// Name and version of this tool, as recorded in documents.
pub const TOOL: &str = concat!("fleet-ceremony ", env!("CARGO_PKG_VERSION"));

/// What the HSM part produced.
#[derive(Debug)]
pub struct Deployed {
    /// Ceremony id, as recorded in the transcript and the shares.
    pub ceremony: String,
    /// Fingerprint of the fleet key.
    pub fingerprint: String,
    /// The signing request for the auditor.
    pub signing_request: std::path::PathBuf,
}

/// One member's token and a user session on it.
struct Opened {
    token: Token,
    session: Session,
}

/// Runs the HSM part of a deployment: initialises tokens, generates the fleet key on the
/// origin, replicates and locks it, splits the credentials among the custodians, and
/// writes the fleet-key document and signing request. Every action goes to the
/// transcript. The caller has run the preflight checks.
pub fn deploy(runbook: &Runbook) -> Result<Deployed, CeremonyError> {
    let started = Utc::now();
    let ceremony = format!(
        "{}-e{}-{}",
        runbook.fleet.id,
        runbook.fleet.epoch,
        started.format("%Y%m%dT%H%M%SZ")
    );
    std::fs::create_dir_all(&runbook.outputs.work_dir).map_err(|source| CeremonyError::Read {
        path: runbook.outputs.work_dir.clone(),
        source,
    })?;
    let mut transcript = Transcript::create(&runbook.outputs.transcript())?;
    transcript.append(
        "ceremony started",
        json!({
            "ceremony": ceremony,
            "runbook": runbook.path.display().to_string(),
            "runbook_sha256": runbook.sha256(),
            "fleet": runbook.fleet.id,
            "namespace": runbook.fleet.namespace,
            "epoch": runbook.fleet.epoch,
            "tool": TOOL,
        }),
    )?;

    let member_labels: Vec<(String, String)> = runbook
        .members
        .iter()
        .map(|member| (member.name.clone(), token_label(&member.token)))
        .collect();
    let credentials = CredentialSet::generate(&member_labels);

    let opened = open_members(runbook, &credentials, &mut transcript)?;
    let (spki_pem, fingerprint, attributes) = make_fleet_key(runbook, &opened, &mut transcript)?;

    write_shares(runbook, &ceremony, &credentials, &mut transcript)?;
    drop(credentials);

    let document = FleetKeyDocument {
        format: bundle::DOCUMENT_FORMAT.to_owned(),
        fleet_id: runbook.fleet.id.clone(),
        namespace: runbook.fleet.namespace.clone(),
        epoch: runbook.fleet.epoch,
        created_at: started,
        keys: vec![KeyEntry {
            role: "fleet".to_owned(),
            label: runbook.fleet_key.label.clone(),
            algorithm: runbook.fleet_key.algorithm.as_str().to_owned(),
            spki_pem,
            fingerprint: fingerprint.clone(),
        }],
        members: member_entries(runbook, &opened, attributes),
        custodians: CustodianSummary {
            threshold: runbook.custodians.threshold,
            names: runbook
                .custodians
                .people
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        },
        transcript_sha256: transcript.digest(),
        runbook_sha256: runbook.sha256().to_owned(),
        tool: TOOL.to_owned(),
    };
    let document_bytes = document.to_json_bytes();
    let document_path = runbook.outputs.fleet_key_document();
    write_new(&document_path, &document_bytes, false)?;
    let document_sha256 = hex::encode(bundle::document_digest(&document_bytes));
    transcript.append(
        "fleet-key document written",
        json!({"file": runbook::FLEET_KEY_FILE, "sha256": document_sha256}),
    )?;

    let request = SigningRequest::for_document(&document, &document_bytes, Utc::now());
    let request_path = runbook.outputs.signing_request();
    write_new(&request_path, &request.to_json_bytes(), false)?;
    transcript.append(
        ACTION_REQUEST_WRITTEN,
        json!({"file": runbook::SIGNING_REQUEST_FILE, "document_sha256": document_sha256}),
    )?;
    tracing::info!(file = %request_path.display(), "signing request written; waiting for the auditor");

    Ok(Deployed {
        ceremony,
        fingerprint,
        signing_request: request_path,
    })
}

fn token_label(token: &TokenRef) -> String {
    match token {
        TokenRef::Label(label) | TokenRef::Serial(label) => label.clone(),
    }
}

/// Initialises every member's token and logs in as the user.
fn open_members(
    runbook: &Runbook,
    credentials: &CredentialSet,
    transcript: &mut Transcript,
) -> Result<Vec<Opened>, CeremonyError> {
    let mut opened = Vec::with_capacity(runbook.members.len());
    for (member, pins) in runbook.members.iter().zip(&credentials.members) {
        let step = "initialise token";
        let on_error = || CeremonyError::hsm(step, &member.name);
        let library = Library::load(&member.module).map_err(on_error())?;
        let label = token_label(&member.token);

        tracing::info!(member = %member.name, token = %label, "initialising token");
        let token =
            Token::initialise(&library, &label, &pins.so_pin, &pins.user_pin).map_err(on_error())?;
        transcript.append(
            "token initialised",
            json!({
                "member": member.name,
                "site": member.site,
                "token_label": token.label,
                "token_serial": token.serial,
                "model": token.model,
                "manufacturer": token.manufacturer,
                "module": member.module.display().to_string(),
            }),
        )?;
        let session = token
            .login_user(&pins.user_pin)
            .map_err(CeremonyError::hsm("log in", &member.name))?;
        opened.push(Opened { token, session });
    }
    Ok(opened)
}

type Attributes = BTreeMap<String, Value>;

/// Generates the fleet key on the origin, copies it to every other member, locks it,
/// and returns its public key, fingerprint and each member's final key attributes.
fn make_fleet_key(
    runbook: &Runbook,
    opened: &[Opened],
    transcript: &mut Transcript,
) -> Result<(String, String, Vec<Attributes>), CeremonyError> {
    let algorithm = match runbook.fleet_key.algorithm {
        runbook::KeyAlgorithm::EcdsaP256 => hsm::KeyAlgorithm::EcdsaP256,
        runbook::KeyAlgorithm::Ed25519 => hsm::KeyAlgorithm::Ed25519,
    };
    let label = runbook.fleet_key.label.as_str();
    let origin = &opened[0];
    let origin_name = &runbook.origin().name;
    let replicated = opened.len() > 1;
    let mut id = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut id);

    // Generate on the origin; the key is extractable only while it is being replicated.
    let step = "generate fleet key";
    let pair = keys::generate(
        &origin.session,
        &origin.token,
        algorithm,
        label,
        &id,
        replicated,
    )
    .map_err(CeremonyError::hsm(step, origin_name))?;
    let generated = keys::read_attributes(&origin.session, &origin.token, pair.private)
        .map_err(CeremonyError::hsm(step, origin_name))?;
    keys::check_attributes(&generated, &origin.token, label, true, replicated)
        .map_err(CeremonyError::hsm(step, origin_name))?;
    let spki_pem = keys::public_key_pem(
        &origin.session,
        &origin.token,
        label,
        pair.public,
        algorithm,
    )
    .map_err(CeremonyError::hsm(step, origin_name))?;
    let fleet_key =
        bundle::fleet_key_from_spki_pem(&spki_pem).map_err(|error| CeremonyError::Invalid {
            path: runbook.path.clone(),
            message: format!("the origin returned an unusable public key: {error}"),
        })?;
    let fingerprint = fleet_key.fingerprint();
    transcript.append(
        "fleet key generated",
        json!({
            "member": origin_name,
            "label": label,
            "algorithm": algorithm.name(),
            "fingerprint": fingerprint,
            "attributes": generated,
        }),
    )?;

    replicate_all(
        runbook,
        opened,
        &OriginKey {
            label,
            id: &id,
            private: pair.private,
            public: pair.public,
        },
        &fingerprint,
        transcript,
    )?;

    if replicated {
        keys::lock(&origin.session, &origin.token, pair.private)
            .map_err(CeremonyError::hsm("lock fleet key", origin_name))?;
        transcript.append(
            "fleet key locked",
            json!({"member": origin_name, "label": label}),
        )?;
    }

    let mut attributes = Vec::with_capacity(opened.len());
    for (member, open) in runbook.members.iter().zip(opened) {
        let step = "check fleet key";
        let private = keys::find_one(
            &open.session,
            &open.token,
            label,
            cryptoki::object::ObjectClass::PRIVATE_KEY,
        )
        .map_err(CeremonyError::hsm(step, &member.name))?;
        let read = keys::read_attributes(&open.session, &open.token, private)
            .map_err(CeremonyError::hsm(step, &member.name))?;
        keys::check_attributes(&read, &open.token, label, member.origin, false)
            .map_err(CeremonyError::hsm(step, &member.name))?;
        attributes.push(read);
    }
    transcript.append(
        "fleet key checked on every member",
        json!({"members": runbook.members.iter().map(|m| &m.name).collect::<Vec<_>>(), "extractable": false}),
    )?;
    Ok((spki_pem, fingerprint, attributes))
}

fn replicate_all(
    runbook: &Runbook,
    opened: &[Opened],
    key: &OriginKey<'_>,
    fingerprint: &str,
    transcript: &mut Transcript,
) -> Result<(), CeremonyError> {
    let origin = Side {
        token: &opened[0].token,
        session: &opened[0].session,
    };
    for (member, open) in runbook.members.iter().zip(opened).skip(1) {
        tracing::info!(member = %member.name, "replicating the fleet key");
        let target = Side {
            token: &open.token,
            session: &open.session,
        };
        replicate::replicate(&origin, &target, key)
            .map_err(CeremonyError::hsm("replicate fleet key", &member.name))?;
        transcript.append(
            "fleet key replicated",
            json!({
                "from": runbook.origin().name,
                "to": member.name,
                "token_label": open.token.label,
                "mechanisms": ["CKM_RSA_PKCS_OAEP", "CKM_AES_KEY_WRAP_PAD"],
                "fingerprint": fingerprint,
                "public_key_match": true,
            }),
        )?;
    }
    Ok(())
}

fn write_shares(
    runbook: &Runbook,
    ceremony: &str,
    credentials: &CredentialSet,
    transcript: &mut Transcript,
) -> Result<(), CeremonyError> {
    let context = ShareContext {
        ceremony: ceremony.to_owned(),
        fleet: runbook.fleet.id.clone(),
    };
    let custodians: Vec<CustodianRecipient> = runbook
        .custodians
        .people
        .iter()
        .map(|person| CustodianRecipient {
            name: person.name.clone(),
            recipient: person.recipient.text.clone(),
        })
        .collect();
    let files = shares::split(
        credentials,
        &context,
        &custodians,
        runbook.custodians.threshold,
    )?;
    transcript.append(
        "credentials split",
        json!({
            "credential_set": credentials.id,
            "threshold": runbook.custodians.threshold,
            "count": files.len(),
            "recombination_checked": true,
        }),
    )?;

    for file in files {
        let path = runbook.outputs.share_file(&file.custodian);
        write_new(&path, &file.armored, true)?;
        transcript.append(
            "share written",
            json!({
                "custodian": file.custodian,
                "index": file.index,
                "file": path.display().to_string(),
                "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file.armored)),
            }),
        )?;
    }
    Ok(())
}

fn member_entries(
    runbook: &Runbook,
    opened: &[Opened],
    attributes: Vec<Attributes>,
) -> Vec<MemberEntry> {
    runbook
        .members
        .iter()
        .zip(opened)
        .zip(attributes)
        .map(|((member, open), key_attributes)| MemberEntry {
            name: member.name.clone(),
            site: member.site.clone(),
            token_label: open.token.label.clone(),
            token_serial: open.token.serial.clone(),
            model: open.token.model.clone(),
            manufacturer: open.token.manufacturer.clone(),
            attested: false,
            key_attributes,
            origin: member.origin,
        })
        .collect()
}

/// Formats a time as RFC 3339 in UTC with a `Z` suffix.
pub(crate) fn utc_text(time: chrono::DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
