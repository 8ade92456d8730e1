//! The demo: every role of a ceremony played on this machine, on SoftHSM tokens in a new
//! folder laid out like the repository.
//!
//! Each role runs as a separate `fleet-ceremony` process, because SoftHSM reads
//! `SOFTHSM2_CONF` once per process and the operator's token lives in its own token
//! folder. PINs reach the child processes on standard input, never in arguments, files or
//! the environment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::bundle;
use crate::fsutil::write_new;
use crate::hsm::SOFTHSM_MODULE;

/// The demo runbook, copied into the demo folder as `runbook.yaml`.
pub const DEMO_RUNBOOK: &str = include_str!("../ceremonies/demo-fleet.yaml");

/// Custodians of the demo runbook, in order.
pub const DEMO_CUSTODIANS: &[&str] = &["alice", "bob", "carol"];

/// Token label and key label of the demo operator's signing key.
const OPERATOR_TOKEN: &str = "demo-operator";
const OPERATOR_KEY: &str = "operator-signing-key";

/// A failed demo step.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The folder already contains files.
    #[error(
        "{0} exists and is not empty; the demo never overwrites a ceremony\nhint: choose a new folder"
    )]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
    /// A folder could not be made or a process could not be started.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A step's process failed.
    #[error("demo step \"{step}\" failed with exit code {code:?}; see its messages above")]
    Step {
        /// The step.
        step: &'static str,
        /// The exit code.
        code: Option<i32>,
    },
}

/// Paths of the demo folder.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The demo folder.
    pub root: PathBuf,
}

impl Layout {
    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
    /// Returns the path of the SoftHSM configuration of the fleet's tokens.
    pub fn fleet_conf(&self) -> PathBuf {
        self.path("softhsm2.conf")
    }
    /// Returns the path of the SoftHSM configuration of the operator's token.
    pub fn operator_conf(&self) -> PathBuf {
        self.path("operator/softhsm2.conf")
    }
    /// Returns the path of the runbook.
    pub fn runbook(&self) -> PathBuf {
        self.path("runbook.yaml")
    }
    /// Returns the path of the trust file.
    pub fn trust(&self) -> PathBuf {
        self.path("keys-public/trust.yaml")
    }
}

/// Origin of the demo auditor's log, also the name of its note key.
const DEMO_LOG_ORIGIN: &str = "demo.fleet-ceremony.example/auditor-log";

