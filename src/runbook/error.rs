//! Runbook errors with file, line and column, and the translation of YAML parser errors.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::MessageFormatter;

/// A runbook that cannot be read, parsed or validated.
///
/// Lines and columns are `u32`, which keeps the error small; runbooks are at most 1 MiB.
///
/// Every variant names the file it concerns (the runbook, or a file the runbook refers to)
/// and, where known, the 1-based line and column. Display renders
/// `file:line:column: message` with a `hint:` line when there is a next step.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunbookError {
    /// The file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is larger than a runbook may be.
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes, or a lower bound.
        size: u64,
    },
    /// The file is not valid UTF-8.
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// Line of the first invalid byte.
        line: u32,
        /// Column (in characters) of the first invalid byte.
        column: u32,
    },
    /// The file contains a tab character.
    Tab {
        /// The file.
        path: PathBuf,
        /// Line of the first tab.
        line: u32,
        /// Column (in characters) of the first tab.
        column: u32,
    },
    /// The YAML parser or the mapping onto the runbook fields failed.
    Yaml {
        /// The file.
        path: PathBuf,
        /// Line, where the parser reported one.
        line: Option<u32>,
        /// Column, where the parser reported one.
        column: Option<u32>,
        /// Description of the problem.
        message: String,
        /// Suggested next step.
        hint: Option<String>,
    },
    /// A value parsed but is not acceptable.
    Invalid {
        /// The file that contains the value.
        path: PathBuf,
        /// Field path in the runbook, such as `members[2].token.label`.
        field: String,
        /// Line of the value, where known.
        line: Option<u32>,
        /// Column of the value, where known.
        column: Option<u32>,
        /// Description of the problem.
        message: String,
        /// Suggested next step.
        hint: Option<String>,
    },
}

impl RunbookError {
    /// Returns the file that the error concerns.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::TooLarge { path, .. }
            | Self::NotUtf8 { path, .. }
            | Self::Tab { path, .. }
            | Self::Yaml { path, .. }
            | Self::Invalid { path, .. } => path,
        }
    }

    /// Returns the 1-based line and column, where known. The column can be unknown while the
    /// line is known.
    pub fn position(&self) -> Option<(u32, Option<u32>)> {
        match self {
            Self::NotUtf8 { line, column, .. } | Self::Tab { line, column, .. } => {
                Some((*line, Some(*column)))
            }
            Self::Yaml { line, column, .. } | Self::Invalid { line, column, .. } => {
                line.map(|line| (line, *column))
            }
            Self::Read { .. } | Self::TooLarge { .. } => None,
        }
    }

    /// Returns the field path of a validation error.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl fmt::Display for RunbookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())?;
        if let Some((line, column)) = self.position() {
            write!(f, ":{line}")?;
            if let Some(column) = column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        match self {
            Self::Read { source, .. } => write!(f, "cannot read the file: {source}"),
            Self::TooLarge { size, .. } => write!(
                f,
                "the file is {size} bytes, more than the {} bytes a runbook may have\n\
                 hint: check that this is the runbook; real runbooks are a few kilobytes",
                super::MAX_RUNBOOK_BYTES
            ),
            Self::NotUtf8 { .. } => {
                write!(f, "invalid UTF-8\nhint: save the runbook as UTF-8 text")
            }
            Self::Tab { .. } => write!(
                f,
                "tab character\nhint: YAML indentation must use spaces; replace tabs with spaces"
            ),
            Self::Yaml { message, hint, .. } => write_message(f, message, hint.as_deref()),
            Self::Invalid {
                field,
                message,
                hint,
                ..
            } => {
                write!(f, "{field}: ")?;
                write_message(f, message, hint.as_deref())
            }
        }
    }
}

fn write_message(f: &mut fmt::Formatter<'_>, message: &str, hint: Option<&str>) -> fmt::Result {
    write!(f, "{message}")?;
    if let Some(hint) = hint {
        write!(f, "\nhint: {hint}")?;
    }
    Ok(())
}

