//! PKCS#11 faults swept over every call of a ceremony.
//!
//! The runbook's members use the test module in `tests/pkcs11-fault`, which forwards to
//! SoftHSM and fails the Nth call with a chosen return code. For every N up to the number
//! of calls an uninterrupted `run` makes, a fresh ceremony runs with call N failed. The run
//! must stop with an error that names the PKCS#11 function, the return code, the step and
//! the member. `run --resume` must then complete the ceremony (or, for a sample, `abandon`
//! must clean it up). A complete ceremony has one fleet key pair per member with the same
//! public key, that key in the fleet-key document, and a transcript that records each step
//! once.

#![cfg(feature = "ceremony")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{CeremonyFolder, SOFTHSM_MODULE, copy_dir, fleet_ceremony, write_softhsm_conf};
use fleet_ceremony::transcript::Transcript;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::DecodePublicKey;

const TOKENS: [&str; 2] = ["demo-zurich-1", "demo-frankfurt-1"];
const KEY_LABEL: &str = "demo-fleet-key";
const WORK: &str = "ceremony/demo-fleet";
const CKR_DEVICE_ERROR: u64 = 0x30;
const CKR_GENERAL_ERROR: u64 = 0x05;

/// Functions whose errors the cryptoki binding logs and drops, because it calls them when
/// a search or session ends. A fault there surfaces at the next call, which then fails
/// (C_FindObjectsFinal leaves the search active, so the next search or operation returns
/// CKR_OPERATION_ACTIVE), and that call is what the error names.
const SWALLOWED: [&str; 2] = ["C_FindObjectsFinal", "C_CloseSession"];

/// Builds the fault module once and returns the path of its shared library.
fn fault_module() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pkcs11-fault/Cargo.toml");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pkcs11-fault");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = std::process::Command::new(cargo)
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the fault module does not build");
    let library = target.join("debug/libpkcs11_fault.so");
    assert!(library.exists(), "{} missing", library.display());
    library
}

/// Makes a two-member runbook from the demo's, with every member on `module`.
fn two_members(module: &Path) -> impl FnOnce(String) -> String {
    let module = module.display().to_string();
    move |demo: String| {
        let start = demo.find("  - name: dublin-1").expect("third member");
        let end = demo[start..].find("custodians:").expect("custodians") + start;
        let mut text = format!("{}{}", &demo[..start], &demo[end..]);
        text = text.replace(
            &format!("  module: {SOFTHSM_MODULE}"),
            &format!("  module: {module}"),
        );
        assert!(text.contains(&module), "defaults.module not replaced");
        text
    }
}

/// One ceremony folder, copied from the template, with its own token folder.
struct Case {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    calls: PathBuf,
}

impl Case {
    fn new(template: &Path) -> Case {
        let temp = tempfile::tempdir().expect("temporary folder");
        let dir = temp.path().join("ceremony");
        copy_dir(template, &dir);
        write_softhsm_conf(&dir.join("softhsm2.conf"), &dir.join("tokens"), "");
        let calls = temp.path().join("calls.txt");
        Case {
            _temp: temp,
            dir,
            calls,
        }
    }

    /// Runs `fleet-ceremony ARGS`, with call `fail_at` of the fault module failed with
    /// `rv` (0: none), and the calls listed in the case's call file.
    fn run(&self, args: &[&str], fail_at: usize, rv: u64) -> Output {
        let _ = std::fs::remove_file(&self.calls);
        fleet_ceremony(&self.dir.join("softhsm2.conf"))
            .current_dir(&self.dir)
            .env("FAULT_PKCS11_MODULE", SOFTHSM_MODULE)
            .env("FAULT_PKCS11_FAIL_AT", fail_at.to_string())
            .env("FAULT_PKCS11_RV", format!("{rv:#x}"))
            .env("FAULT_PKCS11_COUNT_FILE", &self.calls)
            .env("FLEET_CEREMONY_LOG", "warn")
            .args(args)
            .write_stdin("")
            .output()
            .expect("fleet-ceremony runs")
    }

