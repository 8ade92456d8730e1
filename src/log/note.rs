//! Signed notes and their Ed25519 keys (C2SP signed-note v1.0.0).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Largest note this module parses, in bytes. A checkpoint with 16 Ed25519 signatures is
/// under 2 KiB.
pub const MAX_NOTE_LEN: usize = 64 * 1024;

/// Most signature lines this module accepts in one note (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Prefix of each signature line: em dash and space.
pub(crate) const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Signature type byte of Ed25519 note signatures.
pub const TYPE_ED25519: u8 = 0x01;

/// Signature type byte of timestamped Ed25519 checkpoint cosignatures.
pub const TYPE_COSIGNATURE: u8 = 0x04;

/// A failed parse or check of a note or note key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name is empty or contains a space or a plus sign.
    #[error("invalid key name {name:?}: it must be non-empty, without spaces or '+'")]
    InvalidKeyName {
        /// The rejected name.
        name: String,
    },
    /// A verifier or signer key string is malformed.
    #[error("malformed {kind} key: {reason}")]
    MalformedKey {
        /// "verifier" or "signer".
        kind: &'static str,
        /// What is wrong, never containing key material.
        reason: String,
    },
    /// A key uses a signature type this module does not implement.
    #[error("unsupported signature type 0x{0:02x} in note key")]
    UnsupportedKeyType(u8),
    /// The key ID in a key string does not match its name and public key.
    #[error(
        "key ID {stated:08x} of key {name} does not match its public key (expected {computed:08x})"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key ID in the string.
        stated: u32,
        /// The key ID computed from name and public key.
        computed: u32,
    },
    /// The note is not a well-formed signed note.
    #[error("malformed signed note: {0}")]
    Malformed(String),
    /// A signature from a known key did not verify.
    #[error("signature by {name} ({key_id:08x}) does not verify")]
    BadSignature {
        /// Key name of the signature line.
        name: String,
        /// Key ID of the signature line.
        key_id: u32,
    },
    /// No signature line came from any of the keys given.
    #[error("note has no signature from a known key{hint}")]
    NoKnownSignature {
        /// Names of the keys that did sign, as a hint line.
        hint: String,
    },
}

