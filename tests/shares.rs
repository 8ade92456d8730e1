//! Split and combine through real files, with the age CLI as an independent peer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use fleet_ceremony::fsutil::write_new;
use fleet_ceremony::shares::{
    CredentialSet, CustodianRecipient, Recovered, ShareContext, ShareError, ShareInput,
    ShareRecord, combine, split, verify_share,
};
use secrecy::ExposeSecret;

/// The age CLI used as the independent implementation.
const AGE: &str = "/usr/bin/age";

/// A custodian with an identity file on disk.
struct Custodian {
    name: String,
    recipient: String,
    identity: PathBuf,
}

/// Makes `count` custodians with age X25519 identities, written as age-keygen does.
fn age_custodians(dir: &Path, count: usize) -> Vec<Custodian> {
    (0..count)
        .map(|position| {
            let identity = age::x25519::Identity::generate();
            let recipient = identity.to_public().to_string();
            let path = dir.join(format!("identity-{position}.txt"));
            let contents = format!(
                "# created: 2025-01-01T00:00:00Z\n# public key: {recipient}\n{}\n",
                identity.to_string().expose_secret()
            );
            std::fs::write(&path, contents).unwrap();
            Custodian {
                name: format!("custodian-{position}"),
                recipient,
                identity: path,
            }
        })
        .collect()
}

fn recipients(custodians: &[Custodian]) -> Vec<CustodianRecipient> {
    custodians
        .iter()
        .map(|custodian| CustodianRecipient {
            name: custodian.name.clone(),
            recipient: custodian.recipient.clone(),
        })
        .collect()
}

fn context() -> ShareContext {
    ShareContext {
        ceremony: "ceremony-2025-01-01".to_string(),
        fleet: "payments-eu".to_string(),
    }
}

fn credentials() -> CredentialSet {
    CredentialSet::generate(&[
        ("hsm-a".to_string(), "payments-a".to_string()),
        ("hsm-b".to_string(), "payments-b".to_string()),
        ("hsm-c".to_string(), "payments-c".to_string()),
    ])
}

/// Splits `set` and writes the share files under `dir/<subdir>/<custodian>.age`.
fn split_to_files(
    dir: &Path,
    subdir: &str,
    set: &CredentialSet,
    context: &ShareContext,
    custodians: &[Custodian],
    threshold: u8,
) -> Vec<PathBuf> {
    let files = split(set, context, &recipients(custodians), threshold).unwrap();
    files
        .iter()
        .map(|file| {
            let path = dir.join(subdir).join(format!("{}.age", file.custodian));
            write_new(&path, &file.armored, false).unwrap();
            path
        })
        .collect()
}

fn inputs(paths: &[PathBuf], custodians: &[Custodian], chosen: &[usize]) -> Vec<ShareInput> {
    chosen
        .iter()
        .map(|&position| ShareInput {
            path: paths[position].clone(),
            identity: custodians[position].identity.clone(),
        })
        .collect()
}

fn pins(set: &CredentialSet) -> Vec<String> {
    set.members
        .iter()
        .flat_map(|member| {
            [
                member.so_pin.expose_secret().to_string(),
                member.user_pin.expose_secret().to_string(),
            ]
        })
        .collect()
}

fn assert_recovered(recovered: &Recovered, set: &CredentialSet, threshold: u8, count: u8) {
    assert_eq!(recovered.context, context());
    assert_eq!(recovered.credential_set_id, set.id);
    assert_eq!(recovered.threshold, threshold);
    assert_eq!(recovered.count, count);
    assert_eq!(recovered.credentials.id, set.id);
    let members: Vec<_> = recovered
        .credentials
        .members
        .iter()
        .map(|member| (member.member.as_str(), member.token_label.as_str()))
        .collect();
    let expected: Vec<_> = set
        .members
        .iter()
        .map(|member| (member.member.as_str(), member.token_label.as_str()))
        .collect();
    assert_eq!(members, expected);
    assert_eq!(pins(&recovered.credentials), pins(set));
}

