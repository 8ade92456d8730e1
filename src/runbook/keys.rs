//! Public keys and custodian recipients named by the runbook, inline or in files.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey;
use serde_saphyr::{Location, Spanned};
use spki::der::DecodePem;

use super::error::saturate;
use super::raw::RawPerson;
use super::validate::Checker;
use super::{PublicKeySource, Recipient, RecipientKind, RecipientSource, RunbookError};

/// Largest public-key or recipients file read; real ones are under a kilobyte.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads the Ed25519 public key of `<party>.public_key_file` or `<party>.public_key`.
pub(super) fn public_key(
    checker: &Checker<'_>,
    party: &str,
    file: Option<&Spanned<String>>,
    inline: Option<&Spanned<String>>,
    party_at: Location,
) -> Result<(VerifyingKey, PublicKeySource), RunbookError> {
    match (file, inline) {
        (Some(file), None) => {
            let field = format!("{party}.public_key_file");
            let path = checker.resolve(&field, file)?;
            let pem = read_small_text(checker, &field, file, &path)?;
            let what = format!("{} holds", path.display());
            let key = decode_ed25519(&pem).map_err(|message| {
                checker.invalid(&field, file, format!("{what} {message}"), None)
            })?;
            Ok((key, PublicKeySource::File(path)))
        }
        (None, Some(inline)) => {
            let field = format!("{party}.public_key");
            let key = decode_ed25519(&inline.value).map_err(|message| {
                checker.invalid(&field, inline, format!("value {message}"), None)
            })?;
            let line = saturate(inline.referenced.line());
            Ok((key, PublicKeySource::Runbook { line }))
        }
        (Some(_), Some(_)) => Err(checker.invalid_at(
            party,
            Some(party_at),
            "both public_key_file and public_key are set".to_string(),
            Some("keep exactly one of them"),
        )),
        (None, None) => Err(checker.invalid_at(
            party,
            Some(party_at),
            "neither public_key_file nor public_key is set".to_string(),
            Some("set exactly one of them"),
        )),
    }
}

/// Decodes an Ed25519 SubjectPublicKeyInfo PEM; the error completes "<source> ...".
fn decode_ed25519(pem: &str) -> Result<VerifyingKey, String> {
    let pem = pem.trim();
    if let Ok(key) = VerifyingKey::from_public_key_pem(pem) {
        return Ok(key);
    }
    match spki::SubjectPublicKeyInfoOwned::from_pem(pem) {
        Ok(info) => {
            let oid = info.algorithm.oid;
            Err(format!(
                "{} public key (algorithm {oid}), not an Ed25519 key",
                algorithm_name(&oid.to_string())
            ))
        }
        Err(_) if pem.contains("PRIVATE KEY") => Err(
            "a private key where a public key belongs; never put private keys in a runbook"
                .to_string(),
        ),
        Err(_) => Err(
            "no valid Ed25519 public key; expected a PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo) block"
                .to_string(),
        ),
    }
}

/// Names the key algorithm of an SPKI OID, with its article.
fn algorithm_name(oid: &str) -> &'static str {
    match oid {
        "1.2.840.10045.2.1" => "an elliptic-curve (ECDSA)",
        "1.2.840.113549.1.1.1" => "an RSA",
        "1.3.101.110" => "an X25519",
        "1.3.101.111" => "an X448",
        "1.3.101.113" => "an Ed448",
        _ => "a non-Ed25519",
    }
}

