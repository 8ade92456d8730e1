//! `shares combine --check-login` and `shares reshare` through the binary, on the demo's
//! SoftHSM tokens, with the age CLI and ssh-keygen as independent peers.
//!
//! Each test runs its own demo in a new folder. SoftHSM reads `SOFTHSM2_CONF` once per
//! process, so every child process gets it in its own environment.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use assert_cmd::cargo::cargo_bin_cmd;

/// The age CLI used as the independent implementation.
const AGE: &str = "/usr/bin/age";
const AGE_KEYGEN: &str = "/usr/bin/age-keygen";
const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// Members of the demo fleet and their token labels, in runbook order.
const DEMO_MEMBERS: [(&str, &str); 3] = [
    ("zurich-1", "demo-zurich-1"),
    ("frankfurt-1", "demo-frankfurt-1"),
    ("dublin-1", "demo-dublin-1"),
];

/// A finished demo in a temporary folder.
struct Demo {
    temp: tempfile::TempDir,
    root: PathBuf,
}

impl Demo {
    fn run() -> Demo {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("demo");
        cargo_bin_cmd!("fleet-ceremony")
            .arg("demo")
            .arg("--dir")
            .arg(&root)
            .assert()
            .success();
        Demo { temp, root }
    }

    /// A folder for the test's own files, beside the demo.
    fn work(&self) -> &Path {
        self.temp.path()
    }

    fn conf(&self) -> PathBuf {
        self.root.join("softhsm2.conf")
    }

    /// The demo custodian's share file and identity.
    fn old_share(&self, custodian: &str) -> (PathBuf, PathBuf) {
        (
            self.root.join(format!("shares/{custodian}.age")),
            self.root
                .join(format!("custodians/{custodian}/identity.txt")),
        )
    }

    /// `fleet-ceremony ARGS` with SoftHSM configured for the demo tokens.
    fn cli(&self) -> Command {
        let mut command = cargo_bin_cmd!("fleet-ceremony");
        command.env("SOFTHSM2_CONF", self.conf());
        command
    }
}

/// Adds one `--share` and `--identity` pair per share.
fn with_shares(command: &mut Command, shares: &[(PathBuf, PathBuf)]) {
    for (share, identity) in shares {
        command
            .arg("--share")
            .arg(share)
            .arg("--identity")
            .arg(identity);
    }
}

/// Makes an age identity with `age-keygen` and writes its recipient file; returns both
/// paths. The recipient file has `age-keygen -y` output under a comment line.
fn age_custodian(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let identity = dir.join(format!("{name}.key"));
    let status = StdCommand::new(AGE_KEYGEN)
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(status.status.success(), "age-keygen failed");
    let output = StdCommand::new(AGE_KEYGEN)
        .arg("-y")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(output.status.success(), "age-keygen -y failed");
    let recipient = String::from_utf8(output.stdout).unwrap();
    let file = dir.join(format!("{name}.pub"));
    std::fs::write(&file, format!("# age recipient of {name}\n{recipient}")).unwrap();
    (identity, file)
}

/// Reshares the demo's alice and carol shares to dave, erin and frank, threshold 2, into
/// `<work>/new`. Returns the new folder.
fn reshare_to_three(demo: &Demo) -> PathBuf {
    let work = demo.work();
    let (_, dave) = age_custodian(work, "dave");
    let (_, erin) = age_custodian(work, "erin");
    let (frank_identity, _) = age_custodian(work, "frank");

    // erin's file as a Windows editor saves it: CRLF, comments and blank lines.
    let erin_recipient = recipient_line(&erin);
    let erin_crlf = work.join("erin-crlf.pub");
    std::fs::write(
        &erin_crlf,
        format!("# erin, laptop\r\n\r\n   # rotated 2025\r\n{erin_recipient}\r\n\r\n"),
    )
    .unwrap();
    let frank_recipient = age_public(&frank_identity);

    let out = work.join("new");
    let mut command = demo.cli();
    command.args(["shares", "reshare"]);
    with_shares(
        &mut command,
        &[demo.old_share("alice"), demo.old_share("carol")],
    );
    command
        .args(["--threshold", "2"])
        .arg("--custodian")
        .arg(format!("dave=@{}", dave.display()))
        .arg("--custodian")
        .arg(format!("erin=@{}", erin_crlf.display()))
        .arg("--custodian")
        .arg(format!("frank={frank_recipient}"))
        .arg("--out-dir")
        .arg(&out)
        .assert()
        .success();
    out
}