/// Decrypts with the age CLI and returns the plaintext.
fn age_decrypt(share: &Path, identity: &Path) -> Vec<u8> {
    let output = Command::new(AGE)
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(share)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Encrypts with the age CLI, armored, to one recipient.
fn age_encrypt(recipient: &str, plaintext: &[u8], output: &Path) {
    let mut child = Command::new(AGE)
        .arg("-a")
        .arg("-r")
        .arg(recipient)
        .arg("-o")
        .arg(output)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(plaintext).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Decrypts a share with the age CLI, edits its record, and re-encrypts it with the age
/// CLI to the same custodian at `output`.
fn rewrite_share(
    share: &Path,
    custodian: &Custodian,
    output: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    let plaintext = age_decrypt(share, &custodian.identity);
    let mut record: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
    edit(&mut record);
    age_encrypt(
        &custodian.recipient,
        &serde_json::to_vec(&record).unwrap(),
        output,
    );
}

#[test]
fn split_combine_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 5);
    let set = credentials();
    let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 3);
    assert_eq!(paths[4], dir.path().join("shares/custodian-4.age"));

    for chosen in [
        &[0, 1, 2][..],
        &[2, 3, 4],
        &[4, 0, 2],
        &[1, 3, 4, 0],
        &[0, 1, 2, 3, 4],
    ] {
        let recovered = combine(&inputs(&paths, &custodians, chosen)).unwrap();
        assert_recovered(&recovered, &set, 3, 5);
    }
}

#[test]
fn verify_share_reports_summary() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let set = credentials();
    let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 2);
    for (position, input) in inputs(&paths, &custodians, &[0, 1, 2]).iter().enumerate() {
        let summary = verify_share(input).unwrap();
        assert_eq!(summary.ceremony, "ceremony-2025-01-01");
        assert_eq!(summary.fleet, "payments-eu");
        assert_eq!(summary.credential_set, set.id);
        assert_eq!(summary.custodian, custodians[position].name);
        assert_eq!(usize::from(summary.index), position + 1);
        assert_eq!(summary.threshold, 2);
        assert_eq!(summary.count, 3);
    }
}

#[test]
fn age_cli_decrypts_every_share() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 4);
    let set = credentials();
    let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 2);
    let expected_commitment = fleet_ceremony::shares::commitment(&set.id, &set.to_secret_bytes());

    for (position, path) in paths.iter().enumerate() {
        let armored = std::fs::read_to_string(path).unwrap();
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(armored.ends_with("-----END AGE ENCRYPTED FILE-----\n"));

        let plaintext = age_decrypt(path, &custodians[position].identity);
        let record = ShareRecord::from_json(&plaintext).unwrap();
        assert_eq!(record.custodian, custodians[position].name);
        assert_eq!(usize::from(record.index), position + 1);
        assert_eq!(record.credential_set, set.id);
        assert_eq!(record.threshold, 2);
        assert_eq!(record.count, 4);
        assert_eq!(record.commitment, expected_commitment);

        let object: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
        assert_eq!(object["format"], "fleet-ceremony-share-v1");
    }
}

#[test]
fn combine_rejects_too_few_shares() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 5);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        3,
    );
    let error = combine(&inputs(&paths, &custodians, &[3, 1])).unwrap_err();
    assert!(
        matches!(
            error,
            ShareError::NotEnoughShares {
                given: 2,
                threshold: 3
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("hint: collect shares from at least 3")
    );
}

#[test]
fn combine_rejects_duplicate_share() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );

    let same_path = inputs(&paths, &custodians, &[0, 0]);
    let error = combine(&same_path).unwrap_err();
    assert!(
        matches!(error, ShareError::DuplicateFile { ref path, .. } if *path == paths[0]),
        "{error}"
    );

    let copy = dir.path().join("copy.age");
    std::fs::copy(&paths[1], &copy).unwrap();
    let mut with_copy = inputs(&paths, &custodians, &[1]);
    with_copy.push(ShareInput {
        path: copy.clone(),
        identity: custodians[1].identity.clone(),
    });
    let error = combine(&with_copy).unwrap_err();
    assert!(
        matches!(error, ShareError::DuplicateFile { ref path, .. } if *path == copy),
        "{error}"
    );

    let link = dir.path().join("link.age");
    std::fs::hard_link(&paths[2], &link).unwrap();
    let mut with_link = inputs(&paths, &custodians, &[2]);
    with_link.push(ShareInput {
        path: link.clone(),
        identity: custodians[2].identity.clone(),
    });
    let error = combine(&with_link).unwrap_err();
    assert!(
        matches!(error, ShareError::DuplicateFile { ref path, .. } if *path == link),
        "{error}"
    );
}

