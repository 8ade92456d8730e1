//! The fleet-key document (`fleet-key.json`) that the auditor signs, and its digest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::keys::{FleetPublicKey, KeyError, fleet_key_from_spki_pem};

/// Value of the `format` field of a fleet-key document.
pub const DOCUMENT_FORMAT: &str = "fleet-ceremony-document-v1";

/// Value of a key entry's `growth` field for a fleet key whose copies are all
/// non-extractable. Documents leave the field out for this policy.
pub const GROWTH_LOCKED: &str = "locked";

/// Value of a key entry's `growth` field for a fleet key whose origin copy stays
/// extractable with CKA_WRAP_WITH_TRUSTED true, so that the fleet can gain members.
pub const GROWTH_TRUSTED_WRAP: &str = "trusted-wrap";

/// A fleet-key document that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The bytes are not a fleet-key document in JSON.
    #[error("fleet-key document is not valid: {source}")]
    Json {
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// The `format` field names another format.
    #[error("fleet-key document has format \"{found}\"; expected \"{DOCUMENT_FORMAT}\"")]
    Format {
        /// The format that was found.
        found: String,
    },
    /// The document lists no keys.
    #[error("fleet-key document lists no keys")]
    NoKeys,
    /// A key's SPKI PEM is not a valid fleet key.
    #[error("fleet key \"{label}\" in the document: {source}")]
    Key {
        /// Label of the key entry.
        label: String,
        /// The reason the key was rejected.
        source: KeyError,
    },
    /// A key's `growth` field names no known policy.
    #[error(
        "fleet key \"{label}\" has growth policy \"{found}\"; expected \"{GROWTH_LOCKED}\" or \"{GROWTH_TRUSTED_WRAP}\""
    )]
    Growth {
        /// Label of the key entry.
        label: String,
        /// The `growth` field.
        found: String,
    },
    /// A key's `algorithm` field differs from the algorithm of its SPKI.
    #[error("fleet key \"{label}\" is listed as \"{listed}\" but its SPKI holds an {found} key")]
    KeyAlgorithm {
        /// Label of the key entry.
        label: String,
        /// The `algorithm` field.
        listed: String,
        /// The algorithm of the SPKI.
        found: &'static str,
    },
    /// A key's `fingerprint` field differs from the SHA-256 of its SPKI DER.
    #[error(
        "fleet key \"{label}\" is listed with fingerprint {listed} but its SPKI has fingerprint {computed}"
    )]
    KeyFingerprint {
        /// Label of the key entry.
        label: String,
        /// The `fingerprint` field.
        listed: String,
        /// Hex SHA-256 of the SPKI DER.
        computed: String,
    },
    /// A field breaks a rule of the document format.
    #[error("fleet-key document field {field}: {reason}")]
    Field {
        /// The field, such as `fleet_id` or `members[1].site`.
        field: String,
        /// The rule it breaks.
        reason: String,
    },
}

/// The fleet-key document: which fleet keys the ceremony made, on which HSMs, with which
/// custodians.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetKeyDocument {
    /// Always [`DOCUMENT_FORMAT`].
    pub format: String,
    /// Identifier of the fleet.
    pub fleet_id: String,
    /// Namespace that the auditor statement binds.
    pub namespace: String,
    /// Key epoch of the fleet.
    pub epoch: u64,
    /// Time the document was made (RFC 3339, UTC).
    #[serde(with = "utc_time")]
    pub created_at: DateTime<Utc>,
    /// The fleet public keys.
    pub keys: Vec<KeyEntry>,
    /// The HSMs holding the fleet keys.
    pub members: Vec<MemberEntry>,
    /// The custodians of the backup shares.
    pub custodians: CustodianSummary,
    /// Hex SHA-256 of the ceremony transcript file.
    pub transcript_sha256: String,
    /// Hex SHA-256 of the runbook file.
    pub runbook_sha256: String,
    /// Tool name and version, as `fleet-ceremony X.Y.Z`.
    pub tool: String,
}

/// One fleet public key in the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Role of the key; `fleet` for fleet keys.
    pub role: String,
    /// Key label on the HSMs.
    pub label: String,
    /// Key algorithm: `ecdsa-p256` or `ed25519`.
    pub algorithm: String,
    /// SubjectPublicKeyInfo PEM.
    pub spki_pem: String,
    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fingerprint: String,
    /// Replication policy: absent or [`GROWTH_LOCKED`] when every copy of the private key
    /// is non-extractable, [`GROWTH_TRUSTED_WRAP`] when the origin's copy can still be
    /// wrapped under keys that the security officer marked CKA_TRUSTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<String>,
}