/// Runs the whole demo in `root` and returns the evidence folder.
pub fn run(root: &Path) -> Result<PathBuf, DemoError> {
    if root.exists()
        && std::fs::read_dir(root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(DemoError::NotEmpty(root.to_owned()));
    }
    let root = absolute(root)?;
    let layout = Layout { root };

    tracing::info!(folder = %layout.root.display(), "laying out the demo folder");
    write_softhsm_conf(&layout.fleet_conf(), &layout.path("tokens"))?;
    write_softhsm_conf(&layout.operator_conf(), &layout.path("operator/tokens"))?;
    let auditor = write_auditor_key(&layout)?;
    for name in DEMO_CUSTODIANS {
        write_custodian(&layout, name)?;
    }
    write_new(&layout.runbook(), DEMO_RUNBOOK.as_bytes(), false)?;

    let operator_so_pin = random_pin();
    let operator_pin = random_pin();
    let operator_stdin = Zeroizing::new(format!(
        "{}\n{}\n",
        operator_so_pin.expose_secret(),
        operator_pin.expose_secret()
    ));
    let operator_public = layout.path("keys-public/operator.pem");
    step(
        &layout,
        "create the operator key",
        &layout.operator_conf(),
        &[
            "operator",
            "init",
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            OPERATOR_TOKEN,
            "--key-label",
            OPERATOR_KEY,
            "--public-key-out",
            &display(&operator_public),
            "--pin-stdin",
        ],
        Some(&operator_stdin),
    )?;
    step(
        &layout,
        "create the auditor's log",
        &layout.fleet_conf(),
        &[
            "log",
            "init",
            &display(&layout.path("auditor/log")),
            "--origin",
            DEMO_LOG_ORIGIN,
            "--key-out",
            &display(&layout.path("auditor/log-key")),
            "--verifier-out",
            &display(&layout.path("keys-public/log-key.pub")),
        ],
        None,
    )?;
    write_trust(&layout, &auditor, &operator_public)?;

    let runbook = display(&layout.runbook());
    step(
        &layout,
        "check the runbook",
        &layout.fleet_conf(),
        &["check", &runbook],
        None,
    )?;
    step_allowing(
        &layout,
        "run the ceremony",
        &layout.fleet_conf(),
        &["run", &runbook, "--yes"],
        None,
        &[4],
    )?;

    let work = layout.path("ceremony/demo-fleet");
    for (name, role, folder) in DEMO_SIGNERS {
        let key = write_signer_key(&layout, folder)?;
        step(
            &layout,
            "sign the transcript in the room",
            &layout.fleet_conf(),
            &[
                "transcript",
                "sign",
                &runbook,
                "--witness",
                name,
                "--role",
                role,
                "--key",
                &display(&key),
            ],
            None,
        )?;
    }
    step(
        &layout,
        "sign as the auditor",
        &layout.fleet_conf(),
        &[
            "bundle",
            "sign",
            "--request",
            &display(&work.join("signing-request.json")),
            "--document",
            &display(&work.join("fleet-key.json")),
            "--key",
            &display(&layout.path("auditor/auditor-key.pem")),
            "--out",
            &display(&work.join("auditor-signature.json")),
            "--log",
            &display(&layout.path("auditor/log")),
            "--log-key",
            &display(&layout.path("auditor/log-key")),
        ],
        None,
    )?;
    let countersign_stdin = Zeroizing::new(format!("{}\n", operator_pin.expose_secret()));
    step(
        &layout,
        "counter-sign as the operator",
        &layout.operator_conf(),
        &["bundle", "countersign", &runbook, "--pin-stdin"],
        Some(&countersign_stdin),
    )?;
    step(
        &layout,
        "assemble the bundle and render the evidence",
        &layout.fleet_conf(),
        &["run", &runbook],
        None,
    )?;

    let evidence = layout.path("evidence/demo-fleet");
    // The trust file does not allow unattested keys, as a real verifier's should not, so
    // the demo passes the allowance on the command line where a reader sees it.
    tracing::info!(
        "the demo's tokens are SoftHSM, which has no hardware attestation, so the evidence \
         is verified with --allow-unattested; without it the hardware attestation check fails"
    );
    step(
        &layout,
        "verify the evidence",
        &layout.fleet_conf(),
        &[
            "verify",
            &display(&evidence),
            "--trust",
            &display(&layout.trust()),
            "--allow-unattested",
        ],
        None,
    )?;
    Ok(evidence)
}

fn absolute(path: &Path) -> Result<PathBuf, DemoError> {
    std::fs::create_dir_all(path).map_err(|source| DemoError::Io {
        what: format!("cannot create {}", path.display()),
        source,
    })?;
    std::fs::canonicalize(path).map_err(|source| DemoError::Io {
        what: format!("cannot resolve {}", path.display()),
        source,
    })
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn write_softhsm_conf(conf: &Path, tokens: &Path) -> Result<(), DemoError> {
    std::fs::create_dir_all(tokens).map_err(|source| DemoError::Io {
        what: format!("cannot create {}", tokens.display()),
        source,
    })?;
    let text = format!(
        "# SoftHSM2 configuration written by `fleet-ceremony demo`.\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    write_new(conf, text.as_bytes(), false)?;
    Ok(())
}

/// Generates the auditor's key, writes the private key (0600) and returns the public key.
fn write_auditor_key(layout: &Layout) -> Result<ed25519_dalek::VerifyingKey, DemoError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    write_new(
        &layout.path("auditor/auditor-key.pem"),
        bundle::ed25519_key_file_pem(&key).as_bytes(),
        true,
    )?;
    let public = key.verifying_key();
    write_new(
        &layout.path("keys-public/auditor.pem"),
        bundle::ed25519_spki_pem(&public).as_bytes(),
        false,
    )?;
    Ok(public)
}

/// The demo's ceremony officer and witness, who sign the transcript digest: name, role
/// and the folder of their key under `DIR/witnesses/`.
const DEMO_SIGNERS: &[(&str, &str, &str)] = &[
    ("Demo Officer", "officer", "demo-officer"),
    ("Demo Witness", "witness", "demo-witness"),
];

/// Generates a signer's Ed25519 key (0600) and returns its path.
fn write_signer_key(layout: &Layout, folder: &str) -> Result<PathBuf, DemoError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(seed.as_mut());
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let path = layout.path(&format!("witnesses/{folder}/signing-key.pem"));
    write_new(&path, bundle::ed25519_key_file_pem(&key).as_bytes(), true)?;
    Ok(path)
}

