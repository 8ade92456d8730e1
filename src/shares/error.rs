//! Errors of credential generation, share splitting, encryption and recombination.

use std::path::PathBuf;

/// A failure while splitting, encrypting, decrypting or recombining credential shares.
///
/// No variant carries a PIN, a share or a secret key, so messages and `Debug` output are
/// safe to print and log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// The threshold is below 2, so a single custodian could recover the credentials.
    #[error("threshold {threshold} is too low: at least 2 shares must be required")]
    ThresholdTooLow {
        /// The requested threshold.
        threshold: u8,
    },
    /// The threshold is larger than the number of custodians.
    #[error(
        "threshold {threshold} is larger than the number of custodians ({count})\nhint: add custodians or lower the threshold"
    )]
    ThresholdAboveCount {
        /// The requested threshold.
        threshold: u8,
        /// The number of custodians.
        count: usize,
    },
    /// More custodians than Shamir shares over GF(256) can serve (x-coordinates 1 to 255).
    #[error("{count} custodians requested, but at most 255 shares can be made")]
    TooManyCustodians {
        /// The number of custodians.
        count: usize,
    },
    /// Two custodians have the same name (compared without regard to letter case).
    #[error(
        "custodian name {name:?} appears more than once\nhint: each custodian receives exactly one share, under a unique name"
    )]
    DuplicateCustodian {
        /// The repeated name.
        name: String,
    },
    /// A custodian name cannot serve as a share file name.
    #[error("invalid custodian name {name:?}: {reason}")]
    InvalidCustodianName {
        /// The rejected name.
        name: String,
        /// Reason the name is rejected.
        reason: &'static str,
    },
    /// The ceremony id or fleet name is empty.
    #[error("the share context has an empty {field}")]
    EmptyContext {
        /// `ceremony` or `fleet`.
        field: &'static str,
    },
    /// A recipient string is not a supported age recipient.
    #[error(
        "invalid recipient: {reason}\nhint: use an age X25519 recipient (age1...) or an SSH public key (ssh-ed25519 or ssh-rsa)"
    )]
    InvalidRecipient {
        /// Reason, which never contains the recipient text.
        reason: String,
    },
    /// A custodian's recipient string is not a supported age recipient.
    #[error(
        "invalid recipient for custodian {custodian}: {reason}\nhint: use an age X25519 recipient (age1...) or an SSH public key (ssh-ed25519 or ssh-rsa)"
    )]
    CustodianRecipient {
        /// The custodian.
        custodian: String,
        /// Reason the recipient is rejected.
        reason: String,
    },
    /// An identity file cannot be read or parsed.
    #[error("invalid identity file {path}: {reason}")]
    InvalidIdentityFile {
        /// The identity file.
        path: PathBuf,
        /// Reason, which never contains key material.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A credential set failed to serialise or parse.
    #[error("invalid credential set: {reason}")]
    InvalidCredentials {
        /// Reason, which never contains a PIN.
        reason: String,
    },
    /// A share plaintext record is malformed.
    #[error("invalid share record: {reason}")]
    InvalidRecord {
        /// Reason, which never contains share bytes.
        reason: String,
    },
    /// Encryption to a custodian's recipient failed.
    #[error("cannot encrypt the share of custodian {custodian}: {reason}")]
    Encrypt {
        /// The custodian.
        custodian: String,
        /// The age error.
        reason: String,
    },
    /// Freshly made shares did not recombine to the secret; nothing was encrypted.
    #[error(
        "internal check failed: shares {indexes:?} do not recombine to the credential set\nhint: nothing was written; run the split again and report this"
    )]
    SelfCheckFailed {
        /// The x-coordinates of the subset that failed.
        indexes: Vec<u8>,
    },
    /// A share file does not decrypt with the identity given for it.
    #[error(
        "share file {path} does not decrypt with identity {identity}: {reason}\nhint: check that this identity belongs to the custodian named in the share file name"
    )]
    Decrypt {
        /// The share file.
        path: PathBuf,
        /// The identity file used.
        identity: PathBuf,
        /// The age error.
        reason: String,
    },
    /// A share file decrypted, but its plaintext is not a valid share record.
    #[error("share file {path} is not a valid share: {reason}")]
    InvalidShareFile {
        /// The share file.
        path: PathBuf,
        /// Reason the plaintext is rejected.
        reason: String,
    },
    /// The same share file was given twice, by path or as a byte-identical copy.
    #[error(
        "share file {path} is the same file as {first}\nhint: give each custodian's share once"
    )]
    DuplicateFile {
        /// The repeated file.
        path: PathBuf,
        /// The file given earlier.
        first: PathBuf,
    },
    /// Two share files carry the same x-coordinate.
    #[error(
        "share file {path} has index {index}, like {first}\nhint: two files hold the same share; give shares of different custodians"
    )]
    DuplicateIndex {
        /// The later file.
        path: PathBuf,
        /// The file given earlier.
        first: PathBuf,
        /// The repeated index.
        index: u8,
    },
    /// Two share files name the same custodian.
    #[error("share file {path} belongs to custodian {custodian}, like {first}")]
    DuplicateShareCustodian {
        /// The later file.
        path: PathBuf,
        /// The file given earlier.
        first: PathBuf,
        /// The custodian named in both.
        custodian: String,
    },
    /// A share file belongs to another ceremony, fleet or credential set, or has
    /// another threshold, count or commitment than the first file.
    #[error(
        "share file {path} has {field} {found}, but {first} has {expected}\nhint: all shares must come from the same split"
    )]
    Mismatch {
        /// The file that disagrees.
        path: PathBuf,
        /// The first file, which sets the expected values.
        first: PathBuf,
        /// The field that differs.
        field: &'static str,
        /// The value in the first file.
        expected: String,
        /// The value in `path`.
        found: String,
    },
    /// Fewer distinct shares than the threshold were given.
    #[error(
        "{given} share(s) given, but the threshold is {threshold}\nhint: collect shares from at least {threshold} custodians"
    )]
    NotEnoughShares {
        /// The number of shares given.
        given: usize,
        /// The threshold recorded in the shares (0 when no share was given).
        threshold: u8,
    },
    /// The recombined secret does not match the commitment in the shares.
    #[error(
        "the recombined credentials do not match the commitment; at least one of these shares is corrupted: {}\nhint: {hint}",
        display_paths(.paths)
    )]
    CommitmentMismatch {
        /// The suspect share files: the corrupted ones when they could be located,
        /// otherwise all files used.
        paths: Vec<PathBuf>,
        /// The next step for the officer.
        hint: &'static str,
    },
    /// A recipients file given for a custodian does not contain exactly one valid
    /// recipient.
    #[error("invalid recipients file {path}{}: {reason}\nhint: {hint}", display_line(*.line))]
    RecipientFile {
        /// The recipients file.
        path: PathBuf,
        /// Line number from 1, when the problem is on one line.
        line: Option<usize>,
        /// Reason, which never contains the file's text.
        reason: String,
        /// The next step.
        hint: &'static str,
    },
    /// A `NAME=RECIPIENT` or `NAME=@FILE` custodian argument is malformed.
    #[error("invalid custodian {argument}: {reason}\nhint: write NAME=age1... or NAME=@FILE")]
    CustodianArgument {
        /// The argument up to the `=`, or a placeholder when there is no `=`; never the
        /// recipient, which could be a secret key pasted by mistake.
        argument: String,
        /// Reason the argument is rejected.
        reason: &'static str,
    },
    /// A share file could not be written; files written before it were removed.
    #[error(transparent)]
    Write(#[from] crate::fsutil::WriteError),
    /// The PKCS#11 module could not be loaded for the login check.
    #[error("cannot check logins: {0}")]
    Module(Box<crate::hsm::HsmError>),
    /// No token, or more than one, has the token label recorded for a member.
    #[error("cannot find the token \"{token}\" of member {member}; no login was tried: {error}")]
    TokenLookup {
        /// The member.
        member: String,
        /// The token label recorded in the credentials.
        token: String,
        /// The HSM error; part of the message, so not also given as the error source.
        error: Box<crate::hsm::HsmError>,
    },
    /// The user login with the recovered PIN failed on a member's token.
    #[error(
        "login check failed for member {member}, token \"{token}\"{}: {error}",
        display_unchecked(.unchecked)
    )]
    LoginFailed {
        /// The member.
        member: String,
        /// The token label.
        token: String,
        /// Members after it whose tokens were not tried, so that a set of wrong PINs
        /// costs at most one login attempt on one token.
        unchecked: Vec<String>,
        /// The HSM error, with the PKCS#11 function and return code; part of the message,
        /// so not also given as the error source.
        error: Box<crate::hsm::HsmError>,
    },
}

/// Formats an optional line number as ` line N`.
fn display_line(line: Option<usize>) -> String {
    line.map(|line| format!(" line {line}")).unwrap_or_default()
}

/// Formats the members whose login was not tried after a failure.
fn display_unchecked(members: &[String]) -> String {
    if members.is_empty() {
        return String::new();
    }
    format!(" (not tried after it: {})", members.join(", "))
}

/// Joins paths with commas for an error message.
fn display_paths(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    names.join(", ")
}
