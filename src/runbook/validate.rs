//! Checks that turn the raw YAML structs into a [`Runbook`] with typed, resolved values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_saphyr::options::{DuplicateKeyPolicy, MergeKeyPolicy};
use serde_saphyr::{Location, Spanned};

use super::error::saturate;
use super::raw::{RawCustodians, RawMember, RawOperator, RawOutputs, RawRunbook, RawToken};
use super::{
    Custodian, Custodians, DEFAULT_MODULE, Fleet, FleetKeySpec, Growth, KeyAlgorithm, Member,
    Operator, Outputs, Party, RUNBOOK_KIND, RUNBOOK_VERSION, Runbook, RunbookError, Signer,
    TokenRef, keys,
};

/// Maximum number of members in a runbook.
const MAX_MEMBERS: usize = 64;

/// Maximum number of custodians, because Shamir sharing over GF(256) has 255 non-zero
/// x-coordinates.
const MAX_CUSTODIANS: usize = 255;

/// Minimum threshold, because a threshold of one would let a single custodian act alone.
const MIN_THRESHOLD: u64 = 2;

/// Maximum length in characters of a fleet id, member name or custodian name.
const MAX_NAME_CHARS: usize = 64;

/// PKCS#11 token labels are 32 bytes, padded with spaces (CK_TOKEN_INFO.label).
const MAX_TOKEN_LABEL_BYTES: usize = 32;

/// PKCS#11 token serial numbers are 16 characters (CK_TOKEN_INFO.serialNumber).
const MAX_TOKEN_SERIAL_CHARS: usize = 16;

/// Maximum CKA_LABEL length in bytes for the fleet key and the operator key.
const MAX_KEY_LABEL_BYTES: usize = 64;

/// YAML parser settings: strict scalars, no duplicate or merge keys, small alias limits.
///
/// A real runbook has a few hundred nodes at most (255 custodians of three fields each is
/// the largest part), so the budgets below leave ample room while stopping alias bombs
/// long before they cost noticeable time or memory.
pub(super) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_events: 50_000,
            max_aliases: 100,
            max_anchors: 100,
            max_depth: 16,
            max_documents: 1,
            max_nodes: 20_000,
            max_recorded_anchor_events: 10_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 10_000,
            max_replay_stack_depth: 4,
            max_alias_expansions_per_anchor: 100,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::Error,
        strict_booleans: true,
        no_schema: true,
        reject_unsupported_tags: true,
        reject_tagged_field_names: true,
        with_snippet: false,
    }
}

/// Returns the bytes as text, or the line and column of the first invalid byte.
pub(super) fn utf8_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, RunbookError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let valid = &bytes[..error.valid_up_to()];
        // The prefix is valid UTF-8 by definition of valid_up_to.
        let valid = String::from_utf8_lossy(valid);
        let (line, column) = line_and_column(&valid, valid.len());
        RunbookError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            column,
        }
    })
}

/// Rejects any tab, including in comments and quoted strings, because none belongs in a
/// runbook.
pub(super) fn reject_tabs(text: &str, path: &Path) -> Result<(), RunbookError> {
    match text.find('\t') {
        Some(offset) => {
            let (line, column) = line_and_column(text, offset);
            Err(RunbookError::Tab {
                path: path.to_path_buf(),
                line,
                column,
            })
        }
        None => Ok(()),
    }
}

/// 1-based line and character column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (saturate(line as u64), saturate(column as u64))
}

/// Builds errors that name the runbook file.
pub(super) struct Checker<'a> {
    pub path: &'a Path,
    pub base_dir: &'a Path,
}

