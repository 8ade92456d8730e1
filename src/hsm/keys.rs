//! Fleet key generation, attribute checks and public key export.

use std::collections::BTreeMap;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use p256::pkcs8::EncodePublicKey;
use serde_json::Value;

use super::error::Context;
use super::{HsmError, Token};

/// DER of the OID prime256v1 (1.2.840.10045.3.1.7), the CKA_EC_PARAMS of a P-256 key.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// DER of the OID id-Ed25519 (1.3.101.112), the CKA_EC_PARAMS of an Ed25519 key.
pub const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// DER of the printable string "edwards25519", which some tokens report instead of the OID.
const ED25519_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Algorithm of a fleet or signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// Name used in runbooks and documents.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }

    fn params(self) -> &'static [u8] {
        match self {
            KeyAlgorithm::EcdsaP256 => P256_PARAMS,
            KeyAlgorithm::Ed25519 => ED25519_PARAMS,
        }
    }

    fn generation_mechanism(self) -> Mechanism<'static> {
        match self {
            KeyAlgorithm::EcdsaP256 => Mechanism::EccKeyPairGen,
            KeyAlgorithm::Ed25519 => Mechanism::EccEdwardsKeyPairGen,
        }
    }
}

/// Whether a private key can be wrapped, and under which keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// CKA_EXTRACTABLE false: no mechanism can wrap the key, and PKCS#11 never lets it
    /// become true again.
    Never,
    /// CKA_EXTRACTABLE true and CKA_WRAP_WITH_TRUSTED false: any wrapping key will do.
    Any,
    /// CKA_EXTRACTABLE true and CKA_WRAP_WITH_TRUSTED true: only a wrapping key with
    /// CKA_TRUSTED true, which only the security officer can set. PKCS#11 never lets
    /// CKA_WRAP_WITH_TRUSTED become false again.
    TrustedOnly,
}

impl Wrapping {
    fn extractable(self) -> bool {
        self != Wrapping::Never
    }
}

/// Handles of a key pair on one token.
#[derive(Debug, Clone, Copy)]
pub struct KeyPair {
    /// Public key object.
    pub public: ObjectHandle,
    /// Private key object.
    pub private: ObjectHandle,
}

/// Returns every object on the token whose CKA_LABEL is `label`.
pub fn find_labelled(session: &Session, label: &str) -> Result<Vec<ObjectHandle>, HsmError> {
    session
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .on(label, "search objects by label")
}

/// Fails when any object labelled `label` exists on the token.
pub fn ensure_label_free(session: &Session, token: &Token, label: &str) -> Result<(), HsmError> {
    let found = find_labelled(session, label)?;
    if found.is_empty() {
        return Ok(());
    }
    Err(HsmError::KeyExists {
        token: token.label.clone(),
        label: label.to_owned(),
        count: found.len(),
    })
}

/// Returns the one object of `class` labelled `label`; fails when there are none or several.
pub fn find_one(
    session: &Session,
    token: &Token,
    label: &str,
    class: ObjectClass,
) -> Result<ObjectHandle, HsmError> {
    let found = session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .on(&token.label, "search for the key")?;
    if found.len() == 1 {
        return Ok(found[0]);
    }
    let class_name = if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else if class == ObjectClass::PUBLIC_KEY {
        "public key"
    } else {
        "secret key"
    };
    Err(HsmError::KeyCount {
        token: token.label.clone(),
        label: label.to_owned(),
        class: class_name,
        count: found.len(),
    })
}

/// Generates a key pair labelled `label` on the token, after checking that no object
/// has the label. The private key is sensitive and a token object; `wrapping` sets
/// whether replication can wrap it, and under which keys.
pub fn generate(
    session: &Session,
    token: &Token,
    algorithm: KeyAlgorithm,
    label: &str,
    id: &[u8],
    wrapping: Wrapping,
) -> Result<KeyPair, HsmError> {
    ensure_label_free(session, token, label)?;
    generate_at_free_label(session, token, algorithm, label, id, wrapping)
}

