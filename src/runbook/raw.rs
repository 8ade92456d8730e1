//! Serde structs that mirror the runbook YAML as written, before validation.
//!
//! Every mapping rejects unknown fields. Scalars are wrapped in [`Spanned`] so that
//! validation errors can name the line and column of the offending value.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole runbook file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRunbook {
    pub version: Spanned<u64>,
    pub kind: Spanned<String>,
    pub fleet: RawFleet,
    #[serde(default)]
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
    #[serde(default)]
    pub module: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleetKey {
    pub algorithm: Spanned<String>,
    pub label: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMember {
    pub name: Spanned<String>,
    pub site: Spanned<String>,
    #[serde(default)]
    pub module: Option<Spanned<String>>,
    pub token: Spanned<RawToken>,
    pub initialise: Spanned<bool>,
    #[serde(default)]
    pub erase_existing: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawToken {
    #[serde(default)]
    pub label: Option<Spanned<String>>,
    #[serde(default)]
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
    #[serde(default)]
    pub recipient: Option<Spanned<String>>,
    #[serde(default)]
    pub recipient_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuditor {
    pub name: Spanned<String>,
    #[serde(default)]
    pub public_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub public_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    pub name: Spanned<String>,
    #[serde(default)]
    pub public_key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub public_key: Option<Spanned<String>>,
    pub signer: Spanned<RawSigner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigner {
    #[serde(default)]
    pub pkcs11: Option<RawPkcs11Signer>,
    #[serde(default)]
    pub key_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPkcs11Signer {
    #[serde(default)]
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