impl Checker<'_> {
    /// Builds an error at a value's position.
    pub fn invalid<T>(
        &self,
        field: &str,
        at: &Spanned<T>,
        message: String,
        hint: Option<&str>,
    ) -> RunbookError {
        self.invalid_at(field, Some(at.referenced), message, hint)
    }

    /// Builds an error at a location, or without one.
    pub fn invalid_at(
        &self,
        field: &str,
        at: Option<Location>,
        message: String,
        hint: Option<&str>,
    ) -> RunbookError {
        let at = at.filter(|location| location.line() > 0);
        RunbookError::Invalid {
            path: self.path.to_path_buf(),
            field: field.to_string(),
            line: at.map(|location| saturate(location.line())),
            column: at.map(|location| saturate(location.column())),
            message,
            hint: hint.map(str::to_string),
        }
    }

    /// Resolves a path value against the runbook's folder.
    pub fn resolve(&self, field: &str, value: &Spanned<String>) -> Result<PathBuf, RunbookError> {
        if value.value.is_empty() {
            return Err(self.invalid(field, value, "empty path".to_string(), None));
        }
        if value.value.chars().any(char::is_control) {
            let message = "path contains a control character".to_string();
            return Err(self.invalid(field, value, message, None));
        }
        Ok(self.base_dir.join(&value.value))
    }

    /// Checks a name used as a file or folder name: `[a-z0-9-]`, starting with a letter or
    /// digit, 1 to 64 characters.
    pub fn name(&self, field: &str, value: &Spanned<String>) -> Result<String, RunbookError> {
        let name = &value.value;
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        let valid = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && name.chars().all(allowed)
            && !name.starts_with('-');
        if !valid {
            let message = format!(
                "invalid name {name:?}; names are 1 to {MAX_NAME_CHARS} characters of a-z, 0-9 \
                 and '-', not starting with '-'"
            );
            let hint = "names become file and folder names, so they are kept to a safe alphabet";
            return Err(self.invalid(field, value, message, Some(hint)));
        }
        Ok(name.clone())
    }

    /// Checks free text: non-empty, no control characters, no surrounding spaces.
    pub fn text(&self, field: &str, value: &Spanned<String>) -> Result<String, RunbookError> {
        let text = &value.value;
        if text.trim().is_empty() {
            return Err(self.invalid(field, value, "empty value".to_string(), None));
        }
        if text.chars().any(char::is_control) {
            let message = format!("{text:?} contains a control character");
            return Err(self.invalid(field, value, message, None));
        }
        // The fleet-key document rejects these too, so the auditor would refuse to sign.
        if let Some(c) = text
            .chars()
            .find(|c| crate::bundle::document::disguising_char(*c))
        {
            let message = format!(
                "{text:?} contains the bidirectional formatting character U+{:04X}, which changes how text is shown",
                u32::from(c)
            );
            return Err(self.invalid(field, value, message, Some("remove the character")));
        }
        if text.trim() != text {
            let message = format!("{text:?} has leading or trailing spaces");
            return Err(self.invalid(field, value, message, Some("remove the spaces")));
        }
        Ok(text.clone())
    }

    /// Checks a CKA_LABEL: text of 1 to 64 bytes.
    pub fn key_label(&self, field: &str, value: &Spanned<String>) -> Result<String, RunbookError> {
        let label = self.text(field, value)?;
        if label.len() > MAX_KEY_LABEL_BYTES {
            let message = format!(
                "key label is {} bytes; at most {MAX_KEY_LABEL_BYTES} are accepted",
                label.len()
            );
            return Err(self.invalid(field, value, message, None));
        }
        Ok(label)
    }

    /// Checks a token reference: exactly one of label and serial.
    pub fn token(&self, field: &str, token: &Spanned<RawToken>) -> Result<TokenRef, RunbookError> {
        match (&token.value.label, &token.value.serial) {
            (Some(label), None) => self.token_label(&format!("{field}.label"), label),
            (None, Some(serial)) => self.token_serial(&format!("{field}.serial"), serial),
            (Some(_), Some(_)) => {
                let message = "both label and serial are set".to_string();
                Err(self.invalid(field, token, message, Some("keep exactly one of them")))
            }
            (None, None) => {
                let message = "neither label nor serial is set".to_string();
                Err(self.invalid(field, token, message, Some("set exactly one of them")))
            }
        }
    }

    fn token_label(&self, field: &str, value: &Spanned<String>) -> Result<TokenRef, RunbookError> {
        let label = self.text(field, value)?;
        if label.len() > MAX_TOKEN_LABEL_BYTES {
            let message = format!(
                "token label {label:?} is {} bytes; PKCS#11 token labels hold at most \
                 {MAX_TOKEN_LABEL_BYTES}",
                label.len()
            );
            return Err(self.invalid(field, value, message, Some("shorten the label")));
        }
        Ok(TokenRef::Label(label))
    }

    fn token_serial(&self, field: &str, value: &Spanned<String>) -> Result<TokenRef, RunbookError> {
        let serial = &value.value;
        let valid = !serial.is_empty()
            && serial.len() <= MAX_TOKEN_SERIAL_CHARS
            && serial.chars().all(|c| c.is_ascii_graphic());
        if !valid {
            let message = format!(
                "invalid token serial {serial:?}; serials are 1 to {MAX_TOKEN_SERIAL_CHARS} \
                 printable ASCII characters without spaces"
            );
            return Err(self.invalid(field, value, message, None));
        }
        Ok(TokenRef::Serial(serial.clone()))
    }
}