/// Generates a key pair like [`generate`], for a caller that has just made sure that no
/// object has the label, such as a run that removed the leftovers of an earlier attempt.
pub fn generate_at_free_label(
    session: &Session,
    token: &Token,
    algorithm: KeyAlgorithm,
    label: &str,
    id: &[u8],
    wrapping: Wrapping,
) -> Result<KeyPair, HsmError> {
    let public_template = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::EcParams(algorithm.params().to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let private_template = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
        Attribute::Unwrap(false),
        Attribute::Extractable(wrapping.extractable()),
        Attribute::WrapWithTrusted(wrapping == Wrapping::TrustedOnly),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
    ];
    let (public, private) = session
        .generate_key_pair(
            &algorithm.generation_mechanism(),
            &public_template,
            &private_template,
        )
        .on(&token.label, "generate the fleet key pair")?;
    Ok(KeyPair { public, private })
}

/// A public key as its token stores it, and as PEM SubjectPublicKeyInfo.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// CKA_EC_PARAMS as the token returned it.
    pub ec_params: Vec<u8>,
    /// CKA_EC_POINT as the token returned it.
    pub ec_point: Vec<u8>,
    /// The key as PEM SubjectPublicKeyInfo.
    pub spki_pem: String,
}

/// Reads the public key of `public` and returns it as PEM SubjectPublicKeyInfo.
pub fn public_key_pem(
    session: &Session,
    token: &Token,
    label: &str,
    public: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<String, HsmError> {
    read_public_key(session, token, label, public, algorithm).map(|key| key.spki_pem)
}

/// Finds the one public key labelled `label` and reads it as [`read_public_key`] does.
pub fn find_public_key(
    session: &Session,
    token: &Token,
    label: &str,
    algorithm: KeyAlgorithm,
) -> Result<PublicKey, HsmError> {
    let public = find_one(session, token, label, ObjectClass::PUBLIC_KEY)?;
    read_public_key(session, token, label, public, algorithm)
}

/// Reads CKA_EC_PARAMS and CKA_EC_POINT of `public`, checks that they name `algorithm`'s
/// curve and a point on it, and returns them with the key's PEM encoding.
pub fn read_public_key(
    session: &Session,
    token: &Token,
    label: &str,
    public: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<PublicKey, HsmError> {
    let attributes = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .on(&token.label, "read the public key")?;
    let mut params = None;
    let mut point = None;
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(value) => params = Some(value),
            Attribute::EcPoint(value) => point = Some(value),
            _ => {}
        }
    }
    let invalid = |detail: String| HsmError::PublicKey {
        token: token.label.clone(),
        label: label.to_owned(),
        detail,
    };
    let ec_params = params.ok_or_else(|| invalid("CKA_EC_PARAMS is missing".into()))?;
    let ec_point = point.ok_or_else(|| invalid("CKA_EC_POINT is missing".into()))?;
    check_params(algorithm, &ec_params).map_err(invalid)?;
    let spki_pem = spki_pem(algorithm, &ec_point).map_err(invalid)?;
    Ok(PublicKey {
        ec_params,
        ec_point,
        spki_pem,
    })
}

/// Reads the public key of `public` whatever its algorithm, which CKA_EC_PARAMS names, and
/// returns the algorithm with the key. Fails for a curve other than P-256 or Ed25519.
pub fn read_public_key_any(
    session: &Session,
    token: &Token,
    label: &str,
    public: ObjectHandle,
) -> Result<(KeyAlgorithm, PublicKey), HsmError> {
    let attributes = session
        .get_attributes(public, &[AttributeType::EcParams])
        .on(&token.label, "read the public key")?;
    let params = attributes
        .into_iter()
        .find_map(|attribute| match attribute {
            Attribute::EcParams(value) => Some(value),
            _ => None,
        });
    let algorithm = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519]
        .into_iter()
        .find(|algorithm| {
            params
                .as_deref()
                .is_some_and(|params| check_params(*algorithm, params).is_ok())
        })
        .ok_or_else(|| HsmError::PublicKey {
            token: token.label.clone(),
            label: label.to_owned(),
            detail: match &params {
                Some(params) => format!(
                    "CKA_EC_PARAMS {} names neither the P-256 nor the Ed25519 curve",
                    hex::encode(params)
                ),
                None => "CKA_EC_PARAMS is missing".into(),
            },
        })?;
    let key = read_public_key(session, token, label, public, algorithm)?;
    Ok((algorithm, key))
}

