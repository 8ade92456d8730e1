//! Transparency log checkpoints (C2SP tlog-checkpoint v1.0.0).

use super::hash::Hash;
use super::note::{Note, NoteError, SIGNATURE_PREFIX, SignerKey, VerifierKey};

/// A failed parse or verification of a checkpoint.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note around the checkpoint is malformed or not validly signed.
    #[error("checkpoint note rejected: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint body does not follow the checkpoint format.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The checkpoint is from a log other than the one expected.
    #[error(
        "checkpoint origin {found:?} is not the expected origin {expected:?}\nhint: check that the checkpoint comes from this log"
    )]
    UnknownOrigin {
        /// The origin expected by the caller.
        expected: String,
        /// The origin line of the checkpoint.
        found: String,
    },
}

/// The body of a checkpoint: origin, tree size, root hash and optional extension lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log origin, the first line.
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: u64,
    /// The RFC 6962 root hash of the tree.
    pub root: Hash,
    /// Opaque extension lines, without newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Encodes the note text: one line each for origin, size, base64 root and extensions.
    pub fn to_text(&self) -> String {
        let mut text = format!("{}\n{}\n{}\n", self.origin, self.size, self.root);
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Parses a checkpoint body (the note text, with its final newline).
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let malformed = |reason: &str| CheckpointError::Malformed(reason.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(malformed("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(malformed("origin line is empty"));
        }
        let size = parse_size(size)
            .ok_or_else(|| malformed("tree size is not a decimal number without leading zeros"))?;
        let root = Hash::from_base64(root)
            .filter(|hash| hash.to_base64() == root)
            .ok_or_else(|| malformed("root hash is not 32 bytes of standard base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed("extension line is empty"));
        }
        // A signature line inside the signed text would read as a signature to a careless
        // reader, so such a body is rejected even when the log signed it.
        if extensions
            .iter()
            .any(|line| line.starts_with(SIGNATURE_PREFIX))
        {
            return Err(malformed("extension line starts like a signature line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Signs the checkpoint with `signer` and returns the signed note bytes.
    pub fn sign(&self, signer: &SignerKey) -> Result<Vec<u8>, CheckpointError> {
        let mut note = Note::new(&self.to_text(), vec![])?;
        note.add_signature(signer.sign_text(note.text()));
        Ok(note.to_bytes())
    }

    /// Parses a signed checkpoint and checks it: the note must carry a valid signature by
    /// `log_key` (other signature lines are ignored), and the origin must be `origin`.
    ///
    /// Does not check consistency with earlier checkpoints or any cosignature.
    pub fn open(
        bytes: &[u8],
        origin: &str,
        log_key: &VerifierKey,
    ) -> Result<Self, CheckpointError> {
        let note = Note::parse(bytes)?;
        note.verify(&[log_key])?;
        let checkpoint = Self::parse_text(note.text())?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::UnknownOrigin {
                expected: origin.to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }
}

fn parse_size(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::hash::leaf_hash;
    use crate::log::note::TYPE_ED25519;

    const ORIGIN: &str = "audit.example/fleet-log";

    fn signer() -> SignerKey {
        SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[3u8; 32]).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.to_owned(),
            size: 20852163,
            root: leaf_hash(b"x"),
            extensions: vec![],
        }
    }

    #[test]
    fn text_layout() {
        let text = checkpoint().to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [ORIGIN, "20852163", leaf_hash(b"x").to_base64().as_str()]
        );
        assert_eq!(Checkpoint::parse_text(&text).unwrap(), checkpoint());
    }

    #[test]
    fn sign_and_open() {
        let bytes = checkpoint().sign(&signer()).unwrap();
        let opened = Checkpoint::open(&bytes, ORIGIN, signer().verifier()).unwrap();
        assert_eq!(opened, checkpoint());
    }

    #[test]
    fn extension_lines_round_trip() {
        let mut with_extensions = checkpoint();
        with_extensions.extensions = vec!["ext one".to_owned(), "ext two".to_owned()];
        let bytes = with_extensions.sign(&signer()).unwrap();
        let opened = Checkpoint::open(&bytes, ORIGIN, signer().verifier()).unwrap();
        assert_eq!(opened, with_extensions);
    }

    #[test]
    fn unknown_origin_rejected() {
        let bytes = checkpoint().sign(&signer()).unwrap();
        assert_eq!(
            Checkpoint::open(&bytes, "other.example/log", signer().verifier()),
            Err(CheckpointError::UnknownOrigin {
                expected: "other.example/log".to_owned(),
                found: ORIGIN.to_owned()
            })
        );
    }

    #[test]
    fn wrong_key_rejected() {
        let bytes = checkpoint().sign(&signer()).unwrap();
        let other = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[4u8; 32]).unwrap();
        assert!(matches!(
            Checkpoint::open(&bytes, ORIGIN, other.verifier()),
            Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
        ));
    }

    #[test]
    fn tampered_checkpoint_rejected() {
        let bytes = checkpoint().sign(&signer()).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let tampered = text.replace("20852163", "20852164");
        assert!(matches!(
            Checkpoint::open(tampered.as_bytes(), ORIGIN, signer().verifier()),
            Err(CheckpointError::Note(NoteError::BadSignature { .. }))
        ));
    }

    #[test]
    fn malformed_bodies_rejected() {
        let root = leaf_hash(b"x").to_base64();
        let cases = [
            format!("{ORIGIN}\n5\n"),
            format!("\n5\n{root}\n"),
            format!("{ORIGIN}\n05\n{root}\n"),
            format!("{ORIGIN}\n-5\n{root}\n"),
            format!("{ORIGIN}\n5\n{}\n", &root[..40]),
            format!("{ORIGIN}\n5\n{root}\n\n"),
            format!("{ORIGIN}\n5\n{root}"),
        ];
        for case in cases {
            assert!(
                matches!(
                    Checkpoint::parse_text(&case),
                    Err(CheckpointError::Malformed(_))
                ),
                "{case:?}"
            );
        }
        assert_eq!(parse_size("0"), Some(0));
    }
}