/// Returns the signed-note key ID: the first four bytes of
/// SHA-256(name || 0x0A || type || public key), big-endian.
pub fn key_id(name: &str, signature_type: u8, public_key: &[u8]) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([signature_type]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Checks that `name` is a valid key name: non-empty, no Unicode spaces, no '+'.
pub fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::InvalidKeyName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn check_key_type(signature_type: u8) -> Result<(), NoteError> {
    match signature_type {
        TYPE_ED25519 | TYPE_COSIGNATURE => Ok(()),
        other => Err(NoteError::UnsupportedKeyType(other)),
    }
}

/// An Ed25519 verifier key in the text form `<name>+<hex key ID>+<base64(type || key)>`.
///
/// Type 0x01 keys verify plain note signatures; type 0x04 keys verify cosignatures.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    signature_type: u8,
    key_id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Builds the verifier key for `key` under `name` with the given signature type.
    pub fn new(name: &str, signature_type: u8, key: VerifyingKey) -> Result<Self, NoteError> {
        check_key_name(name)?;
        check_key_type(signature_type)?;
        Ok(Self {
            name: name.to_owned(),
            signature_type,
            key_id: key_id(name, signature_type, key.as_bytes()),
            key,
        })
    }

    /// Parses a verifier key string; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason: &str| NoteError::MalformedKey {
            kind: "verifier",
            reason: reason.to_owned(),
        };
        // The base64 key is the rest of the line and may itself contain `+`.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected <name>+<key ID>+<key>"));
        };
        check_key_name(name)?;
        let stated = parse_key_id(id_hex).ok_or_else(|| malformed("key ID is not 8 hex digits"))?;
        let bytes = STANDARD
            .decode(key_b64)
            .map_err(|_| malformed("key is not valid base64"))?;
        let (&signature_type, public) = bytes
            .split_first()
            .ok_or_else(|| malformed("key is empty"))?;
        check_key_type(signature_type)?;
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| malformed("Ed25519 public key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| malformed("Ed25519 public key is not a valid point"))?;
        let parsed = Self::new(name, signature_type, key)?;
        if parsed.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                computed: parsed.key_id,
            });
        }
        Ok(parsed)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Returns the signature type byte (0x01 or 0x04).
    pub fn signature_type(&self) -> u8 {
        self.signature_type
    }

    /// Returns the Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks the signature bytes of one signature line (after the key ID) over `text`,
    /// using `verify_strict`. Type 0x04 signatures carry a timestamp, which is returned.
    pub(crate) fn verify_line(&self, text: &str, signature: &[u8]) -> Option<Option<u64>> {
        match self.signature_type {
            TYPE_COSIGNATURE => {
                let (time, ed25519) = signature.split_at_checked(8)?;
                let time = u64::from_be_bytes(time.try_into().ok()?);
                let signature = ed25519_dalek::Signature::from_slice(ed25519).ok()?;
                let message = super::cosignature::signed_message(text, time);
                self.key.verify_strict(&message, &signature).ok()?;
                Some(Some(time))
            }
            _ => {
                let signature = ed25519_dalek::Signature::from_slice(signature).ok()?;
                self.key.verify_strict(text.as_bytes(), &signature).ok()?;
                Some(None)
            }
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = vec![self.signature_type];
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(bytes)
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

fn parse_key_id(hex_id: &str) -> Option<u32> {
    if hex_id.len() != 8 || !hex_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(hex_id, 16).ok()
}

/// An Ed25519 signer key in the text form `PRIVATE+KEY+<name>+<hex key ID>+<base64(type ||
/// 32-byte seed)>`. Its `Debug` output shows the name and key ID only.
#[derive(Clone)]
pub struct SignerKey {
    verifier: VerifierKey,
    signing: SigningKey,
}

impl SignerKey {
    /// Builds a signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, signature_type: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        let signing = SigningKey::from_bytes(seed);
        let verifier = VerifierKey::new(name, signature_type, signing.verifying_key())?;
        Ok(Self { verifier, signing })
    }

    /// Generates a new signer key from the operating system's random number generator.
    #[cfg(feature = "ceremony")]
    pub fn generate(name: &str, signature_type: u8) -> Result<Self, NoteError> {
        use rand::RngCore;
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(seed.as_mut());
        Self::from_seed(name, signature_type, &seed)
    }

    /// Parses a signer key string; surrounding whitespace is ignored. Messages never
    /// contain key material.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let malformed = |reason: &str| NoteError::MalformedKey {
            kind: "signer",
            reason: reason.to_owned(),
        };
        // The base64 key is the rest of the line and may itself contain `+`.
        let mut parts = text.trim().splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(id_hex), Some(key_b64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(malformed("expected PRIVATE+KEY+<name>+<key ID>+<key>"));
        };
        let stated = parse_key_id(id_hex).ok_or_else(|| malformed("key ID is not 8 hex digits"))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(key_b64)
                .map_err(|_| malformed("key is not valid base64"))?,
        );
        let (&signature_type, seed) = bytes
            .split_first()
            .ok_or_else(|| malformed("key is empty"))?;
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.try_into()
                .map_err(|_| malformed("Ed25519 seed is not 32 bytes"))?,
        );
        let parsed = Self::from_seed(name, signature_type, &seed)?;
        if parsed.key_id() != stated {
            return Err(NoteError::KeyIdMismatch {
                name: name.to_owned(),
                stated,
                computed: parsed.key_id(),
            });
        }
        Ok(parsed)
    }

    /// Encodes the signer key string. The result is secret.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(vec![self.verifier.signature_type]);
        bytes.extend_from_slice(self.signing.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.verifier.name,
            self.verifier.key_id,
            STANDARD.encode(bytes.as_slice())
        ))
    }

    /// Writes the signer key (mode 0600) and its verifier key (mode 0644) to new files, each
    /// ending in a newline.
    ///
    /// Neither file may exist, and both paths are checked before either file is written.
    /// When the verifier key cannot be written, the signer key file written just before is
    /// removed again, so a failure leaves no key file behind.
    #[cfg(feature = "ceremony")]
    pub fn write_files(
        &self,
        signer_path: &std::path::Path,
        verifier_path: &std::path::Path,
    ) -> Result<(), crate::fsutil::WriteError> {
        crate::fsutil::check_absent(signer_path)?;
        crate::fsutil::check_absent(verifier_path)?;

        let mut secret = self.to_text();
        secret.push('\n');
        crate::fsutil::write_new(signer_path, secret.as_bytes(), true)?;
        let public = format!("{}\n", self.verifier);
        if let Err(error) = crate::fsutil::write_new(verifier_path, public.as_bytes(), false) {
            // write_new created the signer key file, so removing it deletes no earlier file.
            if let Err(remove_error) = std::fs::remove_file(signer_path) {
                tracing::warn!(
                    path = %signer_path.display(),
                    error = %remove_error,
                    "cannot remove the signer key file after a failed write"
                );
            }
            return Err(error);
        }
        Ok(())
    }

    /// Returns the matching verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.verifier.name
    }

    /// Returns the key ID.
    pub fn key_id(&self) -> u32 {
        self.verifier.key_id
    }

    /// Signs `text` as a plain Ed25519 note signature (type 0x01 keys).
    pub fn sign_text(&self, text: &str) -> NoteSignature {
        let signature = self.signing.sign(text.as_bytes());
        NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.key_id,
            signature: signature.to_bytes().to_vec(),
        }
    }

    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("name", &self.verifier.name)
            .field("key_id", &format_args!("{:08x}", self.verifier.key_id))
            .finish_non_exhaustive()
    }
}