    /// Returns the functions called in the last run, in order.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|line| line.split(' ').nth(1).unwrap_or_default().to_owned())
            .collect()
    }

    fn quorum(&self, command: &[&'static str]) -> Vec<&'static str> {
        let mut args = command.to_vec();
        args.extend([
            "--share",
            "shares/alice.age",
            "--identity",
            "custodians/alice/identity.txt",
            "--share",
            "shares/carol.age",
            "--identity",
            "custodians/carol/identity.txt",
        ]);
        args
    }

    /// Returns each token's user PIN, recovered with `shares combine --reveal`.
    fn user_pins(&self) -> Vec<(String, String)> {
        let output = self.run(&self.quorum(&["shares", "combine", "--reveal"]), 0, 0);
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout)
            .lines()
            .skip(1)
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                (fields[1].to_owned(), fields[3].to_owned())
            })
            .collect()
    }

    /// Lists a token's objects with pkcs11-tool on SoftHSM itself, logged in as the user
    /// when `pin` is given; `None` when no token has that label.
    fn objects(&self, token: &str, pin: Option<&str>) -> Option<String> {
        let login = match pin {
            Some(pin) => vec!["--login", "--pin", pin],
            None => Vec::new(),
        };
        let output = std::process::Command::new("pkcs11-tool")
            .args(["--module", SOFTHSM_MODULE, "--token-label", token])
            .args(login)
            .arg("--list-objects")
            .env("SOFTHSM2_CONF", self.dir.join("softhsm2.conf"))
            .output()
            .expect("pkcs11-tool runs");
        let all = format!("{}{}", text(&output.stdout), text(&output.stderr));
        if !output.status.success() && all.contains("No slot with token") {
            return None;
        }
        assert!(output.status.success(), "{token}: {all}");
        Some(text(&output.stdout))
    }

    /// Returns the token flags line pkcs11-tool lists for `token`.
    fn token_flags(&self, token: &str) -> String {
        let output = std::process::Command::new("pkcs11-tool")
            .args(["--module", SOFTHSM_MODULE, "--list-token-slots"])
            .env("SOFTHSM2_CONF", self.dir.join("softhsm2.conf"))
            .output()
            .expect("pkcs11-tool runs");
        let listing = text(&output.stdout);
        let slot = listing
            .split("Slot ")
            .find(|slot| slot.contains(&format!("token label        : {token}\n")))
            .unwrap_or_default();
        slot.lines()
            .find(|line| line.trim_start().starts_with("token flags"))
            .unwrap_or_default()
            .to_owned()
    }

    fn transcript(&self) -> Transcript {
        Transcript::open(&self.dir.join(WORK).join("transcript.jsonl")).expect("transcript")
    }

    /// Checks a ceremony that reached the signing request: one fleet key pair per token
    /// and no other object, one public key, the document naming it, every step recorded
    /// once.
    fn check_complete(&self, case: &str) {
        let pins = self.user_pins();
        let mut points = Vec::new();
        for token in TOKENS {
            let pin = &pins
                .iter()
                .find(|(label, _)| label == token)
                .expect("PIN")
                .1;
            let listing = self
                .objects(token, Some(pin))
                .unwrap_or_else(|| panic!("{case}: token {token} missing"));
            let count = |what: &str| listing.matches(what).count();
            assert_eq!(count("Private Key Object"), 1, "{case}: {token}\n{listing}");
            assert_eq!(count("Public Key Object"), 1, "{case}: {token}\n{listing}");
            assert_eq!(count("Object;"), 2, "{case}: {token}\n{listing}");
            assert_eq!(count(KEY_LABEL), 2, "{case}: {token}\n{listing}");
            points.push(ec_point(&listing).expect("EC point listed"));
        }
        assert!(
            points.iter().all(|p| p == &points[0]),
            "{case}: public keys differ: {points:?}"
        );

        let document: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.join(WORK).join("fleet-key.json")).expect("document"),
        )
        .expect("document is JSON");
        let pem = document["keys"][0]["spki_pem"].as_str().expect("spki_pem");
        let key = p256::PublicKey::from_public_key_pem(pem).expect("P-256 key");
        let point = hex::encode(key.to_encoded_point(false).as_bytes());
        assert!(
            points[0].ends_with(&point),
            "{case}: the document's key {point} is not the tokens' {}",
            points[0]
        );
        let request: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.dir.join(WORK).join("signing-request.json")).expect("request"),
        )
        .expect("request is JSON");
        assert_eq!(
            request["keys"][0]["fingerprint"], document["keys"][0]["fingerprint"],
            "{case}"
        );

        let transcript = self.transcript();
        let count = |action: &str| {
            transcript
                .records()
                .iter()
                .filter(|record| record.action == action)
                .count()
        };
        for (action, expected) in [
            ("share written", 3),
            ("token initialised", 2),
            ("fleet key generated", 1),
            ("fleet key replicated", 1),
            ("fleet key locked", 1),
            ("fleet key checked on every member", 1),
            ("fleet-key document written", 1),
            ("signing request written", 1),
        ] {
            assert_eq!(count(action), expected, "{case}: \"{action}\" records");
        }
    }

    /// Checks that no token contains an object with the fleet key's label.
    fn check_abandoned(&self, case: &str) {
        let pins = self.user_pins();
        for (token, pin) in &pins {
            // A token whose user PIN was never set contains no user objects, and rejects
            // the user's login.
            let login = self.objects(token, None).map(|listing| {
                let flags = self.token_flags(token);
                if flags.contains("PIN initialized") {
                    self.objects(token, Some(pin)).unwrap_or_default()
                } else {
                    listing
                }
            });
            if let Some(listing) = login {
                assert!(
                    !listing.contains(KEY_LABEL),
                    "{case}: {token} still holds\n{listing}"
                );
            }
        }
        let last = self
            .transcript()
            .records()
            .last()
            .expect("records")
            .action
            .clone();
        assert_eq!(last, "ceremony abandoned", "{case}");
        assert!(
            !self.dir.join(WORK).join("signing-request.json").exists(),
            "{case}"
        );
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ec_point(listing: &str) -> Option<String> {
    listing
        .lines()
        .find_map(|line| line.trim().strip_prefix("EC_POINT:"))
        .map(|point| point.trim().to_owned())
}

fn rv_name(rv: u64) -> &'static str {
    match rv {
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        _ => unreachable!("only these codes are swept"),
    }
}

