//! The HSM part of a deployment: shares, tokens, fleet key, replication, and the
//! documents handed to the auditor. Each step is recorded in the transcript when it is
//! done, and a resumed run checks the HSMs against those records before it goes on.
//!
//! The shares are written before any token is touched, so that the PINs of every token
//! the ceremony initialised can be recovered by a quorum of custodians, whatever the
//! point at which a run stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};
use cryptoki::object::{ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use rand::RngCore;
use serde_json::{Value, json};

use super::CeremonyError;
use super::meter::Meter;
use super::progress::{Progress, action};
use crate::bundle::{
    self, CustodianSummary, FleetKeyDocument, KeyEntry, MemberAttestation, MemberEntry,
    SigningRequest,
};
use crate::fsutil::write_new;
use crate::hsm::keys::{PublicKey, Wrapping};
use crate::hsm::replicate::{self, OriginKey, Side, TrustedWrappingKeys, WrappingKey};
use crate::hsm::{self, HsmError, Library, Token, TokenCache, TokenSelector, keys};
use crate::runbook::{self, Growth, Member, Runbook, TokenRef};
use crate::shares::{self, CredentialSet, CustodianRecipient, MemberCredentials, ShareContext};
use crate::transcript::Transcript;

/// Name and version of this tool, as recorded in documents.
pub const TOOL: &str = concat!("fleet-ceremony ", env!("CARGO_PKG_VERSION"));

/// Result of the HSM part of a ceremony.
#[derive(Debug)]
pub struct Deployed {
    /// Ceremony id, as recorded in the transcript and the shares.
    pub ceremony: String,
    /// Fingerprint of the fleet key.
    pub fingerprint: String,
    /// The signing request for the auditor.
    pub signing_request: PathBuf,
}

/// One member's token and a user session on it.
struct Opened {
    token: Token,
    session: Session,
}

/// The fleet key once it is on every member.
struct FleetKey {
    spki_pem: String,
    fingerprint: String,
    /// Handle of the private key on each member, in runbook order.
    private_keys: Vec<ObjectHandle>,
}

/// The state shared by the steps of one run.
struct Run<'a> {
    runbook: &'a Runbook,
    transcript: Transcript,
    progress: Progress,
    credentials: CredentialSet,
    ceremony: String,
    started_at: DateTime<Utc>,
    /// Initialised tokens per PKCS#11 module, read once per run.
    tokens: BTreeMap<PathBuf, TokenCache>,
}

