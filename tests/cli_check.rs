//! End-to-end tests of `fleet-ceremony check` and of the traps `run` must stop at, run
//! against SoftHSM2 token folders made for each test.

#![cfg(feature = "ceremony")]

mod common;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use common::{
    CeremonyFolder, SOFTHSM_MODULE, files_under, fleet_ceremony, run_tool_ok, snapshot,
    stderr_text, stdout_text, write_softhsm_conf,
};

const RUNBOOK_DATA: &str = "tests/data/runbooks";

/// Operator signer block of ceremonies/demo-fleet.yaml.
const PKCS11_SIGNER: &str = "  signer:
    pkcs11:
      token:
        label: demo-operator
      key_label: operator-signing-key
";

/// Every mechanism the demo ceremony needs on SoftHSM 2.6.1.
const NEEDED_MECHANISMS: &str = "CKM_EC_KEY_PAIR_GEN,CKM_ECDSA,CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_RSA_PKCS_OAEP,CKM_AES_KEY_GEN,CKM_AES_KEY_WRAP_PAD";

/// Returns `text` with `from` replaced by `to`. Panics when `from` is absent, so a change
/// of the demo runbook cannot silently turn a test into a no-op.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in the runbook");
    text.replacen(from, to, 1)
}

fn ed25519(text: String) -> String {
    replace_once(&text, "algorithm: ecdsa-p256", "algorithm: ed25519")
}

/// Keeps only the first member of the demo runbook.
fn one_member(text: String) -> String {
    let start = text.find("  - name: frankfurt-1").unwrap();
    let end = text.find("custodians:").unwrap();
    format!("{}{}", &text[..start], &text[end..])
}

/// Makes the operator sign with the openssl key file of the ceremony folder.
fn key_file_signer(text: String) -> String {
    replace_once(
        &text,
        PKCS11_SIGNER,
        "  signer:\n    key_file: operator-key.pem\n",
    )
}

fn fixtures(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(RUNBOOK_DATA)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_str().unwrap();
            name.starts_with(prefix) && name.ends_with(".yaml")
        })
        .collect();
    files.sort();
    files
}

fn assert_failed_with(output: &std::process::Output, parts: &[&str]) {
    assert!(
        !output.status.success(),
        "succeeded:\n{}",
        stdout_text(output)
    );
    let stderr = stderr_text(output);
    for part in parts {
        assert!(stderr.contains(part), "{part:?} not in:\n{stderr}");
    }
}

/// Runs the auditor's `bundle sign` on the ceremony's request, writing the signature to
/// `out`, and with `log` appending to the log that [`init_log`] made.
fn auditor_sign(folder: &CeremonyFolder, out: &str, log: bool) -> std::process::Output {
    let mut args = vec![
        "bundle",
        "sign",
        "--request",
        "ceremony/demo-fleet/signing-request.json",
        "--document",
        "ceremony/demo-fleet/fleet-key.json",
        "--key",
        "auditor-key.pem",
        "--out",
        out,
    ];
    if log {
        args.extend(["--log", "log", "--log-key", "log-key"]);
    }
    folder.run(&args)
}

/// Creates the auditor's log in the folder's `log`, with its key in `log-key`.
fn init_log(folder: &CeremonyFolder) {
    let init = folder.run(&[
        "log",
        "init",
        "log",
        "--origin",
        "test.example/log",
        "--key-out",
        "log-key",
    ]);
    assert!(init.status.success(), "{}", stderr_text(&init));
}

