//! Signing with an Ed25519 key held in a token, through CKM_EDDSA.

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::ObjectClass;
use cryptoki::session::Session;

use super::error::Context;
use super::{HsmError, Token, keys};

/// Signs `message` with the Ed25519 private key labelled `label` (pure Ed25519, no
/// context). Returns the 64-byte signature.
pub fn sign_ed25519(
    session: &Session,
    token: &Token,
    label: &str,
    message: &[u8],
) -> Result<[u8; 64], HsmError> {
    let key = keys::find_one(session, token, label, ObjectClass::PRIVATE_KEY)?;
    let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
    let signature = session
        .sign(&mechanism, key, message)
        .on(&token.label, "sign with the Ed25519 key")?;
    signature
        .try_into()
        .map_err(|bytes: Vec<u8>| HsmError::PublicKey {
            token: token.label.clone(),
            label: label.to_owned(),
            detail: format!("CKM_EDDSA returned {} bytes, expected 64", bytes.len()),
        })
}
