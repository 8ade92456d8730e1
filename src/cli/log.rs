//! `fleet-ceremony log`: the auditor's transparency log and a witness that cosigns it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use zeroize::Zeroizing;

use crate::bundle::{self, AuditorSignature, Bundle, InclusionProof, LogProof};
use crate::log::note::{TYPE_COSIGNATURE, TYPE_ED25519};
use crate::log::store::CHECKPOINT_FILE;
use crate::log::tile::{DirTileReader, TileHashes};
use crate::log::{
    Checkpoint, Log, Note, SignerKey, VerifierKey, cosign, prove_consistency, prove_inclusion,
    verify_consistency,
};

/// Subcommands of `log`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Auditor: create a log and its note key pair.
    Init(InitArgs),
    /// Auditor: append a signed statement (auditor-signature.json or bundle.json).
    Append(AppendArgs),
    /// Auditor: sign and publish a checkpoint for the current log size.
    Checkpoint(KeyArgs),
    /// Print an inclusion proof (--index) or a consistency proof (--old) as JSON.
    Prove(ProveArgs),
    /// Create a witness cosigner key pair (signature type 0x04).
    WitnessKey(WitnessKeyArgs),
    /// Witness: cosign a checkpoint after checking it extends the last one cosigned.
    Cosign(CosignArgs),
}

/// Arguments of `log init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The log directory to create.
    pub dir: PathBuf,
    /// The log origin, also the name of its note key (for example audit.example/fleet-log).
    #[arg(long)]
    pub origin: String,
    /// Where to write the note signer key (mode 0600); must not exist.
    #[arg(long)]
    pub key_out: PathBuf,
    /// Where to write the note verifier key; default: the key path with `.pub` appended.
    #[arg(long)]
    pub verifier_out: Option<PathBuf>,
}

/// Arguments of `log append`.
#[derive(Debug, clap::Args)]
pub struct AppendArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// An auditor-signature.json or a bundle.json.
    pub file: PathBuf,
    /// The log's note signer key.
    #[arg(long)]
    pub key: PathBuf,
    /// The auditor's Ed25519 public key (SPKI PEM) that must have signed the statement.
    #[arg(long)]
    pub auditor_key: PathBuf,
}

/// Arguments of commands that only need the log and its key.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The log directory.
    pub dir: PathBuf,
    /// The log's note signer key.
    #[arg(long)]
    pub key: PathBuf,
}

/// Arguments of `log prove`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("proof").required(true).args(["index", "old"])))]
pub struct ProveArgs {
    /// The log directory; proofs are for the tree of its current checkpoint.
    pub dir: PathBuf,
    /// Prove inclusion of the entry at this index (from 0).
    #[arg(long)]
    pub index: Option<u64>,
    /// Prove consistency from the tree of this size to the current one.
    #[arg(long)]
    pub old: Option<u64>,
}

/// Arguments of `log witness-key`.
#[derive(Debug, clap::Args)]
pub struct WitnessKeyArgs {
    /// The witness name (for example witness.example/w1).
    pub name: String,
    /// Where to write the cosigner key (mode 0600); must not exist.
    #[arg(long)]
    pub key_out: PathBuf,
    /// Where to write the verifier key; default: the key path with `.pub` appended.
    #[arg(long)]
    pub verifier_out: Option<PathBuf>,
}

/// Arguments of `log cosign`.
#[derive(Debug, clap::Args)]
pub struct CosignArgs {
    /// The log directory (or a copy); consistency proofs are built from its tiles.
    pub dir: PathBuf,
    /// The witness's cosigner key.
    #[arg(long)]
    pub key: PathBuf,
    /// The log's note verifier key file.
    #[arg(long)]
    pub log_key: PathBuf,
    /// The witness state: the last checkpoint it cosigned. Created on first use.
    #[arg(long)]
    pub state: PathBuf,
    /// Cosign the checkpoint inside this log-proof.json and replace the file, instead of
    /// the log's checkpoint file.
    #[arg(long)]
    pub proof: Option<PathBuf>,
}

/// Runs a `log` subcommand.
pub fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Init(args) => init(&args),
        Command::Append(args) => append(&args),
        Command::Checkpoint(args) => checkpoint(&args),
        Command::Prove(args) => prove(&args),
        Command::WitnessKey(args) => witness_key(&args),
        Command::Cosign(args) => cosign_checkpoint(&args),
    }
}

