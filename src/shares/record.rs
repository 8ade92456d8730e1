//! The plaintext record inside each custodian's share file, and the share commitment.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::credentials::{describe_json_error, is_lower_hex};
use super::error::ShareError;
use super::secret_json::to_zeroizing_json;

/// Value of the `format` field of a share record.
pub const SHARE_FORMAT: &str = "fleet-ceremony-share-v1";

/// Domain separation prefix of the share commitment.
const COMMITMENT_PREFIX: &[u8] = b"fleet-ceremony share commitment v1\n";

/// Computes the commitment to a shared secret:
/// SHA-256 of `"fleet-ceremony share commitment v1\n"`, the credential set id, a 0x00
/// byte, then the secret.
pub fn commitment(credential_set_id: &str, secret: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(COMMITMENT_PREFIX);
    hasher.update(credential_set_id.as_bytes());
    hasher.update([0u8]);
    hasher.update(secret);
    hasher.finalize().into()
}

/// One custodian's share and the context needed to recombine it.
///
/// The record is secret because of `share`; its JSON form is returned in a
/// [`Zeroizing`] buffer and its `Debug` output omits the share.
pub struct ShareRecord {
    /// Ceremony id.
    pub ceremony: String,
    /// Fleet name.
    pub fleet: String,
    /// Id of the shared credential set.
    pub credential_set: String,
    /// Custodian this share belongs to.
    pub custodian: String,
    /// Number of shares needed to recombine.
    pub threshold: u8,
    /// Number of shares made.
    pub count: u8,
    /// x-coordinate of the share, from 1 to `count`.
    pub index: u8,
    /// The blahaj share bytes: the x-coordinate, then one y value per secret byte.
    pub share: Zeroizing<Vec<u8>>,
    /// [`commitment`] to the shared secret.
    pub commitment: [u8; 32],
}

impl ShareRecord {
    /// Encodes the record as compact JSON with a final newline, in a buffer wiped on drop.
    pub fn to_json(&self) -> Zeroizing<Vec<u8>> {
        let mut share = Zeroizing::new(String::with_capacity(base64_length(self.share.len())));
        BASE64.encode_string(self.share.as_slice(), &mut share);
        let view = RecordView {
            format: SHARE_FORMAT,
            ceremony: &self.ceremony,
            fleet: &self.fleet,
            credential_set: &self.credential_set,
            custodian: &self.custodian,
            threshold: self.threshold,
            count: self.count,
            index: self.index,
            share: &share,
            commitment: hex::encode(self.commitment),
        };
        to_zeroizing_json(&view, b"\n").expect("serialising strings and numbers cannot fail")
    }

    /// Parses a record and checks its structure.
    ///
    /// Checks that:
    /// - only known fields appear and `format` is [`SHARE_FORMAT`];
    /// - ceremony, fleet and custodian are not empty;
    /// - the credential set id is 32 and the commitment 64 lowercase hex digits;
    /// - `2 <= threshold <= count` and `1 <= index <= count`;
    /// - the share bytes start with `index` and contain at least one secret byte.
    ///
    /// It cannot check that the share lies on the committed polynomial, because only
    /// recombination shows that.
    pub fn from_json(bytes: &[u8]) -> Result<ShareRecord, ShareError> {
        let stored: StoredRecord =
            serde_json::from_slice(bytes).map_err(|error| invalid(describe_json_error(&error)))?;
        if stored.format != SHARE_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {SHARE_FORMAT:?}",
                stored.format
            )));
        }
        for (field, value) in [
            ("ceremony", &stored.ceremony),
            ("fleet", &stored.fleet),
            ("custodian", &stored.custodian),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("{field} is empty")));
            }
        }
        if !is_lower_hex(&stored.credential_set, 32) {
            return Err(invalid(format!(
                "credential_set {:?} is not 32 lowercase hex digits",
                stored.credential_set
            )));
        }
        check_numbers(stored.threshold, stored.count, stored.index)?;

        let share = stored.share.0;
        if share.len() < 2 {
            return Err(invalid("share is shorter than 2 bytes".to_string()));
        }
        if share[0] != stored.index {
            return Err(invalid(format!(
                "share x-coordinate {} differs from index {}",
                share[0], stored.index
            )));
        }
        let commitment = parse_commitment(&stored.commitment)?;

        Ok(ShareRecord {
            ceremony: stored.ceremony,
            fleet: stored.fleet,
            credential_set: stored.credential_set,
            custodian: stored.custodian,
            threshold: stored.threshold,
            count: stored.count,
            index: stored.index,
            share,
            commitment,
        })
    }
}

