//! The HSM layer against a real SoftHSM2 token store in a temporary folder.
//!
//! SoftHSM reads its configuration once per process and must be initialised once, so all
//! tests in this binary share one token folder and use distinct token labels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cryptoki::object::ObjectClass;
use ed25519_dalek::Verifier;
use ed25519_dalek::pkcs8::DecodePublicKey;
use fleet_ceremony::hsm::keys::Wrapping;
use fleet_ceremony::hsm::replicate::{self, OriginKey, Side, TrustedWrappingKeys, WrappingKey};
use fleet_ceremony::hsm::{self, HsmError, KeyAlgorithm, Library, Token, keys, sign};
use secrecy::SecretString;

struct Store {
    _dir: tempfile::TempDir,
    library: Library,
}

fn store() -> &'static Library {
    static STORE: OnceLock<Store> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("temporary folder");
            let tokens = dir.path().join("tokens");
            std::fs::create_dir(&tokens).expect("token folder");
            let conf = dir.path().join("softhsm2.conf");
            std::fs::write(
                &conf,
                format!(
                    "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                    tokens.display()
                ),
            )
            .expect("softhsm2.conf");
            // SAFETY: set before any thread of this test binary loads SoftHSM, which
            // reads the variable once when it is initialised.
            unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };
            // Two tokens with the same label, made by another process before this one
            // loads SoftHSM, so that they are visible to it.
            for _ in 0..2 {
                let status = Command::new("softhsm2-util")
                    .args(["--init-token", "--free", "--label", "twin"])
                    .args(["--so-pin", "12345678", "--pin", "12345678"])
                    .env("SOFTHSM2_CONF", &conf)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("softhsm2-util runs");
                assert!(status.success(), "softhsm2-util failed");
            }
            let library =
                Library::load(Path::new(hsm::SOFTHSM_MODULE)).expect("SoftHSM module loads");
            Store { _dir: dir, library }
        })
        .library
}