/// Starts a new ceremony: writes the shares, initialises the tokens, generates,
/// replicates and locks the fleet key, and writes the fleet-key document and signing
/// request. The caller has run the preflight checks.
pub fn deploy(runbook: &Runbook) -> Result<Deployed, CeremonyError> {
    let started_at = Utc::now();
    let ceremony = format!(
        "{}-e{}-{}",
        runbook.fleet.id,
        runbook.fleet.epoch,
        started_at.format("%Y%m%dT%H%M%SZ")
    );
    std::fs::create_dir_all(&runbook.outputs.work_dir).map_err(|source| CeremonyError::Read {
        path: runbook.outputs.work_dir.clone(),
        source,
    })?;
    let transcript = Transcript::create(&runbook.outputs.transcript())?;
    let member_labels: Vec<(String, String)> = runbook
        .members
        .iter()
        .map(|member| (member.name.clone(), token_label(&member.token)))
        .collect();
    let mut run = Run {
        runbook,
        transcript,
        progress: Progress::default(),
        credentials: CredentialSet::generate(&member_labels),
        ceremony: ceremony.clone(),
        started_at,
        tokens: BTreeMap::new(),
    };
    run.record(
        action::STARTED,
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
    run.write_shares()?;
    run.hsm_steps()
}

/// Continues an interrupted ceremony with the credentials a quorum of custodians
/// recovered. Every step the transcript records is checked against the HSMs. Objects and
/// outputs that an interrupted step left without a record are removed or moved aside, and
/// then the step runs again.
pub fn resume(runbook: &Runbook, credentials: CredentialSet) -> Result<Deployed, CeremonyError> {
    let (transcript, progress) = check_resumable(runbook)?;
    let last_action = Progress::last_action(transcript.records());
    let (Some(ceremony), Some(started_at)) = (progress.ceremony.clone(), progress.started_at)
    else {
        return Err(CeremonyError::CannotResume {
            reason: "the transcript has no start record".into(),
        });
    };
    if progress.credential_set.as_deref() != Some(credentials.id.as_str()) {
        return Err(CeremonyError::CannotResume {
            reason: format!(
                "the shares given are of credential set {}, but this ceremony's is {}",
                credentials.id,
                progress.credential_set.as_deref().unwrap_or("unknown")
            ),
        });
    }

    let mut run = Run {
        runbook,
        transcript,
        progress,
        credentials,
        ceremony,
        started_at,
        tokens: BTreeMap::new(),
    };
    run.record(action::RESUMED, json!({"after": last_action}))?;
    run.hsm_steps()
}

/// Checks, before any share is decrypted, that the ceremony can be resumed; returns its
/// transcript and progress.
pub fn check_resumable(runbook: &Runbook) -> Result<(Transcript, Progress), CeremonyError> {
    let transcript = Transcript::open(&runbook.outputs.transcript())?;
    let progress = Progress::from_records(transcript.records());
    let last_action = Progress::last_action(transcript.records());
    if progress.abandoned || progress.request_written {
        return Err(CeremonyError::CannotResume {
            reason: format!("the ceremony is past the HSM steps (last action: {last_action})"),
        });
    }
    if progress.shares_written.len() < runbook.custodians.people.len() {
        return Err(CeremonyError::CannotResume {
            reason: "the run stopped while the shares were being written, before any token was changed, so its PINs are lost\nhint: run `fleet-ceremony abandon`, then start a new ceremony in a new work folder".into(),
        });
    }
    Ok((transcript, progress))
}

impl Run<'_> {
    /// Appends a record, then gives tests the chance to stop the process.
    fn record(&mut self, name: &str, details: Value) -> Result<(), CeremonyError> {
        let record = self.transcript.append(name, details)?;
        crate::fault::kill_point(&format!("record-{}", record.seq));
        Ok(())
    }

    fn hsm_steps(mut self) -> Result<Deployed, CeremonyError> {
        let mut opened = self.open_members()?;
        let FleetKey {
            spki_pem,
            fingerprint,
            private_keys,
        } = self.fleet_key(&mut opened)?;
        let attributes = self.check_members(&opened, &private_keys)?;
        self.write_document(&opened, spki_pem, &fingerprint, attributes)?;
        Ok(Deployed {
            ceremony: self.ceremony,
            fingerprint,
            signing_request: self.runbook.outputs.signing_request(),
        })
    }

    /// Splits the PINs among the custodians and writes every share file.
    fn write_shares(&mut self) -> Result<(), CeremonyError> {
        let runbook = self.runbook;
        let context = ShareContext {
            ceremony: self.ceremony.clone(),
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
            &self.credentials,
            &context,
            &custodians,
            runbook.custodians.threshold,
        )?;
        self.record(
            action::SPLIT,
            json!({
                "credential_set": self.credentials.id,
                "threshold": runbook.custodians.threshold,
                "count": files.len(),
                "recombination_checked": true,
            }),
        )?;

        for file in files {
            let path = runbook.outputs.share_file(&file.custodian);
            write_new(&path, &file.armored, true)?;
            self.record(
                action::SHARE_WRITTEN,
                json!({
                    "custodian": file.custodian,
                    "index": file.index,
                    "file": path.display().to_string(),
                    "sha256": super::finish::sha256_hex(&file.armored),
                }),
            )?;
        }
        Ok(())
    }

    fn pins(&self, member: &Member) -> Result<&MemberCredentials, CeremonyError> {
        self.credentials
            .members
            .iter()
            .find(|entry| entry.member == member.name)
            .ok_or_else(|| CeremonyError::CannotResume {
                reason: format!("the credentials hold no PINs for member {}", member.name),
            })
    }

    /// Initialises each member's token, or finds the one an earlier run initialised, and
    /// logs in as the user.
    fn open_members(&mut self) -> Result<Vec<Opened>, CeremonyError> {
        let mut opened = Vec::with_capacity(self.runbook.members.len());
        let meter = Meter::start("initialising tokens", self.runbook.members.len());
        for member in &self.runbook.members {
            opened.push(self.prepare_token(member)?);
            meter.advance(&member.name);
        }
        meter.finish();
        Ok(opened)
    }

    /// Returns the token cache of `member`'s module, reading it on first use.
    fn token_cache(&mut self, member: &Member) -> Result<&mut TokenCache, CeremonyError> {
        if !self.tokens.contains_key(&member.module) {
            let on_error = || CeremonyError::hsm("initialise token", &member.name);
            let library = Library::load(&member.module).map_err(on_error())?;
            let cache = TokenCache::read(&library).map_err(on_error())?;
            self.tokens.insert(member.module.clone(), cache);
        }
        Ok(self
            .tokens
            .get_mut(&member.module)
            .expect("the cache of this module was inserted above"))
    }

    /// Returns `member`'s token with a user session on it. A token the transcript records
    /// must have the recorded serial. Otherwise the token is initialised, or, when an
    /// interrupted run initialised it without a record, its SO PIN is checked.
    fn prepare_token(&mut self, member: &Member) -> Result<Opened, CeremonyError> {
        let step = "initialise token";
        let label = token_label(&member.token);
        let found = match self
            .token_cache(member)?
            .find(&TokenSelector::Label(label.clone()))
        {
            Ok(token) => Some(token),
            Err(HsmError::TokenNotFound { .. }) => None,
            Err(error) => return Err(CeremonyError::hsm(step, &member.name)(error)),
        };

        if let Some(serial) = self.progress.tokens.get(&member.name) {
            let token = found.ok_or_else(|| CeremonyError::StateMismatch {
                member: member.name.clone(),
                detail: format!("the transcript records token \"{label}\" (serial {serial}), but it is not present"),
            })?;
            if &token.serial != serial {
                return Err(CeremonyError::StateMismatch {
                    member: member.name.clone(),
                    detail: format!(
                        "token \"{label}\" has serial {}, but the transcript records serial {serial}",
                        token.serial
                    ),
                });
            }
            let session = token
                .login_user(&self.pins(member)?.user_pin)
                .map_err(CeremonyError::hsm("log in", &member.name))?;
            return Ok(Opened { token, session });
        }

        let pins = self.pins(member)?;
        let (so_pin, user_pin) = (pins.so_pin.clone(), pins.user_pin.clone());
        let (opened, found_after_interruption) = match found {
            // The label was free when the ceremony started, so a token with it now was
            // initialised by an interrupted run. Its SO PIN proves it.
            Some(token) => {
                let session = if token.user_pin_initialised {
                    token.check_so_pin_and_login(&so_pin, &user_pin)
                } else {
                    token.set_first_user_pin_and_login(&so_pin, &user_pin)
                }
                .map_err(CeremonyError::hsm(step, &member.name))?;
                (Opened { token, session }, true)
            }
            None => {
                tracing::info!(member = %member.name, token = %label, "initialising token");
                let (token, session) = self
                    .token_cache(member)?
                    .initialise(&label, &so_pin, &user_pin)
                    .map_err(CeremonyError::hsm(step, &member.name))?;
                (Opened { token, session }, false)
            }
        };
        let token = &opened.token;
        self.record(
            action::TOKEN_INITIALISED,
            json!({
                "member": member.name,
                "site": member.site,
                "token_label": token.label,
                "token_serial": token.serial,
                "model": token.model,
                "manufacturer": token.manufacturer,
                "module": member.module.display().to_string(),
                "found_after_interruption": found_after_interruption,
            }),
        )?;
        self.progress
            .tokens
            .insert(member.name.clone(), token.serial.clone());
        Ok(opened)
    }

    /// Generates the fleet key on the origin, copies it to every other member and returns
    /// its public key, fingerprint and handles. With `growth: locked` it also locks the
    /// origin's key.
    fn fleet_key(&mut self, opened: &mut [Opened]) -> Result<FleetKey, CeremonyError> {
        let runbook = self.runbook;
        let algorithm = match runbook.fleet_key.algorithm {
            runbook::KeyAlgorithm::EcdsaP256 => hsm::KeyAlgorithm::EcdsaP256,
            runbook::KeyAlgorithm::Ed25519 => hsm::KeyAlgorithm::Ed25519,
        };
        let label = runbook.fleet_key.label.as_str();
        let origin_name = runbook.origin().name.clone();
        let replicated = opened.len() > 1;

        let (private, id, public_key, fingerprint) = match self.progress.key.clone() {
            Some(recorded) => {
                let origin = &opened[0];
                let step = "check fleet key";
                let on_error = || CeremonyError::hsm(step, &origin_name);
                let find = |class| keys::find_one(&origin.session, &origin.token, label, class);
                let private = find(ObjectClass::PRIVATE_KEY).map_err(on_error())?;
                let public = find(ObjectClass::PUBLIC_KEY).map_err(on_error())?;
                let public_key =
                    keys::read_public_key(&origin.session, &origin.token, label, public, algorithm)
                        .map_err(on_error())?;
                let fingerprint = fingerprint_of(runbook, &public_key.spki_pem)?;
                if fingerprint != recorded.fingerprint {
                    return Err(CeremonyError::StateMismatch {
                        member: origin_name,
                        detail: format!(
                            "the fleet key has fingerprint {fingerprint}, but the transcript records {}",
                            recorded.fingerprint
                        ),
                    });
                }
                let id = hex::decode(&recorded.id).unwrap_or_default();
                (private, id, public_key, fingerprint)
            }
            None => self.generate(&opened[0], algorithm, label, replicated)?,
        };

        let origin_key = OriginKey {
            label,
            id: &id,
            private,
            public_key: &public_key,
        };
        let private_keys = self.replicate_all(opened, &origin_key, &fingerprint)?;

        if replicated && runbook.fleet_key.growth == Growth::Locked && !self.progress.locked {
            let origin = &opened[0];
            keys::lock(&origin.session, &origin.token, private_keys[0])
                .map_err(CeremonyError::hsm("lock fleet key", &origin_name))?;
            self.record(
                action::KEY_LOCKED,
                json!({"member": origin_name, "label": label}),
            )?;
            self.progress.locked = true;
        }
        Ok(FleetKey {
            spki_pem: public_key.spki_pem,
            fingerprint,
            private_keys,
        })
    }

    /// Generates the fleet key on the origin, checks and records it; returns its private
    /// key handle, CKA_ID, public key and fingerprint.
    fn generate(
        &mut self,
        origin: &Opened,
        algorithm: hsm::KeyAlgorithm,
        label: &str,
        replicated: bool,
    ) -> Result<(ObjectHandle, Vec<u8>, PublicKey, String), CeremonyError> {
        let origin_name = self.runbook.origin().name.clone();
        self.remove_leftovers(origin, &origin_name, label)?;
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);

        let step = "generate fleet key";
        let on_error = || CeremonyError::hsm(step, &origin_name);
        let wrapping = self.origin_wrapping(replicated);
        // remove_leftovers has just searched for the label and destroyed what it found.
        let pair = keys::generate_at_free_label(
            &origin.session,
            &origin.token,
            algorithm,
            label,
            &id,
            wrapping,
        )
        .map_err(on_error())?;
        let generated = keys::read_attributes(&origin.session, &origin.token, pair.private)
            .map_err(on_error())?;
        keys::check_attributes(&generated, &origin.token, label, true, wrapping)
            .map_err(on_error())?;
        let public_key = keys::read_public_key(
            &origin.session,
            &origin.token,
            label,
            pair.public,
            algorithm,
        )
        .map_err(on_error())?;
        let fingerprint = fingerprint_of(self.runbook, &public_key.spki_pem)?;
        self.record(
            action::KEY_GENERATED,
            json!({
                "member": origin_name,
                "label": label,
                "algorithm": algorithm.name(),
                "id": hex::encode(&id),
                "fingerprint": fingerprint,
                "spki_pem": public_key.spki_pem,
                "attributes": generated,
                "growth": self.runbook.fleet_key.growth.as_str(),
            }),
        )?;
        Ok((pair.private, id, public_key, fingerprint))
    }

    /// Returns the wrapping the origin's private key allows when it is generated. With
    /// `locked` growth the key is extractable only while it is being replicated, and the
    /// deployment locks it afterwards. With `trusted-wrap` it stays wrappable under
    /// trusted keys only, even in a one-member fleet, so that the fleet can grow later.
    fn origin_wrapping(&self, replicated: bool) -> Wrapping {
        match self.runbook.fleet_key.growth {
            Growth::TrustedWrap => Wrapping::TrustedOnly,
            Growth::Locked if replicated => Wrapping::Any,
            Growth::Locked => Wrapping::Never,
        }
    }

    /// Destroys objects labelled `label` that an interrupted step left without a record.
    fn remove_leftovers(
        &mut self,
        open: &Opened,
        member: &str,
        label: &str,
    ) -> Result<(), CeremonyError> {
        let step = "remove unrecorded objects";
        let found =
            keys::find_labelled(&open.session, label).map_err(CeremonyError::hsm(step, member))?;
        if found.is_empty() {
            return Ok(());
        }
        for handle in &found {
            open.session
                .destroy_object(*handle)
                .map_err(|error| {
                    HsmError::from_cryptoki(
                        &open.token.label,
                        "destroy an unrecorded object",
                        error,
                    )
                })
                .map_err(CeremonyError::hsm(step, member))?;
        }
        self.record(
            action::LEFTOVERS_REMOVED,
            json!({"member": member, "token_label": open.token.label, "label": label, "objects": found.len()}),
        )
    }

    /// Copies the fleet key to every member that does not hold a recorded copy, and checks
    /// the recorded copies. Copies run in parallel and are recorded in member order.
    /// Returns the handle of the private key on each member, the origin first.
    fn replicate_all(
        &mut self,
        opened: &mut [Opened],
        key: &OriginKey<'_>,
        fingerprint: &str,
    ) -> Result<Vec<ObjectHandle>, CeremonyError> {
        let runbook = self.runbook;
        let mut private_keys = vec![key.private; opened.len()];

        // In member order: check recorded copies and clear what unrecorded ones left.
        let mut pending = Vec::new();
        for (index, (member, open)) in runbook.members.iter().zip(opened.iter()).enumerate() {
            if index == 0 {
                continue;
            }
            if self.progress.replicated.contains(&member.name) {
                let on_error = || CeremonyError::hsm("check fleet key copy", &member.name);
                let copy = keys::find_one(
                    &open.session,
                    &open.token,
                    key.label,
                    ObjectClass::PRIVATE_KEY,
                )
                .map_err(on_error())?;
                let target = Side {
                    token: &open.token,
                    session: &open.session,
                };
                replicate::check_copy(&target, key.public_key, copy).map_err(on_error())?;
                private_keys[index] = copy;
                continue;
            }
            if self.progress.locked {
                return Err(CeremonyError::StateMismatch {
                    member: member.name.clone(),
                    detail:
                        "the origin's key is already locked, so it cannot be copied to this member"
                            .into(),
                });
            }
            self.remove_leftovers(open, &member.name, key.label)?;
            pending.push(index);
        }

        let trusted = self.trusted_wrapping_keys(&opened[0], pending.len())?;
        let refound;
        let key = match &trusted {
            Some(_) => {
                // The SO login invalidated the handles of the origin's private key.
                refound = refind_key(&opened[0], key, &runbook.origin().name)?;
                private_keys[0] = refound.private;
                &refound
            }
            None => key,
        };
        let trusted_handles = trusted.as_ref().map_or(&[][..], |keys| keys.handles());
        let results = copy_in_parallel(runbook, opened, &pending, key, trusted_handles);
        drop(trusted);

        // A failed copy stops the run. Later copies that succeeded stay unrecorded, so a
        // resumed run removes and repeats them.
        for (&index, result) in pending.iter().zip(results) {
            let member = &runbook.members[index];
            let pair = result.map_err(CeremonyError::hsm("replicate fleet key", &member.name))?;
            private_keys[index] = pair.private;
            self.record(
                action::KEY_REPLICATED,
                json!({
                    "from": runbook.origin().name,
                    "to": member.name,
                    "token_label": opened[index].token.label,
                    "mechanisms": ["CKM_RSA_PKCS_OAEP", "CKM_AES_KEY_WRAP_PAD"],
                    "trusted_wrapping_key": runbook.fleet_key.growth == Growth::TrustedWrap,
                    "fingerprint": fingerprint,
                    "public_key_match": true,
                }),
            )?;
            self.progress.replicated.insert(member.name.clone());
        }
        Ok(private_keys)
    }

    /// Generates one trusted AES key per pending copy on the origin when the runbook's
    /// growth policy is `trusted-wrap`. Returns `None` for `locked` or when no copy is
    /// pending.
    fn trusted_wrapping_keys(
        &self,
        origin: &Opened,
        count: usize,
    ) -> Result<Option<TrustedWrappingKeys>, CeremonyError> {
        if self.runbook.fleet_key.growth != Growth::TrustedWrap || count == 0 {
            return Ok(None);
        }
        let member = self.runbook.origin();
        let pins = self.pins(member)?;
        tracing::info!(member = %member.name, "logging in as security officer to make trusted wrapping keys");
        TrustedWrappingKeys::generate(&origin.token, &pins.so_pin, &pins.user_pin, count)
            .map(Some)
            .map_err(CeremonyError::hsm(
                "make trusted wrapping keys",
                &member.name,
            ))
    }

    /// Reads the attributes of every member's private key back and checks them.
    /// `private_keys` contains the handle on each member, found or created earlier in this
    /// run, so the key is not searched for again.
    fn check_members(
        &mut self,
        opened: &[Opened],
        private_keys: &[ObjectHandle],
    ) -> Result<Vec<BTreeMap<String, Value>>, CeremonyError> {
        let label = self.runbook.fleet_key.label.as_str();
        let mut attributes = Vec::with_capacity(opened.len());
        for ((member, open), private) in self.runbook.members.iter().zip(opened).zip(private_keys) {
            let on_error = || CeremonyError::hsm("check fleet key", &member.name);
            let read =
                keys::read_attributes(&open.session, &open.token, *private).map_err(on_error())?;
            let expected = match self.runbook.fleet_key.growth {
                Growth::TrustedWrap if member.origin => Wrapping::TrustedOnly,
                _ => Wrapping::Never,
            };
            keys::check_attributes(&read, &open.token, label, member.origin, expected)
                .map_err(on_error())?;
            attributes.push(read);
        }
        if !self.progress.checked {
            let names: Vec<&str> = self
                .runbook
                .members
                .iter()
                .map(|m| m.name.as_str())
                .collect();
            let details = match self.runbook.fleet_key.growth {
                Growth::Locked => json!({"members": names, "extractable": false}),
                Growth::TrustedWrap => json!({
                    "members": names,
                    "growth": Growth::TrustedWrap.as_str(),
                    "extractable": false,
                    "extractable_under_trusted_keys_only": [self.runbook.origin().name],
                }),
            };
            self.record(action::KEY_CHECKED, details)?;
            self.progress.checked = true;
        }
        Ok(attributes)
    }

    fn write_document(
        &mut self,
        opened: &[Opened],
        spki_pem: String,
        fingerprint: &str,
        attributes: Vec<BTreeMap<String, Value>>,
    ) -> Result<(), CeremonyError> {
        let runbook = self.runbook;
        let document_path = runbook.outputs.fleet_key_document();
        let document_bytes = if self.progress.document_written {
            super::finish::read(&document_path)?
        } else {
            self.move_aside(&document_path)?;
            let attestations = super::attestation::attest_members(runbook, &spki_pem)?;
            let document = FleetKeyDocument {
                format: bundle::DOCUMENT_FORMAT.to_owned(),
                fleet_id: runbook.fleet.id.clone(),
                namespace: runbook.fleet.namespace.clone(),
                epoch: runbook.fleet.epoch,
                created_at: self.started_at,
                keys: vec![KeyEntry {
                    role: "fleet".to_owned(),
                    label: runbook.fleet_key.label.clone(),
                    algorithm: runbook.fleet_key.algorithm.as_str().to_owned(),
                    spki_pem,
                    fingerprint: fingerprint.to_owned(),
                    growth: match runbook.fleet_key.growth {
                        Growth::Locked => None,
                        Growth::TrustedWrap => Some(Growth::TrustedWrap.as_str().to_owned()),
                    },
                }],
                members: member_entries(runbook, opened, attributes, attestations),
                custodians: CustodianSummary {
                    threshold: runbook.custodians.threshold,
                    names: runbook
                        .custodians
                        .people
                        .iter()
                        .map(|c| c.name.clone())
                        .collect(),
                },
                transcript_sha256: self.transcript.digest(),
                runbook_sha256: runbook.sha256().to_owned(),
                tool: TOOL.to_owned(),
            };
            let bytes = document.to_json_bytes();
            write_new(&document_path, &bytes, false)?;
            self.record(
                action::DOCUMENT_WRITTEN,
                json!({"file": runbook::FLEET_KEY_FILE, "sha256": super::finish::sha256_hex(&bytes)}),
            )?;
            bytes
        };
        let document = FleetKeyDocument::from_json_bytes(&document_bytes).map_err(|error| {
            CeremonyError::Invalid {
                path: document_path.clone(),
                message: error.to_string(),
            }
        })?;

        let request_path = runbook.outputs.signing_request();
        self.move_aside(&request_path)?;
        let request = SigningRequest::for_document(&document, &document_bytes, Utc::now());
        write_new(&request_path, &request.to_json_bytes(), false)?;
        self.record(
            action::REQUEST_WRITTEN,
            json!({"file": runbook::SIGNING_REQUEST_FILE, "document_sha256": request.document_sha256}),
        )?;
        tracing::info!(file = %request_path.display(), "signing request written; waiting for the auditor");
        Ok(())
    }

    /// Renames an output that an interrupted step wrote without recording it, so it is
    /// neither overwritten nor mistaken for a finished output.
    fn move_aside(&mut self, path: &Path) -> Result<(), CeremonyError> {
        if !path.exists() {
            return Ok(());
        }
        let aside = interrupted_name(path);
        std::fs::rename(path, &aside).map_err(|source| CeremonyError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.record(
            action::OUTPUT_MOVED,
            json!({"file": path.display().to_string(), "moved_to": aside.display().to_string()}),
        )
    }
}