impl fmt::Debug for ShareRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareRecord")
            .field("ceremony", &self.ceremony)
            .field("fleet", &self.fleet)
            .field("credential_set", &self.credential_set)
            .field("custodian", &self.custodian)
            .field("threshold", &self.threshold)
            .field("count", &self.count)
            .field("index", &self.index)
            .field("share", &"<redacted>")
            .field("commitment", &hex::encode(self.commitment))
            .finish()
    }
}

/// Builds an [`ShareError::InvalidRecord`].
fn invalid(reason: String) -> ShareError {
    ShareError::InvalidRecord { reason }
}

/// Checks `2 <= threshold <= count` and `1 <= index <= count`.
fn check_numbers(threshold: u8, count: u8, index: u8) -> Result<(), ShareError> {
    if threshold < 2 {
        return Err(invalid(format!("threshold {threshold} is below 2")));
    }
    if count < threshold {
        return Err(invalid(format!(
            "count {count} is below threshold {threshold}"
        )));
    }
    if index == 0 || index > count {
        return Err(invalid(format!("index {index} is outside 1 to {count}")));
    }
    Ok(())
}

/// Parses a commitment of 64 lowercase hex digits.
fn parse_commitment(text: &str) -> Result<[u8; 32], ShareError> {
    let mut commitment = [0u8; 32];
    if !is_lower_hex(text, 64) || hex::decode_to_slice(text, &mut commitment).is_err() {
        return Err(invalid(format!(
            "commitment {text:?} is not 64 lowercase hex digits"
        )));
    }
    Ok(commitment)
}

/// Length of the padded base64 encoding of `length` bytes.
fn base64_length(length: usize) -> usize {
    length.div_ceil(3) * 4
}

/// Borrowed, serialisable view of a share record.
#[derive(Serialize)]
struct RecordView<'a> {
    format: &'a str,
    ceremony: &'a str,
    fleet: &'a str,
    credential_set: &'a str,
    custodian: &'a str,
    threshold: u8,
    count: u8,
    index: u8,
    share: &'a str,
    commitment: String,
}

/// The parsed JSON of a share record, before its checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredRecord {
    format: String,
    ceremony: String,
    fleet: String,
    credential_set: String,
    custodian: String,
    threshold: u8,
    count: u8,
    index: u8,
    share: StoredShare,
    commitment: String,
}

/// Share bytes decoded from base64 straight into a buffer wiped on drop.
struct StoredShare(Zeroizing<Vec<u8>>);

impl<'de> Deserialize<'de> for StoredShare {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ShareVisitor)
    }
}

/// Builds a [`StoredShare`] from a base64 JSON string.
struct ShareVisitor;