#[test]
fn check_rejects_fixtures() {
    // The fixtures name files relative to the crate root, as tests/runbook.rs reads them.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let temp = tempfile::tempdir().unwrap();
    let conf = temp.path().join("softhsm2.conf");
    let tokens = temp.path().join("tokens");
    write_softhsm_conf(&conf, &tokens, "");
    let data_before = snapshot(&root.join(RUNBOOK_DATA));
    let files = fixtures("fail_");
    assert!(files.len() >= 30);

    let mut mismatches = Vec::new();
    for path in &files {
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let output = fleet_ceremony(&conf)
            .current_dir(root)
            .arg("check")
            .arg(path)
            .write_stdin("")
            .output()
            .unwrap();
        let stderr = stderr_text(&output);
        if output.status.success() {
            mismatches.push(format!("{}: check passed", path.display()));
        } else if !stderr.contains(expected.trim_end()) {
            mismatches.push(format!(
                "{}:\n  expected: {expected:?}\n  stderr:   {stderr:?}",
                path.display()
            ));
        }
    }

    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(files_under(&tokens).is_empty());
    assert!(data_before == snapshot(&root.join(RUNBOOK_DATA)));
}

#[test]
fn check_prints_growth_policy() {
    let folder = CeremonyFolder::new(|text| {
        replace_once(
            &text,
            "  label: demo-fleet-key\n",
            "  label: demo-fleet-key\n  growth: trusted-wrap\n",
        )
    });

    let output = folder.run(&["check", "runbook.yaml"]);

    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(
        stdout.contains("Fleet key: ecdsa-p256, label \"demo-fleet-key\"\n  growth: trusted-wrap, the origin's copy stays extractable"),
        "{stdout}"
    );
    assert!(folder.token_files().is_empty());
}

#[test]
fn check_passes_fresh_tokens() {
    let folder = CeremonyFolder::new(|text| text);

    let output = folder.run(&["check", "runbook.yaml"]);

    assert!(output.status.success(), "{}", stderr_text(&output));
    let stdout = stdout_text(&output);
    assert!(stdout.contains("Fleet demo-fleet, epoch 1"), "{stdout}");
    for label in ["demo-zurich-1", "demo-frankfurt-1", "demo-dublin-1"] {
        assert!(stdout.contains(&format!("\"{label}\"")), "{stdout}");
    }
    assert!(stdout.contains("check passed"), "{stdout}");
    assert!(folder.token_files().is_empty());
    assert!(!folder.path("ceremony").exists());
    assert!(!folder.path("shares").exists());
}

#[test]
fn check_rejects_existing_token() {
    let folder = CeremonyFolder::new(|text| text);
    let init = std::process::Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", "demo-dublin-1"])
        .args(["--so-pin", "12345678", "--pin", "12345678"])
        .env("SOFTHSM2_CONF", folder.conf())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr_text(&init));
    let tokens_before = snapshot(&folder.path("tokens"));
    assert!(!tokens_before.is_empty());

    let check = folder.run(&["check", "runbook.yaml"]);
    assert_failed_with(
        &check,
        &["\"demo-dublin-1\" already exists", "erase its keys"],
    );

    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_failed_with(
        &run,
        &["\"demo-dublin-1\" already exists", "nothing was changed"],
    );
    assert!(!folder.path("ceremony/demo-fleet/transcript.jsonl").exists());
    assert!(!folder.path("shares").exists());
    assert!(tokens_before == snapshot(&folder.path("tokens")));
}

#[test]
fn check_rejects_missing_mechanism() {
    // NOTE: SoftHSM 2.6.1 does not disable the first name of a `-`-prefixed
    // `slots.mechanisms` list (seen with `pkcs11-tool -M`), so both cases list the
    // enabled mechanisms instead.
    let without_pad = NEEDED_MECHANISMS.replace(",CKM_AES_KEY_WRAP_PAD", ",CKM_AES_KEY_WRAP");
    let cases = [(NEEDED_MECHANISMS, true), (without_pad.as_str(), false)];

    for (mechanisms, passes) in cases {
        let folder = CeremonyFolder::new(|text| text);
        write_softhsm_conf(
            &folder.conf(),
            &folder.path("tokens"),
            &format!("slots.mechanisms = {mechanisms}\n"),
        );

        let output = folder.run(&["check", "runbook.yaml"]);

        if passes {
            assert!(output.status.success(), "{}", stderr_text(&output));
        } else {
            assert_failed_with(&output, &["does not support CKM_AES_KEY_WRAP_PAD"]);
        }
        assert!(folder.token_files().is_empty());
    }
}

