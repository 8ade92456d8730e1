//! Copying the fleet key from the origin HSM to another member under HSM-held transport
//! keys, so the private key never exists in plaintext outside an HSM.
//!
//! For each member: the member generates an RSA transport key pair whose private half
//! never leaves it; the tool copies the transport public key into the origin; the origin
//! generates a one-time AES key, wraps the fleet key under it with CKM_AES_KEY_WRAP_PAD
//! and wraps the AES key under the transport key with CKM_RSA_PKCS_OAEP; the member
//! unwraps both. RSA-OAEP carries the AES key because SoftHSM 2.6.1 wraps only secret keys
//! with RSA-OAEP, and only with SHA-1 and MGF1-SHA1.
//!
//! Transport keys and AES keys are session objects of the sessions the caller passes in.
//! They vanish when those sessions close, or when the process stops half-way, so they are
//! never stored on a token and the tool does not destroy them one by one.
//!
//! A fleet key with CKA_WRAP_WITH_TRUSTED true can be wrapped only under a key with
//! CKA_TRUSTED true, so for such a key the one-time AES keys come from
//! [`TrustedWrappingKeys`], made by the security officer, instead.

use cryptoki::error::RvError;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rand::RngCore;
use secrecy::SecretString;

use super::error::Context;
use super::keys::{self, PublicKey};
use super::{HsmError, Token};

/// RSA modulus size of transport keys, in bits.
const TRANSPORT_RSA_BITS: u64 = 3072;

/// Mechanisms that replication needs on every member, with what each is for.
pub const REPLICATION_MECHANISMS: &[(MechanismType, &str)] = &[
    (
        MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        "generate transport keys for replication",
    ),
    (
        MechanismType::RSA_PKCS_OAEP,
        "wrap the one-time AES key for replication",
    ),
    (
        MechanismType::AES_KEY_GEN,
        "generate the one-time AES key for replication",
    ),
    (
        MechanismType::AES_KEY_WRAP_PAD,
        "wrap the fleet key for replication",
    ),
    (
        MechanismType::ECDSA,
        "compare a copied key with the origin's public key",
    ),
];

/// One side of a replication: a token with a user session.
pub struct Side<'a> {
    /// The token.
    pub token: &'a Token,
    /// A session logged in as the user.
    pub session: &'a Session,
}

/// The origin's fleet key as replication needs it.
pub struct OriginKey<'a> {
    /// Key label, used for the copies too.
    pub label: &'a str,
    /// CKA_ID, used for the copies too.
    pub id: &'a [u8],
    /// The extractable private key on the origin.
    pub private: ObjectHandle,
    /// The origin's public key, read once. Copies get its CKA_EC_PARAMS and CKA_EC_POINT,
    /// and are checked against it.
    pub public_key: &'a PublicKey,
}

/// The one-time AES key under which the origin wraps the fleet key for one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrappingKey {
    /// Generated in the origin's user session for this copy. Wraps only a fleet key with
    /// CKA_WRAP_WITH_TRUSTED false.
    OneTime,
    /// One of the keys of a [`TrustedWrappingKeys`], used for this copy only. Needed for a
    /// fleet key with CKA_WRAP_WITH_TRUSTED true.
    Trusted(ObjectHandle),
}

/// Copies the origin's ECDSA P-256 fleet key to `member` under `wrapping`, checks that
/// the copy matches the origin's public key, and returns the copy's key pair. Fails
/// without changing the member when an object labelled like the key is already on it.
///
/// The copy is created non-extractable. On a mismatch the copy is destroyed. The transport
/// and AES keys stay in the sessions of `origin` and `member` until those close.
pub fn replicate(
    origin: &Side<'_>,
    member: &Side<'_>,
    key: &OriginKey<'_>,
    wrapping: WrappingKey,
) -> Result<keys::KeyPair, HsmError> {
    keys::ensure_label_free(member.session, member.token, key.label)?;
    replicate_to_free_label(origin, member, key, wrapping)
}

/// Copies the key as [`replicate`] does, for a caller that has just checked that no
/// object on `member` has the key's label, so the search is not repeated.
pub fn replicate_to_free_label(
    origin: &Side<'_>,
    member: &Side<'_>,
    key: &OriginKey<'_>,
    wrapping: WrappingKey,
) -> Result<keys::KeyPair, HsmError> {
    let transport = TransportKey::generate(origin, member)?;
    let (wrapped_key, wrapped_aes) = wrap_on_origin(origin, key, &transport, wrapping)?;
    let private = unwrap_on_member(member, key, &transport, &wrapped_key, &wrapped_aes)?;
    let public = store_public_key(member, key)?;
    let pair = keys::KeyPair { public, private };
    crate::fault::kill_point(&format!("mid-replication-{}", member.token.label));

    if let Err(error) = check_copy(member, key.public_key, private) {
        // A copy that does not match must not stay on the token.
        let _ = member.session.destroy_object(private);
        let _ = member.session.destroy_object(public);
        return Err(error);
    }
    Ok(pair)
}