/// Validates the whole runbook.
pub(super) fn runbook(
    raw: RawRunbook,
    path: &Path,
    base_dir: &Path,
    sha256: String,
) -> Result<Runbook, RunbookError> {
    let checker = Checker { path, base_dir };
    check_header(&checker, &raw)?;

    let fleet = Fleet {
        id: checker.name("fleet.id", &raw.fleet.id)?,
        namespace: checker.text("fleet.namespace", &raw.fleet.namespace)?,
        epoch: epoch(&checker, &raw.fleet.epoch)?,
    };
    let default_module = match raw.defaults.as_ref().and_then(|d| d.module.as_ref()) {
        Some(module) => checker.resolve("defaults.module", module)?,
        None => PathBuf::from(DEFAULT_MODULE),
    };
    let fleet_key = FleetKeySpec {
        algorithm: algorithm(&checker, &raw.fleet_key.algorithm)?,
        label: checker.key_label("fleet_key.label", &raw.fleet_key.label)?,
        growth: match &raw.fleet_key.growth {
            Some(value) => growth(&checker, value)?,
            None => Growth::default(),
        },
    };
    let members = members(&checker, &raw.members, &default_module)?;
    let custodians = custodians(&checker, &raw.custodians)?;

    let auditor = &raw.auditor.value;
    let (public_key, public_key_source) = keys::public_key(
        &checker,
        "auditor",
        auditor.public_key_file.as_ref(),
        auditor.public_key.as_ref(),
        raw.auditor.referenced,
    )?;
    let auditor = Party {
        name: checker.text("auditor.name", &auditor.name)?,
        public_key,
        public_key_source,
    };
    let operator = operator(&checker, &raw.operator, &default_module, &members)?;
    if operator.public_key == auditor.public_key {
        let message = "the operator key is the auditor key".to_string();
        let hint = "the auditor and the operator must sign with different keys";
        return Err(checker.invalid("operator", &raw.operator, message, Some(hint)));
    }
    let outputs = outputs(&checker, &raw.outputs)?;

    Ok(Runbook {
        path: path.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        fleet,
        fleet_key,
        members,
        custodians,
        auditor,
        operator,
        outputs,
        sha256,
    })
}

fn check_header(checker: &Checker<'_>, raw: &RawRunbook) -> Result<(), RunbookError> {
    if raw.version.value != RUNBOOK_VERSION {
        let message = format!("unsupported runbook version {}", raw.version.value);
        let hint = format!("this tool reads runbook version {RUNBOOK_VERSION}");
        return Err(checker.invalid("version", &raw.version, message, Some(&hint)));
    }
    if raw.kind.value != RUNBOOK_KIND {
        let message = format!("unsupported runbook kind {:?}", raw.kind.value);
        let hint = format!(
            "the kinds are \"{RUNBOOK_KIND}\", \"retire\", \"add-member\" and \
             \"rotate-custodians\""
        );
        return Err(checker.invalid("kind", &raw.kind, message, Some(&hint)));
    }
    Ok(())
}