#[test]
fn check_rejects_replicated_ed25519() {
    let folder = CeremonyFolder::new(ed25519);

    let output = folder.run(&["check", "runbook.yaml"]);

    assert_failed_with(&output, &["fleet_key.algorithm", "ecdsa-p256"]);
    assert!(folder.token_files().is_empty());
}

#[test]
fn run_single_ed25519_member() {
    let folder = CeremonyFolder::new(|text| key_file_signer(one_member(ed25519(text))));
    let work = "ceremony/demo-fleet";

    let check = folder.run(&["check", "runbook.yaml"]);
    assert!(check.status.success(), "{}", stderr_text(&check));
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    let sign = auditor_sign(&folder, &format!("{work}/auditor-signature.json"), false);
    assert!(sign.status.success(), "{}", stderr_text(&sign));
    let countersign = folder.run(&["bundle", "countersign", "runbook.yaml"]);
    assert!(
        countersign.status.success(),
        "{}",
        stderr_text(&countersign)
    );
    let finish = folder.run(&["run", "runbook.yaml"]);
    assert!(finish.status.success(), "{}", stderr_text(&finish));
    let trust = folder.write_trust();
    // SoftHSM has no hardware attestation, so the verifier must allow it explicitly.
    let verify = folder.run(&[
        "verify",
        "evidence/demo-fleet",
        "--trust",
        &trust.display().to_string(),
        "--allow-unattested",
    ]);
    assert_eq!(verify.status.code(), Some(0), "{}", stdout_text(&verify));

    let text = run_tool_ok(
        folder.root(),
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-in",
            "evidence/demo-fleet/fleet-key.pem",
            "-text",
            "-noout",
        ],
    );
    assert!(text.starts_with("ED25519 Public-Key:"), "{text}");
}

#[test]
fn run_needs_confirmation() {
    let folder = CeremonyFolder::new(|text| text);
    let before = snapshot(folder.root());

    let output = folder.run(&["run", "runbook.yaml"]);

    assert_failed_with(&output, &["confirmation needed", "--yes"]);
    assert!(before == snapshot(folder.root()));
}

#[test]
fn check_rejects_existing_share() {
    let folder = CeremonyFolder::new(|text| text);
    std::fs::create_dir(folder.path("shares")).unwrap();
    std::fs::write(folder.path("shares/alice.age"), "an older share\n").unwrap();

    let output = folder.run(&["check", "runbook.yaml"]);

    assert_failed_with(&output, &["shares/alice.age", "exists already"]);
    assert!(folder.token_files().is_empty());
}

/// OpenSC's PKCS#11 module that logs every call and forwards it to `PKCS11SPY`.
const SPY_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";

