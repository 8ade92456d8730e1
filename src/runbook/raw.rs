//! Serde structs that mirror the runbook YAML as written, before validation.
//!
//! Every mapping rejects unknown fields. Scalars are wrapped in [`Spanned`] so that
//! validation errors can name the line and column of the offending value.

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// Deserializes an optional field that is present. Without it, `field: ~` would read as
/// an absent field; with it, null reaches the inner type, which rejects it with its
/// position. Absent fields still take the `#[serde(default)]` of `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// The whole runbook file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunbook {
    pub version: Spanned<u64>,
    pub kind: Spanned<String>,
    pub fleet: RawFleet,
    #[serde(default, deserialize_with = "present")]
    pub defaults: Option<RawDefaults>,
    pub fleet_key: RawFleetKey,
    pub members: Spanned<Vec<RawMember>>,
    pub custodians: RawCustodians,
    pub auditor: Spanned<RawAuditor>,
    pub operator: Spanned<RawOperator>,
    pub outputs: RawOutputs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub id: Spanned<String>,
    pub namespace: Spanned<String>,
    pub epoch: Spanned<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    #[serde(default, deserialize_with = "present")]
    pub module: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleetKey {
    pub algorithm: Spanned<String>,
    pub label: Spanned<String>,
    #[serde(default, deserialize_with = "present")]
    pub growth: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    pub name: Spanned<String>,
    pub site: Spanned<String>,
    #[serde(default, deserialize_with = "present")]
    pub module: Option<Spanned<String>>,
    pub token: Spanned<RawToken>,
    pub initialise: Spanned<bool>,
    #[serde(default, deserialize_with = "present")]
    pub erase_existing: Option<Spanned<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub attestation: Option<Spanned<RawAttestation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAttestation {
    pub vendor: Spanned<String>,
    pub files: Spanned<Vec<Spanned<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub verify_at: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    #[serde(default, deserialize_with = "present")]
    pub label: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "present")]
    pub serial: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCustodians {
    pub threshold: Spanned<u64>,
    pub people: Spanned<Vec<RawPerson>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPerson {
    pub name: Spanned<String>,
    #[serde(default, deserialize_with = "present")]
    pub recipient: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "present")]
    pub recipient_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuditor {
    pub name: Spanned<String>,
    #[serde(default, deserialize_with = "present")]
    pub public_key_file: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "present")]
    pub public_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    pub name: Spanned<String>,
    #[serde(default, deserialize_with = "present")]
    pub public_key_file: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "present")]
    pub public_key: Option<Spanned<String>>,
    pub signer: Spanned<RawSigner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigner {
    #[serde(default, deserialize_with = "present")]
    pub pkcs11: Option<RawPkcs11Signer>,
    #[serde(default, deserialize_with = "present")]
    pub key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPkcs11Signer {
    #[serde(default, deserialize_with = "present")]
    pub module: Option<Spanned<String>>,
    pub token: Spanned<RawToken>,
    pub key_label: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutputs {
    pub work_dir: Spanned<String>,
    pub shares_dir: Spanned<String>,
    pub evidence_dir: Spanned<String>,
}