/// What to do after the fault.
#[derive(Clone, Copy, PartialEq)]
enum After {
    Resume,
    Abandon,
}

/// Runs one ceremony with call `n` failed with `rv`, then resumes or abandons it; returns
/// a line for the summary.
fn fault_case(template: &Path, n: usize, rv: u64, after: After) -> String {
    let case_dir = Case::new(template);
    let output = case_dir.run(&["run", "runbook.yaml", "--yes"], n, rv);
    let calls = case_dir.calls();
    let function = calls.get(n - 1).cloned().unwrap_or_default();
    let case = format!("call {n} ({function}) failed with {}", rv_name(rv));
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{case}: panic\n{stderr}");
    assert!(
        calls.len() >= n,
        "{case}: the run made only {} calls",
        calls.len()
    );

    let started = case_dir.dir.join(WORK).join("transcript.jsonl").exists();
    match output.status.code() {
        Some(1) => {
            let names_fault = if SWALLOWED.contains(&function.as_str()) {
                stderr.contains(" returned CKR_")
            } else {
                stderr.contains(&format!("{function} returned {}", rv_name(rv)))
            };
            assert!(
                names_fault,
                "{case}: the error does not name the function and return code\n{stderr}"
            );
            // Before the transcript exists the preflight checks failed, which name the
            // member; afterwards the error names the step and the member.
            let names_place = if started {
                stderr.contains("step \"") && stderr.contains("for member ")
            } else {
                stderr.contains("problem: members[")
            };
            assert!(
                names_place,
                "{case}: the error does not say where\n{stderr}"
            );
        }
        // The fault hit a call whose failure changes nothing, such as closing a session.
        Some(4) => {
            case_dir.check_complete(&case);
            return format!("{case}: no effect, run complete");
        }
        code => panic!("{case}: exit code {code:?}\n{stderr}"),
    }

    if !started {
        let again = case_dir.run(&["run", "runbook.yaml", "--yes"], 0, 0);
        assert_eq!(
            again.status.code(),
            Some(4),
            "{case}: {}",
            text(&again.stderr)
        );
        case_dir.check_complete(&case);
        return format!("{case}: stopped before the ceremony started; a new run completes");
    }
    if after == After::Abandon {
        let abandon = case_dir.run(
            &case_dir.quorum(&["abandon", "runbook.yaml", "--yes"]),
            0,
            0,
        );
        assert!(
            abandon.status.success(),
            "{case}: {}",
            text(&abandon.stderr)
        );
        case_dir.check_abandoned(&case);
        return format!("{case}: abandoned");
    }
    let resume = case_dir.run(&case_dir.quorum(&["run", "runbook.yaml", "--resume"]), 0, 0);
    let resume_err = text(&resume.stderr);
    assert!(
        !resume_err.contains("panicked"),
        "{case}: resume panicked\n{resume_err}"
    );
    if resume_err.contains("stopped while the shares were being written") {
        let abandon = case_dir.run(
            &case_dir.quorum(&["abandon", "runbook.yaml", "--yes"]),
            0,
            0,
        );
        assert!(
            abandon.status.success(),
            "{case}: {}",
            text(&abandon.stderr)
        );
        case_dir.check_abandoned(&case);
        return format!("{case}: shares incomplete, abandoned");
    }
    assert_eq!(
        resume.status.code(),
        Some(4),
        "{case}: resume did not reach the signing request\nrun:\n{stderr}\nresume:\n{resume_err}"
    );
    case_dir.check_complete(&case);
    format!("{case}: resumed")
}