/// Encodes a CKA_EC_POINT value as PEM SubjectPublicKeyInfo.
///
/// Tokens differ in how they encode CKA_EC_POINT: a DER OCTET STRING around the point
/// (the PKCS#11 specification, and SoftHSM), the raw point, or a DER BIT STRING. All three
/// are accepted.
pub fn spki_pem(algorithm: KeyAlgorithm, ec_point: &[u8]) -> Result<String, String> {
    let point_len = match algorithm {
        KeyAlgorithm::EcdsaP256 => 65,
        KeyAlgorithm::Ed25519 => 32,
    };
    let point = unwrap_point(ec_point, point_len)?;
    let pem = match algorithm {
        KeyAlgorithm::EcdsaP256 => {
            let key = p256::PublicKey::from_sec1_bytes(point)
                .map_err(|_| "the point is not on the P-256 curve".to_owned())?;
            key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        }
        KeyAlgorithm::Ed25519 => {
            let bytes: [u8; 32] = point
                .try_into()
                .map_err(|_| "an Ed25519 point is 32 bytes".to_owned())?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "the Ed25519 point does not decode".to_owned())?;
            key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        }
    };
    pem.map_err(|error| format!("cannot encode the public key: {error}"))
}

/// Strips the DER wrapper, if any, from a CKA_EC_POINT value holding a point of `len` bytes.
fn unwrap_point(value: &[u8], len: usize) -> Result<&[u8], String> {
    if value.len() == len {
        return Ok(value);
    }
    // DER OCTET STRING: tag 0x04, short length.
    if value.len() == len + 2 && value[0] == 0x04 && usize::from(value[1]) == len {
        return Ok(&value[2..]);
    }
    // DER BIT STRING: tag 0x03, short length, zero unused bits.
    if value.len() == len + 3
        && value[0] == 0x03
        && usize::from(value[1]) == len + 1
        && value[2] == 0x00
    {
        return Ok(&value[3..]);
    }
    Err(format!(
        "CKA_EC_POINT has {} bytes, which is neither a raw {len}-byte point nor a DER OCTET STRING or BIT STRING around one",
        value.len()
    ))
}

fn check_params(algorithm: KeyAlgorithm, params: &[u8]) -> Result<(), String> {
    let accepted = match algorithm {
        KeyAlgorithm::EcdsaP256 => params == P256_PARAMS,
        KeyAlgorithm::Ed25519 => params == ED25519_PARAMS || params == ED25519_PARAMS_NAME,
    };
    if accepted {
        Ok(())
    } else {
        Err(format!(
            "CKA_EC_PARAMS {} does not name the {} curve",
            hex::encode(params),
            algorithm.name()
        ))
    }
}

/// Attributes of a private key that the evidence reports, as the HSM returned them.
const REPORTED: &[(AttributeType, &str)] = &[
    (AttributeType::Token, "CKA_TOKEN"),
    (AttributeType::Private, "CKA_PRIVATE"),
    (AttributeType::Sensitive, "CKA_SENSITIVE"),
    (AttributeType::AlwaysSensitive, "CKA_ALWAYS_SENSITIVE"),
    (AttributeType::Extractable, "CKA_EXTRACTABLE"),
    (AttributeType::NeverExtractable, "CKA_NEVER_EXTRACTABLE"),
    (AttributeType::Local, "CKA_LOCAL"),
    (AttributeType::Sign, "CKA_SIGN"),
    (AttributeType::Decrypt, "CKA_DECRYPT"),
    (AttributeType::Derive, "CKA_DERIVE"),
    (AttributeType::Unwrap, "CKA_UNWRAP"),
    (AttributeType::WrapWithTrusted, WRAP_WITH_TRUSTED),
];

/// Name of CKA_WRAP_WITH_TRUSTED in attribute maps. It is reported only for a key with
/// CKA_EXTRACTABLE true, because a non-extractable key cannot be wrapped at all. So the
/// attributes of a locked fleet read as they did before this attribute was reported.
const WRAP_WITH_TRUSTED: &str = "CKA_WRAP_WITH_TRUSTED";

