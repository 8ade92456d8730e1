//! Fleet-key documents, auditor statements, counter-signatures, trust files and bundle
//! verification. Builds without the HSM and age code.

pub mod attestation;
pub mod countersign;
pub mod diff;
pub mod document;
pub mod files;
pub mod keys;
#[cfg(feature = "ceremony")]
pub mod log_append;
pub mod log_entry;
pub mod log_proof;
pub mod log_trust;
pub mod signoff;
pub mod statement;
pub mod trust;
pub mod verify;
pub mod verify_log;

pub use countersign::{
    CountersignError, countersign_with_key, countersigned_message, verify_countersignature,
};
pub use document::{
    AttestationFile, AttestationRuleResult, CustodianSummary, DOCUMENT_FORMAT, DocumentError,
    FleetKeyDocument, GROWTH_LOCKED, GROWTH_TRUSTED_WRAP, KeyEntry, MemberAttestation, MemberEntry,
    document_digest,
};
pub use files::{
    AuditorSignature, Bundle, DOCUMENT_FILE_NAME, FilesError, OperatorSignature, SigningRequest,
    sign_request,
};
pub use keys::{
    FleetKeyAlgorithm, FleetPublicKey, KeyError, ed25519_fingerprint, ed25519_from_spki_pem,
    ed25519_key_file_pem, ed25519_spki_pem, fingerprint, fleet_key_from_spki_pem,
    read_ed25519_key_file,
};
pub use log_entry::{EntryError, LogEntry, check_append};
pub use log_proof::{InclusionProof, LogProof};
pub use log_trust::LogTrust;
pub use statement::{Ciphersuite, Statement, StatementError};
pub use trust::{Trust, TrustError, TrustedKey};
pub use verify::{
    Check, Report, VerifyOptions, verify_bundle_bytes, verify_bundle_bytes_with, verify_path,
    verify_path_with,
};