pub(super) fn epoch(checker: &Checker<'_>, value: &Spanned<u64>) -> Result<u64, RunbookError> {
    if value.value == 0 {
        let message = "epoch 0; epochs start at 1".to_string();
        return Err(checker.invalid("fleet.epoch", value, message, None));
    }
    Ok(value.value)
}

pub(super) fn algorithm(
    checker: &Checker<'_>,
    value: &Spanned<String>,
) -> Result<KeyAlgorithm, RunbookError> {
    match value.value.as_str() {
        "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
        "ed25519" => Ok(KeyAlgorithm::Ed25519),
        other => {
            let message = format!("unknown key algorithm {other:?}");
            let hint = "use ecdsa-p256 or ed25519";
            Err(checker.invalid("fleet_key.algorithm", value, message, Some(hint)))
        }
    }
}

fn growth(checker: &Checker<'_>, value: &Spanned<String>) -> Result<Growth, RunbookError> {
    match value.value.as_str() {
        "locked" => Ok(Growth::Locked),
        "trusted-wrap" => Ok(Growth::TrustedWrap),
        other => {
            let message = format!("unknown growth policy {other:?}");
            let hint = "use locked (no copy stays wrappable) or trusted-wrap (the origin's copy \
                        can be wrapped under security-officer-trusted keys)";
            Err(checker.invalid("fleet_key.growth", value, message, Some(hint)))
        }
    }
}

/// Remembers the first field that used each value, to report duplicates.
struct Seen {
    first: HashMap<String, String>,
}

impl Seen {
    fn new() -> Self {
        Self {
            first: HashMap::new(),
        }
    }

    /// Records `value` for `field`; returns the field that used it first, if any.
    fn insert(&mut self, value: String, field: &str) -> Option<String> {
        match self.first.get(&value) {
            Some(first) => Some(first.clone()),
            None => {
                self.first.insert(value, field.to_string());
                None
            }
        }
    }
}

pub(super) fn members(
    checker: &Checker<'_>,
    raw: &Spanned<Vec<RawMember>>,
    default_module: &Path,
) -> Result<Vec<Member>, RunbookError> {
    let count = raw.value.len();
    if count == 0 || count > MAX_MEMBERS {
        let message = format!("{count} members; a fleet has 1 to {MAX_MEMBERS}");
        return Err(checker.invalid("members", raw, message, None));
    }

    let mut names = Seen::new();
    let mut tokens = Seen::new();
    let mut members = Vec::with_capacity(count);
    for (index, raw_member) in raw.value.iter().enumerate() {
        let field = format!("members[{index}]");
        let member = member(checker, &field, raw_member, default_module, index == 0)?;

        let name_field = format!("{field}.name");
        if let Some(first) = names.insert(member.name.clone(), &name_field) {
            let message = format!(
                "duplicate member name {:?}, first used at {first}",
                member.name
            );
            return Err(checker.invalid(&name_field, &raw_member.name, message, None));
        }
        let token_field = format!("{field}.token");
        if let Some(first) = tokens.insert(member.token.to_string(), &token_field) {
            let message = format!("duplicate {}, first used at {first}", member.token);
            let hint = "each member needs its own token";
            return Err(checker.invalid(&token_field, &raw_member.token, message, Some(hint)));
        }
        members.push(member);
    }
    Ok(members)
}

