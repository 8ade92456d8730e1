//! Abandoning an unfinished ceremony: the fleet key is destroyed on every member and the
//! documents are moved aside, so nothing half-made can be mistaken for a deployed fleet.
//!
//! PKCS#11 cannot delete a token, so the tokens stay initialised. Their PINs stay in the
//! custodians' shares, which are kept for that reason.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::CeremonyError;
use super::deploy::token_label;
use super::progress::{Progress, action};
use crate::hsm::{HsmError, Library, Token, TokenSelector, keys};
use crate::runbook::Runbook;
use crate::shares::CredentialSet;
use crate::transcript::Transcript;

/// Report of an `abandon` run.
#[derive(Debug, Default)]
pub struct Abandoned {
    /// Members whose fleet key objects were destroyed, with the number of objects.
    pub destroyed: Vec<(String, usize)>,
    /// Tokens left initialised.
    pub tokens_left: Vec<String>,
    /// Outputs moved aside.
    pub moved: Vec<PathBuf>,
}

/// Abandons the ceremony of `runbook`. `credentials` are needed when a token was touched.
pub fn abandon(
    runbook: &Runbook,
    credentials: Option<&CredentialSet>,
) -> Result<Abandoned, CeremonyError> {
    let transcript_path = runbook.outputs.transcript();
    let mut transcript = Transcript::open(&transcript_path)?;
    let progress = Progress::from_records(transcript.records());
    if progress.finished {
        return Err(CeremonyError::Finished {
            evidence: runbook.outputs.fleet_evidence_dir(&runbook.fleet.id),
        });
    }
    if progress.abandoned {
        return Err(CeremonyError::Abandoned {
            transcript: transcript_path,
        });
    }
    if let (Some(credentials), Some(expected)) = (credentials, &progress.credential_set)
        && &credentials.id != expected
    {
        return Err(CeremonyError::CannotResume {
            reason: format!(
                "the shares given are of credential set {}, but this ceremony's is {expected}",
                credentials.id
            ),
        });
    }

    let mut report = Abandoned::default();
    for member in &runbook.members {
        let label = token_label(&member.token);
        let on_error = CeremonyError::hsm("abandon", &member.name);
        let library = Library::load(&member.module).map_err(on_error)?;
        let token = match Token::find(&library, &TokenSelector::Label(label.clone())) {
            Ok(token) => token,
            Err(HsmError::TokenNotFound { .. }) => continue,
            Err(error) => return Err(CeremonyError::hsm("abandon", &member.name)(error)),
        };
        // A token the transcript does not record may still be this ceremony's (the run
        // stopped between initialising and recording it); its PIN decides.
        let credentials = credentials.ok_or(CeremonyError::SharesNeeded {
            threshold: runbook.custodians.threshold,
        })?;
        let pins = credentials
            .members
            .iter()
            .find(|entry| entry.member == member.name)
            .ok_or_else(|| CeremonyError::CannotResume {
                reason: format!("the credentials hold no PINs for member {}", member.name),
            })?;
        report.tokens_left.push(label.clone());
        if !token.user_pin_initialised {
            continue;
        }

        let session = token
            .login_user(&pins.user_pin)
            .map_err(CeremonyError::hsm("abandon", &member.name))?;
        let found = keys::find_labelled(&session, &runbook.fleet_key.label)
            .map_err(CeremonyError::hsm("abandon", &member.name))?;
        for handle in &found {
            session
                .destroy_object(*handle)
                .map_err(|error| HsmError::from_cryptoki(&label, "destroy the fleet key", error))
                .map_err(CeremonyError::hsm("abandon", &member.name))?;
        }
        transcript.append(
            action::KEY_DESTROYED,
            json!({"member": member.name, "token_label": label, "label": runbook.fleet_key.label, "objects": found.len()}),
        )?;
        report.destroyed.push((member.name.clone(), found.len()));
    }

    for path in [
        runbook.outputs.signing_request(),
        runbook.outputs.fleet_key_document(),
    ] {
        if let Some(moved) = move_abandoned(&path)? {
            report.moved.push(moved);
        }
    }
    transcript.append(
        action::ABANDONED,
        json!({
            "tokens_left_initialised": report.tokens_left,
            "shares_kept": "the shares hold the PINs of the tokens left initialised",
            "moved": report.moved.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        }),
    )?;
    Ok(report)
}

fn move_abandoned(path: &Path) -> Result<Option<PathBuf>, CeremonyError> {
    if !path.exists() {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".abandoned");
    let target = PathBuf::from(name);
    if target.exists() {
        return Err(CeremonyError::Invalid {
            path: target,
            message: "already exists; outputs are never overwritten".into(),
        });
    }
    std::fs::rename(path, &target).map_err(|source| CeremonyError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(Some(target))
}
