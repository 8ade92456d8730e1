//! Parsing of custodians' age recipients and loading of their identity files.

use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use super::error::ShareError;
use super::split::CustodianRecipient;

/// Largest identity file read, in bytes. An OpenSSH RSA-16384 private key is about 13 KiB.
const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;

/// Largest recipients file read, in bytes. An SSH RSA-4096 `.pub` line is under 1 KiB.
const MAX_RECIPIENT_FILE_BYTES: u64 = 64 * 1024;

/// Prefix of an age X25519 recipient.
const X25519_RECIPIENT_PREFIX: &str = "age1";

/// Prefix of an age X25519 identity (secret key).
const X25519_IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-1";

/// Prefix of an age plugin identity.
const PLUGIN_IDENTITY_PREFIX: &str = "AGE-PLUGIN-";

/// First characters of a PEM or OpenSSH private key file.
const PEM_PREFIX: &str = "-----BEGIN";

/// Parses one age recipient: X25519 (`age1...`) or an SSH public key line
/// (`ssh-ed25519 ...` or `ssh-rsa ...`, with an optional comment).
///
/// Surrounding whitespace is ignored. Error messages never quote the text, because a
/// secret key pasted by mistake must not end up in a log.
pub fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>, ShareError> {
    let invalid = |reason: &str| ShareError::InvalidRecipient {
        reason: reason.to_string(),
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("the recipient is empty"));
    }
    if text.contains(['\n', '\r']) {
        return Err(invalid("the recipient spans more than one line"));
    }
    if text
        .to_ascii_uppercase()
        .starts_with(X25519_IDENTITY_PREFIX)
        || text.starts_with(PLUGIN_IDENTITY_PREFIX)
        || text.starts_with(PEM_PREFIX)
    {
        return Err(invalid(
            "this is a secret key, not a recipient; keep it private and give its public key",
        ));
    }

    if text.starts_with(X25519_RECIPIENT_PREFIX) {
        return text
            .parse::<age::x25519::Recipient>()
            .map(|recipient| Box::new(recipient) as Box<dyn age::Recipient + Send>)
            .map_err(|reason| invalid(&format!("not an age X25519 recipient ({reason})")));
    }
    if text.starts_with("ssh-") {
        return text
            .parse::<age::ssh::Recipient>()
            .map(|recipient| Box::new(recipient) as Box<dyn age::Recipient + Send>)
            .map_err(|error| invalid(&describe_ssh_error(error)));
    }
    Err(invalid(
        "unknown recipient type; only age X25519 and SSH Ed25519 or RSA keys are supported",
    ))
}

/// Reads the one recipient in a recipients file, such as `age-keygen -y` output or an
/// SSH `.pub` file, and returns its line.
///
/// Comment lines (`#`, also indented), blank lines, CRLF line endings, a UTF-8 byte order
/// mark and whitespace around the recipient are accepted. A file with no recipient or
/// more than one is rejected, because each share is encrypted to exactly one recipient.
/// The recipient is checked with [`parse_recipient`]. Errors give line numbers, never
/// the file's text.
pub fn read_recipient_file(path: &Path) -> Result<String, ShareError> {
    let invalid =
        |line: Option<usize>, reason: String, hint: &'static str| ShareError::RecipientFile {
            path: path.to_path_buf(),
            line,
            reason,
            hint,
        };
    let bytes = read_secret_file(path, MAX_RECIPIENT_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|error| {
        let reason = format!("not UTF-8 text (byte {})", error.valid_up_to());
        invalid(None, reason, "give a text file with one recipient line")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut found: Option<(usize, &str)> = None;
    for (position, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((first, _)) = found {
            let reason = format!("a second recipient; the first is on line {first}");
            let hint = "a share is encrypted to exactly one recipient; keep one line";
            return Err(invalid(Some(position + 1), reason, hint));
        }
        found = Some((position + 1, line));
    }

    let Some((number, recipient)) = found else {
        let reason = "the file contains no recipient".to_string();
        let hint = "add the custodian's recipient, as printed by `age-keygen -y`";
        return Err(invalid(None, reason, hint));
    };
    parse_recipient(recipient).map_err(|error| match error {
        ShareError::InvalidRecipient { reason } => invalid(
            Some(number),
            reason,
            "use an age X25519 recipient (age1...) or an SSH public key (ssh-ed25519 or ssh-rsa)",
        ),
        other => other,
    })?;
    Ok(recipient.to_string())
}

/// Parses a custodian given as `NAME=RECIPIENT` or `NAME=@FILE`, reading the recipient
/// from FILE with [`read_recipient_file`] in the second form.
///
/// The name ends at the first `=`, because SSH keys can contain `=` in their base64
/// padding, so names cannot contain `=`. [`split`](super::split) checks the name itself.
pub fn parse_custodian_argument(argument: &str) -> Result<CustodianRecipient, ShareError> {
    let Some((name, value)) = argument.split_once('=') else {
        return Err(ShareError::CustodianArgument {
            argument: "argument".to_string(),
            reason: "there is no `=` between the name and the recipient",
        });
    };
    let invalid = |reason| ShareError::CustodianArgument {
        argument: format!("{name:?}"),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("the name before `=` is empty"));
    }
    let recipient = match value.strip_prefix('@') {
        Some("") => return Err(invalid("the file name after `@` is empty")),
        Some(file) => read_recipient_file(Path::new(file))?,
        None => {
            parse_recipient(value).map_err(|error| match error {
                ShareError::InvalidRecipient { reason } => ShareError::CustodianRecipient {
                    custodian: name.to_string(),
                    reason,
                },
                other => other,
            })?;
            value.trim().to_string()
        }
    };
    Ok(CustodianRecipient {
        name: name.to_string(),
        recipient,
    })
}

