//! The evidence published in this repository (`evidence/demo-fleet`, from a demo run)
//! verifies against the keys pinned in `keys-public/`, with this tool and with the
//! independent commands the evidence itself lists.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn verify(extra: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("fleet-ceremony")
        .expect("binary builds")
        .current_dir(repository())
        .args([
            "verify",
            "evidence/demo-fleet",
            "--trust",
            "keys-public/trust.yaml",
        ])
        .args(extra)
        .output()
        .expect("verify runs")
}

#[test]
fn published_evidence_verifies_with_allowance() {
    let output = verify(&["--allow-unattested"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok    inclusion proof"), "{stdout}");
    assert!(stdout.contains("ok    witness sign-offs"), "{stdout}");
    assert!(stdout.trim_end().ends_with("bundle verified"), "{stdout}");
}

#[test]
fn published_evidence_is_not_hardware_attested() {
    let output = verify(&[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("FAIL  hardware attestation"), "{stdout}");
}

#[test]
fn published_evidence_independent_commands() {
    let folder: &Path = &repository().join("evidence/demo-fleet");
    let data: serde_json::Value = serde_json::from_slice(
        &std::fs::read(folder.join("evidence.json")).expect("evidence.json"),
    )
    .expect("evidence.json parses");
    let commands = data["verify"]["independent"]
        .as_array()
        .expect("command list");
    assert!(commands.len() >= 10, "{} commands", commands.len());
    for entry in commands {
        let command = entry["command"].as_str().expect("command");
        let expected = entry["expected"].as_str().expect("expected output");
        let output = Command::new("sh")
            .args(["-c", command])
            .current_dir(folder)
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            stdout.trim(),
            expected.trim(),
            "{command}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn changed_evidence_file_is_caught() {
    type Change = fn(&mut Vec<u8>);
    let cases: [(&str, Change); 3] = [
        ("fleet-key.pem", |bytes| bytes[40] ^= 1),
        ("fleet-key.json", |bytes| bytes.extend_from_slice(b" ")),
        ("transcript.jsonl", |bytes| bytes[10] ^= 1),
    ];
    for (name, change) in cases {
        let temp = tempfile::tempdir().unwrap();
        let folder = temp.path().join("demo-fleet");
        std::fs::create_dir(&folder).unwrap();
        let published = repository().join("evidence/demo-fleet");
        for item in std::fs::read_dir(&published).unwrap() {
            let path = item.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, folder.join(path.file_name().unwrap())).unwrap();
            }
        }
        let mut bytes = std::fs::read(folder.join(name)).unwrap();
        change(&mut bytes);
        std::fs::write(folder.join(name), bytes).unwrap();

        let output = assert_cmd::Command::cargo_bin("fleet-ceremony")
            .unwrap()
            .current_dir(repository())
            .arg("verify")
            .arg(&folder)
            .args(["--trust", "keys-public/trust.yaml", "--allow-unattested"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(3), "{name}: {stdout}");
        assert!(stdout.contains("FAIL  evidence files"), "{name}: {stdout}");
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
}