/// One HSM of the fleet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberEntry {
    /// Member name from the runbook.
    pub name: String,
    /// Site of the HSM.
    pub site: String,
    /// PKCS#11 token label.
    pub token_label: String,
    /// PKCS#11 token serial number.
    pub token_serial: String,
    /// PKCS#11 token model.
    pub model: String,
    /// PKCS#11 token manufacturer.
    pub manufacturer: String,
    /// Whether the vendor attested the key (false for SoftHSM).
    pub attested: bool,
    /// Key attributes as read from the HSM: attribute name to bool or string.
    pub key_attributes: BTreeMap<String, serde_json::Value>,
    /// Whether the key was generated on this HSM (rather than imported from a backup).
    pub origin: bool,
    /// The vendor attestation of the key and its verification result; absent when the
    /// runbook names no attestation files for this member (always for SoftHSM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<MemberAttestation>,
}

/// A member's vendor attestation as verified during the ceremony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberAttestation {
    /// Vendor format: `marvell`, `yubihsm2` or `luna`.
    pub vendor: String,
    /// The attestation files in the order they are verified.
    pub files: Vec<AttestationFile>,
    /// Device serial number as the attestation states it.
    pub device_serial: String,
    /// Subject names of the certificates checked, ending with the pinned root.
    pub chain: Vec<String>,
    /// Time at which certificate validity was checked (RFC 3339, UTC).
    #[serde(with = "utc_time")]
    pub verified_at: DateTime<Utc>,
    /// Outcome of each attestation rule.
    pub rules: Vec<AttestationRuleResult>,
}

/// One attestation file, by name and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationFile {
    /// File name, without folders.
    pub name: String,
    /// Hex SHA-256 of the file bytes.
    pub sha256: String,
}

/// Outcome of one attestation rule as recorded in the document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestationRuleResult {
    /// Rule name: `chain`, `key matches`, `generated on device` or `not extractable`.
    pub rule: String,
    /// [`RULE_PASS`], [`RULE_FAIL`] or [`RULE_NOT_ATTESTED`].
    pub result: String,
    /// The reason, for a failed or not attested rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Value of `result` for a rule that holds.
pub const RULE_PASS: &str = "pass";
/// Value of `result` for a rule that does not hold.
pub const RULE_FAIL: &str = "fail";
/// Value of `result` for a rule the attestation format makes no statement about.
pub const RULE_NOT_ATTESTED: &str = "not attested";

impl MemberAttestation {
    /// Records a verification report with the digests of its files.
    pub fn from_report(
        report: &crate::attest::AttestationReport,
        files: Vec<AttestationFile>,
    ) -> Self {
        use crate::attest::Outcome;

        let rules = report
            .rules
            .iter()
            .map(|result| {
                let (result_text, detail) = match &result.outcome {
                    Outcome::Pass => (RULE_PASS, None),
                    Outcome::Fail(reason) => (RULE_FAIL, Some(reason.clone())),
                    Outcome::NotAttested(reason) => (RULE_NOT_ATTESTED, Some(reason.clone())),
                };
                AttestationRuleResult {
                    rule: result.rule.name().to_owned(),
                    result: result_text.to_owned(),
                    detail,
                }
            })
            .collect();
        MemberAttestation {
            vendor: report.vendor.name().to_owned(),
            files,
            device_serial: report.device_serial.clone(),
            chain: report.chain.clone(),
            verified_at: report.verified_at,
            rules,
        }
    }

    /// Returns true when the four rules are recorded and every one passed.
    pub fn fully_attested(&self) -> bool {
        use crate::attest::Rule;

        let all_rules = [
            Rule::Chain,
            Rule::KeyMatches,
            Rule::GeneratedOnDevice,
            Rule::NotExtractable,
        ];
        all_rules.iter().all(|rule| {
            self.rules
                .iter()
                .any(|result| result.rule == rule.name() && result.result == RULE_PASS)
        }) && self.rules.iter().all(|result| result.result == RULE_PASS)
    }
}

/// The custodians who hold backup shares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustodianSummary {
    /// Number of shares needed to recover.
    pub threshold: u8,
    /// Custodian names, one share each.
    pub names: Vec<String>,
}