#[test]
fn countersign_rejects_wrong_pin() {
    // The operator token is reached through OpenSC's pkcs11-spy, which logs every call, so
    // the test can count the logins a wrong PIN causes.
    let folder = CeremonyFolder::new(|text| {
        text.replace(
            "      key_label: operator-signing-key",
            &format!("      module: {SPY_MODULE}\n      key_label: operator-signing-key"),
        )
    });
    let operator_conf = folder.path("operator/softhsm2.conf");
    write_softhsm_conf(&operator_conf, &folder.path("operator/tokens"), "");
    std::fs::remove_file(folder.path("keys-public/operator.pem")).unwrap();
    let init = fleet_ceremony(&operator_conf)
        .current_dir(folder.root())
        .args(["operator", "init", "--module", SOFTHSM_MODULE])
        .args(["--token-label", "demo-operator"])
        .args(["--key-label", "operator-signing-key"])
        .args([
            "--public-key-out",
            "keys-public/operator.pem",
            "--pin-stdin",
        ])
        .write_stdin("operator-so-pin\noperator-user-pin\n")
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", stderr_text(&init));

    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    let work = "ceremony/demo-fleet";
    let sign = auditor_sign(&folder, &format!("{work}/auditor-signature.json"), false);
    assert!(sign.status.success(), "{}", stderr_text(&sign));
    let spy_log = folder.path("spy.log");
    let countersign = |pin: &str| {
        let _ = std::fs::remove_file(&spy_log);
        fleet_ceremony(&operator_conf)
            .current_dir(folder.root())
            .env("PKCS11SPY", SOFTHSM_MODULE)
            .env("PKCS11SPY_OUTPUT", &spy_log)
            .args(["bundle", "countersign", "runbook.yaml", "--pin-stdin"])
            .write_stdin(format!("{pin}\n"))
            .output()
            .unwrap()
    };
    let signature = folder.path(&format!("{work}/operator-signature.json"));

    let wrong = countersign("not-the-operator-pin");
    assert_failed_with(&wrong, &["wrong PIN", "C_Login returned CKR_PIN_INCORRECT"]);
    assert!(!signature.exists());
    // One attempt only: the tool never retries a PIN, since tokens lock after a few.
    let calls = std::fs::read_to_string(&spy_log).unwrap();
    let logins = calls
        .lines()
        .filter(|line| {
            line.split_once(": ")
                .is_some_and(|(_, call)| call == "C_Login")
        })
        .count();
    assert_eq!(logins, 1, "{calls}");

    let right = countersign("operator-user-pin");
    assert!(right.status.success(), "{}", stderr_text(&right));
    assert!(signature.exists());
}

#[test]
fn error_names_cause_once() {
    let folder = CeremonyFolder::new(|text| text);

    let output = folder.run(&["verify", "evidence/demo-fleet", "--trust", "missing.yaml"]);

    assert_failed_with(&output, &["missing.yaml", "(os error 2)"]);
    let stderr = stderr_text(&output);
    assert_eq!(stderr.matches("(os error 2)").count(), 1, "{stderr}");
}

#[test]
fn finish_rejects_document_changed_after_run() {
    let folder = CeremonyFolder::new(|text| key_file_signer(one_member(ed25519(text))));
    let work = folder.path("ceremony/demo-fleet");
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));

    // Someone with the work folder changes the document and the request to match it.
    let document_path = work.join("fleet-key.json");
    let mut document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&document_path).unwrap()).unwrap();
    document["members"][0]["site"] = serde_json::Value::from("Elsewhere");
    let mut bytes = serde_json::to_vec_pretty(&document).unwrap();
    bytes.push(b'\n');
    std::fs::write(&document_path, &bytes).unwrap();
    let request_path = work.join("signing-request.json");
    let mut request: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&request_path).unwrap()).unwrap();
    request["document_sha256"] = serde_json::Value::from(hex::encode(Sha256::digest(&bytes)));
    let mut request_bytes = serde_json::to_vec_pretty(&request).unwrap();
    request_bytes.push(b'\n');
    std::fs::write(&request_path, request_bytes).unwrap();

    let sign = auditor_sign(&folder, "ceremony/demo-fleet/auditor-signature.json", false);
    assert!(sign.status.success(), "{}", stderr_text(&sign));
    let countersign = folder.run(&["bundle", "countersign", "runbook.yaml"]);
    assert!(
        countersign.status.success(),
        "{}",
        stderr_text(&countersign)
    );

    let finish = folder.run(&["run", "runbook.yaml"]);
    assert_failed_with(
        &finish,
        &["fleet-key.json", "changed after the run wrote it"],
    );
    assert!(!folder.path("evidence/demo-fleet").exists());

    // A changed runbook is caught the same way.
    let runbook = folder.path("runbook.yaml");
    let text = std::fs::read_to_string(&runbook).unwrap();
    std::fs::write(&runbook, format!("{text}# edited\n")).unwrap();
    let finish = folder.run(&["run", "runbook.yaml"]);
    assert_failed_with(&finish, &["runbook", "changed since"]);
}