/// Maximum number of members that receive the fleet key at the same time.
const MAX_PARALLEL_COPIES: usize = 8;

/// Environment variable that sets the number of replication threads, from 1 (serial, for
/// comparing wall times) to `MAX_PARALLEL_COPIES`. Without it the tool uses as many
/// threads as the machine has CPUs, up to `MAX_PARALLEL_COPIES`.
pub const REPLICATION_THREADS_ENV: &str = "FLEET_CEREMONY_REPLICATION_THREADS";

/// Returns the number of replication threads for `pending` copies. A value of the
/// environment variable that is not a positive number is ignored, with a warning.
fn replication_threads(pending: usize) -> usize {
    let default = std::thread::available_parallelism().map_or(1, |n| n.get());
    let requested = match std::env::var(REPLICATION_THREADS_ENV) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                tracing::warn!(variable = REPLICATION_THREADS_ENV, value = %text, "ignoring a thread count that is not a positive number");
                default
            }
        },
        Err(_) => default,
    };
    requested.clamp(1, MAX_PARALLEL_COPIES).min(pending.max(1))
}

/// Finds the origin's fleet private key again by label, for a new handle.
fn refind_key<'a>(
    origin: &Opened,
    key: &OriginKey<'a>,
    member: &str,
) -> Result<OriginKey<'a>, CeremonyError> {
    let private = keys::find_one(
        &origin.session,
        &origin.token,
        key.label,
        ObjectClass::PRIVATE_KEY,
    )
    .map_err(CeremonyError::hsm("find the fleet key again", member))?;
    Ok(OriginKey {
        label: key.label,
        id: key.id,
        private,
        public_key: key.public_key,
    })
}