/// Creates the log and its key files, or on failure neither: every check runs before the
/// first write, and the key files are written before the first checkpoint is signed, so a
/// published log never lacks its key.
fn init(args: &InitArgs) -> anyhow::Result<u8> {
    let signer = SignerKey::generate(&args.origin, TYPE_ED25519)?;
    let verifier_out = args
        .verifier_out
        .clone()
        .unwrap_or_else(|| with_pub_suffix(&args.key_out));
    crate::fsutil::check_absent(&args.key_out)?;
    crate::fsutil::check_absent(&verifier_out)?;

    let mut log = Log::create(&args.dir, &args.origin, signer.clone())?;
    signer.write_files(&args.key_out, &verifier_out)?;
    if let Err(error) = log.checkpoint() {
        // Keys of a log that was never published are of no use; this run created both.
        for path in [&args.key_out, &verifier_out] {
            if let Err(remove_error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %remove_error, "cannot remove key file");
            }
        }
        return Err(error.into());
    }
    let verifier = signer.verifier().to_string();
    eprintln!("log {} created in {}", args.origin, args.dir.display());
    println!("{verifier}");
    Ok(super::EXIT_OK)
}

fn append(args: &AppendArgs) -> anyhow::Result<u8> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let auditor = match AuditorSignature::from_json_bytes(&bytes) {
        Ok(auditor) => auditor,
        Err(_) => auditor_of_bundle(&bytes).with_context(|| {
            format!(
                "{} is neither an auditor signature file nor a bundle",
                args.file.display()
            )
        })?,
    };
    let auditor_key = bundle::ed25519_from_spki_pem(
        &std::fs::read_to_string(&args.auditor_key)
            .with_context(|| format!("cannot read {}", args.auditor_key.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not an Ed25519 public key",
            args.auditor_key.display()
        )
    })?;

    let mut log = open_log(&args.dir, &args.key)?;
    let proof = bundle::log_append::append_statement(&mut log, &auditor, &auditor_key)?;
    eprintln!(
        "logged namespace {} epoch {} at index {}; tree size {}",
        auditor.namespace,
        auditor.epoch,
        proof.inclusion_proof.index,
        proof.inclusion_proof.tree_size
    );
    print!("{}", String::from_utf8_lossy(&proof.to_json_bytes()));
    Ok(super::EXIT_OK)
}

/// Returns the auditor signature of a bundle whose document matches the signed digest.
fn auditor_of_bundle(bytes: &[u8]) -> anyhow::Result<AuditorSignature> {
    let bundle = Bundle::from_json_bytes(bytes)?;
    let digest = hex::encode(bundle::document_digest(&bundle.document_bytes()?));
    if digest != bundle.auditor.digest {
        bail!(
            "the bundle's document has SHA-256 {digest} but the auditor signed {}",
            bundle.auditor.digest
        );
    }
    Ok(bundle.auditor)
}

fn checkpoint(args: &KeyArgs) -> anyhow::Result<u8> {
    let mut log = open_log(&args.dir, &args.key)?;
    let note = log.checkpoint()?;
    print!("{}", String::from_utf8_lossy(&note));
    Ok(super::EXIT_OK)
}

fn prove(args: &ProveArgs) -> anyhow::Result<u8> {
    let (note_bytes, checkpoint) = read_checkpoint(&args.dir.join(CHECKPOINT_FILE))?;
    let reader = DirTileReader::new(&args.dir);
    let tiles = TileHashes::new(&reader, checkpoint.size);
    let note_text = String::from_utf8_lossy(&note_bytes).into_owned();

    let json = if let Some(index) = args.index {
        let hashes = prove_inclusion(&tiles, index, checkpoint.size)?;
        LogProof::new(
            note_text,
            InclusionProof::new(index, checkpoint.size, &hashes),
        )
        .to_json_bytes()
    } else {
        let old = args.old.unwrap_or_default();
        let hashes = prove_consistency(&tiles, old, checkpoint.size)?;
        let value = serde_json::json!({
            "old_size": old,
            "tree_size": checkpoint.size,
            "hashes": hashes.iter().map(|hash| hash.to_base64()).collect::<Vec<_>>(),
            "checkpoint": note_text,
        });
        let mut bytes = serde_json::to_vec_pretty(&value)?;
        bytes.push(b'\n');
        bytes
    };
    print!("{}", String::from_utf8_lossy(&json));
    Ok(super::EXIT_OK)
}

fn witness_key(args: &WitnessKeyArgs) -> anyhow::Result<u8> {
    let signer = SignerKey::generate(&args.name, TYPE_COSIGNATURE)?;
    let verifier_out = args
        .verifier_out
        .clone()
        .unwrap_or_else(|| with_pub_suffix(&args.key_out));
    signer.write_files(&args.key_out, &verifier_out)?;
    println!("{}", signer.verifier());
    Ok(super::EXIT_OK)
}