/// Returns SHA-256 over the document bytes exactly as stored. Readers never re-serialise
/// before hashing.
pub fn document_digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl FleetKeyDocument {
    /// Serialises the document as pretty JSON with 2-space indent and a final newline.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes =
            serde_json::to_vec_pretty(self).expect("a document with string map keys serialises");
        bytes.push(b'\n');
        bytes
    }

    /// Parses a document and checks its `format` field.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self, DocumentError> {
        let document: FleetKeyDocument =
            serde_json::from_slice(bytes).map_err(|source| DocumentError::Json { source })?;
        if document.format != DOCUMENT_FORMAT {
            return Err(DocumentError::Format {
                found: document.format,
            });
        }
        Ok(document)
    }

    /// Checks the fields against the rules of the document format in docs/bundle-format.md.
    ///
    /// The rules cover the fleet id's characters, text without control or bidirectional
    /// formatting characters (which could disguise what an auditor reads on a terminal),
    /// the `fleet` role, unique members with one origin, non-extractable copies, the
    /// custodian threshold and lowercase hex digests.
    pub fn check_fields(&self) -> Result<(), DocumentError> {
        let bad = |field: String, reason: &str| DocumentError::Field {
            field,
            reason: reason.to_owned(),
        };
        let fleet_id_ok = (1..=64).contains(&self.fleet_id.len())
            && self
                .fleet_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !fleet_id_ok {
            return Err(bad(
                "fleet_id".into(),
                "must be 1 to 64 characters of a-z, 0-9 and -",
            ));
        }

        if self.epoch == 0 {
            return Err(bad("epoch".into(), "epochs start at 1"));
        }

        let mut texts: Vec<(String, &str)> = vec![
            ("namespace".into(), &self.namespace),
            ("tool".into(), &self.tool),
        ];
        for (index, key) in self.keys.iter().enumerate() {
            if key.role != "fleet" {
                return Err(bad(format!("keys[{index}].role"), "must be \"fleet\""));
            }
            texts.push((format!("keys[{index}].label"), &key.label));
        }

        for (index, member) in self.members.iter().enumerate() {
            for (name, value) in [
                ("name", &member.name),
                ("site", &member.site),
                ("token_label", &member.token_label),
                ("token_serial", &member.token_serial),
                ("model", &member.model),
                ("manufacturer", &member.manufacturer),
            ] {
                texts.push((format!("members[{index}].{name}"), value));
            }
        }
        for (index, name) in self.custodians.names.iter().enumerate() {
            texts.push((format!("custodians.names[{index}]"), name));
        }

        for (field, value) in &texts {
            if value.is_empty() && !field.ends_with("token_serial") {
                return Err(bad(field.clone(), "must not be empty"));
            }
            if value.chars().any(disguising_char) {
                return Err(bad(
                    field.clone(),
                    "contains a control or bidirectional formatting character",
                ));
            }
        }

        self.check_members()?;
        self.check_custodians()?;

        for (field, value) in [
            ("transcript_sha256", &self.transcript_sha256),
            ("runbook_sha256", &self.runbook_sha256),
        ] {
            let hex_ok = value.len() == 64
                && value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex_ok {
                return Err(bad(field.into(), "must be 64 lowercase hex digits"));
            }
        }
        Ok(())
    }

    fn check_members(&self) -> Result<(), DocumentError> {
        let bad = |field: &str, reason: String| DocumentError::Field {
            field: field.to_owned(),
            reason,
        };
        if self.members.is_empty() {
            return Err(bad("members", "the document lists no member".into()));
        }
        let origins = self.members.iter().filter(|member| member.origin).count();
        if origins != 1 {
            return Err(bad(
                "members",
                format!("{origins} members are marked origin; exactly one generated the key"),
            ));
        }
        let mut names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(bad(
                "members",
                format!("member {:?} is listed twice", pair[0]),
            ));
        }
        let trusted_wrap = self
            .keys
            .iter()
            .any(|key| key.growth.as_deref() == Some(GROWTH_TRUSTED_WRAP));
        for (index, member) in self.members.iter().enumerate() {
            let extractable = member.key_attributes.get("CKA_EXTRACTABLE")
                == Some(&serde_json::Value::Bool(true));
            if extractable && !(member.origin && trusted_wrap) {
                return Err(bad(
                    &format!("members[{index}].key_attributes"),
                    "CKA_EXTRACTABLE is true; only the origin of a trusted-wrap fleet keeps an extractable copy".into(),
                ));
            }
        }
        Ok(())
    }

    fn check_custodians(&self) -> Result<(), DocumentError> {
        let mut names: Vec<&str> = self.custodians.names.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        if names.len() != self.custodians.names.len() {
            return Err(DocumentError::Field {
                field: "custodians.names".into(),
                reason: "a custodian is listed twice".into(),
            });
        }
        let threshold = usize::from(self.custodians.threshold);
        if threshold < 2 || threshold > names.len() {
            return Err(DocumentError::Field {
                field: "custodians.threshold".into(),
                reason: format!(
                    "is {threshold}; it must be from 2 to the {} custodians",
                    names.len()
                ),
            });
        }
        Ok(())
    }

    /// Parses every listed key and checks that its algorithm and fingerprint match the
    /// entry. Returns the keys in document order.
    pub fn check_keys(&self) -> Result<Vec<FleetPublicKey>, DocumentError> {
        if self.keys.is_empty() {
            return Err(DocumentError::NoKeys);
        }
        self.keys.iter().map(KeyEntry::check).collect()
    }
}