/// A copy waiting for a worker: its place in `pending`, and the member's token and session.
type Job<'a> = (usize, &'a mut Opened);

/// Copies the fleet key to the members at `pending` (indexes into `opened`, whose first
/// entry is the origin) on a bounded pool of threads, and returns one result per pending
/// member, in the order given.
///
/// A PKCS#11 session must not be used by two threads at once. So each copy runs in the
/// member's own session, which only the worker doing that copy holds. On the origin, the
/// first worker borrows the origin's session and every other worker opens one of its own,
/// which inherits the user login of this process. Copy `i` wraps under `trusted[i]` when
/// that exists, else under a one-time key of its own.
fn copy_in_parallel(
    runbook: &Runbook,
    opened: &mut [Opened],
    pending: &[usize],
    key: &OriginKey<'_>,
    trusted: &[ObjectHandle],
) -> Vec<Result<keys::KeyPair, HsmError>> {
    let workers = replication_threads(pending.len());
    tracing::debug!(threads = workers, copies = pending.len(), "replicating");
    let Some((origin, members)) = opened.split_first_mut() else {
        return Vec::new();
    };
    let origin_token = &origin.token;
    let mut jobs: Vec<Job<'_>> = members
        .iter_mut()
        .enumerate()
        .filter_map(|(offset, open)| {
            let place = pending.iter().position(|&index| index == offset + 1)?;
            Some((place, open))
        })
        .collect();
    jobs.sort_by_key(|(place, _)| std::cmp::Reverse(*place));
    let queue = Mutex::new(jobs);
    let meter = Meter::start("replicating the fleet key", pending.len());
    let results: Vec<Mutex<Option<Result<keys::KeyPair, HsmError>>>> =
        pending.iter().map(|_| Mutex::new(None)).collect();

    let names: Vec<&str> = pending
        .iter()
        .map(|&index| runbook.members[index].name.as_str())
        .collect();
    std::thread::scope(|scope| {
        let (queue, meter, results, names) = (&queue, &meter, &results, &names);
        let mut lent = Some(&mut origin.session);
        for _ in 0..workers {
            let borrowed = lent.take();
            scope.spawn(move || {
                let owned;
                let origin_session: &Session = match borrowed {
                    Some(session) => session,
                    None => match origin_token.open_session() {
                        Ok(session) => {
                            owned = session;
                            &owned
                        }
                        // The first worker has a session and takes the remaining copies.
                        // NOTE: no test reaches this branch, because the fault sweep runs a
                        // two-member ceremony, whose one copy needs no second worker.
                        Err(error) => {
                            tracing::warn!(token = %origin_token.label, %error, "a replication worker cannot open a session on the origin");
                            if let Some((place, _)) = next_job(queue) {
                                *lock(&results[place]) = Some(Err(error));
                                meter.advance(names[place]);
                            }
                            return;
                        }
                    },
                };
                while let Some((place, member)) = next_job(queue) {
                    tracing::info!(member = %names[place], "replicating the fleet key");
                    let wrapping = match trusted.get(place) {
                        Some(handle) => WrappingKey::Trusted(*handle),
                        None => WrappingKey::OneTime,
                    };
                    let origin_side = Side {
                        token: origin_token,
                        session: origin_session,
                    };
                    let member_side = Side {
                        token: &member.token,
                        session: &member.session,
                    };
                    // The caller searched the member for the label when it removed leftovers.
                    let result = replicate::replicate_to_free_label(
                        &origin_side,
                        &member_side,
                        key,
                        wrapping,
                    );
                    meter.advance(names[place]);
                    *lock(&results[place]) = Some(result);
                }
            });
        }
    });
    meter.finish();

    results
        .iter()
        .map(|slot| {
            lock(slot)
                .take()
                .expect("every pending member is taken by exactly one worker")
        })
        .collect()
}

