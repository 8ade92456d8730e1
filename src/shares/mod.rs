//! Custodian shares of the HSM admin credentials: generation, k-of-n split, age encryption.

mod combine;
mod credentials;
mod error;
mod recipients;
mod record;
mod secret_json;
mod shamir;
mod split;

pub use combine::{Recovered, ShareInput, ShareSummary, combine, verify_share};
pub use credentials::{CredentialSet, MemberCredentials, PIN_ALPHABET, PIN_LENGTH};
pub use error::ShareError;
pub use recipients::{load_identities, parse_recipient};
pub use record::{SHARE_FORMAT, ShareRecord, commitment};
pub use split::{CustodianRecipient, ShareContext, ShareFile, split};