/// Runs `cases` on two threads; returns their summary lines in order, and the failures.
fn sweep(template: &Path, cases: &[(usize, u64, After)]) -> (Vec<String>, Vec<String>) {
    let next = AtomicUsize::new(0);
    let lines = Mutex::new(vec![String::new(); cases.len()]);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&(n, rv, after)) = cases.get(index) else {
                        break;
                    };
                    let result = std::panic::catch_unwind(|| fault_case(template, n, rv, after));
                    match result {
                        Ok(line) => lines.lock().expect("summary lock")[index] = line,
                        Err(panic) => {
                            let message = panic
                                .downcast_ref::<String>()
                                .cloned()
                                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                                .unwrap_or_default();
                            failures
                                .lock()
                                .expect("failure lock")
                                .push(format!("call {n}, rv {rv:#x}: {message}"));
                        }
                    }
                }
            });
        }
    });
    (
        lines.into_inner().expect("summary lock"),
        failures.into_inner().expect("failure lock"),
    )
}

#[test]
fn fault_at_every_call_recovers() {
    let module = fault_module();
    let folder = CeremonyFolder::new(two_members(&module));
    let template = folder.root();

    // An uninterrupted run through the fault module, to count its calls.
    let clean = Case::new(template);
    let output = clean.run(&["run", "runbook.yaml", "--yes"], 0, 0);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    let calls = clean.calls();
    clean.check_complete("uninterrupted run");
    assert!(
        calls.iter().any(|f| f == "C_UnwrapKey") && calls.iter().any(|f| f == "C_InitToken"),
        "the count misses calls: {calls:?}"
    );

    // Every call with CKR_DEVICE_ERROR, then resumed; every seventh call with
    // CKR_GENERAL_ERROR, alternately resumed and abandoned.
    let mut cases: Vec<(usize, u64, After)> = (1..=calls.len())
        .map(|n| (n, CKR_DEVICE_ERROR, After::Resume))
        .collect();
    cases.extend((1..=calls.len()).step_by(7).enumerate().map(|(i, n)| {
        let after = if i % 2 == 0 {
            After::Abandon
        } else {
            After::Resume
        };
        (n, CKR_GENERAL_ERROR, after)
    }));
    let (lines, failures) = sweep(template, &cases);
    eprintln!("{} calls in an uninterrupted run", calls.len());
    for line in lines.iter().filter(|line| !line.is_empty()) {
        eprintln!("{line}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} faults were not handled:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Fails the first C_InitToken with CKR_PIN_INCORRECT. A token that someone else
/// initialised after the run listed the slots returns that code, because the run's new SO
/// PIN does not match the token's own.
#[test]
fn taken_slot_at_init_is_named() {
    const CKR_PIN_INCORRECT: u64 = 0xa0;
    let module = fault_module();
    let folder = CeremonyFolder::new(two_members(&module));
    let template = folder.root();

    let clean = Case::new(template);
    let output = clean.run(&["run", "runbook.yaml", "--yes"], 0, 0);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    let first_init = clean
        .calls()
        .iter()
        .position(|function| function == "C_InitToken")
        .expect("the run initialises tokens")
        + 1;

    let case = Case::new(template);
    let output = case.run(
        &["run", "runbook.yaml", "--yes"],
        first_init,
        CKR_PIN_INCORRECT,
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("holds an initialised token by now"),
        "{stderr}"
    );
    assert!(stderr.contains("run again"), "{stderr}");

    let output = case.run(
        &case.quorum(&["run", "runbook.yaml", "--resume", "--yes"]),
        0,
        0,
    );
    assert_eq!(output.status.code(), Some(4), "{}", text(&output.stderr));
    case.check_complete("resumed after a taken slot");
}