/// Transport key pair on the member, with its public half imported into the origin. All
/// three objects are session objects.
struct TransportKey {
    member_private: ObjectHandle,
    origin_public: ObjectHandle,
}

impl TransportKey {
    /// Generates the pair on the member and imports its public half into the origin.
    fn generate(origin: &Side<'_>, member: &Side<'_>) -> Result<TransportKey, HsmError> {
        let public_template = [
            Attribute::Token(false),
            Attribute::Wrap(true),
            Attribute::Encrypt(false),
            Attribute::Verify(false),
            Attribute::ModulusBits(TRANSPORT_RSA_BITS.into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
        ];
        let private_template = [
            Attribute::Token(false),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Unwrap(true),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
        ];
        let (member_public, member_private) = member
            .session
            .generate_key_pair(
                &Mechanism::RsaPkcsKeyPairGen,
                &public_template,
                &private_template,
            )
            .on(&member.token.label, "generate a transport key")?;
        let origin_public = import_public(origin, member, member_public)?;
        Ok(TransportKey {
            member_private,
            origin_public,
        })
    }
}

/// Creates a session copy of the member's transport public key `member_public` on the
/// origin, and returns its handle there.
fn import_public(
    origin: &Side<'_>,
    member: &Side<'_>,
    member_public: ObjectHandle,
) -> Result<ObjectHandle, HsmError> {
    let attributes = member
        .session
        .get_attributes(
            member_public,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .on(&member.token.label, "read the transport public key")?;
    let mut template = vec![
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::RSA),
        Attribute::Token(false),
        Attribute::Wrap(true),
        Attribute::Encrypt(false),
        Attribute::Verify(false),
    ];
    template.extend(attributes.into_iter().filter(|attribute| {
        matches!(
            attribute,
            Attribute::Modulus(_) | Attribute::PublicExponent(_)
        )
    }));
    origin
        .session
        .create_object(&template)
        .on(&origin.token.label, "import the member's transport key")
}

fn oaep() -> Mechanism<'static> {
    Mechanism::RsaPkcsOaep(PkcsOaepParams::new(
        MechanismType::SHA1,
        PkcsMgfType::MGF1_SHA1,
        PkcsOaepSource::empty(),
    ))
}

