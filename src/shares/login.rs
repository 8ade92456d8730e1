//! Checking recovered credentials against the HSMs: one user login per member token.

use std::path::Path;

use crate::hsm::{Library, Token, TokenSelector};

use super::credentials::{CredentialSet, MemberCredentials};
use super::error::ShareError;

/// Logs in as the user on each member's token with the recovered user PIN, then logs out.
///
/// The module at `module` is loaded once; SoftHSM reads `SOFTHSM2_CONF` from this process's
/// environment. Every token is first looked up by the label recorded in the credentials,
/// so a missing or ambiguous token is reported before any PIN is used. The logins then run
/// in member order, and `on_success` is called after each one. The first failed login
/// stops the check: it is not retried, and the remaining tokens are not tried, because a
/// wrong PIN counts against each token's retry limit.
///
/// It checks the user PIN only. The SO PIN is not tried, because a failed SO login can
/// lock the token's administration for good.
pub fn check_logins(
    module: &Path,
    credentials: &CredentialSet,
    mut on_success: impl FnMut(&MemberCredentials),
) -> Result<(), ShareError> {
    let library = Library::load(module).map_err(|error| ShareError::Module(Box::new(error)))?;

    let mut tokens = Vec::with_capacity(credentials.members.len());
    for member in &credentials.members {
        let selector = TokenSelector::Label(member.token_label.clone());
        let token = Token::find(&library, &selector).map_err(|error| ShareError::TokenLookup {
            member: member.member.clone(),
            token: member.token_label.clone(),
            error: Box::new(error),
        })?;
        tokens.push(token);
    }

    for (position, (member, token)) in credentials.members.iter().zip(&tokens).enumerate() {
        if let Err(error) = token.check_user_login(&member.user_pin) {
            return Err(ShareError::LoginFailed {
                member: member.member.clone(),
                token: member.token_label.clone(),
                unchecked: credentials.members[position + 1..]
                    .iter()
                    .map(|later| later.member.clone())
                    .collect(),
                error: Box::new(error),
            });
        }
        tracing::debug!(member = %member.member, token = %token.label, "user PIN logs in");
        on_success(member);
    }
    Ok(())
}