/// Generates a custodian's age identity (0600) and recipient file.
fn write_custodian(layout: &Layout, name: &str) -> Result<(), DemoError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let secret = identity.to_string();
    let text = Zeroizing::new(format!(
        "# age identity of demo custodian {name}\n# public key: {recipient}\n{}\n",
        secret.expose_secret()
    ));
    let folder = format!("custodians/{name}");
    write_new(
        &layout.path(&format!("{folder}/identity.txt")),
        text.as_bytes(),
        true,
    )?;
    write_new(
        &layout.path(&format!("{folder}/recipient.txt")),
        format!("# age recipient of demo custodian {name}\n{recipient}\n").as_bytes(),
        false,
    )?;
    Ok(())
}

fn write_trust(
    layout: &Layout,
    auditor: &ed25519_dalek::VerifyingKey,
    operator_public: &Path,
) -> Result<(), DemoError> {
    let operator_pem =
        std::fs::read_to_string(operator_public).map_err(|source| DemoError::Io {
            what: format!("cannot read {}", operator_public.display()),
            source,
        })?;
    let log_key_path = layout.path("keys-public/log-key.pub");
    let log_key = std::fs::read_to_string(&log_key_path).map_err(|source| DemoError::Io {
        what: format!("cannot read {}", log_key_path.display()),
        source,
    })?;
    let text = format!(
        "# Pinned keys for verifying bundles of the demo fleet. Unattested (SoftHSM) keys are\n# not allowed here; pass --allow-unattested to accept them knowingly.\nversion: 1\nauditor:\n  name: Example Audit Ltd\n  public_key: |\n{}operator:\n  name: Example Backup Service\n  public_key: |\n{}log:\n  origin: {DEMO_LOG_ORIGIN}\n  verifier_key: {}\n",
        indent(&bundle::ed25519_spki_pem(auditor)),
        indent(&operator_pem),
        log_key.trim_end()
    );
    write_new(&layout.trust(), text.as_bytes(), false)?;
    Ok(())
}

fn indent(pem: &str) -> String {
    pem.lines().map(|line| format!("    {line}\n")).collect()
}

/// Generates a PIN for the demo operator's token: 32 hex characters from the OS CSPRNG.
fn random_pin() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; 16]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    SecretString::from(hex::encode(&bytes[..]))
}

/// Linux's name for the running executable, valid even after its file is replaced.
const PROC_SELF_EXE: &str = "/proc/self/exe";

/// Returns the path that starts this same executable. On Linux that is `/proc/self/exe`,
/// so every step runs the build that started the demo even when the file on disk is
/// replaced during the run. Elsewhere it is the file's path.
fn own_executable() -> std::io::Result<PathBuf> {
    let proc_exe = Path::new(PROC_SELF_EXE);
    if proc_exe.exists() {
        return Ok(proc_exe.to_owned());
    }
    std::env::current_exe()
}

fn step(
    layout: &Layout,
    name: &'static str,
    conf: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(), DemoError> {
    step_allowing(layout, name, conf, args, stdin, &[])
}

/// Runs `fleet-ceremony ARGS` with `SOFTHSM2_CONF=conf`; exit codes in `allowed` count as
/// success beside 0.
fn step_allowing(
    layout: &Layout,
    name: &'static str,
    conf: &Path,
    args: &[&str],
    stdin: Option<&str>,
    allowed: &[i32],
) -> Result<(), DemoError> {
    tracing::info!("demo step: {name}");
    let exe = own_executable().map_err(|source| DemoError::Io {
        what: "cannot find the fleet-ceremony executable".into(),
        source,
    })?;
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(&layout.root)
        .env("SOFTHSM2_CONF", conf)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .spawn()
        .map_err(|source| DemoError::Io {
            what: format!("cannot start demo step \"{name}\""),
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|source| DemoError::Io {
                what: format!("cannot pass the PIN to demo step \"{name}\""),
                source,
            })?;
    }
    let status = child.wait().map_err(|source| DemoError::Io {
        what: format!("demo step \"{name}\" did not finish"),
        source,
    })?;
    let code = status.code();
    if status.success() || code.is_some_and(|c| allowed.contains(&c)) {
        Ok(())
    } else {
        Err(DemoError::Step { step: name, code })
    }
}
