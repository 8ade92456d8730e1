//! Retiring a fleet: the fleet key objects are destroyed on every listed member, each
//! destruction is recorded, and retirement evidence names what was destroyed.

use std::path::PathBuf;

use cryptoki::object::ObjectClass;
use cryptoki::session::Session;
use serde_json::json;

use super::retire_evidence::write_evidence;
use super::{
    QuorumError, action, check_all_listed, check_not_started, check_shares_fit, find_token,
    pins_of, record,
};
use crate::ceremony::preflight::Problem;
use crate::hsm::{HsmError, Token, keys};
use crate::runbook::{Member, QuorumRunbook, Retire, TRANSCRIPT_FILE};
use crate::shares::Recovered;
use crate::transcript::Transcript;

pub use super::retire_evidence::{RETIREMENT_JSON, RETIREMENT_MD};

/// Objects a deployed member holds under the fleet key label: one private, one public key.
pub(super) const OBJECTS_PER_MEMBER: usize = 2;

/// What `retire` did.
#[derive(Debug)]
pub struct Retired {
    /// Fleet key objects destroyed on each member, in runbook order.
    pub destroyed: Vec<DestroyedOn>,
    /// SHA-256 fingerprint of the fleet key's SubjectPublicKeyInfo, read from the members
    /// before destroying. It is `None` only for a resumed retirement whose transcript
    /// lacks it while no member still had the public key.
    pub key_fingerprint: Option<String>,
    /// Members whose PINs the shares hold but the runbook does not list. A new retirement
    /// rejects such shares, so only a resumed one, started by a version that did not
    /// check, can return names here.
    pub unlisted_members: Vec<String>,
    /// The evidence folder written.
    pub evidence_dir: PathBuf,
    /// Hex SHA-256 of the transcript.
    pub transcript_sha256: String,
}

/// The fleet key objects destroyed on one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestroyedOn {
    /// Member name.
    pub member: String,
    /// Objects destroyed, as the transcript records them.
    pub objects: usize,
    /// Whether an interrupted run destroyed objects on this member without recording
    /// them, so that `objects` counts only those the resumed run found and destroyed.
    pub count_not_recorded: bool,
}

/// Checks a retire runbook against the environment without changing anything.
///
/// Checks that the transcript and evidence files do not exist, and that each member's
/// token is present with exactly one public key labelled with the fleet key label. With
/// `recovered` it also logs in as the user on each member, which a read-only check cannot
/// avoid, and checks for exactly one private key and no other object with that label.
/// Without it, private keys are not checked, because they are invisible before login.
pub fn check_retire(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: Option<&Recovered>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_not_started(runbook, &mut problems);
    for name in [RETIREMENT_JSON, RETIREMENT_MD, TRANSCRIPT_FILE] {
        let path = retire.evidence_dir.join(name);
        if path.symlink_metadata().is_ok() {
            problems.push(Problem {
                place: "outputs.evidence_dir".into(),
                message: format!("{} exists; outputs are never overwritten", path.display()),
            });
        }
    }
    if let Some(recovered) = recovered {
        if let Err(error) = check_shares_fit(&runbook.fleet, &retire.members, recovered) {
            problems.push(Problem {
                place: "shares".into(),
                message: error.to_string(),
            });
            return problems;
        }
        if let Err(error) = check_all_listed(&retire.members, recovered) {
            problems.push(Problem {
                place: "members".into(),
                message: error.to_string(),
            });
        }
        if recovered.threshold != retire.threshold {
            problems.push(Problem {
                place: "custodians.threshold".into(),
                message: format!(
                    "the runbook names threshold {}, but the shares given are of a {}-of-{} set",
                    retire.threshold, recovered.threshold, recovered.count
                ),
            });
        }
    }

    let mut fingerprints = Vec::new();
    for member in &retire.members {
        match check_member(retire, member, recovered) {
            Ok(fingerprint) => fingerprints.push((member.name.clone(), fingerprint)),
            Err(message) => problems.push(Problem {
                place: format!("member {}", member.name),
                message,
            }),
        }
    }
    if let Err(error) = same_key(&retire.key_label, fingerprints) {
        problems.push(Problem {
            place: "members".into(),
            message: error.to_string(),
        });
    }
    problems
}