/// Template of a one-time AES wrapping key: a session object that wraps and nothing else,
/// and is itself extractable so that RSA-OAEP can carry it to the member.
fn aes_template(trusted: bool) -> Vec<Attribute> {
    let mut template = vec![
        Attribute::Token(false),
        Attribute::ValueLen(32.into()),
        Attribute::Wrap(true),
        Attribute::Unwrap(false),
        Attribute::Encrypt(false),
        Attribute::Decrypt(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(true),
    ];
    if trusted {
        // The security officer can create public objects only.
        template.push(Attribute::Private(false));
        template.push(Attribute::Trusted(true));
    }
    template
}

/// Wraps the fleet key on the origin; returns (wrapped fleet key, wrapped AES key).
fn wrap_on_origin(
    origin: &Side<'_>,
    key: &OriginKey<'_>,
    transport: &TransportKey,
    wrapping: WrappingKey,
) -> Result<(Vec<u8>, Vec<u8>), HsmError> {
    let label = &origin.token.label;
    let aes = match wrapping {
        WrappingKey::OneTime => origin
            .session
            .generate_key(&Mechanism::AesKeyGen, &aes_template(false))
            .on(label, "generate a one-time AES key")?,
        WrappingKey::Trusted(handle) => handle,
    };
    let wrapped_key = origin
        .session
        .wrap_key(&Mechanism::AesKeyWrapPad, aes, key.private)
        .on(label, "wrap the fleet key")?;
    let wrapped_aes = origin
        .session
        .wrap_key(&oaep(), transport.origin_public, aes)
        .on(label, "wrap the one-time AES key")?;
    Ok((wrapped_key, wrapped_aes))
}

fn unwrap_on_member(
    member: &Side<'_>,
    key: &OriginKey<'_>,
    transport: &TransportKey,
    wrapped_key: &[u8],
    wrapped_aes: &[u8],
) -> Result<ObjectHandle, HsmError> {
    let label = &member.token.label;
    let aes_template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(false),
        Attribute::Unwrap(true),
        Attribute::Wrap(false),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
    ];
    let aes = member
        .session
        .unwrap_key(
            &oaep(),
            transport.member_private,
            wrapped_aes,
            &aes_template,
        )
        .on(label, "unwrap the one-time AES key")?;

    let key_template = [
        Attribute::Class(ObjectClass::PRIVATE_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
        Attribute::Label(key.label.as_bytes().to_vec()),
        Attribute::Id(key.id.to_vec()),
    ];
    member
        .session
        .unwrap_key(&Mechanism::AesKeyWrapPad, aes, wrapped_key, &key_template)
        .on(label, "unwrap the fleet key")
}

/// Creates the fleet public key on the member from the attributes the origin returned.
fn store_public_key(member: &Side<'_>, key: &OriginKey<'_>) -> Result<ObjectHandle, HsmError> {
    let template = [
        Attribute::Class(ObjectClass::PUBLIC_KEY),
        Attribute::KeyType(KeyType::EC),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::Label(key.label.as_bytes().to_vec()),
        Attribute::Id(key.id.to_vec()),
        Attribute::EcParams(key.public_key.ec_params.clone()),
        Attribute::EcPoint(key.public_key.ec_point.clone()),
    ];
    member
        .session
        .create_object(&template)
        .on(&member.token.label, "store the fleet public key")
}

/// One-time AES keys with CKA_TRUSTED true on the origin, one per copy, for a fleet key
/// with CKA_WRAP_WITH_TRUSTED true.
///
/// Only the security officer can set CKA_TRUSTED, and one application cannot be logged in
/// as the SO and the user at once. So [`TrustedWrappingKeys::generate`] logs the user out
/// of the origin, which ends the login of every session this process has on the token.
/// It then logs in as the SO, generates the keys as public session objects, because the
/// SO cannot create private objects, logs out, and logs in as the user again. The keys
/// belong to this value's session and vanish when it is dropped.
///
/// Handles of private objects found before `generate` are invalid afterwards (SoftHSM
/// 2.6.1 returns CKR_OBJECT_HANDLE_INVALID for them), so callers find them again.
pub struct TrustedWrappingKeys {
    /// Never read, but it must stay open: the keys are its session objects.
    _session: Session,
    handles: Vec<ObjectHandle>,
}

impl TrustedWrappingKeys {
    /// Generates `count` trusted AES keys on `token` as described on the type, and leaves
    /// the process logged in as the user on `token`.
    pub fn generate(
        token: &Token,
        so_pin: &SecretString,
        user_pin: &SecretString,
        count: usize,
    ) -> Result<TrustedWrappingKeys, HsmError> {
        let label = &token.label;
        let session = token.open_session()?;
        match session.logout() {
            Ok(()) | Err(cryptoki::error::Error::Pkcs11(RvError::UserNotLoggedIn, _)) => {}
            Err(error) => return Err(HsmError::from_cryptoki(label, "log out the user", error)),
        }

        let generated = generate_as_so(&session, token, so_pin, count);
        // Log in as the user again even when the SO step failed, so the caller's sessions
        // keep working and the error below is the one that counts.
        let relogin = session
            .login(UserType::User, Some(user_pin))
            .on(label, "log in as user after the security officer step");
        let handles = generated?;
        relogin?;
        tracing::debug!(token = %label, keys = handles.len(), "generated trusted wrapping keys");
        Ok(TrustedWrappingKeys {
            _session: session,
            handles,
        })
    }

    /// Returns the key handles, one per copy.
    pub fn handles(&self) -> &[ObjectHandle] {
        &self.handles
    }
}

/// Logs in as the SO on `session`, generates `count` trusted AES keys and logs out.
fn generate_as_so(
    session: &Session,
    token: &Token,
    so_pin: &SecretString,
    count: usize,
) -> Result<Vec<ObjectHandle>, HsmError> {
    let label = &token.label;
    session
        .login(UserType::So, Some(so_pin))
        .on(label, "log in as security officer")?;
    let mut handles = Vec::with_capacity(count);
    let mut result = Ok(());
    for _ in 0..count {
        match session
            .generate_key(&Mechanism::AesKeyGen, &aes_template(true))
            .on(label, "generate a trusted one-time AES key")
        {
            Ok(handle) => handles.push(handle),
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    let logout = session.logout().on(label, "log out the security officer");
    result.and(logout).map(|()| handles)
}

/// Signs a random challenge with the copy and verifies it with the origin's public key.
/// The copy's public key cannot be read from its private key object, so a signature is
/// how the tool proves the two halves belong together.
pub fn check_copy(
    member: &Side<'_>,
    origin_public: &PublicKey,
    copy: ObjectHandle,
) -> Result<(), HsmError> {
    let mismatch = || HsmError::ReplicaMismatch {
        token: member.token.label.clone(),
    };
    let verifying_key =
        <p256::ecdsa::VerifyingKey as p256::pkcs8::DecodePublicKey>::from_public_key_pem(
            &origin_public.spki_pem,
        )
        .map_err(|_| mismatch())?;

    let mut challenge = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut challenge);
    let signature = member
        .session
        .sign(&Mechanism::Ecdsa, copy, &challenge)
        .on(&member.token.label, "sign a challenge with the copied key")?;
    let signature = p256::ecdsa::Signature::from_slice(&signature).map_err(|_| mismatch())?;
    verifying_key
        .verify_prehash(&challenge, &signature)
        .map_err(|_| mismatch())
}
