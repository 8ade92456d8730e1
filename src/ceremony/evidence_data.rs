//! The data behind the evidence pages, and the files published beside them.

use std::path::Path;

use serde_json::{Value, json};

use super::CeremonyError;
use super::finish::sha256_hex;
use crate::bundle::{
    self, AuditorSignature, FleetKeyDocument, GROWTH_LOCKED, GROWTH_TRUSTED_WRAP, MemberEntry,
    OperatorSignature, Trust,
};

/// Format name of `evidence.json`.
pub const EVIDENCE_FORMAT: &str = "fleet-ceremony-evidence-v1";

/// Inputs of the evidence pages.
pub(super) struct Published<'a> {
    pub document: &'a FleetKeyDocument,
    pub document_bytes: &'a [u8],
    pub bundle_bytes: &'a [u8],
    pub auditor: &'a AuditorSignature,
    pub operator: &'a OperatorSignature,
    pub trust: &'a Trust,
    pub transcript_bytes: &'a [u8],
}

/// Lists the files published beside the pages, so readers can check each claim with
/// openssl.
pub(super) fn published_files(
    published: &Published<'_>,
) -> Result<Vec<(&'static str, Vec<u8>)>, CeremonyError> {
    let invalid = |error: &dyn std::fmt::Display| CeremonyError::Invalid {
        path: "bundle".into(),
        message: error.to_string(),
    };
    let statement = published.auditor.statement().map_err(|e| invalid(&e))?;
    let auditor_signature = published.auditor.signature().map_err(|e| invalid(&e))?;
    let operator_signature = published.operator.signature().map_err(|e| invalid(&e))?;
    let fleet_key = published
        .document
        .keys
        .first()
        .ok_or_else(|| invalid(&"the document lists no fleet key"))?;

    let mut files = vec![
        (super::BUNDLE_FILE, published.bundle_bytes.to_vec()),
        (
            bundle::DOCUMENT_FILE_NAME,
            published.document_bytes.to_vec(),
        ),
        ("fleet-key.pem", fleet_key.spki_pem.as_bytes().to_vec()),
        (
            "auditor.pem",
            bundle::ed25519_spki_pem(&published.trust.auditor.key).into_bytes(),
        ),
        (
            "operator.pem",
            bundle::ed25519_spki_pem(&published.trust.operator.key).into_bytes(),
        ),
        ("auditor-statement.bin", statement.signed_bytes()),
        (
            "auditor-signature.bin",
            auditor_signature.to_bytes().to_vec(),
        ),
        (
            "operator-message.bin",
            bundle::countersigned_message(&auditor_signature),
        ),
        (
            "operator-signature.bin",
            operator_signature.to_bytes().to_vec(),
        ),
        ("transcript.jsonl", published.transcript_bytes.to_vec()),
    ];
    if logged_entry(published.bundle_bytes).is_some() {
        files.push(("log-check.go", LOG_CHECK_GO.as_bytes().to_vec()));
    }
    Ok(files)
}

