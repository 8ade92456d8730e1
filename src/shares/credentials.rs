//! HSM admin credentials (SO and user PINs per fleet member) and their secret encoding.

use std::collections::HashSet;
use std::fmt;

use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::error::ShareError;
use super::secret_json::to_zeroizing_json;

/// Number of characters in a generated PIN.
pub const PIN_LENGTH: usize = 24;

/// Characters a generated PIN is drawn from: digits and ASCII letters without the
/// look-alikes 0, 1, I, O, i, l and o. 55 characters, so a PIN carries about 138 bits.
pub const PIN_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz";

/// Format tag inside the secret encoding of a credential set.
const CREDENTIALS_FORMAT: &str = "fleet-ceremony-credentials-v1";

/// Number of random bytes in a credential set id.
const ID_BYTES: usize = 16;

/// Random bytes at or above this value are rejected, so that `byte % 55` is uniform.
const PIN_BYTE_LIMIT: u8 = (256 / PIN_ALPHABET.len() * PIN_ALPHABET.len()) as u8;

/// The admin credentials of one fleet member's token.
pub struct MemberCredentials {
    /// Fleet member name, as in the runbook.
    pub member: String,
    /// PKCS#11 token label of the member's HSM.
    pub token_label: String,
    /// Security Officer PIN.
    pub so_pin: SecretString,
    /// User PIN.
    pub user_pin: SecretString,
}

/// The admin credentials of every fleet member, under one random id.
///
/// This is the secret that [`split`](super::split) shares among custodians.
pub struct CredentialSet {
    /// Random identifier: 16 bytes, lowercase hex. Not secret.
    pub id: String,
    /// Credentials per fleet member.
    pub members: Vec<MemberCredentials>,
}

impl CredentialSet {
    /// Generates fresh random PINs for each `(member, token_label)` pair, under a new id.
    ///
    /// PINs are [`PIN_LENGTH`] characters drawn uniformly from [`PIN_ALPHABET`] with the
    /// operating-system CSPRNG.
    pub fn generate(members: &[(String, String)]) -> CredentialSet {
        let members = members
            .iter()
            .map(|(member, token_label)| MemberCredentials {
                member: member.clone(),
                token_label: token_label.clone(),
                so_pin: generate_pin(),
                user_pin: generate_pin(),
            })
            .collect();
        CredentialSet {
            id: generate_id(),
            members,
        }
    }

    /// Returns the same members and PINs under a new random id.
    ///
    /// A reshare uses this so that the new share set has its own id and commitment, and
    /// shares of the old set cannot be mixed in. The PINs in the HSMs stay valid.
    pub fn with_new_id(self) -> CredentialSet {
        let mut id = generate_id();
        // Equal 128-bit random ids are practically impossible; make them impossible.
        while id == self.id {
            id = generate_id();
        }
        CredentialSet {
            id,
            members: self.members,
        }
    }

    /// Encodes the set, PINs included, as compact JSON in a buffer wiped on drop.
    ///
    /// These bytes are the secret that is split into shares.
    pub fn to_secret_bytes(&self) -> Zeroizing<Vec<u8>> {
        let view = SecretView {
            format: CREDENTIALS_FORMAT,
            id: &self.id,
            members: self
                .members
                .iter()
                .map(|member| MemberView {
                    member: &member.member,
                    token_label: &member.token_label,
                    so_pin: member.so_pin.expose_secret(),
                    user_pin: member.user_pin.expose_secret(),
                })
                .collect(),
        };
        to_zeroizing_json(&view, b"").expect("serialising string fields into memory cannot fail")
    }

    /// Decodes the output of [`to_secret_bytes`](Self::to_secret_bytes) and checks it
    /// with the same rules as [`validate`](Self::validate).
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<CredentialSet, ShareError> {
        let stored: StoredSet =
            serde_json::from_slice(bytes).map_err(|error| ShareError::InvalidCredentials {
                reason: describe_json_error(&error),
            })?;
        if stored.format != CREDENTIALS_FORMAT {
            return Err(ShareError::InvalidCredentials {
                reason: format!(
                    "format is {:?}, expected {CREDENTIALS_FORMAT:?}",
                    stored.format
                ),
            });
        }

        let set = CredentialSet {
            id: stored.id,
            members: stored
                .members
                .into_iter()
                .map(|member| MemberCredentials {
                    member: member.member,
                    token_label: member.token_label,
                    so_pin: member.so_pin.0,
                    user_pin: member.user_pin.0,
                })
                .collect(),
        };
        set.validate()?;
        Ok(set)
    }

