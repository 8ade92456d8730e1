//! `fleet-ceremony bundle sign` and `bundle countersign`: the auditor's and the
//! operator's steps.

use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;

use crate::bundle::LogProof;
use crate::bundle::{
    self, AuditorSignature, Ciphersuite, FleetKeyDocument, OperatorSignature, SigningRequest,
};
use crate::ceremony::{AUDITOR_SIGNATURE_FILE, LOG_PROOF_FILE, OPERATOR_SIGNATURE_FILE};
use crate::fsutil::{check_absent, write_new};
use crate::hsm::{Library, Token, sign};
use crate::runbook::{self, Signer};

/// Subcommands of `bundle`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Auditor: sign a signing request with an Ed25519 key file, offline.
    Sign(SignArgs),
    /// Operator: counter-sign the auditor's signature with the runbook's operator key.
    Countersign(CountersignArgs),
    /// Show the keys added, removed and changed from one epoch's bundle to the next.
    Diff(super::bundle_diff::DiffArgs),
}

/// Arguments of `bundle sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The signing request (signing-request.json).
    #[arg(long)]
    pub request: PathBuf,
    /// The fleet-key document it names (fleet-key.json).
    #[arg(long)]
    pub document: PathBuf,
    /// The auditor's Ed25519 private key, PKCS#8 PEM.
    #[arg(long)]
    pub key: PathBuf,
    /// Where to write the auditor signature; must not exist.
    #[arg(long)]
    pub out: PathBuf,
    /// Encoding of the signed statement: protobuf (0x0001) or bincode (0x0002).
    #[arg(long, default_value = "protobuf", value_parser = ["protobuf", "bincode"])]
    pub ciphersuite: String,
    /// Append the statement to the auditor's log in this directory, and write the
    /// checkpoint and inclusion proof to log-proof.json beside the signature.
    #[arg(long, requires = "log_key")]
    pub log: Option<PathBuf>,
    /// The log's note signer key (with --log).
    #[arg(long, requires = "log")]
    pub log_key: Option<PathBuf>,
}

/// Arguments of `bundle countersign`.
#[derive(Debug, clap::Args)]
pub struct CountersignArgs {
    /// The runbook of the ceremony; names the work folder and the operator's key.
    pub runbook: PathBuf,
    /// Read the operator token's user PIN from the first line of standard input.
    #[arg(long)]
    pub pin_stdin: bool,
}

/// Runs a `bundle` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Sign(args) => sign_request(&args),
        Command::Countersign(args) => countersign(&args),
        Command::Diff(args) => super::bundle_diff::run(&args),
    }
}

fn sign_request(args: &SignArgs) -> anyhow::Result<u8> {
    let request_bytes = std::fs::read(&args.request)
        .with_context(|| format!("cannot read {}", args.request.display()))?;
    let request = SigningRequest::from_json_bytes(&request_bytes)
        .with_context(|| format!("{} is not a signing request", args.request.display()))?;
    let document_bytes = std::fs::read(&args.document)
        .with_context(|| format!("cannot read {}", args.document.display()))?;
    let document = FleetKeyDocument::from_json_bytes(&document_bytes)
        .with_context(|| format!("{} is not a fleet-key document", args.document.display()))?;
    document
        .check_keys()
        .with_context(|| format!("{} names an invalid fleet key", args.document.display()))?;
    document.check_fields().with_context(|| {
        format!(
            "{} is not a valid fleet-key document",
            args.document.display()
        )
    })?;

    // Printed from the checked document, whose text fields hold no control characters;
    // signing checks below that the request names the same values.
    eprintln!(
        "signing request for fleet {} (namespace {}, epoch {})",
        document.fleet_id, document.namespace, document.epoch
    );
    eprintln!("document SHA-256: {}", request.document_sha256);
    for key in &document.keys {
        eprintln!(
            "fleet key {} ({}): {}",
            key.label, key.algorithm, key.fingerprint
        );
        if let Some(words) = crate::words::fingerprint_words(&key.fingerprint) {
            eprintln!("  read aloud: {words}");
        }
    }
    for member in &document.members {
        let role = if member.origin { "origin" } else { "copy" };
        let extractable = member
            .key_attributes
            .get("CKA_EXTRACTABLE")
            .map_or("not reported".to_owned(), ToString::to_string);
        eprintln!(
            "member {} at {}: token {} serial {}, {role}, CKA_EXTRACTABLE {extractable}",
            member.name, member.site, member.token_label, member.token_serial
        );
    }
    eprintln!(
        "custodians: any {} of {}",
        document.custodians.threshold,
        document.custodians.names.join(", ")
    );

    let key = bundle::read_ed25519_key_file(&args.key)?;
    let ciphersuite = if args.ciphersuite == "bincode" {
        Ciphersuite::Bincode
    } else {
        Ciphersuite::Protobuf
    };
    let timestamp_ms =
        u64::try_from(Utc::now().timestamp_millis()).context("the system clock is before 1970")?;
    let signature =
        bundle::sign_request(&request, &document_bytes, &key, ciphersuite, timestamp_ms)?;
    // A logged digest can never be logged again, so the outputs are checked before the
    // append, and the signature is written only after it.
    let proof_path = args
        .out
        .parent()
        .unwrap_or(std::path::Path::new("."))
        .join(LOG_PROOF_FILE);
    check_absent(&args.out)?;
    if args.log.is_some() {
        check_absent(&proof_path)?;
    }
    let log_proof = match (&args.log, &args.log_key) {
        (Some(dir), Some(log_key)) => Some(log_statement(dir, log_key, &signature, &key)?),
        _ => None,
    };
    write_new(&args.out, &signature.to_json_bytes(), false)?;
    eprintln!(
        "auditor signature written; auditor key {}",
        signature.key_id
    );
    if let Some(proof) = log_proof {
        let path = proof_path;
        write_new(&path, &proof.to_json_bytes(), false)?;
        eprintln!(
            "logged at index {} of {}; checkpoint and proof written to {}",
            proof.inclusion_proof.index,
            proof.inclusion_proof.tree_size,
            path.display()
        );
    }
    println!("{}", args.out.display());
    Ok(super::EXIT_OK)
}

