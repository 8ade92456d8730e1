//! The HSM layer: PKCS#11 modules, tokens, fleet keys, replication and signing, over
//! cryptoki.

mod error;
pub mod keys;
mod library;
pub mod replicate;
pub mod sign;
mod token;

pub use error::HsmError;
pub use keys::KeyAlgorithm;
pub use library::Library;
pub use token::{Token, TokenCache, TokenSelector, list as list_tokens};

/// Path of SoftHSM2's PKCS#11 module as Debian's `softhsm2` package installs it; the
/// default module when a runbook names none.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