/// Loads the identities in an age identity file or an unencrypted OpenSSH private key.
///
/// An age identity file may contain comment lines (`#`, also indented), blank lines,
/// CRLF line endings, a UTF-8 byte order mark, whitespace around keys and no final
/// newline. age's own `IdentityFile` (0.12.1) handles CRLF, unindented comments, blank
/// lines and a missing final newline, but rejects the other cases. Lines are therefore
/// parsed here one by one, which also keeps error line numbers true to the file.
///
/// Passphrase-protected SSH keys and age plugin identities are rejected.
pub fn load_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, ShareError> {
    let invalid = |reason: String| ShareError::InvalidIdentityFile {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = read_secret_file(path, MAX_IDENTITY_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|error| invalid(format!("not UTF-8 text (byte {})", error.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    if text.trim_start().starts_with(PEM_PREFIX) {
        return load_ssh_identity(path, text).map(|identity| vec![identity]);
    }

    let mut identities: Vec<Box<dyn age::Identity>> = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with(PLUGIN_IDENTITY_PREFIX) {
            return Err(invalid(format!(
                "line {} is an age plugin identity; plugins are not supported",
                number + 1
            )));
        }
        match line.parse::<age::x25519::Identity>() {
            Ok(identity) => identities.push(Box::new(identity)),
            Err(reason) => {
                return Err(invalid(format!(
                    "line {} is not an age identity ({reason})",
                    number + 1
                )));
            }
        }
    }
    if identities.is_empty() {
        return Err(invalid("the file contains no identity".to_string()));
    }
    Ok(identities)
}

/// Parses an OpenSSH or PEM private key as an age SSH identity.
fn load_ssh_identity(path: &Path, text: &str) -> Result<Box<dyn age::Identity>, ShareError> {
    let invalid = |reason: String| ShareError::InvalidIdentityFile {
        path: path.to_path_buf(),
        reason,
    };

    // age's SSH parser expects LF line endings and a final newline.
    let mut normalised = Zeroizing::new(String::with_capacity(text.len() + 1));
    for line in text.trim().split('\n') {
        normalised.push_str(line.trim_end_matches('\r'));
        normalised.push('\n');
    }

    let filename = Some(path.display().to_string());
    let identity = age::ssh::Identity::from_buffer(normalised.as_bytes(), filename)
        .map_err(|error| invalid(format!("not a supported SSH private key ({error})")))?;
    match identity {
        age::ssh::Identity::Unencrypted(_) => Ok(Box::new(identity)),
        age::ssh::Identity::Encrypted(_) => Err(invalid(
            "the SSH key is passphrase-protected, which is not supported yet\nhint: use an age identity, or an unencrypted copy of the key on an offline machine"
                .to_string(),
        )),
        age::ssh::Identity::Unsupported(key) => Err(invalid(describe_unsupported_ssh_key(&key))),
    }
}

/// Reads a file of at most `limit` bytes into a buffer wiped on drop.
pub(super) fn read_secret_file(path: &Path, limit: u64) -> Result<Zeroizing<Vec<u8>>, ShareError> {
    let read_error = |source| ShareError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let length = file.metadata().map_err(read_error)?.len();
    if length > limit {
        return Err(ShareError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the file has {length} bytes, more than the {limit} accepted"),
            ),
        });
    }

    // One spare byte lets read_to_end detect the end without growing the buffer.
    let capacity = usize::try_from(length).unwrap_or(0) + 1;
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// Describes an SSH recipient parse error.
fn describe_ssh_error(error: age::ssh::ParseRecipientKeyError) -> String {
    use age::ssh::ParseRecipientKeyError as Error;
    match error {
        Error::Invalid(reason) => format!("not a valid SSH public key ({reason})"),
        Error::RsaModulusTooLarge => "the ssh-rsa key is larger than 4096 bits".to_string(),
        Error::RsaModulusTooSmall => "the ssh-rsa key is smaller than 2048 bits".to_string(),
        Error::Unsupported(key_type) => {
            format!("SSH key type {key_type} is not supported; use ssh-ed25519 or ssh-rsa")
        }
        _ => "not a supported SSH public key; use ssh-ed25519 or ssh-rsa".to_string(),
    }
}

/// Describes an SSH private key that age can parse but not use.
fn describe_unsupported_ssh_key(key: &age::ssh::UnsupportedKey) -> String {
    use age::ssh::UnsupportedKey as Key;
    match key {
        Key::EncryptedPem => "the key is an encrypted PEM key, which age cannot read".to_string(),
        Key::EncryptedSsh(cipher) => {
            format!("the key is encrypted with {cipher}, which age cannot read")
        }
        Key::Hardware(key_type) => {
            format!("{key_type} is a hardware security key, which age cannot use directly")
        }
        Key::Type(key_type) => format!("SSH key type {key_type} is not supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    /// An ssh-ed25519 public key made with `ssh-keygen -t ed25519` for these tests.
    const SSH_ED25519_PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKjs40piqiwNlgQ1wWyEpmwqNp33rgPzt84wSqdzLiko alice@example";

    fn write(dir: &tempfile::TempDir, name: &str, contents: &str) -> std::path::PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Encrypts to `recipient` and checks that `identities` decrypt the result.
    fn assert_pair(recipient: &dyn age::Recipient, identities: &[Box<dyn age::Identity>]) {
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient)).unwrap();
        let mut ciphertext = Vec::new();
        let mut writer = encryptor.wrap_output(&mut ciphertext).unwrap();
        std::io::Write::write_all(&mut writer, b"hello").unwrap();
        writer.finish().unwrap();

        let decryptor = age::Decryptor::new(ciphertext.as_slice()).unwrap();
        let mut reader = decryptor
            .decrypt(identities.iter().map(|identity| identity.as_ref()))
            .unwrap();
        let mut plaintext = Vec::new();
        reader.read_to_end(&mut plaintext).unwrap();
        assert_eq!(plaintext, b"hello");
    }

    fn new_identity() -> (String, String) {
        let identity = age::x25519::Identity::generate();
        let secret = identity.to_string().expose_secret().to_string();
        (secret, identity.to_public().to_string())
    }

    #[test]
    fn parse_recipient_accepts_x25519() {
        let (_, public) = new_identity();
        parse_recipient(&public).unwrap();
        parse_recipient(&format!("  {public}\n")).unwrap();
    }

    #[test]
    fn parse_recipient_accepts_ssh_ed25519() {
        parse_recipient(SSH_ED25519_PUBLIC).unwrap();
    }

    #[test]
    fn parse_recipient_rejects_secret_key_without_quoting_it() {
        let (secret, _) = new_identity();
        let error = parse_recipient(&secret).err().unwrap().to_string();
        assert!(error.contains("secret key"), "{error}");
        assert!(!error.contains(&secret[16..]));
        let lowercase = parse_recipient(&secret.to_lowercase())
            .err()
            .unwrap()
            .to_string();
        assert!(lowercase.contains("secret key"), "{lowercase}");
    }

    #[test]
    fn parse_recipient_rejects_unknown_and_broken() {
        let cases = [
            ("", "empty"),
            ("age1qqqq", "not an age X25519 recipient"),
            ("ssh-ed25519 AAAA", "not a valid SSH public key"),
            ("ssh-dss AAAAB3NzaC1kc3M= x", "SSH"),
            ("pgp:1234", "unknown recipient type"),
            ("age1a\nage1b", "more than one line"),
        ];
        for (text, expected) in cases {
            let error = parse_recipient(text).err().unwrap().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn recipient_file_with_comments_crlf_and_bom() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = new_identity();
        let contents =
            format!("\u{feff}# custodian dave\r\n\r\n   # laptop key\r\n  {public}  \r\n\r\n");
        let path = write(&dir, "dave.pub", &contents);
        assert_eq!(read_recipient_file(&path).unwrap(), public);
    }

    #[test]
    fn recipient_file_with_ssh_key_and_comment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "id_ed25519.pub", &format!("{SSH_ED25519_PUBLIC}\n"));
        assert_eq!(read_recipient_file(&path).unwrap(), SSH_ED25519_PUBLIC);
    }

    #[test]
    fn recipient_file_rejects_zero_or_two() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = new_identity();
        let (_, second) = new_identity();
        let two = write(&dir, "two.pub", &format!("# a\n{first}\n\n{second}\n"));
        let error = read_recipient_file(&two).unwrap_err().to_string();
        assert!(error.contains("two.pub line 4"), "{error}");
        assert!(error.contains("first is on line 2"), "{error}");

        let none = write(&dir, "none.pub", "# nothing here\r\n\r\n");
        let error = read_recipient_file(&none).unwrap_err().to_string();
        assert!(error.contains("contains no recipient"), "{error}");
    }

    #[test]
    fn recipient_file_rejects_secret_key_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, _) = new_identity();
        let path = write(&dir, "key.txt", &format!("# created: today\n{secret}\n"));
        let error = read_recipient_file(&path).unwrap_err().to_string();
        assert!(error.contains("key.txt line 2"), "{error}");
        assert!(error.contains("secret key"), "{error}");
        assert!(!error.contains(&secret[16..]), "{error}");
    }

    #[test]
    fn custodian_argument_inline_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = new_identity();
        let inline = parse_custodian_argument(&format!("dave={public}")).unwrap();
        assert_eq!(inline.name, "dave");
        assert_eq!(inline.recipient, public);

        let path = write(&dir, "erin.pub", &format!("# erin\r\n{public}\r\n"));
        let from_file = parse_custodian_argument(&format!("erin=@{}", path.display())).unwrap();
        assert_eq!(from_file.name, "erin");
        assert_eq!(from_file.recipient, public);

        // SSH keys may end in base64 padding, so the name ends at the first `=`.
        let ssh = parse_custodian_argument(&format!("frank={SSH_ED25519_PUBLIC}")).unwrap();
        assert_eq!(ssh.recipient, SSH_ED25519_PUBLIC);
    }

    #[test]
    fn custodian_argument_rejects_malformed() {
        let (secret, public) = new_identity();
        let cases = [
            (public.clone(), "no `=`"),
            (format!("={public}"), "name before `=` is empty"),
            ("dave=@".to_string(), "file name after `@` is empty"),
            (format!("dave={secret}"), "secret key"),
            ("dave=@/nonexistent/dave.pub".to_string(), "cannot read"),
        ];
        for (argument, expected) in cases {
            let error = parse_custodian_argument(&argument).unwrap_err().to_string();
            assert!(error.contains(expected), "{argument:?}: {error}");
            assert!(!error.contains(&secret[16..]), "{error}");
        }
    }

    #[test]
    fn identities_with_comments_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = new_identity();
        let contents =
            format!("# created: today\n# public key: {public}\n\n   # indented\n{secret}\n\n");
        let identities = load_identities(&write(&dir, "id.txt", &contents)).unwrap();
        assert_eq!(identities.len(), 1);
        assert_pair(parse_recipient(&public).unwrap().as_ref(), &identities);
    }

    #[test]
    fn identities_with_crlf_line_endings() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = new_identity();
        let contents = format!("# comment\r\n\r\n{secret}\r\n");
        let identities = load_identities(&write(&dir, "id.txt", &contents)).unwrap();
        assert_pair(parse_recipient(&public).unwrap().as_ref(), &identities);
    }

    #[test]
    fn identities_without_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = new_identity();
        let identities = load_identities(&write(&dir, "id.txt", &secret)).unwrap();
        assert_pair(parse_recipient(&public).unwrap().as_ref(), &identities);
    }

    #[test]
    fn identities_with_bom_and_trailing_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = new_identity();
        let contents = format!("\u{feff}# comment\n  {secret}  \t\n");
        let identities = load_identities(&write(&dir, "id.txt", &contents)).unwrap();
        assert_pair(parse_recipient(&public).unwrap().as_ref(), &identities);
    }

    #[test]
    fn identities_several_in_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = new_identity();
        let (second, public) = new_identity();
        let identities =
            load_identities(&write(&dir, "id.txt", &format!("{first}\n{second}\n"))).unwrap();
        assert_eq!(identities.len(), 2);
        assert_pair(parse_recipient(&public).unwrap().as_ref(), &identities);
    }

    #[test]
    fn identities_invalid_line_names_number_only() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, _) = new_identity();
        let broken = format!("{}x", &secret[..secret.len() - 1]);
        let path = write(&dir, "id.txt", &format!("# ok\n\n{broken}\n"));
        let error = load_identities(&path).err().unwrap().to_string();
        assert!(error.contains("line 3 is not an age identity"), "{error}");
        assert!(!error.contains(&broken[16..]), "{error}");
    }

    #[test]
    fn identities_rejects_empty_and_plugin_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = load_identities(&write(&dir, "empty.txt", "# nothing\n\n"))
            .err()
            .unwrap();
        assert!(
            empty.to_string().contains("contains no identity"),
            "{empty}"
        );
        let plugin = load_identities(&write(&dir, "plugin.txt", "AGE-PLUGIN-YUBIKEY-1QQQ\n"))
            .err()
            .unwrap();
        assert!(plugin.to_string().contains("plugin"), "{plugin}");
        let missing = load_identities(&dir.path().join("missing.txt"))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("cannot read"), "{missing}");
    }
}
