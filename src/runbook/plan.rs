//! The human-readable ceremony plan and the read-only checks of the files a runbook names.

use std::fmt::{self, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey;
use sha2::{Digest, Sha256};

use super::{Growth, PublicKeySource, Runbook, Signer};

/// A file that would stop the ceremony, found by [`Runbook::check_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Runbook field that names the file, such as `members[0].module`.
    pub field: String,
    /// The file or folder.
    pub path: PathBuf,
    /// Description of the problem.
    pub message: String,
    /// Suggested next step.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.field,
            self.path.display(),
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl Runbook {
    /// Renders the plan: fleet, key and its growth policy, members with the origin marked, custodians k-of-n,
    /// auditor and operator keys, and outputs. Plain text, no colour.
    pub fn plan(&self) -> String {
        let mut out = String::new();
        self.write_plan(&mut out)
            .expect("writing to a String succeeds");
        out
    }

    fn write_plan(&self, out: &mut String) -> fmt::Result {
        let fleet = &self.fleet;
        writeln!(
            out,
            "Runbook {} (sha256 {})",
            self.path.display(),
            self.sha256()
        )?;
        writeln!(out, "Fleet {}, epoch {}", fleet.id, fleet.epoch)?;
        writeln!(out, "  namespace: {}", fleet.namespace)?;
        writeln!(
            out,
            "Fleet key: {}, label \"{}\"",
            self.fleet_key.algorithm, self.fleet_key.label
        )?;
        let growth = match self.fleet_key.growth {
            Growth::Locked => {
                "every copy ends non-extractable, so the fleet cannot gain members later"
            }
            Growth::TrustedWrap => {
                "the origin's copy stays extractable, wrappable only under keys that the \
                 security officer marks CKA_TRUSTED, so add-member can copy it later; every \
                 other copy ends non-extractable"
            }
        };
        writeln!(out, "  growth: {}, {growth}", self.fleet_key.growth)?;

        writeln!(out, "Members ({}):", self.members.len())?;
        for (index, member) in self.members.iter().enumerate() {
            let role = if member.origin {
                "origin, generates the key"
            } else {
                "receives a copy of the key"
            };
            writeln!(
                out,
                "  {}. {} at {} ({role})",
                index + 1,
                member.name,
                member.site
            )?;
            writeln!(out, "     {} in {}", member.token, member.module.display())?;
            let initialise = match (member.initialise, member.erase_existing) {
                (false, _) => "uses the token as it is",
                (true, false) => "initialises the token with generated PINs",
                (true, true) => {
                    "initialises the token with generated PINs, ERASING it if it exists"
                }
            };
            writeln!(out, "     {initialise}")?;
            match &member.attestation {
                Some(attestation) => {
                    let at = match attestation.verify_at {
                        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                        None => "the current time".to_owned(),
                    };
                    writeln!(
                        out,
                        "     attestation: {}, {} file(s), certificates checked at {at}",
                        attestation.vendor,
                        attestation.files.len()
                    )?;
                }
                None => writeln!(
                    out,
                    "     attestation: none, the key will not be hardware-attested"
                )?,
            }
        }

        let custodians = &self.custodians;
        writeln!(
            out,
            "Custodians: any {} of {} recover the PINs",
            custodians.threshold,
            custodians.people.len()
        )?;
        for custodian in &custodians.people {
            let recipient = &custodian.recipient;
            writeln!(
                out,
                "  {}: {} recipient from {}",
                custodian.name,
                recipient.kind.as_str(),
                recipient.source
            )?;
        }

        let auditor = &self.auditor;
        writeln!(out, "Auditor: {}", auditor.name)?;
        write_key(out, &auditor.public_key, &auditor.public_key_source)?;
        let operator = &self.operator;
        writeln!(out, "Operator: {}", operator.name)?;
        write_key(out, &operator.public_key, &operator.public_key_source)?;
        match &operator.signer {
            Signer::Pkcs11 {
                module,
                token,
                key_label,
            } => writeln!(
                out,
                "  signs with key \"{key_label}\" on {token} in {}",
                module.display()
            )?,
            Signer::KeyFile(path) => writeln!(out, "  signs with key file {}", path.display())?,
        }

        let outputs = &self.outputs;
        writeln!(out, "Outputs:")?;
        writeln!(out, "  {}", outputs.fleet_key_document().display())?;
        writeln!(out, "  {}", outputs.signing_request().display())?;
        writeln!(out, "  {}", outputs.transcript().display())?;
        for custodian in &custodians.people {
            writeln!(out, "  {}", outputs.share_file(&custodian.name).display())?;
        }
        let evidence = outputs.fleet_evidence_dir(&fleet.id);
        writeln!(out, "  {}/", evidence.display())
    }

    /// Checks, without changing anything, the files the ceremony will use: every PKCS#11
    /// module is a file, the operator key file (if any) can be opened, and no output exists
    /// yet (documents, transcript, share files, the fleet's evidence folder).
    ///
    /// It does not load the modules or look for tokens; that is the HSM step's work.
    pub fn check_files(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            check_module(
                &mut problems,
                &format!("members[{index}].module"),
                &member.module,
            );
        }
        match &self.operator.signer {
            Signer::Pkcs11 { module, .. } => {
                check_module(&mut problems, "operator.signer.pkcs11.module", module);
            }
            Signer::KeyFile(path) => check_key_file(&mut problems, path),
        }

        let outputs = &self.outputs;
        let mut planned = vec![
            ("outputs.work_dir", outputs.fleet_key_document()),
            ("outputs.work_dir", outputs.signing_request()),
            ("outputs.work_dir", outputs.transcript()),
        ];
        for custodian in &self.custodians.people {
            planned.push(("outputs.shares_dir", outputs.share_file(&custodian.name)));
        }
        planned.push((
            "outputs.evidence_dir",
            outputs.fleet_evidence_dir(&self.fleet.id),
        ));
        for (field, path) in planned {
            check_absent(&mut problems, field, path);
        }
        problems
    }
}