/// Reads the recipient of `custodians.people[i]`, inline or from its recipients file.
pub(super) fn recipient(
    checker: &Checker<'_>,
    field: &str,
    person: &RawPerson,
) -> Result<Recipient, RunbookError> {
    match (&person.recipient, &person.recipient_file) {
        (Some(inline), None) => {
            let field = format!("{field}.recipient");
            let kind = parse_recipient(inline.value.trim())
                .map_err(|(message, hint)| checker.invalid(&field, inline, message, hint))?;
            Ok(Recipient {
                text: inline.value.trim().to_string(),
                kind,
                source: RecipientSource::Runbook {
                    line: saturate(inline.referenced.line()),
                },
            })
        }
        (None, Some(file)) => {
            let field = format!("{field}.recipient_file");
            let path = checker.resolve(&field, file)?;
            let text = read_small_text(checker, &field, file, &path)?;
            recipient_from_file(&field, &path, &text)
        }
        (Some(_), Some(_)) => Err(checker.invalid(
            field,
            &person.name,
            "both recipient and recipient_file are set".to_string(),
            Some("keep exactly one of them"),
        )),
        (None, None) => Err(checker.invalid(
            field,
            &person.name,
            "neither recipient nor recipient_file is set".to_string(),
            Some("set exactly one of them"),
        )),
    }
}

/// Finds the single recipient line in a recipients file: `#` comments and blank lines are
/// skipped, and line endings may be LF or CRLF.
fn recipient_from_file(field: &str, path: &Path, text: &str) -> Result<Recipient, RunbookError> {
    let error = |line: Option<u32>, message: String, hint: Option<&str>| RunbookError::Invalid {
        path: path.to_path_buf(),
        field: field.to_string(),
        line,
        column: None,
        message,
        hint: hint.map(str::to_string),
    };

    let mut found: Option<(u32, &str)> = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = saturate(index as u64 + 1);
        let line = line.strip_suffix('\r').unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((first, _)) = found {
            let message = format!("a second recipient; the first is on line {first}");
            let hint = "a custodian's share is encrypted to exactly one recipient";
            return Err(error(Some(number), message, Some(hint)));
        }
        found = Some((number, line));
    }

    let Some((line, recipient)) = found else {
        let message = "no recipient in the file".to_string();
        let hint = "add the custodian's recipient, as printed by `age-keygen -y`";
        return Err(error(None, message, Some(hint)));
    };
    let kind =
        parse_recipient(recipient).map_err(|(message, hint)| error(Some(line), message, hint))?;
    Ok(Recipient {
        text: recipient.to_string(),
        kind,
        source: RecipientSource::File {
            path: path.to_path_buf(),
            line,
        },
    })
}

/// Parses an age X25519 or SSH recipient. The error never repeats the input, which could be
/// a secret key pasted by mistake.
pub(super) fn parse_recipient(text: &str) -> Result<RecipientKind, (String, Option<&'static str>)> {
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") || text.contains("PRIVATE KEY") {
        return Err((
            "a secret key where a public recipient belongs".to_string(),
            Some("use the recipient that `age-keygen -y` prints, and treat the key as exposed"),
        ));
    }
    if text.starts_with("age1") {
        return match age::x25519::Recipient::from_str(text) {
            Ok(_) => Ok(RecipientKind::X25519),
            Err(_) => Err((
                "invalid age X25519 recipient".to_string(),
                Some("plugin recipients (such as age1yubikey1...) are not supported"),
            )),
        };
    }
    if text.starts_with("ssh-") || text.starts_with("ecdsa-") || text.starts_with("sk-") {
        return parse_ssh_recipient(text);
    }
    Err((
        "not an age recipient (age1...) or SSH public key (ssh-ed25519, ssh-rsa)".to_string(),
        None,
    ))
}

fn parse_ssh_recipient(text: &str) -> Result<RecipientKind, (String, Option<&'static str>)> {
    use age::ssh::ParseRecipientKeyError as E;
    match age::ssh::Recipient::from_str(text) {
        Ok(age::ssh::Recipient::SshEd25519(..)) => Ok(RecipientKind::SshEd25519),
        Ok(age::ssh::Recipient::SshRsa(..)) => Ok(RecipientKind::SshRsa),
        Err(E::RsaModulusTooSmall) => Err((
            "SSH RSA key shorter than 2048 bits".to_string(),
            Some("use an Ed25519 key or an RSA key of 2048 bits or more"),
        )),
        Err(E::RsaModulusTooLarge) => Err(("SSH RSA key too large for age".to_string(), None)),
        Err(E::Unsupported(key_type)) => Err((
            format!("unsupported SSH key type {key_type:?}"),
            Some("age accepts ssh-ed25519 and ssh-rsa keys"),
        )),
        Err(_) => Err((
            "invalid SSH public key".to_string(),
            Some("age accepts ssh-ed25519 and ssh-rsa keys"),
        )),
    }
}