/// One signature line of a note: key name, key ID and signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key ID.
    pub key_id: u32,
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line, without its final newline.
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let malformed = |reason: &str| NoteError::Malformed(reason.to_owned());
        let rest = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or_else(|| malformed("signature line does not start with an em dash and space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("signature line has no space after the key name"))?;
        check_key_name(name).map_err(|_| malformed("signature line has an invalid key name"))?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| malformed("signature is not valid base64"))?;
        if bytes.len() < 5 {
            return Err(malformed("signature is shorter than 5 bytes"));
        }
        let (id, signature) = bytes.split_at(4);
        Ok(Self {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([id[0], id[1], id[2], id[3]]),
            signature: signature.to_vec(),
        })
    }

    /// Encodes the signature line, with its final newline.
    pub fn to_line(&self) -> String {
        let mut bytes = self.key_id.to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.signature);
        format!(
            "{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(bytes)
        )
    }
}

/// A signed note: text ending in a newline, then a blank line, then signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

/// The verified signature lines of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Key names and IDs of the signatures that verified, in note order.
    pub keys: Vec<(String, u32)>,
    /// Timestamps of verified cosignatures, in the same order; `None` for plain signatures.
    pub timestamps: Vec<Option<u64>>,
}

impl Note {
    /// Builds a note from its text, which must end in a newline, contain no other control
    /// characters and contain no blank line at its end.
    pub fn new(text: &str, signatures: Vec<NoteSignature>) -> Result<Self, NoteError> {
        check_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Parses a signed note. Checks the format only, not the signatures.
    pub fn parse(bytes: &[u8]) -> Result<Self, NoteError> {
        let malformed = |reason: &str| NoteError::Malformed(reason.to_owned());
        if bytes.len() > MAX_NOTE_LEN {
            return Err(malformed("note is larger than 64 KiB"));
        }
        let message = std::str::from_utf8(bytes).map_err(|_| malformed("note is not UTF-8"))?;
        if message.chars().any(|c| c < ' ' && c != '\n') {
            return Err(malformed("note contains a control character"));
        }
        let split = message
            .rfind("\n\n")
            .ok_or_else(|| malformed("note has no blank line before its signatures"))?;
        let text = &message[..=split];
        let block = &message[split + 2..];
        if block.is_empty() {
            return Err(malformed("note has no signature lines"));
        }
        let lines = block
            .strip_suffix('\n')
            .ok_or_else(|| malformed("note does not end in a newline"))?;
        let mut signatures = Vec::new();
        for line in lines.split('\n') {
            if signatures.len() == MAX_SIGNATURES {
                return Err(malformed("note has more than 100 signatures"));
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Self::new(text, signatures)
    }

    /// Returns the note text, including its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Returns the signature lines.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Appends a signature line.
    pub fn add_signature(&mut self, signature: NoteSignature) {
        self.signatures.push(signature);
    }

    /// Encodes the note: text, blank line, signature lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.text.clone();
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.to_line());
        }
        out.into_bytes()
    }