pub(super) fn member(
    checker: &Checker<'_>,
    field: &str,
    raw: &RawMember,
    default_module: &Path,
    origin: bool,
) -> Result<Member, RunbookError> {
    let module = match &raw.module {
        Some(module) => checker.resolve(&format!("{field}.module"), module)?,
        None => default_module.to_path_buf(),
    };
    let erase_existing = raw.erase_existing.as_ref().is_some_and(|erase| erase.value);
    if let Some(erase) = &raw.erase_existing
        && erase.value
        && !raw.initialise.value
    {
        let message = "erase_existing is true but initialise is false".to_string();
        let hint = "erasing happens only while initialising; set initialise: true or remove \
                    erase_existing";
        let erase_field = format!("{field}.erase_existing");
        return Err(checker.invalid(&erase_field, erase, message, Some(hint)));
    }

    Ok(Member {
        name: checker.name(&format!("{field}.name"), &raw.name)?,
        site: checker.text(&format!("{field}.site"), &raw.site)?,
        module,
        token: checker.token(&format!("{field}.token"), &raw.token)?,
        initialise: raw.initialise.value,
        erase_existing,
        origin,
        attestation: match &raw.attestation {
            Some(attestation) => Some(super::attestation::attestation(
                checker,
                &format!("{field}.attestation"),
                attestation,
            )?),
            None => None,
        },
    })
}

pub(super) fn custodians(
    checker: &Checker<'_>,
    raw: &RawCustodians,
) -> Result<Custodians, RunbookError> {
    let people = &raw.people;
    let count = people.value.len();
    if count > MAX_CUSTODIANS {
        let message = format!("{count} custodians; at most {MAX_CUSTODIANS} are supported");
        let hint = "Shamir shares over GF(256) have 255 distinct x-coordinates";
        return Err(checker.invalid("custodians.people", people, message, Some(hint)));
    }
    threshold(checker, &raw.threshold, count)?;

    let mut names = Seen::new();
    let mut recipients = Seen::new();
    let mut custodians = Vec::with_capacity(count);
    for (index, person) in people.value.iter().enumerate() {
        let field = format!("custodians.people[{index}]");
        let name_field = format!("{field}.name");
        let name = checker.name(&name_field, &person.name)?;
        if let Some(first) = names.insert(name.clone(), &name_field) {
            let message = format!("duplicate custodian name {name:?}, first used at {first}");
            return Err(checker.invalid(&name_field, &person.name, message, None));
        }

        let recipient = keys::recipient(checker, &field, person)?;
        if let Some(first) = recipients.insert(keys::recipient_identity(&recipient), &field) {
            let message = format!("custodian {name:?} has the same recipient as {first}");
            let hint = "each custodian needs their own age key, or two shares go to one person";
            return Err(checker.invalid(&field, &person.name, message, Some(hint)));
        }
        custodians.push(Custodian { name, recipient });
    }

    Ok(Custodians {
        // threshold() bounds it by count, which is at most 255.
        threshold: u8::try_from(raw.threshold.value).expect("threshold is at most 255"),
        people: custodians,
    })
}

pub(super) fn threshold(
    checker: &Checker<'_>,
    value: &Spanned<u64>,
    count: usize,
) -> Result<(), RunbookError> {
    let threshold = value.value;
    let field = "custodians.threshold";
    if threshold < MIN_THRESHOLD {
        let message = format!("threshold {threshold} is below {MIN_THRESHOLD}");
        let hint = "with fewer than two shares needed, one custodian alone could recover the PINs";
        return Err(checker.invalid(field, value, message, Some(hint)));
    }
    if threshold > count as u64 {
        let message = format!("threshold {threshold} is more than the {count} custodians");
        let hint = "the PINs could never be recovered; lower the threshold or add custodians";
        return Err(checker.invalid(field, value, message, Some(hint)));
    }
    Ok(())
}