fn write_key(
    out: &mut String,
    key: &ed25519_dalek::VerifyingKey,
    source: &PublicKeySource,
) -> fmt::Result {
    let source = match source {
        PublicKeySource::Runbook { line } => format!("runbook line {line}"),
        PublicKeySource::File(path) => path.display().to_string(),
    };
    match key.to_public_key_der() {
        Ok(der) => {
            let fingerprint = hex::encode(Sha256::digest(der.as_bytes()));
            writeln!(out, "  Ed25519 key {fingerprint} from {source}")
        }
        Err(_) => writeln!(out, "  Ed25519 key from {source}"),
    }
}

fn check_module(problems: &mut Vec<Problem>, field: &str, module: &Path) {
    let message = match std::fs::metadata(module) {
        Ok(metadata) if metadata.is_file() => return,
        Ok(_) => "PKCS#11 module is not a file".to_string(),
        Err(error) => format!("PKCS#11 module not found: {error}"),
    };
    problems.push(Problem {
        field: field.to_string(),
        path: module.to_path_buf(),
        message,
        hint: Some("install the HSM vendor's PKCS#11 library, or correct the path".to_string()),
    });
}

fn check_key_file(problems: &mut Vec<Problem>, path: &Path) {
    let message = match std::fs::File::open(path).and_then(|file| file.metadata()) {
        Ok(metadata) if metadata.is_file() => return,
        Ok(_) => "operator key file is not a file".to_string(),
        Err(error) => format!("cannot open the operator key file: {error}"),
    };
    problems.push(Problem {
        field: "operator.signer.key_file".to_string(),
        path: path.to_path_buf(),
        message,
        hint: None,
    });
}

fn check_absent(problems: &mut Vec<Problem>, field: &str, path: PathBuf) {
    // symlink_metadata so that a dangling symlink also counts as present.
    if std::fs::symlink_metadata(&path).is_ok() {
        problems.push(Problem {
            field: field.to_string(),
            path,
            message: "output exists already; outputs are never overwritten".to_string(),
            hint: Some("move it away, or choose another output folder".to_string()),
        });
    }
}