/// Builds the evidence data: the content of `evidence.json` and the context of both
/// templates.
pub(super) fn build(
    published: &Published<'_>,
    files: &[(&'static str, Vec<u8>)],
    evidence_dir: &Path,
) -> Result<Value, CeremonyError> {
    let document = published.document;
    let key = document
        .keys
        .first()
        .ok_or_else(|| CeremonyError::Invalid {
            path: evidence_dir.to_owned(),
            message: "the document lists no fleet key".into(),
        })?;
    let attribute_names: Vec<String> = document
        .members
        .first()
        .map(|member| member.key_attributes.keys().cloned().collect())
        .unwrap_or_default();
    let document_lines =
        transcript_prefix_lines(published.transcript_bytes, &document.transcript_sha256);

    let members: Vec<Value> = document
        .members
        .iter()
        .map(|member| {
            json!({
                "name": member.name,
                "site": member.site,
                "token_label": member.token_label,
                "token_serial": member.token_serial,
                "model": member.model,
                "manufacturer": member.manufacturer,
                "role": if member.origin { "origin: generated the key" } else { "copy: unwrapped from the origin" },
                "attested": member.attested,
                "attestation": attestation_summary(member),
                "attestation_detail": member.attestation,
                "key_attributes": member.key_attributes,
            })
        })
        .collect();
    // One row per attribute and one column per member, so the table stays narrow.
    let attribute_rows: Vec<Value> = attribute_names
        .iter()
        .map(|name| {
            let values: Vec<String> = document
                .members
                .iter()
                .map(|member| match member.key_attributes.get(name) {
                    Some(Value::Bool(value)) => value.to_string(),
                    Some(other) => other.to_string(),
                    None => "not reported".to_owned(),
                })
                .collect();
            json!({"name": name, "values": values})
        })
        .collect();

    let records: Vec<Value> = String::from_utf8_lossy(published.transcript_bytes)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|record| json!({"seq": record["seq"], "time": record["time"], "action": record["action"]}))
        .collect();
    let timestamp_utc =
        chrono::DateTime::from_timestamp_millis(published.auditor.timestamp_ms as i64)
            .map(super::deploy::utc_text)
            .unwrap_or_else(|| "out of range".to_owned());
    let fleet_dir = format!("evidence/{}", document.fleet_id);

    Ok(json!({
        "format": EVIDENCE_FORMAT,
        "fleet": {
            "id": document.fleet_id,
            "namespace": document.namespace,
            "epoch": document.epoch,
            "created_at": super::deploy::utc_text(document.created_at),
            "tool": document.tool,
        },
        "key": {
            "algorithm": key.algorithm,
            "label": key.label,
            "spki_pem": key.spki_pem,
            "fingerprint": key.fingerprint,
            "fingerprint_words": crate::words::fingerprint_words(&key.fingerprint).unwrap_or_default(),
            "growth": key.growth.as_deref().unwrap_or(GROWTH_LOCKED),
            "growth_note": growth_note(key.growth.as_deref(), document),
        },
        "members": members,
        "attribute_rows": attribute_rows,
        "attestation_note": attestation_note(document),
        "custodians": {
            "threshold": document.custodians.threshold,
            "count": document.custodians.names.len(),
            "names": document.custodians.names,
        },
        "signatures": {
            "document_sha256": published.auditor.digest,
            "auditor_name": published.trust.auditor.name,
            "auditor_key_id": published.auditor.key_id,
            "ciphersuite": format!("0x{:04x}", published.auditor.ciphersuite.code()),
            "timestamp_ms": published.auditor.timestamp_ms,
            "timestamp_utc": timestamp_utc,
            "epoch": published.auditor.epoch,
            "auditor_signature": published.auditor.signature,
            "operator_name": published.trust.operator.name,
            "operator_key_id": published.operator.key_id,
            "operator_signature": published.operator.signature,
        },
        "transcript": {
            "sha256": sha256_hex(published.transcript_bytes),
            "document_sha256": document.transcript_sha256,
            "document_lines": document_lines,
            "records": records,
        },
        "signoffs": signoffs(published.bundle_bytes),
        "log": log_section(published.bundle_bytes),
        "files": files.iter().map(|(name, bytes)| json!({"name": name, "sha256": sha256_hex(bytes)})).collect::<Vec<_>>(),
        "verify": verify_commands(published, &fleet_dir, document_lines),
    }))
}

/// Builds the table cell on a member's attestation: who vouches for the key, or that no
/// one does.
fn attestation_summary(member: &MemberEntry) -> String {
    let Some(attestation) = &member.attestation else {
        return "not hardware-attested".to_owned();
    };
    let at = super::deploy::utc_text(attestation.verified_at);
    let rules: Vec<String> = attestation
        .rules
        .iter()
        .map(|rule| format!("{} {}", rule.rule, rule.result))
        .collect();
    let state = if member.attested {
        "hardware-attested"
    } else {
        "not hardware-attested"
    };
    format!(
        "{state}: {} device {}, verified at {at} ({})",
        attestation.vendor,
        attestation.device_serial,
        rules.join(", ")
    )
}

/// Builds the sentence under the member table: which members no HSM vendor vouches for,
/// and why.
fn attestation_note(document: &FleetKeyDocument) -> String {
    let unattested: Vec<&str> = document
        .members
        .iter()
        .filter(|member| !member.attested)
        .map(|member| member.name.as_str())
        .collect();
    if unattested.is_empty() {
        return "Every member's key is hardware-attested: each HSM's attestation chains to its \
                vendor's pinned root and states that the key is the fleet key, was generated \
                on the device and cannot be extracted."
            .to_owned();
    }
    let softhsm = document.members.iter().any(|member| {
        !member.attested && member.attestation.is_none() && member.model.contains("SoftHSM")
    });
    let why = if softhsm {
        " SoftHSM is a software token and produces no attestation."
    } else {
        ""
    };
    format!(
        "The key is not hardware-attested on: {}.{why} The key attributes above are what \
         each token reported; nothing outside the tokens vouches for them, and the verify \
         command rejects these members unless unattested keys are allowed.",
        unattested.join(", ")
    )
}

/// Builds the `verify` command for this evidence. It carries `--allow-unattested` only
/// when a member is not attested, so a reader sees that the allowance is needed.
fn verify_command(document: &FleetKeyDocument, fleet_dir: &str) -> String {
    let mut command = format!("fleet-ceremony verify {fleet_dir} --trust keys-public/trust.yaml");
    if document.members.iter().any(|member| !member.attested) {
        command.push_str(" --allow-unattested");
    }
    command
}

/// Lists the witnesses' sign-offs on the transcript digest, from the bundle's `signoffs`
/// list, which the bundle check has verified.
fn signoffs(bundle_bytes: &[u8]) -> Vec<Value> {
    let Ok(bundle) = bundle::Bundle::from_json_bytes(bundle_bytes) else {
        return Vec::new();
    };
    bundle
        .signoffs
        .iter()
        .map(|signoff| {
            json!({
                "name": signoff.witness,
                "role": signoff.role,
                "key_id": signoff.key_id,
                "transcript_sha256": signoff.transcript_sha256,
                "signature": signoff.signature,
            })
        })
        .collect()
}

/// Extracts the audit log's checkpoint and inclusion proof from the bundle. Every field is
/// present in both cases, so the templates in strict mode can test `checkpoint`. An empty
/// checkpoint means the bundle was not logged, and the pages state that.
fn log_section(bundle_bytes: &[u8]) -> Value {
    let bundle = bundle::Bundle::from_json_bytes(bundle_bytes).ok();
    let logged = bundle.as_ref().and_then(|bundle| {
        Some((
            bundle.checkpoint.as_ref()?,
            bundle.inclusion_proof.as_ref()?,
        ))
    });
    let Some((checkpoint, proof)) = logged else {
        return json!({
            "status": "not logged",
            "origin": "",
            "checkpoint": "",
            "checkpoint_indented": "",
            "index": 0,
            "tree_size": 0,
            "hashes": [],
        });
    };
    // Markdown shows the checkpoint as an indented code block: every line gets four
    // spaces, so no line of it can end the block.
    let indented: String = checkpoint
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect();
    json!({
        "status": "logged",
        "origin": checkpoint.lines().next().unwrap_or_default(),
        "checkpoint": checkpoint,
        "checkpoint_indented": indented,
        "index": proof.index,
        "tree_size": proof.tree_size,
        "hashes": proof.hashes,
    })
}

/// Number of leading transcript lines whose SHA-256 is `digest`, or 0 if none match.
fn transcript_prefix_lines(transcript: &[u8], digest: &str) -> usize {
    let mut end = 0;
    let mut lines = 0;
    for line in transcript.split_inclusive(|byte| *byte == b'\n') {
        end += line.len();
        lines += 1;
        if sha256_hex(&transcript[..end]) == digest {
            return lines;
        }
    }
    0
}

fn verify_commands(published: &Published<'_>, fleet_dir: &str, document_lines: usize) -> Value {
    let digest = &published.auditor.digest;
    let fingerprint = published
        .document
        .keys
        .first()
        .map_or("", |key| key.fingerprint.as_str());
    let verified = "Signature Verified Successfully";
    let mut commands = json!({
        "command": verify_command(published.document, fleet_dir),
        "independent": [
            {
                "purpose": "the pinned auditor key is the one in auditor.pem",
                "command": "openssl pkey -pubin -in auditor.pem -outform DER | sha256sum",
                "expected": format!("{}  -", published.trust.auditor.fingerprint),
            },
            {
                "purpose": "the pinned operator key is the one in operator.pem",
                "command": "openssl pkey -pubin -in operator.pem -outform DER | sha256sum",
                "expected": format!("{}  -", published.trust.operator.fingerprint),
            },
            {
                "purpose": "the fleet-key document has the digest the auditor signed",
                "command": "sha256sum fleet-key.json",
                "expected": format!("{digest}  fleet-key.json"),
            },
            {
                "purpose": "the signed statement ends with that digest",
                "command": "tail -c 32 auditor-statement.bin | od -An -tx1 | tr -d ' \\n'; echo",
                "expected": digest,
            },
            {
                "purpose": "the auditor signed the statement",
                "command": "openssl pkeyutl -verify -pubin -inkey auditor.pem -rawin -in auditor-statement.bin -sigfile auditor-signature.bin",
                "expected": verified,
            },
            {
                "purpose": "the operator's message ends with the auditor's signature",
                "command": "tail -c 64 operator-message.bin | cmp - auditor-signature.bin && echo same",
                "expected": "same",
            },
            {
                "purpose": "the operator counter-signed the auditor's signature",
                "command": "openssl pkeyutl -verify -pubin -inkey operator.pem -rawin -in operator-message.bin -sigfile operator-signature.bin",
                "expected": verified,
            },
            {
                "purpose": "the fleet key has the published fingerprint",
                "command": "openssl pkey -pubin -in fleet-key.pem -outform DER | sha256sum",
                "expected": format!("{fingerprint}  -"),
            },
            {
                "purpose": "the document commits to the first lines of the transcript",
                "command": format!("head -n {document_lines} transcript.jsonl | sha256sum"),
                "expected": format!("{}  -", published.document.transcript_sha256),
            },
        ],
    });
    if let Some((index, size, origin)) = logged_entry(published.bundle_bytes)
        && let Some(list) = commands["independent"].as_array_mut()
    {
        {
            list.push(json!({
                "purpose": "the auditor's log includes this bundle, checked with Go's golang.org/x/mod/sumdb note and tlog packages only (Debian packages golang-go and golang-golang-x-mod-dev)",
                "command": "GO111MODULE=off GOPATH=/usr/share/gocode go run log-check.go bundle.json ../../keys-public/log-key.pub",
                "expected": format!("ok: entry {index} of {size} in {origin}"),
            }));
        }
    }
    commands
}

/// The Go program that checks a bundle's checkpoint and inclusion proof with the Go
/// checksum database's packages; published as `log-check.go`.
const LOG_CHECK_GO: &str = include_str!("../../tests/go/bundlecheck/main.go");

/// Index, tree size and log origin of a bundle's inclusion proof, when it carries one.
fn logged_entry(bundle_bytes: &[u8]) -> Option<(u64, u64, String)> {
    let bundle: Value = serde_json::from_slice(bundle_bytes).ok()?;
    let proof = bundle.get("inclusion_proof")?;
    let index = proof.get("index")?.as_u64()?;
    let size = proof.get("tree_size")?.as_u64()?;
    let origin = bundle
        .get("checkpoint")?
        .as_str()?
        .lines()
        .next()?
        .to_owned();
    Some((index, size, origin))
}

/// Returns the sentence for readers that names the copies of the fleet private key that
/// can ever be wrapped again, from the key's growth policy.
fn growth_note(growth: Option<&str>, document: &FleetKeyDocument) -> String {
    if growth != Some(GROWTH_TRUSTED_WRAP) {
        return "Every copy of the fleet private key is non-extractable (CKA_EXTRACTABLE \
                false), so no HSM can wrap it again and the fleet cannot gain members by \
                copying it."
            .to_owned();
    }
    let origin = document
        .members
        .iter()
        .find(|member| member.origin)
        .map_or("the origin member", |member| member.name.as_str());
    format!(
        "Growth policy trusted-wrap: the copy on {origin} can be wrapped, but only under a \
         key that its security officer marked trusted (CKA_WRAP_WITH_TRUSTED true), so the \
         fleet can gain members when a quorum of custodians rebuilds that officer's PIN. \
         Every other copy is non-extractable."
    )
}