/// Checks one member's fleet key objects and returns the fingerprint of its public key.
fn check_member(
    retire: &Retire,
    member: &Member,
    recovered: Option<&Recovered>,
) -> Result<String, String> {
    let token = find_token(member).map_err(|error| error.to_string())?;
    let session = token.open_session().map_err(|error| error.to_string())?;
    let fingerprint =
        fingerprint_on(&session, &token, &retire.key_label).map_err(|error| error.to_string())?;
    drop(session);

    let Some(recovered) = recovered else {
        return Ok(fingerprint);
    };
    let pins = pins_of(recovered, member).map_err(|error| error.to_string())?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(|error| error.to_string())?;
    keys::find_one(
        &session,
        &token,
        &retire.key_label,
        ObjectClass::PRIVATE_KEY,
    )
    .map_err(|error| error.to_string())?;
    let all =
        keys::find_labelled(&session, &retire.key_label).map_err(|error| error.to_string())?;
    if all.len() != OBJECTS_PER_MEMBER {
        return Err(format!(
            "token {} holds {} objects labelled {:?}; a deployed member holds exactly one private and one public key",
            token.label,
            all.len(),
            retire.key_label
        ));
    }
    Ok(fingerprint)
}

/// Reads the one public key labelled `label` on the token and returns its fingerprint:
/// lowercase hex SHA-256 over the SubjectPublicKeyInfo DER, as the fleet-key document
/// records it.
pub(super) fn fingerprint_on(
    session: &Session,
    token: &Token,
    label: &str,
) -> Result<String, HsmError> {
    let public = keys::find_one(session, token, label, ObjectClass::PUBLIC_KEY)?;
    let (_, key) = keys::read_public_key_any(session, token, label, public)?;
    crate::bundle::fleet_key_from_spki_pem(&key.spki_pem)
        .map(|key| key.fingerprint())
        .map_err(|error| HsmError::PublicKey {
            token: token.label.clone(),
            label: label.to_owned(),
            detail: error.to_string(),
        })
}

/// Returns the one fingerprint that every member's public key has; `None` for no members.
pub(super) fn same_key(
    label: &str,
    fingerprints: Vec<(String, String)>,
) -> Result<Option<String>, QuorumError> {
    let Some((_, first)) = fingerprints.first() else {
        return Ok(None);
    };
    if fingerprints
        .iter()
        .all(|(_, fingerprint)| fingerprint == first)
    {
        return Ok(Some(first.clone()));
    }
    Err(QuorumError::DifferentKeys {
        label: label.to_owned(),
        fingerprints,
    })
}

/// Logs in as the user on each member and reads its fleet public key, and returns the
/// fingerprint they all share.
fn read_fleet_key(retire: &Retire, recovered: &Recovered) -> Result<String, QuorumError> {
    let step = "read the fleet public key";
    let mut fingerprints = Vec::new();
    for member in &retire.members {
        let token = find_token(member).map_err(QuorumError::hsm(step, &member.name))?;
        let pins = pins_of(recovered, member)?;
        let session = token
            .login_user(&pins.user_pin)
            .map_err(QuorumError::hsm(step, &member.name))?;
        let fingerprint = fingerprint_on(&session, &token, &retire.key_label)
            .map_err(QuorumError::hsm(step, &member.name))?;
        fingerprints.push((member.name.clone(), fingerprint));
    }
    same_key(&retire.key_label, fingerprints)?.ok_or_else(|| QuorumError::WrongShares {
        reason: "the runbook lists no member".into(),
    })
}

