//! Fleet-key documents, auditor statements, counter-signatures, trust files and bundle
//! verification. Builds without the HSM and age code.

pub mod countersign;
pub mod document;
pub mod files;
pub mod keys;
pub mod statement;
pub mod trust;
pub mod verify;

pub use countersign::{
    CountersignError, countersign_with_key, countersigned_message, verify_countersignature,
};
pub use document::{
    CustodianSummary, DocumentError, FleetKeyDocument, KeyEntry, MemberEntry, document_digest,
};
pub use files::{
    AuditorSignature, Bundle, FilesError, OperatorSignature, SigningRequest, sign_request,
};
pub use keys::{FleetKeyAlgorithm, FleetPublicKey, KeyError, fingerprint};
pub use statement::{Ciphersuite, Statement, StatementError};
pub use trust::{Trust, TrustError, TrustedKey};
pub use verify::{Check, Report, verify_bundle_bytes, verify_path};