fn pin(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

fn new_token(label: &str) -> Token {
    Token::initialise(store(), label, &pin("so-pin-1234"), &pin("user-pin-1234"))
        .expect("token initialises")
}

fn openssl_reads(pem: &str) -> String {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path: PathBuf = dir.path().join("key.pem");
    std::fs::write(&path, pem).expect("write key");
    let output = Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-text", "-in"])
        .arg(&path)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl rejected the key: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn p256_key_replicates_and_locks() {
    let origin = new_token("replicate-origin");
    let member = new_token("replicate-member");
    let origin_session = origin.login_user(&pin("user-pin-1234")).expect("login");
    let member_session = member.login_user(&pin("user-pin-1234")).expect("login");

    let pair = keys::generate(
        &origin_session,
        &origin,
        KeyAlgorithm::EcdsaP256,
        "fleet",
        b"id-1",
        Wrapping::Any,
    )
    .expect("key generates");
    let attributes = keys::read_attributes(&origin_session, &origin, pair.private).expect("read");
    keys::check_attributes(&attributes, &origin, "fleet", true, Wrapping::Any)
        .expect("as generated");
    let public_key = keys::read_public_key(
        &origin_session,
        &origin,
        "fleet",
        pair.public,
        KeyAlgorithm::EcdsaP256,
    )
    .expect("public key");
    let pem = public_key.spki_pem.clone();
    assert!(openssl_reads(&pem).contains("P-256"));

    let copy = replicate::replicate(
        &Side {
            token: &origin,
            session: &origin_session,
        },
        &Side {
            token: &member,
            session: &member_session,
        },
        &OriginKey {
            label: "fleet",
            id: b"id-1",
            private: pair.private,
            public_key: &public_key,
        },
        WrappingKey::OneTime,
    )
    .expect("replicates");
    let copy_pem = keys::public_key_pem(
        &member_session,
        &member,
        "fleet",
        copy.public,
        KeyAlgorithm::EcdsaP256,
    )
    .expect("copy public key");
    assert_eq!(copy_pem, pem);
    let copy_attributes =
        keys::read_attributes(&member_session, &member, copy.private).expect("read");
    keys::check_attributes(&copy_attributes, &member, "fleet", false, Wrapping::Never)
        .expect("copy");

    keys::lock(&origin_session, &origin, pair.private).expect("locks");
    let locked = keys::read_attributes(&origin_session, &origin, pair.private).expect("read");
    keys::check_attributes(&locked, &origin, "fleet", true, Wrapping::Never).expect("locked");

    // The fleet key pair is the only token object on the member. The transport and AES
    // keys are session objects, so once the sessions close only the key pairs are left.
    let stored = member_session
        .find_objects(&[cryptoki::object::Attribute::Token(true)])
        .expect("list token objects");
    assert_eq!(stored.len(), 2, "token objects on the member: {stored:?}");
    drop(member_session);
    drop(origin_session);
    for token in [&member, &origin] {
        let session = token.login_user(&pin("user-pin-1234")).expect("login");
        let all = session.find_objects(&[]).expect("list objects");
        assert_eq!(all.len(), 2, "objects left on {}: {all:?}", token.label);
    }
}

#[test]
fn generate_rejects_existing_label() {
    let token = new_token("duplicate-label");
    let session = token.login_user(&pin("user-pin-1234")).expect("login");
    keys::generate(
        &session,
        &token,
        KeyAlgorithm::EcdsaP256,
        "taken",
        b"1",
        Wrapping::Never,
    )
    .expect("first key");
    let error = keys::generate(
        &session,
        &token,
        KeyAlgorithm::EcdsaP256,
        "taken",
        b"2",
        Wrapping::Never,
    )
    .expect_err("second key with the same label");
    assert!(
        matches!(error, HsmError::KeyExists { count: 2, .. }),
        "{error}"
    );
}

#[test]
fn initialise_rejects_existing_label() {
    new_token("already-there");
    let error = Token::initialise(store(), "already-there", &pin("so-pin-9999"), &pin("x1234"))
        .expect_err("second initialisation");
    assert!(matches!(error, HsmError::TokenExists { .. }), "{error}");
}

#[test]
fn wrong_pin_names_token_function_and_code() {
    let token = new_token("wrong-pin");
    let error = token
        .login_user(&pin("not-the-pin"))
        .expect_err("wrong PIN");
    let text = error.to_string();
    assert!(
        text.starts_with("wrong PIN on token \"wrong-pin\""),
        "{text}"
    );
    assert!(
        text.contains("C_Login returned CKR_PIN_INCORRECT"),
        "{text}"
    );
}

#[test]
fn missing_token_is_named() {
    let error = Token::find(store(), &hsm::TokenSelector::Label("nowhere".into()))
        .expect_err("no such token");
    assert!(
        error
            .to_string()
            .contains("token with label \"nowhere\" not found")
    );
}

#[test]
fn ed25519_signs_through_ckm_eddsa() {
    let token = new_token("ed25519-signer");
    let session = token.login_user(&pin("user-pin-1234")).expect("login");
    let pair = keys::generate(
        &session,
        &token,
        KeyAlgorithm::Ed25519,
        "signer",
        b"s",
        Wrapping::Never,
    )
    .expect("Ed25519 key generates");
    let pem = keys::public_key_pem(
        &session,
        &token,
        "signer",
        pair.public,
        KeyAlgorithm::Ed25519,
    )
    .expect("public key");
    assert!(openssl_reads(&pem).contains("ED25519"));

    let signature = sign::sign_ed25519(&session, &token, "signer", b"message").expect("signs");
    let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&pem).expect("key parses");
    key.verify(
        b"message",
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .expect("signature verifies");
}

#[test]
fn find_one_rejects_missing_key() {
    let token = new_token("no-keys");
    let session = token.login_user(&pin("user-pin-1234")).expect("login");
    let error =
        keys::find_one(&session, &token, "absent", ObjectClass::PRIVATE_KEY).expect_err("no key");
    assert!(
        matches!(error, HsmError::KeyCount { count: 0, .. }),
        "{error}"
    );
}

#[test]
fn find_rejects_two_tokens_with_one_label() {
    let error = Token::find(store(), &hsm::TokenSelector::Label("twin".into()))
        .expect_err("two tokens match");
    assert!(
        matches!(error, HsmError::AmbiguousToken { count: 2, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("never picks one silently"),
        "{error}"
    );
}

#[test]
fn find_one_rejects_two_keys_with_one_label() {
    let token = new_token("two-keys");
    let session = token.login_user(&pin("user-pin-1234")).expect("login");
    let pair = keys::generate(
        &session,
        &token,
        KeyAlgorithm::EcdsaP256,
        "twin-key",
        b"a",
        Wrapping::Never,
    )
    .expect("key generates");
    // A second public key object with the same label, as another tool could leave behind.
    let attributes = session
        .get_attributes(
            pair.public,
            &[
                cryptoki::object::AttributeType::EcParams,
                cryptoki::object::AttributeType::EcPoint,
            ],
        )
        .expect("read public key");
    let mut template = vec![
        cryptoki::object::Attribute::Class(ObjectClass::PUBLIC_KEY),
        cryptoki::object::Attribute::KeyType(cryptoki::object::KeyType::EC),
        cryptoki::object::Attribute::Token(true),
        cryptoki::object::Attribute::Label(b"twin-key".to_vec()),
    ];
    template.extend(attributes);
    session.create_object(&template).expect("second object");

    let error = keys::find_one(&session, &token, "twin-key", ObjectClass::PUBLIC_KEY)
        .expect_err("two public keys");
    assert!(
        matches!(error, HsmError::KeyCount { count: 2, .. }),
        "{error}"
    );
}

/// Generates a fleet key with CKA_WRAP_WITH_TRUSTED true on a new token; returns the
/// token, a user session and the key pair.
fn trusted_wrap_origin(label: &str) -> (Token, cryptoki::session::Session, keys::KeyPair) {
    let origin = new_token(label);
    let session = origin.login_user(&pin("user-pin-1234")).expect("login");
    let pair = keys::generate(
        &session,
        &origin,
        KeyAlgorithm::EcdsaP256,
        "fleet",
        b"id-t",
        Wrapping::TrustedOnly,
    )
    .expect("key generates");
    (origin, session, pair)
}

fn one_time_aes_key(session: &cryptoki::session::Session) -> cryptoki::object::ObjectHandle {
    use cryptoki::object::Attribute;
    session
        .generate_key(
            &cryptoki::mechanism::Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Extractable(true),
            ],
        )
        .expect("AES key generates")
}

#[test]
fn trusted_only_key_rejects_untrusted_wrapping_key() {
    let (origin, session, pair) = trusted_wrap_origin("trusted-negative");
    let attributes = keys::read_attributes(&session, &origin, pair.private).expect("read");
    keys::check_attributes(&attributes, &origin, "fleet", true, Wrapping::TrustedOnly)
        .expect("extractable, wrap with trusted");
    assert_eq!(
        attributes.get("CKA_WRAP_WITH_TRUSTED"),
        Some(&serde_json::Value::Bool(true))
    );

    // A user-made AES key is not CKA_TRUSTED, so the token refuses to wrap under it.
    let aes = one_time_aes_key(&session);
    let error = session
        .wrap_key(
            &cryptoki::mechanism::Mechanism::AesKeyWrapPad,
            aes,
            pair.private,
        )
        .expect_err("wrap under an untrusted key");
    assert!(
        matches!(
            error,
            cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::KeyNotWrappable, _)
        ),
        "{error}"
    );

    // The user can neither mark a key trusted nor lift the restriction.
    let trusted = session.update_attributes(aes, &[cryptoki::object::Attribute::Trusted(true)]);
    assert!(trusted.is_err(), "the user set CKA_TRUSTED");
    let lifted = session.update_attributes(
        pair.private,
        &[cryptoki::object::Attribute::WrapWithTrusted(false)],
    );
    assert!(lifted.is_err(), "the user cleared CKA_WRAP_WITH_TRUSTED");

    // Nor does replication with a one-time key get the key out.
    let member = new_token("trusted-negative-member");
    let member_session = member.login_user(&pin("user-pin-1234")).expect("login");
    let public_key = keys::read_public_key(
        &session,
        &origin,
        "fleet",
        pair.public,
        KeyAlgorithm::EcdsaP256,
    )
    .expect("public key");
    let error = replicate::replicate(
        &Side {
            token: &origin,
            session: &session,
        },
        &Side {
            token: &member,
            session: &member_session,
        },
        &OriginKey {
            label: "fleet",
            id: b"id-t",
            private: pair.private,
            public_key: &public_key,
        },
        WrappingKey::OneTime,
    )
    .expect_err("replication under an untrusted key");
    assert!(error.to_string().contains("wrap the fleet key"), "{error}");
    // The transport key pair stays in the member's session until the session closes, and
    // nothing is stored on the token.
    let stored = member_session
        .find_objects(&[cryptoki::object::Attribute::Token(true)])
        .expect("list token objects");
    assert!(
        stored.is_empty(),
        "token objects left on the member: {stored:?}"
    );
    drop(member_session);
    let fresh_session = member.login_user(&pin("user-pin-1234")).expect("login");
    let left = fresh_session.find_objects(&[]).expect("list objects");
    assert!(
        left.is_empty(),
        "objects left after the session closed: {left:?}"
    );
}

#[test]
fn trusted_only_key_replicates_under_so_key() {
    let (origin, session, pair) = trusted_wrap_origin("trusted-origin");
    let public_key = keys::read_public_key(
        &session,
        &origin,
        "fleet",
        pair.public,
        KeyAlgorithm::EcdsaP256,
    )
    .expect("public key");
    let pem = public_key.spki_pem.clone();
    let member = new_token("trusted-member");
    let member_session = member.login_user(&pin("user-pin-1234")).expect("login");

    let trusted =
        TrustedWrappingKeys::generate(&origin, &pin("so-pin-1234"), &pin("user-pin-1234"), 1)
            .expect("the SO makes a trusted key");
    assert_eq!(trusted.handles().len(), 1);
    // The SO login invalidated the old handle of the private key.
    let private = keys::find_one(&session, &origin, "fleet", ObjectClass::PRIVATE_KEY)
        .expect("private key found again");

    let copy = replicate::replicate(
        &Side {
            token: &origin,
            session: &session,
        },
        &Side {
            token: &member,
            session: &member_session,
        },
        &OriginKey {
            label: "fleet",
            id: b"id-t",
            private,
            public_key: &public_key,
        },
        WrappingKey::Trusted(trusted.handles()[0]),
    )
    .expect("replicates under the trusted key");
    let copy_pem = keys::public_key_pem(
        &member_session,
        &member,
        "fleet",
        copy.public,
        KeyAlgorithm::EcdsaP256,
    )
    .expect("copy public key");
    assert_eq!(copy_pem, pem);
    let copy_attributes =
        keys::read_attributes(&member_session, &member, copy.private).expect("read");
    keys::check_attributes(&copy_attributes, &member, "fleet", false, Wrapping::Never)
        .expect("copy is non-extractable");
    assert!(!copy_attributes.contains_key("CKA_WRAP_WITH_TRUSTED"));

    // The origin keeps its trusted-wrap-only key, and the trusted AES key is gone.
    let origin_attributes = keys::read_attributes(&session, &origin, private).expect("read");
    keys::check_attributes(
        &origin_attributes,
        &origin,
        "fleet",
        true,
        Wrapping::TrustedOnly,
    )
    .expect("origin unchanged");
    drop(trusted);
    let secret_keys = session
        .find_objects(&[cryptoki::object::Attribute::Class(ObjectClass::SECRET_KEY)])
        .expect("list secret keys");
    assert!(secret_keys.is_empty(), "{secret_keys:?}");
}

#[test]
fn trusted_keys_need_the_so_pin() {
    let (origin, session, _) = trusted_wrap_origin("trusted-wrong-so");
    let error =
        TrustedWrappingKeys::generate(&origin, &pin("not-the-so-pin"), &pin("user-pin-1234"), 1)
            .err()
            .expect("wrong SO PIN");
    assert!(error.to_string().contains("CKR_PIN_INCORRECT"), "{error}");
    // The user is logged in again, so the session still reads private objects.
    keys::find_one(&session, &origin, "fleet", ObjectClass::PRIVATE_KEY)
        .expect("user session works");
}