/// Destroys the fleet key on every listed member, checks that none is left, records each
/// step in the action's transcript, and writes the retirement evidence.
///
/// Runs [`check_retire`] first and changes nothing when it finds a problem, which
/// includes shares that hold PINs of a member the runbook does not list. Then it reads
/// each member's fleet public key, requires one key on all, and records its fingerprint
/// before destroying anything. The retirement covers the listed members only: a member
/// added later with a newer share set is unknown to it unless the runbook lists it. If a later
/// step fails, the members before it have lost their fleet key and the transcript says
/// which; the shares still hold every PIN, and
/// [`resume_retire`](super::resume_retire) finishes the retirement.
pub fn retire(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: &Recovered,
) -> Result<Retired, QuorumError> {
    let problems = check_retire(runbook, retire, Some(recovered));
    if !problems.is_empty() {
        return Err(QuorumError::Preflight {
            count: problems.len(),
        });
    }

    let key_fingerprint = read_fleet_key(retire, recovered)?;

    let mut transcript = Transcript::create(&runbook.transcript())?;
    record(
        &mut transcript,
        action::STARTED,
        json!({
            "kind": runbook.kind(),
            "fleet_id": runbook.fleet.id,
            "runbook_sha256": runbook.sha256(),
            "credential_set": recovered.credential_set_id,
            "threshold": recovered.threshold,
            "key_label": retire.key_label,
            "key_fingerprint": key_fingerprint,
            "members": retire.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        }),
    )?;

    let mut destroyed = Vec::new();
    for member in &retire.members {
        let objects = destroy_on(retire, member, recovered, &mut transcript, false)?;
        destroyed.push(DestroyedOn {
            member: member.name.clone(),
            objects,
            count_not_recorded: false,
        });
    }
    record(
        &mut transcript,
        action::FINISHED,
        json!({"objects_destroyed": destroyed.iter().map(|d| d.objects).sum::<usize>()}),
    )?;

    let retired = Retired {
        destroyed,
        key_fingerprint: Some(key_fingerprint),
        unlisted_members: Vec::new(),
        evidence_dir: retire.evidence_dir.clone(),
        transcript_sha256: transcript.digest(),
    };
    write_evidence(runbook, retire, recovered, &retired)?;
    Ok(retired)
}

/// Destroys every object labelled with the fleet key label on `member`, checks that none
/// is left, and records both steps. Returns the number of objects destroyed.
///
/// `count_not_recorded` marks, in the record, a member on which an interrupted run
/// destroyed objects without recording them, so the returned count misses those.
pub(super) fn destroy_on(
    retire: &Retire,
    member: &Member,
    recovered: &Recovered,
    transcript: &mut Transcript,
    count_not_recorded: bool,
) -> Result<usize, QuorumError> {
    let step = "destroy the fleet key";
    let token = find_token(member).map_err(QuorumError::hsm(step, &member.name))?;
    let pins = pins_of(recovered, member)?;
    let session = token
        .login_user(&pins.user_pin)
        .map_err(QuorumError::hsm(step, &member.name))?;

    let found = keys::find_labelled(&session, &retire.key_label)
        .map_err(QuorumError::hsm(step, &member.name))?;
    for handle in &found {
        session
            .destroy_object(*handle)
            .map_err(|error| crate::hsm::HsmError::from_cryptoki(&token.label, step, error))
            .map_err(QuorumError::hsm(step, &member.name))?;
    }
    tracing::info!(member = %member.name, objects = found.len(), "destroyed the fleet key");
    crate::fault::kill_point(&format!("after-destroy-{}", token.label));
    let mut details = json!({"member": member.name, "token_label": token.label, "label": retire.key_label, "objects": found.len()});
    if count_not_recorded {
        details["count_not_recorded"] = json!(true);
    }
    record(transcript, action::KEY_DESTROYED, details)?;

    // A fresh search, so that an object the token kept despite C_DestroyObject shows up.
    let left = keys::find_labelled(&session, &retire.key_label).map_err(QuorumError::hsm(
        "check the fleet key is gone",
        &member.name,
    ))?;
    if !left.is_empty() {
        return Err(QuorumError::KeyLeft {
            member: member.name.clone(),
            label: retire.key_label.clone(),
            count: left.len(),
        });
    }
    record(
        transcript,
        action::KEY_ABSENT,
        json!({"member": member.name, "token_label": token.label, "label": retire.key_label, "objects_left": 0}),
    )?;
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(member, fingerprint)| (member.to_string(), fingerprint.to_string()))
            .collect()
    }

    #[test]
    fn same_key_returns_shared_fingerprint() {
        let found = same_key("k", named(&[("a", "ff"), ("b", "ff")])).unwrap();
        assert_eq!(found.as_deref(), Some("ff"));
        assert_eq!(same_key("k", Vec::new()).unwrap(), None);
    }

    #[test]
    fn same_key_rejects_different_keys() {
        let error = same_key("k", named(&[("a", "ff"), ("b", "ee")])).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, QuorumError::DifferentKeys { .. }),
            "{message}"
        );
        assert!(message.contains("a ff, b ee"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
    }
}