/// Reads the security-relevant attributes of a private key.
pub fn read_attributes(
    session: &Session,
    token: &Token,
    private: ObjectHandle,
) -> Result<BTreeMap<String, Value>, HsmError> {
    let types: Vec<AttributeType> = REPORTED.iter().map(|(kind, _)| *kind).collect();
    let attributes = session
        .get_attributes(private, &types)
        .on(&token.label, "read key attributes")?;

    let mut map = BTreeMap::new();
    for attribute in attributes {
        let Some((_, name)) = REPORTED
            .iter()
            .find(|(kind, _)| *kind == attribute.attribute_type())
        else {
            continue;
        };
        if let Some(value) = bool_value(&attribute) {
            map.insert((*name).to_owned(), Value::Bool(value));
        }
    }
    if map.get("CKA_EXTRACTABLE") != Some(&Value::Bool(true)) {
        map.remove(WRAP_WITH_TRUSTED);
    }
    Ok(map)
}

fn bool_value(attribute: &Attribute) -> Option<bool> {
    match attribute {
        Attribute::Token(v)
        | Attribute::Private(v)
        | Attribute::Sensitive(v)
        | Attribute::AlwaysSensitive(v)
        | Attribute::Extractable(v)
        | Attribute::NeverExtractable(v)
        | Attribute::Local(v)
        | Attribute::Sign(v)
        | Attribute::Decrypt(v)
        | Attribute::Derive(v)
        | Attribute::Unwrap(v)
        | Attribute::WrapWithTrusted(v) => Some(*v),
        _ => None,
    }
}

/// Checks that the attributes read back have the values the ceremony requires.
///
/// `expect_local` is true for the key generated on this token and false for a copy.
/// `expect_wrapping` is the wrapping the key must allow at this point: it sets the
/// expected CKA_EXTRACTABLE, and for an extractable key also CKA_WRAP_WITH_TRUSTED.
pub fn check_attributes(
    attributes: &BTreeMap<String, Value>,
    token: &Token,
    label: &str,
    expect_local: bool,
    expect_wrapping: Wrapping,
) -> Result<(), HsmError> {
    let mut required: Vec<(&'static str, bool)> = vec![
        ("CKA_TOKEN", true),
        ("CKA_PRIVATE", true),
        ("CKA_SENSITIVE", true),
        ("CKA_SIGN", true),
        ("CKA_LOCAL", expect_local),
        ("CKA_EXTRACTABLE", expect_wrapping.extractable()),
    ];
    if expect_wrapping.extractable() {
        required.push((WRAP_WITH_TRUSTED, expect_wrapping == Wrapping::TrustedOnly));
    }
    for (name, expected) in required {
        let found = attributes.get(name).and_then(Value::as_bool);
        if found != Some(expected) {
            return Err(HsmError::Attribute {
                token: token.label.clone(),
                label: label.to_owned(),
                attribute: name,
                expected: expected.to_string(),
                found: found.map_or("missing".to_owned(), |v| v.to_string()),
            });
        }
    }
    Ok(())
}

/// Sets CKA_EXTRACTABLE to false, which PKCS#11 makes irreversible.
pub fn lock(session: &Session, token: &Token, private: ObjectHandle) -> Result<(), HsmError> {
    session
        .update_attributes(private, &[Attribute::Extractable(false)])
        .on(&token.label, "make the fleet key non-extractable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwrap_point_accepts_three_encodings() {
        let point = [7u8; 32];
        let mut octet = vec![0x04, 32];
        octet.extend_from_slice(&point);
        let mut bits = vec![0x03, 33, 0x00];
        bits.extend_from_slice(&point);

        assert_eq!(unwrap_point(&point, 32), Ok(&point[..]));
        assert_eq!(unwrap_point(&octet, 32), Ok(&point[..]));
        assert_eq!(unwrap_point(&bits, 32), Ok(&point[..]));
    }

    #[test]
    fn unwrap_point_rejects_wrong_lengths() {
        assert!(unwrap_point(&[0x04, 31, 1, 2], 32).is_err());
        assert!(unwrap_point(&[0u8; 33], 32).is_err());
    }

    #[test]
    fn raw_p256_point_starting_with_04_is_not_mistaken_for_der() {
        let secret = p256::SecretKey::from_slice(&[1u8; 32]).expect("valid scalar");
        let sec1 = secret.public_key().to_sec1_bytes();
        assert_eq!(sec1.len(), 65);
        let pem = spki_pem(KeyAlgorithm::EcdsaP256, &sec1).expect("raw point");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    }
}