impl KeyEntry {
    /// Parses the SPKI PEM and checks it against the `algorithm` and `fingerprint` fields,
    /// and checks that `growth`, if present, names a known policy.
    pub fn check(&self) -> Result<FleetPublicKey, DocumentError> {
        if let Some(growth) = &self.growth
            && growth != GROWTH_LOCKED
            && growth != GROWTH_TRUSTED_WRAP
        {
            return Err(DocumentError::Growth {
                label: self.label.clone(),
                found: growth.clone(),
            });
        }
        let key = fleet_key_from_spki_pem(&self.spki_pem).map_err(|source| DocumentError::Key {
            label: self.label.clone(),
            source,
        })?;

        if key.algorithm.name() != self.algorithm {
            return Err(DocumentError::KeyAlgorithm {
                label: self.label.clone(),
                listed: self.algorithm.clone(),
                found: key.algorithm.name(),
            });
        }

        let computed = key.fingerprint();
        if computed != self.fingerprint {
            return Err(DocumentError::KeyFingerprint {
                label: self.label.clone(),
                listed: self.fingerprint.clone(),
                computed,
            });
        }
        Ok(key)
    }
}

/// Serde for RFC 3339 timestamps that must be in UTC with a `Z` suffix.
pub(crate) mod utc_time {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes `time` as RFC 3339 with `Z` and only as many fraction digits as needed.
    pub(crate) fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    /// Reads an RFC 3339 timestamp and rejects any offset other than `Z`.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if !text.ends_with('Z') {
            return Err(D::Error::custom(format!(
                "timestamp \"{text}\" is not in UTC; expected RFC 3339 ending in Z"
            )));
        }
        DateTime::parse_from_rfc3339(&text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|error| D::Error::custom(format!("invalid timestamp \"{text}\": {error}")))
    }
}