/// Appends the auditor's statement to the log in `dir` and returns the checkpoint and
/// inclusion proof.
fn log_statement(
    dir: &std::path::Path,
    log_key: &std::path::Path,
    signature: &AuditorSignature,
    key: &ed25519_dalek::SigningKey,
) -> anyhow::Result<LogProof> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(log_key)
            .with_context(|| format!("cannot read {}", log_key.display()))?,
    );
    let signer = crate::log::SignerKey::parse(text.trim_end())
        .with_context(|| format!("{} is not a note signer key", log_key.display()))?;
    let origin = signer.name().to_owned();
    let mut log = crate::log::Log::open(dir, &origin, signer)?;
    Ok(bundle::log_append::append_statement(
        &mut log,
        signature,
        &key.verifying_key(),
    )?)
}

fn countersign(args: &CountersignArgs) -> anyhow::Result<u8> {
    let runbook = runbook::load(&args.runbook)?;
    let work = &runbook.outputs.work_dir;
    let auditor_path = work.join(AUDITOR_SIGNATURE_FILE);
    let out = work.join(OPERATOR_SIGNATURE_FILE);
    let auditor_bytes = std::fs::read(&auditor_path).with_context(|| {
        format!(
            "cannot read {}\nhint: the auditor's `bundle sign` writes it",
            auditor_path.display()
        )
    })?;
    let auditor = AuditorSignature::from_json_bytes(&auditor_bytes)
        .with_context(|| format!("{} is not an auditor signature", auditor_path.display()))?;

    // The operator vouches only for a valid auditor signature over this ceremony's document.
    let document_path = runbook.outputs.fleet_key_document();
    let document_bytes = std::fs::read(&document_path)
        .with_context(|| format!("cannot read {}", document_path.display()))?;
    let digest = hex::encode(bundle::document_digest(&document_bytes));
    if auditor.digest != digest {
        bail!(
            "{} signs digest {}, but {} has digest {digest}",
            auditor_path.display(),
            auditor.digest,
            document_path.display()
        );
    }
    let auditor_signature = auditor.signature()?;
    auditor
        .statement()?
        .verify(&runbook.auditor.public_key, &auditor_signature)
        .with_context(|| {
            format!(
                "{}: the auditor signature does not verify with the runbook's auditor key",
                auditor_path.display()
            )
        })?;

    let message = bundle::countersigned_message(&auditor_signature);
    let signature = match &runbook.operator.signer {
        Signer::KeyFile(path) => {
            let key = bundle::read_ed25519_key_file(path)?;
            bundle::countersign_with_key(&key, &auditor_signature)
        }
        Signer::Pkcs11 {
            module,
            token,
            key_label,
        } => {
            let library = Library::load(module)?;
            let token = Token::find(&library, &token.selector())?;
            let pin = super::pin::read_pin(
                &format!("user PIN of token {}: ", token.label),
                args.pin_stdin,
            )?;
            let session = token.login_user(&pin)?;
            let bytes = sign::sign_ed25519(&session, &token, key_label, &message)?;
            ed25519_dalek::Signature::from_bytes(&bytes)
        }
    };
    bundle::verify_countersignature(&runbook.operator.public_key, &auditor_signature, &signature)
        .context("the operator key does not match the operator public key in the runbook")?;

    let operator = OperatorSignature::from_signature(&signature, &runbook.operator.public_key);
    write_new(&out, &operator.to_json_bytes(), false)?;
    eprintln!(
        "counter-signature written; operator key {}",
        operator.key_id
    );
    println!("{}", out.display());
    Ok(super::EXIT_OK)
}