    /// Checks that the id is 32 lowercase hex digits, that there is at least one member,
    /// that member names are non-empty and unique, and that no PIN is empty.
    pub fn validate(&self) -> Result<(), ShareError> {
        let invalid = |reason: String| Err(ShareError::InvalidCredentials { reason });
        if !is_lower_hex(&self.id, 2 * ID_BYTES) {
            return invalid(format!(
                "id {:?} is not {} lowercase hex digits",
                self.id,
                2 * ID_BYTES
            ));
        }
        if self.members.is_empty() {
            return invalid("the set has no members".to_string());
        }

        let mut names = HashSet::new();
        for member in &self.members {
            if member.member.is_empty() {
                return invalid("a member has an empty name".to_string());
            }
            if !names.insert(member.member.as_str()) {
                return invalid(format!("member {:?} appears twice", member.member));
            }
            if member.so_pin.expose_secret().is_empty()
                || member.user_pin.expose_secret().is_empty()
            {
                return invalid(format!("member {:?} has an empty PIN", member.member));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for MemberCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemberCredentials")
            .field("member", &self.member)
            .field("token_label", &self.token_label)
            .field("so_pin", &"<redacted>")
            .field("user_pin", &"<redacted>")
            .finish()
    }
}

impl fmt::Debug for CredentialSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSet")
            .field("id", &self.id)
            .field("members", &self.members)
            .finish()
    }
}

/// Draws a credential set id: [`ID_BYTES`] bytes from the operating-system CSPRNG, in hex.
fn generate_id() -> String {
    let mut id_bytes = [0u8; ID_BYTES];
    OsRng.fill_bytes(&mut id_bytes);
    hex::encode(id_bytes)
}

/// Draws one PIN by rejection sampling bytes from the operating-system CSPRNG.
fn generate_pin() -> SecretString {
    let mut pin = String::with_capacity(PIN_LENGTH);
    let mut random = Zeroizing::new([0u8; 64]);
    while pin.len() < PIN_LENGTH {
        OsRng.fill_bytes(random.as_mut());
        for &byte in random.iter() {
            if byte < PIN_BYTE_LIMIT && pin.len() < PIN_LENGTH {
                let position = usize::from(byte) % PIN_ALPHABET.len();
                pin.push(char::from(PIN_ALPHABET[position]));
            }
        }
    }
    // The capacity equals the length, so the conversion to a boxed str does not copy.
    SecretString::from(pin)
}

/// Returns whether `text` is exactly `length` lowercase hex digits.
pub(super) fn is_lower_hex(text: &str, length: usize) -> bool {
    text.len() == length
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Describes a JSON parse error without quoting values, which may be secret.
pub(super) fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let names_only_a_field = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if error.is_data() && names_only_a_field {
        return message;
    }
    let kind = match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

/// Borrowed, serialisable view of a credential set, PINs exposed.
#[derive(Serialize)]
struct SecretView<'a> {
    format: &'a str,
    id: &'a str,
    members: Vec<MemberView<'a>>,
}

/// Borrowed, serialisable view of one member's credentials.
#[derive(Serialize)]
struct MemberView<'a> {
    member: &'a str,
    token_label: &'a str,
    so_pin: &'a str,
    user_pin: &'a str,
}

/// The parsed secret encoding of a credential set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSet {
    format: String,
    id: String,
    members: Vec<StoredMember>,
}

/// The parsed secret encoding of one member's credentials.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredMember {
    member: String,
    token_label: String,
    so_pin: StoredPin,
    user_pin: StoredPin,
}

/// A PIN parsed straight into a [`SecretString`], without an unwiped intermediate.
struct StoredPin(SecretString);

impl<'de> Deserialize<'de> for StoredPin {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(PinVisitor)
    }
}

/// Builds a [`StoredPin`] from a JSON string.
struct PinVisitor;