/// The recipient line of a recipient file written by [`age_custodian`].
fn recipient_line(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().find(|line| line.starts_with("age1")).unwrap();
    line.to_string()
}

/// The recipient of an age identity file, as `age-keygen -y` prints it.
fn age_public(identity: &Path) -> String {
    let output = StdCommand::new(AGE_KEYGEN)
        .arg("-y")
        .arg(identity)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Runs `shares combine --reveal` and returns the PIN table on standard output.
fn revealed_pins(demo: &Demo, shares: &[(PathBuf, PathBuf)]) -> String {
    let mut command = demo.cli();
    command.args(["shares", "combine", "--reveal"]);
    with_shares(&mut command, shares);
    let output = command.assert().success().get_output().stdout.clone();
    String::from_utf8(output).unwrap()
}

/// Decrypts a share file with the age CLI and returns the parsed record.
fn age_decrypt(share: &Path, identity: &Path) -> serde_json::Value {
    let output = StdCommand::new(AGE)
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
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stderr.clone()).unwrap()
}

#[test]
fn combine_check_login_on_demo_shares() {
    let demo = Demo::run();
    let mut command = demo.cli();
    command.args(["shares", "combine", "--check-login"]);
    with_shares(
        &mut command,
        &[demo.old_share("alice"), demo.old_share("carol")],
    );
    let assert = command.assert().success();
    let stdout = stdout_of(&assert);

    let logins: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("login ok: "))
        .collect();
    let expected: Vec<String> = DEMO_MEMBERS
        .iter()
        .map(|(member, token)| format!("login ok: {member} token {token}"))
        .collect();
    assert_eq!(logins, expected);
}

#[test]
fn check_login_with_explicit_module() {
    let demo = Demo::run();
    let mut command = demo.cli();
    command.args([
        "shares",
        "combine",
        "--check-login",
        "--module",
        SOFTHSM_MODULE,
    ]);
    with_shares(
        &mut command,
        &[demo.old_share("bob"), demo.old_share("carol")],
    );
    let stdout = stdout_of(&command.assert().success());
    assert_eq!(stdout.matches("login ok: ").count(), 3, "{stdout}");
}

#[test]
fn check_login_names_missing_token() {
    let demo = Demo::run();
    let tokens = demo.work().join("empty-tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = demo.work().join("empty.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();

    let mut command = demo.cli();
    command
        .env("SOFTHSM2_CONF", &conf)
        .args(["shares", "combine", "--check-login"]);
    with_shares(
        &mut command,
        &[demo.old_share("alice"), demo.old_share("bob")],
    );
    let assert = command.assert().failure();
    let stderr = stderr_of(&assert);
    assert!(
        stderr.contains("cannot find the token \"demo-zurich-1\" of member zurich-1"),
        "{stderr}"
    );
    assert!(stderr.contains("no login was tried"), "{stderr}");
    assert!(!stdout_of(&assert).contains("login ok"));
}

#[test]
fn check_login_stops_at_wrong_pin() {
    let demo = Demo::run();
    let shares = [demo.old_share("alice"), demo.old_share("bob")];

    // Change frankfurt-1's user PIN behind the tool's back, with OpenSC's pkcs11-tool.
    let table = revealed_pins(&demo, &shares);
    let user_pin = table
        .lines()
        .find(|line| line.starts_with("frankfurt-1\t"))
        .and_then(|line| line.split('\t').nth(3))
        .unwrap()
        .to_string();
    let changed = StdCommand::new("pkcs11-tool")
        .env("SOFTHSM2_CONF", demo.conf())
        .args([
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            "demo-frankfurt-1",
        ])
        .args(["--login", "--pin", &user_pin, "--change-pin"])
        .args(["--new-pin", "wrong-pin-1234"])
        .output()
        .unwrap();
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );

    let mut command = demo.cli();
    command.args(["shares", "combine", "--check-login"]);
    with_shares(&mut command, &shares);
    let assert = command.assert().failure();
    let stdout = stdout_of(&assert);
    let stderr = stderr_of(&assert);
    assert!(stdout.contains("login ok: zurich-1 token demo-zurich-1"));
    assert!(!stdout.contains("login ok: frankfurt-1"), "{stdout}");
    assert!(!stdout.contains("login ok: dublin-1"), "{stdout}");
    assert!(
        stderr.contains("login check failed for member frankfurt-1, token \"demo-frankfurt-1\""),
        "{stderr}"
    );
    assert!(stderr.contains("not tried after it: dublin-1"), "{stderr}");
    assert!(
        stderr.contains("C_Login returned CKR_PIN_INCORRECT"),
        "{stderr}"
    );
    assert!(!stderr.contains(&user_pin));
}