#[test]
fn combine_rejects_reencrypted_duplicate_index() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );

    // The same share, encrypted anew, has other ciphertext but the same index.
    let again = dir.path().join("again.age");
    rewrite_share(&paths[0], &custodians[0], &again, |_| {});
    let mut chosen = inputs(&paths, &custodians, &[0]);
    chosen.push(ShareInput {
        path: again.clone(),
        identity: custodians[0].identity.clone(),
    });
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::DuplicateIndex { ref path, index: 1, .. } if *path == again),
        "{error}"
    );
}

#[test]
fn combine_rejects_share_of_other_credential_set() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let first = split_to_files(
        dir.path(),
        "first",
        &credentials(),
        &context(),
        &custodians,
        2,
    );
    let second = split_to_files(
        dir.path(),
        "second",
        &credentials(),
        &context(),
        &custodians,
        2,
    );

    let mut chosen = inputs(&first, &custodians, &[0]);
    chosen.extend(inputs(&second, &custodians, &[1]));
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::Mismatch { ref path, field: "credential_set", .. } if *path == second[1]),
        "{error}"
    );
    assert!(error.to_string().contains(&second[1].display().to_string()));
}

#[test]
fn combine_rejects_share_of_other_ceremony() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let set = credentials();
    let first = split_to_files(dir.path(), "first", &set, &context(), &custodians, 2);
    let mut other = context();
    other.ceremony = "ceremony-2025-02-01".to_string();
    let second = split_to_files(dir.path(), "second", &set, &other, &custodians, 2);

    let mut chosen = inputs(&first, &custodians, &[0]);
    chosen.extend(inputs(&second, &custodians, &[1]));
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::Mismatch { ref path, field: "ceremony", .. } if *path == second[1]),
        "{error}"
    );
}

#[test]
fn combine_rejects_disagreeing_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );
    let edited = dir.path().join("edited.age");
    rewrite_share(&paths[1], &custodians[1], &edited, |record| {
        record["threshold"] = serde_json::json!(3);
    });

    let mut chosen = inputs(&paths, &custodians, &[0]);
    chosen.push(ShareInput {
        path: edited.clone(),
        identity: custodians[1].identity.clone(),
    });
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::Mismatch { ref path, field: "threshold", .. } if *path == edited),
        "{error}"
    );
}

#[test]
fn combine_rejects_wrong_format() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );
    let edited = dir.path().join("edited.age");
    rewrite_share(&paths[1], &custodians[1], &edited, |record| {
        record["format"] = serde_json::json!("fleet-ceremony-share-v0");
    });

    let mut chosen = inputs(&paths, &custodians, &[0]);
    chosen.push(ShareInput {
        path: edited.clone(),
        identity: custodians[1].identity.clone(),
    });
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::InvalidShareFile { ref path, .. } if *path == edited),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("format is \"fleet-ceremony-share-v0\""),
        "{error}"
    );
}

/// Changes one base64 character in the middle of the record's share, away from the
/// x-coordinate byte and the padding.
fn corrupt_share_field(record: &mut serde_json::Value) {
    let share = record["share"].as_str().unwrap().to_string();
    let middle = share.len() / 2;
    let replacement = if &share[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    let corrupted = format!("{}{replacement}{}", &share[..middle], &share[middle + 1..]);
    record["share"] = serde_json::json!(corrupted);
}

#[test]
fn combine_detects_corrupted_share() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 4);
    let set = credentials();
    let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 3);
    let corrupted = dir.path().join("corrupted.age");
    rewrite_share(&paths[1], &custodians[1], &corrupted, corrupt_share_field);

    // The corrupted share still decrypts and is well formed.
    let corrupted_input = ShareInput {
        path: corrupted.clone(),
        identity: custodians[1].identity.clone(),
    };
    assert_eq!(verify_share(&corrupted_input).unwrap().index, 2);

    // With exactly the threshold, the corrupted file is among the suspects.
    let mut exact = inputs(&paths, &custodians, &[0]);
    exact.push(corrupted_input.clone());
    exact.extend(inputs(&paths, &custodians, &[2]));
    let error = combine(&exact).unwrap_err();
    let ShareError::CommitmentMismatch {
        paths: ref suspects,
        ..
    } = error
    else {
        panic!("expected a commitment mismatch, got {error}");
    };
    assert_eq!(suspects.len(), 3);
    assert!(suspects.contains(&corrupted));

    // With one share more than the threshold, the corrupted file alone is named.
    let mut extra = exact.clone();
    extra.extend(inputs(&paths, &custodians, &[3]));
    let error = combine(&extra).unwrap_err();
    assert!(
        matches!(error, ShareError::CommitmentMismatch { ref paths, .. } if *paths == vec![corrupted.clone()]),
        "{error}"
    );
    let message = error.to_string();
    for pin in pins(&set) {
        assert!(!message.contains(&pin));
    }
}