    /// Checks the signatures made by `keys`.
    ///
    /// Lines whose name and key ID match none of `keys` are ignored. Every line that does
    /// match must verify, and at least one must. Does not check what the text says.
    pub fn verify(&self, keys: &[&VerifierKey]) -> Result<Verified, NoteError> {
        let mut verified = Verified {
            keys: Vec::new(),
            timestamps: Vec::new(),
        };
        for line in &self.signatures {
            let Some(key) = keys
                .iter()
                .find(|key| key.name == line.name && key.key_id == line.key_id)
            else {
                continue;
            };
            let timestamp = key
                .verify_line(&self.text, &line.signature)
                .ok_or_else(|| NoteError::BadSignature {
                    name: line.name.clone(),
                    key_id: line.key_id,
                })?;
            verified.keys.push((line.name.clone(), line.key_id));
            verified.timestamps.push(timestamp);
        }
        if verified.keys.is_empty() {
            let signers: Vec<String> = self
                .signatures
                .iter()
                .map(|line| format!("{}+{:08x}", line.name, line.key_id))
                .collect();
            return Err(NoteError::NoKnownSignature {
                hint: format!(
                    "\nhint: the note is signed by {}; check the verifier key",
                    signers.join(", ")
                ),
            });
        }
        Ok(verified)
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    let malformed = |reason: &str| NoteError::Malformed(reason.to_owned());
    if !text.ends_with('\n') {
        return Err(malformed("note text does not end in a newline"));
    }
    if text.ends_with("\n\n") || text == "\n" {
        return Err(malformed("note text ends with a blank line"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(malformed("note text contains a control character"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The verifier key and signed note from the "Example" section of C2SP signed-note.
    const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

    fn signer(name: &str) -> SignerKey {
        SignerKey::from_seed(name, TYPE_ED25519, &[7u8; 32]).unwrap()
    }

    #[test]
    fn spec_example_verifies() {
        let key = VerifierKey::parse(SPEC_VKEY).unwrap();
        assert_eq!(key.to_string(), SPEC_VKEY);
        let note = Note::parse(SPEC_NOTE.as_bytes()).unwrap();
        assert_eq!(note.text(), "This is an example message.\n");
        let verified = note.verify(&[&key]).unwrap();
        assert_eq!(
            verified.keys,
            vec![("example.com/foo".to_owned(), 0x530d903a)]
        );
        assert_eq!(note.to_bytes(), SPEC_NOTE.as_bytes());
    }

    #[test]
    fn signer_key_round_trip() {
        let key = signer("log.example/a");
        let text = key.to_text();
        assert!(text.starts_with("PRIVATE+KEY+log.example/a+"));
        let parsed = SignerKey::parse(&text).unwrap();
        assert_eq!(parsed.verifier(), key.verifier());
        let vkey = key.verifier().to_string();
        assert_eq!(VerifierKey::parse(&vkey).unwrap(), *key.verifier());
        assert_eq!(
            key.key_id(),
            key_id(
                "log.example/a",
                TYPE_ED25519,
                key.verifier().public_key().as_bytes()
            )
        );
    }

    #[test]
    fn signer_debug_hides_seed() {
        let key = signer("log.example/a");
        let debug = format!("{key:?}");
        let secret = key.to_text();
        let seed_b64 = secret.rsplit('+').next().unwrap();
        assert!(!debug.contains(seed_b64));
        assert!(debug.contains("log.example/a"));
    }

    #[test]
    fn key_id_mismatch_rejected() {
        let vkey = SPEC_VKEY.replace("530d903a", "530d903b");
        assert!(matches!(
            VerifierKey::parse(&vkey),
            Err(NoteError::KeyIdMismatch { .. })
        ));
        let other_name = SPEC_VKEY.replace("example.com/foo", "example.com/bar");
        assert!(matches!(
            VerifierKey::parse(&other_name),
            Err(NoteError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn malformed_keys_rejected() {
        for bad in [
            "",
            "a+b",
            "a b+530d903a+AQ==",
            "a+zzzzzzzz+AQ==",
            "a+530d903a+!!",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(SignerKey::parse("PUBLIC+KEY+a+00000000+AQ==").is_err());
        assert_eq!(
            check_key_name("a+b"),
            Err(NoteError::InvalidKeyName {
                name: "a+b".to_owned()
            })
        );
    }

    #[test]
    fn sign_and_verify() {
        let key = signer("log.example/a");
        let mut note = Note::new("hello\nworld\n", vec![]).unwrap();
        note.add_signature(key.sign_text(note.text()));
        let parsed = Note::parse(&note.to_bytes()).unwrap();
        assert!(parsed.verify(&[key.verifier()]).is_ok());
    }

    #[test]
    fn wrong_signature_rejected() {
        let key = signer("log.example/a");
        let mut note = Note::new("hello\n", vec![]).unwrap();
        let mut line = key.sign_text("other\n");
        note.add_signature(line.clone());
        assert_eq!(
            note.verify(&[key.verifier()]),
            Err(NoteError::BadSignature {
                name: "log.example/a".to_owned(),
                key_id: key.key_id()
            })
        );
        line.key_id ^= 1;
        let note = Note::new("hello\n", vec![line]).unwrap();
        assert!(matches!(
            note.verify(&[key.verifier()]),
            Err(NoteError::NoKnownSignature { .. })
        ));
    }

    #[test]
    fn malformed_notes_rejected() {
        let cases: [&[u8]; 6] = [
            b"no blank line\n\xe2\x80\x94 a AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 a AAAAAAA=",
            b"text\n\n- a AAAAAAA=\n",
            b"text\n\n\xe2\x80\x94 a AAAA\n",
            b"te\x07xt\n\n\xe2\x80\x94 a AAAAAAA=\n",
            b"\xff\n\n\xe2\x80\x94 a AAAAAAA=\n",
        ];
        for case in cases {
            assert!(
                matches!(Note::parse(case), Err(NoteError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn keys_with_plus_in_base64_parse() {
        // Find a seed whose encoded public and private keys contain `+`.
        let signer = (0u8..=255)
            .map(|seed| SignerKey::from_seed("example.com/log", TYPE_ED25519, &[seed; 32]).unwrap())
            .find(|key| {
                let verifier = key.verifier().to_string();
                let secret = key.to_text();
                verifier.matches('+').count() > 2 && secret.matches('+').count() > 4
            })
            .expect("some seed gives base64 with a plus sign");
        let verifier = VerifierKey::parse(&signer.verifier().to_string()).unwrap();
        assert_eq!(&verifier, signer.verifier());
        let parsed = SignerKey::parse(&signer.to_text()).unwrap();
        assert_eq!(parsed.verifier(), signer.verifier());
    }
}