fn operator(
    checker: &Checker<'_>,
    raw: &Spanned<RawOperator>,
    default_module: &Path,
    members: &[Member],
) -> Result<Operator, RunbookError> {
    let operator = &raw.value;
    let (public_key, public_key_source) = keys::public_key(
        checker,
        "operator",
        operator.public_key_file.as_ref(),
        operator.public_key.as_ref(),
        raw.referenced,
    )?;

    let signer = &operator.signer;
    let signer = match (&signer.value.pkcs11, &signer.value.key_file) {
        (Some(pkcs11), None) => {
            let module = match &pkcs11.module {
                Some(module) => checker.resolve("operator.signer.pkcs11.module", module)?,
                None => default_module.to_path_buf(),
            };
            let token = checker.token("operator.signer.pkcs11.token", &pkcs11.token)?;
            if members
                .iter()
                .any(|member| member.token == token && member.module == module)
            {
                let message = format!("the operator signs on {token}, which is a member token");
                let hint = "member tokens are initialised by the ceremony; use a separate token";
                let field = "operator.signer.pkcs11.token";
                return Err(checker.invalid(field, &pkcs11.token, message, Some(hint)));
            }
            let key_label =
                checker.key_label("operator.signer.pkcs11.key_label", &pkcs11.key_label)?;
            Signer::Pkcs11 {
                module,
                token,
                key_label,
            }
        }
        (None, Some(key_file)) => {
            Signer::KeyFile(checker.resolve("operator.signer.key_file", key_file)?)
        }
        (Some(_), Some(_)) => {
            let message = "both pkcs11 and key_file are set".to_string();
            let hint = "keep exactly one of them";
            return Err(checker.invalid("operator.signer", signer, message, Some(hint)));
        }
        (None, None) => {
            let message = "neither pkcs11 nor key_file is set".to_string();
            let hint = "set exactly one of them";
            return Err(checker.invalid("operator.signer", signer, message, Some(hint)));
        }
    };

    Ok(Operator {
        name: checker.text("operator.name", &operator.name)?,
        public_key,
        public_key_source,
        signer,
    })
}

fn outputs(checker: &Checker<'_>, raw: &RawOutputs) -> Result<Outputs, RunbookError> {
    Ok(Outputs {
        work_dir: checker.resolve("outputs.work_dir", &raw.work_dir)?,
        shares_dir: checker.resolve("outputs.shares_dir", &raw.shares_dir)?,
        evidence_dir: checker.resolve("outputs.evidence_dir", &raw.evidence_dir)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_counts_characters() {
        let text = "a: 1\nbé: x\tz\n";
        let offset = text.find('\t').unwrap();
        assert_eq!(line_and_column(text, offset), (2, 6));
        assert_eq!(line_and_column(text, 0), (1, 1));
    }

    #[test]
    fn tabs_are_rejected_with_position() {
        let error = reject_tabs("a: 1\n\tb: 2\n", Path::new("r.yaml")).unwrap_err();
        assert!(matches!(
            error,
            RunbookError::Tab {
                line: 2,
                column: 1,
                ..
            }
        ));
    }

    /// Nine levels of ten aliases each: 10^10 scalars if expanded.
    fn alias_bomb() -> String {
        let mut text = String::from("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n");
        for level in 1..10 {
            let previous = format!("*l{}", level - 1);
            let items = [previous.as_str(); 10].join(", ");
            text.push_str(&format!("l{level}: &l{level} [{items}]\n"));
        }
        text
    }

    #[test]
    fn yaml_options_stop_alias_bomb() {
        // An untyped target accepts any shape, so only the limits can stop the expansion.
        let bomb = alias_bomb();
        let result: Result<serde_json::Value, _> =
            serde_saphyr::from_str_with_options(&bomb, yaml_options());
        let error =
            super::super::error::from_yaml(Path::new("bomb.yaml"), &bomb, &result.unwrap_err());
        assert!(
            error
                .to_string()
                .contains("exceeds the limits for a runbook"),
            "{error}"
        );
    }

    #[test]
    fn invalid_utf8_is_rejected_with_position() {
        let bytes = b"a: 1\nb: \xff\n";
        let error = utf8_text(bytes, Path::new("r.yaml")).unwrap_err();
        assert!(matches!(
            error,
            RunbookError::NotUtf8 {
                line: 2,
                column: 4,
                ..
            }
        ));
    }
}