/// Returns the recipient in the form compared for duplicates, without SSH comments.
pub(super) fn recipient_identity(recipient: &Recipient) -> String {
    match recipient.kind {
        RecipientKind::X25519 => recipient.text.to_ascii_lowercase(),
        RecipientKind::SshEd25519 | RecipientKind::SshRsa => recipient
            .text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Reads a small UTF-8 file that the runbook names; errors point at the runbook field.
fn read_small_text(
    checker: &Checker<'_>,
    field: &str,
    at: &Spanned<String>,
    path: &PathBuf,
) -> Result<String, RunbookError> {
    let fail = |message: String, hint: Option<&str>| checker.invalid(field, at, message, hint);
    let file = std::fs::File::open(path)
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display()), None))?;

    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| fail(format!("cannot read {}: {error}", path.display()), None))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        let message = format!(
            "{} is larger than {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        );
        return Err(fail(
            message,
            Some("check that the path names the right file"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| fail(format!("{} is not UTF-8 text", path.display()), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn recipient_file_skips_comments_and_crlf() {
        let text = format!("# alice\r\n\r\n{RECIPIENT}\r\n# end\r\n");
        let recipient = recipient_from_file("f", Path::new("a.txt"), &text).unwrap();
        assert_eq!(recipient.text, RECIPIENT);
        assert_eq!(recipient.kind, RecipientKind::X25519);
        let expected = RecipientSource::File {
            path: PathBuf::from("a.txt"),
            line: 3,
        };
        assert_eq!(recipient.source, expected);
    }

    #[test]
    fn recipient_file_rejects_two_recipients() {
        let text = format!("{RECIPIENT}\n# second\n{RECIPIENT}\n");
        let error = recipient_from_file("f", Path::new("a.txt"), &text).unwrap_err();
        assert_eq!(error.position(), Some((3, None)));
        assert!(
            error
                .to_string()
                .starts_with("a.txt:3: f: a second recipient")
        );
    }

    #[test]
    fn recipient_file_rejects_empty_file() {
        let error = recipient_from_file("f", Path::new("a.txt"), "# nothing\n").unwrap_err();
        assert!(error.to_string().contains("no recipient in the file"));
    }

    #[test]
    fn secret_key_is_rejected_without_echo() {
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        let (message, _) = parse_recipient(secret).unwrap_err();
        assert!(!message.contains("QQQQ"));
        assert!(message.contains("secret key"));
    }

    #[test]
    fn invalid_recipients_are_rejected() {
        assert!(parse_recipient("age1notbech32").is_err());
        assert!(parse_recipient("ssh-ed25519 AAAAnotbase64").is_err());
        assert!(parse_recipient("hello").is_err());
    }

    #[test]
    fn ssh_ed25519_recipient_is_accepted() {
        // OpenSSH wire encoding: the key type and the public key, each length-prefixed.
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let mut blob = Vec::new();
        for part in [b"ssh-ed25519".as_slice(), key.as_bytes().as_slice()] {
            blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
            blob.extend_from_slice(part);
        }
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(blob);
        let line = format!("ssh-ed25519 {encoded} alice@example");
        assert_eq!(parse_recipient(&line), Ok(RecipientKind::SshEd25519));
    }

    #[test]
    fn ed25519_pem_decodes_and_p256_is_named() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        let pem = key.to_public_key_pem(Default::default()).unwrap();
        assert_eq!(decode_ed25519(&pem), Ok(key));

        let secret = p256::SecretKey::from_slice(&[5; 32]).unwrap();
        let p256_pem = secret
            .public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let message = decode_ed25519(&p256_pem).unwrap_err();
        assert!(message.contains("ECDSA"), "{message}");
        assert!(message.contains("not an Ed25519 key"), "{message}");
    }
}