#[test]
fn reshare_then_combine_logs_in() {
    let demo = Demo::run();
    let old_pins = revealed_pins(&demo, &[demo.old_share("alice"), demo.old_share("bob")]);
    let out = reshare_to_three(&demo);

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["dave.age", "erin.age", "frank.age"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out.join("erin.age"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let work = demo.work();
    let new_shares = [
        (out.join("erin.age"), work.join("erin.key")),
        (out.join("frank.age"), work.join("frank.key")),
    ];
    let mut command = demo.cli();
    command.args(["shares", "combine", "--check-login"]);
    with_shares(&mut command, &new_shares);
    let stdout = stdout_of(&command.assert().success());
    for (member, token) in DEMO_MEMBERS {
        assert!(
            stdout.contains(&format!("login ok: {member} token {token}")),
            "{stdout}"
        );
    }

    // The same PINs come back from the new shares.
    assert_eq!(revealed_pins(&demo, &new_shares), old_pins);
}

#[test]
fn reshared_file_decrypts_with_age_cli() {
    let demo = Demo::run();
    let out = reshare_to_three(&demo);
    let work = demo.work();
    let (old_share, old_identity) = demo.old_share("alice");
    let old = age_decrypt(&old_share, &old_identity);

    let record = age_decrypt(&out.join("erin.age"), &work.join("erin.key"));
    assert_eq!(record["format"], "fleet-ceremony-share-v1");
    assert_eq!(record["custodian"], "erin");
    assert_eq!(record["threshold"], 2);
    assert_eq!(record["count"], 3);
    assert_eq!(record["index"], 2);
    assert_eq!(record["ceremony"], old["ceremony"]);
    assert_eq!(record["fleet"], old["fleet"]);
    assert_ne!(record["credential_set"], old["credential_set"]);
    assert_ne!(record["commitment"], old["commitment"]);

    // Each file is encrypted to its own custodian only.
    let other = StdCommand::new(AGE)
        .arg("-d")
        .arg("-i")
        .arg(work.join("dave.key"))
        .arg(out.join("erin.age"))
        .output()
        .unwrap();
    assert!(!other.status.success());
}

#[test]
fn reshare_rejects_old_and_new_mixed() {
    let demo = Demo::run();
    let out = reshare_to_three(&demo);
    let new_share = (out.join("dave.age"), demo.work().join("dave.key"));
    let (old_path, old_identity) = demo.old_share("carol");

    for (first, second, named) in [
        (
            new_share.clone(),
            (old_path.clone(), old_identity.clone()),
            &old_path,
        ),
        (
            (old_path.clone(), old_identity.clone()),
            new_share.clone(),
            &new_share.0,
        ),
    ] {
        let mut command = demo.cli();
        command.args(["shares", "combine", "--check-login"]);
        with_shares(&mut command, &[first, second]);
        let assert = command.assert().failure();
        let stderr = stderr_of(&assert);
        let expected = format!("share file {} has credential_set", named.display());
        assert!(stderr.contains(&expected), "{stderr}");
        assert!(!stdout_of(&assert).contains("login ok"));
    }
}

#[test]
fn reshare_rejects_bad_threshold_before_writing() {
    let demo = Demo::run();
    let work = demo.work();
    let custodians: Vec<PathBuf> = ["dave", "erin", "frank"]
        .iter()
        .map(|name| age_custodian(work, name).1)
        .collect();

    for (threshold, expected) in [
        ("1", "threshold 1 is too low"),
        (
            "4",
            "threshold 4 is larger than the number of custodians (3)",
        ),
    ] {
        let out = work.join(format!("new-{threshold}"));
        let mut command = demo.cli();
        command.args(["shares", "reshare", "--threshold", threshold]);
        with_shares(
            &mut command,
            &[demo.old_share("alice"), demo.old_share("bob")],
        );
        for (name, file) in ["dave", "erin", "frank"].iter().zip(&custodians) {
            command
                .arg("--custodian")
                .arg(format!("{name}=@{}", file.display()));
        }
        let assert = command.arg("--out-dir").arg(&out).assert().failure();
        let stderr = stderr_of(&assert);
        assert!(stderr.contains(expected), "{stderr}");
        // Rejected before any share was decrypted, and nothing was written.
        assert!(!stderr.contains("recombined"), "{stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn reshare_to_ssh_ed25519_custodian() {
    let demo = Demo::run();
    let work = demo.work();
    let key = work.join("gus_ed25519");
    let keygen = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gus@example", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let (dave_identity, dave) = age_custodian(work, "dave");

    let out = work.join("new");
    let mut command = demo.cli();
    command.args(["shares", "reshare", "--threshold", "2"]);
    with_shares(
        &mut command,
        &[demo.old_share("bob"), demo.old_share("carol")],
    );
    command
        .arg("--custodian")
        .arg(format!("gus=@{}.pub", key.display()))
        .arg("--custodian")
        .arg(format!("dave=@{}", dave.display()))
        .arg("--out-dir")
        .arg(&out)
        .assert()
        .success();

    let mut command = demo.cli();
    command.args(["shares", "combine", "--check-login"]);
    with_shares(
        &mut command,
        &[
            (out.join("gus.age"), key.clone()),
            (out.join("dave.age"), dave_identity),
        ],
    );
    let stdout = stdout_of(&command.assert().success());
    assert_eq!(stdout.matches("login ok: ").count(), 3, "{stdout}");

    // The age CLI reads the SSH share with the SSH private key as well.
    let record = age_decrypt(&out.join("gus.age"), &key);
    assert_eq!(record["custodian"], "gus");
}

#[test]
fn reshare_rejects_recipient_file_with_two() {
    let demo = Demo::run();
    let work = demo.work();
    let (_, dave) = age_custodian(work, "dave");
    let (_, erin) = age_custodian(work, "erin");
    let both = work.join("both.pub");
    std::fs::write(
        &both,
        format!(
            "# two keys\n{}\n{}\n",
            recipient_line(&dave),
            recipient_line(&erin)
        ),
    )
    .unwrap();

    let out = work.join("new");
    let mut command = demo.cli();
    command.args(["shares", "reshare", "--threshold", "2"]);
    with_shares(
        &mut command,
        &[demo.old_share("alice"), demo.old_share("bob")],
    );
    let assert = command
        .arg("--custodian")
        .arg(format!("dave=@{}", dave.display()))
        .arg("--custodian")
        .arg(format!("erin=@{}", both.display()))
        .arg("--out-dir")
        .arg(&out)
        .assert()
        .failure();
    let stderr = stderr_of(&assert);
    let expected = format!("invalid recipients file {} line 3", both.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("the first is on line 2"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn reshare_never_overwrites_shares() {
    let demo = Demo::run();
    let work = demo.work();
    let (_, dave) = age_custodian(work, "dave");
    let (_, erin) = age_custodian(work, "erin");
    let out = work.join("new");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("erin.age"), b"an earlier share\n").unwrap();

    let mut command = demo.cli();
    command.args(["shares", "reshare", "--threshold", "2"]);
    with_shares(
        &mut command,
        &[demo.old_share("alice"), demo.old_share("bob")],
    );
    let assert = command
        .arg("--custodian")
        .arg(format!("dave=@{}", dave.display()))
        .arg("--custodian")
        .arg(format!("erin=@{}", erin.display()))
        .arg("--out-dir")
        .arg(&out)
        .assert()
        .failure();
    let stderr = stderr_of(&assert);
    assert!(stderr.contains("erin.age already exists"), "{stderr}");
    assert!(!out.join("dave.age").exists());
    assert_eq!(
        std::fs::read(out.join("erin.age")).unwrap(),
        b"an earlier share\n"
    );
}

/// Re-encrypts a demo share with the age CLI to `recipients` and writes it to `name` in
/// the test's folder. The plaintext passes through a pipe only.
fn reencrypt(demo: &Demo, custodian: &str, recipients: &[String], name: &str) -> PathBuf {
    let (share, identity) = demo.old_share(custodian);
    let out = demo.work().join(name);
    let mut encrypt = StdCommand::new(AGE);
    encrypt.arg("-a").arg("-o").arg(&out);
    for recipient in recipients {
        encrypt.arg("-r").arg(recipient);
    }
    let mut decrypt = StdCommand::new(AGE)
        .arg("-d")
        .arg("-i")
        .arg(&identity)
        .arg(&share)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = encrypt
        .stdin(decrypt.stdout.take().unwrap())
        .status()
        .unwrap();
    assert!(decrypt.wait().unwrap().success());
    assert!(status.success());
    out
}

#[test]
fn share_with_two_recipients_rejected() {
    let demo = Demo::run();
    let (_, alice_identity) = demo.old_share("alice");
    let (_, bob_identity) = demo.old_share("bob");
    let alice = age_public(&alice_identity);
    let bob = age_public(&bob_identity);

    // The same share re-encrypted by the stock age CLI to alice alone still verifies.
    let single = reencrypt(&demo, "alice", std::slice::from_ref(&alice), "single.age");
    let mut verify = demo.cli();
    verify.args(["shares", "verify"]).arg(&single);
    verify.arg("--identity").arg(&alice_identity);
    verify.assert().success();

    let shared = reencrypt(&demo, "alice", &[alice, bob], "two.age");
    let mut verify = demo.cli();
    verify.args(["shares", "verify"]).arg(&shared);
    verify.arg("--identity").arg(&alice_identity);
    let stderr = stderr_of(&verify.assert().failure());
    assert!(stderr.contains("encrypted to 2 recipients"), "{stderr}");
    assert!(stderr.contains("two.age"), "{stderr}");

    let mut combine = demo.cli();
    combine.args(["shares", "combine"]);
    with_shares(
        &mut combine,
        &[(shared, alice_identity), demo.old_share("bob")],
    );
    let stderr = stderr_of(&combine.assert().failure());
    assert!(stderr.contains("encrypted to 2 recipients"), "{stderr}");
}

#[test]
fn truncated_share_named_damaged() {
    let demo = Demo::run();
    let (share, identity) = demo.old_share("alice");
    let bytes = std::fs::read(&share).unwrap();
    let truncated = demo.work().join("truncated.age");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let mut verify = demo.cli();
    verify.args(["shares", "verify"]).arg(&truncated);
    verify.arg("--identity").arg(&identity);
    let stderr = stderr_of(&verify.assert().failure());
    assert!(stderr.contains("truncated.age"), "{stderr}");
    assert!(stderr.contains("damaged or truncated"), "{stderr}");
    assert!(!stderr.contains("identity belongs"), "{stderr}");
}
