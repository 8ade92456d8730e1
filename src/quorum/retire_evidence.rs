//! The retirement evidence: `retirement.json`, `retirement.md` and a copy of the transcript.

use std::fmt::Write as _;

use serde_json::json;

use super::{QuorumError, Retired};
use crate::fsutil::write_new;
use crate::runbook::{QuorumRunbook, Retire, TRANSCRIPT_FILE};
use crate::shares::Recovered;

/// File name of the retirement record (JSON) in the evidence folder.
pub const RETIREMENT_JSON: &str = "retirement.json";

/// File name of the retirement summary (Markdown) in the evidence folder.
pub const RETIREMENT_MD: &str = "retirement.md";

/// Format tag of the retirement record.
const RETIREMENT_FORMAT: &str = "fleet-ceremony-retirement-v1";

/// Value of the record's `scope` field: the retirement covers the listed members only.
const SCOPE_LISTED: &str = "listed-members-only";

/// Explanation of the scope, for both evidence files.
const SCOPE_NOTE: &str = "This retirement covers exactly the members listed here; the fleet \
key was destroyed on them and on no other token. Members added to the fleet with a later \
share set (add-member) are not known to this action. Check the fleet's add-member \
transcripts and newer share sets for members not listed here, and retire each of them too.";

/// Reason that a member's count of destroyed objects is incomplete, for both evidence files.
const COUNT_NOT_RECORDED_NOTE: &str = "the run was interrupted after destroying fleet key \
objects on this member and before recording how many; objects_destroyed counts only those \
the resumed run found and destroyed";

/// Writes the transcript copy, `retirement.json` and `retirement.md` into the evidence
/// folder; never overwrites a file.
pub(super) fn write_evidence(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: &Recovered,
    retired: &Retired,
) -> Result<(), QuorumError> {
    let retired_at = super::now_utc();
    let json_bytes = retirement_json(runbook, retire, recovered, retired, &retired_at);
    let markdown = retirement_md(runbook, retire, retired, &retired_at);

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

fn retirement_json(
    runbook: &QuorumRunbook,
    retire: &Retire,
    recovered: &Recovered,
    retired: &Retired,
    retired_at: &str,
) -> Vec<u8> {
    let total: usize = retired.destroyed.iter().map(|d| d.objects).sum();
    let members: Vec<_> = retire
        .members
        .iter()
        .zip(&retired.destroyed)
        .map(|(member, destroyed)| {
            let mut entry = json!({
                "name": member.name,
                "site": member.site,
                "token": member.token.to_string(),
                "objects_destroyed": destroyed.objects,
                "count_not_recorded": destroyed.count_not_recorded,
            });
            if destroyed.count_not_recorded {
                entry["count_note"] = json!(COUNT_NOT_RECORDED_NOTE);
            }
            entry
        })
        .collect();
    let record = json!({
        "format": RETIREMENT_FORMAT,
        "fleet_id": runbook.fleet.id,
        "namespace": runbook.fleet.namespace,
        "epoch": runbook.fleet.epoch,
        "key_label": retire.key_label,
        "key_fingerprint": retired.key_fingerprint,
        "retired_at": retired_at,
        "scope": SCOPE_LISTED,
        "scope_note": SCOPE_NOTE,
        "members": members,
        "members_in_shares_not_listed": retired.unlisted_members,
        "objects_destroyed": total,
        "credential_set": recovered.credential_set_id,
        "transcript": TRANSCRIPT_FILE,
        "transcript_sha256": retired.transcript_sha256,
        "runbook_sha256": runbook.sha256(),
        "tool": concat!("fleet-ceremony ", env!("CARGO_PKG_VERSION")),
    });
    let mut bytes = serde_json::to_vec_pretty(&record)
        .expect("serialising a JSON value into memory cannot fail");
    bytes.push(b'\n');
    bytes
}

fn retirement_md(
    runbook: &QuorumRunbook,
    retire: &Retire,
    retired: &Retired,
    retired_at: &str,
) -> String {
    let fingerprint = retired.key_fingerprint.as_deref().unwrap_or(
        "not recorded, because the transcript does not record it and no member still held the public key when the retirement resumed",
    );
    let mut markdown = String::new();
    let _ = writeln!(markdown, "# Retirement of fleet {}\n", runbook.fleet.id);
    let _ = writeln!(markdown, "- Namespace: {}", runbook.fleet.namespace);
    let _ = writeln!(markdown, "- Epoch: {}", runbook.fleet.epoch);
    let _ = writeln!(markdown, "- Fleet key label: {}", retire.key_label);
    let _ = writeln!(
        markdown,
        "- Fleet key fingerprint (SHA-256 of the SubjectPublicKeyInfo): {fingerprint}"
    );
    let _ = writeln!(markdown, "- Retired at (UTC): {retired_at}");
    let _ = writeln!(
        markdown,
        "- Transcript SHA-256: {}\n",
        retired.transcript_sha256
    );

    let _ = writeln!(markdown, "## Scope\n\n{SCOPE_NOTE}\n");
    if !retired.unlisted_members.is_empty() {
        let _ = writeln!(
            markdown,
            "The shares used also hold PINs of {}, which this retirement does not list. As \
             far as the shares record, those members still hold the fleet key.\n",
            retired.unlisted_members.join(", ")
        );
    }

    let _ = writeln!(markdown, "## Members\n");
    let _ = writeln!(markdown, "| member | site | token | objects destroyed |");
    let _ = writeln!(markdown, "| --- | --- | --- | --- |");
    for (member, destroyed) in retire.members.iter().zip(&retired.destroyed) {
        let count = if destroyed.count_not_recorded {
            format!(
                "{} by the resumed run; the count before the interruption was not recorded",
                destroyed.objects
            )
        } else {
            destroyed.objects.to_string()
        };
        let _ = writeln!(
            markdown,
            "| {} | {} | {} | {count} |",
            member.name, member.site, member.token
        );
    }

    let total: usize = retired.destroyed.iter().map(|d| d.objects).sum();
    let counted = if retired.destroyed.iter().any(|d| d.count_not_recorded) {
        "recorded as destroyed (a run interrupted after destroying did not record all of them)"
    } else {
        "destroyed"
    };
    let _ = writeln!(
        markdown,
        "\n{total} fleet key objects {counted}; after destroying them, a new search on each \
         listed member found no object labelled {:?}.",
        retire.key_label
    );
    markdown
}
