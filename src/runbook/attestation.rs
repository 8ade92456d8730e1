//! Validation of a member's `attestation` entry: vendor, files and verification time.

use chrono::{DateTime, Utc};
use serde_saphyr::Spanned;

use super::raw::RawAttestation;
use super::validate::Checker;
use super::{AttestationSpec, RunbookError};
use crate::attest::Vendor;

/// Most attestation files one member may name (a YubiHSM chain of key, device and
/// intermediate certificates is the longest format, at three or four).
const MAX_ATTESTATION_FILES: usize = 8;

/// Checks a member's attestation entry and resolves its files against the runbook's folder.
pub(super) fn attestation(
    checker: &Checker<'_>,
    field: &str,
    raw: &Spanned<RawAttestation>,
) -> Result<AttestationSpec, RunbookError> {
    let raw_vendor = &raw.value.vendor;
    let vendor: Vendor = raw_vendor.value.parse().map_err(|_| {
        let message = format!("unknown attestation vendor {:?}", raw_vendor.value);
        let hint = "use marvell, yubihsm2 or luna";
        checker.invalid(&format!("{field}.vendor"), raw_vendor, message, Some(hint))
    })?;

    let raw_files = &raw.value.files;
    let count = raw_files.value.len();
    if count == 0 || count > MAX_ATTESTATION_FILES {
        let message =
            format!("{count} attestation files; a member names 1 to {MAX_ATTESTATION_FILES}");
        return Err(checker.invalid(&format!("{field}.files"), raw_files, message, None));
    }
    let mut files = Vec::with_capacity(count);
    let mut names = Vec::with_capacity(count);
    for (index, file) in raw_files.value.iter().enumerate() {
        let file_field = format!("{field}.files[{index}]");
        let path = checker.resolve(&file_field, file)?;
        // Files are recorded and published under their file name, so names must differ.
        let name = path.file_name().map(|name| name.to_os_string());
        if name.is_none() || names.contains(&name) {
            let message = format!(
                "{:?} has no file name or repeats another file's name",
                file.value
            );
            let hint = "attestation files are published by file name, so each needs its own";
            return Err(checker.invalid(&file_field, file, message, Some(hint)));
        }
        names.push(name);
        files.push(path);
    }

    let verify_at = match &raw.value.verify_at {
        Some(value) => Some(utc_time(checker, &format!("{field}.verify_at"), value)?),
        None => None,
    };
    Ok(AttestationSpec {
        vendor,
        files,
        verify_at,
    })
}

fn utc_time(
    checker: &Checker<'_>,
    field: &str,
    value: &Spanned<String>,
) -> Result<DateTime<Utc>, RunbookError> {
    let text = &value.value;
    let hint = "write an RFC 3339 time in UTC, such as 2025-01-01T00:00:00Z";
    if !text.ends_with('Z') {
        let message = format!("{text:?} is not a UTC time ending in Z");
        return Err(checker.invalid(field, value, message, Some(hint)));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| {
            let message = format!("invalid time {text:?}: {error}");
            checker.invalid(field, value, message, Some(hint))
        })
}