impl serde::de::Visitor<'_> for PinVisitor {
    type Value = StoredPin;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a PIN string")
    }

    fn visit_str<E: serde::de::Error>(self, pin: &str) -> Result<StoredPin, E> {
        // `From<&str>` allocates exactly `pin.len()` bytes, so nothing is reallocated.
        Ok(StoredPin(SecretString::from(pin)))
    }

    fn visit_string<E: serde::de::Error>(self, mut pin: String) -> Result<StoredPin, E> {
        let stored = StoredPin(SecretString::from(pin.as_str()));
        pin.zeroize();
        Ok(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_members() -> Vec<(String, String)> {
        vec![
            ("hsm-a".to_string(), "fleet-a".to_string()),
            ("hsm-b".to_string(), "fleet-b".to_string()),
        ]
    }

    #[test]
    fn alphabet_has_no_look_alikes() {
        assert_eq!(PIN_ALPHABET.len(), 55);
        for look_alike in b"01IOilo" {
            assert!(
                !PIN_ALPHABET.contains(look_alike),
                "{}",
                *look_alike as char
            );
        }
        let unique: HashSet<u8> = PIN_ALPHABET.iter().copied().collect();
        assert_eq!(unique.len(), PIN_ALPHABET.len());
        assert_eq!(PIN_BYTE_LIMIT, 220);
    }

    #[test]
    fn generate_makes_pins_of_the_alphabet() {
        let set = CredentialSet::generate(&sample_members());
        assert!(is_lower_hex(&set.id, 32));
        assert_eq!(set.members.len(), 2);
        assert_eq!(set.members[1].member, "hsm-b");
        assert_eq!(set.members[1].token_label, "fleet-b");
        for member in &set.members {
            for pin in [&member.so_pin, &member.user_pin] {
                let pin = pin.expose_secret();
                assert_eq!(pin.len(), PIN_LENGTH);
                assert!(pin.bytes().all(|byte| PIN_ALPHABET.contains(&byte)));
            }
        }
        let pins: HashSet<&str> = set
            .members
            .iter()
            .flat_map(|member| {
                [
                    member.so_pin.expose_secret(),
                    member.user_pin.expose_secret(),
                ]
            })
            .collect();
        assert_eq!(pins.len(), 4);
        set.validate().unwrap();
    }

    #[test]
    fn generated_pins_use_the_whole_alphabet() {
        // 200 PINs give 4,800 draws; each character is expected about 87 times.
        let mut seen = HashSet::new();
        for _ in 0..200 {
            seen.extend(generate_pin().expose_secret().bytes());
        }
        assert_eq!(seen.len(), PIN_ALPHABET.len());
    }

    #[test]
    fn secret_bytes_round_trip() {
        let set = CredentialSet::generate(&sample_members());
        let bytes = set.to_secret_bytes();
        let parsed = CredentialSet::from_secret_bytes(&bytes).unwrap();
        assert_eq!(parsed.id, set.id);
        assert_eq!(parsed.members.len(), 2);
        for (left, right) in parsed.members.iter().zip(&set.members) {
            assert_eq!(left.member, right.member);
            assert_eq!(left.token_label, right.token_label);
            assert_eq!(left.so_pin.expose_secret(), right.so_pin.expose_secret());
            assert_eq!(
                left.user_pin.expose_secret(),
                right.user_pin.expose_secret()
            );
        }
        assert_eq!(parsed.to_secret_bytes().as_slice(), bytes.as_slice());
    }

    #[test]
    fn secret_bytes_are_compact_json() {
        let set = CredentialSet::generate(&sample_members()[..1]);
        let bytes = set.to_secret_bytes();
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(text.starts_with("{\"format\":\"fleet-ceremony-credentials-v1\",\"id\":"));
        assert!(!text.contains(' '));
        assert!(!text.contains('\n'));
    }

    #[test]
    fn with_new_id_keeps_the_pins() {
        let set = CredentialSet::generate(&sample_members());
        let old_id = set.id.clone();
        let old_secret = set.to_secret_bytes();
        let renewed = set.with_new_id();
        assert_ne!(renewed.id, old_id);
        assert!(is_lower_hex(&renewed.id, 32));

        // Only the id differs in the secret encoding.
        let new_secret = renewed.to_secret_bytes();
        let expected = std::str::from_utf8(&old_secret)
            .unwrap()
            .replace(&old_id, &renewed.id);
        assert_eq!(std::str::from_utf8(&new_secret).unwrap(), expected);
    }

    #[test]
    fn debug_redacts_pins() {
        let set = CredentialSet::generate(&sample_members());
        let debug = format!("{set:?}");
        let pretty = format!("{set:#?}");
        assert!(debug.contains(&set.id));
        assert!(debug.contains("hsm-a"));
        for member in &set.members {
            for pin in [
                member.so_pin.expose_secret(),
                member.user_pin.expose_secret(),
            ] {
                assert!(!debug.contains(pin));
                assert!(!pretty.contains(pin));
            }
        }
    }

    #[test]
    fn from_secret_bytes_rejects_bad_sets() {
        let cases: [(&str, &str); 6] = [
            ("not json", "malformed JSON"),
            (
                r#"{"format":"other","id":"00112233445566778899aabbccddeeff","members":[]}"#,
                "format is",
            ),
            (
                r#"{"format":"fleet-ceremony-credentials-v1","id":"xyz","members":[]}"#,
                "lowercase hex",
            ),
            (
                r#"{"format":"fleet-ceremony-credentials-v1","id":"00112233445566778899aabbccddeeff","members":[]}"#,
                "no members",
            ),
            (
                r#"{"format":"fleet-ceremony-credentials-v1","id":"00112233445566778899aabbccddeeff","members":[{"member":"a","token_label":"t","so_pin":"x","user_pin":"y"},{"member":"a","token_label":"u","so_pin":"x","user_pin":"y"}]}"#,
                "appears twice",
            ),
            (
                r#"{"format":"fleet-ceremony-credentials-v1","id":"00112233445566778899aabbccddeeff","members":[],"extra":1}"#,
                "unknown field",
            ),
        ];
        for (input, expected) in cases {
            let error = CredentialSet::from_secret_bytes(input.as_bytes()).unwrap_err();
            assert!(error.to_string().contains(expected), "{input}: {error}");
        }
    }

    #[test]
    fn parse_error_does_not_quote_values() {
        let input = r#"{"format":"fleet-ceremony-credentials-v1","id":"00112233445566778899aabbccddeeff","members":[{"member":"a","token_label":"t","so_pin":12345678901,"user_pin":"y"}]}"#;
        let error = CredentialSet::from_secret_bytes(input.as_bytes()).unwrap_err();
        assert!(!error.to_string().contains("12345678901"), "{error}");
        assert!(error.to_string().contains("unexpected value at line 1"));
    }
}