/// Takes the next copy from the queue.
fn next_job<'a>(queue: &Mutex<Vec<Job<'a>>>) -> Option<Job<'a>> {
    lock(queue).pop()
}

/// Locks `mutex`, also when another worker panicked while holding it.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Returns a free name `<file>.interrupted-<n>` next to `path`.
fn interrupted_name(path: &Path) -> PathBuf {
    let mut n = 1;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".interrupted-{n}"));
        let candidate = PathBuf::from(name);
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

fn fingerprint_of(runbook: &Runbook, pem: &str) -> Result<String, CeremonyError> {
    bundle::fleet_key_from_spki_pem(pem)
        .map(|key| key.fingerprint())
        .map_err(|error| CeremonyError::Invalid {
            path: runbook.path.clone(),
            message: format!("the origin returned an unusable public key: {error}"),
        })
}

pub(super) fn token_label(token: &TokenRef) -> String {
    match token {
        TokenRef::Label(label) | TokenRef::Serial(label) => label.clone(),
    }
}

fn member_entries(
    runbook: &Runbook,
    opened: &[Opened],
    attributes: Vec<BTreeMap<String, Value>>,
    attestations: Vec<Option<MemberAttestation>>,
) -> Vec<MemberEntry> {
    runbook
        .members
        .iter()
        .zip(opened)
        .zip(attributes)
        .zip(attestations)
        .map(
            |(((member, open), key_attributes), attestation)| MemberEntry {
                name: member.name.clone(),
                site: member.site.clone(),
                token_label: open.token.label.clone(),
                token_serial: open.token.serial.clone(),
                model: open.token.model.clone(),
                manufacturer: open.token.manufacturer.clone(),
                attested: attestation
                    .as_ref()
                    .is_some_and(MemberAttestation::fully_attested),
                key_attributes,
                origin: member.origin,
                attestation,
            },
        )
        .collect()
}

/// Formats a time as RFC 3339 in UTC with a `Z` suffix.
pub(crate) fn utc_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}