/// Returns whether `c` can change how text looks on a terminal or page without being
/// seen: control characters, and bidirectional marks, embeddings, overrides and isolates.
pub fn disguising_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a complete document with one member and one key.
    fn sample_document() -> FleetKeyDocument {
        let mut key_attributes = BTreeMap::new();
        key_attributes.insert(
            "CKA_EXTRACTABLE".to_string(),
            serde_json::Value::Bool(false),
        );
        key_attributes.insert("CKA_LABEL".to_string(), serde_json::json!("fleet-signing"));
        FleetKeyDocument {
            format: DOCUMENT_FORMAT.to_string(),
            fleet_id: "fleet-eu-1".to_string(),
            namespace: "fleet.example.com".to_string(),
            epoch: 1,
            created_at: DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            keys: vec![KeyEntry {
                role: "fleet".to_string(),
                label: "fleet-signing".to_string(),
                algorithm: "ecdsa-p256".to_string(),
                spki_pem: "-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n".to_string(),
                fingerprint: "00".repeat(32),
                growth: None,
            }],
            members: vec![MemberEntry {
                name: "hsm-a".to_string(),
                site: "site-1".to_string(),
                token_label: "fleet-a".to_string(),
                token_serial: "1234".to_string(),
                model: "SoftHSM v2".to_string(),
                manufacturer: "SoftHSM project".to_string(),
                attested: false,
                key_attributes,
                origin: true,
                attestation: None,
            }],
            custodians: CustodianSummary {
                threshold: 2,
                names: vec!["alice".to_string(), "bob".to_string(), "carol".to_string()],
            },
            transcript_sha256: "11".repeat(32),
            runbook_sha256: "22".repeat(32),
            tool: "fleet-ceremony 0.1.0".to_string(),
        }
    }

    #[test]
    fn json_round_trip() {
        let document = sample_document();
        let bytes = document.to_json_bytes();
        assert_eq!(FleetKeyDocument::from_json_bytes(&bytes).unwrap(), document);
    }

    #[test]
    fn json_is_pretty_with_final_newline() {
        let text = String::from_utf8(sample_document().to_json_bytes()).unwrap();
        assert!(text.starts_with("{\n  \"format\": \"fleet-ceremony-document-v1\",\n"));
        assert!(text.contains("\n  \"created_at\": \"2025-03-01T10:00:00Z\",\n"));
        assert!(text.ends_with("}\n"));
        assert!(!text.ends_with("\n\n"));
    }

    #[test]
    fn unknown_field_rejected() {
        let mut value = serde_json::to_value(sample_document()).unwrap();
        value["members"][0]["extra"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&value).unwrap();
        let error = FleetKeyDocument::from_json_bytes(&bytes)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `extra`"), "{error}");
    }

    #[test]
    fn document_without_attestation_field_parses() {
        let text = String::from_utf8(sample_document().to_json_bytes()).unwrap();
        assert!(!text.contains("\"attestation\""), "{text}");
        let document = FleetKeyDocument::from_json_bytes(text.as_bytes()).unwrap();
        assert_eq!(document.members[0].attestation, None);
    }

    #[test]
    fn locked_key_has_no_growth_field() {
        let text = String::from_utf8(sample_document().to_json_bytes()).unwrap();
        assert!(!text.contains("\"growth\""), "{text}");
    }

    #[test]
    fn trusted_wrap_growth_round_trips() {
        let mut document = sample_document();
        document.keys[0].growth = Some(GROWTH_TRUSTED_WRAP.to_string());
        let text = String::from_utf8(document.to_json_bytes()).unwrap();
        assert!(text.contains("\"growth\": \"trusted-wrap\""), "{text}");
        let parsed = FleetKeyDocument::from_json_bytes(text.as_bytes()).unwrap();
        assert_eq!(parsed, document);
    }

    #[test]
    fn unknown_growth_rejected_by_check() {
        let mut entry = sample_document().keys[0].clone();
        entry.growth = Some("anyone-may-wrap".to_string());
        let error = entry.check().unwrap_err();
        assert!(matches!(error, DocumentError::Growth { .. }), "{error}");
    }

    #[test]
    fn attestation_round_trip() {
        let mut document = sample_document();
        document.members[0].attestation = Some(MemberAttestation {
            vendor: "yubihsm2".into(),
            files: vec![AttestationFile {
                name: "key.pem".into(),
                sha256: "33".repeat(32),
            }],
            device_serial: "123".into(),
            chain: vec!["CN=root".into()],
            verified_at: document.created_at,
            rules: vec![AttestationRuleResult {
                rule: "chain".into(),
                result: RULE_PASS.into(),
                detail: None,
            }],
        });
        let bytes = document.to_json_bytes();
        assert_eq!(FleetKeyDocument::from_json_bytes(&bytes).unwrap(), document);
        let attestation = document.members[0].attestation.as_ref().unwrap();
        assert!(!attestation.fully_attested(), "three rules are missing");
    }

    #[test]
    fn other_format_rejected() {
        let mut document = sample_document();
        document.format = "fleet-ceremony-document-v2".to_string();
        let error = FleetKeyDocument::from_json_bytes(&document.to_json_bytes()).unwrap_err();
        assert!(matches!(error, DocumentError::Format { .. }), "{error}");
    }

    #[test]
    fn non_utc_timestamp_rejected() {
        let text = String::from_utf8(sample_document().to_json_bytes()).unwrap();
        let text = text.replace("2025-03-01T10:00:00Z", "2025-03-01T11:00:00+01:00");
        let error = FleetKeyDocument::from_json_bytes(text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("not in UTC"), "{error}");
    }

    #[test]
    fn digest_covers_exact_bytes() {
        let bytes = sample_document().to_json_bytes();
        let mut spaced = bytes.clone();
        spaced.insert(1, b' ');
        assert_ne!(document_digest(&bytes), document_digest(&spaced));
        assert_eq!(
            hex::encode(document_digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
