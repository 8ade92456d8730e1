//! Retiring a fleet: the fleet key objects are destroyed on every member, each destruction
//! is recorded, and retirement evidence names what was destroyed.

use std::fmt::Write as _;
use std::path::PathBuf;

use cryptoki::object::ObjectClass;
use serde_json::json;

use super::{
    QuorumError, action, check_not_started, check_shares_fit, find_token, pins_of, record,
};
use crate::ceremony::preflight::Problem;
use crate::fsutil::write_new;
use crate::hsm::keys;
use crate::runbook::{QuorumRunbook, Retire, TRANSCRIPT_FILE};
use crate::shares::Recovered;
use crate::transcript::Transcript;

/// File name of the retirement record (JSON) in the evidence folder.
pub const RETIREMENT_JSON: &str = "retirement.json";

/// File name of the retirement summary (Markdown) in the evidence folder.
pub const RETIREMENT_MD: &str = "retirement.md";

/// Format tag of the retirement record.
const RETIREMENT_FORMAT: &str = "fleet-ceremony-retirement-v1";

/// Objects a deployed member holds under the fleet key label: one private, one public key.
pub(super) const OBJECTS_PER_MEMBER: usize = 2;

/// What `retire` did.
#[derive(Debug)]
pub struct Retired {
    /// Members and the number of fleet key objects destroyed on each.
    pub destroyed: Vec<(String, usize)>,
    /// The evidence folder written.
    pub evidence_dir: PathBuf,
    /// Hex SHA-256 of the transcript.
    pub transcript_sha256: String,
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

    for member in &retire.members {
        if let Err(message) = check_member(retire, member, recovered) {
            problems.push(Problem {
                place: format!("member {}", member.name),
                message,
            });
        }
    }
    problems
}

fn check_member(
    retire: &Retire,
    member: &crate::runbook::Member,
    recovered: Option<&Recovered>,
) -> Result<(), String> {
    let token = find_token(member).map_err(|error| error.to_string())?;
    let session = token.open_session().map_err(|error| error.to_string())?;
    keys::find_one(&session, &token, &retire.key_label, ObjectClass::PUBLIC_KEY)
        .map_err(|error| error.to_string())?;
    drop(session);

    let Some(recovered) = recovered else {
        return Ok(());
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
    Ok(())
}

/// Destroys the fleet key on every member, checks that none is left, records each step
/// in the action's transcript, and writes the retirement evidence.
///
/// Runs [`check_retire`] first and changes nothing when it finds a problem. If a later
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
            "members": retire.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        }),
    )?;

    let mut destroyed = Vec::new();
    for member in &retire.members {
        let count = destroy_on(retire, member, recovered, &mut transcript)?;
        destroyed.push((member.name.clone(), count));
    }
    record(
        &mut transcript,
        action::FINISHED,
        json!({"objects_destroyed": destroyed.iter().map(|(_, n)| n).sum::<usize>()}),
    )?;

    let transcript_sha256 = transcript.digest();
    write_evidence(runbook, retire, recovered, &destroyed, &transcript_sha256)?;
    Ok(Retired {
        destroyed,
        evidence_dir: retire.evidence_dir.clone(),
        transcript_sha256,
    })
}

/// Destroys every object labelled with the fleet key label on `member`, checks that none
/// is left, and records both steps. Returns the number of objects destroyed.
pub(super) fn destroy_on(
    retire: &Retire,
    member: &crate::runbook::Member,
    recovered: &Recovered,
    transcript: &mut Transcript,
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
    record(
        transcript,
        action::KEY_DESTROYED,
        json!({"member": member.name, "token_label": token.label, "label": retire.key_label, "objects": found.len()}),
    )?;

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

pub(super) fn write_evidence(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: &Recovered,
    destroyed: &[(String, usize)],
    transcript_sha256: &str,
) -> Result<(), QuorumError> {
    let retired_at = super::now_utc();
    let total: usize = destroyed.iter().map(|(_, count)| count).sum();
    let members: Vec<_> = retire
        .members
        .iter()
        .zip(destroyed)
        .map(|(member, (_, count))| {
            json!({
                "name": member.name,
                "site": member.site,
                "token": member.token.to_string(),
                "objects_destroyed": count,
            })
        })
        .collect();
    let record = json!({
        "format": RETIREMENT_FORMAT,
        "fleet_id": runbook.fleet.id,
        "namespace": runbook.fleet.namespace,
        "epoch": runbook.fleet.epoch,
        "key_label": retire.key_label,
        "retired_at": retired_at,
        "members": members,
        "objects_destroyed": total,
        "credential_set": recovered.credential_set_id,
        "transcript": TRANSCRIPT_FILE,
        "transcript_sha256": transcript_sha256,
        "runbook_sha256": runbook.sha256(),
        "tool": concat!("fleet-ceremony ", env!("CARGO_PKG_VERSION")),
    });
    let mut json_bytes = serde_json::to_vec_pretty(&record)
        .expect("serialising a JSON value into memory cannot fail");
    json_bytes.push(b'\n');

    let mut markdown = String::new();
    let _ = writeln!(markdown, "# Retirement of fleet {}\n", runbook.fleet.id);
    let _ = writeln!(markdown, "- Namespace: {}", runbook.fleet.namespace);
    let _ = writeln!(markdown, "- Epoch: {}", runbook.fleet.epoch);
    let _ = writeln!(markdown, "- Fleet key label: {}", retire.key_label);
    let _ = writeln!(markdown, "- Retired at (UTC): {retired_at}");
    let _ = writeln!(markdown, "- Transcript SHA-256: {transcript_sha256}\n");
    let _ = writeln!(markdown, "| member | site | token | objects destroyed |");
    let _ = writeln!(markdown, "| --- | --- | --- | --- |");
    for (member, (_, count)) in retire.members.iter().zip(destroyed) {
        let _ = writeln!(
            markdown,
            "| {} | {} | {} | {count} |",
            member.name, member.site, member.token
        );
    }
    let _ = writeln!(
        markdown,
        "\n{total} fleet key objects destroyed; after destroying them, a new search on each \
         member found no object labelled {:?}.",
        retire.key_label
    );

    let transcript_bytes =
        std::fs::read(runbook.transcript()).map_err(|source| crate::fsutil::WriteError::Io {
            path: runbook.transcript(),
            source,
        })?;
    write_new(
        &retire.evidence_dir.join(TRANSCRIPT_FILE),
        &transcript_bytes,
        false,
    )?;
    write_new(
        &retire.evidence_dir.join(RETIREMENT_JSON),
        &json_bytes,
        false,
    )?;
    write_new(
        &retire.evidence_dir.join(RETIREMENT_MD),
        markdown.as_bytes(),
        false,
    )?;
    Ok(())
}
