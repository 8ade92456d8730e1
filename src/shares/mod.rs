//! Custodian shares of the HSM admin credentials: generation, k-of-n split, age encryption,
//! recombination, resharing and login checks.

mod combine;
mod credentials;
mod error;
mod login;
mod recipients;
mod record;
mod reshare;
mod secret_json;
mod shamir;
mod split;

pub use combine::{Recovered, ShareInput, ShareSummary, combine, verify_share};
pub use credentials::{CredentialSet, MemberCredentials, PIN_ALPHABET, PIN_LENGTH};
pub use error::ShareError;
pub use login::check_logins;
pub use recipients::{
    load_identities, parse_custodian_argument, parse_recipient, read_recipient_file,
};
pub use record::{SHARE_FORMAT, ShareRecord, commitment};
pub use reshare::{Reshared, reshare, write_share_files};
pub use split::{CustodianRecipient, ShareContext, ShareFile, split};