fn cosign_checkpoint(args: &CosignArgs) -> anyhow::Result<u8> {
    let witness = read_signer(&args.key)?;
    let log_key = VerifierKey::parse(
        std::fs::read_to_string(&args.log_key)
            .with_context(|| format!("cannot read {}", args.log_key.display()))?
            .trim_end(),
    )
    .with_context(|| format!("{} is not a note verifier key", args.log_key.display()))?;
    let origin = log_key.name().to_owned();

    // The checkpoint to cosign: the log's own, or the one in a log proof file.
    let target = args
        .proof
        .clone()
        .unwrap_or_else(|| args.dir.join(CHECKPOINT_FILE));
    let target_bytes =
        std::fs::read(&target).with_context(|| format!("cannot read {}", target.display()))?;
    let mut proof_file = None;
    let note_bytes = if args.proof.is_some() {
        let proof = LogProof::from_json_bytes(&target_bytes)?;
        let bytes = proof.checkpoint.clone().into_bytes();
        proof_file = Some(proof);
        bytes
    } else {
        target_bytes
    };
    let new = Checkpoint::open(&note_bytes, &origin, &log_key)
        .with_context(|| format!("the checkpoint in {} is not valid", target.display()))?;

    check_extends_state(&args.state, &args.dir, &new, &origin, &log_key)?;

    let cosigned = add_cosignature(&note_bytes, &witness)?;

    let output = match proof_file {
        Some(mut proof) => {
            proof.checkpoint = String::from_utf8_lossy(&cosigned).into_owned();
            proof.to_json_bytes()
        }
        None => cosigned.clone(),
    };
    replace_file(&target, &output)?;
    replace_file(&args.state, &cosigned)?;
    eprintln!(
        "cosigned checkpoint of {origin} at tree size {} as {}",
        new.size,
        witness.name()
    );
    Ok(super::EXIT_OK)
}

/// Returns the note with one cosignature line of `witness`: a line of the same key already
/// there is replaced, so cosigning a checkpoint twice leaves one line per witness.
fn add_cosignature(note_bytes: &[u8], witness: &SignerKey) -> anyhow::Result<Vec<u8>> {
    let note = Note::parse(note_bytes)?;
    let others = note
        .signatures()
        .iter()
        .filter(|line| line.name != witness.name() || line.key_id != witness.key_id())
        .cloned()
        .collect();
    let mut note = Note::new(note.text(), others)?;
    let now = u64::try_from(Utc::now().timestamp()).context("the system clock is before 1970")?;
    note.add_signature(cosign(witness, note.text(), now)?);
    Ok(note.to_bytes())
}

/// Checks that `new` extends the checkpoint in the witness state file, if there is one.
fn check_extends_state(
    state: &Path,
    dir: &Path,
    new: &Checkpoint,
    origin: &str,
    log_key: &VerifierKey,
) -> anyhow::Result<()> {
    let old_bytes = match std::fs::read(state) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).context(format!("cannot read {}", state.display())),
    };
    let old = Checkpoint::open(&old_bytes, origin, log_key)
        .with_context(|| format!("the witness state {} is not valid", state.display()))?;
    if new.size < old.size {
        bail!(
            "rollback: the checkpoint has tree size {}, smaller than the {} cosigned before",
            new.size,
            old.size
        );
    }
    let reader = DirTileReader::new(dir);
    let proof = prove_consistency(&TileHashes::new(&reader, new.size), old.size, new.size)
        .with_context(|| format!("cannot build a consistency proof from {}", dir.display()))?;
    verify_consistency(old.size, new.size, &proof, &old.root, &new.root).with_context(|| {
        format!(
            "fork: the tree of size {} cosigned before is not a prefix of the tree of size {}",
            old.size, new.size
        )
    })?;
    Ok(())
}

fn open_log(dir: &Path, key: &Path) -> anyhow::Result<Log> {
    let signer = read_signer(key)?;
    let origin = signer.name().to_owned();
    Ok(Log::open(dir, &origin, signer)?)
}

fn read_signer(path: &Path) -> anyhow::Result<SignerKey> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
    );
    SignerKey::parse(text.trim_end())
        .with_context(|| format!("{} is not a note signer key", path.display()))
}

fn read_checkpoint(path: &Path) -> anyhow::Result<(Vec<u8>, Checkpoint)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let note = Note::parse(&bytes)?;
    let checkpoint = Checkpoint::parse_text(note.text())?;
    Ok((bytes, checkpoint))
}

fn with_pub_suffix(path: &Path) -> PathBuf {
    let mut text = path.as_os_str().to_owned();
    text.push(".pub");
    PathBuf::from(text)
}

/// Replaces `path` with `bytes`: a new file beside it, flushed, then renamed over it.
fn replace_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".new");
    let temp = PathBuf::from(temp);
    let _ = std::fs::remove_file(&temp);
    crate::fsutil::write_new(&temp, bytes, false)?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot replace {}", path.display()))
}