#[test]
fn combine_rejects_wrong_identity() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );
    let mut chosen = inputs(&paths, &custodians, &[0, 1]);
    chosen[1].identity = custodians[2].identity.clone();

    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::Decrypt { ref path, .. } if *path == paths[1]),
        "{error}"
    );
    assert!(error.to_string().contains(&paths[1].display().to_string()));
    let verify_error = verify_share(&chosen[1]).unwrap_err();
    assert!(
        matches!(verify_error, ShareError::Decrypt { .. }),
        "{verify_error}"
    );
}

#[test]
fn combine_rejects_file_that_is_not_age() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 2);
    let paths = split_to_files(
        dir.path(),
        "shares",
        &credentials(),
        &context(),
        &custodians,
        2,
    );
    let plain = dir.path().join("plain.age");
    std::fs::write(&plain, b"{\"format\":\"fleet-ceremony-share-v1\"}\n").unwrap();
    let mut chosen = inputs(&paths, &custodians, &[0]);
    chosen.push(ShareInput {
        path: plain.clone(),
        identity: custodians[1].identity.clone(),
    });
    let error = combine(&chosen).unwrap_err();
    assert!(
        matches!(error, ShareError::InvalidShareFile { ref path, .. } if *path == plain),
        "{error}"
    );
    assert!(error.to_string().contains("not an age file"), "{error}");
}

/// Generates an unencrypted Ed25519 key with ssh-keygen; `None` when it is not installed.
fn ssh_keygen_ed25519(path: &Path) -> Option<String> {
    let status = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "custodian@example",
            "-f",
        ])
        .arg(path)
        .status();
    match status {
        Ok(status) => {
            assert!(status.success(), "ssh-keygen failed");
            Some(std::fs::read_to_string(path.with_extension("pub")).unwrap())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("cannot run ssh-keygen: {error}"),
    }
}

#[test]
fn ssh_ed25519_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut custodians = Vec::new();
    for position in 0..3 {
        let key = dir.path().join(format!("id_ed25519_{position}"));
        let Some(public) = ssh_keygen_ed25519(&key) else {
            println!("skipped: ssh-keygen is not installed, so no SSH key can be made");
            return;
        };
        custodians.push(Custodian {
            name: format!("ssh-custodian-{position}"),
            recipient: public.trim_end().to_string(),
            identity: key,
        });
    }
    let set = credentials();
    let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 2);

    let recovered = combine(&inputs(&paths, &custodians, &[2, 0])).unwrap();
    assert_recovered(&recovered, &set, 2, 3);

    let plaintext = age_decrypt(&paths[1], &custodians[1].identity);
    let record = ShareRecord::from_json(&plaintext).unwrap();
    assert_eq!(record.custodian, "ssh-custodian-1");

    let mut wrong = inputs(&paths, &custodians, &[0, 1]);
    wrong[1].identity = custodians[0].identity.clone();
    let error = combine(&wrong).unwrap_err();
    assert!(
        matches!(error, ShareError::Decrypt { ref path, .. } if *path == paths[1]),
        "{error}"
    );
}

/// A log writer that keeps everything written to it.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_and_errors_contain_no_pin() {
    let dir = tempfile::tempdir().unwrap();
    let custodians = age_custodians(dir.path(), 3);
    let set = credentials();
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();

    let mut messages = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let paths = split_to_files(dir.path(), "shares", &set, &context(), &custodians, 2);
        let recovered = combine(&inputs(&paths, &custodians, &[0, 1])).unwrap();
        messages.push(format!("{recovered:?}"));
        messages.push(
            combine(&inputs(&paths, &custodians, &[0]))
                .unwrap_err()
                .to_string(),
        );
        for input in inputs(&paths, &custodians, &[0, 1, 2]) {
            messages.push(format!("{:?}", verify_share(&input).unwrap()));
        }
    });

    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("recombined the credential set"), "{log}");
    assert!(log.contains(&set.id));
    for pin in pins(&set) {
        assert!(!log.contains(&pin));
        for message in &messages {
            assert!(!message.contains(&pin), "{message}");
        }
    }
}
