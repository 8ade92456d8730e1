//! Malformed checkpoints: each is rejected with a named error before any field is used.
//!
//! Most cases are signed by the real log key over the malformed text, so the signature
//! passes and only the format checks stand between the bytes and the caller.

use fleet_ceremony::log::note::{MAX_NOTE_LEN, TYPE_COSIGNATURE, TYPE_ED25519};
use fleet_ceremony::log::{Checkpoint, CheckpointError, Hash, NoteError, SignerKey, leaf_hash};

const ORIGIN: &str = "audit.example/fleet-log";

fn log_key() -> SignerKey {
    SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[9u8; 32]).unwrap()
}

fn root() -> String {
    leaf_hash(b"entry").to_base64()
}

fn body() -> String {
    format!("{ORIGIN}\n5\n{}\n", root())
}

/// The log's signature line over `text`, with its final newline.
fn signature_line(key: &SignerKey, text: &str) -> String {
    key.sign_text(text).to_line()
}

/// `text`, a blank line and the log's signature over `text`.
fn signed(text: &str) -> Vec<u8> {
    format!("{text}\n{}", signature_line(&log_key(), text)).into_bytes()
}

fn open(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    Checkpoint::open(bytes, ORIGIN, log_key().verifier())
}

fn note_malformed(bytes: &[u8]) -> String {
    match open(bytes) {
        Err(CheckpointError::Note(NoteError::Malformed(reason))) => reason,
        other => panic!(
            "expected a malformed note, got {other:?} for {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

fn checkpoint_malformed(bytes: &[u8]) -> String {
    match open(bytes) {
        Err(CheckpointError::Malformed(reason)) => reason,
        other => panic!(
            "expected a malformed checkpoint, got {other:?} for {:?}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

#[test]
fn well_formed_checkpoint_opens() {
    let checkpoint = open(&signed(&body())).unwrap();
    assert_eq!(checkpoint.size, 5);
    assert_eq!(checkpoint.root, leaf_hash(b"entry"));
    assert_eq!(checkpoint.origin, ORIGIN);
}

#[test]
fn missing_final_newline_rejected() {
    let mut bytes = signed(&body());
    bytes.pop();
    assert_eq!(note_malformed(&bytes), "note does not end in a newline");
}

#[test]
fn missing_blank_line_rejected() {
    let text = body();
    let bytes = format!("{text}{}", signature_line(&log_key(), &text));
    assert_eq!(
        note_malformed(bytes.as_bytes()),
        "note has no blank line before its signatures"
    );
}

#[test]
fn empty_signature_block_rejected() {
    let bytes = format!("{}\n", body());
    assert_eq!(
        note_malformed(bytes.as_bytes()),
        "note has no signature lines"
    );
}

#[test]
fn extra_body_lines_rejected() {
    let root = root();
    // Signed by the log, so only the format check rejects these.
    let cases = [
        (
            format!("{ORIGIN}\n5\n5\n{root}\n"),
            "root hash is not 32 bytes of standard base64",
        ),
        (
            format!("extra\n{ORIGIN}\n5\n{root}\n"),
            "tree size is not a decimal number without leading zeros",
        ),
        (
            format!("{ORIGIN}\n\n5\n{root}\n"),
            "tree size is not a decimal number without leading zeros",
        ),
    ];
    for (text, reason) in cases {
        assert_eq!(checkpoint_malformed(&signed(&text)), reason, "{text:?}");
    }

    // A blank line inside the body, signed by the log: the note splits at the last
    // blank line, and the checkpoint rejects the empty extension line.
    let text = format!("{ORIGIN}\n5\n{root}\n\nextra\n");
    assert_eq!(
        checkpoint_malformed(&signed(&text)),
        "extension line is empty"
    );

    // An extra line added after signing fails the log signature.
    let genuine = String::from_utf8(signed(&body())).unwrap();
    let inserted = genuine.replacen(&format!("{root}\n"), &format!("{root}\nextra\n"), 1);
    assert!(matches!(
        open(inserted.as_bytes()),
        Err(CheckpointError::Note(NoteError::BadSignature { .. }))
    ));

    // Lines after the signature block that are not signature lines.
    let trailing = format!("{genuine}not a signature\n");
    assert_eq!(
        note_malformed(trailing.as_bytes()),
        "signature line does not start with an em dash and space"
    );
}

#[test]
fn wrong_origin_rejected() {
    let text = format!("audit.example/other-log\n5\n{}\n", root());
    assert_eq!(
        open(&signed(&text)),
        Err(CheckpointError::UnknownOrigin {
            expected: ORIGIN.to_owned(),
            found: "audit.example/other-log".to_owned(),
        })
    );
}

#[test]
fn unknown_key_rejected() {
    let text = body();
    let other_name = SignerKey::from_seed("audit.example/other", TYPE_ED25519, &[9u8; 32]);
    let other_seed = SignerKey::from_seed(ORIGIN, TYPE_ED25519, &[8u8; 32]);
    let witness = SignerKey::from_seed(ORIGIN, TYPE_COSIGNATURE, &[9u8; 32]);
    for key in [other_name, other_seed, witness] {
        let key = key.unwrap();
        let bytes = format!("{text}\n{}", signature_line(&key, &text));
        let result = open(bytes.as_bytes());
        assert!(
            matches!(
                result,
                Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
            ),
            "{} {:08x}: {result:?}",
            key.name(),
            key.key_id()
        );
    }

    // The right name with another key ID is another key.
    let mut line = log_key().sign_text(&text);
    line.key_id ^= 1;
    let bytes = format!("{text}\n{}", line.to_line());
    assert!(matches!(
        open(bytes.as_bytes()),
        Err(CheckpointError::Note(NoteError::NoKnownSignature { .. }))
    ));
}

#[test]
fn misplaced_signature_lines_rejected() {
    let text = body();
    let line = signature_line(&log_key(), &text);

    // Before the body: the signature line becomes the origin line.
    let first = format!("{line}{text}\n{line}");
    assert!(matches!(
        open(first.as_bytes()),
        Err(CheckpointError::Note(NoteError::BadSignature { .. }))
    ));
    // Inside the body, even when the log signed that text.
    let inside = format!("{text}{line}");
    assert_eq!(
        checkpoint_malformed(&signed(&inside)),
        "extension line starts like a signature line"
    );
    // Only before the blank line.
    let no_block = format!("{text}{line}\n");
    assert_eq!(
        note_malformed(no_block.as_bytes()),
        "note has no signature lines"
    );
    // Split by a blank line inside the signature block.
    let witness = SignerKey::from_seed("witness.example/w1", TYPE_COSIGNATURE, &[2u8; 32]);
    let witness_line = signature_line(&witness.unwrap(), &text);
    let split = format!("{text}\n{line}\n{witness_line}");
    assert!(open(split.as_bytes()).is_err(), "{split:?}");
}

#[test]
fn oversized_note_rejected_before_parsing() {
    let mut bytes = signed(&body());
    bytes.resize(MAX_NOTE_LEN + 1, 0xff);
    assert_eq!(note_malformed(&bytes), "note is larger than 64 KiB");

    // A note at the limit is parsed (and fails for its content, not its size).
    bytes.truncate(MAX_NOTE_LEN);
    assert_ne!(note_malformed(&bytes), "note is larger than 64 KiB");
}

#[test]
fn non_utf8_rejected() {
    let mut bytes = signed(&body());
    bytes[2] = 0xff;
    assert_eq!(note_malformed(&bytes), "note is not UTF-8");
}

#[test]
fn crlf_line_endings_rejected() {
    let crlf = String::from_utf8(signed(&body()))
        .unwrap()
        .replace('\n', "\r\n");
    assert_eq!(
        note_malformed(crlf.as_bytes()),
        "note contains a control character"
    );
}

#[test]
fn tree_size_spellings_rejected() {
    let root = root();
    for size in [
        "05",
        "+5",
        "-5",
        " 5",
        "5 ",
        "0x5",
        "",
        "18446744073709551616",
    ] {
        let text = format!("{ORIGIN}\n{size}\n{root}\n");
        assert_eq!(
            checkpoint_malformed(&signed(&text)),
            "tree size is not a decimal number without leading zeros",
            "{size:?}"
        );
    }
    let zero = format!("{ORIGIN}\n0\n{}\n", Hash([0; 32]).to_base64());
    assert_eq!(open(&signed(&zero)).unwrap().size, 0);
}

#[test]
fn root_hash_of_wrong_length_rejected() {
    let short = leaf_hash(b"entry").to_base64();
    let bytes = [0u8; 33];
    use base64::Engine as _;
    let long = base64::engine::general_purpose::STANDARD.encode(bytes);
    let unpadded = short.trim_end_matches('=').to_owned();
    for root in [short[..40].to_owned(), long, unpadded] {
        let text = format!("{ORIGIN}\n5\n{root}\n");
        assert_eq!(
            checkpoint_malformed(&signed(&text)),
            "root hash is not 32 bytes of standard base64",
            "{root:?}"
        );
    }
}