impl std::error::Error for RunbookError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Translates a serde-saphyr error into a [`RunbookError::Yaml`] with our wording.
pub(super) fn from_yaml(path: &Path, text: &str, error: &serde_saphyr::Error) -> RunbookError {
    let inner = innermost(error);
    let location = error.location().filter(|location| location.line() > 0);
    let (mut message, hint) = describe(inner);
    // Value errors name the expected type only, so the key of the line is added.
    let value_error = ["invalid ", "unquoted value", "value is null"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    let key = location.and_then(|location| key_on_line(text, location.line()));
    if let Some(key) = key.filter(|_| value_error) {
        message = format!("{message} (key {key:?})");
    }
    RunbookError::Yaml {
        path: path.to_path_buf(),
        line: location.map(|location| saturate(location.line())),
        column: location.map(|location| saturate(location.column())),
        message,
        hint,
    }
}

/// Returns the mapping key written on line `line` (1-based) of `text`, such as `epoch` in
/// `  epoch: "one"` or `name` in `  - name: x`.
fn key_on_line(text: &str, line: u64) -> Option<&str> {
    let index = usize::try_from(line.checked_sub(1)?).ok()?;
    let content = text.lines().nth(index)?.trim_start();
    let content = content.strip_prefix("- ").unwrap_or(content).trim_start();
    let (key, _) = content.split_once(':')?;
    let key = key.trim_end();
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    plain.then_some(key)
}

/// Narrows a parser position to `u32`; a runbook of at most 1 MiB never reaches the limit.
pub(super) fn saturate(position: u64) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

fn innermost(error: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match error {
        serde_saphyr::Error::WithSnippet { error, .. } => innermost(error),
        serde_saphyr::Error::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

const QUOTE_HINT: &str = "quote the value to keep it as text";

fn describe(error: &serde_saphyr::Error) -> (String, Option<String>) {
    use serde_saphyr::Error as E;
    match error {
        E::DuplicateMappingKey { key, .. } => {
            let message = match key {
                Some(key) => format!("duplicate key {key:?} in mapping"),
                None => "duplicate key in mapping".to_string(),
            };
            let hint = "a key may appear once in each mapping; remove or merge the repeated entry";
            (message, Some(hint.to_string()))
        }
        E::SerdeUnknownField {
            field, expected, ..
        } => {
            let hint = match closest(field, expected) {
                Some(name) => format!("did you mean \"{name}\"?"),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            (format!("unknown field {field:?}"), Some(hint))
        }
        E::SerdeMissingField { field, .. } => (format!("missing field {field:?}"), None),
        E::InvalidBooleanStrict { .. } => (
            "invalid boolean".to_string(),
            Some("write true or false; YAML 1.1 spellings such as yes, no, on and off are not accepted".to_string()),
        ),
        E::QuotingRequired { value, .. } => (
            format!("unquoted value {value:?} would be read as a number or boolean, not as text"),
            Some(format!("{QUOTE_HINT}, for example \"{value}\"")),
        ),
        E::NullIntoString { .. } => (
            "value is null (empty, ~ or null) where text is expected".to_string(),
            Some("write the value, and quote it if the text itself is ~ or null".to_string()),
        ),
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => {
            let detail = escaped(error);
            (
                format!("the YAML exceeds the limits for a runbook: {detail}"),
                Some("write the values out instead of nesting anchors and aliases".to_string()),
            )
        }
        E::MergeKeyNotAllowed { .. } => (
            "merge keys (<<) are not accepted in a runbook".to_string(),
            Some("write the entries out".to_string()),
        ),
        E::MultipleDocuments { .. } => (
            "the file holds more than one YAML document".to_string(),
            Some("a runbook is a single document; remove the extra `---` section".to_string()),
        ),
        other => (escaped(other), None),
    }
}

/// Returns the parser's own message, with control characters escaped.
fn escaped(error: &serde_saphyr::Error) -> String {
    serde_saphyr::UserMessageFormatter
        .format_message(error)
        .escape_debug()
        .to_string()
}

/// Returns the expected field name nearest to `field`, if it is a plausible misspelling.
fn closest<'a>(field: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|name| (edit_distance(field, name), *name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("initialize", "initialise"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("label", "label"), 0);
    }

    #[test]
    fn closest_suggests_near_names_only() {
        let expected = ["label", "serial"];
        assert_eq!(closest("lable", &expected), Some("label"));
        assert_eq!(closest("module", &expected), None);
    }

    #[test]
    fn display_shows_position_field_and_hint() {
        let error = RunbookError::Invalid {
            path: PathBuf::from("demo.yaml"),
            field: "members[2].token.label".to_string(),
            line: Some(12),
            column: Some(14),
            message: "too long".to_string(),
            hint: Some("shorten it".to_string()),
        };
        assert_eq!(
            error.to_string(),
            "demo.yaml:12:14: members[2].token.label: too long\nhint: shorten it"
        );
    }

    #[test]
    fn display_without_position() {
        let error = RunbookError::TooLarge {
            path: PathBuf::from("big.yaml"),
            size: 2_000_000,
        };
        assert!(
            error
                .to_string()
                .starts_with("big.yaml: the file is 2000000 bytes")
        );
    }
}