impl serde::de::Visitor<'_> for ShareVisitor {
    type Value = StoredShare;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a base64 share string")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<StoredShare, E> {
        // decode_vec resizes to this estimate first, so the buffer never reallocates.
        let capacity = base64::decoded_len_estimate(text.len());
        let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
        BASE64
            .decode_vec(text, &mut bytes)
            .map_err(|_| E::custom("share is not valid padded base64"))?;
        Ok(StoredShare(bytes))
    }

    fn visit_string<E: serde::de::Error>(self, mut text: String) -> Result<StoredShare, E> {
        let share = self.visit_str(&text);
        text.zeroize();
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShareRecord {
        ShareRecord {
            ceremony: "ceremony-2025-01".to_string(),
            fleet: "payments".to_string(),
            credential_set: "00112233445566778899aabbccddeeff".to_string(),
            custodian: "alice".to_string(),
            threshold: 2,
            count: 3,
            index: 2,
            share: Zeroizing::new(vec![2, 10, 20, 30, 40]),
            commitment: [7u8; 32],
        }
    }

    fn json_with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut object: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        object[field] = value;
        serde_json::to_vec(&object).unwrap()
    }

    #[test]
    fn record_json_round_trip() {
        let record = sample();
        let json = record.to_json();
        assert!(json.ends_with(b"}\n"));
        let parsed = ShareRecord::from_json(&json).unwrap();
        assert_eq!(parsed.ceremony, record.ceremony);
        assert_eq!(parsed.fleet, record.fleet);
        assert_eq!(parsed.credential_set, record.credential_set);
        assert_eq!(parsed.custodian, record.custodian);
        assert_eq!(parsed.threshold, 2);
        assert_eq!(parsed.count, 3);
        assert_eq!(parsed.index, 2);
        assert_eq!(parsed.share.as_slice(), record.share.as_slice());
        assert_eq!(parsed.commitment, record.commitment);
    }

    #[test]
    fn record_json_has_agreed_fields() {
        let object: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        assert_eq!(object["format"], "fleet-ceremony-share-v1");
        assert_eq!(object["ceremony"], "ceremony-2025-01");
        assert_eq!(object["fleet"], "payments");
        assert_eq!(object["credential_set"], "00112233445566778899aabbccddeeff");
        assert_eq!(object["custodian"], "alice");
        assert_eq!(object["threshold"], 2);
        assert_eq!(object["count"], 3);
        assert_eq!(object["index"], 2);
        assert_eq!(object["share"], "AgoUHig=");
        assert_eq!(object["commitment"], "07".repeat(32));
        assert_eq!(object.as_object().unwrap().len(), 10);
    }

    #[test]
    fn commitment_matches_definition() {
        // Independent computation of the same bytes with sha2 directly.
        let mut input = b"fleet-ceremony share commitment v1\n".to_vec();
        input.extend_from_slice(b"abcd");
        input.push(0);
        input.extend_from_slice(b"secret");
        let expected: [u8; 32] = Sha256::digest(&input).into();
        assert_eq!(commitment("abcd", b"secret"), expected);
        assert_ne!(commitment("abce", b"secret"), expected);
        assert_ne!(commitment("abcd", b"secreT"), expected);
    }

    #[test]
    fn from_json_rejects_bad_records() {
        let cases = [
            (
                "format",
                serde_json::json!("fleet-ceremony-share-v2"),
                "format is",
            ),
            ("ceremony", serde_json::json!(""), "ceremony is empty"),
            (
                "credential_set",
                serde_json::json!("ABCD"),
                "credential_set",
            ),
            ("threshold", serde_json::json!(1), "threshold 1 is below 2"),
            (
                "count",
                serde_json::json!(1),
                "count 1 is below threshold 2",
            ),
            ("index", serde_json::json!(0), "index 0 is outside"),
            ("index", serde_json::json!(4), "index 4 is outside"),
            ("index", serde_json::json!(3), "differs from index 3"),
            ("index", serde_json::json!(300), "unexpected value"),
            ("share", serde_json::json!("Ag=="), "shorter than 2 bytes"),
            (
                "share",
                serde_json::json!("not base64!"),
                "unexpected value",
            ),
            ("commitment", serde_json::json!("07"), "commitment"),
            ("extra", serde_json::json!(true), "unknown field"),
        ];
        for (field, value, expected) in cases {
            let error = ShareRecord::from_json(&json_with(field, value)).unwrap_err();
            assert!(error.to_string().contains(expected), "{field}: {error}");
        }
    }

    #[test]
    fn debug_omits_share_bytes() {
        let mut record = sample();
        record.share = Zeroizing::new(vec![2, 0xab, 0xcd, 0xef]);
        let debug = format!("{record:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains("171"));
        assert!(!debug.contains("AqvN7w"));
    }
}
