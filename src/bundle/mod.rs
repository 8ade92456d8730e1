//! Fleet-key documents, auditor statements, counter-signatures, trust files and bundle
//! verification. Builds without the HSM and age code.

pub mod countersign;
pub mod document;
pub mod files;
pub mod keys;
pub mod statement;
pub mod trust;
pub mod verify;

pub use countersign::{countersign_with_key, countersigned_message, verify_countersignature};
pub use document::{CustodianSummary, FleetKeyDocument, KeyEntry, MemberEntry, document_digest};
pub use files::{AuditorSignature, Bundle, OperatorSignature, SigningRequest, sign_request};
pub use keys::{FleetKeyAlgorithm, FleetPublicKey, fingerprint};
pub use statement::{Ciphersuite, Statement};
pub use trust::{Trust, TrustedKey};
pub use verify::{Check, Report, verify_bundle_bytes, verify_path};