#[test]
fn sign_with_log_checks_outputs_before_logging() {
    let folder = CeremonyFolder::new(|text| key_file_signer(one_member(ed25519(text))));
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    init_log(&folder);
    std::fs::create_dir_all(folder.path("usb")).unwrap();
    std::fs::write(folder.path("usb/auditor-signature.json"), b"earlier").unwrap();

    let sign = |out: &str| auditor_sign(&folder, out, true);
    let refused = sign("usb/auditor-signature.json");
    assert_failed_with(&refused, &["usb/auditor-signature.json", "exists"]);
    assert_eq!(
        std::fs::read(folder.path("usb/auditor-signature.json")).unwrap(),
        b"earlier"
    );

    // Nothing was logged, so the same document can still be signed and logged.
    let signed = sign("ceremony/demo-fleet/auditor-signature.json");
    assert!(signed.status.success(), "{}", stderr_text(&signed));
    assert!(
        stderr_text(&signed).contains("logged at index 0 of 1"),
        "{}",
        stderr_text(&signed)
    );
}

#[test]
fn finish_rejects_stale_log_proof() {
    let folder = CeremonyFolder::new(|text| key_file_signer(one_member(ed25519(text))));
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    init_log(&folder);
    let sign = |log: bool| auditor_sign(&folder, "ceremony/demo-fleet/auditor-signature.json", log);
    let logged = sign(true);
    assert!(logged.status.success(), "{}", stderr_text(&logged));

    // The auditor signs again without the log: the proof beside it is now stale.
    std::fs::rename(
        folder.path("ceremony/demo-fleet/auditor-signature.json"),
        folder.path("first-signature.json"),
    )
    .unwrap();
    // Ed25519 signing is deterministic, so the new statement needs a later timestamp (ms).
    std::thread::sleep(std::time::Duration::from_millis(5));
    let resigned = sign(false);
    assert!(resigned.status.success(), "{}", stderr_text(&resigned));
    let countersign = folder.run(&["bundle", "countersign", "runbook.yaml"]);
    assert!(
        countersign.status.success(),
        "{}",
        stderr_text(&countersign)
    );

    let finish = folder.run(&["run", "runbook.yaml"]);
    assert_failed_with(&finish, &["log-proof.json", "does not prove this bundle"]);
    assert!(!folder.path("evidence/demo-fleet").exists());
}

#[test]
fn finish_retry_records_bundle_once() {
    let folder = CeremonyFolder::new(|text| key_file_signer(one_member(ed25519(text))));
    let run = folder.run(&["run", "runbook.yaml", "--yes"]);
    assert_eq!(run.status.code(), Some(4), "{}", stderr_text(&run));
    let sign = auditor_sign(&folder, "ceremony/demo-fleet/auditor-signature.json", false);
    assert!(sign.status.success(), "{}", stderr_text(&sign));
    let countersign = folder.run(&["bundle", "countersign", "runbook.yaml"]);
    assert!(
        countersign.status.success(),
        "{}",
        stderr_text(&countersign)
    );

    let transcript = folder.path("ceremony/demo-fleet/transcript.jsonl");
    let before = std::fs::read(&transcript).unwrap();
    std::fs::create_dir_all(folder.path("evidence/demo-fleet")).unwrap();
    let blocked = folder.run(&["run", "runbook.yaml"]);
    assert_failed_with(&blocked, &["evidence/demo-fleet", "exists already"]);
    assert_eq!(std::fs::read(&transcript).unwrap(), before);

    std::fs::remove_dir(folder.path("evidence/demo-fleet")).unwrap();
    let finish = folder.run(&["run", "runbook.yaml"]);
    assert!(finish.status.success(), "{}", stderr_text(&finish));
    let text = std::fs::read_to_string(&transcript).unwrap();
    let verified = text
        .lines()
        .filter(|line| line.contains("\"action\":\"bundle verified\""))
        .count();
    assert_eq!(verified, 1, "{text}");
}
